"""Real department files (issue 12): each kind of quirk, built by hand, read like the clean file.

Every test writes a clean input and the same data with one quirk, and asserts that the
validated tables are equal and that reject / normalisation lines name the right file,
sheet, row (as Excel shows it) and column.  The field cases in ../shared/field-cases run
end to end at the bottom (skipped, loudly, when that directory is absent).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import xlsxwriter

from screening.errors import InputError
from screening.ingest import read_dir, read_table
from screening.ingest.header import find_header, header_lookup
from screening.schema import TABLES
from screening.uscc import check_char
from screening.validate import Inputs, validate

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "ingest"


def code(n: int) -> str:
    body = f"91330382{n:09d}"
    return body + check_char(body)


C1, C2, C3 = code(1), code(2), code(3)
ENT = [["统一社会信用代码", "企业名称", "乡镇街道", "行业代码"],
       [C1, "乐清市甲电气有限公司", "柳市镇", "3823"],
       [C2, "乐清市乙阀门有限公司", "北白象镇", "3443"],
       [C3, "乐清市丙服装有限公司", "乐成街道", "1810"]]
TAX = [["统一社会信用代码", "年份", "实缴税金"], [C1, 2021, 12.5], [C2, 2021, 3.0], [C3, 2021, 0.0], [C1, 2020, 7.0]]


def write_csv(path: Path, rows: list[list], encoding: str = "utf-8") -> Path:
    text = "\n".join(",".join("" if v is None else str(v) for v in r) for r in rows) + "\n"
    path.write_bytes(text.encode(encoding))
    return path


def write_xlsx(path: Path, sheets: dict[str, list[list]], hidden: tuple[str, ...] = (), very_hidden=(),
               top: int = 0) -> Path:
    wb = xlsxwriter.Workbook(path)
    for name, rows in sheets.items():
        ws = wb.add_worksheet(name)
        for i, r in enumerate(rows):
            for j, v in enumerate(r):
                if v is not None:
                    ws.write(top + i, j, v)
        if name in hidden:
            ws.hide()
        if name in very_hidden:
            ws.very_hidden()
    visible = [ws for ws in wb.worksheets() if ws.name not in hidden and ws.name not in very_hidden]
    if visible:
        visible[0].activate()
    wb.close()
    return path


def load(d: Path) -> Inputs:
    return validate(read_dir(d, set()))


def tables(inp: Inputs) -> dict[str, pl.DataFrame]:
    out = {}
    for name in inp.files:
        frame = inp.frame(name)
        out[name] = frame.sort(frame.columns)
    return out


def clean_dir(tmp_path: Path) -> Path:
    d = tmp_path / "clean"
    d.mkdir()
    write_csv(d / "enterprises.csv", ENT)
    write_csv(d / "tax.csv", TAX)
    return d


def quirk_dir(tmp_path: Path) -> Path:
    d = tmp_path / "quirk"
    d.mkdir()
    write_csv(d / "enterprises.csv", ENT)
    return d


def assert_same_tables(a: Inputs, b: Inputs) -> None:
    ta, tb = tables(a), tables(b)
    assert ta.keys() == tb.keys()
    for name in ta:
        assert ta[name].equals(tb[name]), (name, ta[name], tb[name])


# ---------------------------------------------------------------- sheets

@pytest.mark.parametrize("how", ["hidden", "very_hidden"])
def test_hidden_first_sheet_is_never_read(tmp_path, how):
    clean = load(clean_dir(tmp_path))
    d = quirk_dir(tmp_path)
    draft = [TAX[0]] + [[r[0], r[1], 999.0] for r in TAX[1:]]  # a superseded draft
    final = TAX[:2] + [[C2, 2021, -1.0]] + TAX[3:]
    kw = {"hidden": ("初评",)} if how == "hidden" else {"very_hidden": ("初评",)}
    write_xlsx(d / "tax.xlsx", {"初评": draft, "税收": final}, **kw)
    inp = load(d)
    raw = inp.files["tax"]
    assert raw.sheet == "税收"
    assert [s["visible"] for s in raw.sheets] == ["hidden" if how == "hidden" else "veryhidden", "visible"]
    assert raw.intake()["sheet"] == "税收"
    assert [(r["file"], r["row"], r["column"]) for r in inp.rejects.to_dicts()] == [("tax.xlsx[税收]", 3, "实缴税金")]
    assert inp.frame("tax").filter(pl.col("tax_paid") == 999.0).height == 0
    # apart from the spoiled row, the clean data
    expected = clean.frame("tax").filter(pl.col("uscc") != C2)
    assert inp.frame("tax").sort("uscc", "year").equals(expected.sort("uscc", "year"))


def test_only_a_hidden_sheet_matching_is_an_error_naming_it(tmp_path):
    d = quirk_dir(tmp_path)
    write_xlsx(d / "tax.xlsx", {"数据": TAX, "说明": [["本表说明"]]}, hidden=("数据",))
    with pytest.raises(InputError, match=r"tax\.xlsx.*隐藏的工作表“数据”"):
        load(d)


def test_first_visible_sheet_whose_header_matches(tmp_path):
    clean = load(clean_dir(tmp_path))
    d = quirk_dir(tmp_path)
    write_xlsx(d / "tax.xlsx", {"填报说明": [["填报说明：单位为万元"], ["请勿修改表头"]], "税收": TAX})
    inp = load(d)
    assert inp.files["tax"].sheet == "税收"
    assert_same_tables(clean, inp)


def test_xls_biff_with_title_row_and_hidden_sheet(tmp_path):
    """A committed Excel 97-2003 file: hidden draft sheet 草稿, visible 税收 with a title row."""
    d = quirk_dir(tmp_path)
    shutil.copy(FIXTURES / "tax.xls", d / "tax.xls")
    inp = load(d)
    raw = inp.files["tax"]
    assert (raw.kind, raw.sheet, raw.header_row) == ("xls", "税收", 2)
    assert [(r["file"], r["row"], r["column"]) for r in inp.rejects.to_dicts()] == [("tax.xls[税收]", 4, "实缴税金（万元）")]
    assert sorted(inp.frame("tax")["tax_paid"].to_list()) == [0.0, 1.5]


# ---------------------------------------------------------------- merged cells

def test_merged_cells_take_the_ranges_value(tmp_path):
    land = [["统一社会信用代码", "年份", "地块编号", "用地面积（亩）", "权属"],
            [C1, 2021, "P1", 2.03, "自有"], [C1, 2021, "P2", 1.43, "自有"], [C2, 2021, "P1", 5.0, "租赁"]]
    c = clean_dir(tmp_path)
    write_xlsx(c / "land.xlsx", {"Sheet1": land})
    clean = load(c)
    d = quirk_dir(tmp_path)
    shutil.copy(c / "tax.csv", d / "tax.csv")
    wb = xlsxwriter.Workbook(d / "land.xlsx")
    ws = wb.add_worksheet("Sheet1")
    ws.write_row(0, 0, land[0])
    ws.merge_range(1, 0, 2, 0, C1)  # code and year merged over the firm's two parcels
    ws.merge_range(1, 1, 2, 1, 2021)
    for i, r in enumerate(land[1:]):
        ws.write_row(1 + i, 2, r[2:])
    ws.write_row(3, 0, land[3][:2])
    wb.close()
    inp = load(d)
    assert inp.rejects.height == 0
    assert_same_tables(clean, inp)
    lines = inp.normalised.filter(pl.col("kind") == "merged_cell").select("file", "row", "column", "after").rows()
    assert sorted(lines) == [("land.xlsx", 3, "年份", "2021"), ("land.xlsx", 3, "统一社会信用代码", C1)]


# ---------------------------------------------------------------- Excel error values

ERRORS = ["#N/A", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#NULL!"]


@pytest.mark.parametrize("err", ERRORS)
def test_excel_error_values_are_rejected_naming_the_error(tmp_path, err):
    d = quirk_dir(tmp_path)
    wb = xlsxwriter.Workbook(d / "stats.xlsx")
    ws = wb.add_worksheet("统计")
    ws.write_row(0, 0, ["统一社会信用代码", "年份", "规模", "营业收入", "工业增加值"])
    ws.write_row(1, 0, [C1, 2021, "规上", 100.0, 20.0])
    ws.write_row(2, 0, [C2, 2021, "规上", 50.0])
    ws.write_formula(2, 4, "=VLOOKUP(A3,源表!A:C,3,FALSE)", None, err)  # optional column: still not "missing"
    ws.write_row(3, 0, [C3, 2021, "规下"])
    ws.write_formula(3, 3, "=1/0", None, err)
    wb.close()
    inp = load(d)
    lines = [(r["file"], r["row"], r["column"], r["reason"], r["value"]) for r in inp.rejects.to_dicts()]
    assert lines == [("stats.xlsx", 3, "工业增加值", f"单元格为 Excel 错误值 {err}", err),
                     ("stats.xlsx", 4, "营业收入", f"单元格为 Excel 错误值 {err}", err)]
    assert inp.frame("stats")["uscc"].to_list() == [C1]


@pytest.mark.parametrize("err", ERRORS)
def test_error_text_as_a_csv_holds_it_is_a_bad_value_never_missing(tmp_path, err):
    """A CSV saved from Excel writes an error cell as its text: that is still an Excel error value,
    never read as missing (contract, "Bad input"), in an optional column too, and the reason names
    it; a missing-value mark (N/A, —) in an optional column is missing.  In the registry the field
    is cleared and the firm kept."""
    d = quirk_dir(tmp_path)
    write_csv(d / "stats.csv", [["uscc", "year", "scale", "revenue", "value_added"],
                                [C1, 2021, "规上", 100, err], [C2, 2021, "规上", 50, "—"],
                                [C3, 2021, "规上", err, "N/A"]])
    inp = load(d)
    lines = [(r["file"], r["row"], r["column"], r["reason"], r["value"], r["action"]) for r in inp.rejects.to_dicts()]
    assert lines == [("stats.csv", 2, "value_added", f"单元格为 Excel 错误值 {err}", err, "row_rejected"),
                     ("stats.csv", 4, "revenue", f"单元格为 Excel 错误值 {err}", err, "row_rejected")]
    assert inp.frame("stats")["uscc"].to_list() == [C2]
    assert inp.frame("stats")["value_added"].to_list() == [None]


def test_error_text_in_the_registry_clears_the_field_and_keeps_the_firm(tmp_path):
    d = quirk_dir(tmp_path)
    rows = [ENT[0] + ["成立日期"], [*ENT[1][:3], "#N/A", "2001-01-01"], [*ENT[2], "#div/0!"], [*ENT[3], "2001-01-01"]]
    write_csv(d / "enterprises.csv", rows)
    inp = load(d)
    lines = [(r["row"], r["column"], r["reason"], r["action"]) for r in inp.rejects.to_dicts()]
    assert lines == [(2, "行业代码", "单元格为 Excel 错误值 #N/A", "field_cleared"),
                     (3, "成立日期", "单元格为 Excel 错误值 #DIV/0!", "field_cleared")]
    firms = inp.frame("enterprises").sort("uscc")
    assert firms["uscc"].to_list() == [C1, C2, C3]
    assert firms["industry_code"].to_list() == [None, "3443", "1810"]
    assert firms["established"].to_list()[1] is None


# ---------------------------------------------------------------- file names

@pytest.mark.parametrize("name", ["tax.CSV", "Tax.Csv", "TAX.csv", "tax.XLSX", "tax.xlsm"])
def test_file_extension_in_any_case(tmp_path, name):
    clean = load(clean_dir(tmp_path))
    d = quirk_dir(tmp_path)
    if name.lower().endswith(".csv"):
        write_csv(d / name, TAX)
    else:
        write_xlsx(d / name, {"Sheet1": TAX})
    inp = load(d)
    assert inp.files["tax"].file == name
    assert_same_tables(clean, inp)


def test_csv_and_html_named_xls_are_read_as_what_they_are(tmp_path):
    clean = load(clean_dir(tmp_path))
    d = quirk_dir(tmp_path)
    write_csv(d / "tax.xls", TAX, encoding="gbk")
    inp = load(d)
    assert inp.files["tax"].kind == "csv" and "CSV" in inp.files["tax"].note
    assert_same_tables(clean, inp)
    (d / "tax.xls").unlink()
    cells = "".join("<tr>" + "".join(f"<td>{v}</td>" for v in r) + "</tr>" for r in TAX)
    (d / "tax.xls").write_text(f"<html><body><table>{cells}</table></body></html>", encoding="utf-8")
    inp = load(d)
    assert inp.files["tax"].kind == "html" and "HTML" in inp.files["tax"].note
    assert_same_tables(clean, inp)


def test_unreadable_file_named_for_a_table_is_an_error(tmp_path):
    d = quirk_dir(tmp_path)
    (d / "tax.XLSX").write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(InputError, match="tax.XLSX"):
        load(d)


# ---------------------------------------------------------------- header row

@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_header_below_title_blank_and_unit_rows(tmp_path, fmt):
    clean = load(clean_dir(tmp_path))
    d = quirk_dir(tmp_path)
    rows = [["2021年度亩均效益综合评价——税收"], [], ["单位：万元"]] + TAX[:2] + [[C2, 2021, -3.0]] + TAX[3:]
    if fmt == "csv":
        write_csv(d / "tax.csv", rows, encoding="gbk")
    else:
        write_xlsx(d / "tax.xlsx", {"Sheet1": rows}, top=2)  # two more empty rows on top
    inp = load(d)
    header_row = 4 if fmt == "csv" else 6
    assert inp.files["tax"].header_row == header_row
    assert [(r["row"], r["column"]) for r in inp.rejects.to_dicts()] == [(header_row + 2, "实缴税金")]
    expected = clean.frame("tax").filter(pl.col("uscc") != C2)
    assert inp.frame("tax").sort("uscc", "year").equals(expected.sort("uscc", "year"))


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_header_right_below_a_blank_row_is_reported_at_its_own_row(tmp_path, fmt):
    """Row numbers are the ones Excel shows: a header on row 3 under a title and a blank row is row 3
    (it was reported as row 2, the blank row read as the upper half of a two-row header)."""
    clean = load(clean_dir(tmp_path))
    d = quirk_dir(tmp_path)
    rows = [["2021年度税收"], [None, None, None]] + TAX[:2] + [[C2, 2021, -3.0]] + TAX[3:]
    if fmt == "csv":
        write_csv(d / "tax.csv", rows)
    else:
        write_xlsx(d / "tax.xlsx", {"Sheet1": rows})
    inp = load(d)
    assert inp.files["tax"].header_row == 3
    assert [(r["row"], r["column"]) for r in inp.rejects.to_dicts()] == [(5, "实缴税金")]
    assert inp.frame("tax").sort("uscc", "year").equals(clean.frame("tax").filter(pl.col("uscc") != C2).sort("uscc", "year"))


@pytest.mark.parametrize("header", ["实缴税金/元", "实缴税金／元"])
def test_unit_in_a_header_after_a_slash(tmp_path, header):
    """Contract: a unit written in a header is converted — also after a slash (实缴税金/元), as
    departments write it; the header was not recognised (缺少必需列, exit 2)."""
    clean = load(clean_dir(tmp_path))
    d = quirk_dir(tmp_path)
    write_csv(d / "tax.csv", [["统一社会信用代码", "年份", header]] + [[u, y, v * 10000] for u, y, v in TAX[1:]])
    inp = load(d)
    assert inp.rejects.height == 0
    assert_same_tables(clean, inp)


def test_a_slash_names_a_unit_only_when_it_is_one():
    """After a slash only a unit of the column is taken (用地面积/平方米 → 亩 × 3/2000); anything else is
    not guessed: the header is not this table's column."""
    lookup = header_lookup(TABLES["land"], None)
    match = find_header([["uscc", "year", "地块编号", "土地面积/平方米", "权属"]], TABLES["land"], lookup)
    assert match.ok and [(c.canonical, c.factor) for c in match.columns if c.canonical == "area_mu"] == [("area_mu", (3.0, 2000.0))]
    match = find_header([["uscc", "year", "地块编号", "土地面积/备注", "权属"]], TABLES["land"], lookup)
    assert not match.ok and "土地面积/备注" in match.ignored


def test_two_row_header_with_merged_upper_cells(tmp_path):
    c = clean_dir(tmp_path)
    write_csv(c / "land.csv", [["uscc", "year", "parcel_id", "area_mu", "area_m2", "tenure"],
                               [C1, 2021, "P1", None, 2000, "自有"], [C2, 2021, "P1", None, 1000, "租赁"]])
    clean = load(c)
    d = quirk_dir(tmp_path)
    shutil.copy(c / "tax.csv", d / "tax.csv")
    wb = xlsxwriter.Workbook(d / "land.xlsx")
    ws = wb.add_worksheet("用地")
    ws.merge_range(0, 0, 0, 5, "2021年度企业用地情况")
    for j, h in ((0, "统一社会信用代码"), (1, "年份"), (2, "地块编号"), (5, "权属")):
        ws.merge_range(1, j, 2, j, h)
    ws.merge_range(1, 3, 1, 4, "用地面积")  # over 亩 | 平方米
    ws.write_row(2, 3, ["亩", "平方米"])
    ws.write_row(3, 0, [C1, 2021, "P1", None, 2000, "自有"])
    ws.write_row(4, 0, [C2, 2021, "P1", None, "1,000", "租赁"])
    wb.close()
    inp = load(d)
    assert inp.rejects.height == 0, inp.rejects
    assert inp.files["land"].header_row == 2
    assert_same_tables(clean, inp)
    assert inp.normalised.filter(pl.col("kind") == "thousands").select("row", "column").rows() == [(5, "用地面积(平方米)")]
    assert inp.files["land"].headers["area_m2"] == "用地面积(平方米)"


def test_no_header_row_names_expected_columns_and_closest_row(tmp_path):
    d = quirk_dir(tmp_path)
    write_csv(d / "tax.csv", [["税收表"], ["统一社会信用代码", "年份", "税额合计"], [C1, 2021, 1]])
    with pytest.raises(InputError, match=r"tax\.csv：缺少必需列 tax_paid（实缴税金）.*第 2 行"):
        load(d)


def test_column_number_total_and_sign_off_rows_are_not_records(tmp_path):
    clean = load(clean_dir(tmp_path))
    d = quirk_dir(tmp_path)
    rows = [TAX[0], ["甲", "乙", "1"], *TAX[1:], ["合计", None, 22.5], [], ["制表人：王某某", "审核人：李某某", None],
            ["注：单位为万元"]]
    write_csv(d / "tax.csv", rows, encoding="gbk")
    inp = load(d)
    assert_same_tables(clean, inp)
    assert [(r["row"], r["reason"]) for r in inp.rejects.to_dicts()] == [
        (2, "栏次行，不是数据行，未读取"), (7, "合计行，不是数据行，未读取"),
        (9, "表尾说明行，不是数据行，未读取"), (10, "表尾说明行，不是数据行，未读取")]


# ---------------------------------------------------------------- registry: nothing vanishes

def test_registry_unusable_fields_keep_the_firm(tmp_path):
    d = quirk_dir(tmp_path)
    wb = xlsxwriter.Workbook(d / "enterprises.xlsx")
    ws = wb.add_worksheet("名录")
    ws.write_row(0, 0, ["统一社会信用代码", "企业名称", "乡镇街道", "行业代码", "成立日期"])
    ws.write_row(1, 0, [C1, "甲", "柳市镇", 3823.0, 42868])  # numeric code, date serial (2017-05-13)
    ws.write_row(2, 0, [C2, "乙", "北白象镇", "3443.0", "2015/3/1"])
    ws.write_row(3, 0, [C3, "丙", "乐成街道", "38X3", "不详"])  # two unusable fields
    wb.close()
    (d / "enterprises.csv").unlink()
    write_csv(d / "tax.csv", TAX)
    inp = load(d)
    ent = inp.frame("enterprises").sort("uscc")
    assert ent["uscc"].to_list() == [C1, C2, C3]
    assert ent["industry_code"].to_list() == ["3823", "3443", None]
    assert ent["established"].to_list() == [dt.date(2017, 5, 13), dt.date(2015, 3, 1), None]
    lines = [(r["file"], r["row"], r["column"], r["action"]) for r in inp.rejects.to_dicts()]
    assert lines == [("enterprises.xlsx", 4, "成立日期", "field_cleared"), ("enterprises.xlsx", 4, "行业代码", "field_cleared")]
    assert inp.rejected_rows == 0
    assert inp.frame("tax").height == 4  # every firm's tax rows are kept
    kinds = dict(inp.normalised.select("row", "kind").rows())
    assert kinds[2] in ("date_serial", "float_code") and kinds[3] == "float_code"


def test_date_serial_1904_system(tmp_path):
    d = quirk_dir(tmp_path)
    wb = xlsxwriter.Workbook(d / "enterprises.xlsx", {"date_1904": True})
    ws = wb.add_worksheet()
    ws.write_row(0, 0, ["uscc", "name", "township", "industry_code", "established"])
    ws.write_row(1, 0, [C1, "甲", "柳市镇", "3823", 41406])  # 1904 system: 2017-05-13
    wb.close()
    (d / "enterprises.csv").unlink()
    inp = load(d)
    assert inp.frame("enterprises")["established"].to_list() == [dt.date(2017, 5, 13)]


# ---------------------------------------------------------------- header names and units

def test_real_header_names_and_units(tmp_path):
    c = clean_dir(tmp_path)
    write_csv(c / "land.csv", [["uscc", "year", "parcel_id", "area_mu", "tenure"], [C1, 2021, "P1", 3.0, "自有"]])
    write_csv(c / "evaluations.csv", [["uscc", "year", "grade"], [C1, 2021, "C"]])
    clean = load(c)
    d = quirk_dir(tmp_path)
    write_csv(d / "enterprises.csv", [["序号", "统一社会信用代码*", "企业名称", "所属乡镇（街道）", "国民经济行业代码"]]
              + [[i, *r] for i, r in enumerate(ENT[1:], 1)])
    write_csv(d / "tax.csv", [["纳税人识别号", "年度", "实缴税金（元）"]] + [[r[0], r[1], r[2] * 10000] for r in TAX[1:]])
    write_csv(d / "land.csv", [["统一社会信用代码", "评价年度", "宗地编号", "用地面积（㎡）", "权属"], [C1, 2021, "P1", 2000, "自有"]])
    write_csv(d / "evaluations.csv", [["统一社会信用代码", "年份", "评价类别"], [C1, 2021, "C类"]])
    inp = load(d)
    assert inp.rejects.height == 0
    assert_same_tables(clean, inp)
    assert inp.files["tax"].intake()["columns"]["tax_paid"] == {"header": "实缴税金（元）", "unit": "元", "factor": "1/10000"}
    assert inp.files["land"].units["area_mu"]["unit"] == "m2"


def test_unknown_unit_in_header_is_an_error(tmp_path):
    d = quirk_dir(tmp_path)
    write_csv(d / "tax.csv", [["uscc", "year", "实缴税金（美元）"], [C1, 2021, 1]])
    with pytest.raises(InputError, match="tax.csv.*单位“美元”无法识别"):
        load(d)


def test_bureau_synonyms_file_in_the_data_directory(tmp_path):
    clean = load(clean_dir(tmp_path))
    d = quirk_dir(tmp_path)
    write_csv(d / "tax.csv", [["社会代码", "税收年份", "本年实缴"]] + TAX[1:])
    with pytest.raises(InputError):
        load(d)
    (d / "synonyms.yaml").write_text("tax:\n  uscc: [社会代码]\n  year: [税收年份]\n  tax_paid: [本年实缴]\n",
                                     encoding="utf-8")
    assert_same_tables(clean, load(d))


# ---------------------------------------------------------------- cell values

def test_cell_values_as_written_are_normalised_and_listed(tmp_path):
    fw = {ch: chr(ord(ch) + 0xFEE0) for ch in "0123456789ABCDEFGHJKLMNPQRTUWXY"}
    c = clean_dir(tmp_path)
    write_csv(c / "stats.csv", [["uscc", "year", "scale", "revenue", "value_added"],
                                [C1, 2021, "规上", 1234.5, 10], [C2, 2021, "规上", 1834.83, None], [C3, 2021, "规下", 5, None]])
    clean = load(c)
    d = quirk_dir(tmp_path)
    (d / "tax.csv").write_bytes(("\ufeff" + "\n".join([
        "统一社会信用代码,年份,实缴税金",
        f"{''.join(fw[ch] for ch in C1)},２０２１,12.5",
        f"{C2}\u200b,2021,3",
        f"'{C3},2021,0",
        f'"=""{C1}""",2020,7',
    ]) + "\n").encode("utf-8"))
    (d / "stats.csv").write_bytes(("\n".join([
        "统一社会信用代码,年份,规模,营业收入（万元）,工业增加值",
        f'{C1}\u00a0,2021,规上,"1,234.5",10',
        f"{C2}\u3000,2021,规上,1834.83万元,—",
        f"{C3},2021,规下,5,无",
    ]) + "\n").encode("utf-8"))
    inp = load(d)
    assert inp.rejects.height == 0
    assert_same_tables(clean, inp)
    got = {(r["file"], r["row"], r["column"]): r["kind"] for r in inp.normalised.to_dicts()}
    assert got[("tax.csv", 2, "统一社会信用代码")] == "full_width"
    assert got[("tax.csv", 2, "年份")] == "full_width"
    assert got[("tax.csv", 3, "统一社会信用代码")] == "invisible"
    assert got[("tax.csv", 4, "统一社会信用代码")] == "text_marker"
    assert got[("tax.csv", 5, "统一社会信用代码")] == "text_marker"
    assert got[("stats.csv", 2, "营业收入（万元）")] == "thousands"
    assert got[("stats.csv", 3, "营业收入（万元）")] == "unit_in_cell"
    assert got[("stats.csv", 3, "工业增加值")] == "missing_mark"
    assert got[("stats.csv", 4, "工业增加值")] == "missing_mark"
    assert got[("stats.csv", 3, "统一社会信用代码")] == "full_width"  # U+3000 is NFKC's space
    assert inp.normalised_counts()["tax.csv"]["text_marker"] == 2


def test_missing_mark_in_a_required_cell_is_still_a_reject(tmp_path):
    d = quirk_dir(tmp_path)
    write_csv(d / "tax.csv", [TAX[0], [C1, 2021, "—"], [C2, 2021, 1]])
    inp = load(d)
    assert [(r["row"], r["column"]) for r in inp.rejects.to_dicts()] == [(2, "实缴税金")]


# ---------------------------------------------------------------- field cases, end to end

FIELD_CASES = Path(os.environ.get("SCREENING_FIELD_CASES", ROOT.parent / "shared" / "field-cases"))
CASES = sorted(p.stem for p in FIELD_CASES.glob("[0-9]*.py")) if FIELD_CASES.is_dir() else []


@pytest.fixture(scope="module")
def baseline():
    import screening

    with screening.screen(ROOT / "sample_data", 2022) as s:
        return s.results.select("uscc", "rule_id", "status").sort("uscc", "rule_id"), s.list.height


@pytest.mark.e2e
@pytest.mark.parametrize("case", CASES or ["(none)"])
def test_field_case(tmp_path, case, baseline):
    if not CASES:
        pytest.skip(f"field cases not found at {FIELD_CASES} (CI has ../shared beside the clone)")
    import screening

    env = {**os.environ, "SAMPLE_DATA": str(ROOT / "sample_data")}
    proc = subprocess.run([sys.executable, str(FIELD_CASES / f"{case}.py"), str(tmp_path / "case")],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    results, listed = baseline
    with screening.screen(tmp_path / "case" / "data", 2022) as s:
        got = s.results.select("uscc", "rule_id", "status").sort("uscc", "rule_id")
        rejects = s.inputs.rejects
        assert s.list.height == listed
        diff = got.join(results, on=["uscc", "rule_id", "status"], how="anti")
        if case.startswith("06"):  # rejected error cells may leave a firm's year unknown
            assert rejects.filter(pl.col("reason").str.starts_with("单元格为 Excel 错误值")).height == 10
        else:
            assert diff.height == 0, diff
        if case.startswith("01"):
            assert rejects.filter(pl.col("file") == "evaluations.xlsx")["row"].to_list() == [1961]
        if case.startswith("11"):
            tax_rows = rejects.filter((pl.col("file") == "tax.csv") & (pl.col("row") > 5000))["row"].unique().to_list()
            assert {5819, 11596, 21621} <= set(tax_rows)


# ---------------------------------------------------------------- screening check

def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = ROOT / ".venv" / "bin" / "screening"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "screening"]
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=180, cwd=cwd, env=env)


@pytest.mark.e2e
def test_check_on_the_sample_and_on_a_broken_directory(tmp_path):
    proc = _cli("check", "--data", str(ROOT / "sample_data"), "--year", "2022", "--out", str(tmp_path / "ok"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "数据接收检查" in proc.stdout and "可以筛选" in proc.stdout
    report = json.loads((tmp_path / "ok" / "check.json").read_text(encoding="utf-8"))
    assert report["screenable"] and report["enterprises"] == 6000
    land = report["tables"]["land"]
    assert (land["sheet"], land["header_row"], land["rows"]["rejected"]) == ("Sheet1", 1, 1)
    assert land["columns"]["uscc"]["header"] == "统一社会信用代码"
    assert report["coverage"]["2021"]["stats"] > 0
    assert (tmp_path / "ok" / "check.xlsx").stat().st_size > 0
    # a top reason says where to look: the column as the file names it, unless the reason does
    assert report["tables"]["energy"]["top_reasons"] == [{"column": "electricity", "reason": "不是有效的数字", "rows": 1}]
    assert "electricity：不是有效的数字（1 行）" in proc.stdout
    assert "用地面积(平方米)必须大于0（1 行）" in proc.stdout and "用地面积(平方米)：用地" not in proc.stdout

    broken = tmp_path / "broken"
    shutil.copytree(ROOT / "sample_data", broken, ignore=shutil.ignore_patterns("README.md"))
    (broken / "tax.csv").write_text("uscc,year,税金\n", encoding="utf-8")
    proc = _cli("check", "--data", str(broken), "--year", "2022", "--out", str(tmp_path / "bad"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "tax.csv" in proc.stderr and "tax_paid" in proc.stderr and "Traceback" not in proc.stderr
    report = json.loads((tmp_path / "bad" / "check.json").read_text(encoding="utf-8"))
    assert not report["screenable"] and "error" in report["tables"]["tax"]
