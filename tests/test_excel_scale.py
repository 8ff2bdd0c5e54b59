"""Issue 15: the list workbook at province scale.

The list sheets of a constant-memory workbook are written all rows at once
(screening.excel_rows); the sheet must be the one xlsxwriter writes cell by cell, byte for
byte, for every kind of text a department's file can hold.  A list longer than Excel's
1,048,576 rows is split over sheets that say so.
"""
from __future__ import annotations

import dataclasses
import re
import zipfile
from pathlib import Path

import openpyxl
import polars as pl
import pytest
import xlsxwriter

from screening import excel, excel_rows, spreadsheet
from screening.excel import LIST_COLUMNS, WORKBOOK_OPTIONS, _formats, _list_sheet, write_workbook
from screening.screen import screen

pytestmark = pytest.mark.unit

TEXTS = [
    '=HYPERLINK("http://x","点此")', "+1", "-3.5abc", "@SUM(A1)", "普通企业名称", "", " 前导空格", "末尾空格 ",
    "\u3000全角空格", "换行\n第二行\n第三行", "结尾换行\n", "控制\x01字符\x1f", "\t制表符开头", "回车\r", "_x0041_ 字面",
    "a & b < c > d \" e", "超长" * 9000, "😀" * 17000, "x" * 40000, "\x85下一行", "标签<b>粗</b>",
    "很长的认定理由，" * 40,
]
NUMBERS = [1e-05, 123456789.123456789, -0.0, 0.1 + 0.2, 3.0, 1e22, 2.5e-300, None, -452.65, 7.0]


def _frame(n: int) -> pl.DataFrame:
    rows = []
    for i in range(n):
        rows.append({name: (i + 1 if kind == "int" else NUMBERS[i % len(NUMBERS)]) if kind in ("int", "num2")
                     else (None if (i + c) % 11 == 5 else TEXTS[(i * 7 + c) % len(TEXTS)])
                     for c, (name, _h, _w, kind) in enumerate(LIST_COLUMNS)})
    return pl.DataFrame(rows, schema={name: pl.Int64 if kind == "int" else pl.Float64 if kind == "num2" else pl.String
                                      for name, _h, _w, kind in LIST_COLUMNS})


def _sheet_xml(path: Path, frame: pl.DataFrame, row_by_row: bool, monkeypatch) -> bytes:
    with monkeypatch.context() as m, xlsxwriter.Workbook(str(path), {**WORKBOOK_OPTIONS, "constant_memory": True}) as wb:
        fmts = _formats(wb)
        if row_by_row:  # xlsxwriter's own cell-by-cell writing, the reference
            widths = [float(w) for _, _h, w, _k in LIST_COLUMNS]
            wrapped = [(c, widths[c]) for c, (_, _h, _w, kind) in enumerate(LIST_COLUMNS) if kind == "wrap"]
            m.setattr(excel, "write_cells", lambda ws, *a, **k: excel._list_rows(ws, fmts, frame, LIST_COLUMNS, wrapped))
        _list_sheet(wb, fmts, "清单", frame, page=("标题", "规则集"))
    with zipfile.ZipFile(path) as z:
        return z.read("xl/worksheets/sheet1.xml")


def test_rows_at_once_are_the_sheet_xlsxwriter_writes(tmp_path: Path, monkeypatch):
    frame = _frame(200)
    fast = _sheet_xml(tmp_path / "fast.xlsx", frame, False, monkeypatch)
    slow = _sheet_xml(tmp_path / "slow.xlsx", frame, True, monkeypatch)
    assert b'xml:space="preserve"' in fast and b"_x0001_" in fast and b"_x005F_x0041_" in fast and b"customHeight" in fast
    assert fast == slow


def test_text_that_looks_like_xml_is_text(tmp_path: Path, monkeypatch):
    """xlsxwriter writes a string <r>…</r> as raw rich-text XML; the list writes it as text."""
    frame = _frame(3).with_columns(pl.lit("<r><t>x</t></r>").alias("name"), pl.lit("=1+1").alias("reasons"))
    path = tmp_path / "xml.xlsx"
    _sheet_xml(path, frame, False, monkeypatch)
    ws = openpyxl.load_workbook(path).active
    assert [ws.cell(r, 3).value for r in (2, 3, 4)] == ["<r><t>x</t></r>"] * 3
    assert ws.cell(2, 9).value == "=1+1" and ws.cell(2, 9).data_type == "s"


def test_nan_has_no_cell(tmp_path: Path, monkeypatch):
    frame = _frame(2).with_columns(pl.lit(float("nan")).alias("tax_per_mu"), pl.lit(float("inf")).alias("land_mu"))
    path = tmp_path / "nan.xlsx"
    _sheet_xml(path, frame, False, monkeypatch)
    ws = openpyxl.load_workbook(path).active
    assert ws.cell(2, 10).value is None and ws.cell(2, 11).value is None and ws.cell(2, 12).value is not None


@pytest.fixture(scope="module")
def sample_screening():
    with screen(year=2022) as s:
        yield s


def test_a_list_longer_than_a_sheet_is_split_and_says_so(tmp_path: Path, sample_screening, monkeypatch):
    monkeypatch.setattr(spreadsheet, "MAX_SHEET_ROWS", 7)
    path = tmp_path / "split.xlsx"
    write_workbook(sample_screening, path)
    wb = openpyxl.load_workbook(path, read_only=True)
    n = sample_screening.list.height
    parts = -(-n // 7)
    names = [f"整治企业清单（{i}／{parts}）" for i in range(1, parts + 1)]
    assert [name for name in wb.sheetnames if name.startswith("整治企业清单")] == names
    rows = [list(wb[name].iter_rows(values_only=True)) for name in names]
    assert [len(r) - 1 for r in rows] == [7] * (parts - 1) + [n - 7 * (parts - 1)]
    assert [r[1][0] for r in rows] == [1 + 7 * i for i in range(parts)]  # 序号 runs on across the parts
    summary = [c for row in wb["汇总"].iter_rows(values_only=True) for c in row if isinstance(c, str)]
    assert any("1,048,576" in c and f"分为 {parts} 个工作表" in c for c in summary)
    checks = [name for name in wb.sheetnames if name.startswith("数据核查提示")]
    flagged = sample_screening.anomalies["flagged"].sum()
    assert len(checks) == -(-flagged // 7) > 1 and all("／" in name for name in checks)  # split the same way
    assert sum(wb[name].max_row - 1 for name in checks) == flagged
    townships = [name for name in wb.sheetnames if name not in {"汇总", "规则与依据", "数据问题", *names, *checks}]
    assert sum(1 for name in townships if "／" in name) > 0  # a township over the limit is split the same way
    assert all(wb[name].max_row <= 8 for name in townships)
    listed = sum(wb[name].max_row - 1 for name in townships)
    assert listed == n


def test_a_list_that_fits_is_one_sheet(tmp_path: Path, sample_screening):
    path = tmp_path / "whole.xlsx"
    write_workbook(sample_screening, path)
    wb = openpyxl.load_workbook(path, read_only=True)
    assert "整治企业清单" in wb.sheetnames
    summary = [c for row in wb["汇总"].iter_rows(values_only=True) for c in row if isinstance(c, str)]
    assert not any("1,048,576" in c for c in summary)


def test_numbers_are_written_as_xlsxwriter_writes_them():
    """A number column is formatted at once (excel_rows._numbers), as xlsxwriter's ``%.16G``;
    NaN, infinity and null have no cell; integers beyond 2**53 go through a float as there."""
    floats = [*NUMBERS, float("nan"), float("inf"), float("-inf"), 1e16, 9999999999999998.0, 0.5e-4, 123456.0]
    ints = [1, 36596, -7, 2**53, -(2**53), 2**53 + 1, -(2**53) - 3, 10**17 + 1, 12345678901234567, None]
    expected = [None if v is None or v != v or v in (float("inf"), float("-inf")) else f"{v:.16G}" for v in floats]
    assert excel_rows._numbers(pl.Series("x", floats)).to_list() == expected
    assert excel_rows._numbers(pl.Series("x", ints)).to_list() == [None if v is None else f"{v:.16G}" for v in ints]
    small = [1, 2**53, -(2**53), None]  # all exact: cast by Polars
    assert excel_rows._numbers(pl.Series("x", small)).to_list() == ["1", "9007199254740992", "-9007199254740992", None]
    assert excel_rows._numbers(pl.Series("x", [], dtype=pl.Float64)).to_list() == []


TOWNSHIPS = ["a/b", "[镇]*?", "很长的乡镇街道名称" * 4, "很长的乡镇街道名称" * 4 + "二", None, "  ", "'引号'", "汇总",
             "湖雾镇", "规则与依据"]


def _tricky(s):
    """The sample run's list with every kind of text, number and township name a list can hold."""
    n = s.list.height
    lst = s.list.with_columns(
        pl.Series("name", [TEXTS[i % len(TEXTS)] for i in range(n)]),
        pl.Series("reasons", [TEXTS[(i * 5 + 3) % len(TEXTS)] for i in range(n)]),
        pl.Series("township", [TOWNSHIPS[i % len(TOWNSHIPS)] for i in range(n)]),
        pl.Series("tax_per_mu", [[*NUMBERS, float("nan"), float("inf")][i % 12] for i in range(n)]),
        pl.Series("land_mu", [None if i % 4 == 1 else 10**17 + i / 3 for i in range(n)]))
    return dataclasses.replace(s, list=lst)


def _workbook_parts(path: Path) -> dict[str, bytes]:
    stamp = re.compile(rb"<dcterms:(created|modified)[^>]*>[^<]*</dcterms:\1>")  # the time of writing
    with zipfile.ZipFile(path) as z:
        return {n: stamp.sub(b"", z.read(n)) for n in z.namelist()}


@pytest.mark.parametrize("max_rows", [None, 7])
def test_the_list_cells_made_once_are_each_sheets_own(tmp_path: Path, sample_screening, monkeypatch, max_rows):
    """write_workbook makes the cells of the full list and of every township sheet in one go
    (excel._list_cells): the workbook is byte for byte the one whose sheets make their own cells
    (each compared with xlsxwriter's above), also when the list is split over sheets."""
    if max_rows:
        monkeypatch.setattr(spreadsheet, "MAX_SHEET_ROWS", max_rows)
    s = _tricky(sample_screening)
    write_workbook(s, tmp_path / "once.xlsx")
    with monkeypatch.context() as m:
        m.setattr(excel, "_list_cells", lambda people, fmts: (
            None, [(key, None) for key, _part in people.group_by("township", maintain_order=True)]))
        write_workbook(s, tmp_path / "per_sheet.xlsx")
    once, per_sheet = _workbook_parts(tmp_path / "once.xlsx"), _workbook_parts(tmp_path / "per_sheet.xlsx")
    assert len(once) > 20 and once == per_sheet
    sheets = openpyxl.load_workbook(tmp_path / "once.xlsx", read_only=True).sheetnames
    names = {name.split("（")[0] for name in sheets}  # a part of a split sheet: 名称（i／k）
    assert {"a_b", "_镇___", "未知乡镇"} <= names
    assert max_rows or {"汇总_2", "引号", "规则与依据_2"} <= names


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 1 << 20])
def test_sheet_rows_are_copied_as_xlsxwriter_copies_them(tmp_path: Path, monkeypatch, chunk):
    """The rows of a constant-memory sheet go from their temporary file into the sheet as bytes
    (TextWorksheet); xlsxwriter's text copy turns \\r\\n and \\r into \\n, and so does this one,
    wherever a chunk ends."""
    monkeypatch.setattr(excel, "_COPY_CHUNK", chunk)
    raw = '<row r="2"><c r="A2" t="inlineStr"><is><t>甲\r乙\r\n丙\r\r\n丁\n\r戊\r</t></is></c></row>'

    def sheet(path: Path) -> bytes:
        with excel.Workbook(str(path), {**WORKBOOK_OPTIONS, "constant_memory": True}) as wb:
            ws = wb.add_worksheet()
            ws.write_string(0, 0, "表头\r")
            ws._write_single_row(1)
            ws.fh.write(raw)  # as excel_rows writes rows
            ws.previous_row = 1
            ws.write_string(2, 0, "末行")
        with zipfile.ZipFile(path) as z:
            return z.read("xl/worksheets/sheet1.xml")

    ours = sheet(tmp_path / "ours.xlsx")
    monkeypatch.delattr(excel.TextWorksheet, "_write_optimized_sheet_data")
    theirs = sheet(tmp_path / "theirs.xlsx")
    assert ours == theirs and "甲\n乙\n丙\n\n丁\n\n戊\n".encode() in ours
