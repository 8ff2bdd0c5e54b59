"""亩均效益综合评价: every enterprise's indicator values, item scores, total score, rank and
grade for ONE data year, under a method file (``rules/methods/<id>.yaml``).

    method = load_method("huangyan-2022")          # or a path to a .yaml file
    ev = evaluate(inputs, 2021, method)             # inputs: screening.validate.Inputs
    ev.scores   # one row per enterprise evaluated: indicators, score, rank, grade, not_graded_reason
    ev.items    # one row per (enterprise, indicator): value, baseline, weight, item score, handling
    write_evaluation(ev, Path("out"))

Everything is computed with Polars expressions over whole columns, one pass per population
(规上, 规下, 租赁企业 …, in the method's order); no Python loop runs per enterprise.  The steps:

1. firms: enterprises with data in the year whose 2-digit 大类 is in the method's range (or
   unknown); the scale comes from that year's ``stats`` row (none → not evaluated, listed with
   a reason); each goes to the first population whose scope holds (a scope on a value the
   firm lacks → not graded, with the reason);
2. scope: the method's not-graded rules, first match wins, give ``not_graded_reason`` (and
   ``grade_class`` T for 暂不评价 rules); firms without one are *eligible* and form the
   reference group of the population;
3. indicators: numerator ÷ denominator; a missing input → ``missing``, a 0 denominator →
   ``zero_denominator``;
4. baselines: fixed, or ``multiplier`` × the eligible firms' Σnum/Σden or mean of values;
5. item scores: value ÷ baseline × weight (optionally capped) or min–max with a floor; then
   the missing / zero-denominator policies (average item score of the eligible firms that
   have the value, 0 points, or not graded);
6. 加减分: ``base_score`` (the items' sum) plus the capped points of the ``adjustments``
   rows of the year = ``score``;
7. grades: rank = 1 + the number of graded firms of the group with a strictly higher score
   (scores rounded to ``rank_decimals``), percentile = rank ÷ n, first cut-off ≥ percentile
   (or score lines); quotas → ``initial_grade``; one-vote items → ``grade``.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ._version import __version__
from .errors import InputError, RuleSetError
from .evaluation_method import (
    DENOMINATORS,
    GRADES,
    NO_POPULATION,
    NO_SCALE,
    NUMERATORS,
    QUANTITY_TABLE,
    SCALES,
    DivisionsRule,
    FixedBaseline,
    Indicator,
    IndustryUnknownRule,
    Method,
    MinLandRule,
    NewFirmRule,
    Population,
    PopulationScope,
    load_method,
    shipped_methods,
)
from .validate import FIELD_CLEARED, FIRM_ID, REJECT_SCHEMA, ROW_REJECTED, Inputs

__all__ = [
    "Evaluation",
    "EvaluationWriter",
    "evaluate",
    "evaluation_grades",
    "load_evaluation_inputs",
    "load_method",
    "shipped_methods",
    "workbook_name",
    "write_evaluation",
]

#: a percentile within this distance above a cut-off still counts as at the cut-off
#: (rank ÷ n is a float; 2/10 must be "top 20 %")
PERCENTILE_TOLERANCE = 1e-9
#: land "below the minimum" is compared with this relative tolerance (2000 m² = 3 亩 exactly)
LAND_TOLERANCE = 1e-9

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_REFERENCE_DIVISIONS = Path(__file__).parent / "reference" / "gbt4754_2017_divisions.csv"


@dataclass
class Evaluation:
    """The result of :func:`evaluate`.  ``scores`` and ``items`` carry ``firm_id`` (dropped in files)."""

    year: int
    method: Method
    scores: pl.DataFrame
    items: pl.DataFrame
    baselines: pl.DataFrame
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    rejects: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=REJECT_SCHEMA))
    inputs_info: dict[str, Any] = field(default_factory=dict)
    #: grade_counts() of these very scores (evaluation.json and the terminal both print them); the
    #: frame counted is held weakly, so that scores replaced are not kept alive by the cache
    _counted: tuple[weakref.ref, dict[str, dict[str, int]]] | None = field(
        default=None, init=False, repr=False, compare=False)

    def rejected_rows(self) -> int:
        """Rows rejected: by validation, and 加减分 rows the method cannot use."""
        rows = self.rejects.filter(pl.col("action") != FIELD_CLEARED) if "action" in self.rejects.columns else self.rejects
        return rows.select(pl.struct("file", "row").n_unique()).item() if rows.height else 0

    def grade_counts(self) -> dict[str, dict[str, int]]:
        """{population name: {"evaluated": n, "A": …, "D": …, "not_graded": …, "T": …}}
        ("规模不明" for firms without stats, "未归入参评群体" for firms in no population);
        ``not_graded`` includes the T firms.  Counted once per ``scores`` frame (read-only result)."""
        if self._counted is not None and self._counted[0]() is self.scores:
            return self._counted[1]
        label = (pl.when(pl.col("scale").is_null()).then(pl.lit(NO_SCALE))
                 .otherwise(pl.col("population_name").fill_null(NO_POPULATION)))
        # the three keys taken first: grouping the whole frame by expressions copied it (+0.5 GB, ~0.4 s
        # at province scale, measured in the command)
        keys = self.scores.select(label.alias("p"), pl.col("grade").fill_null("not_graded"),
                                  (pl.col("grade_class") == "T").fill_null(False).alias("t"))
        counts = keys.group_by("p", "grade", "t").len().rows()
        out: dict[str, dict[str, int]] = {}
        for pop, grade, is_t, n in counts:
            row = out.setdefault(pop, {"evaluated": 0, **{g: 0 for g in GRADES}, "not_graded": 0, "T": 0})
            row[grade] += n
            row["evaluated"] += n
            row["T"] += n if is_t else 0
        order = [*(p.name for p in self.method.population_list), NO_POPULATION, NO_SCALE]
        counted = {s: out[s] for s in order if s in out}
        self._counted = (weakref.ref(self.scores), counted)
        return counted


# ---------------------------------------------------------------- inputs

def load_evaluation_inputs(data_dir: Path, year: int, method: Method, adjustments: Path | None = None,
                           cells_ahead: bool = False) -> Inputs:
    """Read and validate the tables the method needs, reading only year ``year``'s rows (a row
    of another valid year is left out unread and counted, see ``RawTable.years``).

    ``cells_ahead`` (the command): every table's cells are checked while the registry is
    validated (``validate(cells_ahead=True)``: about 0.2 s sooner and +170 MB for that stage at
    province scale); the service leaves it off, its memory is shared by every request.

    The 加减分 table is read when the method has 加减分 items: from ``adjustments`` (a file,
    e.g. the list another department sends) when given, else from ``adjustments.<ext>`` in
    the data directory when there is one."""
    from .ingest import RawTable, read_dir
    from .schema import TABLES
    from .validate import validate

    needed, optional = method.needed_tables(), method.optional_tables()
    if adjustments is not None:
        path = Path(adjustments)
        if not path.is_file():
            raise InputError(f"加减分文件不存在或不是文件：{path}")
        if method.adjustments is None:
            raise InputError(f"评价方法 {method.id} 没有加减分项目，不能使用加减分文件 {path.name}")
        optional = optional - {"adjustments"}
    files = {name: raw for name, raw in read_dir(Path(data_dir), needed, optional).items()
             if name in needed | optional}
    if adjustments is not None:
        files["adjustments"] = RawTable(TABLES["adjustments"], Path(adjustments), data_dir=Path(data_dir))
    # the evaluation reads year Y's rows only: a row of another valid year is left out as it is
    # read, before its cells are checked (a province's history would triple the work); a row
    # whose year cannot be told is read and checked as always (docs/evaluation.md)
    for raw in files.values():
        if any(c.name == "year" for c in raw.table.columns):
            raw.years = frozenset({year})
    return validate(files, keep_years={year}, cells_ahead=cells_ahead)


def _check_year(inputs: Inputs, year: int, method: Method) -> list[str]:
    def has_year(frame: pl.DataFrame) -> bool:  # without copying the year's rows
        return bool(frame.height) and bool((frame["year"] == year).any())

    stats = inputs.tables["stats"]
    if not has_year(stats):
        present = sorted(int(y) for y in stats["year"].unique().drop_nulls().to_list())
        have = f"（数据中有 {'、'.join(map(str, present))} 年）" if present else "（--year 应为数据年度，例如 2021）"
        raise InputError(f"统计数据 stats 中没有 {year} 年的数据，无法确定企业规模，不能评价{have}")
    missing = method.missing_baselines(year)
    if missing:
        dated = [i for p in method.population_list for i in p.indicators
                 if isinstance(i.baseline, FixedBaseline) and i.baseline.values is not None]
        which = "" if len(missing) == len(dated) else f"（{'、'.join(missing)}）"
        have = method.baseline_years()
        listed = f"，方法中有 {'、'.join(map(str, have))} 年度的基准值" if have else ""
        raise RuleSetError(f"评价方法 {method.id} 没有 {year} 年度数据适用的基准值{which}{listed}；"
                           f"请换用适用于该年度的评价方法，或在方法文件的 values 中补充 {year} 年度的数值及依据")
    warnings: list[str] = []
    for table in sorted({QUANTITY_TABLE[q] for q in method.quantities()} - {"stats"}):
        if not has_year(inputs.tables[table]):
            warnings.append(f"{table} 中没有 {year} 年的数据，用到它的指标全部按缺数据处理")
    if method.data_year is not None and method.data_year != year:
        warnings.append(f"评价方法 {method.id} 的基准值按 {method.data_year} 年度数据制定，本次评价 {year} 年数据，结果只作对照")
    return warnings


def _firm_year(inputs: Inputs, year: int, method: Method) -> pl.DataFrame:
    """One row per enterprise with data in ``year`` and inside the method's industry range:
    the registry columns, the scale and every input quantity (land = sum of the parcels).

    The year's rows are placed by ``firm_id`` with NumPy index arithmetic rather than joins
    (every table row's firm_id is in the registry: validation guarantees it)."""
    tables = inputs.tables
    ent = tables["enterprises"]
    n = ent.height
    ids = ent[FIRM_ID].to_numpy().astype(np.int64)
    lookup = np.full(int(ids.max()) + 1 if n else 1, -1, dtype=np.int64)
    lookup[ids] = np.arange(n)
    present = np.zeros(n, dtype=bool)

    def rows_of(frame: pl.DataFrame) -> np.ndarray:
        pos = lookup[frame[FIRM_ID].to_numpy().astype(np.int64)]
        present[pos] = True
        return pos

    def spread(frame: pl.DataFrame, columns: list[str]) -> list[pl.Series]:
        """The frame's columns laid out in registry order (null where the firm has no row)."""
        where = np.full(n, -1, dtype=np.int64)
        where[rows_of(frame)] = np.arange(frame.height)
        index = pl.Series("i", where)
        index = index.set(index < 0, None) if (where < 0).any() else index
        return frame.select(pl.col(columns).gather(index)).get_columns()

    def of_year(name: str) -> pl.DataFrame:
        frame = tables[name]
        years = frame["year"]
        if frame.height and not years.null_count() and years.min() == year == years.max():
            return frame  # validated with keep_years={year}: not copied again
        return frame.filter(pl.col("year") == year)

    columns = spread(of_year("stats").with_columns(pl.col("employees").cast(pl.Float64)),
                     ["scale", "revenue", "value_added", "employees", "rd_expense", "emissions"])
    columns += spread(of_year("tax"), ["tax_paid"])
    columns += spread(of_year("energy"), ["energy_tce", "electricity"])
    land = of_year("land")
    pos = rows_of(land)
    area = land["area_mu"].to_numpy()
    land_mu = np.bincount(pos, weights=area, minlength=n)
    parcels = np.bincount(pos, minlength=n)
    has_land = parcels > 0
    tenure = land["tenure"] if "tenure" in land.columns else pl.Series([None] * land.height, dtype=pl.String)
    own = (tenure == "自有").fill_null(False).to_numpy()
    leased = (tenure == "租赁").fill_null(False).to_numpy()
    own_mu = np.bincount(pos, weights=area * own, minlength=n)
    own_parcels = np.bincount(pos, weights=own.astype(np.int64), minlength=n) > 0
    leased_mu = np.bincount(pos, weights=area * leased, minlength=n)
    all_leased = has_land & (np.bincount(pos, weights=leased.astype(np.int64), minlength=n) == parcels)
    # a firm-year with a rejected parcel has unknown land: its total would be understated
    incomplete = inputs.land_incomplete.filter(pl.col("year") == year)
    has_land[rows_of(incomplete)] = False
    all_leased &= has_land  # a rejected parcel may have been its own
    land_series = pl.Series("land_mu", land_mu).set(pl.Series(~has_land), None)
    # own: at least one 自有 parcel; tenant: parcels, all 租赁 (no industrial land of its own)
    # (picked by index from three values: a million-row NumPy string array costs ~0.15 s to convert)
    tenure_class = np.where(own_parcels, 1, np.where(all_leased, 2, 0)).astype(np.uint32)
    tenure_series = pl.Series("tenure", [None, "own", "tenant"], dtype=pl.String).gather(tenure_class)
    land_split = [pl.Series("own_land_mu", own_mu).set(pl.Series(~has_land), None),
                  pl.Series("leased_land_mu", leased_mu).set(pl.Series(~has_land), None)]
    if "small_park" not in ent.columns:  # inputs validated before the column existed
        ent = ent.with_columns(pl.lit(None, dtype=pl.String).alias("small_park"))

    ev = method.scope.evaluated
    division = pl.col("industry_code").str.slice(0, 2).cast(pl.Int32, strict=False)
    return (
        ent.with_columns(*columns, land_series, tenure_series, *land_split, division.alias("division"),
                         pl.lit(year, dtype=pl.Int32).alias("year"), pl.Series("_present", present))
        .filter(pl.col("_present") & (pl.col("division").is_null()
                                      | pl.col("division").is_between(ev.division_min, ev.division_max)))
        .drop("_present")
    )


def _texts(frame: pl.DataFrame, cases: list[tuple[pl.Expr, pl.Expr]]) -> pl.Series:
    """Per row, the text of the first case whose condition holds (null if none does).

    Each text expression is evaluated only on the rows that take it: Chinese sentences with
    a firm's own numbers are built for the few rows that need one, not for every row."""
    n = frame.height
    if not cases:
        return pl.repeat(None, n, dtype=pl.String, eager=True)
    code: pl.Expr = pl.lit(None, dtype=pl.UInt16)
    for i, (cond, _) in reversed(list(enumerate(cases))):
        code = pl.when(cond).then(pl.lit(i, dtype=pl.UInt16)).otherwise(code)
    needed = sorted({name for cond, text in cases for e in (cond, text) for name in e.meta.root_names()})
    needed = needed or frame.columns[:1]  # keeps the frame's height when no case reads a column
    tagged = (frame.select(needed).with_row_index("_i").with_columns(code.alias("_c"))
              .filter(pl.col("_c").is_not_null()))
    out = pl.repeat(None, n, dtype=pl.String, eager=True)
    if not tagged.height:
        return out
    parts = [tagged.filter(pl.col("_c") == i).select("_i", text.cast(pl.String).alias("_t"))
             for i, (_, text) in enumerate(cases)]
    texts = pl.concat(parts)
    return out.scatter(texts["_i"], texts["_t"]) if texts.height else out


# ---------------------------------------------------------------- scope

def _render(template: str, constants: dict[str, str], columns: dict[str, pl.Expr]) -> pl.Expr:
    """A Chinese reason template as one string expression (placeholders checked at load)."""
    pieces: list[pl.Expr] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(template):
        pieces.append(pl.lit(template[pos:m.start()]))
        name = m.group(1)
        pieces.append(pl.lit(constants[name]) if name in constants else columns[name].fill_null("—"))
        pos = m.end()
    pieces.append(pl.lit(template[pos:]))
    return pl.concat_str(pieces)


def _scope_cases(method: Method, year: int) -> list[tuple[pl.Expr, pl.Expr]]:
    """(condition, Chinese reason) of every scope rule, in order: the first match wins.
    :func:`_scope_classes` gives the matching ``grade_class`` (T) of the same cases."""
    return [(cond, text) for cond, text, _ in _scope_rules(method, year)]


def _scope_classes(method: Method, year: int) -> pl.Expr:
    """``T`` when the first matching scope rule is a 暂不评价 rule, else null."""
    out: pl.Expr = pl.lit(None, dtype=pl.String)
    for cond, _, cls in reversed(_scope_rules(method, year)):
        out = pl.when(cond).then(pl.lit(cls, dtype=pl.String)).otherwise(out)
    return out


def _scope_rules(method: Method, year: int) -> list[tuple[pl.Expr, pl.Expr, str | None]]:
    columns = {
        "industry_code": pl.col("industry_code"),
        "division": pl.col("division").cast(pl.String),
        "established": pl.col("established").cast(pl.String),
        "scale": pl.col("scale"),
        "land_mu": _num_text(pl.col("land_mu").round(2)),
    }
    shared = {"year": str(year)}
    columns["population"] = pl.col("population_name")
    cases: list[tuple[pl.Expr, pl.Expr, str | None]] = [
        (pl.col("scale").is_null(), pl.lit(f"缺少{year}年统计数据，无法确定规模，未参加评价。"), None),
    ]
    for rule in method.scope.not_graded:
        cls = rule.grade_class
        if isinstance(rule, IndustryUnknownRule):
            cases.append((pl.col("division").is_null(), _render(rule.reason, shared, columns), cls))
        elif isinstance(rule, DivisionsRule):
            consts = {**shared, "divisions": "、".join(f"{d:02d}" for d in rule.divisions)}
            cases.append((pl.col("division").is_in(rule.divisions), _render(rule.reason, consts, columns), cls))
        elif isinstance(rule, NewFirmRule):
            cutoff = dt.date(year - rule.years, 12, 31)
            consts = {**shared, "years": str(rule.years), "cutoff": cutoff.isoformat()}
            cases.append(((pl.col("established") > cutoff).fill_null(False), _render(rule.reason, consts, columns), cls))
        elif isinstance(rule, MinLandRule):
            consts = {**shared, "min_land_mu": f"{rule.min_land_mu:g}"}
            in_scale = pl.col("scale") == rule.scale
            small = pl.col("land_mu") < rule.min_land_mu * (1 - LAND_TOLERANCE)
            cases.append(((in_scale & small).fill_null(False), _render(rule.reason, consts, columns), cls))
            cases.append(((in_scale & pl.col("land_mu").is_null()).fill_null(False),
                          _render(rule.reason_unknown, consts, columns), cls))
    # a firm whose population cannot be told, or that belongs to none
    cases.append((pl.col("_pop") < 0, pl.col("_pop_reason"), None))
    cases.append((pl.col("_pop").is_null(), pl.lit(f"不属于评价方法 {method.id} 的任何参评群体，不定等级。"), None))
    return cases


#: what a population scope reads, in words (for the reason when a firm lacks it)
_SCOPE_FIELDS = {"scale": "规模", "tenure": "用地权属", "min_land_mu": "用地面积", "below_land_mu": "用地面积",
                 "small_park": "小微园标志", "divisions": "行业代码"}  # small_park is never unknown (empty = 否)


def _scope_columns(method: Method) -> list[str]:
    """Registry and land facts the populations were told apart by (written for traceability):
    ``tenure`` (自有 / 租赁, see PopulationScope), the own and leased areas, the 小微园 flag."""
    pops = method.population_list
    cols = ["tenure", "own_land_mu", "leased_land_mu"] if any(p.when.tenure for p in pops) else []
    return cols + (["small_park"] if any(p.when.small_park is not None for p in pops) else [])


def _population_conditions(when: PopulationScope) -> list[tuple[str, pl.Expr]]:
    """(field, condition) per condition of the scope: True, False or null (a value unknown)."""
    conds: list[tuple[str, pl.Expr]] = []
    if when.scale is not None:
        conds.append(("scale", pl.col("scale").is_in(when.scale)))
    if when.tenure is not None:
        conds.append(("tenure", pl.col("tenure") == when.tenure))
    if when.min_land_mu is not None:
        conds.append(("min_land_mu", pl.col("land_mu") >= when.min_land_mu * (1 - LAND_TOLERANCE)))
    if when.below_land_mu is not None:
        conds.append(("below_land_mu", pl.col("land_mu") < when.below_land_mu * (1 - LAND_TOLERANCE)))
    if when.small_park is not None:  # the flag marks the park's firms: empty means 否
        in_park = (pl.col("small_park") == "是").fill_null(False)
        conds.append(("small_park", in_park if when.small_park else ~in_park))
    if when.divisions is not None:
        conds.append(("divisions", pl.col("division").is_in(when.divisions)))
    return conds


def _assign_populations(base: pl.DataFrame, method: Method) -> pl.DataFrame:
    """``_pop``: the index of the first population whose scope holds; −(i + 1) when population
    i's scope cannot be told (a needed value unknown) before any holds; null when none holds.
    ``_pop_reason`` names the unknown values and the population."""
    pops = method.population_list
    idx: pl.Expr = pl.lit(None, dtype=pl.Int32)
    reason: pl.Expr = pl.lit(None, dtype=pl.String)
    for i, pop in reversed(list(enumerate(pops))):
        conds = _population_conditions(pop.when)
        cond: pl.Expr = pl.lit(True)
        for _, c in conds:
            cond = cond & c  # Kleene: False & null = False, True & null = null
        unknown = pl.concat_str([pl.when(c.is_null()).then(pl.lit(_SCOPE_FIELDS[f])) for f, c in conds],
                                separator="、", ignore_nulls=True) if conds else pl.lit("")
        text = pl.concat_str(pl.lit("缺少"), unknown, pl.lit(f"，无法判断是否属于参评群体“{pop.name}”，不定等级。"))
        idx = pl.when(cond.is_null()).then(pl.lit(-(i + 1), dtype=pl.Int32)).when(cond).then(
            pl.lit(i, dtype=pl.Int32)).otherwise(idx)
        reason = pl.when(cond.is_null()).then(text).when(cond).then(pl.lit(None, dtype=pl.String)).otherwise(reason)
    base = base.with_columns(pl.when(pl.col("scale").is_not_null()).then(idx).alias("_pop"),
                             pl.when(pl.col("scale").is_not_null()).then(reason).alias("_pop_reason"))
    ids = [p.id for p in pops]
    names = [p.name for p in pops]
    placed = pl.col("_pop").is_not_null() & (pl.col("_pop") >= 0)
    return base.with_columns(
        pl.when(placed).then(pl.col("_pop").replace_strict(range(len(pops)), ids, default=None, return_dtype=pl.String))
        .alias("population"),
        pl.when(placed).then(pl.col("_pop").replace_strict(range(len(pops)), names, default=None, return_dtype=pl.String))
        .alias("population_name"),
    )


# ---------------------------------------------------------------- scoring one scale

# data status and handling as small integer codes while computing; names in the items file
STATUS = ("ok", "zero_denominator", "missing")
HANDLING = ("computed", "average_item_score", "zero", "not_graded", "no_baseline", "no_average")
_H = {name: i for i, name in enumerate(HANDLING)}
_UNSCORED = [_H["not_graded"], _H["no_baseline"], _H["no_average"]]


def _problem_text(ind: Indicator) -> pl.Expr:
    """What is wrong with a firm's inputs for this indicator (Chinese), or null."""
    num, den = ind.formula.numerator, ind.formula.denominator
    num_zh, den_zh = NUMERATORS[num][0], DENOMINATORS[den][0]
    n, d = pl.col(num), pl.col(den)
    return (pl.when(n.is_null() & d.is_null()).then(pl.lit(f"缺少{num_zh}和{den_zh}"))
            .when(n.is_null()).then(pl.lit(f"缺少{num_zh}"))
            .when(d.is_null()).then(pl.lit(f"缺少{den_zh}"))
            .when(d == 0).then(pl.lit(f"{den_zh}为0")))


def _reference(part: pl.DataFrame, sm: Population, year: int) -> dict[str, dict[str, Any]]:
    """Per indicator: Σ numerator, Σ denominator, mean, min and max of the values, and the
    number of firms, over the scale's eligible firms (no scope reason) that have a value."""
    aggs = []
    for ind in sm.indicators:
        ok = pl.col("_scope_reason").is_null() & (pl.col(f"_st_{ind.id}") == 0)
        n, d, v = pl.col(ind.formula.numerator), pl.col(ind.formula.denominator), pl.col(ind.id)
        aggs += [n.filter(ok).sum().alias(f"{ind.id}|sum_num"), d.filter(ok).sum().alias(f"{ind.id}|sum_den"),
                 v.filter(ok).mean().alias(f"{ind.id}|mean"), v.filter(ok).min().alias(f"{ind.id}|min"),
                 v.filter(ok).max().alias(f"{ind.id}|max"), ok.sum().alias(f"{ind.id}|n")]
    row = part.select(aggs).row(0, named=True)
    out: dict[str, dict[str, Any]] = {}
    for ind in sm.indicators:
        ref = {k: row[f"{ind.id}|{k}"] for k in ("sum_num", "sum_den", "mean", "min", "max", "n")}
        ref["n"] = int(ref["n"] or 0)
        ref["baseline"] = None
        b = ind.baseline
        if isinstance(b, FixedBaseline):
            ref["baseline"] = b.value_for(year)
        elif b is not None and ref["n"]:
            avg = (ref["sum_num"] / ref["sum_den"] if ref["sum_den"] else None) if b.average == "ratio_of_sums" else ref["mean"]
            ref["baseline"] = avg * b.multiplier if avg is not None else None
        out[ind.id] = ref
    return out


def _raw_item(ind: Indicator, sm: Population, ref: dict[str, Any]) -> tuple[pl.Expr | None, pl.Expr]:
    """(item score from the value, or None when no score can be computed; capped flag)."""
    fn, v, w = sm.item_score, pl.col(ind.id), ind.weight
    if fn.function == "ratio":
        if ref["baseline"] is None or ref["baseline"] <= 0:
            return None, pl.lit(False)
        raw = v / ref["baseline"] * w
        if fn.cap is None:
            return raw, pl.lit(False)
        return raw.clip(upper_bound=fn.cap * w), (raw > fn.cap * w).fill_null(False)
    if not ref["n"]:
        return None, pl.lit(False)
    lo, hi = ref["min"], ref["max"]
    norm = ((v - lo) / (hi - lo)) if hi > lo else v * 0 + 1.0  # all equal: full weight
    # only firms outside the reference group (not graded) can fall outside [min, max]
    return w * (fn.floor + (1 - fn.floor) * norm.clip(0.0, 1.0)), ((norm < 0) | (norm > 1)).fill_null(False)


def _score_scale(part: pl.DataFrame, sm: Population, year: int, adjustments: pl.DataFrame, method: Method
                 ) -> tuple[pl.DataFrame, pl.DataFrame, list[dict[str, Any]]]:
    """Score, adjust, rank and grade one population (``part``: its firms)."""
    inds = sm.indicators
    scale = sm.name  # how the Chinese notes name the group ("按规上企业该项平均得分")
    if not part.height:
        empty = part.with_columns(
            *(pl.lit(None, dtype=pl.Float64).alias(c) for i in inds for c in (i.id, f"{i.id}_score")),
            *(pl.lit(None, dtype=pl.Float64).alias(c) for c in ("base_score", "adjustment", "score", "percentile",
                                                                 "population_percentile")),
            *(pl.lit(None, dtype=pl.String).alias(c) for c in ("not_graded_reason", "grade_group", "grade",
                                                                "initial_grade", "adjustment_detail")),
            *(pl.lit(None, dtype=pl.Int64).alias(c) for c in ("rank", "group_size", "population_rank",
                                                               "population_size")))
        refs = {i.id: {"n": 0, "baseline": i.baseline.value_for(year) if isinstance(i.baseline, FixedBaseline) else None,
                       "sum_num": None, "sum_den": None, "mean": None, "min": None, "max": None,
                       "average_item_score": None} for i in inds}
        return empty, pl.DataFrame(), [_baseline_row(sm, i, refs[i.id]) for i in inds]

    # 3. indicator values and data status (0 ok, 1 zero denominator, 2 missing)
    cols = []
    for ind in inds:
        n, d = pl.col(ind.formula.numerator), pl.col(ind.formula.denominator)
        cols.append(pl.when(n.is_null() | d.is_null()).then(pl.lit(2, dtype=pl.UInt8))
                    .when(d == 0).then(pl.lit(1, dtype=pl.UInt8)).otherwise(pl.lit(0, dtype=pl.UInt8))
                    .alias(f"_st_{ind.id}"))
        cols.append(pl.when(n.is_not_null() & (d != 0)).then(n / d).alias(ind.id))
    part = part.with_columns(cols)

    # 4. baselines and the reference group; 5a. item scores from the values
    refs = _reference(part, sm, year)
    raws = {ind.id: _raw_item(ind, sm, refs[ind.id]) for ind in inds}
    part = part.with_columns(
        *((raw if raw is not None else pl.lit(None, dtype=pl.Float64)).alias(f"_raw_{i}") for i, (raw, _) in raws.items()),
        *(capped.alias(f"_cap_{i}") for i, (_, capped) in raws.items()),
    )
    eligible = pl.col("_scope_reason").is_null()
    averages = part.select(
        pl.col(f"_raw_{i.id}").filter(eligible & (pl.col(f"_st_{i.id}") == 0)).mean().alias(i.id) for i in inds
    ).row(0, named=True)

    # 5b. missing data and zero denominators
    cols = []
    for ind in inds:
        ref = refs[ind.id]
        avg = ref["average_item_score"] = averages[ind.id]
        ok_case = ("computed", pl.col(f"_raw_{ind.id}")) if raws[ind.id][0] is not None else ("no_baseline", None)
        missing_case = {
            "average_item_score": ("average_item_score", pl.lit(avg)) if avg is not None else ("no_average", None),
            "zero": ("zero", pl.lit(0.0)),
            "not_graded": ("not_graded", None),
        }[sm.missing_policy(ind).policy]
        zero_case = ("zero", pl.lit(0.0)) if sm.zero_policy(ind).policy == "zero" else missing_case
        st = pl.col(f"_st_{ind.id}")
        cases = (ok_case, zero_case, missing_case)  # by data status 0, 1, 2
        codes = [pl.lit(_H[code], dtype=pl.UInt8) for code, _ in cases]
        values = [expr if expr is not None else pl.lit(None, dtype=pl.Float64) for _, expr in cases]
        cols.append(pl.when(st == 0).then(codes[0]).when(st == 1).then(codes[1]).otherwise(codes[2])
                    .alias(f"_h_{ind.id}"))
        cols.append(pl.when(st == 0).then(values[0]).when(st == 1).then(values[1]).otherwise(values[2])
                    .cast(pl.Float64).alias(f"{ind.id}_score"))
    part = part.with_columns(cols)

    items = [pl.col(f"{i.id}_score") for i in inds]
    part = part.with_columns(
        pl.when(pl.all_horizontal(e.is_not_null() for e in items)).then(pl.sum_horizontal(items)).alias("base_score"))
    # 6. 加减分
    part = _adjust(part, adjustments, method)
    # why an in-scope firm cannot be graded: the indicators it has no score for
    pieces = []
    for ind in inds:
        h = pl.col(f"_h_{ind.id}")
        pieces.append(
            pl.when(h == _H["not_graded"]).then(pl.concat_str(pl.lit(f"{ind.name}（"), _problem_text(ind), pl.lit("）")))
            .when(h == _H["no_average"]).then(pl.concat_str(pl.lit(f"{ind.name}（"), _problem_text(ind),
                                                              pl.lit(f"，且没有可比的{scale}企业可取平均得分）")))
            .when(h == _H["no_baseline"]).then(pl.lit(f"{ind.name}（没有可比的{scale}企业，无法计算基准值）")))
    unscored = pl.any_horizontal(pl.col(f"_h_{i.id}").is_in(_UNSCORED) for i in inds)
    data_reason = _texts(part, [(eligible & unscored, pl.concat_str(
        pl.lit("以下指标无法评分，按本方法不定等级："), pl.concat_str(pieces, separator="；", ignore_nulls=True), pl.lit("。")))])
    part = part.with_columns(pl.coalesce(pl.col("_scope_reason"), data_reason).alias("not_graded_reason"))

    # 7. grades
    part = _grade(part, sm)
    item_frame = _items(part, sm, refs)
    baselines = [_baseline_row(sm, ind, refs[ind.id]) for ind in inds]
    drop = [c for c in part.columns if c.startswith(("_st_", "_raw_", "_cap_", "_h_", "_force", "_at_most"))]
    return part.drop(drop), item_frame, baselines


# ---------------------------------------------------------------- 加减分

_ADJ_SCHEMA = {FIRM_ID: pl.UInt32, "item": pl.String, "value": pl.Float64, "source": pl.String,
               "document": pl.String}


def _num_text(e: pl.Expr) -> pl.Expr:
    """A number as people write it: 3, 2.5, 0.1234 (at most 4 decimals)."""
    r = e.round(4)
    # a whole number beyond 64 bits (a table's 1e300) stays a float's text: never a failed cast
    whole = (r == r.round(0)) & (r.abs() < 1e15)
    return pl.when(whole).then(r.cast(pl.Int64, strict=False).cast(pl.String)).otherwise(r.cast(pl.String))


def _adjustment_rows(inputs: Inputs, year: int, method: Method) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The year's ``adjustments`` rows the method can use (with the item's definition), and
    reject lines for the others: an item id the method does not have, a value missing where
    the table must give it, a value other than the one the method fixes."""
    adj = method.adjustments
    table = inputs.tables.get("adjustments")
    empty = pl.DataFrame(schema=_ADJ_SCHEMA)
    if adj is None or table is None or not table.height:
        return empty, pl.DataFrame(schema=REJECT_SCHEMA)
    rows = table.filter(pl.col("year") == year)
    defs = pl.DataFrame({
        "item": [i.id for i in adj.items],
        "_order": list(range(len(adj.items))),
        "_name": [i.name for i in adj.items],
        "_effect": [i.effect for i in adj.items],
        "_unit": [i.unit for i in adj.items],
        "_fixed": [i.value for i in adj.items],
        "_max": [i.max_points for i in adj.items],
        "_grade": [i.grade for i in adj.items],
        "_mode": [i.mode for i in adj.items],
    }, schema_overrides={"_fixed": pl.Float64, "_max": pl.Float64, "_grade": pl.String})
    rows = rows.join(defs, on="item", how="left", maintain_order="left")
    known = "、".join(i.id for i in adj.items)
    item_problem = pl.when(pl.col("_effect").is_null()).then(
        pl.format(f"加减分项目“{{}}”不是评价方法 {method.id} 的项目（可用：{known}）", "item"))
    needs_value = pl.col("_effect").is_in(["bonus", "penalty"]) & pl.col("_fixed").is_null()
    value_problem = (
        pl.when(needs_value & pl.col("value").is_null()).then(pl.format("缺少分值：项目“{}”的分值按数据表填写", "_name"))
        .when(pl.col("_fixed").is_not_null() & pl.col("value").is_not_null()
              & ((pl.col("value") - pl.col("_fixed")).abs() > 1e-9))
        .then(pl.format("分值{}与评价方法对项目“{}”规定的{}不一致（可留空）", _num_text(pl.col("value")), "_name",
                        _num_text(pl.col("_fixed"))))
        .when((pl.col("_effect") == "grade") & pl.col("value").is_not_null())
        .then(pl.format("项目“{}”为一票否决，不填分值", "_name")))
    rows = rows.with_columns(item_problem.alias("_p_item"), value_problem.alias("_p_value"))
    bad = rows.filter(pl.col("_p_item").is_not_null() | pl.col("_p_value").is_not_null())
    raw = inputs.files.get("adjustments")
    file = raw.file if raw is not None else "adjustments"
    headers = raw.headers if raw is not None else {}
    lines = []
    for col in ("item", "value"):
        hit = bad.filter(pl.col(f"_p_{col}").is_not_null() & (pl.col("_p_item").is_null() if col == "value" else True))
        if hit.height:
            lines.append(hit.select(
                pl.lit(file).alias("file"), pl.col("source_row").cast(pl.Int64).alias("row"),
                pl.lit(headers.get(col, col)).alias("column"), pl.col(f"_p_{col}").alias("reason"),
                pl.col(col).cast(pl.String).alias("value"), pl.lit(ROW_REJECTED).alias("action")))
    rejects = pl.concat(lines) if lines else pl.DataFrame(schema=REJECT_SCHEMA)
    good = rows.filter(pl.col("_p_item").is_null() & pl.col("_p_value").is_null()).drop("_p_item", "_p_value")
    return good, rejects


def _adjust(part: pl.DataFrame, rows: pl.DataFrame, method: Method) -> pl.DataFrame:
    """``adjustment`` (capped points), ``score`` = base_score + adjustment, the Chinese
    ``adjustment_detail`` and the one-vote grades (``_force_grade``, ``_at_most_grade``)."""
    has_base = pl.col("base_score").is_not_null()
    none = [pl.when(has_base).then(pl.lit(0.0)).alias("adjustment"), pl.col("base_score").alias("score"),
            pl.lit(None, dtype=pl.String).alias("adjustment_detail"),
            pl.lit(None, dtype=pl.String).alias("_force_grade"), pl.lit(None, dtype=pl.String).alias("_at_most_grade")]
    adj = method.adjustments
    r = rows.join(part.select(FIRM_ID, "base_score"), on=FIRM_ID, how="inner") if rows.height else rows
    if adj is None or not r.height:
        return part.with_columns(none)
    used = pl.coalesce("_fixed", "value")
    points = pl.when(pl.col("_unit") == "percent").then(pl.col("base_score") * used / 100).otherwise(used)
    capped = pl.when(pl.col("_max").is_not_null() & (points > pl.col("_max"))).then(pl.col("_max")).otherwise(points)
    r = r.with_columns(points.alias("_pts"), capped.alias("_capped")).sort(FIRM_ID, "_order")
    sign = pl.when(pl.col("_effect") == "bonus").then(pl.lit("加")).otherwise(pl.lit("扣"))
    pct = pl.when(pl.col("_unit") == "percent").then(pl.format("{}%即", _num_text(used))).otherwise(pl.lit(""))
    cap_note = pl.when(pl.col("_capped") < pl.col("_pts")).then(
        pl.format("（{}分，超过单项上限，按{}分计）", _num_text(pl.col("_pts")), _num_text(pl.col("_max")))).otherwise(pl.lit(""))
    amount = pl.when(pl.col("_capped").is_null()).then(pl.lit("（得分无法计算，未计）")).otherwise(
        pl.concat_str(sign, pct, _num_text(pl.col("_capped")), pl.lit("分"), cap_note))
    grade_text = pl.when(pl.col("_mode") == "force").then(pl.format("一票否决，等级定为{}", "_grade")).otherwise(
        pl.format("等级不高于{}", "_grade"))
    where = pl.concat_str(pl.lit("（认定部门："), pl.col("source"),
                          pl.when(pl.col("document").is_not_null()).then(pl.format("；依据：{}", "document"))
                          .otherwise(pl.lit("")), pl.lit("）"))
    text = pl.concat_str(pl.col("_name"),
                         pl.when(pl.col("_effect") == "grade").then(pl.concat_str(pl.lit("："), grade_text)).otherwise(amount),
                         where)
    bonus, penalty = pl.col("_effect") == "bonus", pl.col("_effect") == "penalty"
    per_firm = r.group_by(FIRM_ID, maintain_order=True).agg(
        pl.col("_capped").filter(bonus).sum().alias("_bonus"),
        pl.col("_capped").filter(penalty).sum().alias("_penalty"),
        (pl.col("_capped").is_null() & (bonus | penalty)).any().alias("_unknown"),
        text.str.join("；").alias("_detail"),
        pl.col("_grade").filter((pl.col("_effect") == "grade") & (pl.col("_mode") == "force")).max().alias("_force_grade"),
        pl.col("_grade").filter((pl.col("_effect") == "grade") & (pl.col("_mode") == "at_most")).max().alias("_at_most_grade"),
    )
    totals = []
    bonus_sum, penalty_sum = pl.col("_bonus"), pl.col("_penalty")
    if adj.max_bonus is not None:
        totals.append(pl.when(bonus_sum > adj.max_bonus).then(pl.format(
            f"加分合计{{}}分，超过上限{adj.max_bonus:g}分，按{adj.max_bonus:g}分计", _num_text(bonus_sum))))
        bonus_sum = pl.min_horizontal(bonus_sum, pl.lit(adj.max_bonus))
    if adj.max_penalty is not None:
        totals.append(pl.when(penalty_sum > adj.max_penalty).then(pl.format(
            f"扣分合计{{}}分，超过上限{adj.max_penalty:g}分，按{adj.max_penalty:g}分计", _num_text(penalty_sum))))
        penalty_sum = pl.min_horizontal(penalty_sum, pl.lit(adj.max_penalty))
    per_firm = per_firm.with_columns(
        pl.when(~pl.col("_unknown")).then(bonus_sum - penalty_sum).alias("_adjustment"),
        pl.concat_str([pl.col("_detail"), *totals], separator="；", ignore_nulls=True).alias("_detail"))
    part = part.join(per_firm.select(FIRM_ID, "_adjustment", "_detail", "_force_grade", "_at_most_grade"),
                     on=FIRM_ID, how="left", maintain_order="left")
    adjustment = pl.when(has_base).then(pl.col("_adjustment").fill_null(0.0))
    return part.with_columns(adjustment.alias("adjustment")).with_columns(
        (pl.col("base_score") + pl.col("adjustment")).alias("score"),
        pl.col("_detail").alias("adjustment_detail"),
    ).drop("_adjustment", "_detail")


def _division_labels() -> tuple[list[int], list[str]]:
    ref = pl.read_csv(_REFERENCE_DIVISIONS, schema_overrides={"division": pl.Int32})
    return ref["division"].to_list(), [f"{d:02d} {n}" for d, n in ref.iter_rows()]


def _grade(part: pl.DataFrame, sm: Population) -> pl.DataFrame:
    g = sm.grading
    graded = pl.col("not_graded_reason").is_null()
    if g.within in ("scale", "population"):
        group = pl.lit(sm.name)
    elif g.within == "division":
        codes, labels = _division_labels()
        group = pl.col("division").replace_strict(codes, labels, default=pl.format("{} 大类", pl.col("division")),
                                                  return_dtype=pl.String)
    else:
        pairs = sorted(((p, name) for name, prefixes in (g.groups or {}).items() for p in prefixes),
                       key=lambda pn: -len(pn[0]))
        group = pl.lit(g.other_group)
        for prefix, name in reversed(pairs):  # the longest matching prefix wins
            group = pl.when(pl.col("industry_code").str.starts_with(prefix)).then(pl.lit(name)).otherwise(group)
        group = group.fill_null(pl.lit(g.other_group))
    part = part.with_columns(pl.when(graded).then(group).alias("grade_group"))
    if g.within not in ("scale", "population"):
        # the rank of a firm in a tiny group means little: small groups are ranked together
        small = (graded.sum().over("grade_group") < g.min_group_size) & graded
        part = part.with_columns(pl.when(small).then(pl.lit(g.pooled_group)).otherwise(pl.col("grade_group"))
                                 .alias("grade_group"))
    ranked = pl.when(graded).then(pl.col("score").round(g.rank_decimals))
    # graded firms of one population ranked as one group (grade_group is the population's name
    # or null): the group's rank, size and percentile are the population's, computed once
    whole = g.within in ("scale", "population")
    part = part.with_columns(
        ranked.rank("min", descending=True).cast(pl.Int64).alias("population_rank"),
        pl.when(graded).then(graded.sum()).cast(pl.Int64).alias("population_size"),
    ).with_columns((pl.col("population_rank") / pl.col("population_size")).alias("population_percentile"))
    if whole:
        part = part.with_columns(pl.col("population_rank").alias("rank"), pl.col("population_size").alias("group_size"),
                                 pl.col("population_percentile").alias("percentile"))
    else:
        part = part.with_columns(
            ranked.rank("min", descending=True).over("grade_group").cast(pl.Int64).alias("rank"),
            pl.when(graded).then(graded.sum().over("grade_group")).cast(pl.Int64).alias("group_size"),
        ).with_columns((pl.col("rank") / pl.col("group_size")).alias("percentile"))
    grade: pl.Expr = pl.lit(None, dtype=pl.String)
    cumulative = g.cumulative()
    if cumulative is not None:
        for letter, cutoff in reversed(list(cumulative.items())):
            grade = pl.when(pl.col("percentile") <= cutoff + PERCENTILE_TOLERANCE).then(pl.lit(letter)).otherwise(grade)
    else:  # score lines: A ≥ thresholds.A, B ≥ thresholds.B, C ≥ thresholds.C, else D
        grade = pl.lit("D")
        for letter, line in reversed(list((g.thresholds or {}).items())):
            grade = pl.when(ranked >= round(line, g.rank_decimals)).then(pl.lit(letter)).otherwise(grade)
    part = part.with_columns(pl.when(graded).then(grade).alias("initial_grade"))
    if g.quotas is not None:
        part = _apply_quotas(part, g.quotas, ranked, whole)
    # one-vote items act on the graded firms' initial grade (worst forced grade, then the caps)
    final = pl.coalesce(pl.col("_force_grade"), pl.col("initial_grade"))
    final = pl.max_horizontal(final, pl.col("_at_most_grade"))  # "D" > "C" > … : the worse grade
    return part.with_columns(pl.when(graded).then(final).alias("grade"))


def _apply_quotas(part: pl.DataFrame, quotas: Any, ranked: pl.Expr, whole: bool = False
                  ) -> pl.DataFrame:
    """Hard limits on the shares of A and D per ranking group (see Quotas): a firm keeps A only
    when the firms scoring at least as much are within floor(share × n); the firms whose
    count from the bottom (1 + firms scoring strictly less) is within ceil(share × n) are D.
    ``whole``: the graded firms form one ranking group (no ``over`` needed)."""
    def in_group(e: pl.Expr) -> pl.Expr:
        return e if whole else e.over("grade_group")

    n = pl.col("group_size")
    grade = pl.col("initial_grade")
    if quotas.max_a_share is not None:
        allowed = (n * quotas.max_a_share + PERCENTILE_TOLERANCE).floor()
        at_least_as_high = in_group(ranked.rank("max", descending=True))
        grade = pl.when((grade == "A") & (at_least_as_high > allowed)).then(pl.lit("B")).otherwise(grade)
    if quotas.min_d_share is not None:
        required = (n * quotas.min_d_share - PERCENTILE_TOLERANCE).ceil()
        from_bottom = in_group(ranked.rank("min", descending=False))
        grade = pl.when(grade.is_not_null() & (from_bottom <= required)).then(pl.lit("D")).otherwise(grade)
    return part.with_columns(grade.alias("initial_grade"))


def _items(part: pl.DataFrame, sm: Population, refs: dict[str, dict[str, Any]]) -> pl.DataFrame:
    """Long explanation: one row per (firm, indicator) of this population."""
    scale = sm.name
    frames = []
    fn = sm.item_score
    status_enum, handling_enum = pl.Enum(STATUS), pl.Enum(HANDLING)
    for ind in sm.indicators:
        ref = refs[ind.id]
        h = pl.col(f"_h_{ind.id}")
        avg = ref["average_item_score"]
        problem = pl.concat_str(_problem_text(ind), pl.lit("，"))
        cases = [
            (h == _H["average_item_score"], pl.concat_str(problem, pl.lit(f"按{scale}企业该项平均得分{avg or 0:.4f}分赋分"))),
            (h == _H["zero"], pl.concat_str(problem, pl.lit("该项计0分"))),
            (h == _H["not_graded"], pl.concat_str(problem, pl.lit("按本方法不定等级"))),
            (h == _H["no_average"], pl.concat_str(problem, pl.lit(f"没有可比的{scale}企业可取平均得分，不定等级"))),
            (h == _H["no_baseline"], pl.lit(f"没有可比的{scale}企业，无法计算基准值，不定等级")),
        ]
        capped = pl.col(f"_cap_{ind.id}") & (h == _H["computed"])
        if fn.function == "ratio" and fn.cap is not None:
            cases.append((capped, pl.lit(f"单项得分超过上限，按权重的{fn.cap:g}倍计{fn.cap * ind.weight:g}分")))
        elif fn.function == "min_max":
            cases.append((capped, pl.lit("指标值超出参评企业的最小—最大范围，按范围端点计分")))
        note = _texts(part, cases)
        frames.append(part.select(
            FIRM_ID, "uscc", pl.col("scale").cast(_SCALE_ENUM),
            pl.lit(sm.id).cast(pl.Categorical).alias("population"),
            pl.lit(ind.id).cast(pl.Categorical).alias("indicator"),
            pl.lit(ind.name).cast(pl.Categorical).alias("indicator_name"),
            pl.lit(ind.unit).cast(pl.Categorical).alias("unit"),
            pl.col(ind.formula.numerator).alias("numerator"), pl.col(ind.formula.denominator).alias("denominator"),
            pl.col(ind.id).alias("value"),
            pl.lit(ref["baseline"], dtype=pl.Float64).alias("baseline"),
            pl.lit(ind.weight, dtype=pl.Float64).alias("weight"),
            pl.col(f"{ind.id}_score").alias("item_score"),
            pl.col(f"_st_{ind.id}").replace_strict(range(len(STATUS)), STATUS, return_dtype=status_enum).alias("data_status"),
            h.replace_strict(range(len(HANDLING)), HANDLING, return_dtype=handling_enum).alias("handling"),
            capped.alias("capped"),
            note.alias("note"),
        ))
    return pl.concat(frames)


_SCALE_ENUM = pl.Enum(list(SCALES))


def _baseline_row(sm: Population, ind: Indicator, ref: dict[str, Any]) -> dict[str, Any]:
    fn, b = sm.item_score, ind.baseline
    return {
        "population": sm.id, "scale": sm.name, "indicator": ind.id, "indicator_name": ind.name, "unit": ind.unit,
        "numerator": ind.formula.numerator, "denominator": ind.formula.denominator, "weight": ind.weight,
        "score_function": fn.function, "cap": getattr(fn, "cap", None), "floor": getattr(fn, "floor", None),
        "baseline_kind": b.kind if b else None, "average": getattr(b, "average", None),
        "multiplier": getattr(b, "multiplier", None), "baseline": ref["baseline"],
        "reference_firms": ref["n"], "reference_sum_numerator": ref["sum_num"],
        "reference_sum_denominator": ref["sum_den"], "reference_mean": ref["mean"],
        "reference_min": ref["min"], "reference_max": ref["max"],
        "average_item_score": ref.get("average_item_score"),
        "missing_policy": sm.missing_policy(ind).policy, "zero_denominator_policy": sm.zero_policy(ind).policy,
    }


# ---------------------------------------------------------------- the public entry points

def evaluate(inputs: Inputs, year: int, method: Method, *,
             items_ready: Callable[[pl.DataFrame], Any] | None = None,
             scores_ready: Callable[[pl.DataFrame], Any] | None = None,
             release_inputs: bool = False) -> Evaluation:
    """Evaluate data year ``year`` under ``method``.  Pure: ``inputs`` is not changed, unless
    ``release_inputs``: then its validated rows are released (``Inputs.release_tables``; counts,
    rejects and file facts stay) as soon as the firms' figures have been taken from them — for a
    caller that needs them no more (the command: at province scale ~0.6 GB less during the rest).

    ``items_ready``: called with the item rows (``Evaluation.items``) as soon as they are
    complete, while the scores are still being put in order (:meth:`EvaluationWriter.start_items`
    begins writing their files then, on the core the computation leaves idle).

    ``scores_ready``: called with each part of the scores in output order (a population's
    firms as soon as they are scored and put in order, then the firms in none), each with
    exactly the output columns (a column a part lacks is a column of nulls):
    :meth:`EvaluationWriter.add_scores` writes evaluation.csv part by part while the next
    population is still being scored.  ``Evaluation.scores`` is these parts one after another.

    Raises :class:`InputError` when the data have no ``stats`` rows for the year."""
    t0 = time.perf_counter()
    warnings = _check_year(inputs, year, method)
    base = _assign_populations(_firm_year(inputs, year, method), method)
    base = base.with_columns(_texts(base, _scope_cases(method, year)).alias("_scope_reason"),
                             _scope_classes(method, year).alias("_grade_class"))
    adjustments, adj_rejects = _adjustment_rows(inputs, year, method)
    if release_inputs:  # every figure the rest needs is in base and adjustments
        inputs.release_tables()
    unused = adjustments.filter(~pl.col(FIRM_ID).is_in(base[FIRM_ID].implode())).height if adjustments.height else 0
    if unused:
        warnings.append(f"加减分表中 {unused} 行的企业没有参加本次评价（{year}年没有数据或不属于参评行业），未使用")
    indicators = method.indicator_columns()
    order = (
        [FIRM_ID, "year", "uscc", "name", "township", "industry_code", "scale", "population", "population_name"]
        + indicators + [f"{i}_score" for i in indicators]
        + ["base_score", "adjustment", "score", "rank", "group_size", "percentile",
           "population_rank", "population_size", "population_percentile",
           "initial_grade", "grade", "grade_class", "grade_group", "not_graded_reason", "adjustment_detail"]
        + method.quantities() + _scope_columns(method)
    )
    parts, item_frames, baseline_rows = [], [], []
    # a scored part waiting to be put in order is referenced from here only, so that its working
    # columns (~4 per indicator) are released as soon as its output columns are taken
    waiting: list[pl.DataFrame] = []

    def next_part() -> None:  # the first part waiting, in output order, handed on at once
        part = _output_part(waiting.pop(0), method, order)
        if scores_ready is not None:
            scores_ready(part)
        parts.append(part)

    last = len(method.population_list) - 1
    for i, pop in enumerate(method.population_list):
        scored, item_frame, rows = _score_scale(base.filter(pl.col("_pop") == i), pop, year, adjustments, method)
        waiting.append(scored)
        item_frames.append(item_frame)
        baseline_rows += rows
        del scored, item_frame
        if i < last:  # its evaluation.csv rows are written while the next population is scored
            next_part()
    unplaced = pl.col("_pop").is_null() | (pl.col("_pop") < 0)
    waiting.append(base.filter(unplaced).with_columns(pl.col("_scope_reason").alias("not_graded_reason")))
    del base  # the firms' figures are all taken (~300 MB less while the last parts are put in order)
    frames = [f for f in item_frames if f.width]
    items = pl.concat(frames) if frames else pl.DataFrame()
    del frames, item_frames
    if items_ready is not None:  # the item files take longest: begun before the last parts are put in order
        items_ready(items)
    while waiting:  # the last population, then the firms in none
        next_part()
    scores = pl.concat(parts, how="vertical_relaxed")  # the same columns in each part
    del parts
    _check_finite(scores, method, year, baseline_rows)
    baselines = pl.DataFrame(baseline_rows, infer_schema_length=None)
    timings = {"计算": round(time.perf_counter() - t0, 3)}
    info = {
        name: {"file": str(raw.path), "sha256": raw.sha256, "encoding": raw.encoding}
        for name, raw in inputs.files.items()
    }
    rejects = inputs.rejects if "file" in inputs.rejects.columns else pl.DataFrame(schema=REJECT_SCHEMA)
    if adj_rejects.height:
        rejects = pl.concat([rejects, adj_rejects.select(rejects.columns)]).sort("file", "row", "column")
        warnings.append(f"加减分表中 {adj_rejects.height} 行不能使用（项目编号或分值有误），已拒收，见 evaluation_rejects.csv")
    ev = Evaluation(year, method, scores, items, baselines, warnings, timings, rejects, {"files": info})
    if method.adjustments is not None:  # what evaluation.json records of the 加减分 table
        ev.inputs_info["adjustments"] = {
            "read": "adjustments" in inputs.files, "rows_used": adjustments.height - unused,
            "rows_rejected_by_method": adj_rejects.height, "rows_of_firms_not_evaluated": unused,
            "firms_adjusted": scores["adjustment_detail"].is_not_null().sum()}
    if inputs.rejects.width:
        ev.inputs_info.update(row_counts=inputs.row_counts(), rejected_rows=ev.rejected_rows())
    other = inputs.other_year_rows()
    if other:  # rows of other years, left out unread (load_evaluation_inputs)
        ev.inputs_info["other_year_rows"] = other
    return ev


def _output_part(part: pl.DataFrame, method: Method, order: list[str]) -> pl.DataFrame:
    """One part of the scores (a population, or the firms in none) as it is output: sorted by
    group (alphabetically), rank (not graded last), then registry order; exactly the columns
    ``order`` (a column the part lacks, e.g. the scores of firms in no population, is nulls),
    the derived ones (``tenure`` in Chinese, ``grade_class``) and ``method_id``.

    The order comes from the small key columns alone (_output_order); only the columns the
    output reads (not the ~4 working columns per indicator) are made one chunk each (a gather
    from the many chunks the steps leave is three times slower) and gathered."""
    at = (_output_order(part, method) if "grade_group" in part.columns
          else part.select(pl.col(FIRM_ID).arg_sort()).to_series())
    kept = {*order, "_grade_class", "tenure"}
    part = part.select(c for c in part.columns if c in kept).rechunk()
    part = part.select(pl.col(c).gather(at) for c in part.columns)

    def col(name: str) -> pl.Expr:
        return pl.col(name) if name in part.columns else pl.lit(None)

    derived = {
        "grade_class": pl.when(col("grade").is_not_null()).then(col("grade"))
                         .when(col("_grade_class") == "T").then(pl.lit("T")),
    }
    if "tenure" in part.columns:
        derived["tenure"] = pl.col("tenure").replace_strict(["own", "tenant"], ["自有", "租赁"], default=None)
    return (part.select(*(derived.get(c, col(c)).alias(c) for c in order))
            .with_columns(pl.lit(method.id).alias("method_id")))


def _output_order(scores: pl.DataFrame, method: Method) -> pl.Series:
    """The row positions of ``scores`` sorted by population (the method's order, firms in no
    population last), ranking group (alphabetically), rank (not graded last), then ``firm_id``
    (registry order).  The four keys are packed into one 64-bit integer (2 + 10 + 21 + 31
    bits), which sorts fastest, when they fit."""
    groups = scores["grade_group"].unique().drop_nulls().sort().to_list()
    pop_index = pl.when(pl.col("_pop") >= 0).then(pl.col("_pop"))
    if (len(groups) >= 1023 or scores.height >= (1 << 21) - 1 or (scores.height and scores[FIRM_ID].max() >= 1 << 30)
            or len(method.population_list) > 3):
        keys = [pop_index.fill_null(1 << 20),
                pl.col("grade_group").replace_strict(groups, range(len(groups)), default=None, return_dtype=pl.UInt32),
                pl.col("rank"), pl.col(FIRM_ID)]
        return scores.select(pl.arg_sort_by(keys, nulls_last=True)).to_series()

    def shifted(e: pl.Expr, bits: int) -> pl.Expr:
        return e.cast(pl.UInt64) * pl.lit(1 << bits, dtype=pl.UInt64)

    key = (shifted(pop_index.fill_null(3), 62)
           + shifted(pl.col("grade_group").replace_strict(groups, range(len(groups)), default=1023), 51)
           + shifted(pl.col("rank").fill_null((1 << 21) - 1), 30)
           + pl.col(FIRM_ID).cast(pl.UInt64))
    return scores.select(key.arg_sort()).to_series()


def _check_finite(scores: pl.DataFrame, method: Method, year: int, baselines: list[dict[str, Any]]) -> None:
    """Numbers so large (实缴税金 1.7e308 on 0.5 亩, two uncapped 加分 of 1e308) that a quotient
    or a sum leaves the range of a float: no grade can be told from them, and no file can hold
    them.  One Chinese line naming the firms and the figure, never an infinity in the outputs.
    A baseline from a group's sums (Σ实缴税金 of two firms at 1.7e308) is checked too: an infinite
    baseline scores every firm 0 and ranks them all equal."""
    names = {i.id: i.name for p in method.population_list for i in p.indicators}
    labels = {**names, **{f"{k}_score": f"{v}单项得分" for k, v in names.items()},
              "base_score": "加减分前得分", "adjustment": "加减分", "score": "综合得分"}
    columns = [c for c in labels if c in scores.columns]
    bad = scores.filter(pl.any_horizontal(pl.col(c).is_infinite() | pl.col(c).is_nan() for c in columns)) \
        if columns else scores.clear()
    shown = []
    for r in bad.head(3).iter_rows(named=True):
        what = "、".join(labels[c] for c in columns if r[c] is not None and not np.isfinite(r[c]))
        shown.append(f"{r['name'] or ''}（{r['uscc']}）的{what}")
    more = f"等 {bad.height} 家企业" if bad.height > len(shown) else ""
    if shown:
        raise InputError(f"{year}年 {'；'.join(shown)}{more}超出数值范围（数据过大或用地、能耗等分母过小，"
                         f"或评价方法的权重、分值过大），无法评价；请核对这些企业的原始数据和评价方法 {method.id}")
    for b in baselines:
        for key in ("baseline", "reference_sum_numerator", "reference_sum_denominator", "reference_mean"):
            v = b.get(key)
            if isinstance(v, float) and not np.isfinite(v):
                raise InputError(f"{year}年 {b['scale']}“{b['indicator_name']}”的基准值超出数值范围（参评企业的数据之和过大），"
                                 f"无法评价；请核对数据过大的企业的原始数据（评价方法 {method.id}）")


def evaluation_grades(inputs: Inputs, years: list[int] | tuple[int, ...], method: Method) -> pl.DataFrame:
    """Grades computed under ``method`` for several data years, shaped like the validated
    ``evaluations`` table (``firm_id`` UInt32, ``year`` Int32, ``grade``, ``score``): only graded
    firms.  Meant for rules that read grades (e.g. a computed ``grade_source``)."""
    frames = []
    for year in years:
        ev = evaluate(inputs, year, method)
        frames.append(ev.scores.filter(pl.col("grade").is_not_null()).select(
            pl.col(FIRM_ID).cast(pl.UInt32), pl.col("year").cast(pl.Int32), "grade", pl.col("score").cast(pl.Float64)))
    if not frames:
        return pl.DataFrame(schema={FIRM_ID: pl.UInt32, "year": pl.Int32, "grade": pl.String, "score": pl.Float64})
    return pl.concat(frames)


# ---------------------------------------------------------------- files

def workbook_name(year: int) -> str:
    return f"亩均效益评价_{year}.xlsx"


def output_names(year: int, items_csv: bool = True) -> dict[str, list[str]]:
    return {
        "evaluation": ["evaluation.csv", "evaluation.parquet"],
        "items": ["evaluation_items.csv", "evaluation_items.parquet"] if items_csv else ["evaluation_items.parquet"],
        "excel": [workbook_name(year)],
        "rejects": ["evaluation_rejects.csv"],
        "record": ["evaluation.json"],
    }


#: zstd at its fastest level: a third faster to write than the default level, files ~5 % larger
PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "compression_level": 1}
#: rows per CSV formatting task: with Polars' default (1024) a million-row CSV is formatted
#: nearly on one core; the bytes are the same (docs/evaluation.md, "Performance")
CSV_BATCH_ROWS = 65536


def write_evaluation(ev: Evaluation, out_dir: Path, excel: bool = True, final: Path | None = None
                     ) -> dict[str, list[str]]:
    """Write the contract's files into ``out_dir`` and return {kind: [paths]}.

    evaluation.csv (UTF-8 with BOM) / .parquet, evaluation_items.csv / .parquet,
    亩均效益评价_<Y>.xlsx, evaluation_rejects.csv and evaluation.json.  ``excel=False`` skips
    the workbook (a province-size evaluation: xlsxwriter needs about 100 s per million rows).
    ``final``: where the files will be once moved out of a staging ``out_dir``
    (screening.outdir), as recorded.  The same as :class:`EvaluationWriter` given the finished
    evaluation (the command starts the item files earlier, while the scores are computed)."""
    with EvaluationWriter(out_dir, excel=excel, final=final) as writer:
        return writer.finish(ev)


class EvaluationWriter:
    """Writes an evaluation's files, beginning with the item files while the scores are still
    being computed (the computation mostly uses one core; the item rows are complete before the
    scores are put in order)::

        with EvaluationWriter(staging, excel=False, final=out) as writer:
            ev = evaluate(inputs, year, method, items_ready=writer.start_items, scores_ready=writer.add_scores)
            written = writer.finish(ev)           # the same files as write_evaluation(ev, …)

    evaluation.csv is then written part by part as the populations are scored
    (:meth:`add_scores`), on a thread of its own, while the next population is computed;
    :meth:`finish` checks that the parts are the scores' rows with their types and otherwise
    writes the file anew from the whole frame, so the bytes never differ.

    The data files (:func:`file_writers`) are written by a pool of one thread per core (the
    Polars writers release the GIL and are themselves parallel), the largest first, so that
    every core stays busy until the last file is done; the workbook (pure Python) is written in
    a thread beside them.  The CSV files are for people: written through screening.csvsafe
    (docs/outputs.md).  evaluation_items.csv is left out when its rows are more than a
    spreadsheet opens (a province: 3.4 M rows); the item rows are then in
    evaluation_items.parquet only, and a warning (terminal, evaluation.json) says so
    (:func:`items_csv_fits`).  Leaving the ``with`` block waits for every file begun (an error
    in the computation must not leave a thread writing into a folder being removed)."""

    def __init__(self, out_dir: Path, excel: bool = True, final: Path | None = None) -> None:
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.excel, self.final = excel, final
        # one data file per core at a time (each writer is itself parallel): four at once on two
        # cores cost ~0.6 CPU-s more in idle waiting threads and finished no sooner (docs/evaluation.md)
        self._pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1) + excel)  # at most 4 data files
        self._jobs: dict[str, Any] = {}
        self._items_csv: bool | None = None
        self._scores_csv: _CsvInParts | None = None

    def __enter__(self) -> EvaluationWriter:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        # on an error, files not yet begun are not begun; those begun are waited for
        self._pool.shutdown(wait=True, cancel_futures=kind is not None)
        if self._scores_csv is not None:
            self._scores_csv.close(cancel=kind is not None)

    def add_scores(self, part: pl.DataFrame) -> None:
        """Append one part of the scores (``evaluate(scores_ready=…)``) to evaluation.csv, in
        turn, on a thread of its own (``firm_id`` dropped)."""
        if self._scores_csv is None:
            self._scores_csv = _CsvInParts(self.out / "evaluation.csv")
        self._scores_csv.add(part.drop(FIRM_ID) if FIRM_ID in part.columns else part)

    def start_items(self, items: pl.DataFrame) -> None:
        """Begin writing evaluation_items.parquet (and .csv when it fits a sheet) in the pool."""
        self._items_csv = _items_fit(items)
        for name, write in _item_writers(items, self._items_csv).items():
            self._jobs[f"写出 {name}"] = self._pool.submit(_timed, write, self.out / name)

    def finish(self, ev: Evaluation) -> dict[str, list[str]]:
        """Write the rest (the item files too, unless :meth:`start_items` began them), wait for
        every file, then evaluation.json; return {kind: [paths]}.  ``timings_s`` records each
        file's own time and, as 写出合计, the time from this call to the last file written."""
        from .csvsafe import write_csv

        t0 = time.perf_counter()
        if self._items_csv is None:
            self.start_items(ev.items)
        if not self._items_csv:  # before the workbook job starts: its 评价方法 sheet prints the warnings
            ev.warnings.append(ITEMS_CSV_LEFT_OUT.format(rows=ev.items.height, limit=_sheet_rows() + 1))
        if self.excel:  # the longest job: started first of the rest (item files may be begun already)
            from .evaluation_excel import write_workbook  # the Excel writer only when a workbook is written

            self._jobs["写出 Excel"] = self._pool.submit(_timed, write_workbook, ev, self.out / workbook_name(ev.year))
        writers = _score_writers(ev.scores)
        streamed = self._scores_csv
        if streamed is not None:  # evaluation.csv is being written part by part: the Parquet file meanwhile
            csv = writers.pop("evaluation.csv")
        for name, write in writers.items():
            self._jobs[f"写出 {name}"] = self._pool.submit(_timed, write, self.out / name)
        rejects = ev.rejects if ev.rejects.width else pl.DataFrame(schema=REJECT_SCHEMA)
        write_csv(rejects.select("file", "row", "column", "reason", "value"), self.out / "evaluation_rejects.csv")
        if streamed is not None:
            streamed.close()
            seconds = streamed.seconds()
            if streamed.matches(ev.scores.drop(FIRM_ID)):
                ev.timings["写出 evaluation.csv"] = seconds
            else:  # parts that are not the scores' rows with their types: the file written anew, whole
                self._jobs["写出 evaluation.csv"] = self._pool.submit(_timed, csv, self.out / "evaluation.csv")
        for stage, job in self._jobs.items():
            ev.timings[stage] = job.result()
        ev.timings["写出合计"] = round(time.perf_counter() - t0, 3)
        names = output_names(ev.year, self._items_csv)
        if not self.excel:
            names.pop("excel")
        written = {k: [str(Path(self.final or self.out) / n) for n in v] for k, v in names.items()}
        (self.out / "evaluation.json").write_text(
            json.dumps(evaluation_record(ev, written), ensure_ascii=False, indent=2, default=str), encoding="utf-8")
        return written


class _CsvInParts:
    """evaluation.csv written part by part, in the order given, by one thread: the bytes of
    writing the parts' rows at once (:func:`screening.csvsafe.append_csv`), when the parts have
    the columns and types of the whole (:meth:`matches`)."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "wb")  # noqa: SIM115 (closed in close(), after the last part)
        self._chain = ThreadPoolExecutor(1, thread_name_prefix="evaluation-csv")
        self._jobs: list[Any] = []
        self._parts: list[tuple[int, pl.Schema]] = []  # (rows, schema) of each part
        self._closed = False
        self._close_error: OSError | None = None  # closing flushes what a failed part left buffered

    def add(self, part: pl.DataFrame) -> None:
        from .csvsafe import append_csv

        first = not self._jobs
        self._parts.append((part.height, part.schema))
        self._jobs.append(self._chain.submit(_timed, append_csv, part, self._file, first=first,
                                             batch_size=CSV_BATCH_ROWS))

    def close(self, cancel: bool = False) -> None:
        """Wait for the parts begun (those not begun are not, with ``cancel``) and close the file;
        nothing is raised here, so that an earlier error is not masked (:meth:`seconds` raises a
        failure of a part or of the closing)."""
        if not self._closed:
            self._chain.shutdown(wait=True, cancel_futures=cancel)
            self._closed = True
            try:
                self._file.close()  # the file is closed even when its last flush fails
            except OSError as exc:
                self._close_error = exc

    def seconds(self) -> float:
        """The seconds spent writing the parts (after :meth:`close`); the first failure of a part
        is raised, else a failure to close the file."""
        seconds = round(sum(job.result() for job in self._jobs if not job.cancelled()), 3)
        if self._close_error is not None:
            raise self._close_error
        return seconds

    def matches(self, scores: pl.DataFrame) -> bool:
        """Whether the parts written are ``scores``'s rows as its writer would write them: as
        many rows, the same columns, each of the whole's type or (a column a part lacks) nulls."""
        whole = scores.schema
        return (sum(rows for rows, _ in self._parts) == scores.height
                and all(list(schema) == list(whole)
                        and all(dtype == whole[c] or dtype == pl.Null for c, dtype in schema.items())
                        for _, schema in self._parts))


#: what evaluation.json and the terminal say when evaluation_items.csv is left out
ITEMS_CSV_LEFT_OUT = ("得分明细共 {rows:,} 行，超过 Excel/WPS 一张工作表能打开的 {limit:,} 行，未写出 evaluation_items.csv；"
                      "完整的得分明细在 evaluation_items.parquet 中（每家企业的各项得分也在 evaluation.csv 中）")


def _sheet_rows() -> int:
    from . import spreadsheet  # not screening.excel: no Excel writer loaded to know the limit

    return spreadsheet.MAX_SHEET_ROWS


def items_csv_fits(ev: Evaluation) -> bool:
    """Whether evaluation_items.csv is written: its rows fit in a spreadsheet (Excel/WPS open
    at most 1,048,576 rows, one of them the header).  A county's evaluation always fits; a
    province's (3.4 M item rows) does not, and a CSV nobody can open would cost a third of the
    command's writing (docs/evaluation.md)."""
    return _items_fit(ev.items)


def _items_fit(items: pl.DataFrame) -> bool:
    return items.height <= _sheet_rows()


def file_writers(ev: Evaluation) -> dict[str, Callable[[Path], Any]]:
    """File name -> the function writing it to a path: evaluation.csv / .parquet and
    evaluation_items.csv (when :func:`items_csv_fits`) / .parquet (``firm_id`` dropped), the
    largest first.  The CSV files are for people: written through screening.csvsafe
    (docs/outputs.md)."""
    items, scores = _item_writers(ev.items, items_csv_fits(ev)), _score_writers(ev.scores)
    files = {name: items[name] for name in ("evaluation_items.csv",) if name in items}
    files["evaluation.csv"] = scores["evaluation.csv"]
    files["evaluation_items.parquet"] = items["evaluation_items.parquet"]
    files["evaluation.parquet"] = scores["evaluation.parquet"]
    return files


def _item_writers(items: pl.DataFrame, csv: bool) -> dict[str, Callable[[Path], Any]]:
    """evaluation_items.csv (when ``csv``) and .parquet, ``firm_id`` dropped."""
    from .csvsafe import write_csv

    items = items.drop(FIRM_ID) if FIRM_ID in items.columns else items
    files: dict[str, Callable[[Path], Any]] = {}
    if csv:
        files["evaluation_items.csv"] = lambda path: write_csv(items, path, batch_size=CSV_BATCH_ROWS)
    files["evaluation_items.parquet"] = lambda path: items.write_parquet(path, **PARQUET_OPTIONS)
    return files


def _score_writers(scores: pl.DataFrame) -> dict[str, Callable[[Path], Any]]:
    """evaluation.csv and .parquet, ``firm_id`` dropped."""
    from .csvsafe import write_csv

    scores = scores.drop(FIRM_ID)
    return {"evaluation.csv": lambda path: write_csv(scores, path, batch_size=CSV_BATCH_ROWS),
            "evaluation.parquet": lambda path: scores.write_parquet(path, **PARQUET_OPTIONS)}


def _timed(fn, *args, **kwargs) -> float:
    t = time.perf_counter()
    fn(*args, **kwargs)
    return round(time.perf_counter() - t, 3)


def evaluation_record(ev: Evaluation, outputs: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """What evaluation.json records: method, inputs, counts, reference values, timings."""
    from importlib.metadata import version

    m = ev.method
    return {
        "created_at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "data_year": ev.year,
        "method": {"id": m.id, "version": m.version, "title": m.title, "file": str(m.path), "sha256": m.sha256,
                   "designed_for_data_year": m.data_year, "citation": m.citation_text(m.citation)},
        "inputs": ev.inputs_info,
        "counts": ev.grade_counts(),
        "baselines": ev.baselines.to_dicts(),
        "warnings": ev.warnings,
        "timings_s": ev.timings,
        "outputs": outputs or {},
        "software": {"screening": __version__, "polars": pl.__version__, "duckdb": version("duckdb"),
                     "python": platform.python_version()},
    }

