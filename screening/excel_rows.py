"""A large sheet's rows written in one go (the list of a province: tens of thousands of firms).

xlsxwriter spends about 8 µs on every cell it writes (a Python call, its checks, the XML of
the cell): 9 s for the list of a million firms.  In constant-memory mode it writes each row
as an XML fragment to a temporary file; :func:`write_rows` builds the same fragments for
all rows at once with Polars expressions and appends them to that file, then tells the
worksheet how far its data reaches.  The sheet is the one xlsxwriter would have written:
the same cell references, styles, inline strings (control characters as ``_xHHHH_``,
``xml:space="preserve"`` for leading or trailing white space, strings cut at Excel's
32,767 characters), numbers (``.16G``) and row heights (tests/test_excel_scale.py compares
the two byte for byte).  Text is always an escaped inline string, never a formula
(the safety of ``excel.WORKBOOK_OPTIONS``); unlike xlsxwriter, a text that looks like
rich-text XML (``<r>…</r>``) is escaped too, so it shows as written.

Only for worksheets of a constant-memory workbook, after their header row and before any
later row; xlsxwriter 3.x (its private row state: ``fh``, ``previous_row``, dimensions).
"""
from __future__ import annotations

import math
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
#: rows per write to the worksheet's file (bounds the text held at once)
_CHUNK = 20_000

Column = tuple[str, str, Any]  # (frame column, "text" or "number", xlsxwriter Format)


def _inline_string(col: pl.Expr) -> pl.Expr:
    """``<t…>text</t>`` as xlsxwriter writes an inline string (after any cut to MAX_TEXT)."""
    text = (col.str.replace_all(r"(_x[0-9a-fA-F]{4}_)", "_x005F${1}")
            .str.replace_many(_CONTROL, [f"_x{ord(c):04X}_" for c in _CONTROL]))
    preserve = text.str.contains(f"^{_SPACE_CLASS}|{_SPACE_CLASS}$")
    escaped = text.str.replace_many(["&", "<", ">"], ["&amp;", "&lt;", "&gt;"])
    return pl.concat_str(pl.when(preserve).then(pl.lit('<t xml:space="preserve">')).otherwise(pl.lit("<t>")),
                         escaped, pl.lit("</t>"))


def _cut_long_texts(frame: pl.DataFrame, names: Sequence[str]) -> pl.DataFrame:
    """Texts over Excel's limit cut as xlsxwriter cuts them (rare: done in Python for those cells)."""
    for name in names:
        if (frame[name].str.len_chars().max() or 0) > MAX_TEXT // 2:
            frame = frame.with_columns(pl.Series(name, [
                v if v is None or len(v) <= MAX_TEXT // 2 or _utf16_len(v) <= MAX_TEXT else _utf16_truncate(v, MAX_TEXT)
                for v in frame[name].to_list()], dtype=pl.String))
    return frame


def _number(value: Any) -> str | None:
    # NaN and infinity have no cell (xlsxwriter would refuse them); an unknown value neither
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return f"{value:.16G}"


def write_rows(ws: Any, frame: pl.DataFrame, columns: Sequence[Column], first_row: int,
               lines: pl.Expr | None = None, height: Callable[[int], float] | None = None) -> None:
    """Write ``frame``'s rows into ``ws`` from sheet row ``first_row`` (0-based), one cell per
    non-null value, the ``columns`` in order from column A.  ``lines``: an expression giving a
    row's line count; a row of more than one line is ``height(lines)`` points tall."""
    if not ws.constant_memory or ws.previous_row > first_row:
        raise ValueError("write_rows: only for a constant-memory worksheet, before any later row")
    if frame.height == 0:
        return
    names = [name for name, _kind, _fmt in columns]
    texts = [name for name, kind, _fmt in columns if kind == "text"]
    row_attrs: pl.Expr = pl.lit("")
    if lines is not None and height is not None:  # from the texts as given, like excel.row_height
        counts = frame.select(lines.alias("n"))["n"]
        attrs = {n: _height_attrs(height(n)) for n in counts.unique().to_list() if n > 1}
        if attrs:
            row_attrs = pl.col("_lines").replace_strict(attrs, default="", return_dtype=pl.String)
    else:
        counts = pl.Series("n", [1] * frame.height)
    frame = _cut_long_texts(frame.select(names).with_columns(pl.col(texts).cast(pl.String)), texts)
    # numbers as xlsxwriter formats them (Python's .16G); a few columns, formatted once
    frame = frame.with_columns(
        *(pl.Series(name, [_number(v) for v in frame[name].to_list()], dtype=pl.String)
          for name, kind, _fmt in columns if kind == "number"),
        counts.alias("_lines"),
        (pl.int_range(0, pl.len(), dtype=pl.Int64) + (first_row + 1)).cast(pl.String).alias("_r"))
    ws._write_single_row(first_row)  # xlsxwriter's own pending row (the header) goes out first
    # a format's style number is given on its first use: use them in the order cells would
    firsts = frame.select(pl.col(names).is_not_null().arg_max()).row(0)
    present = frame.select(pl.col(names).is_not_null().any()).row(0)
    styles = {}
    for _first, c in sorted((f, c) for c, (f, there) in enumerate(zip(firsts, present)) if there):
        styles[c] = columns[c][2]._get_xf_index()
    cells = []
    for c, (name, kind, fmt) in enumerate(columns):
        head = pl.concat_str(pl.lit(f'<c r="{xl_col_to_name(c)}'), pl.col("_r"), pl.lit(f'" s="{styles.get(c, 0)}"'))
        body = (pl.concat_str(head, pl.lit(' t="inlineStr"><is>'), _inline_string(pl.col(name)), pl.lit("</is></c>"))
                if kind == "text" else pl.concat_str(head, pl.lit("><v>"), pl.col(name), pl.lit("</v></c>")))
        cells.append(pl.when(pl.col(name).is_not_null()).then(body))
    xml = pl.concat_str(pl.lit('<row r="'), pl.col("_r"), pl.lit('"'), row_attrs, pl.lit(">"),
                        *cells, pl.lit("</row>"), ignore_nulls=True)
    for start in range(0, frame.height, _CHUNK):
        ws.fh.write("".join(frame.slice(start, _CHUNK).select(xml.alias("x"))["x"].to_list()))
    last = first_row + frame.height - 1
    ws._check_dimensions(last, len(columns) - 1)
    ws._check_dimensions(first_row, 0)
    ws.previous_row = last  # its row is written: nothing pending


def _height_attrs(points: float) -> str:
    pixels = int(points * 4.0 / 3.0 + 0.5)  # as xlsxwriter's set_row rounds a height
    return f' ht="{pixels * 0.75:.16g}" customHeight="1"'
