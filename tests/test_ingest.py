"""Reading the departments' files (screening.ingest) and checking their rows (screening.validate).

Contract: ../shared/contract.md, "Input directory" and "Bad input".  Every input is
built by hand in tmp_path; row numbers are spreadsheet row numbers (header = row 1).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from pathlib import Path

import polars as pl
import pytest

from cli_helpers import cli
from screening.errors import InputError
from screening.ingest import read_dir, read_table
from screening.schema import TABLES
from screening.uscc import ALPHABET, check_char
from screening.validate import Inputs, validate

pytestmark = pytest.mark.unit

CHINESE = re.compile(r"[\u4e00-\u9fff]")


# ---------------------------------------------------------------- helpers

def code(n: int) -> str:
    """A valid 统一社会信用代码 for firm n (乐清, 330382)."""
    body = f"91330382{n:09d}"
    return body + check_char(body)


def wrong_check(c: str) -> str:
    """The same code with a wrong check character."""
    return c[:17] + next(ch for ch in ALPHABET if ch != c[17])


C1, C2, C3 = code(1), code(2), code(3)

ENT_EN = ["uscc", "name", "township", "industry_code"]
ENT_ZH = ["统一社会信用代码", "企业名称", "乡镇街道", "行业代码"]
ENT_ROWS = [
    [C1, "乐清市甲电气有限公司", "柳市镇", "3823"],
    [C2, "乐清市乙阀门有限公司", "北白象镇", "3443"],
    [C3, "乐清市丙服装有限公司", "乐成街道", "1810"],
]


def write_csv(path: Path, header: list[str], rows: list[list], *, encoding: str = "utf-8", sep: str = ",") -> Path:
    lines = [sep.join(header)] + [sep.join("" if v is None else str(v) for v in r) for r in rows]
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def write_enterprises(d: Path, rows: list[list] | None = None, header: list[str] | None = None) -> Path:
    return write_csv(d / "enterprises.csv", header or ENT_EN, ENT_ROWS if rows is None else rows)


def load(d: Path, needed: set[str] | None = None) -> Inputs:
    return validate(read_dir(d, needed or set()))


def rejects_of(inp: Inputs, file: str | None = None) -> list[dict]:
    rows = inp.rejects.to_dicts()
    return [r for r in rows if file is None or r["file"] == file]


def firm_id(inp: Inputs, uscc: str) -> int:
    ent = inp.tables["enterprises"]
    return ent.filter(pl.col("uscc") == uscc)["firm_id"].item()


# ---------------------------------------------------------------- 1. encodings and separators

ENCODINGS = {
    "utf-8": ("utf-8", "utf-8"),
    "utf-8-bom": ("utf-8-sig", "utf-8-sig"),
    "gbk": ("gbk", "gb18030"),
    "gb18030": ("gb18030", "gb18030"),
    "utf-16-bom": ("utf-16", "utf-16"),  # Python's utf-16 codec writes a BOM
    "utf-16-be-bom": ("utf-16", "utf-16"),
}


@pytest.mark.parametrize("label", list(ENCODINGS))
def test_csv_encodings_with_chinese_headers(tmp_path, label):
    py_encoding, detected = ENCODINGS[label]
    name = "乐清市㐂福电器有限公司" if label in ("gb18030", "utf-8", "utf-8-bom", "utf-16-bom") else "乐清市甲电气有限公司"
    rows = [[C1, name, "柳市镇", "3823"], [C2, "乙", "北白象镇", "3443"]]
    path = tmp_path / "enterprises.csv"
    if label == "utf-16-be-bom":
        text = "\n".join(",".join(r) for r in [ENT_ZH, *rows]) + "\n"
        path.write_bytes(b"\xfe\xff" + text.encode("utf-16-be"))
    else:
        write_csv(path, ENT_ZH, rows, encoding=py_encoding)
    if label == "gb18030":
        with pytest.raises(UnicodeEncodeError):
            name.encode("gbk")  # 㐂 really is outside GBK: this file needs GB18030's four-byte form

    raw = read_table(path, TABLES["enterprises"])
    assert raw.encoding == detected
    assert raw.headers == {"uscc": "统一社会信用代码", "name": "企业名称", "township": "乡镇街道", "industry_code": "行业代码"}

    inp = load(tmp_path)
    assert inp.rejects.height == 0
    ent = inp.frame("enterprises")
    assert ent["uscc"].to_list() == [C1, C2]
    assert ent["name"].to_list() == [name, "乙"]
    assert ent["township"].to_list() == ["柳市镇", "北白象镇"]
    assert ent["industry_code"].to_list() == ["3823", "3443"]


def test_gbk_encoded_data_table_headers_and_values(tmp_path):
    write_enterprises(tmp_path)
    write_csv(tmp_path / "stats.csv", ["统一社会信用代码", "年份", "规模", "营业收入"],
              [[C1, 2021, "规上", "2500.5"], [C2, 2021, "规下", "800"]], encoding="gbk")
    inp = load(tmp_path)
    assert inp.rejects.height == 0
    stats = inp.frame("stats").sort("uscc")
    assert stats["scale"].to_list() == ["规上", "规下"]
    assert stats["revenue"].to_list() == [2500.5, 800.0]
    assert inp.files["stats"].encoding == "gb18030"


def test_undecodable_csv_is_an_input_error(tmp_path):
    (tmp_path / "enterprises.csv").write_bytes("uscc,name,township,industry_code\n".encode() + b"\x80\xff\x80,a,b,3823\n")
    with pytest.raises(InputError, match="enterprises.csv"):
        load(tmp_path)


@pytest.mark.parametrize("sep", [",", "\t", ";"], ids=["comma", "tab", "semicolon"])
def test_separators(tmp_path, sep):
    write_csv(tmp_path / "enterprises.csv", ENT_ZH, ENT_ROWS, sep=sep)
    write_csv(tmp_path / "tax.csv", ["uscc", "year", "tax_paid"], [[C1, 2021, "12.5"], [C2, 2021, "0"]], sep=sep)
    inp = load(tmp_path)
    assert inp.rejects.height == 0
    assert inp.frame("enterprises")["township"].to_list() == ["柳市镇", "北白象镇", "乐成街道"]
    assert inp.frame("tax").sort("uscc")["tax_paid"].to_list() == [12.5, 0.0]


def test_crlf_line_endings(tmp_path):
    text = "\r\n".join(",".join(r) for r in [ENT_EN, *ENT_ROWS]) + "\r\n"
    (tmp_path / "enterprises.csv").write_bytes(text.encode("utf-8-sig"))
    inp = load(tmp_path)
    assert inp.rejects.height == 0
    assert inp.frame("enterprises")["industry_code"].to_list() == ["3823", "3443", "1810"]


# ---------------------------------------------------------------- 2. formats

TAX_ROWS = [(C1, 2020, 10.0), (C1, 2021, 12.5), (C2, 2021, -1.0), (C3, 2021, 0.0)]


def _write_tax(d: Path, fmt: str) -> None:
    if fmt == "csv":
        write_csv(d / "tax.csv", ["uscc", "year", "tax_paid"], [[u, y, f"{t:g}"] for u, y, t in TAX_ROWS])
        return
    frame = pl.DataFrame(TAX_ROWS, schema={"uscc": pl.String, "year": pl.Int64, "tax_paid": pl.Float64}, orient="row")
    if fmt == "xlsx":
        frame.write_excel(d / "tax.xlsx")  # year and tax as numeric cells
    else:
        frame.write_parquet(d / "tax.parquet")


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "parquet"])
def test_same_table_in_every_format(tmp_path, fmt):
    write_enterprises(tmp_path)
    _write_tax(tmp_path, fmt)
    inp = load(tmp_path, {"tax"})
    assert inp.files["tax"].path.name == f"tax.{fmt}"
    tax = inp.frame("tax").sort("uscc", "year")
    assert tax.schema == pl.Schema({"uscc": pl.String, "year": pl.Int32, "tax_paid": pl.Float64})
    assert tax.rows() == [(C1, 2020, 10.0), (C1, 2021, 12.5), (C3, 2021, 0.0)]
    assert rejects_of(inp) == [{"file": f"tax.{fmt}", "row": 4, "column": "tax_paid",
                                "reason": "实缴税金不能为负数", "value": "-1",
                                "action": "row_rejected"}]
    assert inp.row_counts()["tax"] == {"read": 4, "rejected": 1, "accepted": 3}


def test_excel_numeric_cells_for_codes_years_and_dates(tmp_path):
    pl.DataFrame({
        "统一社会信用代码": [C1, C2],
        "企业名称": ["甲", "乙"],
        "乡镇街道": ["柳市镇", "虹桥镇"],
        "行业代码": [3823, 1713],  # numeric cells
        "成立日期": [dt.date(2015, 3, 1), None],  # a date cell
    }).write_excel(tmp_path / "enterprises.xlsx")
    pl.DataFrame({"uscc": [C1, C2], "year": [2021, 2021], "tax_paid": [3.0, 7.25]}).write_excel(tmp_path / "tax.xlsx")
    inp = load(tmp_path)
    assert inp.rejects.height == 0
    ent = inp.frame("enterprises")
    assert ent["industry_code"].to_list() == ["3823", "1713"]
    assert ent["established"].to_list() == [dt.date(2015, 3, 1), None]
    tax = inp.frame("tax").sort("uscc")
    assert tax["year"].to_list() == [2021, 2021]
    assert tax["tax_paid"].to_list() == [3.0, 7.25]


def test_excel_rejects_use_spreadsheet_rows(tmp_path):
    write_enterprises(tmp_path)
    pl.DataFrame({"uscc": [C1, C2, C3], "year": ["2021", "2021年", "2021"], "tax_paid": [1, 2, 3]}).write_excel(
        tmp_path / "tax.xlsx")
    inp = load(tmp_path)
    assert [(r["file"], r["row"], r["column"]) for r in rejects_of(inp)] == [("tax.xlsx", 3, "year")]
    assert inp.frame("tax").height == 2


def test_parquet_with_typed_columns(tmp_path):
    pl.DataFrame({
        "uscc": [C1, C2], "name": ["甲", "乙"], "township": ["柳市镇", "虹桥镇"],
        "industry_code": pl.Series([3823, 1713], dtype=pl.Int64),
        "established": [dt.date(2010, 1, 5), None],
    }).write_parquet(tmp_path / "enterprises.parquet")
    pl.DataFrame({
        "uscc": [C1, C2, C1],
        "year": pl.Series([2020, 2021, 2021], dtype=pl.Int64),
        "tax_paid": pl.Series([1.5, 0.0, None], dtype=pl.Float64),
    }).write_parquet(tmp_path / "tax.parquet")
    pl.DataFrame({
        "uscc": [C1], "year": pl.Series([2021], dtype=pl.Int64), "scale": ["规上"],
        "revenue": pl.Series([1000], dtype=pl.Int64), "employees": pl.Series([12], dtype=pl.Int32),
    }).write_parquet(tmp_path / "stats.parquet")
    inp = load(tmp_path)
    ent = inp.frame("enterprises")
    assert ent["industry_code"].to_list() == ["3823", "1713"]
    assert ent["established"].to_list() == [dt.date(2010, 1, 5), None]
    tax = inp.frame("tax").sort("uscc", "year")
    assert tax.rows() == [(C1, 2020, 1.5), (C2, 2021, 0.0)]
    # a null tax_paid is a missing required value
    assert [(r["row"], r["column"], r["reason"]) for r in rejects_of(inp)] == [(4, "tax_paid", "缺少实缴税金")]
    stats = inp.frame("stats")
    assert stats.select("year", "revenue", "employees").rows() == [(2021, 1000.0, 12)]


# ---------------------------------------------------------------- 3. headers

@pytest.mark.parametrize("header", [
    ["uscc", "year", "tax_paid"],
    ["统一社会信用代码", "年份", "实缴税金"],
    ["统一社会信用代码", "year", "实缴税金"],
    [" USCC ", "\t年份 ", " Tax_Paid"],
], ids=["english", "chinese", "mixed", "padded-and-cased"])
def test_header_languages(tmp_path, header):
    write_enterprises(tmp_path)
    write_csv(tmp_path / "tax.csv", header, [[C1, 2021, 5], [C2, 2021, "abc"]])
    inp = load(tmp_path)
    assert inp.frame("tax").rows() == [(C1, 2021, 5.0)]
    # the reject names the column as the file writes it (without surrounding whitespace)
    assert [(r["row"], r["column"]) for r in rejects_of(inp)] == [(3, header[2].strip())]


def test_whitespace_in_headers_and_text_cells_is_ignored(tmp_path):
    header = [" 统一社会信用代码 ", "企业名称  ", "  乡镇街道", " industry_code ", "备注"]
    rows = [[f"  {C1} ", "  乐清市甲电气有限公司 ", " 柳市镇  ", " 3823 ", "看这里"],
            [f"\t{C2}", "乙", "北白象镇\t", "3443", ""]]
    write_csv(tmp_path / "enterprises.csv", header, rows)
    write_csv(tmp_path / "tax.csv", ["uscc", "year", "tax_paid"], [[C1, " 2021 ", " 1.5 "]])
    files = read_dir(tmp_path, set())
    raw = files["enterprises"]
    raw.load()
    assert raw.ignored_headers == ["备注"]
    assert raw.headers["township"] == "乡镇街道"
    inp = validate(files)
    assert inp.rejects.height == 0
    ent = inp.frame("enterprises")
    # small_park (小微园, optional, issue 16) is absent: an empty column, like established
    assert ent.columns == ["uscc", "name", "township", "industry_code", "established", "small_park"]
    assert ent.rows() == [(C1, "乐清市甲电气有限公司", "柳市镇", "3823", None, None),
                          (C2, "乙", "北白象镇", "3443", None, None)]
    assert inp.frame("tax").rows() == [(C1, 2021, 1.5)]


def test_unknown_extra_columns_are_ignored(tmp_path):
    write_enterprises(tmp_path)
    write_csv(tmp_path / "tax.csv", ["uscc", "备注", "year", "tax_paid", "Remarks"], [[C1, "x", 2021, 1, "y"]])
    files = read_dir(tmp_path, set())
    inp = validate(files, keep_raw=True)
    assert files["tax"].ignored_headers == ["备注", "Remarks"]
    assert files["tax"].frame.columns == ["_row", "uscc", "year", "tax_paid"]
    assert inp.frame("tax").columns == ["uscc", "year", "tax_paid"]


@pytest.mark.parametrize("area_header", ["用地面积（亩）", "用地面积(亩)", "area_mu", " 用地面积 （亩） "])
def test_land_area_header_with_full_or_half_width_parentheses(tmp_path, area_header):
    write_enterprises(tmp_path)
    write_csv(tmp_path / "land.csv", ["统一社会信用代码", "年份", "地块编号", area_header, "权属"],
              [[C1, 2021, "P1", "12.5", "自有"], [C2, 2021, "P1", "0", "租赁"]])
    inp = load(tmp_path)
    assert inp.frame("land").select("uscc", "area_mu").rows() == [(C1, 12.5)]
    assert [(r["row"], r["column"]) for r in rejects_of(inp)] == [(3, area_header.strip())]


def test_two_headers_for_one_column_is_an_input_error(tmp_path):
    write_enterprises(tmp_path)
    write_csv(tmp_path / "tax.csv", ["uscc", "统一社会信用代码", "year", "tax_paid"], [[C1, C1, 2021, 1]])
    with pytest.raises(InputError, match="tax.csv"):
        load(tmp_path)


# ---------------------------------------------------------------- 4. codes kept as text

def test_codes_keep_leading_zeros_csv(tmp_path):
    write_enterprises(tmp_path, [[C1, "甲农场", "柳市镇", "0123"], [C2, "乙", "柳市镇", "0511"]])
    write_csv(tmp_path / "land.csv", ["uscc", "year", "parcel_id", "area_mu", "tenure"],
              [[C1, 2021, "00123", 5, "自有"], [C1, 2021, "123", 2, "自有"], [C2, 2021, "000", 1, "租赁"]])
    write_csv(tmp_path / "product_energy.csv", ["uscc", "year", "product", "output", "unit_consumption"],
              [[C1, 2021, "0101", 10, "1.5"]])
    inp = load(tmp_path)
    assert inp.rejects.height == 0
    assert inp.frame("enterprises")["industry_code"].to_list() == ["0123", "0511"]
    # "00123" and "123" are different parcels, so neither is a duplicate
    assert sorted(inp.frame("land")["parcel_id"].to_list()) == ["000", "00123", "123"]
    assert inp.frame("product_energy")["product"].to_list() == ["0101"]


def test_codes_keep_leading_zeros_xlsx_text_cells(tmp_path):
    pl.DataFrame({"uscc": [C1], "name": ["甲"], "township": ["柳市镇"], "industry_code": ["0123"]}).write_excel(
        tmp_path / "enterprises.xlsx")
    pl.DataFrame({"uscc": [C1], "year": [2021], "parcel_id": ["00123"], "area_mu": [4.5], "tenure": ["自有"]}).write_excel(
        tmp_path / "land.xlsx")
    inp = load(tmp_path)
    assert inp.rejects.height == 0
    assert inp.frame("enterprises")["industry_code"].to_list() == ["0123"]
    assert inp.frame("land")["parcel_id"].to_list() == ["00123"]


# ---------------------------------------------------------------- 5. land areas

def test_area_m2_converted_to_mu(tmp_path):
    write_enterprises(tmp_path)
    write_csv(tmp_path / "land.csv", ["uscc", "year", "parcel_id", "用地面积（平方米）", "tenure"],
              [[C1, 2021, "P1", 2000, "自有"], [C2, 2021, "P1", "1000", "租赁"]])
    inp = load(tmp_path)
    assert inp.rejects.height == 0
    land = inp.frame("land").sort("uscc")
    assert land["area_mu"].to_list()[0] == 3.0  # exactly: 2000 m² × 3/2000
    assert land["area_mu"].to_list()[1] == pytest.approx(1.5)


def test_both_area_columns_area_mu_wins_where_present(tmp_path):
    write_enterprises(tmp_path)
    write_csv(tmp_path / "land.csv", ["uscc", "year", "parcel_id", "area_mu", "area_m2", "tenure"], [
        [C1, 2021, "P1", "5", "2000", "自有"],  # both: 亩 as given
        [C1, 2021, "P2", "", "2000", "自有"],  # only m²: converted
        [C2, 2021, "P1", "7", "", "租赁"],  # only 亩
        [C3, 2021, "P1", "", "", "自有"],  # neither: rejected
    ])
    inp = load(tmp_path)
    land = inp.frame("land").sort("uscc", "parcel_id")
    assert land.select("uscc", "parcel_id", "area_mu").rows() == [(C1, "P1", 5.0), (C1, "P2", 3.0), (C2, "P1", 7.0)]
    assert [(r["row"], r["column"], r["reason"]) for r in rejects_of(inp)] == [(5, "area_mu", "缺少用地面积")]


def test_land_without_any_area_column_is_an_input_error(tmp_path):
    write_enterprises(tmp_path)
    write_csv(tmp_path / "land.csv", ["uscc", "year", "parcel_id", "tenure"], [[C1, 2021, "P1", "自有"]])
    with pytest.raises(InputError, match=r"land\.csv.*area_mu（用地面积\(亩\)） 或 area_m2（用地面积\(平方米\)）"):
        load(tmp_path)


# ---------------------------------------------------------------- 6. bad rows

TAX_EN = ["uscc", "year", "tax_paid"]
TAX_ZH = ["统一社会信用代码", "年份", "实缴税金"]
STATS_EN = ["uscc", "year", "scale", "revenue"]
STATS_ZH = ["统一社会信用代码", "年份", "规模", "营业收入"]
LAND = ["uscc", "year", "parcel_id", "用地面积（亩）", "tenure"]

# id: (file, header, rows, bad row number, column as written, reason (regex), value)
BAD_ROWS = {
    "year-with-suffix": ("tax.csv", TAX_ZH, [[C1, 2021, 1], [C2, "2021年", 1], [C3, 2021, 1]],
                         3, "年份", "^年份应为整数$", "2021年"),
    "year-fraction": ("tax.csv", TAX_EN, [[C1, "2021.5", 1], [C2, 2021, 1]], 2, "year", "^年份应为整数$", "2021.5"),
    "year-out-of-range": ("tax.csv", TAX_EN, [[C1, 2021, 1], [C2, 20021, 1]], 3, "year", "年份超出合理范围", "20021"),
    "tax-not-a-number": ("tax.csv", TAX_EN, [[C1, 2021, "abc"], [C2, 2021, 1]], 2, "tax_paid", "^不是有效的数字$", "abc"),
    "tax-negative": ("tax.csv", TAX_ZH, [[C1, 2021, 1], [C2, 2021, -1]], 3, "实缴税金", "^实缴税金不能为负数$", "-1"),
    "tax-missing": ("tax.csv", TAX_EN, [[C1, 2021, ""], [C2, 2021, 1]], 2, "tax_paid", "^缺少实缴税金$", None),
    "revenue-negative": ("stats.csv", STATS_EN, [[C1, 2021, "规上", -5], [C2, 2021, "规下", 5]],
                         2, "revenue", "^营业收入不能为负数$", "-5"),
    "unknown-scale": ("stats.csv", STATS_ZH, [[C1, 2021, "规上", 5], [C2, 2021, "规模以上", 5]],
                      3, "规模", "^规模只能为：规上、规下$", "规模以上"),
    "unknown-grade": ("evaluations.csv", ["uscc", "year", "grade"], [[C1, 2021, "E"], [C2, 2021, "C"]],
                      2, "grade", "^评价等级只能为：A、B、C、D$", "E"),
    "land-area-zero": ("land.csv", LAND, [[C1, 2021, "P1", 0, "自有"], [C2, 2021, "P1", 3, "自有"]],
                       2, "用地面积（亩）", "^用地面积\\(亩\\)必须大于0$", "0"),
    "land-area-negative": ("land.csv", LAND, [[C1, 2021, "P1", 3, "自有"], [C2, 2021, "P1", -2.5, "自有"]],
                           3, "用地面积（亩）", "^用地面积\\(亩\\)必须大于0$", "-2.5"),
    "land-m2-negative": ("land.csv", ["uscc", "year", "parcel_id", "area_m2", "tenure"],
                         [[C1, 2021, "P1", -2000, "自有"], [C2, 2021, "P1", 2000, "自有"]],
                         2, "area_m2", "必须大于0", "-2000"),
    "unknown-tenure": ("land.csv", LAND, [[C1, 2021, "P1", 3, "承包"], [C2, 2021, "P1", 3, "自有"]],
                       2, "tenure", "^权属只能为：自有、租赁$", "承包"),
    "check-char-in-data-table": ("tax.csv", TAX_EN, [[C1, 2021, 1], [wrong_check(C2), 2021, 1]],
                                 3, "uscc", f"^统一社会信用代码校验位错误（按GB 32100-2015应为“{C2[17]}”）$",
                                 wrong_check(C2)),
    "uscc-17-chars": ("tax.csv", TAX_EN, [[C1[:17], 2021, 1], [C2, 2021, 1]],
                      2, "uscc", "^统一社会信用代码格式错误", C1[:17]),
    "uscc-with-I": ("tax.csv", TAX_EN, [[C1, 2021, 1], [C2[:10] + "I" + C2[11:], 2021, 1]],
                    3, "uscc", "^统一社会信用代码格式错误", C2[:10] + "I" + C2[11:]),
    "uscc-missing": ("tax.csv", TAX_EN, [[C1, 2021, 1], ["", 2021, 1]], 3, "uscc", "^缺少统一社会信用代码$", None),
    "uscc-not-in-enterprises": ("tax.csv", TAX_EN, [[C1, 2021, 1], [code(99), 2021, 1]],
                                3, "uscc", "^企业名录中没有该统一社会信用代码$", code(99)),
    "duplicate-key": ("tax.csv", TAX_EN, [[C1, 2021, 1], [C2, 2021, 1], [C1, 2021, 2]],
                      4, "uscc、year", "与第2行主键重复.*已保留第2行", f"{C1}|2021"),
    "duplicate-parcel": ("land.csv", LAND, [[C1, 2021, "P1", 3, "自有"], [C1, 2021, "P1", 4, "自有"],
                                            [C1, 2021, "P2", 4, "自有"]],
                         3, "uscc、year、parcel_id", "已保留第2行", f"{C1}|2021|P1"),
}


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_bad_row_goes_to_rejects_and_the_rest_is_kept(tmp_path, case):
    file, header, rows, row, column, reason, value = BAD_ROWS[case]
    write_enterprises(tmp_path)
    write_csv(tmp_path / file, header, rows)
    table = file.split(".")[0]
    inp = load(tmp_path)
    lines = rejects_of(inp)
    assert len(lines) == 1, lines
    line = lines[0]
    assert (line["file"], line["row"], line["column"]) == (file, row, column)
    assert re.search(reason, line["reason"]), line["reason"]
    assert CHINESE.search(line["reason"])
    assert line["value"] == value
    assert inp.rejected_rows == 1
    assert inp.row_counts()[table] == {"read": len(rows), "rejected": 1, "accepted": len(rows) - 1}
    assert inp.frame(table).height == len(rows) - 1
    assert inp.tables["enterprises"].height == 3


def test_duplicate_key_keeps_the_first_row(tmp_path):
    write_enterprises(tmp_path)
    write_csv(tmp_path / "tax.csv", TAX_EN, [[C1, 2021, 1], [C1, 2021, 2], [C1, 2021, 3]])
    inp = load(tmp_path)
    assert inp.frame("tax")["tax_paid"].to_list() == [1.0]
    assert [(r["row"], r["reason"]) for r in rejects_of(inp)] == [
        (3, "与第2行主键重复（uscc、year），已保留第2行"),
        (4, "与第2行主键重复（uscc、year），已保留第2行"),
    ]


def test_registry_check_char_names_expected_character(tmp_path):
    bad = wrong_check(C2)
    write_enterprises(tmp_path, [ENT_ROWS[0], [bad, "乙", "北白象镇", "3443"], ENT_ROWS[2]])
    inp = load(tmp_path)
    assert rejects_of(inp) == [{"file": "enterprises.csv", "row": 3, "column": "uscc",
                                "reason": f"统一社会信用代码校验位错误（按GB 32100-2015应为“{C2[17]}”）", "value": bad,
                                "action": "row_rejected"}]
    assert inp.frame("enterprises")["uscc"].to_list() == [C1, C3]


@pytest.mark.parametrize("bad", [C2[:17], C2[:5] + "I" + C2[6:], C2 + "0", C2[:3] + "O" + C2[4:]],
                         ids=["17-chars", "contains-I", "19-chars", "contains-O"])
def test_registry_malformed_uscc(tmp_path, bad):
    write_enterprises(tmp_path, [ENT_ROWS[0], [bad, "乙", "北白象镇", "3443"]], header=ENT_ZH)
    inp = load(tmp_path)
    lines = rejects_of(inp)
    assert [(r["row"], r["column"]) for r in lines] == [(3, "统一社会信用代码")]
    assert lines[0]["reason"].startswith("统一社会信用代码格式错误")
    assert inp.frame("enterprises")["uscc"].to_list() == [C1]


def test_registry_duplicate_uscc(tmp_path):
    write_enterprises(tmp_path, [ENT_ROWS[0], ENT_ROWS[1], [C1, "甲（重复）", "柳市镇", "3823"]])
    inp = load(tmp_path)
    assert [(r["row"], r["column"], r["reason"]) for r in rejects_of(inp)] == [
        (4, "uscc", "与第2行主键重复（uscc），已保留第2行")]
    assert inp.frame("enterprises")["name"].to_list() == ["乐清市甲电气有限公司", "乐清市乙阀门有限公司"]


def test_registry_row_with_a_bad_field_keeps_the_firm_with_that_field_unknown(tmp_path):
    """Contract, Bad input: in enterprises only an unusable code rejects the row; a bad
    industry code is cleared (action field_cleared) and the firm's other rows still count."""
    write_enterprises(tmp_path, [ENT_ROWS[0], [C2, "乙", "北白象镇", "38X3"]])
    write_csv(tmp_path / "tax.csv", TAX_EN, [[C1, 2021, 1], [C2, 2021, 1], [C2.lower(), 2020, 1]])
    inp = load(tmp_path)
    assert [(r["file"], r["row"], r["column"], r["action"]) for r in rejects_of(inp)] == [
        ("enterprises.csv", 3, "industry_code", "field_cleared")]
    assert inp.rejected_rows == 0 and inp.cleared_fields == 1
    ent = inp.frame("enterprises").sort("uscc")
    assert ent["uscc"].to_list() == [C1, C2] and ent["industry_code"].to_list() == ["3823", None]
    assert sorted(inp.frame("tax")["uscc"].to_list()) == [C1, C2, C2]
    assert inp.row_counts()["enterprises"] == {"read": 2, "rejected": 0, "accepted": 2}


def test_two_bad_cells_in_one_row(tmp_path):
    write_enterprises(tmp_path)
    write_csv(tmp_path / "stats.csv", STATS_ZH, [[C1, "二〇二一", "规上", -5], [C2, 2021, "规下", 5]])
    inp = load(tmp_path)
    lines = rejects_of(inp)
    assert [(r["row"], r["column"]) for r in lines] == [(2, "年份"), (2, "营业收入")]
    assert inp.rejected_rows == 1
    assert inp.row_counts()["stats"] == {"read": 2, "rejected": 1, "accepted": 1}


def test_rejected_rows_counted_across_files(tmp_path):
    write_enterprises(tmp_path, [*ENT_ROWS, [code(4), "丁", "柳市镇", "abcd"]])
    write_csv(tmp_path / "tax.csv", TAX_EN, [[C1, "x", "-1"], [C2, 2021, "y"], [C3, 2021, 1]])
    inp = load(tmp_path)
    assert inp.rejects.height == 4
    assert inp.rejected_rows == 2  # the registry's bad industry code is cleared, its row kept
    assert inp.row_counts() == {
        "enterprises": {"read": 4, "rejected": 0, "accepted": 4},
        "tax": {"read": 3, "rejected": 2, "accepted": 1},
    }


def test_rejects_frame_schema(tmp_path):
    write_enterprises(tmp_path)
    inp = load(tmp_path)
    assert inp.rejects.schema == pl.Schema(
        {"file": pl.String, "row": pl.Int64, "column": pl.String, "reason": pl.String, "value": pl.String,
         "action": pl.String})
    assert inp.rejects.height == 0 and inp.rejected_rows == 0


def test_lower_case_and_padded_uscc_in_data_table_matches(tmp_path):
    write_enterprises(tmp_path)
    write_csv(tmp_path / "tax.csv", TAX_EN, [[C1.lower(), 2021, 1], [f"  {C2} ", 2021, 2], [f" {C3.lower()}\t", 2021, 3]])
    inp = load(tmp_path)
    assert inp.rejects.height == 0
    assert inp.frame("tax").sort("uscc").select("uscc", "tax_paid").rows() == [(C1, 1.0), (C2, 2.0), (C3, 3.0)]


def test_lower_case_uscc_in_registry_is_normalized(tmp_path):
    write_enterprises(tmp_path, [[f" {C1.lower()} ", "甲", "柳市镇", "3823"]])
    write_csv(tmp_path / "tax.csv", TAX_EN, [[C1, 2021, 1]])
    inp = load(tmp_path)
    assert inp.rejects.height == 0
    assert inp.frame("enterprises")["uscc"].to_list() == [C1]
    assert inp.frame("tax")["uscc"].to_list() == [C1]


def test_duplicate_key_keeps_first_row_even_when_uscc_written_differently(tmp_path):
    write_enterprises(tmp_path)
    write_csv(tmp_path / "tax.csv", TAX_EN, [[C1.lower(), 2021, 1], [C1, 2021, 2]])
    inp = load(tmp_path)
    assert [(r["row"], r["reason"]) for r in rejects_of(inp)] == [(3, "与第2行主键重复（uscc、year），已保留第2行")]
    assert inp.frame("tax")["tax_paid"].to_list() == [1.0]


def test_row_numbers_count_blank_lines(tmp_path):
    lines = [",".join(ENT_EN), ",".join(ENT_ROWS[0]), "", f"{C2},乙,北白象镇,38X3"]
    (tmp_path / "enterprises.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    inp = load(tmp_path)
    assert [(r["row"], r["value"]) for r in rejects_of(inp) if r["column"] == "industry_code"] == [(4, "38X3")]
    assert inp.frame("enterprises")["uscc"].to_list() == [C1, C2]


def test_blank_lines_are_not_rejected_rows(tmp_path):
    write_enterprises(tmp_path)
    text = f"uscc,year,tax_paid\n{C1},2021,1\n\n{C2},2021,2\n,,\n\n"
    (tmp_path / "tax.csv").write_text(text, encoding="utf-8")
    inp = load(tmp_path)
    assert inp.frame("tax").height == 2
    assert rejects_of(inp) == []


# ---------------------------------------------------------------- 7. land of a rejected parcel is unknown

def test_rejected_parcel_makes_firm_year_land_incomplete(tmp_path):
    write_enterprises(tmp_path)
    write_csv(tmp_path / "land.csv", LAND, [
        [C1, 2021, "P1", 5, "自有"],
        [C1, 2021, "P2", 0, "租赁"],  # rejected: C1's 2021 land is unknown
        [C1, 2020, "P1", 5, "自有"],  # 2020 is complete
        [C2, 2021, "P1", -1, "自有"],  # rejected: C2's 2021 land is unknown
        [C3, 2021, "P1", 2, "自有"],
        [C3, "20x1", "P1", 2, "自有"],  # rejected, but the year is unknown
    ])
    inp = load(tmp_path)
    assert inp.rejected_rows == 3
    got = set(inp.land_incomplete.iter_rows())
    assert got == {(firm_id(inp, C1), 2021), (firm_id(inp, C2), 2021)}
    assert inp.land_incomplete.schema == pl.Schema({"firm_id": pl.UInt32, "year": pl.Int32})
    # the accepted parcels are still there
    assert inp.frame("land").select("uscc", "year", "parcel_id").sort("uscc", "year").rows() == [
        (C1, 2020, "P1"), (C1, 2021, "P1"), (C3, 2021, "P1")]


def test_no_rejected_parcel_no_land_incomplete(tmp_path):
    write_enterprises(tmp_path)
    write_csv(tmp_path / "land.csv", LAND, [[C1, 2021, "P1", 5, "自有"]])
    assert load(tmp_path).land_incomplete.height == 0


def test_rejected_parcel_with_lower_case_uscc_makes_land_incomplete(tmp_path):
    write_enterprises(tmp_path)
    write_csv(tmp_path / "land.csv", LAND, [
        [C1, 2021, "P1", 5, "自有"],
        [f" {C1.lower()} ", 2021, "P2", 0, "自有"],  # rejected for its area; its uscc matches C1
    ])
    inp = load(tmp_path)
    assert inp.rejected_rows == 1
    assert set(inp.land_incomplete.iter_rows()) == {(firm_id(inp, C1), 2021)}


# ---------------------------------------------------------------- 8. unusable files

def test_missing_required_column(tmp_path):
    write_enterprises(tmp_path)
    write_csv(tmp_path / "tax.csv", ["uscc", "year", "税金"], [[C1, 2021, 1]])
    with pytest.raises(InputError) as err:
        load(tmp_path)
    msg = str(err.value)
    assert "tax.csv" in msg and "tax_paid（实缴税金）" in msg
    assert "\n" not in msg


def test_missing_several_required_columns_lists_all(tmp_path):
    write_csv(tmp_path / "enterprises.csv", ["uscc", "name"], [[C1, "甲"]])
    with pytest.raises(InputError, match="enterprises.csv.*township（乡镇街道）、industry_code（行业代码）"):
        load(tmp_path)


def test_optional_columns_may_be_absent(tmp_path):
    write_enterprises(tmp_path)
    write_csv(tmp_path / "stats.csv", STATS_EN, [[C1, 2021, "规上", 1]])
    inp = load(tmp_path)
    stats = inp.frame("stats")
    assert stats["value_added"].to_list() == [None] and stats["employees"].to_list() == [None]


@pytest.mark.parametrize("content", [b"", b"   \n\n", b"\xef\xbb\xbf", b"\xef\xbb\xbf\r\n"],
                         ids=["zero-bytes", "blank-lines", "bom-only", "bom-newline"])
def test_empty_csv(tmp_path, content):
    write_enterprises(tmp_path)
    (tmp_path / "tax.csv").write_bytes(content)
    with pytest.raises(InputError, match="tax.csv"):
        load(tmp_path)


def test_header_only_csv_is_an_empty_table(tmp_path):
    write_enterprises(tmp_path)
    write_csv(tmp_path / "tax.csv", TAX_EN, [])
    inp = load(tmp_path)
    assert inp.frame("tax").height == 0
    assert inp.row_counts()["tax"] == {"read": 0, "rejected": 0, "accepted": 0}


@pytest.mark.parametrize("name, content", [
    ("tax.xlsx", b"this is not a zip file at all\x00\x01\x02" * 10),
    ("tax.xlsx", b"PK\x03\x04" + b"\x00" * 200),  # looks like a zip, is not one
    ("tax.parquet", b"PAR1 garbage garbage garbage"),
    ("tax.parquet", b""),
    ("tax.parquet", os.urandom(300)),
])
def test_garbage_binary_files(tmp_path, name, content):
    write_enterprises(tmp_path)
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError) as err:
        load(tmp_path)
    assert name in str(err.value)


def test_parquet_missing_required_column(tmp_path):
    write_enterprises(tmp_path)
    pl.DataFrame({"uscc": [C1], "year": [2021]}).write_parquet(tmp_path / "tax.parquet")
    with pytest.raises(InputError, match=r"tax\.parquet.*tax_paid（实缴税金）"):
        load(tmp_path)


def test_two_files_for_one_table(tmp_path):
    write_enterprises(tmp_path)
    write_csv(tmp_path / "tax.csv", TAX_EN, [[C1, 2021, 1]])
    pl.DataFrame({"uscc": [C1], "year": [2021], "tax_paid": [1]}).write_excel(tmp_path / "tax.xlsx")
    with pytest.raises(InputError) as err:
        read_dir(tmp_path, set())
    assert "tax.csv" in str(err.value) and "tax.xlsx" in str(err.value)


def test_needed_table_absent(tmp_path):
    write_enterprises(tmp_path)
    with pytest.raises(InputError, match="tax") as err:
        read_dir(tmp_path, {"enterprises", "tax"})
    assert "tax.csv" in str(err.value) and "税收数据" in str(err.value)
    # a table nobody needs may be absent
    files = read_dir(tmp_path, {"enterprises"})
    assert set(files) == {"enterprises"}


def test_data_directory_missing(tmp_path):
    missing = tmp_path / "没有这个目录"
    with pytest.raises(InputError, match="没有这个目录"):
        read_dir(missing, {"enterprises"})
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(InputError):
        read_dir(tmp_path / "a_file", set())


def test_read_dir_is_lazy(tmp_path):
    write_enterprises(tmp_path)
    (tmp_path / "tax.csv").write_bytes(b"")  # unusable, but only when read
    files = read_dir(tmp_path, {"tax"})
    assert files["tax"].frame is None and files["tax"].path == tmp_path / "tax.csv"
    assert files["enterprises"].load().height == 3
    with pytest.raises(InputError, match="tax.csv"):
        files["tax"].load()


def test_raw_table_facts(tmp_path):
    path = write_enterprises(tmp_path)
    files = read_dir(tmp_path, set())
    raw = files["enterprises"]
    frame = raw.load()
    assert raw.rows == 3 and raw.file == "enterprises.csv"
    assert frame["_row"].to_list() == [2, 3, 4]
    assert len(raw.sha256) == 64
    assert raw.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    raw.release()
    assert raw.frame is None


# ---------------------------------------------------------------- CLI

def _cli_dir(d: Path) -> None:
    """Header-only files for every table (all valid), to be spoiled by the test."""
    write_enterprises(d, [])
    for name, table in TABLES.items():
        if name == "enterprises":
            continue
        header = [c.name for c in table.columns if c.required]
        if name == "land":
            header.append("area_mu")
        write_csv(d / f"{name}.csv", header, [])


@pytest.mark.e2e
@pytest.mark.parametrize("spoil, file, words", [
    (lambda d: write_csv(d / "tax.csv", ["uscc", "year", "税金"], [[C1, 2021, 1]]), "tax.csv", ["tax_paid"]),
    (lambda d: ((d / "land.csv").unlink(), (d / "land.xlsx").write_bytes(b"not an excel file" * 20)),
     "land.xlsx", ["Excel"]),
], ids=["missing-column", "garbage-xlsx"])
def test_cli_unusable_file_exits_2_with_one_line(tmp_path, spoil, file, words):
    assert_run_refuses_in_one_line(tmp_path, spoil, file, words)


def assert_run_refuses_in_one_line(tmp_path: Path, spoil, file: str, words: list[str]) -> None:
    """``screening run`` on the small directory as ``spoil`` left it: exit 2, one line naming
    ``file`` with each of ``words``, no traceback."""
    data = tmp_path / "data"
    data.mkdir()
    _cli_dir(data)
    spoil(data)
    proc = cli("run", "--data", data, "--out", tmp_path / "out", "--db", tmp_path / "run.duckdb",
               cwd=tmp_path, timeout=120, env={"COLUMNS": "80", "NO_COLOR": "1"})
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and file in lines[0] and all(w in lines[0] for w in words), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert CHINESE.search(lines[0])
    for w in words:
        assert w in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout


def test_repeated_header_is_an_input_error(tmp_path):
    write_enterprises(tmp_path)
    (tmp_path / "tax.csv").write_text(f"uscc,year,tax_paid,tax_paid\n{C1},2021,1,2\n", encoding="utf-8")
    with pytest.raises(InputError, match="tax_paid"):
        validate(read_dir(tmp_path, set()))


def test_a_file_given_as_a_folder_is_named_as_a_file(tmp_path):
    """``--data /etc/passwd`` said 数据目录不存在 although the path exists (it is a file)."""
    from screening.errors import RuleSetError
    from screening.ruleset import load_ruleset

    given = tmp_path / "README.md"
    given.write_text("x", encoding="utf-8")
    with pytest.raises(InputError, match="数据目录应为文件夹.*是一个文件"):
        read_dir(given, set())
    with pytest.raises(RuleSetError, match="规则集目录应为文件夹.*是一个文件"):
        load_ruleset(given)
    with pytest.raises(InputError, match="数据目录不存在"):
        read_dir(tmp_path / "nope", set())


@pytest.mark.parametrize("employees, year, column, reason", [
    ("inf", "2021", "年平均职工人数", "年平均职工人数应为整数"),
    ("nan", "2021", "年平均职工人数", "年平均职工人数应为整数"),
    ("-inf", "2021", "年平均职工人数", "年平均职工人数应为整数"),
    ("1e30", "2021", "年平均职工人数", "年平均职工人数数值过大（超出整数可表示的范围）"),
    ("12", "inf", "年份", "年份应为整数"),
    ("12", "1e12", "年份", "年份超出合理范围（1949—2100）"),
])
def test_integer_cells_beyond_an_integer_are_rejected_not_a_crash(tmp_path, employees, year, column, reason):
    """A number that no integer can hold (inf, nan, 1e30) in an integer column is a reject line
    naming the cell; the other rows are read.  (It used to stop the run with a Polars cast error.)"""
    write_enterprises(tmp_path)
    write_csv(tmp_path / "stats.csv", ["统一社会信用代码", "年份", "规模", "营业收入", "年平均职工人数"],
              [[C1, year, "规上", "100", employees], [C2, "2021", "规下", "50", "7"]])
    inp = load(tmp_path)
    assert [(r["row"], r["column"], r["reason"]) for r in rejects_of(inp, "stats.csv")] == [(2, column, reason)]
    stats = inp.frame("stats")
    assert stats["uscc"].to_list() == [C2] and stats["employees"].to_list() == [7]
