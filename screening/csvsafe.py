"""CSV files for people: text that Excel or WPS would run as a formula is neutralised.

A firm name, a township or a dispute reason comes from outside (a department's file, a
township user).  Opened in a spreadsheet, a cell that starts with ``=``, ``+``, ``-``, ``@``,
a tab or a carriage return is read as a formula (``=HYPERLINK("http://…","点此")``).  Every
CSV meant for people is therefore written through :func:`write_csv` (Polars) or
:func:`safe_select` (a DuckDB ``COPY``), which put a leading ``'`` before such text — the
spreadsheet then shows the text as written.  A number written plainly (``-3.5``, ``-12``,
``-1e-05``) keeps its sign and stays a number; numeric columns are never touched.

Parquet files are for machines and stay raw; xlsx cells are written as strings (see
``screening.excel.WORKBOOK_OPTIONS``), never as formulas.

The rule is defined once, by the two patterns below; the Polars expression and the DuckDB
macro are both built from them.
"""
from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import polars as pl

from .sqlquote import identifier, literal

#: the first characters of a cell that a spreadsheet reads as a formula
FORMULA_CHARS = ("=", "+", "-", "@", "\t", "\r")
#: the same, as a regular expression (Polars)
FORMULA_START = "^[" + "".join({"-": r"\-", "\t": r"\t", "\r": r"\r"}.get(c, c) for c in FORMULA_CHARS) + "]"
#: a number as this project writes one (optional minus, digits, point, exponent): kept as is
PLAIN_NUMBER = r"^-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
#: what goes before a neutralised cell
PREFIX = "'"
#: the byte order mark that tells Excel/WPS a CSV file is UTF-8 (without it they read the local code page)
BOM = "\ufeff"

_TEXT_TYPES = (pl.String, pl.Categorical, pl.Enum)


def safe_text(column: str | pl.Expr) -> pl.Expr:
    """A text column with every cell a spreadsheet would read as a formula neutralised."""
    col = (pl.col(column) if isinstance(column, str) else column).cast(pl.String)
    risky = col.str.contains(FORMULA_START) & ~col.str.contains(PLAIN_NUMBER)
    return pl.when(risky).then(pl.lit(PREFIX) + col).otherwise(col)


def neutralise(frame: pl.DataFrame, *, as_text: bool = True) -> pl.DataFrame:
    """The frame with its text columns neutralised (vectorised; numeric columns untouched).

    A cheap pass over the first characters (of a categorical column: of its distinct values)
    finds the text columns with a cell that may need it; only those go through
    :func:`safe_text` (two regular expressions per cell), the others become text unchanged.
    ``as_text=False`` (for a file writer, which writes a category as its text): a categorical
    column with nothing to neutralise keeps its type, rather than millions of cells being
    turned into strings first."""
    text = [name for name, dtype in frame.schema.items() if isinstance(dtype, _TEXT_TYPES)]
    exprs = []
    for name in text:
        if _may_start_formula(frame.get_column(name)):
            exprs.append(safe_text(name).alias(name))
        elif as_text and frame.schema[name] != pl.String:
            exprs.append(pl.col(name).cast(pl.String))
    return frame.with_columns(exprs) if exprs else frame


def _may_start_formula(column: pl.Series) -> bool:
    """Whether a cell may start a formula: one anchored regular expression per cell (half the
    CPU of a ``starts_with`` per formula character); a category's distinct values only."""
    values = column if column.dtype == pl.String else column.unique().cast(pl.String)
    return bool(values.str.contains(FORMULA_START).any())


def write_csv(frame: pl.DataFrame, path: str | Path, *, include_bom: bool = True, batch_size: int = 1024) -> Path:
    """Write a CSV meant for people (Excel/WPS): neutralised text, UTF-8 (with BOM by default).

    ``batch_size``: rows Polars formats per task (the bytes do not depend on it); a million-row
    file is written on all cores with batches of tens of thousands, nearly on one with 1024."""
    path = Path(path)
    neutralise(frame, as_text=False).write_csv(path, include_bom=include_bom, batch_size=batch_size)
    return path


def append_csv(frame: pl.DataFrame, file: BinaryIO, *, first: bool, batch_size: int = 1024) -> None:
    """Rows of a CSV meant for people appended to an open binary file, the BOM and header too
    when ``first``.  Parts appended in turn give the bytes :func:`write_csv` gives for all of
    them at once, when they have the same columns of the same types (a column of nulls writes
    the same whatever its type): each cell is neutralised and formatted on its own."""
    neutralise(frame, as_text=False).write_csv(file, include_bom=first, include_header=first, batch_size=batch_size)


def csv_bytes(frame: pl.DataFrame) -> bytes:
    """The same file as :func:`write_csv` (with BOM), in memory: for a download."""
    return b"\xef\xbb\xbf" + neutralise(frame, as_text=False).write_csv().encode("utf-8")


# ------------------------------------------------------------------------------ DuckDB

#: the DuckDB macro (TEMP: it lives with the connection that writes the file)
SQL_MACRO_NAME = "csv_safe"


def sql_macro() -> str:
    """``CREATE … MACRO csv_safe(v)``: the same rule as :func:`safe_text`, for a streamed COPY.

    The first character is compared with each formula character in turn rather than a regular
    expression (a third faster over millions of cells) or an ``IN`` list (which DuckDB turns into
    a join per column: about 0.25 CPU s for each text column of a province's 4 M result rows);
    the number test runs only on the few cells that need it."""
    first = " OR ".join(f"left(v, 1) = chr({ord(c)})" for c in FORMULA_CHARS)
    return (f"CREATE OR REPLACE TEMP MACRO {SQL_MACRO_NAME}(v) AS "
            f"CASE WHEN ({first}) AND NOT regexp_matches(v, {literal(PLAIN_NUMBER)}) "
            f"THEN {literal(PREFIX)} || v ELSE v END")


def safe_select(source: str, columns: dict[str, str], bom: bool = False) -> str:
    """``(SELECT … FROM source)`` with every text column (``columns``: name → DuckDB type)
    passed through the macro of :func:`sql_macro`; the others as they are.

    ``bom``: the first column is named with a leading U+FEFF, so that a DuckDB ``COPY … (HEADER)``
    file starts with the UTF-8 BOM Excel/WPS need to read Chinese text (COPY has no BOM option;
    Polars and DuckDB readers drop it from the name again)."""
    items = []
    for i, (name, dtype) in enumerate(columns.items()):
        q = identifier(name)
        alias = identifier(BOM + name) if bom and i == 0 else q
        text = dtype.upper() == "VARCHAR" or dtype.upper().startswith("ENUM")
        items.append(f"{SQL_MACRO_NAME}({q}::VARCHAR) AS {alias}" if text else f"{q} AS {alias}")
    return f"(SELECT {', '.join(items)} FROM {source})"
