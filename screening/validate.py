"""Type and check every input row; unusable rows go to ``rejects`` with a Chinese reason.

All checks are Polars expressions over whole columns.  A row with several
problems yields one reject line per problem (each names its column) and counts
once as a rejected row.  Order: cell checks, then duplicate keys among the rows
that passed, then enterprises unknown to the registry.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from . import uscc as uscc_mod
from .ingest import ROW, RawTable
from .schema import M2_PER_MU_DEN, M2_PER_MU_NUM, TABLES, YEAR_RANGE, Column, Table

REJECT_SCHEMA = {"file": pl.String, "row": pl.Int64, "column": pl.String, "reason": pl.String, "value": pl.String}

_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y.%m.%d", "%Y年%m月%d日")
_DTYPES = {
    "uscc": pl.String, "text": pl.String, "code4": pl.String, "enum": pl.String,
    "year": pl.Int32, "date": pl.Date, "number": pl.Float64, "integer": pl.Int64,
}


@dataclass
class Inputs:
    """Validated, typed tables (canonical names) plus everything that was rejected."""

    tables: dict[str, pl.DataFrame]
    rejects: pl.DataFrame
    files: dict[str, RawTable] = field(default_factory=dict)
    #: (uscc, year) whose land is unknown because one of its parcel rows was rejected
    land_incomplete: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(schema={"uscc": pl.String, "year": pl.Int32})
    )

    @property
    def rejected_rows(self) -> int:
        return self.rejects.select(pl.struct("file", "row").n_unique()).item() if self.rejects.height else 0

    def row_counts(self) -> dict[str, dict[str, int]]:
        rej = (
            self.rejects.group_by("file").agg(pl.col("row").n_unique().alias("n"))
            if self.rejects.height else pl.DataFrame(schema={"file": pl.String, "n": pl.UInt32})
        )
        by_file = dict(zip(rej["file"].to_list(), rej["n"].to_list()))
        return {
            name: {"read": raw.frame.height, "rejected": by_file.get(raw.file, 0),
                   "accepted": self.tables[name].height}
            for name, raw in self.files.items()
        }


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


def _parse(col: Column, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr]:
    """(typed value, problem) expressions; problem is a Chinese reason or null."""
    text = _as_text(col.name, dtype)
    problems: list[tuple[pl.Expr, str | pl.Expr]] = []
    kind = col.kind

    if kind == "uscc":
        value = text.str.to_uppercase()
        well_formed = value.str.contains(uscc_mod.PATTERN)
        expected = uscc_mod.expected_check_expr(value)
        problems += [
            (value.is_not_null() & ~well_formed, "统一社会信用代码格式错误（应为18位数字或大写字母，且不含I、O、S、V、Z）"),
            (value.is_not_null() & well_formed & (value.str.slice(17, 1) != expected),
             pl.concat_str(pl.lit("统一社会信用代码校验位错误（按GB 32100-2015应为“"), expected, pl.lit("”）"))),
        ]
    elif kind == "code4":
        value = text.str.replace(r"^[Cc]", "")  # a leading 门类 letter C is harmless
        problems.append((value.is_not_null() & ~value.str.contains(r"^\d{4}$"), "行业代码应为4位数字（GB/T 4754-2017）"))
    elif kind in ("text", "enum"):
        value = text
        if col.name == "grade":
            value = value.str.to_uppercase().str.replace(r"[类级]$", "")
        if col.allowed:
            problems.append((value.is_not_null() & ~value.is_in(col.allowed),
                             f"{col.zh}只能为：{'、'.join(col.allowed)}"))
    elif kind == "date":
        if dtype == pl.Date:
            value = pl.col(col.name)
        elif isinstance(dtype, pl.Datetime):
            value = pl.col(col.name).dt.date()
        else:
            head = text.str.replace(r"[ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$", "")
            value = pl.coalesce([head.str.to_date(fmt, strict=False) for fmt in _DATE_FORMATS])
        problems.append((text.is_not_null() & value.is_null(), "日期无法识别（应为 YYYY-MM-DD）"))
    else:  # year, number, integer
        if dtype.is_numeric():
            number = pl.col(col.name).cast(pl.Float64)
        else:
            number = text.str.replace_all(",", "").cast(pl.Float64, strict=False)
        number = pl.when(number.is_finite()).then(number)
        bad_type = text.is_not_null() & number.is_null()
        if kind == "number":
            value = number
            problems.append((bad_type, "不是有效的数字"))
        else:
            whole = number == number.round(0)
            value = pl.when(whole).then(number).cast(_DTYPES[kind])
            label = "年份" if kind == "year" else col.zh
            problems.append((bad_type | (number.is_not_null() & ~whole), f"{label}应为整数"))
            if kind == "year":
                lo, hi = YEAR_RANGE
                problems.append((value.is_not_null() & ~value.is_between(lo, hi), f"年份超出合理范围（{lo}—{hi}）"))
        if col.min is not None:
            if col.min_exclusive:
                problems.append((value.is_not_null() & (value <= col.min), f"{col.zh}必须大于{col.min:g}"))
            else:
                problems.append((value.is_not_null() & (value < col.min), f"{col.zh}不能为负数"))

    if col.nonnull:
        problems.insert(0, (text.is_null(), f"缺少{col.zh}"))
    problem = pl.lit(None, dtype=pl.String)
    for cond, reason in reversed(problems):  # first matching problem wins
        problem = pl.when(cond).then(reason if isinstance(reason, pl.Expr) else pl.lit(reason)).otherwise(problem)
    return value.cast(_DTYPES[kind]).alias(col.name), problem.alias(f"_p_{col.name}")


# ---------------------------------------------------------------- table checks

def _reject_lines(raw: RawTable, frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    parts = []
    for name in columns:
        p = f"_p_{name}"
        bad = frame.filter(pl.col(p).is_not_null())
        if bad.height:
            parts.append(bad.select(
                pl.lit(raw.file).alias("file"), pl.col(ROW).alias("row"),
                pl.lit(raw.headers.get(name, name)).alias("column"), pl.col(p).alias("reason"),
                _as_text(f"_raw_{name}", raw.frame.schema[name]).alias("value"),
            ))
    return pl.concat(parts) if parts else pl.DataFrame(schema=REJECT_SCHEMA)


def _check_cells(raw: RawTable) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Typed rows that passed, reject lines, and the rows that failed (typed, for bookkeeping)."""
    table: Table = raw.table
    present = [c for c in table.columns if c.name in raw.frame.columns]
    exprs = [_parse(c, raw.frame.schema[c.name]) for c in present]
    frame = raw.frame.with_columns(
        [pl.col(c.name).alias(f"_raw_{c.name}") for c in present] + [e for pair in exprs for e in pair]
    )
    typed = [ROW] + [c.name for c in present]
    if table.name == "land":
        frame = _land_area(frame)
        typed += [] if "area_mu" in typed else ["area_mu"]
    problem_cols = [f"_p_{c.name}" for c in present]
    frame = frame.with_columns(pl.any_horizontal(pl.col(problem_cols).is_not_null()).alias("_bad"))
    rejects = _reject_lines(raw, frame.filter("_bad"), [c.name for c in present])
    good = frame.filter(~pl.col("_bad")).select(typed)
    bad = frame.filter("_bad").select(typed)
    # absent optional columns still exist downstream, as nulls
    missing = [pl.lit(None, dtype=_DTYPES[c.kind]).alias(c.name) for c in table.columns if c.name not in typed]
    return (good.with_columns(missing) if missing else good), rejects, bad


def _land_area(frame: pl.DataFrame) -> pl.DataFrame:
    """One area in 亩 per parcel: area_mu where given, else area_m2 converted (1 亩 = 2000/3 m²)."""
    cols = frame.columns
    mu = pl.col("area_mu") if "area_mu" in cols else pl.lit(None, dtype=pl.Float64)
    m2 = pl.col("area_m2") if "area_m2" in cols else pl.lit(None, dtype=pl.Float64)
    area_cols = [c for c in ("area_mu", "area_m2") if c in cols]
    no_problem = pl.all_horizontal(pl.col(f"_p_{c}").is_null() for c in area_cols)
    # report a parcel without any area on the first area column the file has
    target = f"_p_{area_cols[0]}"
    return frame.with_columns(
        pl.coalesce(mu, m2 * M2_PER_MU_DEN / M2_PER_MU_NUM).alias("area_mu"),
        pl.when(mu.is_null() & m2.is_null() & no_problem).then(pl.lit("缺少用地面积"))
        .otherwise(pl.col(target)).alias(target),
    )


def _split_duplicates(raw: RawTable, good: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    key = list(raw.table.key)
    marked = good.with_columns(
        pl.int_range(pl.len()).over(key).alias("_occ"), pl.col(ROW).first().over(key).alias("_first")
    )
    dups = marked.filter(pl.col("_occ") > 0)
    key_zh = "、".join(raw.headers.get(k, k) for k in key)
    lines = dups.select(
        pl.lit(raw.file).alias("file"), pl.col(ROW).alias("row"), pl.lit(key_zh).alias("column"),
        pl.format("与第{}行主键重复（{}），已保留第{}行", "_first", pl.lit(key_zh), "_first").alias("reason"),
        pl.concat_str([pl.col(k).cast(pl.String) for k in key], separator="|").alias("value"),
    )
    return marked.filter(pl.col("_occ") == 0).drop("_occ", "_first"), lines


def _split_unknown(raw: RawTable, good: pl.DataFrame, known: pl.Series, rejected_firms: pl.Series) -> tuple[pl.DataFrame, pl.DataFrame]:
    is_known = pl.col("uscc").is_in(known.implode())
    unknown = good.filter(~is_known)
    reason = (
        pl.when(pl.col("uscc").is_in(rejected_firms.implode()))
        .then(pl.lit("该企业在企业名录中的行已被拒绝，本行无法关联"))
        .otherwise(pl.lit("企业名录中没有该统一社会信用代码"))
    )
    lines = unknown.select(
        pl.lit(raw.file).alias("file"), pl.col(ROW).alias("row"),
        pl.lit(raw.headers.get("uscc", "uscc")).alias("column"), reason.alias("reason"), pl.col("uscc").alias("value"),
    )
    return good.filter(is_known), lines


def validate(files: dict[str, RawTable]) -> Inputs:
    tables: dict[str, pl.DataFrame] = {}
    reject_parts: list[pl.DataFrame] = []
    land_incomplete = pl.DataFrame(schema={"uscc": pl.String, "year": pl.Int32})

    order = ["enterprises"] + [n for n in TABLES if n != "enterprises"]
    known = pl.Series("uscc", [], dtype=pl.String)
    rejected_firms = pl.Series("uscc", [], dtype=pl.String)
    for name in order:
        raw = files.get(name)
        if raw is None:
            tables[name] = _empty(TABLES[name])
            continue
        good, cell_rejects, bad = _check_cells(raw)
        good, dup_rejects = _split_duplicates(raw, good)
        reject_parts += [cell_rejects, dup_rejects]
        if raw.table.needs_enterprise:
            good, unknown_rejects = _split_unknown(raw, good, known, rejected_firms)
            reject_parts.append(unknown_rejects)
        else:
            known = good["uscc"]
            rejected_firms = bad["uscc"].drop_nulls()
        if name == "land":
            land_incomplete = (
                bad.filter(pl.col("uscc").is_not_null() & pl.col("year").is_not_null())
                .select("uscc", "year").unique().sort("uscc", "year")
            )
        tables[name] = good.drop(ROW)

    rejects = pl.concat(reject_parts) if reject_parts else pl.DataFrame(schema=REJECT_SCHEMA)
    rejects = rejects.with_columns(pl.col("row").cast(pl.Int64)).sort("file", "row", "column")
    return Inputs(tables, rejects, files, land_incomplete)


def _empty(table: Table) -> pl.DataFrame:
    return pl.DataFrame(schema={c.name: _DTYPES[c.kind] for c in table.columns})
