"""Cell values as departments write them, normalised by per-column Polars expressions.

Each text column gets one expression (no Python loop over rows): invisible characters out,
NFKC (full-width digits, letters and punctuation; no-break and ideographic spaces),
surrounding whitespace trimmed; codes lose a leading apostrophe, an ``="…"`` wrapper and a
``.0`` (a credit code its inner spaces); numbers lose thousands separators and their column's
own unit, or are converted from another unit of its kind (units in any letter case); Excel date
serials in date columns become dates; missing-value marks in optional columns become missing.
Every cell so changed (beyond trimming ASCII spaces) is listed with one kind, the one that
changed its value where there is one.  An ambiguous cell is left as written and refused.
"""
from __future__ import annotations

from collections.abc import Callable

import polars as pl

from ..schema import Column
from .header import INVISIBLE_CHARS, missing_marks, normalize_header, tables_data, unit_factor

NORMALISED_SCHEMA = {"file": pl.String, "row": pl.Int64, "column": pl.String, "before": pl.String,
                     "after": pl.String, "kind": pl.String}

#: kinds of normalisation (in run.json and normalised.csv), with their Chinese names
KINDS = {
    "merged_cell": "合并单元格取合并区域的值",
    "invisible": "去除不可见字符",
    "inner_space": "去除统一社会信用代码中间的空格",
    "full_width": "全角转半角（NFKC）",
    "text_marker": "去除代码前的撇号或 =\"…\" 包装",
    "float_code": "代码去掉 .0",
    "thousands": "去除千位分隔符",
    "unit_in_cell": "去除单元格中的单位",
    "unit_converted": "单元格中写了同类的另一单位（如万元列中的元），已换算为本列单位",
    "date_serial": "Excel 日期序列号转为日期",
    "partial_date": "日期只写了年或年月，取该年或该月的第一天",
    "ambiguous_month": "日期写成“年.1”（如 2021.1，可能是由数字 2021.10 变来的 10 月），月份不确定，只取年份（该年第一天）",
    "missing_mark": "缺失标记视为空",
    # written by screening.validate, where these values are typed
    "letter_case": "统一社会信用代码中的小写字母转为大写",
    "code_letter": "行业代码去掉门类字母 C（C3823 → 3823）",
    "enum_word": "取值的另一种写法（C类 → C、b级 → B、是否列的 y/yes/√ → 是）",
}

_INVISIBLE = f"[{INVISIBLE_CHARS}]"
_NON_ASCII = r"[^\x20-\x7e]"
_CODE_KINDS = ("uscc", "code4")
_YEAR_ONLY = r"^((?:19|20)\d{2})\s*年?$"
_YEAR_MONTH = r"^((?:19|20)\d{2})\s*(?:年|[-/.])\s*(\d{1,2})\s*月?$"
#: thousands separators: the first group 1-3 digits not starting with 0 ("0,125" and "00,500" are
#: not grouped numbers — a decimal comma? — and are refused, never read as 125 or 500)
_GROUPED = r"^[-+]?[1-9]\d{0,2}(,\d{3})+(\.\d*)?$"
#: "2021.1" in a date column: Excel shows a number 2021.10 (October) as 2021.1, and a CSV saved from
#: Excel writes it so; after reading, a number and a text cell look the same.  Only ".1" is in doubt
#: (a dropped trailing zero makes another month only from 1: 10; "2021.2" cannot be month 20)
_AMBIGUOUS_MONTH = r"^((?:19|20)\d{2})\.1$"
#: significant digits a converted number keeps (float noise as 123.45670000000001 removed;
#: a cell has far fewer digits than this, and the values are Float64 afterwards)
_CONVERTED_DIGITS = 12
#: a kind that changes what the value means beats one that only changes how it is written, when
#: one cell goes through several steps; normalised.csv and run.json record the cell's highest kind
#: (at equal rank, the first step's)
_RANK = {"unit_converted": 2, "thousands": 2, "date_serial": 2, "partial_date": 2, "ambiguous_month": 2,
         "unit_in_cell": 1, "missing_mark": 1}
_NUMERIC_KINDS = ("number", "integer", "year")
#: Excel's day 0 in the 1900 and 1904 date systems (1900 counts the false 1900-02-29)
_EPOCH = {False: (1899, 12, 30), True: (1904, 1, 1)}


def _other_units(col: Column, header_unit: str | None) -> list[tuple[str, float, float]]:
    """The other units of the column's kind a cell may be written in, with the factor (× first,
    ÷ second) that turns a value in that unit into the column's unit (the header's, else the standard)."""
    if not col.unit:
        return []
    units = tables_data()["units"][col.unit]
    own = _unit_words(col, header_unit)[0]
    num, den = unit_factor(col.unit, own) or (1.0, 1.0)
    return [(u, f[0] * den, f[1] * num) for u, f in units.items()
            if normalize_header(u) != normalize_header(own)]


def _unit_words(col: Column, header_unit: str | None) -> list[str]:
    """Units a cell of this column may carry: the header's unit, else the standard unit."""
    if not col.unit:
        return []
    units = tables_data()["units"][col.unit]
    if header_unit:
        return [header_unit]
    standard = next(iter(units))
    return [standard]


Step = tuple["str | None", "Callable[[pl.Expr], pl.Expr]"]


def steps(col: Column, header_unit: str | None, date1904: bool) -> list[Step]:
    """The normalisation steps of one text column, in order: (kind or None, value → new value).

    Each step is applied to the whole column (:func:`apply`); a step whose kind is None
    (trimming spaces) is not recorded."""
    out: list[Step] = [("invisible", lambda e: e.str.replace_all(_INVISIBLE, ""))]
    if col.kind != "text":  # free text (names) keeps its full-width brackets
        out.append(("full_width", lambda e: e.str.normalize("NFKC")))
    out.append((None, lambda e: e.str.strip_chars()))
    # a credit code has no spaces: "9133 0382 …" as typed, a pasted no-break space; two credit codes
    # joined cannot pass (18 characters and a check character).  An industry code keeps its inner
    # spaces and is refused: "13 14" joined would be 1314, a real class, from two codes
    if col.kind == "uscc":
        out.append(("inner_space", lambda e: e.str.replace_all(r"\s+", "")))
    if col.kind in _CODE_KINDS or col.name in ("parcel_id", "product"):
        out.append(("text_marker", lambda e: e.str.replace(r'^="(.*)"$', "$1").str.strip_prefix("'")
                    .str.strip_prefix("‘").str.strip_chars()))
    if col.kind in ("code4", "year"):
        out.append(("float_code", lambda e: e.str.replace(r"^(\d+)\.0+$", "$1")))
    if col.kind in _NUMERIC_KINDS:
        for unit in _unit_words(col, header_unit):
            pattern = rf"(?i)^([-+]?\d[\d.,]*(?:[eE][-+]?\d+)?)\s*{_escape(unit)}$"  # kWh, kwh, KWH
            out.append(("unit_in_cell", lambda e, p=pattern: e.str.replace(p, "$1")))
        for unit, times, per in _other_units(col, header_unit):
            pattern = rf"(?i)^([-+]?\d[\d.,]*(?:[eE][-+]?\d+)?)\s*{_escape(unit)}$"
            out.append(("unit_converted", lambda e, p=pattern, t=times, d=per: _convert(e, p, t, d)))
        # a comma is a thousands separator only where every group after it has three digits
        # ("1,234,567.5"); "12,5" or "1.234,5" is left as written and refused, never guessed
        out.append(("thousands", lambda e: pl.when(e.str.contains(_GROUPED)).then(e.str.replace_all(",", ""))
                    .otherwise(e)))
    if col.kind == "date":
        y, m, d = _EPOCH[date1904]

        def serial(e: pl.Expr) -> pl.Expr:
            # five digits: 10000 is 1927-05-18, 99999 is 2173; a four-digit number is a year, and
            # "2021.05" is May 2021 (as 2021 days it would be 1905), never a serial
            is_serial = e.str.contains(r"^\d{5}(\.\d+)?$")
            days = e.cast(pl.Float64, strict=False).floor().cast(pl.Int64)
            as_date = (pl.date(y, m, d) + pl.duration(days=days)).dt.strftime("%Y-%m-%d")
            return pl.when(is_serial).then(as_date).otherwise(e)
        out.append(("date_serial", serial))
        # a year ("2021", "2021年") or a month ("2021年5月", "2021-05"): its first day; the rules and
        # the evaluation ask only whether a firm was established before 1 January of a year
        out.append(("ambiguous_month", lambda e: e.str.replace(_AMBIGUOUS_MONTH, "$1-01-01")))
        out.append(("partial_date", lambda e: e.str.replace(_YEAR_ONLY, "$1-01-01").str.replace(_YEAR_MONTH, "$1-$2-01")))
    out.append((None, lambda e: pl.when(e == "").then(None).otherwise(e)))
    if not col.nonnull:
        marks = sorted(missing_marks())
        out.append(("missing_mark", lambda e: pl.when(e.str.to_lowercase().is_in(marks)).then(None).otherwise(e)))
    return out


#: a character some step changes: invisible ones, Unicode spaces, full-width forms
_CHAR_CLASS = f"[{INVISIBLE_CHARS}\u00a0\u2000-\u200a\u202f\u205f\u3000\uff01-\uff5e]"
_DATE_CLEAN = r"^\d{4}-\d{1,2}-\d{1,2}( 00:00:00)?$"
#: the length a clean code has (anything else goes through the steps: cheap, no regex)
_CODE_LEN = {"uscc": 18, "code4": 4}


def _dirty(frame: pl.DataFrame, col: Column) -> pl.Series:
    """The cells of one column that may need normalising; a clean cell is found without a
    regex where possible (a code's byte length, a number's cast, an enum's allowed values,
    an ASCII-only text), so a clean province-size file costs a few cheap passes."""
    e = pl.col(col.name)
    present = e.is_not_null()
    if col.kind in ("number", "integer", "year"):
        return frame.select(present & e.cast(pl.Float64, strict=False).is_null()).to_series()
    if col.kind in _CODE_LEN:
        return frame.select(present & (e.str.len_bytes() != _CODE_LEN[col.kind])).to_series()
    if col.kind == "date":
        return frame.select(present & ~e.str.contains(_DATE_CLEAN)).to_series()
    if col.allowed:
        return frame.select(present & ~e.is_in(list(col.allowed))).to_series()
    marks = sorted({v for m in missing_marks() for v in (m, m.upper())})  # no per-cell lower-casing
    cheap = present & (e.is_in(marks) | e.str.starts_with("'") | e.str.starts_with("="))
    mask = frame.select(cheap.alias("c"), (e.str.len_bytes() != e.str.len_chars()).fill_null(False).alias("u"))
    if mask["u"].any():  # only text with non-ASCII characters can hold invisible or full-width ones
        # the whole column searched (no copy of the non-ASCII cells: in a column of Chinese
        # names that is every cell); an ASCII cell is passed over quickly
        return mask.select(pl.col("c") | (pl.col("u") & frame.select(e.str.contains(_CHAR_CLASS)).to_series())
                           ).to_series()
    return mask["c"]


def apply(frame: pl.DataFrame, plans: dict[str, tuple[Column, list[Step]]]) -> tuple[pl.DataFrame, dict[str, pl.Series]]:
    """Run every column's steps on the cells that need them.

    One regex pass per column finds the cells that are not already clean; only those go
    through the steps, one step of every column per pass (no expression grows with the
    number of steps).  Returns the frame and, per column, the kind of each cell's change
    (the highest in ``_RANK`` of its steps' kinds; null where the cell is unchanged but for spaces)."""
    if not plans:
        return frame, {}
    kinds: dict[str, pl.Series] = {}
    updated = []
    for n, (c, plan) in plans.items():
        mask = _dirty(frame, c)
        if not mask.any():
            continue
        idx = mask.arg_true()
        sub = frame.select(pl.col(n).gather(idx))
        kind = pl.Series(n, [None] * len(idx), dtype=pl.String)
        for step_kind, fn in plan:
            new = sub.select(fn(pl.col(n)).alias(n))[n]
            if step_kind is not None:
                changed = sub[n].ne_missing(new)
                rank = _RANK.get(step_kind, 0)
                earlier = kind.replace_strict(_RANK, default=0, return_dtype=pl.Int8)
                kind = pl.select(pl.when(changed & (kind.is_null() | (earlier < rank)))
                                 .then(pl.lit(step_kind)).otherwise(kind)).to_series()
            sub = new.to_frame()
        full_kind = pl.Series(n, [None] * frame.height, dtype=pl.String).scatter(idx, kind)
        kinds[n] = full_kind
        updated.append(frame[n].scatter(idx, sub[n]))
    if updated:
        frame = frame.with_columns(updated)
    return frame, kinds


def _convert(e: pl.Expr, pattern: str, times: float, per: float) -> pl.Expr:
    """A number written with another unit of the column's kind, in the column's unit (as text;
    a number whose commas are not thousands separators stays as written, and is refused)."""
    number = e.str.extract(pattern, 1)
    plain = pl.when(number.str.contains(_GROUPED)).then(number.str.replace_all(",", "")).otherwise(number)
    value = (plain.cast(pl.Float64, strict=False) * times / per).round_sig_figs(_CONVERTED_DIGITS)
    return pl.when(value.is_not_null()).then(value.cast(pl.String)).otherwise(e)


def _escape(unit: str) -> str:
    return "".join("\\" + ch if ch in r".^$*+?()[]{}|\/" else ch for ch in normalize_header(unit))
