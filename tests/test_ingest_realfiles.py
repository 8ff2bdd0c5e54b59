"""Department files as a county bureau receives them, in kinds the other ingest tests do not show:
a header cell holding a line break (Alt+Enter) in a CSV, a unit row under the header, notes below
the table.  The rule throughout: a number is never read in the wrong unit; a row that is not a
record is named as such; nothing vanishes."""
from __future__ import annotations

from datetime import date

import pytest

from test_ingest_real import C1, C2, ENT, load, write_csv, write_xlsx


def _tax_csv(d, text: str, encoding: str = "utf-8"):
    write_csv(d / "enterprises.csv", ENT)
    (d / "tax.csv").write_bytes(text.encode(encoding))


@pytest.mark.parametrize("first", ["统一社会信用代码", '"统一社会\n信用代码"'], ids=["plain", "quoted-break"])
@pytest.mark.parametrize("encoding", ["utf-8", "gb18030"])
def test_a_csv_header_cell_with_a_line_break_keeps_its_unit(tmp_path, first, encoding):
    # Excel saves a header typed with Alt+Enter as a quoted cell spanning two lines; its unit is on the second
    _tax_csv(tmp_path, f'{first},年份,"实缴税金\n（元）"\n{C1},2021,125000\n{C2},2021,"30,000"\n', encoding)
    inp = load(tmp_path)
    assert inp.frame("tax").sort("uscc")["tax_paid"].to_list() == [12.5, 3.0]  # 元 → 万元, never 125000 万元
    assert inp.files["tax"].headers["tax_paid"] == "实缴税金\n（元）"
    assert inp.rejects.height == 0
    # rows are numbered as Excel shows them: the two-line header is row 1
    assert inp.normalised.select("row", "before").rows() == [(3, "30,000")]


def test_a_quoted_title_with_a_line_break_above_the_header_keeps_excel_row_numbers(tmp_path):
    _tax_csv(tmp_path, f'"2021年度\n税收汇总表",,\n统一社会信用代码,年份,实缴税金\n{C1},2021,12.5\n{C2},2021,-3\n')
    inp = load(tmp_path)
    assert inp.files["tax"].header_row == 2
    assert inp.rejects.select("row", "column").rows() == [(4, "实缴税金")]


@pytest.mark.parametrize("unit_row", [",,元", ",,（元）", "—,—,元", "单位,年,元", "单位：元,,"])
def test_a_unit_row_under_the_header_is_the_columns_unit(tmp_path, unit_row):
    # statistics-style forms put the units in a row of their own under the names
    _tax_csv(tmp_path, f"统一社会信用代码,年份,实缴税金\n{unit_row}\n{C1},2021,125000\n{C2},2021,-3\n")
    inp = load(tmp_path)
    assert inp.frame("tax")["tax_paid"].to_list() == [12.5]  # never 125000 万元
    # the unit row is no record; the column is named with its unit ("实缴税金(元)")
    assert [(r, c[:4]) for r, c in inp.rejects.select("row", "column").rows()] == [(4, "实缴税金")]


def test_a_unit_row_in_a_workbook_with_a_merged_code_header(tmp_path):
    import xlsxwriter
    write_csv(tmp_path / "enterprises.csv", ENT)
    wb = xlsxwriter.Workbook(tmp_path / "energy.xlsx")
    ws = wb.add_worksheet("能耗")
    ws.merge_range(0, 0, 1, 0, "统一社会信用代码")
    ws.merge_range(0, 1, 1, 1, "年份")
    ws.write_row(0, 2, ["综合能耗", "用电量"])
    ws.write_row(1, 2, ["千克标准煤", "千瓦时"])
    ws.write_row(2, 0, [C1, 2021, 2500, 30000])
    wb.close()
    inp = load(tmp_path)
    assert inp.frame("energy").select("energy_tce", "electricity").rows() == [(2.5, 3.0)]
    assert inp.rejects.height == 0


@pytest.mark.parametrize("unit_row, words", [(",,亩", "单位“亩”无法识别"), (",,元", "第 2 行是单位行")])
def test_a_unit_row_that_does_not_fit_stops_the_table(tmp_path, unit_row, words):
    from screening.errors import InputError
    header = "统一社会信用代码,年份,实缴税金" + ("（万元）" if "元" in unit_row else "")
    _tax_csv(tmp_path, f"{header}\n{unit_row}\n{C1},2021,125000\n")
    with pytest.raises(InputError, match=words):
        load(tmp_path)


@pytest.mark.parametrize("line", ["金额单位：元,,", "（单位：元）,,", "2021年度税收汇总表（单位：元）,,",
                                  "填报单位：乐清市税务局　　单位：元,,", "单位：元、亩,,"])
def test_a_unit_line_above_the_header_as_bureaus_write_it(tmp_path, line):
    _tax_csv(tmp_path, f"{line}\n统一社会信用代码,年份,实缴税金\n{C1},2021,125000\n")
    inp = load(tmp_path)
    assert inp.frame("tax")["tax_paid"].to_list() == [12.5]  # never 125000 万元
    assert inp.files["tax"].units["tax_paid"]["unit"] == "元"


def test_a_unit_line_naming_several_units_gives_each_column_its_own(tmp_path):
    write_csv(tmp_path / "enterprises.csv", ENT)
    (tmp_path / "land.csv").write_text(f"单位：元、平方米\n统一社会信用代码,年份,地块编号,用地面积,权属\n"
                                       f"{C1},2021,P1,2000,自有\n", encoding="utf-8")
    assert load(tmp_path).frame("land")["area_mu"].to_list() == [3.0]  # 2000 m², never 2000 亩


@pytest.mark.parametrize("lines", ["能耗单位：千克标准煤,,电量单位：千瓦时,", "能耗单位：千克标准煤,,,\n电量单位：千瓦时,,,",
                                   '"能耗单位：千克标准煤，电量单位：千瓦时",,,', "电量单位：千瓦时,,,\n能耗单位：千克标准煤,,,"],
                         ids=["two-cells", "two-rows", "two-clauses", "two-rows-other-order"])
def test_unit_lines_for_different_columns_each_keep_their_kind(tmp_path, lines):
    # one line per kind: the second never drops the first (2500 千克标准煤 is 2.5 吨, never 2500 吨)
    write_csv(tmp_path / "enterprises.csv", ENT)
    (tmp_path / "energy.csv").write_text(f"{lines}\n统一社会信用代码,年份,综合能耗,用电量\n{C1},2021,2500,30000\n",
                                         encoding="utf-8")
    assert load(tmp_path).frame("energy").select("energy_tce", "electricity").rows() == [(2.5, 3.0)]


@pytest.mark.parametrize("line", ["2021年度亩均税收（单位：元/亩）,,", "单位：元/平方米,,"])
def test_a_ratio_unit_is_no_unit_of_an_amount(tmp_path, line):
    # 元/亩 is 元 per 亩: the amounts below are not in 元 (12.5 stays 12.5 万元, never 0.00125)
    _tax_csv(tmp_path, f"{line}\n统一社会信用代码,年份,实缴税金\n{C1},2021,12.5\n")
    assert load(tmp_path).frame("tax")["tax_paid"].to_list() == [12.5]


def test_the_unit_line_nearest_the_header_wins_for_its_kind(tmp_path):
    _tax_csv(tmp_path, f"2021年税收（单位：万元）,,\n金额单位：元,,\n统一社会信用代码,年份,实缴税金\n{C1},2021,125000\n")
    assert load(tmp_path).frame("tax")["tax_paid"].to_list() == [12.5]


def test_a_unit_line_never_changes_a_header_that_names_its_unit(tmp_path):
    # "用地面积（亩）" says 亩: a title's "（单位：平方米）" is for other columns, never 30 亩 read as 30 m²
    write_csv(tmp_path / "enterprises.csv", ENT)
    (tmp_path / "land.csv").write_text(f"2021年用地情况（单位：万元、平方米）\n统一社会信用代码,年份,地块编号,用地面积（亩）,权属\n"
                                       f"{C1},2021,P1,30,自有\n", encoding="utf-8")
    assert load(tmp_path).frame("land")["area_mu"].to_list() == [30.0]


def test_a_unit_row_contradicting_a_header_that_names_its_unit_stops_the_table(tmp_path):
    from screening.errors import InputError
    write_csv(tmp_path / "enterprises.csv", ENT)
    (tmp_path / "land.csv").write_text(f"统一社会信用代码,年份,地块编号,用地面积（亩）,权属\n,,,平方米,\n"
                                       f"{C1},2021,P1,30,自有\n", encoding="utf-8")
    with pytest.raises(InputError, match="两个不同的单位（亩、平方米）"):
        load(tmp_path)


@pytest.mark.parametrize("line", ["填报单位：乐清市税务局,,", "单位名称：乐清市税务局,,"])
def test_a_reporting_body_is_no_unit(tmp_path, line):
    _tax_csv(tmp_path, f"{line}\n统一社会信用代码,年份,实缴税金\n{C1},2021,12.5\n")
    inp = load(tmp_path)
    assert inp.frame("tax")["tax_paid"].to_list() == [12.5]
    assert "tax_paid" not in inp.files["tax"].units


def test_a_unit_written_with_the_word_unit_in_the_header(tmp_path):
    _tax_csv(tmp_path, f"统一社会信用代码,年份,实缴税金（单位：元）\n{C1},2021,125000\n")
    assert load(tmp_path).frame("tax")["tax_paid"].to_list() == [12.5]


def test_a_unit_in_one_header_is_that_columns_only(tmp_path):
    # "研发经费（单位：元）" names its own unit: 营业收入 beside it stays in 万元 (100, never 0.01)
    write_csv(tmp_path / "enterprises.csv", ENT)
    (tmp_path / "stats.csv").write_text(f"统一社会信用代码,年份,规模,营业收入,研发经费（单位：元）\n{C1},2021,规上,100,50000\n",
                                        encoding="utf-8")
    assert load(tmp_path).frame("stats").select("revenue", "rd_expense").rows() == [(100.0, 5.0)]


@pytest.mark.parametrize("note", ["填表说明：1.税金单位为万元；2.按入库口径", "填报说明：无", "附注：含退税",
                                  "注1：不含个人", "联系人：王某", "联系电话：0577-1234567", "统计负责人：李某"])
def test_notes_under_the_table_are_named_as_such(tmp_path, note):
    _tax_csv(tmp_path, f"统一社会信用代码,年份,实缴税金\n{C1},2021,12.5\n{note},,\n", "gbk")
    inp = load(tmp_path)
    assert inp.rejects.select("row", "column", "reason").rows() == [(3, "（整行）", "表尾说明行，不是数据行，未读取")]
    assert inp.normalised.height == 0  # a row not read lists no cell


@pytest.mark.parametrize("note", ["联系人：王某 13800000000", "附注：含3家企业", "说明：按季收取"])
def test_a_record_whose_note_starts_like_a_sign_off_is_a_record(tmp_path, note):
    # a township's row of the measures ledger has no code; its 备注 is a note, the row is money to account for
    from screening.measures.ledger import read_ledger
    path = tmp_path / "measure_ledger.csv"
    path.write_text("年份,季度,类别,类型,统一社会信用代码,企业名称,乡镇街道,计费量,金额,备注\n"
                    f"2022,1,加价收取,电,,,柳市镇,1000,50,{note}\n"
                    "制表人：张三,,,,,,,,,\n", encoding="utf-8")
    good, rejects = read_ledger(path)
    assert good.select("township", "amount", "row").rows() == [("柳市镇", 50.0, 2)]
    assert rejects.select("row", "reason").rows() == [(3, "表尾说明行，不是数据行，未读取")]


# ---------------------------------------------------------------- workbooks written by programs

def test_an_xlsx_formula_without_a_computed_value_is_a_bad_value_never_missing(tmp_path):
    import re
    import zipfile

    import xlsxwriter
    write_csv(tmp_path / "enterprises.csv", ENT)
    path = tmp_path / "stats.xlsx"
    wb = xlsxwriter.Workbook(path)
    ws = wb.add_worksheet("Sheet1")
    ws.write_row(0, 0, ["统一社会信用代码", "年份", "规模", "营业收入", "工业增加值"])
    ws.write_row(1, 0, [C1, 2021, "规上", 100])
    ws.write_formula(1, 4, "=D2*0.2", None, 20)          # computed: its value is read
    ws.write_row(2, 0, [C2, 2021, "规上", 100])
    ws.write_formula(2, 4, "=D3*0.2", None, "REMOVE")   # the value taken out below
    wb.close()
    with zipfile.ZipFile(path) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    sheet = parts["xl/worksheets/sheet1.xml"]
    parts["xl/worksheets/sheet1.xml"] = re.sub(rb"<v>REMOVE</v>", b"", sheet.replace(b't="str"', b""))
    with zipfile.ZipFile(path, "w") as z:
        for name, data in parts.items():
            z.writestr(name, data)
    inp = load(tmp_path)
    assert inp.frame("stats").select("uscc", "value_added").rows() == [(C1, 20.0)]
    [reject] = inp.rejects.to_dicts()
    assert (reject["row"], reject["column"], reject["value"]) == (3, "工业增加值", "=D3*0.2")
    assert "没有它的计算结果" in reject["reason"]


def test_an_xlsx_formula_whose_computed_value_is_empty_text_is_a_blank_cell(tmp_path):
    # Excel saves =IF(…,"",…) that came out empty as t="str" with an empty <v></v>: computed, blank
    import zipfile

    import xlsxwriter
    write_csv(tmp_path / "enterprises.csv", ENT)
    wb = xlsxwriter.Workbook(tmp_path / "stats.xlsx")
    ws = wb.add_worksheet("Sheet1")
    ws.write_row(0, 0, ["统一社会信用代码", "年份", "规模", "营业收入", "研发经费"])
    ws.write_row(1, 0, [C1, 2021, "规上", 100])
    ws.write_formula(1, 4, '=IF(D2>1000,D2*0.1,"")', None, "")
    wb.close()
    with zipfile.ZipFile(tmp_path / "stats.xlsx") as z:
        parts = {n: z.read(n) for n in z.namelist()}
    sheet = parts["xl/worksheets/sheet1.xml"]
    assert b'<c r="E2"><f>' in sheet and b"<v></v>" in sheet
    parts["xl/worksheets/sheet1.xml"] = sheet.replace(b'<c r="E2">', b'<c r="E2" t="str">')  # as Excel writes it
    with zipfile.ZipFile(tmp_path / "stats.xlsx", "w") as z:
        for name, data in parts.items():
            z.writestr(name, data)
    inp = load(tmp_path)
    assert inp.frame("stats").select("uscc", "rd_expense").rows() == [(C1, None)]
    assert inp.rejects.height == 0


# ---------------------------------------------------------------- HTML saved as .xls (government systems)

def _html(d, body: str, name: str = "energy.xls") -> None:
    write_csv(d / "enterprises.csv", ENT)
    (d / name).write_text(f'<html><head><meta charset="utf-8"></head><body>{body}</body></html>', encoding="utf-8")


def _tr(*cells: str) -> str:
    return "<tr>" + "".join(c if c.startswith("<t") else f"<td>{c}</td>" for c in cells) + "</tr>"


def test_html_rowspan_fills_the_rows_it_covers(tmp_path):
    # one firm's code, year and tenure spanning its two parcels: the second row's cells stay in their columns
    _html(tmp_path, "<table>" + _tr("统一社会信用代码", "年份", "地块编号", "用地面积（亩）", "权属")
          + _tr(f'<td rowspan="2">{C1}</td>', '<td rowspan="2">2021</td>', "P1", "2", '<td rowspan="2">自有</td>')
          + _tr("P2", "3") + _tr(C2, "2021", "P1", "5", "租赁") + "</table>", "land.xls")
    inp = load(tmp_path)
    assert inp.rejects.height == 0
    assert sorted(inp.frame("land").select("uscc", "year", "parcel_id", "area_mu", "tenure").rows()) == [
        (C1, 2021, "P1", 2.0, "自有"), (C1, 2021, "P2", 3.0, "自有"), (C2, 2021, "P1", 5.0, "租赁")]
    assert inp.normalised.filter(kind="merged_cell").select("row", "column").rows() == [
        (3, "年份"), (3, "权属"), (3, "统一社会信用代码")]


def test_html_colspan_keeps_the_columns_below_in_place(tmp_path):
    # 综合能耗 over two sub-columns: its second value must never be read as 用电量
    _html(tmp_path, "<table>" + _tr('<td colspan="5">2021年能耗表</td>')
          + _tr("统一社会信用代码", "年份", '<td colspan="2">综合能耗</td>', "用电量")
          + _tr("", "", "当量值", "等价值", "") + _tr(C1, "2021", "1.5", "3.2", "10") + "</table>")
    from screening.errors import InputError
    with pytest.raises(InputError, match="表头“综合能耗”占了相邻的多列（合并单元格跨列），无法确定哪一列是综合能耗"):
        load(tmp_path)


def test_an_xlsx_header_merged_across_two_columns_says_so(tmp_path):
    import xlsxwriter
    write_csv(tmp_path / "enterprises.csv", ENT)
    wb = xlsxwriter.Workbook(tmp_path / "tax.xlsx")
    ws = wb.add_worksheet("Sheet1")
    ws.write_row(0, 0, ["统一社会信用代码", "年份"])
    ws.merge_range(0, 2, 0, 3, "实缴税金")
    ws.write_row(1, 0, [C1, 2021, 12.5, 3])
    wb.close()
    from screening.errors import InputError
    with pytest.raises(InputError, match="表头“实缴税金”占了相邻的多列"):
        load(tmp_path)


def test_html_the_data_table_after_a_query_table_and_inside_a_layout_table(tmp_path):
    data = _tr("统一社会信用代码", "年份", "综合能耗", "用电量") + _tr(C1, "2021", "1.5", "10")
    _html(tmp_path, "<table>" + _tr("查询条件：2021年") + "</table>"
          + f"<table><tr><td>导出结果</td></tr><tr><td><table>{data}</table></td></tr></table>")
    inp = load(tmp_path)
    assert inp.frame("energy").select("energy_tce", "electricity").rows() == [(1.5, 10.0)]


def test_html_from_excel_reads_the_full_number_behind_a_rounded_text(tmp_path):
    _html(tmp_path, "<table>" + _tr("统一社会信用代码", "年份", "综合能耗", "用电量")
          + _tr(C1, "2021", '<td x:num="1.456">1.5</td>', "<td x:num>10</td>") + "</table>")
    assert load(tmp_path).frame("energy").select("energy_tce", "electricity").rows() == [(1.456, 10.0)]


def test_html_from_excel_reads_the_shown_text_when_it_is_no_rounding(tmp_path):
    # x:num is the value behind a rounded number only: "0610" (a code kept with its zero) and a date
    # "2021/1/1" (x:num 44197) are read as shown, as before
    hdr = ENT[0] + ["成立日期"]
    (tmp_path / "enterprises.xls").write_text(
        "<table>" + _tr(*hdr) + _tr(C1, "甲", "柳市镇", '<td x:num="610">0610</td>', '<td x:num="44197">2021/1/1</td>')
        + "</table>", encoding="utf-8")
    inp = load(tmp_path)
    assert inp.frame("enterprises").select("industry_code", "established").rows() == [("0610", date(2021, 1, 1))]
    assert inp.rejects.height == 0
    assert inp.normalised.height == 0  # never "44197" read as a date serial


# ---------------------------------------------------------------- old .xls (BIFF8), built record by record

def _boolerr(row: int, column: int, code: int) -> bytes:
    import struct

    import xls_bombs as xb
    return xb.record(0x0205, struct.pack("<HHHBB", row, column, 0, code, 1))


def _error_formula(row: int, column: int, code: int) -> bytes:
    """A FORMULA record whose cached result is an error (=1/0 → #DIV/0!): tokens ptgInt 1, ptgInt 0, ptgDiv."""
    import struct

    import xls_bombs as xb
    tokens = b"\x1e\x01\x00\x1e\x00\x00\x06"
    result = bytes([2, 0, code, 0, 0, 0, 0xFF, 0xFF])
    return xb.record(0x0006, struct.pack("<HHH", row, column, 0) + result + struct.pack("<HIH", 0, 0, len(tokens)) + tokens)


def _merged(*ranges: tuple[int, int, int, int]) -> bytes:
    import struct

    import xls_bombs as xb
    return xb.record(0x00E5, struct.pack("<H", len(ranges)) + b"".join(struct.pack("<HHHH", *r) for r in ranges))


def _cells(rows: list[list], first_row: int = 0, first_col: int = 0) -> bytes:
    import xls_bombs as xb
    out = [xb.dimensions(first_row + len(rows), first_col + max(map(len, rows)))]
    for r, values in enumerate(rows):
        for c, v in enumerate(values):
            if v is not None:
                out.append(xb.number(first_row + r, first_col + c, float(v)) if isinstance(v, (int, float))
                           else xb.label(first_row + r, first_col + c, str(v)))
    return b"".join(out)


@pytest.mark.parametrize("first_col", [0, 1], ids=["from-A", "from-B"])
def test_xls_error_cells_are_bad_values_never_missing(tmp_path, first_col):
    import xls_bombs as xb
    write_csv(tmp_path / "enterprises.csv", ENT)
    rows = [["统一社会信用代码", "年份", "规模", "营业收入", "工业增加值"], [C1, 2021, "规上", 100, 20],
            [C2, 2021, "规上", 50, None], [C1, 2020, "规上", None, 5]]
    sheet = _cells(rows, first_col=first_col) + _boolerr(2, first_col + 4, 0x2A) + _error_formula(3, first_col + 3, 0x07)
    xb.workbook(tmp_path / "stats.xls", {"Sheet1": sheet})
    inp = load(tmp_path)
    # the optional 工业增加值 holding #N/A is a bad value (contract), not a missing one
    assert inp.rejects.select("row", "column", "reason").rows() == [
        (3, "工业增加值", "单元格为 Excel 错误值 #N/A"), (4, "营业收入", "单元格为 Excel 错误值 #DIV/0!")]
    assert inp.frame("stats")["uscc"].to_list() == [C1]


def test_xls_merged_cells_take_the_ranges_value(tmp_path):
    import xls_bombs as xb
    write_csv(tmp_path / "enterprises.csv", ENT)
    rows = [["用地情况", None, None, None, None], ["统一社会信用代码", "年份", "地块编号", "用地面积（亩）", "权属"],
            [C1, 2021, "P1", 2, "自有"], [None, None, "P2", 3, None], [C2, 2021, "P1", 5, "租赁"]]
    # the title over A1:E1; C1's code, year and tenure merged down over its two parcels
    sheet = _cells(rows) + _merged((0, 0, 0, 4), (2, 3, 0, 0), (2, 3, 1, 1), (2, 3, 4, 4))
    xb.workbook(tmp_path / "land.xls", {"Sheet1": sheet})
    inp = load(tmp_path)
    assert inp.rejects.height == 0
    assert sorted(inp.frame("land").select("uscc", "parcel_id", "area_mu", "tenure").rows()) == [
        (C1, "P1", 2.0, "自有"), (C1, "P2", 3.0, "自有"), (C2, "P1", 5.0, "租赁")]
    assert inp.normalised.filter(kind="merged_cell").select("row", "column").rows() == [
        (4, "年份"), (4, "权属"), (4, "统一社会信用代码")]


def test_xls_merged_ranges_that_overlap_are_refused_before_filling(tmp_path):
    # ranges never overlap in a sound file; thousands over one column made millions of filled cells
    import xls_bombs as xb

    from screening import filesafety
    write_csv(tmp_path / "enterprises.csv", ENT)
    rows = [["统一社会信用代码", "年份", "实缴税金"]] + [[C1, 2021 - k, k] for k in range(10)]
    overlapping = [(1, 10 - k % 9, 0, 0) for k in range(40)] + [(1, 10, 1, 1)] * 3  # (r1, r2, c1, c2)
    xb.workbook(tmp_path / "tax.xls", {"Sheet1": _cells(rows) + _merged(*overlapping)})
    with pytest.raises(filesafety.FileUnreadable, match="合并单元格区域相互重叠"):
        load(tmp_path)


def test_xls_a_merged_range_written_twice_counts_once(tmp_path):
    import xls_bombs as xb
    write_csv(tmp_path / "enterprises.csv", ENT)
    rows = [["统一社会信用代码", "年份", "实缴税金"], [C1, 2021, 1], [None, 2020, 2]]
    xb.workbook(tmp_path / "tax.xls", {"Sheet1": _cells(rows) + _merged(*[(1, 2, 0, 0)] * 50)})
    inp = load(tmp_path)
    assert inp.frame("tax").select("uscc", "year").sort("year").rows() == [(C1, 2020), (C1, 2021)]


def test_html_spans_that_would_make_a_huge_grid_are_refused(tmp_path):
    from screening import filesafety
    cell = '<td colspan="1000" rowspan="1000">x</td>'
    _html(tmp_path, "<table>" + _tr("统一社会信用代码", "年份", "综合能耗", "用电量") + f"<tr>{cell * 2}</tr></table>")
    with pytest.raises(filesafety.FileTooLarge, match="合并单元格"):
        load(tmp_path)


@pytest.mark.parametrize("cell, count", [('<td colspan="1000">1</td>', 17), ("<td>1</td>", 16_385)], ids=["spans", "cells"])
def test_an_html_row_wider_than_excel_allows_is_refused(tmp_path, cell, count):
    # a few KB of colspan="1000" must not make a frame of a million columns (seconds and GBs)
    from screening import filesafety
    _html(tmp_path, "<table>" + _tr("统一社会信用代码", "年份", "综合能耗", "用电量") + f"<tr>{cell * count}</tr></table>")
    with pytest.raises(filesafety.FileTooLarge, match="第 2 行超过 16,384 列"):
        load(tmp_path)


def test_html_with_thousands_of_nested_tables_is_refused(tmp_path):
    # each table is looked at for the header: 200,000 nested ones took seconds per MB
    from screening import filesafety
    _html(tmp_path, "<table><tr><td>x" * 1001)
    with pytest.raises(filesafety.FileTooLarge, match="表格超过 1,000 个"):
        load(tmp_path)


# ---------------------------------------------------------------- file names bureaus send

def test_wps_et_and_text_files_named_for_a_table_are_read_by_their_bytes(tmp_path):
    write_csv(tmp_path / "enterprises.csv", ENT)
    write_xlsx(tmp_path / "Tax.ET", {"Sheet1": [["统一社会信用代码", "年份", "实缴税金"], [C1, 2021, 1.5]]})
    (tmp_path / "energy.txt").write_bytes(f"统一社会信用代码\t年份\t综合能耗\t用电量\n{C1}\t2021\t2\t3\n".encode("gbk"))
    inp = load(tmp_path)
    assert inp.frame("tax")["tax_paid"].to_list() == [1.5]
    assert inp.files["tax"].note is None  # an .et holds an .xls or an .xlsx: either is what it says
    assert inp.frame("energy").select("energy_tce", "electricity").rows() == [(2.0, 3.0)]


@pytest.mark.parametrize("name, words", [("tax.ods", "OpenDocument"), ("tax.xlsb", "xlsb"), ("tax.pdf", "PDF")])
def test_a_table_sent_in_a_format_not_read_is_an_error_never_passed_over(tmp_path, name, words):
    from screening.errors import InputError
    write_csv(tmp_path / "enterprises.csv", ENT)
    (tmp_path / name).write_bytes(b"PK\x03\x04 not read")
    with pytest.raises(InputError, match=f"{name}：.*{words}.*另存为 tax.xlsx 或 tax.csv"):
        load(tmp_path)


# ---------------------------------------------------------------- CSV rows with more cells than the header

def test_a_csv_row_with_an_unquoted_comma_is_rejected_alone_never_cut(tmp_path):
    # "12,5" (a decimal comma) unquoted: 12 must not be read, nor 5; the other rows are read
    _tax_csv(tmp_path, f"统一社会信用代码,年份,实缴税金\n{C1},2021,12,5\n{C2},2021,3\n")
    inp = load(tmp_path)
    assert inp.frame("tax").select("uscc", "tax_paid").rows() == [(C2, 3.0)]
    [reject] = inp.rejects.to_dicts()
    assert (reject["file"], reject["row"], reject["column"], reject["value"]) == ("tax.csv", 2, "（整行）", "5")
    assert "多出 1 个单元格" in reject["reason"] and "未加引号的逗号" in reject["reason"]


def test_a_parcel_row_not_read_for_its_extra_cells_makes_that_land_unknown(tmp_path):
    write_csv(tmp_path / "enterprises.csv", ENT)
    (tmp_path / "land.csv").write_text(f"统一社会信用代码,年份,地块编号,用地面积（亩）,权属\n{C1},2021,P1,2,自有\n"
                                       f"{C1},2021,P2,1,500,自有\n{C2},2021,P1,5,租赁\n", encoding="utf-8")
    inp = load(tmp_path)
    assert inp.rejects.select("row", "column").rows() == [(3, "（整行）")]
    ent = inp.tables["enterprises"]
    c1 = ent.filter(uscc=C1)["firm_id"].item()
    assert inp.land_incomplete.rows() == [(c1, 2021)]  # never 2 亩 from the one parcel read


def test_rejected_product_rows_are_kept_as_unknown_products(tmp_path):
    # rule 4 reads them (sql/rules/energy_limit_exceeded.sql): a bad unit consumption keeps its
    # product; a bad product cell or a row not read (extra cells) has no product; a firm not in
    # the registry or a row without a readable year is left out; a repeated key keeps its product
    write_csv(tmp_path / "enterprises.csv", ENT)
    from screening.uscc import check_char
    unknown = "91330382000000099" + check_char("91330382000000099")  # a valid code, not in the registry
    (tmp_path / "product_energy.csv").write_text(
        "统一社会信用代码,年份,产品代码,产量,单位产品能耗\n"
        f"{C1},2021,clinker,1000,#N/A\n{C1},2021,#N/A,1000,50\n{C2},2021,glass,1,5,0\n"
        f"{C2},2021,cu_rod,1000,7\n{C2},2021,cu_rod,1000,8\n{unknown},2021,glass,1000,abc\n"
        f"{C2},二〇二一,glass,1000,abc\n{C2},2020,glass,1000,9\n", encoding="utf-8")
    inp = load(tmp_path)
    ids = dict(inp.tables["enterprises"].select("uscc", "firm_id").iter_rows())
    assert inp.product_rejected.rows() == sorted([(ids[C1], 2021, "clinker"), (ids[C1], 2021, None),
                                                  (ids[C2], 2021, "cu_rod"), (ids[C2], 2021, None)],
                                                 key=lambda r: (r[0], r[1], r[2] is None, r[2] or ""))
    assert inp.frame("product_energy").select("uscc", "year", "product").rows() == [
        (C2, 2021, "cu_rod"), (C2, 2020, "glass")]


def test_every_row_longer_than_the_header_stops_the_file(tmp_path):
    from screening.errors import InputError
    _tax_csv(tmp_path, f"统一社会信用代码,年份,实缴税金\n{C1},2021,12,备注\n{C2},2021,3,备注\n")
    with pytest.raises(InputError, match="每一行数据都比表头多出单元格（第 2 行多出“备注”）"):
        load(tmp_path)


def test_rows_not_read_are_reported_by_every_table_reader_projects_too(tmp_path):
    # the projects table is checked by its own command: a 合计 row and a row with an unquoted comma
    # are named in its rejects like everywhere else, never dropped unsaid
    from screening.projects import read_projects
    (tmp_path / "projects.csv").write_text(
        "项目代码,项目名称,乡镇街道,行业代码,年综合能耗,年工业增加值\n"
        "2201-330382-04-01-000001,甲项目,柳市镇,3823,1200,3000\n"
        "2201-330382-04-01-000002,乙项目,柳市镇,3823,800,2,000\n"
        "合计,,,,2000,5000\n", encoding="utf-8")
    good, rejects, _ = read_projects(tmp_path)
    assert good["project_id"].to_list() == ["2201-330382-04-01-000001"]
    assert rejects.select("row", "column").rows() == [(3, "（整行）"), (4, "（整行）")]
    assert rejects["reason"][1] == "合计行，不是数据行，未读取"


def test_an_unclosed_quote_names_its_row_in_chinese(tmp_path):
    from screening import filesafety
    _tax_csv(tmp_path, f'"2021年\n税收表",,\n统一社会信用代码,年份,实缴税金\n{C1},2021,1\n{C2},2021,"12.5\n{C1},2020,3\n')
    with pytest.raises(filesafety.FileUnreadable, match="tax.csv：第 4 行附近的引号不成对"):
        load(tmp_path)


# ---------------------------------------------------------------- values read in another form are listed

def test_values_typed_in_another_form_are_listed_in_normalised(tmp_path):
    from test_ingest_real import C3
    ent = [ENT[0], [C1.lower(), *ENT[1][1:3], "C3823"], ENT[2], ENT[3]]
    write_csv(tmp_path / "enterprises.csv", ent)
    write_csv(tmp_path / "tax.csv", [["统一社会信用代码", "年份", "实缴税金"], [C2.lower(), 2021, 1]])
    write_csv(tmp_path / "evaluations.csv", [["统一社会信用代码", "年份", "评价等级"], [C1, 2021, "C类"], [C3, 2021, "Ｄ级"]])
    inp = load(tmp_path)
    assert inp.rejects.height == 0
    got = inp.normalised.select("file", "row", "column", "before", "after", "kind").rows()
    assert sorted(got) == sorted([
        ("enterprises.csv", 2, "统一社会信用代码", C1.lower(), C1, "letter_case"),
        ("enterprises.csv", 2, "行业代码", "C3823", "3823", "code_letter"),
        ("tax.csv", 2, "统一社会信用代码", C2.lower(), C2, "letter_case"),
        ("evaluations.csv", 2, "评价等级", "C类", "C", "enum_word"),
        ("evaluations.csv", 3, "评价等级", "Ｄ级", "D", "full_width"),  # one line per cell, the value as read
    ])


def test_a_value_that_fails_its_check_is_never_listed_as_read_in_another_form(tmp_path):
    # "C 3823" is rejected (not 4 digits): normalised.csv must not say it was read as " 3823"
    ent = [ENT[0], [*ENT[1][:3], "C 3823"], [*ENT[2][:3], "C3823"], ENT[3]]
    write_csv(tmp_path / "enterprises.csv", ent)
    write_csv(tmp_path / "evaluations.csv", [["统一社会信用代码", "年份", "评价等级"], [C1, 2021, "E类"], [C2, 2021, "b级"]])
    inp = load(tmp_path)
    assert inp.rejects.select("file", "row", "column").sort("file").rows() == [
        ("enterprises.csv", 2, "行业代码"), ("evaluations.csv", 2, "评价等级")]
    assert sorted(inp.normalised.select("file", "row", "column", "after").rows()) == [
        ("enterprises.csv", 3, "行业代码", "3823"), ("evaluations.csv", 3, "评价等级", "B")]
