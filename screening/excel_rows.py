"""A large sheet's rows written in one go (the list of a province: tens of thousands of firms).

xlsxwriter spends about 8 µs on every cell it writes (a Python call, its checks, the XML of
the cell): 9 s for the list of a million firms.  In constant-memory mode it writes each row
as an XML fragment to a temporary file; :func:`write_cells` builds the same fragments for
all rows at once with Polars expressions and appends them to that file as UTF-8 bytes, then
tells the worksheet how far its data reaches.  The costly part, each cell's escaped text or
formatted number (:func:`cells`), does not depend on the row a cell lands in, so the list
workbook makes it once for the full list and all the township sheets.

The sheet is the one xlsxwriter would have written:
the same cell references, styles, inline strings (control characters as ``_xHHHH_``,
``xml:space="preserve"`` for leading or trailing white space, strings cut at Excel's
32,767 characters), numbers (``.16G``) and row heights (tests/test_excel_scale.py compares
the two byte for byte).  Text is always an escaped inline string, never a formula
(the safety of ``excel.WORKBOOK_OPTIONS``); unlike xlsxwriter, a text that looks like
rich-text XML (``<r>…</r>``) is escaped too, so it shows as written.

Only for worksheets of a constant-memory workbook, after their header row and before any
later row; xlsxwriter 3.x (its private row state: ``fh``, a text file whose ``buffer`` takes
the bytes, ``previous_row``, dimensions).
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import polars as pl
from xlsxwriter.utility import _utf16_len, _utf16_truncate, xl_col_to_name

#: Excel's longest cell text (UTF-16 units); a longer one is cut as xlsxwriter cuts it
MAX_TEXT = 32767
#: what Python's ``\\s`` matches (xlsxwriter's leading/trailing white-space test), as a Rust class:
#: the code points ``str.isspace`` accepts (NumPy's test is CPython's), found in one vectorised
#: pass (a Python loop over all 1,114,112 code points cost 80 ms of every start of the CLI)
_SPACE_CLASS = "[" + "".join(f"\\x{{{c:X}}}" for c in np.flatnonzero(
    np.strings.isspace(np.arange(sys.maxunicode + 1, dtype=np.uint32).view("U1")))) + "]"
#: control characters xlsxwriter writes as ``_xHHHH_`` (tab and line feed stay)
_CONTROL = [chr(c) for c in (*range(0x00, 0x09), *range(0x0B, 0x20))]
#: rows per write to the worksheet's file: the text of a chunk is built several times over (each
#: cell, its row, the chunk, its bytes); 5,000 rows of a province's list hold about 40 MB at once
#: (20,000: about 120 MB, and no faster)
_CHUNK = 5_000

Column = tuple[str, str, Any]  # (frame column, "text" or "number", xlsxwriter Format)


def _inline_string(col: pl.Expr, has_x: bool = True) -> pl.Expr:
    """``<t…>text</t>`` as xlsxwriter writes an inline string (after any cut to MAX_TEXT);
    ``has_x`` False: no text of the column holds ``_x``, so none needs its ``_xHHHH_`` escaped."""
    text = col.str.replace_all(r"(_x[0-9a-fA-F]{4}_)", "_x005F${1}") if has_x else col
    text = text.str.replace_many(_CONTROL, [f"_x{ord(c):04X}_" for c in _CONTROL])
    # two anchored searches: `^a|b$` as one regex scans the whole text for `b$`
    preserve = text.str.contains(f"^{_SPACE_CLASS}") | text.str.contains(f"{_SPACE_CLASS}$")
    escaped = text.str.replace_many(["&", "<", ">"], ["&amp;", "&lt;", "&gt;"])
    return pl.concat_str(pl.when(preserve).then(pl.lit('<t xml:space="preserve">')).otherwise(pl.lit("<t>")),
                         escaped, pl.lit("</t>"))


def _cut_long_texts(frame: pl.DataFrame, names: Sequence[str]) -> pl.DataFrame:
    """Texts over Excel's limit cut as xlsxwriter cuts them (rare: done in Python for those cells)."""
    if not names:
        return frame
    longest = frame.select(pl.col(names).str.len_chars().max()).row(0)  # all columns in one pass
    for name, chars in zip(names, longest):
        if (chars or 0) > MAX_TEXT // 2:
            frame = frame.with_columns(pl.Series(name, [
                v if v is None or len(v) <= MAX_TEXT // 2 or _utf16_len(v) <= MAX_TEXT else _utf16_truncate(v, MAX_TEXT)
                for v in frame[name].to_list()], dtype=pl.String))
    return frame


#: integers up to this size are exact as floats, so ``.16G`` writes their digits (Polars casts them)
_EXACT_INT = 2**53


def _numbers(values: pl.Series) -> pl.Series:
    """Numbers as xlsxwriter writes them (Python's ``.16G``), a whole column at once; null (no
    cell) for an unknown value, NaN or infinity (xlsxwriter would refuse those)."""
    if values.dtype.is_integer() and -_EXACT_INT <= (values.min() or 0) and (values.max() or 0) <= _EXACT_INT:
        return values.cast(pl.String)
    known = (values.is_finite() if values.dtype.is_float() else values.is_not_null()).fill_null(False)
    shown = pl.Series(values.name, list(map("{:.16G}".format, values.filter(known).to_list())), dtype=pl.String)
    if shown.len() == values.len():
        return shown
    return pl.Series(values.name, [None] * values.len(), dtype=pl.String).scatter(known.arg_true(), shown)


def cells(frame: pl.DataFrame, columns: Sequence[Column]) -> pl.DataFrame:
    """Each of ``columns`` of ``frame`` as the XML of its cells after the cell's reference and
    style (`` t="inlineStr"><is><t>…</t></is></c>`` or ``><v>…</v></c>``); null where a row has
    no cell.  Independent of where the rows go, so one frame's cells can fill several sheets."""
    names = [name for name, _kind, _fmt in columns]
    texts = [name for name, kind, _fmt in columns if kind == "text"]
    frame = _cut_long_texts(frame.select(names).with_columns(pl.col(texts).cast(pl.String)), texts)
    frame = frame.with_columns(_numbers(frame[name]) for name, kind, _fmt in columns if kind == "number")
    # the regex replacement of "_xHHHH_" copies every text: only where a column has "_x" at all
    has_x = dict(zip(texts, frame.select(pl.col(texts).str.contains("_x", literal=True).any()).row(0))) if texts else {}
    return frame.select(
        pl.concat_str(pl.lit(' t="inlineStr"><is>'), _inline_string(pl.col(name), has_x[name] is not False),
                      pl.lit("</is></c>")).alias(name)
        if kind == "text" else pl.concat_str(pl.lit("><v>"), pl.col(name), pl.lit("</v></c>")).alias(name)
        for name, kind, _fmt in columns)


def row_heights(lines: pl.Series, height: Callable[[int], float]) -> pl.Series | None:
    """The ``<row>`` attributes of rows of ``lines`` lines (``height(lines)`` points tall when
    more than one); None when every row has one line."""
    attrs = {n: _height_attrs(height(n)) for n in lines.unique().to_list() if n > 1}
    return lines.replace_strict(attrs, default="", return_dtype=pl.String) if attrs else None


def write_cells(ws: Any, made: pl.DataFrame, columns: Sequence[Column], first_row: int,
                heights: pl.Series | None = None) -> None:
    """Write the rows of ``made`` (:func:`cells` of ``columns``) into ``ws`` from sheet row
    ``first_row`` (0-based), the ``columns`` in order from column A; ``heights``: each row's
    attributes (:func:`row_heights`)."""
    if not ws.constant_memory or ws.previous_row > first_row:
        raise ValueError("write_cells: only for a constant-memory worksheet, before any later row")
    if made.height == 0:
        return
    names = [name for name, _kind, _fmt in columns]
    ws._write_single_row(first_row)  # xlsxwriter's own pending row (the header) goes out first
    # a format's style number is given on its first use: use them in the order cells would
    there = made.select(pl.col(names).is_not_null().arg_max().name.suffix(" first"),
                        pl.col(names).is_not_null().any()).row(0)
    firsts, present = there[:len(names)], there[len(names):]
    styles = {}
    for _first, c in sorted((f, c) for c, (f, any_) in enumerate(zip(firsts, present)) if any_):
        styles[c] = columns[c][2]._get_xf_index()
    row = pl.col("_r")
    cell_xml = [pl.concat_str(pl.lit(f'<c r="{xl_col_to_name(c)}'), row, pl.lit(f'" s="{styles.get(c, 0)}"'), pl.col(name))
                for c, name in enumerate(names)]  # null (no cell) where the cell's XML is null
    xml = pl.concat_str(pl.lit('<row r="'), row, pl.lit('"'), pl.col("_attrs"), pl.lit(">"),
                        *cell_xml, pl.lit("</row>"), ignore_nulls=True).str.join("")  # a chunk's rows as one text
    made = made.select(names).with_columns(
        (pl.int_range(0, pl.len(), dtype=pl.Int64) + (first_row + 1)).cast(pl.String).alias("_r"),
        (heights.alias("_attrs") if heights is not None else pl.lit("").alias("_attrs")))
    # straight to the file's bytes (UTF-8): no Python string per row, no encoding; the text file
    # wrapping them writes its pending text first
    ws.fh.flush()
    for start in range(0, made.height, _CHUNK):
        ws.fh.buffer.write(made.slice(start, _CHUNK).select(xml).to_series().cast(pl.Binary).item())
    last = first_row + made.height - 1
    ws._check_dimensions(last, len(columns) - 1)
    ws._check_dimensions(first_row, 0)
    ws.previous_row = last  # its row is written: nothing pending


def _height_attrs(points: float) -> str:
    pixels = int(points * 4.0 / 3.0 + 0.5)  # as xlsxwriter's set_row rounds a height
    return f' ht="{pixels * 0.75:.16g}" customHeight="1"'
