"""Workbooks: which sheets are visible, the merged ranges and the Excel error cells.

Cell values are read by fastexcel (calamine) as text.  What calamine does not say — a
sheet's visibility is given by fastexcel, but merged ranges, error cells (``#N/A`` read as
an empty cell) and the 1904 date system are not — is read here from the xlsx parts with
byte-level regular expressions, so the cost stays linear and small; for ``.xls`` (BIFF) files,
from their MERGEDCELLS, BOOLERR, FORMULA and DATEMODE records
(:func:`screening.filesafety.xls_sheet_facts`).
"""
from __future__ import annotations

import re
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import fastexcel
import polars as pl

from .. import filesafety
from ..errors import InputError

if TYPE_CHECKING:
    from .discovery import OpenedTable

_SHEET = re.compile(rb"<(?:\w+:)?sheet\b([^>]*)/?>")
_ATTR = re.compile(rb'([\w:]+)="([^"]*)"')
_REL = re.compile(rb"<(?:\w+:)?Relationship\b([^>]*)/?>")
_MERGE = re.compile(rb'<(?:\w+:)?mergeCell\b[^>]*\bref="([A-Z]+)(\d+):([A-Z]+)(\d+)"')
_ERROR_CELL = re.compile(rb'<(?:\w+:)?c\b([^>]*\bt="e"[^>]*)>(.*?)</(?:\w+:)?c>', re.S)
_VALUE = re.compile(rb"<(?:\w+:)?v>([^<]*)</(?:\w+:)?v>")
#: a cell holding a formula and no computed value (a program wrote the formula, nothing computed it):
#: the reader reads it as empty; its text ("=" + formula) is kept as the cell's error.  An empty
#: ``<v>`` in a text cell (``t="str"``) is a computed value, the empty text (Excel saves
#: ``=IF(A1="","",A1)`` so): a blank cell, never an error
_FORMULA_ONLY = re.compile(rb'<(?:\w+:)?c\b([^>]*[^/])>\s*<(?:\w+:)?f\b[^>]*?(?:/>|>([^<]*)</(?:\w+:)?f>)\s*'
                           rb'(<(?:\w+:)?v\s*/>|<(?:\w+:)?v>\s*</(?:\w+:)?v>)?\s*</(?:\w+:)?c>')
_FIRST_CELL = re.compile(rb'<(?:\w+:)?c\b[^>/]*\br="([A-Z]+)\d+"[^>/]*>\s*<(?:\w+:)?(?:v|is|f)\b')


def col_index(letters: bytes | str) -> int:
    """0-based column index of Excel column letters (A → 0)."""
    n = 0
    for ch in letters.decode() if isinstance(letters, bytes) else letters:
        n = n * 26 + ord(ch) - 64
    return n - 1


@dataclass
class SheetMeta:
    name: str
    visible: str  # "visible", "hidden" or "veryhidden"
    merges: list[tuple[int, int, int, int]] = field(default_factory=list)  # 0-based r1, c1, r2, c2
    errors: list[tuple[int, int, str]] = field(default_factory=list)  # 0-based row, col, error
    first_col: int = 0  # the column calamine's range starts at


@dataclass
class SourceWorkbook:
    """A department's workbook being read (sheets and their metadata), not one we write."""

    path: Path
    reader: object
    sheets: list[SheetMeta]
    date1904: bool = False


def open_workbook(opened: "OpenedTable") -> SourceWorkbook:
    """A workbook file that :func:`.discovery.open_table` let through: it was measured there
    (an xlsx/xlsm: zip caps and sheet extents; an xls: its container and records) before it is read
    here or by the reader."""
    path, kind = opened.path, opened.kind
    if opened.workbook is None:
        raise AssertionError(f"{path.name}: a workbook must be measured (filesafety.check_workbook) before it is read")
    with filesafety.reader_errors(path.name, "无法按 Excel 读取"):
        reader = fastexcel.read_excel(str(path))
        names = reader.sheet_names
    metas = [SheetMeta(n, "visible") for n in names]
    date1904 = False
    if kind == "xlsx":
        date1904 = _xlsx_meta(path, metas)
    else:
        for i, meta in enumerate(metas):
            try:
                meta.visible = str(reader.load_sheet(i, n_rows=1, header_row=None, dtypes="string").visible)
            except Exception:
                pass
        date1904 = _xls_meta(path, metas)
    return SourceWorkbook(path, reader, metas, date1904)


def _xls_meta(path: Path, metas: list[SheetMeta]) -> bool:
    """Merges, error cells and the 1904 flag of an .xls from its BIFF records (calamine reads an
    error cell as empty and fills no merged range); returns the 1904 flag.  The file passed
    filesafety.check_workbook (called by open_table): a damaged part only leaves these unknown."""
    try:
        facts, date1904 = filesafety.xls_sheet_facts(path, filesafety.CLI_LIMITS)
    except (InputError, OSError, ValueError, struct.error):
        return False
    for meta in metas:
        found = facts.get(meta.name)
        if found is not None:
            meta.merges, meta.errors, meta.first_col = found.merges, found.errors, found.first_col or 0
    return date1904


def _xlsx_meta(path: Path, metas: list[SheetMeta]) -> bool:
    """Fill visibility, merges and error cells from the xlsx parts; returns the 1904 flag.
    The parts' sizes were capped by filesafety.check_workbook (called by open_table)."""
    try:
        with zipfile.ZipFile(path) as z:
            return _xlsx_parts(z, metas)
    except (zipfile.BadZipFile, KeyError, OSError):
        return False


def _xlsx_parts(z: zipfile.ZipFile, metas: list[SheetMeta]) -> bool:
    try:
        book = z.read("xl/workbook.xml")
        rels = z.read("xl/_rels/workbook.xml.rels")
    except KeyError:
        return False
    targets = {}
    for m in _REL.finditer(rels):
        a = dict(_ATTR.findall(m.group(1)))
        targets[a.get(b"Id", b"")] = a.get(b"Target", b"").decode()
    date1904 = bool(re.search(rb'date1904="(1|true)"', book))
    by_name = {m.name: m for m in metas}
    for m in _SHEET.finditer(book):
        a = dict(_ATTR.findall(m.group(1)))
        name = _unescape(a.get(b"name", b"").decode("utf-8"))
        meta = by_name.get(name)
        if meta is None:
            continue
        meta.visible = {"hidden": "hidden", "veryHidden": "veryhidden"}.get(a.get(b"state", b"visible").decode(), "visible")
        rid = next((v for k, v in a.items() if k.endswith(b":id")), b"")
        target = targets.get(rid, "")
        part = target.lstrip("/") if target.startswith("/") else "xl/" + target
        try:
            xml = z.read(part)
        except KeyError:
            continue
        if b"<mergeCell" in xml or b":mergeCell" in xml:
            meta.merges = [(int(r1) - 1, col_index(c1), int(r2) - 1, col_index(c2))
                           for c1, r1, c2, r2 in _MERGE.findall(xml)]
        if b't="e"' in xml:
            for em in _ERROR_CELL.finditer(xml):
                ref = dict(_ATTR.findall(em.group(1))).get(b"r")
                v = _VALUE.search(em.group(2))
                if ref and v:
                    rm = re.match(rb"([A-Z]+)(\d+)", ref)
                    meta.errors.append((int(rm.group(2)) - 1, col_index(rm.group(1)), _unescape(v.group(1).decode())))
        if b"<f" in xml or b":f" in xml:
            for fm in _FORMULA_ONLY.finditer(xml):
                attrs = dict(_ATTR.findall(fm.group(1)))
                if fm.group(3) and attrs.get(b"t") == b"str":
                    continue  # computed: the empty text
                ref = attrs.get(b"r")
                if ref and (rm := re.match(rb"([A-Z]+)(\d+)", ref)):
                    text = _unescape((fm.group(2) or b"").decode("utf-8", "replace")).strip()
                    meta.errors.append((int(rm.group(2)) - 1, col_index(rm.group(1)), "=" + text))
        if meta.merges or meta.errors:  # positions are mapped to the frame's columns only then
            meta.first_col = _first_col(xml)
    return date1904


def _first_col(xml: bytes) -> int:
    """The first column holding a value (calamine's range starts there), from the sheet's start."""
    cols = {c for c in _FIRST_CELL.findall(xml[:400_000])}
    return min(col_index(c) for c in cols) if cols else 0


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&apos;", "'").replace("&amp;", "&")


def load_rows(wb: SourceWorkbook, index: int, n_rows: int | None = None) -> pl.DataFrame:
    """A sheet's cells as text, every row from the sheet's row 1 (so row i is Excel row i+1)."""
    with filesafety.reader_errors(wb.path.name, f"无法读取工作表“{wb.sheets[index].name}”"):
        sheet = wb.reader.load_sheet(index, header_row=None, skip_rows=0, n_rows=n_rows, dtypes="string")
        return sheet.to_polars()
