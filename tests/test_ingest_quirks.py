"""Real department files of kinds the field cases do not show: codes with bidirectional marks
or spaces inside, header rows repeated on every printed page, old-Mac line endings, a sheet per
township (the first matching sheet read, the others named).  Each must keep every real row and reject the rest with a clear reason."""
from __future__ import annotations

import polars as pl
import pytest
import xlsxwriter

from screening.errors import InputError

from test_ingest_real import C1, C2, C3, ENT, TAX, assert_same_tables, clean_dir, code, load, quirk_dir, write_csv

# every Unicode format character a copy from a web page, a PDF or a chat program leaves in a
# cell (bidirectional marks, embeddings, overrides and isolates, the Arabic letter mark …)
FORMAT_CHARS = ["\u200b", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066",
                "\u2067", "\u2068", "\u2069", "\u061c", "\u2061", "\ufeff", "\u00ad"]


@pytest.mark.parametrize("mark", FORMAT_CHARS, ids=[f"U+{ord(c):04X}" for c in FORMAT_CHARS])
def test_format_characters_anywhere_in_a_code_are_taken_out(tmp_path, mark):
    clean = load(clean_dir(tmp_path))
    d = quirk_dir(tmp_path)
    write_csv(d / "enterprises.csv", [ENT[0]] + [[r[0][:6] + mark + r[0][6:], *r[1:]] for r in ENT[1:]])
    write_csv(d / "tax.csv", [TAX[0]] + [[mark + r[0] + mark, *r[1:]] for r in TAX[1:]])
    inp = load(d)
    assert inp.rejects.height == 0, inp.rejects.to_dicts()
    assert_same_tables(clean, inp)
    kinds = {(r["file"], r["row"]): r["kind"] for r in inp.normalised.to_dicts()}
    assert kinds[("enterprises.csv", 2)] == "invisible" and kinds[("tax.csv", 2)] == "invisible"


@pytest.mark.parametrize("space", [" ", "\u00a0", "\u3000", "\u2002", "\u202f"])
def test_spaces_inside_a_code_are_taken_out(tmp_path, space):
    """A code has no spaces: "9133 0382 …" as typed, or a no-break/ideographic space pasted in."""
    clean = load(clean_dir(tmp_path))
    d = quirk_dir(tmp_path)
    write_csv(d / "enterprises.csv", [ENT[0]] + [[r[0][:4] + space + r[0][4:10] + space + r[0][10:], *r[1:]]
                                                 for r in ENT[1:]])
    write_csv(d / "tax.csv", [TAX[0]] + [[r[0][:8] + space + r[0][8:], *r[1:]] for r in TAX[1:]])
    inp = load(d)
    assert inp.rejects.height == 0, inp.rejects.to_dicts()
    assert_same_tables(clean, inp)


def test_format_characters_in_a_name_are_taken_out(tmp_path):
    """A right-to-left override in a firm name would show it reversed in every export."""
    d = quirk_dir(tmp_path)
    write_csv(d / "enterprises.csv", [ENT[0], [C1, "乐清市\u202e甲电气\u202c有限公司", "柳市镇\u2066", "3823"], *ENT[2:]])
    inp = load(d)
    ent = inp.frame("enterprises").sort("uscc")
    assert ent["name"][0] == "乐清市甲电气有限公司" and ent["township"][0] == "柳市镇"


# ---------------------------------------------------------------- printed exports

def _printed(rows: list[list], every: int) -> list[list]:
    """The header repeated after every ``every`` data rows, as a print-ready export has it."""
    out = [rows[0]]
    for i, r in enumerate(rows[1:], 1):
        out.append(r)
        if i % every == 0:
            out.append(list(rows[0]))
    return out


def test_header_repeated_on_every_printed_page_is_not_a_record_csv(tmp_path):
    clean = load(clean_dir(tmp_path))
    d = quirk_dir(tmp_path)
    write_csv(d / "tax.csv", _printed([["序号", *TAX[0]]] + [[i, *r] for i, r in enumerate(TAX[1:], 1)], 2), "gbk")
    inp = load(d)
    assert_same_tables(clean, inp)
    assert [(r["row"], r["column"], r["reason"]) for r in inp.rejects.to_dicts()] == [
        (4, "（整行）", "重复的表头行，不是数据行，未读取"), (7, "（整行）", "重复的表头行，不是数据行，未读取")]


def test_header_repeated_on_every_printed_page_is_not_a_record_xlsx(tmp_path):
    clean = load(clean_dir(tmp_path))
    d = quirk_dir(tmp_path)
    wb = xlsxwriter.Workbook(d / "tax.xlsx")
    ws = wb.add_worksheet("税收")
    ws.write_row(0, 0, ["2020—2021年税收情况表"])
    for i, r in enumerate(_printed([["实缴税金（万元）" if c == "实缴税金" else c for c in TAX[0]], *TAX[1:]], 3)):
        ws.write_row(i + 1, 0, r)
    wb.close()
    inp = load(d)
    assert_same_tables(clean, inp)
    assert [(r["file"], r["row"]) for r in inp.rejects.to_dicts()] == [("tax.xlsx", 6)]


def test_a_data_row_that_happens_to_hold_a_header_word_is_still_a_record(tmp_path):
    """Only a row that repeats the header is taken out; a bad row naming one header word is rejected as bad."""
    d = quirk_dir(tmp_path)
    write_csv(d / "tax.csv", [*TAX, [C2, "年份", 1.0]])
    inp = load(d)
    assert [(r["row"], r["column"]) for r in inp.rejects.to_dicts()] == [(6, "年份")]


# ---------------------------------------------------------------- encodings and line endings

@pytest.mark.parametrize("newline", ["\r", "\r\n", "\n"], ids=["CR", "CRLF", "LF"])
@pytest.mark.parametrize("encoding", ["utf-8-sig", "gbk", "utf-16", "utf-16-be-bom"])
def test_csv_in_any_encoding_with_any_line_ending(tmp_path, encoding, newline):
    """Old Mac exports end lines with CR alone; Excel's 'Unicode text' is UTF-16 with tabs."""
    clean = load(clean_dir(tmp_path))
    d = quirk_dir(tmp_path)
    sep = "\t" if encoding.startswith("utf-16") else ","
    rows = [["税收情况表"], ["单位：万元"], *TAX]
    text = newline.join(sep.join(str(v) for v in r) for r in rows) + newline
    raw = (b"\xfe\xff" + text.encode("utf-16-be")) if encoding == "utf-16-be-bom" else text.encode(encoding)
    (d / "tax.csv").write_bytes(raw)
    inp = load(d)
    assert inp.rejects.height == 0, inp.rejects.to_dicts()
    assert_same_tables(clean, inp)


def test_csv_with_cr_line_endings_names_the_excel_row_of_a_bad_value(tmp_path):
    d = quirk_dir(tmp_path)
    (d / "tax.csv").write_bytes("\r".join(",".join(str(v) for v in r) for r in [*TAX, [C2, 2020, "abc"]]).encode("gbk"))
    inp = load(d)
    assert [(r["row"], r["column"]) for r in inp.rejects.to_dicts()] == [(6, "实缴税金")]


def test_a_stray_cr_inside_a_cell_of_an_lf_file_does_not_split_the_row(tmp_path):
    d = quirk_dir(tmp_path)
    (d / "enterprises.csv").write_bytes("\n".join(",".join(r) for r in [ENT[0], [C1, "乐清市\r甲电气有限公司", "柳市镇", "3823"],
                                                                         *ENT[2:]]).encode("utf-8"))
    inp = load(d)
    assert inp.rejects.height == 0 and inp.frame("enterprises").height == 3


# ---------------------------------------------------------------- a sheet per township

def test_a_sheet_per_township_reads_the_first_matching_sheet_and_names_the_others(tmp_path):
    """Contract: the first visible sheet whose header matches is read; the other matching sheets
    are named in the file's note (terminal, run.json, check), never merged silently."""
    d = quirk_dir(tmp_path)
    (d / "enterprises.csv").unlink()
    wb = xlsxwriter.Workbook(d / "enterprises.xlsx")
    wb.add_worksheet("说明").write_row(0, 0, ["本表按乡镇街道分工作表"])  # visible, not the table
    towns: dict[str, list] = {}
    for r in ENT[1:]:
        towns.setdefault(r[2], []).append(r)
    assert len(towns) >= 2
    for town, rows in towns.items():
        ws = wb.add_worksheet(town)
        ws.write_row(0, 0, ENT[0])
        for i, r in enumerate(rows, 1):
            ws.write_row(i, 0, r)
    hidden = wb.add_worksheet("作废")
    hidden.write_row(0, 0, ENT[0])
    hidden.hide()
    wb.close()
    write_csv(d / "tax.csv", [TAX[0]])
    inp = load(d)
    raw = inp.files["enterprises"]
    first, *others = towns
    assert raw.sheet == first
    assert sorted(inp.frame("enterprises")["uscc"].to_list()) == sorted(r[0] for r in towns[first])
    assert [sh["name"] for sh in raw.sheets if sh["header_matches"] and not sh["read"]] == others
    assert raw.note is not None and all(f"“{t}”" in raw.note for t in others) and "作废" not in raw.note
    assert "只读取第一个相符的可见工作表" in raw.note and raw.intake()["note"] == raw.note


BROKEN_SHEET = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns="http://schemas.openxmlformats.org/'
                b'spreadsheetml/2006/main"><dimension ref="A1"/><sheetData><row r="1"><c r="A1" t="s"><v>99999</v></c>'
                b'</row></sheetData></worksheet>')      # a cell naming shared string 99,999 of a few: the reader fails


def _break_sheet(path, number: int) -> None:
    """Rewrite xl/worksheets/sheet<number>.xml of a workbook as a sheet the reader cannot read."""
    import zipfile
    member = f"xl/worksheets/sheet{number}.xml"
    with zipfile.ZipFile(path) as z:
        parts = [(info, z.read(info)) for info in z.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for info, data in parts:
            z.writestr(info, BROKEN_SHEET if info.filename == member else data)


def _township_workbook(path) -> dict[str, list]:
    """说明, then a sheet per township (each with the enterprises' header), then 备用: sheets 1, 2 …"""
    wb = xlsxwriter.Workbook(path)
    wb.add_worksheet("说明").write_row(0, 0, ["本表按乡镇街道分工作表"])
    towns: dict[str, list] = {}
    for r in ENT[1:]:
        towns.setdefault(r[2], []).append(r)
    for town, rows in towns.items():
        ws = wb.add_worksheet(town)
        for i, r in enumerate([ENT[0], *rows]):
            ws.write_row(i, 0, r)
    wb.add_worksheet("备用").write_row(0, 0, ENT[0])
    wb.close()
    return towns


def test_a_broken_sheet_after_the_one_read_is_named_in_the_note_not_fatal(tmp_path):
    """The sheets after the one read are loaded only to see whether their header matches too: a
    reader error there stopped the whole table (a bad shared-string index in sheet 2 of a file whose
    sheet 1 was read fine before).  It is said in the file's note; the table is read."""
    d = quirk_dir(tmp_path)
    (d / "enterprises.csv").unlink()
    towns = _township_workbook(d / "enterprises.xlsx")
    first, second, *_ = towns
    _break_sheet(d / "enterprises.xlsx", 3)                     # the second township
    write_csv(d / "tax.csv", [TAX[0]])
    inp = load(d)
    raw = inp.files["enterprises"]
    assert raw.sheet == first
    assert sorted(inp.frame("enterprises")["uscc"].to_list()) == sorted(r[0] for r in towns[first])
    assert f"工作表“{second}”无法读取，未检查其表头" in raw.note
    assert "“备用”" in raw.note and "只读取第一个相符的可见工作表" in raw.note    # the sheets after it still checked
    assert [sh["name"] for sh in raw.sheets if sh["header_matches"]] == [first, *list(towns)[2:], "备用"]


def test_a_broken_sheet_read_or_before_the_one_read_still_stops_the_table(tmp_path):
    for number, sheet in [(2, None), (1, "说明")]:        # the first township (the sheet to read), the notes before it
        d = tmp_path / str(number)
        d.mkdir()
        write_csv(d / "tax.csv", [TAX[0]])
        towns = _township_workbook(d / "enterprises.xlsx")
        _break_sheet(d / "enterprises.xlsx", number)
        with pytest.raises(InputError, match=f"enterprises.xlsx：无法读取工作表“{sheet or next(iter(towns))}”"):
            load(d)


def test_one_matching_sheet_has_no_note(tmp_path):
    d = quirk_dir(tmp_path)
    (d / "enterprises.csv").unlink()
    wb = xlsxwriter.Workbook(d / "enterprises.xlsx")
    ws = wb.add_worksheet("名录")
    for i, r in enumerate(ENT):
        ws.write_row(i, 0, r)
    wb.add_worksheet("说明").write_row(0, 0, ["填表说明"])
    wb.close()
    raw = load(d).files["enterprises"]
    assert raw.sheet == "名录" and raw.note is None


# ---------------------------------------------------------------- numbers and dates as clerks write them

@pytest.mark.parametrize("written", ["12,5", "1.234,5", "1,2345.6", "12,50", "1,23,456", ",125", "125,"])
def test_a_comma_that_is_not_a_thousands_separator_is_rejected_not_guessed(tmp_path, written):
    """"12,5" is 12.5 in much of Europe and 125 to a careless reader: never a silent guess."""
    d = quirk_dir(tmp_path)
    (d / "tax.csv").write_text(f'统一社会信用代码,年份,实缴税金\n{C1},2021,"{written}"\n{C2},2021,"1,234,567.5"\n',
                               encoding="utf-8")
    inp = load(d)
    assert inp.frame("tax")["tax_paid"].to_list() == [1234567.5]
    assert [(r["row"], r["column"], r["value"]) for r in inp.rejects.to_dicts()] == [(2, "实缴税金", written)]


@pytest.mark.parametrize("written", ["17-05-13", "0017-05-13", "217-5-13", "9999-01-01", "1066/10/14"])
def test_a_date_whose_year_is_not_plausible_is_unknown_not_a_date(tmp_path, written):
    """A two-digit year ("17-05-13") is not the year 17; an established date out of range is cleared, said so."""
    d = quirk_dir(tmp_path)
    write_csv(d / "enterprises.csv", [ENT[0] + ["成立日期"], ENT[1] + [written], ENT[2] + ["2017-05-13"]])
    inp = load(d)
    assert inp.frame("enterprises").sort("uscc")["established"].to_list()[0] is None
    assert [(r["row"], r["column"], r["action"]) for r in inp.rejects.to_dicts()] == [(2, "成立日期", "field_cleared")]


@pytest.mark.parametrize(("header", "cell", "expected"), [
    ("实缴税金", "125000元", 12.5), ("实缴税金", "125,000 元", 12.5), ("实缴税金", "0.00125亿元", 12.5),
    ("实缴税金", "12,500千元", 1250.0), ("实缴税金（元）", "12.5万元", 12.5), ("实缴税金（元）", "125000", 12.5),
    ("实缴税金（元）", "12.5万", 12.5), ("实缴税金", "0.5亿", 5000.0),
])
def test_a_cell_in_another_unit_of_the_same_kind_is_converted(tmp_path, header, cell, expected):
    """A clerk writes 元 in a 万元 column (or 万元 in a 元 column): the value is converted, and listed."""
    d = quirk_dir(tmp_path)
    (d / "tax.csv").write_text(f'统一社会信用代码,年份,{header}\n{C1},2021,"{cell}"\n', encoding="utf-8")
    inp = load(d)
    assert inp.rejects.height == 0, inp.rejects.to_dicts()
    assert inp.frame("tax")["tax_paid"].to_list() == [expected]
    if not cell.replace(",", "").isdigit():
        assert inp.normalised["kind"].to_list()[-1] == "unit_converted"


@pytest.mark.parametrize("cell", ["12.5美元", "12.5吨标准煤", "约12.5万元", "12.5万吨"])
def test_a_cell_in_an_unknown_or_other_kind_of_unit_is_rejected(tmp_path, cell):
    d = quirk_dir(tmp_path)
    (d / "tax.csv").write_text(f'统一社会信用代码,年份,实缴税金\n{C1},2021,"{cell}"\n', encoding="utf-8")
    inp = load(d)
    assert [(r["row"], r["column"], r["value"]) for r in inp.rejects.to_dicts()] == [(2, "实缴税金", cell)]


def test_land_in_square_metres_or_hectares_in_a_mu_column(tmp_path):
    c = clean_dir(tmp_path)
    write_csv(c / "land.csv", [["uscc", "year", "parcel_id", "area_mu", "tenure"], [C1, 2021, "P1", 3.0, "自有"],
                               [C1, 2021, "P2", 15.0, "自有"]])
    clean = load(c)
    d = quirk_dir(tmp_path)
    write_csv(d / "tax.csv", TAX)
    write_csv(d / "land.csv", [["统一社会信用代码", "年份", "地块编号", "用地面积（亩）", "权属"],
                               [C1, 2021, "P1", "2000㎡", "自有"], [C1, 2021, "P2", "1公顷", "自有"]])
    inp = load(d)
    assert inp.rejects.height == 0, inp.rejects.to_dicts()
    assert inp.frame("land")["area_mu"].to_list() == [pytest.approx(3.0), pytest.approx(15.0)]
    assert clean.frame("land")["area_mu"].to_list() == [3.0, 15.0]


def test_control_characters_in_a_name_are_taken_out(tmp_path):
    """A bell or a terminal escape in a firm name would show as _x0007_ in Excel and act on a terminal."""
    d = quirk_dir(tmp_path)
    write_csv(d / "enterprises.csv", [ENT[0], [C1, "\x07\x1b[31m乐清市甲电气\x7f有限公司\x1f", "柳市\x08镇", "3823"], *ENT[2:]])
    inp = load(d)
    ent = inp.frame("enterprises").sort("uscc")
    assert ent["name"][0] == "[31m乐清市甲电气有限公司" and ent["township"][0] == "柳市镇"
    assert inp.normalised.filter(pl.col("row") == 2)["kind"].to_list() == ["invisible", "invisible"]


def test_a_nul_byte_far_into_a_csv_names_its_row(tmp_path):
    """One NUL in a cell (a copy from a database field) refuses the file: the clerk is told which row to fix."""
    from screening.errors import InputError
    d = quirk_dir(tmp_path)
    rows = [TAX[0]] + [[C1, 1900 + i, 1.0] for i in range(1, 4000)] + [[C2, 2021, "1\x002"]]
    write_csv(d / "tax.csv", rows)
    with pytest.raises(InputError, match=r"tax\.csv：第 4001 行含有 NUL 字节"):
        load(d)


@pytest.mark.parametrize(("written", "expected"), [
    ("2021", "2021-01-01"), ("2021年", "2021-01-01"), ("2021年5月", "2021-05-01"), ("2021-05", "2021-05-01"),
    ("2021/5", "2021-05-01"), ("2021.05", "2021-05-01"), ("2021年05月13号", "2021-05-13"), ("2021 年 5 月 13 日", "2021-05-13"),
])
def test_an_established_date_written_as_a_year_or_a_month_is_its_first_day(tmp_path, written, expected):
    """The rules only ask whether a firm was established before 1 January of Y-2, so a year is enough:
    clearing "2021年" would put a new firm back in scope."""
    import datetime as dt
    d = quirk_dir(tmp_path)
    write_csv(d / "enterprises.csv", [ENT[0] + ["成立日期"], ENT[1] + [written]])
    inp = load(d)
    assert inp.rejects.height == 0, inp.rejects.to_dicts()
    assert inp.frame("enterprises")["established"].to_list() == [dt.date.fromisoformat(expected)]
    assert inp.normalised["kind"].to_list() == ([] if "13" in written else ["partial_date"])


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_bom_is_read(tmp_path, encoding):
    """Some systems export "Unicode" text without the byte order mark: its NUL bytes are not binary content."""
    clean = load(clean_dir(tmp_path))
    d = quirk_dir(tmp_path)
    (d / "tax.csv").write_bytes("\r\n".join("\t".join(str(v) for v in r) for r in TAX).encode(encoding))
    inp = load(d)
    assert inp.rejects.height == 0, inp.rejects.to_dicts()
    assert_same_tables(clean, inp)


def test_binary_content_named_csv_is_still_refused(tmp_path):
    from screening.errors import InputError
    d = quirk_dir(tmp_path)
    (d / "tax.csv").write_bytes(bytes(range(256)) * 64)
    with pytest.raises(InputError, match="tax.csv"):
        load(d)


# ---------------------------------------------------------------- cells that must not be read wrong

@pytest.mark.parametrize(("written", "expected"), [
    ("2021 1 13", "2021-01-13"), ("2021 1 1", "2021-01-01"), ("2021 11 3", "2021-11-03"), ("2021  12  31", "2021-12-31"),
    ("2021 - 1 - 13", "2021-01-13"), ("2021 / 1 / 13", "2021-01-13"), ("2021 年 1 月 13 号", "2021-01-13"),
    ("20210113", "2021-01-13"), ("2021113", None), ("202111", None), ("2021 113", None), ("20211 13", None),
])
def test_a_date_with_spaces_is_read_as_written_and_only_eight_digits_are_yyyymmdd(written, expected):
    """Spaces between numbers separate them; "2021113" (1 November or 13 January?) is refused, never guessed."""
    import datetime as dt
    from screening.validate import parse_dates
    got = pl.select(parse_dates(pl.lit(written, dtype=pl.String)).alias("d"))["d"][0]
    assert got == (dt.date.fromisoformat(expected) if expected else None)


def test_an_established_date_with_spaces_in_the_registry(tmp_path):
    import datetime as dt
    d = quirk_dir(tmp_path)
    write_csv(d / "enterprises.csv", [ENT[0] + ["成立日期"], ENT[1] + ["2021 1 13"], ENT[2] + ["2021113"]])
    inp = load(d)
    assert inp.frame("enterprises").sort("uscc")["established"].to_list() == [dt.date(2021, 1, 13), None]
    assert [(r["row"], r["column"], r["action"]) for r in inp.rejects.to_dicts()] == [(3, "成立日期", "field_cleared")]


@pytest.mark.parametrize("written", ["0,125", "00,500", "-0,125", "+0,125.5", "0,125元", "0,125 万元"])
def test_a_comma_after_a_leading_zero_is_rejected_not_read_as_thousands(tmp_path, written):
    """"0,125" is a decimal comma (0.125) to half of Europe: neither 125 nor 0.125 is read."""
    d = quirk_dir(tmp_path)
    (d / "tax.csv").write_text(f'统一社会信用代码,年份,实缴税金\n{C1},2021,"{written}"\n{C2},2021,"1,234"\n',
                               encoding="utf-8")
    inp = load(d)
    assert inp.frame("tax")["tax_paid"].to_list() == [1234.0]
    # the reject shows the number as normalised (its own unit 万元 taken off)
    assert [(r["row"], r["column"], r["value"]) for r in inp.rejects.to_dicts()] == [
        (2, "实缴税金", written.removesuffix(" 万元"))]


@pytest.mark.parametrize(("table", "header", "cell", "kind"), [
    ("land", "用地面积（亩）", "２０００㎡", "unit_converted"), ("tax", "实缴税金", "１２５，０００元", "unit_converted"),
    ("tax", "实缴税金", "１，２３４", "thousands"), ("tax", "实缴税金", "\u200b1,234", "thousands"),
    ("tax", "实缴税金", "１２.５万元", "unit_in_cell"), ("tax", "实缴税金", "1,234万元", "thousands"),
    ("enterprises", "成立日期", "２０２１年", "partial_date"), ("enterprises", "成立日期", "４４３９７", "date_serial"),
    ("tax", "实缴税金", "１２.５", "full_width"),
])
def test_a_cell_changed_in_several_ways_is_listed_under_the_change_of_its_value(tmp_path, table, header, cell, kind):
    """A converted unit, a thousands separator or a partial date says more than the full-width digits it was
    also written in; run.json counts the same kinds as normalised.csv."""
    d = quirk_dir(tmp_path)
    if table == "enterprises":
        write_csv(d / "enterprises.csv", [ENT[0] + [header], ENT[1] + [cell]])
    elif table == "land":
        write_csv(d / "land.csv", [["统一社会信用代码", "年份", "地块编号", header, "权属"], [C1, 2021, "P1", cell, "自有"]])
    else:
        (d / "tax.csv").write_text(f'统一社会信用代码,年份,{header}\n{C1},2021,"{cell}"\n', encoding="utf-8")
    inp = load(d)
    assert inp.rejects.height == 0, inp.rejects.to_dicts()
    assert inp.normalised.filter(pl.col("column") == header)["kind"].to_list() == [kind]


@pytest.mark.parametrize(("header", "cell", "expected"), [
    ("用电量（kWh）", "1200kWh", 0.12), ("用电量（kWh）", "1200KWH", 0.12), ("用电量（kWh）", "1200kwh", 0.12),
    ("用电量（KWH）", "1200kWh", 0.12), ("用电量", "12万kWh", 12.0), ("用电量", "12万KWH", 12.0),
])
def test_a_unit_in_a_cell_is_matched_whatever_its_letter_case(tmp_path, header, cell, expected):
    d = quirk_dir(tmp_path)
    (d / "energy.csv").write_text(f'统一社会信用代码,年份,综合能耗,{header}\n{C1},2021,1.0,"{cell}"\n', encoding="utf-8")
    inp = load(d)
    assert inp.rejects.height == 0, inp.rejects.to_dicts()
    assert inp.frame("energy")["electricity"].to_list() == [pytest.approx(expected)]


@pytest.mark.parametrize("cell", ["3000M2", "3000m2", "3000㎡"])
def test_square_metres_in_a_square_metre_column_whatever_the_case(tmp_path, cell):
    d = quirk_dir(tmp_path)
    write_csv(d / "land.csv", [["统一社会信用代码", "年份", "地块编号", "用地面积（M2）", "权属"], [C1, 2021, "P1", cell, "自有"]])
    inp = load(d)
    assert inp.rejects.height == 0, inp.rejects.to_dicts()
    assert inp.frame("land")["area_mu"].to_list() == [pytest.approx(4.5)]


@pytest.mark.parametrize(("written", "expected", "kind"), [
    ("2021.1", "2021-01-01", "ambiguous_month"), ("２０２１．１", "2021-01-01", "ambiguous_month"),
    ("2021.10", "2021-10-01", "partial_date"), ("2021.01", "2021-01-01", "partial_date"),
    ("2021.2", "2021-02-01", "partial_date"), ("2021.12", "2021-12-01", "partial_date"),
    ("2021.1.5", "2021-01-05", None),
])
def test_an_established_month_one_after_a_dot_keeps_only_its_year(tmp_path, written, expected, kind):
    """Excel shows the number 2021.10 (October) as 2021.1: "2021.1" may be January or October, so only
    its year is kept (the rules ask only for the year), and normalised.csv says so."""
    import datetime as dt
    d = quirk_dir(tmp_path)
    write_csv(d / "enterprises.csv", [ENT[0] + ["成立日期"], ENT[1] + [written]])
    inp = load(d)
    assert inp.rejects.height == 0, inp.rejects.to_dicts()
    assert inp.frame("enterprises")["established"].to_list() == [dt.date.fromisoformat(expected)]
    assert inp.normalised["kind"].to_list() == ([kind] if kind else [])


def test_an_established_month_typed_as_a_number_in_a_workbook(tmp_path):
    """2021.10 typed into a general-format Excel cell is the number 2021.1."""
    import datetime as dt
    from test_ingest_real import write_xlsx
    d = quirk_dir(tmp_path)
    (d / "enterprises.csv").unlink()
    write_xlsx(d / "enterprises.xlsx", {"名录": [ENT[0] + ["成立日期"], ENT[1] + [2021.10], ENT[2] + ["2021.10"]]})
    inp = load(d)
    assert inp.frame("enterprises").sort("uscc")["established"].to_list() == [dt.date(2021, 1, 1), dt.date(2021, 10, 1)]
    assert inp.normalised.sort("row")["kind"].to_list() == ["ambiguous_month", "partial_date"]


@pytest.mark.parametrize("written", ["13 14", "13\u300014", "13\u00a014", "1 314", "C13 14"])
def test_spaces_inside_an_industry_code_are_not_taken_out(tmp_path, written):
    """"13 14" joined would be 1314, a real class, made of two codes: the code is unknown, said so."""
    d = quirk_dir(tmp_path)
    write_csv(d / "enterprises.csv", [ENT[0], ENT[1][:3] + [written], ENT[2]])
    inp = load(d)
    assert inp.frame("enterprises").sort("uscc")["industry_code"].to_list() == [None, "3443"]
    assert [(r["row"], r["column"], r["action"]) for r in inp.rejects.to_dicts()] == [(2, "行业代码", "field_cleared")]
    assert "可能是两个代码" in inp.rejects["reason"][0]


@pytest.mark.parametrize(("table", "header", "cell", "after", "value"), [
    ("tax", "实缴税金", "1,234,567元", "123.4567", 123.4567), ("tax", "实缴税金", "0.0003亿元", "3.0", 3.0),
    ("energy", "用电量", "1200度", "0.12", 0.12), ("energy", "用电量", "1234567kWh", "123.4567", 123.4567),
    ("energy", "用电量（千瓦时）", "0.07万千瓦时", "700.0", 0.07), ("land", "用地面积（亩）", "1.1㎡", "0.00165", 0.00165),
    ("land", "用地面积（亩）", "2000㎡", "3.0", 3.0), ("land", "用地面积（亩）", "1000㎡", "1.5", 1.5),
])
def test_a_converted_value_has_no_float_noise(tmp_path, table, header, cell, after, value):
    """normalised.csv shows 123.4567, not 123.45670000000001 (12 significant digits kept)."""
    d = quirk_dir(tmp_path)
    if table == "land":
        write_csv(d / "land.csv", [["统一社会信用代码", "年份", "地块编号", header, "权属"], [C1, 2021, "P1", cell, "自有"]])
    elif table == "energy":
        (d / "energy.csv").write_text(f'统一社会信用代码,年份,综合能耗,{header}\n{C1},2021,1.0,"{cell}"\n', encoding="utf-8")
    else:
        (d / "tax.csv").write_text(f'统一社会信用代码,年份,{header}\n{C1},2021,"{cell}"\n', encoding="utf-8")
    inp = load(d)
    assert inp.rejects.height == 0, inp.rejects.to_dicts()
    assert inp.normalised.filter(pl.col("column") == header)["after"].to_list() == [after]
    column = {"tax": "tax_paid", "energy": "electricity", "land": "area_mu"}[table]
    assert inp.frame(table)[column].to_list() == [value]


# ---------------------------------------------------------------- why a file cannot be used

@pytest.mark.parametrize("sheet", ["2021年", "2021", "２０２１年度"])
def test_a_sheet_per_year_without_a_year_column_is_told_why(tmp_path, sheet):
    """Sheets named "2020年", "2021年" and no 年份 column were refused with only "缺少必需列 年份":
    the message now says the year is not read from a sheet's name, and what to do."""
    d = quirk_dir(tmp_path)
    wb = xlsxwriter.Workbook(d / "tax.xlsx")
    for name, value in ((sheet, 12.5), ("2022年", 7.0)):
        ws = wb.add_worksheet(name)
        ws.write_row(0, 0, ["统一社会信用代码", "实缴税金"])
        ws.write_row(1, 0, [C1, value])
    wb.close()
    with pytest.raises(InputError) as refused:
        load(d)
    message = str(refused.value)
    assert message.startswith(f"tax.xlsx[{sheet}]：缺少必需列 year（年份）"), message
    assert f"（工作表名“{sheet}”像是年份：年份不从工作表名读取" in message
    assert "请把各年的数据放在同一张工作表中，并加一列“年份”" in message


def test_a_sheet_not_named_for_a_year_gets_no_year_hint(tmp_path):
    d = quirk_dir(tmp_path)
    wb = xlsxwriter.Workbook(d / "tax.xlsx")
    ws = wb.add_worksheet("税收2021")  # a word besides the year: not said to be a year
    ws.write_row(0, 0, ["统一社会信用代码", "实缴税金"])
    wb.close()
    with pytest.raises(InputError, match="缺少必需列") as refused:
        load(d)
    assert "像是年份" not in str(refused.value)


@pytest.mark.parametrize(("written", "reason"), [
    ("1 234.5", "数字中间有空格（千位分隔？还是两个数？），不予猜测"),       # a space as thousands separator
    ("12 5", "数字中间有空格（千位分隔？还是两个数？），不予猜测"),          # or two numbers in one cell
    ("(12.5)", "括号表示的负数（会计写法），实缴税金不能为负数"),
    ("（1,234.5）", "括号表示的负数（会计写法），实缴税金不能为负数"),
    ("12.5%", "百分数不能作为金额"),
    ("12.5.3", "有不止一个小数点，不予猜测"),
    ("12,5", "逗号不是千位分隔符（每组应为三位数字），可能是小数逗号，不予猜测"),
    ("--", "缺少实缴税金（单元格中是表示缺失的记号，本列必填）"),             # a required column
    ("—", "缺少实缴税金（单元格中是表示缺失的记号，本列必填）"),
    ("12.5美元", "数字带有无法识别的单位或符号“美元”，不予猜测（请只填写数值；可识别并自动换算的单位：万元、元、千元、亿元、万、亿）"),
    ("¥12.5", "数字带有无法识别的单位或符号“¥”，不予猜测（请只填写数值；可识别并自动换算的单位：万元、元、千元、亿元、万、亿）"),
    ("约 12.5", "数字带有无法识别的单位或符号“约”，不予猜测（请只填写数值；可识别并自动换算的单位：万元、元、千元、亿元、万、亿）"),
    ("十二", "不是有效的数字"),                                              # no digit: nothing more is knowable
    ("12-", "不是有效的数字"),          # a sign, a dash for a minus or a separator is not a unit
    ("−12", "不是有效的数字"),
    ("—12", "不是有效的数字"),
    ("12,", "不是有效的数字"),
])
def test_a_number_that_is_not_read_says_why(tmp_path, written, reason):
    """Each of these was refused with only "不是有效的数字"; the way it is written says why, and the
    row is still refused (never guessed), naming the file, the Excel row and the column."""
    d = quirk_dir(tmp_path)
    (d / "tax.csv").write_text(f'统一社会信用代码,年份,实缴税金\n{C1},2021,"{written}"\n{C2},2021,3\n', encoding="utf-8")
    inp = load(d)
    assert inp.frame("tax")["tax_paid"].to_list() == [3.0]
    assert [(r["file"], r["row"], r["column"], r["reason"]) for r in inp.rejects.to_dicts()] == \
        [("tax.csv", 2, "实缴税金", reason)]


@pytest.mark.parametrize(("column", "written", "reason"), [
    ("年平均职工人数", "(12)", "括号表示的负数（会计写法），年平均职工人数不能为负数"),  # an integer column
    ("年平均职工人数", "1 200", "数字中间有空格（千位分隔？还是两个数？），不予猜测"),
    ("年平均职工人数", "12.5", "年平均职工人数应为整数"),
    ("主要污染物排放量", "3.5%", "写成了百分数，不知应读作原数还是除以 100，不予猜测（请填写数值本身）"),
    ("年平均职工人数", "120人", "数字带有无法识别的单位或符号“人”，不予猜测（请只填写数值）"),  # a column without units
])
def test_a_number_in_another_kind_of_column_says_why(tmp_path, column, written, reason):
    d = quirk_dir(tmp_path)
    write_csv(d / "tax.csv", TAX)
    (d / "stats.csv").write_text(f'统一社会信用代码,年份,规模,营业收入,{column}\n{C1},2021,规上,100,"{written}"\n',
                                 encoding="utf-8")
    inp = load(d)
    assert [(r["row"], r["column"], r["reason"]) for r in inp.rejects.to_dicts() if r["file"] == "stats.csv"] == \
        [(2, column, reason)]


@pytest.mark.parametrize(("written", "expected"), [("1.2E+05", 120000.0), ("1.2e5", 120000.0), ("1.5E-1", 0.15),
                                                   ("1.2E+05元", 12.0)])
def test_scientific_notation_from_excel_is_read(tmp_path, written, expected):
    """Excel shows and saves a large or small number as 1.2E+05: a number, read as such."""
    d = quirk_dir(tmp_path)
    (d / "tax.csv").write_text(f'统一社会信用代码,年份,实缴税金\n{C1},2021,"{written}"\n', encoding="utf-8")
    inp = load(d)
    assert inp.rejects.height == 0, inp.rejects.to_dicts()
    assert inp.frame("tax")["tax_paid"].to_list() == [pytest.approx(expected)]


def test_an_accounting_negative_where_a_negative_is_allowed_says_how_to_write_it(tmp_path):
    """单位产品能耗 may be negative (a net energy producer): "(12.5)" is still not read, and the
    reason shows the plain way to write it."""
    d = quirk_dir(tmp_path)
    write_csv(d / "tax.csv", TAX)
    (d / "product_energy.csv").write_text(f'统一社会信用代码,年份,产品代码,产量,单位产品能耗\n{C1},2021,P1,10,"(12.5)"\n'
                                          f'{C1},2021,P2,10,-3.5\n', encoding="utf-8")
    inp = load(d)
    assert inp.frame("product_energy")["unit_consumption"].to_list() == [-3.5]
    assert [(r["row"], r["column"], r["reason"]) for r in inp.rejects.to_dicts()] == \
        [(2, "单位产品能耗", "括号表示的负数（会计写法），请写成 -12.5")]
