"""Type and check every input row; unusable rows go to ``rejects`` with a Chinese reason.

All checks are Polars expressions over whole columns.  A row with several problems
yields one reject line per problem (each names its column) and counts once as a
rejected row.  Order: cell checks, then enterprises unknown to the registry, then
duplicate keys among the rows left.

The registry (``enterprises``) gets every enterprise a compact ``firm_id``; the other
tables carry ``firm_id`` instead of the 18-character code, which keeps a province's
data small in memory and its joins fast.  :meth:`Inputs.frame` adds ``uscc`` back.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import polars as pl

from . import uscc as uscc_mod
from .ingest import ROW, RawTable
from .ingest.cells import NORMALISED_SCHEMA
from .ingest.header import excel_errors, missing_marks, tables_data
from .schema import DATE_YEAR_RANGE, M2_PER_MU_DEN, M2_PER_MU_NUM, TABLES, YEAR_RANGE, Column, Table

REJECT_SCHEMA = {"file": pl.String, "row": pl.Int64, "column": pl.String, "reason": pl.String, "value": pl.String,
                 "action": pl.String}
#: what a reject line did: the whole row left out, or (registry only) one field made unknown
ROW_REJECTED, FIELD_CLEARED = "row_rejected", "field_cleared"
FIRM_ID = "firm_id"
PRODUCT_REJECTED_SCHEMA = {FIRM_ID: pl.UInt32, "year": pl.Int32, "product": pl.String}

_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y.%m.%d", "%Y年%m月%d日")
_DTYPES = {
    "uscc": pl.String, "text": pl.String, "code4": pl.String, "enum": pl.String,
    "year": pl.Int32, "date": pl.Date, "number": pl.Float64, "integer": pl.Int64,
}
#: how a yes/no flag column (``small_park``) may be written
_YES = ["是", "y", "yes", "true", "1", "√", "✓"]
_NO = ["否", "n", "no", "false", "0", "×", "✗"]
#: the magnitude from which a number no longer fits the Int64 of an integer column (a dtype limit)
_INT64_LIMIT = float(2 ** 63)


@dataclass
class Inputs:
    """Validated, typed tables plus everything that was rejected.

    ``tables["enterprises"]`` has ``firm_id`` and ``uscc``; the other tables have ``firm_id``.
    """

    tables: dict[str, pl.DataFrame]
    rejects: pl.DataFrame
    files: dict[str, RawTable] = field(default_factory=dict)
    #: (firm_id, year) whose land is unknown because one of its parcel rows was rejected
    land_incomplete: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(schema={FIRM_ID: pl.UInt32, "year": pl.Int32})
    )
    read_rows: dict[str, int] = field(default_factory=dict)
    accepted_rows: dict[str, int] = field(default_factory=dict)
    #: every cell changed in reading (file, row, column, before, after, kind)
    normalised: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=NORMALISED_SCHEMA))
    #: firms with accepted rows, per table and year (the years kept: all unless ``keep_years``)
    coverage: dict[str, dict[int, int]] = field(default_factory=dict)
    #: the years each table's accepted rows hold, before ``keep_years`` (the list years the data supports)
    data_years: dict[str, list[int]] = field(default_factory=dict)
    #: (firm_id, year, product) of the product_energy rows rejected (product null when it could not
    #: be read): that product's unit consumption is unknown (rule 4)
    product_rejected: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=PRODUCT_REJECTED_SCHEMA))

    def release_tables(self) -> None:
        """Drop the validated rows (counts, rejects and file facts stay); frees memory once
        the rows live in the screening engine."""
        self.tables = {name: frame.clear() for name, frame in self.tables.items()}

    def frame(self, name: str) -> pl.DataFrame:
        """A table with ``uscc`` as its first column (for people and notebooks)."""
        table = self.tables[name]
        if name == "enterprises":
            return table.drop(FIRM_ID)
        ids = self.tables["enterprises"].select(FIRM_ID, "uscc")
        return table.join(ids, on=FIRM_ID, how="left").select("uscc", pl.exclude("uscc", FIRM_ID))

    def _row_rejects(self) -> pl.DataFrame:
        if "action" not in self.rejects.columns:
            return self.rejects
        return self.rejects.filter(pl.col("action") != FIELD_CLEARED)

    @property
    def rejected_rows(self) -> int:
        rows = self._row_rejects()
        return rows.select(pl.struct("file", "row").n_unique()).item() if rows.height else 0

    @property
    def cleared_fields(self) -> int:
        return self.rejects.height - self._row_rejects().height

    def normalised_counts(self) -> dict[str, dict[str, int]]:
        """Cells changed in reading, by file and kind (run.json)."""
        if not self.normalised.height:
            return {}
        g = self.normalised.group_by("file", "kind").len().sort("file", "kind")
        out: dict[str, dict[str, int]] = {}
        for file, kind, n in g.iter_rows():
            out.setdefault(file, {})[kind] = n
        return out

    def row_counts(self) -> dict[str, dict[str, int]]:
        rej = self._row_rejects().group_by("file").agg(pl.col("row").n_unique().alias("n"))
        by_file = dict(zip(rej["file"].to_list(), rej["n"].to_list()))
        counts = {}
        for name, raw in self.files.items():
            counts[name] = {"read": self.read_rows.get(name, 0), "rejected": by_file.get(raw.file, 0),
                            "accepted": self.accepted_rows.get(name, 0)}
            normalised = raw.normalised.height
            if normalised:
                counts[name]["normalised"] = normalised
            if raw.other_year_rows:  # rows of other years, not read (RawTable.years)
                counts[name]["other_years"] = raw.other_year_rows
        return counts

    def other_year_rows(self) -> int:
        """Rows left out unread because they are of other years (``RawTable.years``)."""
        return sum(raw.other_year_rows for raw in self.files.values())


# ---------------------------------------------------------------- cell parsing

def _as_text(col: str, dtype: pl.DataType) -> pl.Expr:
    """Trimmed text with empty cells as null; numbers that are whole print without '.0'."""
    e = pl.col(col)
    if dtype.is_float():
        e = pl.when(e == e.round(0)).then(e.cast(pl.Int64).cast(pl.String)).otherwise(e.cast(pl.String))
    elif dtype != pl.String:
        e = e.cast(pl.String)
    e = e.str.strip_chars()
    return pl.when(e == "").then(None).otherwise(e)


class _Helper(NamedTuple):
    """A helper column of :func:`_check_cells`: ``name`` holds ``expr``.  ``text_of``: ``expr``
    is :func:`_as_text` of that String column (see :func:`_text_column`).  ``keep``: the
    rows (a condition on the text helper ``source``) where ``expr`` is that text unchanged,
    so that ``expr`` is computed only on the others (see :func:`_changed_only`)."""

    name: str
    expr: pl.Expr
    text_of: str | None = None
    keep: pl.Expr | None = None
    source: str | None = None


Stage = "list[_Helper] | None"


def _staged(stage: Stage, name: str, expr: pl.Expr, text_of: str | None = None,
            keep: tuple[str, pl.Expr] | None = None) -> pl.Expr:
    """``expr`` computed once into a helper column ``name`` when ``stage`` collects them (a
    value that both the typed column and the problem conditions read: an eager select computes
    a shared expression once per use, and text is the costly part); else ``expr`` itself.
    ``text_of``, ``keep`` (source, condition): see :class:`_Helper`."""
    if stage is None:
        return expr
    source, unchanged = keep or (None, None)
    stage.append(_Helper(name, expr, text_of, unchanged, source))
    return pl.col(name)


def _text(stage: Stage, col: Column, dtype: pl.DataType) -> pl.Expr:
    """The cells of ``col`` as text (:func:`_as_text`), staged as ``_text_<name>``; where every
    cell of a String column is already one of the column's allowed values, the column itself."""
    name = col.name
    trimmed = col.allowed and all(v and v == v.strip() for v in col.allowed)
    keep = (name, pl.col(name).is_null() | pl.col(name).is_in(col.allowed)) if trimmed else None
    return _staged(stage, f"_text_{name}", _as_text(name, dtype), name if dtype == pl.String else None, keep)


def _changed_only(frame: pl.DataFrame, helper: _Helper) -> pl.Series:
    """``helper.expr`` computed only on the rows where it may change the text: the text
    column itself (no copy) when every row keeps it, as a clean file's rows do."""
    text = frame[helper.source]
    keep = frame.select(helper.keep.fill_null(False)).to_series()
    if keep.all():
        return text
    idx = (~keep).arg_true()
    changed = frame.select(pl.col(helper.source).gather(idx)).select(helper.expr).to_series()
    return text.scatter(idx, changed)


def _helper_column(frame: pl.DataFrame, helper: _Helper) -> pl.Series:
    if helper.text_of:
        if helper.keep is not None and frame.select(helper.keep.fill_null(False).all()).item():
            return frame[helper.text_of]  # an allowed value is trimmed and not empty
        return _text_column(frame, helper.text_of)
    if helper.keep is not None:
        return _changed_only(frame, helper)
    return frame.select(helper.expr).to_series()


def _text_column(frame: pl.DataFrame, name: str) -> pl.Series:
    """:func:`_as_text` of a String column with one strip: the column itself (no copy) when no
    cell is padded or empty, which is how a clean province-size file comes."""
    raw = frame[name]
    for i in _slices(len(raw)):  # looked at a slice at a time: nothing kept when all is clean
        part = raw.slice(i, _SLICE)
        length = part.str.strip_chars().str.len_bytes()
        if (length == 0).any() or (length != part.str.len_bytes()).any():
            break
    else:
        return raw
    stripped = raw.str.strip_chars()
    return pl.select(pl.when(stripped == "").then(None).otherwise(stripped)).to_series()


def _number(col: Column, dtype: pl.DataType, factor: tuple[float, float] | None = None, stage: Stage = None
            ) -> tuple[pl.Expr, pl.Expr, pl.Expr, pl.Expr | None]:
    """(value as Float64 in the contract's unit, cell present, present but not a finite number,
    the cell's text: None for a numeric column).

    ``factor``: the unit written in the header, as value × num / den."""
    text = None
    if dtype.is_numeric():
        value = pl.col(col.name).cast(pl.Float64)  # no copy when already Float64
        present = value.is_not_null()
        bad = present & ~value.is_finite()
    else:
        text = _text(stage, col, dtype)
        value = _staged(stage, f"_value_{col.name}", text.cast(pl.Float64, strict=False))
        present, bad = text.is_not_null(), text.is_not_null() & (value.is_null() | ~value.is_finite())
    if factor is not None:
        value = value * factor[0] / factor[1]
    return value, present, bad, text


#: numbers as clerks write them that are not read, each with its own reason (validate._number_reason);
#: the cells reach here after ingest.cells (full-width forms half-width, true thousands commas gone)
_SPACED_DIGITS = r"\d\s+[\d.]"
_BRACKETED = r"^\(\s*([\d.,]+)\s*\)$"
_PERCENT = r"^[-+]?[\d.,]+\s*%$"
_DOTS = r"^[-+]?[\d,]*\.[\d,]*\.[\d.,]*$"
_COMMA = r"\d,\d"
#: a number with something else before or after it: a currency sign, a unit the reader does not
#: know (one it knows is converted when the cell is read), a word
_WORDED = r"^[^\d]*\d[\d.,]*[^\d]*$"
#: what is not the number itself in such a cell (a sign, a minus written with a dash, a
#: separator and spaces are not a unit: ``12-``, ``−12``, ``12,`` keep the plain reason)
_NOT_UNIT = r"[\d.,\s+\-\u2212\u2012\u2013\u2014\u2015\uff0d]"


def _number_reason(col: Column, text: pl.Expr | None, fallback: str) -> pl.Expr:
    """Why a number cell was not read, where the way it is written says why (evaluated only on
    the failing rows, as every reason is: see :func:`_reject_lines`); else ``fallback``."""
    if text is None:
        return pl.lit(fallback)
    if col.min is not None and col.min >= 0:
        negative = pl.lit(f"括号表示的负数（会计写法），{col.zh}不能为负数")
    else:
        negative = pl.format("括号表示的负数（会计写法），请写成 -{}", text.str.extract(_BRACKETED, 1))
    percent = "百分数不能作为金额" if col.unit == "money" else \
        "写成了百分数，不知应读作原数还是除以 100，不予猜测（请填写数值本身）"
    # a year's word (2021年) is not a unit: a year column says what a year is written as
    unit = text.str.replace_all(_NOT_UNIT, "")
    worded = pl.lit(False) if col.kind == "year" else text.str.contains(_WORDED) & (unit.str.len_chars() > 0)
    return (pl.when(text.str.to_lowercase().is_in(sorted(missing_marks())))
            .then(pl.lit(f"缺少{col.zh}（单元格中是表示缺失的记号，本列必填）"))
            .when(text.str.contains(_SPACED_DIGITS)).then(pl.lit("数字中间有空格（千位分隔？还是两个数？），不予猜测"))
            .when(text.str.contains(_BRACKETED)).then(negative)
            .when(text.str.contains(_PERCENT)).then(pl.lit(percent))
            .when(text.str.contains(_DOTS)).then(pl.lit("有不止一个小数点，不予猜测"))
            .when(text.str.contains(_COMMA)).then(pl.lit("逗号不是千位分隔符（每组应为三位数字），可能是小数逗号，不予猜测"))
            .when(worded).then(
                pl.format(f"数字带有无法识别的单位或符号“{{}}”，不予猜测（请只填写数值{_known_units(col)}）",
                          unit))
            .otherwise(pl.lit(fallback)))


def _known_units(col: Column) -> str:
    """For a message: the units a cell of the column may be written in (each is converted)."""
    if not col.unit:
        return ""
    return "；可识别并自动换算的单位：" + "、".join(tables_data()["units"][col.unit])


Problem = tuple[pl.Expr, "str | pl.Expr"]

#: rows per slice where a whole-column temporary would only be looked at once (a check, a
#: lookup): the slices' temporaries reuse the same memory instead of growing the process
_SLICE = 1 << 20


def _slices(n: int, step: int | None = None) -> range:
    return range(0, n, step or _SLICE)


def _parse(col: Column, dtype: pl.DataType, registry: bool,
           factor: tuple[float, float] | None = None, stage: Stage = None) -> tuple[pl.Expr, list[Problem]]:
    """The typed value and the column's problems as (condition, Chinese reason), first match wins.

    ``registry``: the uscc column of enterprises, checked in full; elsewhere a uscc is
    checked by looking it up in the registry (see :func:`_attach_firm_id`).  ``stage``: a
    list that collects the helper columns (name, expression) the value and the conditions
    read (:func:`_staged`); they must be added to the frame, in order, before either is used.
    """
    problems: list[Problem] = []
    kind = col.kind
    if kind in ("year", "number", "integer"):
        value, present, bad_type, text = _number(col, dtype, factor, stage)
        # an integer column is whole and finite: no such check, and a year stays an integer
        integral = dtype.is_integer() and factor is None
        if kind == "year" and integral:
            value = pl.col(col.name)
        if kind == "number":
            problems.append((bad_type, _number_reason(col, text, "不是有效的数字")))
        else:
            label = "年份" if kind == "year" else col.zh
            if not integral:
                whole = value == value.round(0)
                problems.append((bad_type | (present & ~whole), pl.when(bad_type).then(
                    _number_reason(col, text, f"{label}应为整数")).otherwise(pl.lit(f"{label}应为整数"))))
            if kind == "year":
                lo, hi = YEAR_RANGE
                problems.append((present & ~value.is_between(lo, hi), f"年份超出合理范围（{lo}—{hi}）"))
            else:
                problems.append((present & (value.abs() >= _INT64_LIMIT), f"{col.zh}数值过大（超出整数可表示的范围）"))
        if col.min is not None:
            if col.min_exclusive:
                problems.append((present & (value <= col.min), f"{col.zh}必须大于{col.min:g}"))
            else:
                problems.append((present & (value < col.min), f"{col.zh}不能为负数"))
    elif kind == "date":
        present = pl.col(col.name).is_not_null()
        if dtype == pl.Date:
            value = pl.col(col.name)
        elif isinstance(dtype, pl.Datetime):
            value = pl.col(col.name).dt.date()
        else:
            text = _text(stage, col, dtype)
            present = text.is_not_null()
            value = _staged(stage, f"_value_{col.name}", parse_dates(text))
        problems.append((present & value.is_null(), "日期无法识别（应为 YYYY-MM-DD）"))
        lo, hi = DATE_YEAR_RANGE
        problems.append((present & ~value.dt.year().is_between(lo, hi).fill_null(True),
                         f"日期的年份超出合理范围（{lo}—{hi}），年份须写四位"))
    elif kind == "uscc" and not registry:
        # looked up in the registry as written; only codes not found there are normalized
        # and checked (see _attach_firm_id), which spares millions of string operations
        value = pl.col(col.name) if dtype == pl.String else pl.col(col.name).cast(pl.String)
        present = value.is_not_null()
    else:
        text = _text(stage, col, dtype)
        present = text.is_not_null()
        value = text
        if kind == "uscc":
            value = _staged(stage, f"_value_{col.name}", text.str.to_uppercase())
            problems.append((present & ~value.str.contains(uscc_mod.PATTERN), uscc_mod.FORMAT_REASON))
        elif kind == "code4":
            # a leading 门类 letter C is harmless
            value = _staged(stage, f"_value_{col.name}", text.str.strip_prefix("C").str.strip_prefix("c"),
                            keep=_keep_text(col.name, ~text.str.starts_with("C") & ~text.str.starts_with("c")))
            # "13 14" is not joined into 1314 (a real class made of two codes): said so
            problems.append((present & text.str.contains(r"\d\s+\d"),
                             "行业代码中间有空格，可能是两个代码，不予拼接（应为4位数字，GB/T 4754-2017）"))
            problems.append((present & ~value.str.contains(r"^\d{4}$"), "行业代码应为4位数字（GB/T 4754-2017）"))
        elif col.name == "grade":  # an allowed grade is kept as it is
            value = _staged(stage, f"_value_{col.name}",
                            text.str.to_uppercase().str.strip_suffix("类").str.strip_suffix("级"),
                            keep=_keep_text(col.name, text.is_in(col.allowed)))
        elif col.name == "small_park":  # a yes/no flag as departments write it
            value = _staged(stage, f"_value_{col.name}", text.str.to_lowercase().replace_strict(
                _YES + _NO, ["是"] * len(_YES) + ["否"] * len(_NO), default=text),
                keep=_keep_text(col.name, text.is_in(col.allowed)))
        if col.allowed:
            problems.append((present & ~value.is_in(col.allowed), f"{col.zh}只能为：{'、'.join(col.allowed)}"))
    if col.nonnull:
        problems.insert(0, (~present, f"缺少{col.zh}"))
    # a number no integer holds (inf, 1e30) is a problem above; its typed value is null, not an error
    return value.cast(_DTYPES[kind], strict=kind not in ("year", "integer")).alias(col.name), problems


def _keep_text(name: str, unchanged: pl.Expr) -> tuple[str, pl.Expr]:
    """(source, condition) for :func:`_staged`: where the text helper of column ``name`` is
    null or ``unchanged`` holds, the value is that text as it is."""
    return f"_text_{name}", pl.col(f"_text_{name}").is_null() | unchanged


def parse_dates(text: pl.Expr) -> pl.Expr:
    """Dates as bureau files write them: 2022-11-01, 2022/11/1, 20221101, 2022年11月1日 (or 1号),
    2022 11 1; a time of day (Excel exports one) is ignored.  Unparseable → null.

    Spaces go only next to 年/月/日/号 and separators ("2021 年 5 月 13 号", "2021 - 5 - 13"); spaces
    between numbers are separators ("2021 1 13" is 2021-01-13).  Eight digits are YYYYMMDD, and only
    eight: "2021113" could be 1 November or 13 January and is refused, never guessed."""
    head = text.str.replace(r"[ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$", "").str.strip_chars()
    head = (head.str.replace_all(r"\s*([年月日号/.\-])\s*", "$1").str.replace_all(r"\s+", "-")
            .str.replace("号$", "日"))
    return pl.coalesce([pl.when(head.str.contains(r"^\d{8}$")).then(head.str.to_date(fmt, strict=False))
                        if fmt == "%Y%m%d" else head.str.to_date(fmt, strict=False) for fmt in _DATE_FORMATS])


def _reason(problems: list[Problem]) -> pl.Expr:
    out = pl.lit(None, dtype=pl.String)
    for cond, reason in reversed(problems):  # the first matching problem wins
        out = pl.when(cond).then(reason if isinstance(reason, pl.Expr) else pl.lit(reason)).otherwise(out)
    return out


def _flag(problems: list[Problem]) -> pl.Expr:
    return pl.any_horizontal(cond for cond, _ in problems) if problems else pl.lit(False)


# ---------------------------------------------------------------- table checks

def _land_problems(cols: list[str], parsed: dict[str, list[Problem]]) -> None:
    """A parcel needs an area in 亩 or in m²; report its absence on the first area column the file has."""
    area_cols = [c for c in ("area_mu", "area_m2") if c in cols]
    missing = pl.all_horizontal(pl.col(c).is_null() for c in area_cols)
    parsed[area_cols[0]].append((missing, "缺少用地面积"))


def _land_area(good: pl.DataFrame) -> pl.DataFrame:
    """One area in 亩 per parcel: area_mu where given, else area_m2 converted (1 亩 = 2000/3 m²)."""
    if "area_m2" not in good.columns:
        return good
    converted = pl.col("area_m2") * M2_PER_MU_DEN / M2_PER_MU_NUM
    mu = pl.coalesce("area_mu", converted) if "area_mu" in good.columns else converted
    return good.with_columns(mu.alias("area_mu"))


def _rows_not_read(raw: RawTable) -> pl.DataFrame:
    """Reject lines for the rows the reader took out: report furniture (栏次/合计/制表人 …: not
    records, said so) and CSV rows with more cells than the header."""
    parts = [pl.DataFrame(schema=REJECT_SCHEMA)]
    if raw.furniture.height:
        parts.append(raw.furniture.select(
            pl.lit(raw.file).alias("file"), pl.col(ROW).alias("row"), pl.lit("（整行）").alias("column"),
            pl.format("{}，不是数据行，未读取", "reason").alias("reason"), pl.lit(None, dtype=pl.String).alias("value"),
            pl.lit(ROW_REJECTED).alias("action")))
    if raw.ragged.height:
        parts.append(raw.ragged.select(
            pl.lit(raw.file).alias("file"), pl.col(ROW).alias("row"), pl.lit("（整行）").alias("column"), "reason",
            "value", pl.lit(ROW_REJECTED).alias("action")))
    return pl.concat(parts, how="vertical_relaxed") if len(parts) > 1 else parts[0]


def _check_cells(raw: RawTable) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Typed rows that passed, reject lines, and the (typed) rows that failed.

    Problems are first computed as one boolean per row; reason strings are built only
    for the few rows that fail, so a clean province-size file costs little extra memory.
    In the registry only a bad code rejects the row: any other bad field is made unknown
    (``field_cleared``), so that nothing with a usable code vanishes from the results.
    """
    table: Table = raw.table
    registry = table.name == "enterprises"
    frame = raw.frame
    present = [c for c in table.columns if c.name in frame.columns]
    values: dict[str, pl.Expr] = {}
    parsed: dict[str, list[Problem]] = {}
    stage: list[_Helper] = []
    for c in present:
        values[c.name], parsed[c.name] = _parse(c, frame.schema[c.name], registry, raw.factors.get(c.name), stage)
    _error_text_problems(raw, parsed)
    _excel_error_problems(raw, parsed)
    if table.name == "land":
        _land_problems(frame.columns, parsed)
    # values and problem conditions read the raw columns and the helper columns (a cell's
    # text, its number), each helper computed once here
    for helper in stage:
        frame = frame.with_columns(_helper_column(frame, helper).alias(helper.name))
    typed = frame.select(ROW, *values.values())
    _list_rewrites(raw, frame, present, parsed)
    if registry:  # a bad field other than the code is cleared, not the row rejected
        flags = frame.select(_flag(p).alias(n) for n, p in parsed.items() if p)  # each column's once
        cleared = [n for n in flags.columns if n != "uscc" and flags[n].any()]
        if cleared:
            typed = typed.with_columns(pl.when(flags[n]).then(None).otherwise(pl.col(n)).alias(n) for n in cleared)
        bad_mask = _with_check_char(typed, flags["uscc"] if "uscc" in flags.columns else None)
        cell_mask = bad_mask.clone()
        for n in flags.columns:
            cell_mask = cell_mask | flags[n]
    else:  # every problem rejects the row: one pass
        conds = [_flag(parsed[n]) for n in parsed]
        any_bad = pl.any_horizontal(conds) if conds else pl.lit(False)
        bad_mask = cell_mask = frame.select(any_bad.alias("_bad"))["_bad"]
    if not cell_mask.any():
        good, bad = typed, typed.clear()
        rejects = pl.DataFrame(schema=REJECT_SCHEMA)
    else:
        bad_raw = frame.filter(cell_mask)
        rejects = _reject_lines(raw, bad_raw, parsed, registry)
        rejected_rows = typed.filter(bad_mask)[ROW]
        rejects = rejects.with_columns(
            pl.when(pl.col("row").is_in(rejected_rows.implode())).then(pl.lit(ROW_REJECTED))
            .otherwise(pl.lit(FIELD_CLEARED)).alias("action"))
        good, bad = typed.filter(~bad_mask), typed.filter(bad_mask)
    if table.name == "land":
        good, bad = _land_area(good), _land_area(bad)
    missing = [pl.lit(None, dtype=_DTYPES[c.kind]).alias(c.name) for c in table.columns if c.name not in good.columns]
    not_read = _rows_not_read(raw)  # every caller reports them (projects, accounts, the measures ledger too)
    if not_read.height:
        rejects = pl.concat([rejects, not_read], how="vertical_relaxed")
    return (good.with_columns(missing) if missing else good), rejects, bad


#: a value validation writes in another form than its text, and the kind listed in normalised.csv
_REWRITE_KINDS = {"uscc": "letter_case", "code4": "code_letter", "enum": "enum_word"}


def _list_rewrites(raw: RawTable, frame: pl.DataFrame, columns: list[Column], parsed: dict[str, list[Problem]]) -> None:
    """Add to ``raw.normalised`` every cell whose typed value is another form of its text (a code in
    lower case, ``C3823``, ``C类``): a value read in another form than written is listed (contract).
    A cell with a problem (``C 3823``) is not read in any form: it is a reject line, never listed."""
    parts = []
    for col in columns:
        kind = _REWRITE_KINDS.get(col.kind)
        text, value = f"_text_{col.name}", f"_value_{col.name}"
        if kind is None or text not in frame.columns or value not in frame.columns:
            continue
        read = ~_flag(parsed[col.name]) if parsed.get(col.name) else pl.lit(True)
        changed = frame.filter(pl.col(text).is_not_null() & pl.col(value).is_not_null() & (pl.col(text) != pl.col(value))
                               & read)
        if changed.height:
            parts.append(_rewrite_lines(raw, changed[ROW], col.name, changed[text], changed[value], kind))
    if parts:
        _add_normalised(raw, parts)


def _rewrite_lines(raw: RawTable, rows: pl.Series, name: str, before: pl.Series, after: pl.Series,
                   kind: str) -> pl.DataFrame:
    return pl.DataFrame({"file": [raw.file] * len(rows), "row": rows, "column": [raw.headers.get(name, name)] * len(rows),
                         "before": before, "after": after, "kind": [kind] * len(rows)}, schema=NORMALISED_SCHEMA)


def _add_normalised(raw: RawTable, parts: list[pl.DataFrame]) -> None:
    """One line per cell: a cell already listed by ingest (``Ｃ类``: full_width) keeps its line and
    kind, with the value as finally read."""
    new = pl.concat(parts, how="vertical_relaxed")
    old = raw.normalised
    if old.height:
        final = new.select("row", "column", pl.col("after").alias("_final"))
        old = old.join(final, on=["row", "column"], how="left").with_columns(
            pl.coalesce("_final", "after").alias("after")).drop("_final")
        new = new.join(old.select("row", "column"), on=["row", "column"], how="anti")
    raw.normalised = pl.concat([old, new], how="vertical_relaxed").select(list(NORMALISED_SCHEMA)).sort("row", "column")


def _excel_error_problems(raw: RawTable, parsed: dict[str, list[Problem]]) -> None:
    """A cell holding an Excel error value (#N/A, #DIV/0! …), or a formula with no computed value,
    is a bad value naming it; it comes first, before "missing" or "not a number"."""
    errors = raw.cell_errors
    if not errors.height:
        return
    for name in errors["column"].unique().to_list():
        if name not in parsed:
            continue
        errs = errors.filter(pl.col("column") == name)
        err = pl.col(ROW).replace_strict(errs[ROW], errs["error"], default=None, return_dtype=pl.String)
        # "=…": a formula with no computed value (workbook.py), else an error value
        reason = pl.when(err.str.starts_with("=")).then(pl.format(
            "单元格是公式 {}，但文件中没有它的计算结果（文件由程序生成、未经计算保存），不当作空值；"
            "请在 Excel 或 WPS 中打开并保存后再导出", err)).otherwise(pl.format("单元格为 Excel 错误值 {}", err))
        parsed[name].insert(0, (err.is_not_null(), reason))


def _error_text_problems(raw: RawTable, parsed: dict[str, list[Problem]]) -> None:
    """A cell whose text is an Excel error value (#N/A, #DIV/0! …), as a CSV saved from Excel holds
    an error cell, is a bad value naming the error, never missing (contract, "Bad input"), in an
    optional column too; it comes first, before "missing" or "not a number"."""
    texts = sorted({v for e in excel_errors() for v in (e, e.lower())})
    for name, problems in parsed.items():
        if raw.frame.schema.get(name) == pl.String:
            err = pl.when(pl.col(name).is_in(texts)).then(pl.col(name).str.to_uppercase())
            problems.insert(0, (err.is_not_null(), pl.format("单元格为 Excel 错误值 {}", err)))


def _with_check_char(typed: pl.DataFrame, bad_mask: pl.Series | None) -> pl.Series:
    """Add registry rows whose well-formed code has a wrong GB 32100-2015 check character.

    ``bad_mask``: the rows whose code is already bad (missing, malformed); the others are
    well-formed (a row already bad stays bad, so its check character need not be known)."""
    codes = typed["uscc"]
    if bad_mask is None:
        wrong = pl.repeat(False, typed.height, eager=True).alias("_bad")
        well_formed = codes.is_not_null() & codes.str.contains(uscc_mod.PATTERN)
    else:
        wrong, well_formed = bad_mask.clone(), ~bad_mask
    idx = well_formed.arg_true()
    if idx.len():
        ok = codes if idx.len() == codes.len() else codes.gather(idx)
        step = _SLICE >> 3  # the check character's arithmetic takes 17 integers per code
        mismatch = pl.concat([(uscc_mod.expected_check_chars(part) != part.str.slice(17, 1)).arg_true() + i
                              for i in _slices(len(ok), step) for part in [ok.slice(i, step)]])
        wrong = wrong.scatter(idx.gather(mismatch), True)
    return wrong


def _reject_lines(raw: RawTable, bad_raw: pl.DataFrame, parsed: dict[str, list[Problem]],
                  registry: bool) -> pl.DataFrame:
    """One line per (row, column) problem, for the failing rows only."""
    reasons = {n: _reason(p) for n, p in parsed.items()}
    if registry:
        codes = _as_text("uscc", raw.frame.schema["uscc"]).str.to_uppercase().alias("uscc")
        expected = _check_char_reasons(bad_raw.select(ROW, codes))
        bad_raw = bad_raw.join(expected, on=ROW, how="left", maintain_order="left")
        reasons["uscc"] = pl.coalesce(reasons["uscc"], pl.col("_check"))
    parts = []
    problems = bad_raw.select(ROW, *(r.alias(f"_p_{n}") for n, r in reasons.items()),
                              *(_as_text(n, raw.frame.schema[n]).alias(f"_v_{n}") for n in reasons))
    for name in reasons:
        rows = problems.filter(pl.col(f"_p_{name}").is_not_null())
        if rows.height:
            parts.append(rows.select(
                pl.lit(raw.file).alias("file"), pl.col(ROW).alias("row"),
                pl.lit(raw.headers.get(name, name)).alias("column"), pl.col(f"_p_{name}").alias("reason"),
                pl.col(f"_v_{name}").alias("value"), pl.lit(ROW_REJECTED).alias("action"),
            ))
    return pl.concat(parts) if parts else pl.DataFrame(schema=REJECT_SCHEMA)


def _check_char_reasons(frame: pl.DataFrame) -> pl.DataFrame:
    """(_row, _check): a reason for each well-formed code whose check character is wrong."""
    ok = frame.filter(pl.col("uscc").is_not_null() & pl.col("uscc").str.contains(uscc_mod.PATTERN))
    expected = uscc_mod.expected_check_chars(ok["uscc"])
    return ok.select(ROW, pl.Series("_expected", expected), pl.col("uscc").str.slice(17, 1).alias("_given")).filter(
        pl.col("_expected") != pl.col("_given")
    ).select(ROW, pl.format(uscc_mod.CHECK_REASON, "_expected").alias("_check"))


def _attach_firm_id(raw: RawTable, good: pl.DataFrame, registry: "pl.DataFrame | CodeIndex",
                    rejected_codes: pl.Series) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Replace uscc by the registry's firm_id; rows of unknown enterprises become reject lines.

    Each code is looked up in the registry (whose codes are unique; :class:`CodeIndex` when
    given, else a join): only the firm_id column is new, the table's other columns are not copied.
    """
    joined = good.with_columns(_firm_ids(good.select("uscc"), registry))
    missed = joined[FIRM_ID].is_null()
    if missed.any():  # second chance for codes written with spaces or in lower case
        retried = joined.filter(missed).with_columns(_as_text("uscc", pl.String).str.to_uppercase().alias("uscc"))
        retried = retried.with_columns(_firm_ids(retried.select("uscc"), registry))
        written = _as_text("uscc", good.schema["uscc"])
        before = good.filter(missed).select(ROW, written.alias("_written"))
        cased = retried.join(before, on=ROW).filter(pl.col(FIRM_ID).is_not_null() & (pl.col("_written") != pl.col("uscc")))
        if cased.height:  # read in another form than written: listed
            _add_normalised(raw, [_rewrite_lines(raw, cased[ROW], "uscc", cased["_written"], cased["uscc"], "letter_case")])
        joined = pl.concat([joined.filter(~missed), retried]).sort(ROW)  # file order decides duplicates
    unknown = joined.filter(pl.col(FIRM_ID).is_null())
    unknown = unknown.join(_check_char_reasons(unknown), on=ROW, how="left")
    code = pl.col("uscc")
    reason = (
        pl.when(code.is_null()).then(pl.lit("缺少统一社会信用代码"))
        .when(~code.str.contains(uscc_mod.PATTERN)).then(pl.lit(uscc_mod.FORMAT_REASON))
        .when(pl.col("_check").is_not_null()).then(pl.col("_check"))
        .when(code.is_in(rejected_codes.implode())).then(pl.lit("该企业在企业名录中的行已被拒绝，本行无法关联"))
        .otherwise(pl.lit("企业名录中没有该统一社会信用代码"))
    )
    lines = unknown.select(
        pl.lit(raw.file).alias("file"), pl.col(ROW).alias("row"),
        pl.lit(raw.headers.get("uscc", "uscc")).alias("column"), reason.alias("reason"), code.alias("value"),
        pl.lit(ROW_REJECTED).alias("action"),
    )
    known = (joined.filter(pl.col(FIRM_ID).is_not_null()) if unknown.height else joined).drop("uscc")
    return known.select(FIRM_ID, pl.exclude(FIRM_ID)), lines


def _firm_ids(codes: pl.DataFrame, registry: "pl.DataFrame | CodeIndex") -> pl.Series:
    """The registry's firm_id of each code (null when absent), in the order of ``codes``."""
    if isinstance(registry, CodeIndex):
        return registry.firm_ids(codes["uscc"])
    return codes.join(registry, on="uscc", how="left", maintain_order="left")[FIRM_ID]


class CodeIndex:
    """The registry's codes (``uscc`` → ``firm_id``), looked up by a 64-bit hash of the code.

    A direct-address table of about eight slots per code holds, at the slot the leading bits
    of a code's hash name, the code's position in the registry.  A lookup hashes the code,
    reads its slot and compares the code found there with the code asked for: a code is
    found only when it is exactly equal, so a hash collision can never attach a row to the
    wrong enterprise.  The codes that share a slot (about one in nine) get a second table
    addressed by the next bits of the hash, and so on; the very few still sharing a slot
    when the hash's bits run out are looked up by an exact join.  Several times cheaper
    than a string join with the whole registry.
    """

    #: slots per code in each table (a power of two at least this many times its codes)
    _SLOTS_PER_CODE = 8
    _MIN_BITS = 10
    #: the bits of the hash the tables may use
    _HASH_BITS = 64

    def __init__(self, registry: pl.DataFrame) -> None:
        codes = registry["uscc"]
        self._codes, self._ids = codes, registry[FIRM_ID]
        # the registry's firm_id is usually its row number: then a position is the firm_id
        self._positional = self._ids.dtype == pl.UInt32 and bool(
            (self._ids.to_numpy() == np.arange(len(codes), dtype=np.uint32)).all())
        hashes = codes.hash(seed=0).to_numpy()
        self._levels: list[tuple[int, int, np.ndarray]] = []  # (bits used before, bits, table)
        pending = np.arange(len(codes), dtype=np.int32)  # registry positions not yet alone in a slot
        used = 0
        while len(pending):
            bits = max(self._MIN_BITS, (self._SLOTS_PER_CODE * len(pending) - 1).bit_length())
            if used + bits > self._HASH_BITS:
                break
            slot = self._slot(hashes[pending], used, bits)
            table = np.full(1 << bits, -1, dtype=np.int32)  # -1: no code; -2: several codes
            table[slot] = pending  # where codes share a slot, one of them is written
            table[slot[table[slot] != pending]] = -2  # a code overwritten: its slot is shared
            shared = table[slot] == -2
            self._levels.append((used, bits, table))
            pending, used = pending[shared], used + bits
        self._shared = registry.select("uscc", FIRM_ID).gather(pl.Series(pending, dtype=pl.UInt32))

    @staticmethod
    def _slot(hashes: np.ndarray, used: int, bits: int) -> np.ndarray:
        """Bits ``used`` to ``used + bits`` (from the top) of each hash."""
        top = (hashes << np.uint64(used)) if used else hashes
        return (top >> np.uint64(64 - bits)).view(np.int64)  # below 2**bits: the same as a signed index

    def firm_ids(self, codes: pl.Series) -> pl.Series:
        """The firm_id of each code, null where the registry has no such code (or it is null)."""
        n = len(codes)
        if not n or not len(self._codes):
            return pl.Series(FIRM_ID, [None] * n, dtype=self._ids.dtype)
        step = _SLICE >> 2  # a slice at a time: the temporaries reuse the same memory (also on a thread)
        if n > step:
            return pl.concat([self.firm_ids(codes.slice(i, step)) for i in _slices(n, step)])
        hashes = codes.hash(seed=0).to_numpy()
        pos = np.full(n, -1, dtype=np.int32)  # the one registry code the row's code may be
        todo: np.ndarray | None = None  # rows whose slot is shared (None: every row)
        for used, bits, table in self._levels:
            got = table[self._slot(hashes if todo is None else hashes[todo], used, bits)]
            if todo is None:
                pos, todo = got, np.flatnonzero(got == -2)
            else:
                pos[todo] = got
                todo = todo[got == -2]
            if not len(todo):
                break
        single = pos >= 0
        at = pl.Series(np.where(single, pos, 0), dtype=pl.UInt32)
        same = (self._codes.gather(at) == codes).fill_null(False) & pl.Series(single)  # exactly equal
        ids = at if self._positional else self._ids.gather(at)
        found = pl.select(pl.when(same).then(ids).alias(FIRM_ID)).to_series()
        if todo is not None and len(todo):  # still sharing a slot when the bits ran out
            idx = pl.Series(todo, dtype=pl.UInt32)
            sub = codes.gather(idx).to_frame("uscc").join(self._shared, on="uscc", how="left", maintain_order="left")
            found = found.scatter(idx, sub[FIRM_ID])
        return found


#: 2**64 / the golden ratio (odd): spreads consecutive grid cells over the bits of a 64-bit hash
_MIX = np.uint64(0x9E3779B97F4A7C15)


def _repeats(good: pl.DataFrame, key: list[str]) -> pl.Series | None:
    """Rows whose key may occur more than once (a superset of the duplicates), or None when
    no key repeats.

    The key's integer columns without nulls over a small range (firm_id, year) are counted
    exactly by their position in a dense grid (one pass, no hashing); when that is the whole
    key, the count decides.  The rest of a key (a parcel's number) is compared only among
    the rows whose grid cell repeats, first by its hash mixed with the cell's number: only
    values that repeat are candidates."""
    if not good.height:
        return None
    grid = [k for k in key if good.schema[k].is_integer() and not good[k].has_nulls()]
    idx: np.ndarray | None = None  # rows in question (None: all)
    if grid:
        bounds = good.select(*(pl.col(k).min().alias(f"{k}_lo") for k in grid),
                             *(pl.col(k).max().alias(f"{k}_hi") for k in grid)).row(0)
        spans = [int(hi) - int(lo) + 1 for lo, hi in zip(bounds[:len(grid)], bounds[len(grid):])]
        if np.prod(spans, dtype=np.float64) <= 4 * good.height + (1 << 20):
            cell = np.zeros(good.height, dtype=np.int64)
            for k, lo, span in zip(grid, bounds, spans):
                cell *= span
                cell += good[k].to_numpy().astype(np.int64, copy=False)
                cell -= int(lo)
            counts = np.bincount(cell)
            if counts.max() < 2:
                return None
            repeated = counts[cell] > 1
            if len(grid) == len(key):
                return pl.Series(repeated)
            idx = np.flatnonzero(repeated)
    if idx is None:
        hashes = good.select(pl.struct(key).hash(seed=0).alias("_h"))["_h"]
    else:  # the grid cell (a number) mixed with a hash of the rest of the key, for those rows only
        rest = [k for k in key if k not in grid]
        part = good.select(pl.col(rest).gather(idx))
        part = part.to_series() if len(rest) == 1 else part.select(pl.struct(rest)).to_series()
        mixed = part.hash(seed=0).to_numpy() ^ (cell[idx].astype(np.uint64) * _MIX)
        hashes = pl.Series("_h", mixed)
    if hashes.n_unique() == hashes.len():
        return None
    if idx is None:
        return hashes.is_duplicated()
    out = np.zeros(good.height, dtype=bool)
    out[idx] = hashes.is_duplicated().to_numpy()
    return pl.Series(out)


def _split_duplicates(raw: RawTable, good: pl.DataFrame, key: list[str],
                      codes: pl.DataFrame | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Keep the first row of each key; later rows become reject lines naming the kept row.

    Keys are first compared by a 64-bit hash (cheap on millions of rows); only rows
    whose hash repeats are compared exactly.
    """
    candidates = _repeats(good, key)
    if candidates is None or not candidates.any():
        return good, pl.DataFrame(schema=REJECT_SCHEMA)
    subset = good.filter(candidates)
    first = pl.struct(key).is_first_distinct()
    dups = subset.filter(~first)
    if not dups.height:  # hash collisions only
        return good, pl.DataFrame(schema=REJECT_SCHEMA)
    firsts = subset.filter(first).select(*key, pl.col(ROW).alias("_first"))
    dups = dups.join(firsts, on=key, how="left", nulls_equal=True)  # an empty key part equals an empty one
    if codes is not None:
        dups = dups.join(codes, on=FIRM_ID, how="left")
    key_names = ["uscc" if k == FIRM_ID else k for k in key]
    key_zh = "、".join(raw.headers.get(k, k) for k in key_names)
    lines = dups.select(
        pl.lit(raw.file).alias("file"), pl.col(ROW).alias("row"), pl.lit(key_zh).alias("column"),
        pl.format("与第{}行主键重复（{}），已保留第{}行", "_first", pl.lit(key_zh), "_first").alias("reason"),
        pl.concat_str([pl.col(k).cast(pl.String).fill_null("") for k in key_names], separator="|").alias("value"),
        pl.lit(ROW_REJECTED).alias("action"),
    )
    return good.filter(~pl.col(ROW).is_in(dups[ROW].implode())), lines


#: tables validated at once (threads; Polars, NumPy and hashlib release the GIL): one per core
#: of a 2-core machine; each in flight holds its raw rows, so more would raise the peak memory
_WORKERS = 2


class _Registry(NamedTuple):
    """What the other tables need from the validated registry."""

    frame: pl.DataFrame  # uscc, firm_id
    index: CodeIndex
    rejected_codes: pl.Series  # codes of the registry rows that were rejected


class _Checked(NamedTuple):
    """One table validated: its rows kept, its reject lines, and its facts for :class:`Inputs`."""

    good: pl.DataFrame
    rejects: list[pl.DataFrame]
    accepted: int  # rows accepted (before ``keep_years``)
    per_year: pl.DataFrame | None = None  # (year, n) over every year
    land_incomplete: pl.DataFrame | None = None
    registry: _Registry | None = None  # the registry's own (enterprises)
    product_rejected: pl.DataFrame | None = None


def validate(files: dict[str, RawTable], keep_raw: bool = False, keep_years: set[int] | None = None,
             cells_ahead: bool = False) -> Inputs:
    """Read and validate every table, two at a time (the larger files first).

    A table is read and its cells checked without waiting for the registry; its codes are
    then looked up in the validated registry.  ``keep_raw=False`` drops each file's raw rows
    as soon as they are checked; ``keep_years`` keeps only those years' rows once validated
    (every row is still checked and counted), which is all a screening run needs from a
    province's history.  A problem that stops the reading (a missing column …) is raised
    for the first table in the usual order (registry first) that has one.

    ``cells_ahead``: every other table is read and its cells checked before any of them waits
    for the registry, so the second worker does not sit idle while the registry is validated
    (a province's registry takes about 0.9 s); the checked rows of all of them, codes still
    as text, are then held at once.  For one year's rows (``screening evaluate``) that is about
    +170 MB and 0.2 s sooner; for a run's two years it was +750 MB (2.1 GB) and no sooner
    (measured on 1 M firms, docs/evaluation.md), so a run leaves it off.
    """
    order = ["enterprises"] + [n for n, t in TABLES.items() if n != "enterprises" and not t.standalone]
    given = [n for n in order if n in files]
    # the larger files first: the last ones in flight, beside every table kept so far, are small
    started = ([n for n in given if n == "enterprises"]
               + sorted((n for n in given if n != "enterprises"), key=lambda n: -_file_size(files[n])))
    pool = ThreadPoolExecutor(_WORKERS, thread_name_prefix="validate")  # its threads end with this call
    try:
        checked: dict[str, Future[_Checked]] = {}
        if "enterprises" in files:
            checked["enterprises"] = pool.submit(_validate_registry, files["enterprises"], keep_raw)
        others = [n for n in started if n != "enterprises"]
        # cells_ahead: every table's cells are queued before any lookup in the registry (FIFO pool)
        cells = {name: pool.submit(_cells_checked, files[name], keep_raw) for name in others} if cells_ahead else {}
        for name in others:
            checked[name] = pool.submit(_validate_table, files[name], checked.get("enterprises"), keep_raw,
                                        keep_years, cells.get(name))
        done = {name: checked[name].result() for name in given}  # the first failure in the usual order
    finally:
        pool.shutdown(cancel_futures=True)

    tables: dict[str, pl.DataFrame] = {}
    reject_parts: list[pl.DataFrame] = []
    land_incomplete = pl.DataFrame(schema={FIRM_ID: pl.UInt32, "year": pl.Int32})
    product_rejected = pl.DataFrame(schema=PRODUCT_REJECTED_SCHEMA)
    accepted: dict[str, int] = {}
    coverage: dict[str, dict[int, int]] = {}
    years: dict[str, list[int]] = {}
    for name in order:
        if name not in done:
            tables[name] = _empty(TABLES[name])
            continue
        result = done[name]
        good = result.good
        reject_parts.extend(result.rejects)
        if result.land_incomplete is not None:
            land_incomplete = result.land_incomplete
        if result.product_rejected is not None:
            product_rejected = result.product_rejected
        accepted[name] = result.accepted
        per_year = result.per_year
        if per_year is not None:
            years[name] = per_year["year"].to_list()
            if keep_years is not None:
                per_year = per_year.filter(pl.col("year").is_in(sorted(keep_years)))
            if good.height and name != "product_energy":
                coverage[name] = dict(zip(per_year["year"].to_list(), per_year["n"].to_list()))
        tables[name] = good
        done[name] = None  # the kept rows live in ``tables`` only

    rejects = pl.concat(reject_parts) if reject_parts else pl.DataFrame(schema=REJECT_SCHEMA)
    rejects = rejects.with_columns(pl.col("row").cast(pl.Int64)).sort("file", "row", "column")
    normalised = [raw.normalised for raw in files.values() if raw.normalised.height]
    return Inputs(tables, rejects, files, land_incomplete, {n: raw.rows for n, raw in files.items()}, accepted,
                  pl.concat(normalised) if normalised else pl.DataFrame(schema=NORMALISED_SCHEMA), coverage,
                  data_years=years, product_rejected=product_rejected)


def _file_size(raw: RawTable) -> int:
    try:
        return raw.path.stat().st_size
    except OSError:  # said when it is read
        return 0


def _cells_checked(raw: RawTable, keep_raw: bool) -> tuple[pl.DataFrame, list[pl.DataFrame], pl.DataFrame]:
    """A table read and its cells checked: typed rows that passed, reject lines (cells and
    report furniture), typed rows that failed.  ``keep_raw=False`` drops the raw rows after."""
    raw.load()
    good, cell_rejects, bad = _check_cells(raw)
    if not keep_raw:  # the typed rows are all that is read from here on
        raw.release()
    parts = [cell_rejects]
    return good, parts, bad


def _validate_registry(raw: RawTable, keep_raw: bool) -> _Checked:
    """The registry (``enterprises``): each distinct code once, numbered by ``firm_id``."""
    good, parts, bad = _cells_checked(raw, keep_raw)
    good, dup_rejects = _split_duplicates(raw, good, ["uscc"], None)
    good = good.with_row_index(FIRM_ID).drop(ROW)
    frame = good.select("uscc", FIRM_ID)
    registry = _Registry(frame, CodeIndex(frame), bad["uscc"].drop_nulls())
    return _Checked(good, [*parts, dup_rejects], good.height, registry=registry)


def _validate_table(raw: RawTable, registry: "Future[_Checked] | None", keep_raw: bool,
                    keep_years: set[int] | None, cells: "Future[tuple] | None" = None) -> _Checked:
    """A table other than the registry: its cells checked (here, or already: ``cells``), then
    (once the registry is validated) its codes replaced by firm_id, its duplicate keys taken out
    and (``keep_years``) only those years' rows kept."""
    good, parts, bad = cells.result() if cells is not None else _cells_checked(raw, keep_raw)
    if registry is None:  # no registry file: every code is unknown
        frame = pl.DataFrame(schema={"uscc": pl.String, FIRM_ID: pl.UInt32})
        reg = _Registry(frame, CodeIndex(frame), pl.Series("uscc", [], dtype=pl.String))
    else:
        reg = registry.result().registry  # started first, so never waiting behind this table
    good, unknown_rejects = _attach_firm_id(raw, good, reg.index, reg.rejected_codes)
    key = [FIRM_ID if k == "uscc" else k for k in raw.table.key]
    checked = good
    good, dup_rejects = _split_duplicates(raw, good, key, reg.frame)
    good = good.rename({ROW: "source_row"}) if raw.table.keep_rows else good.drop(ROW)
    land_incomplete = product_rejected = None
    if raw.table.name == "land":
        # a parcel row rejected (or given twice: which area is right is not known) makes that
        # firm-year's land unknown (contract: a partial sum would understate land and could wrongly pass a firm)
        land_incomplete = _rejected_rows(raw, bad, parts[0], checked, dup_rejects, reg, product=False)
    elif raw.table.name == "product_energy":
        # a product row rejected: that product's unit consumption is not known (rule 4)
        product_rejected = _rejected_rows(raw, bad, parts[0], checked, dup_rejects, reg, product=True)
    per_year, accepted = None, good.height
    if "year" in good.columns:
        # firms per year, over every year (a year's count needs only that year's rows); key
        # (uscc, year): after de-duplication a row is a firm, so counting rows is enough
        per_year = _firms_per_year(good, distinct=list(raw.table.key) != ["uscc", "year"])
        held = per_year["year"].to_list()
        if keep_years is not None and (not set(held) <= keep_years or good["year"].has_nulls()):  # else no copy
            good = good.filter(pl.col("year").is_in(sorted(keep_years)))
    return _Checked(good, [*parts, unknown_rejects, dup_rejects], accepted, per_year, land_incomplete,
                    product_rejected=product_rejected)


def _rejected_rows(raw: RawTable, bad: pl.DataFrame, cell_rejects: pl.DataFrame, checked: pl.DataFrame,
                   dup_rejects: pl.DataFrame, reg: _Registry, product: bool) -> pl.DataFrame:
    """(firm_id, year) of the rows left out of ``raw`` whose firm is in the registry and whose
    year could be read: rows with a cell that failed its check, rows with more cells than the
    header (not read), repeats of a key (the repeat rejected).  ``product``: with the row's
    product too, null when it is not known (its own cell failed, or the row was not read)."""
    extra = ["product"] if product else []
    rows = bad.select(ROW, "uscc", pl.col("year").cast(pl.Int32), *extra)
    if product and rows.height:
        unread = cell_rejects.filter(pl.col("column") == raw.headers.get("product", "product"))["row"]
        rows = rows.with_columns(pl.when(pl.col(ROW).is_in(unread.implode())).then(None)
                                 .otherwise(pl.col("product")).alias("product"))
    if raw.ragged.height:  # a row not read (more cells than the header): its code and year as written
        year = raw.ragged["year"].str.strip_chars().str.replace(r"\.0+$", "").cast(pl.Int32, strict=False)
        rows = pl.concat([rows.drop(ROW), pl.DataFrame({
            "uscc": raw.ragged["uscc"].str.replace_all(r"\s", ""), "year": year})], how="diagonal_relaxed")
    found = (
        rows.filter(pl.col("year").is_not_null())
        .select(_as_text("uscc", pl.String).str.to_uppercase().alias("uscc"), "year", *extra)
        .join(reg.frame, on="uscc", how="inner").select(pl.col(FIRM_ID).cast(pl.UInt32), "year", *extra)
    )
    if dup_rejects.height:
        twice = checked.filter(pl.col(ROW).is_in(dup_rejects["row"].implode()) & pl.col("year").is_not_null())
        found = pl.concat([found, twice.select(pl.col(FIRM_ID).cast(pl.UInt32), pl.col("year").cast(pl.Int32),
                                               *extra)], how="vertical_relaxed")
    return found.unique().sort(FIRM_ID, "year", *extra, nulls_last=True)


def _firms_per_year(good: pl.DataFrame, distinct: bool) -> pl.DataFrame:
    """(year, n): the rows (``distinct``: the distinct firm_ids) of each year that has rows,
    by year.  Years and firm_ids are small integers: counted on a dense grid where they
    span little, else grouped."""
    year = good["year"]
    firms = good[FIRM_ID]
    if good.height and not year.has_nulls() and not firms.has_nulls():
        lo, hi = int(year.min()), int(year.max())
        years = hi - lo + 1
        span = int(firms.max()) + 1 if distinct else 1
        if years * span <= 4 * good.height + (1 << 20):
            cell = year.to_numpy().astype(np.int64) - lo
            if distinct:
                cell += firms.to_numpy().astype(np.int64, copy=False) * years
                per_cell = np.bincount(cell, minlength=span * years).reshape(span, years)
                counts = (per_cell > 0).sum(axis=0)
            else:
                counts = np.bincount(cell, minlength=years)
            held = np.flatnonzero(counts)
            return pl.DataFrame({"year": pl.Series(held + lo, dtype=year.dtype),
                                 "n": pl.Series(counts[held], dtype=pl.UInt32)})
    n = pl.col(FIRM_ID).n_unique() if distinct else pl.len()
    return good.group_by("year").agg(n.alias("n")).drop_nulls().sort("year")


def _empty(table: Table) -> pl.DataFrame:
    columns = {c.name: _DTYPES[c.kind] for c in table.columns}
    if table.name == "enterprises":
        return pl.DataFrame(schema={FIRM_ID: pl.UInt32, **columns})
    columns.pop("uscc")
    if table.keep_rows:
        columns["source_row"] = pl.Int64
    return pl.DataFrame(schema={FIRM_ID: pl.UInt32, **columns})
