"""Features of a firm at year t, from its own history up to t and its peers' year t only.

Two steps: :func:`firm_years` sums the validated inputs into one row per (firm, year);
:func:`features_at` reads the years t-2..t of that panel (never a later year) and adds the
firm's standing among its 2-digit industry and its township in year t.  A feature exists
only when the data carry its sources (e.g. no ``evaluations`` → no grade features), so a
saved model can tell data it was not trained on (see :mod:`screening.warn.artifact`).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import polars as pl

from ..engine import Engine, sql_text
from ..validate import FIRM_ID, Inputs

#: grades as an ordinal (A best); an encoding, not a threshold
GRADE_LEVEL = {"A": 1.0, "B": 2.0, "C": 3.0, "D": 4.0}

#: feature groups: what a reason names, in Chinese (a factor sentence is built per group)
GROUPS: dict[str, str] = {
    "tax_level": "亩均税收水平",
    "tax_trend": "亩均税收变化",
    "value_added": "亩均增加值",
    "energy": "能耗强度",
    "product_energy": "产品单耗",
    "grades": "亩均效益评价等级",
    "scale": "规模与营业收入",
    "land": "用地",
    "data_gaps": "数据缺失",
    "firm": "企业年限",
}


@dataclass(frozen=True)
class Feature:
    name: str
    group: str
    zh: str
    sources: tuple[str, ...]  # "table.column" the feature is computed from


_TAX, _LAND = "tax.tax_paid", "land.area_mu"
FEATURES: tuple[Feature, ...] = (
    Feature("log_tax_per_mu", "tax_level", "ln(1+亩均税收)", (_TAX, _LAND)),
    Feature("tax_per_mu_pct_industry", "tax_level", "亩均税收在同行业（2位大类）中的百分位", (_TAX, _LAND)),
    Feature("tax_per_mu_pct_township", "tax_level", "亩均税收在本乡镇街道中的百分位", (_TAX, _LAND)),
    Feature("tax_per_mu_vs_industry", "tax_level", "ln(1+亩均税收) − ln(1+同行业亩均税收)", (_TAX, _LAND)),
    Feature("log_tax_per_mu_prev", "tax_level", "上年 ln(1+亩均税收)", (_TAX, _LAND)),
    Feature("tax_per_mu_change_1y", "tax_trend", "亩均税收一年变化（对数差）", (_TAX, _LAND)),
    Feature("tax_per_mu_change_2y", "tax_trend", "亩均税收两年变化（对数差）", (_TAX, _LAND)),
    Feature("tax_per_mu_declines", "tax_trend", "亩均税收连续下降的年数（0—2）", (_TAX, _LAND)),
    Feature("tax_change_1y", "tax_trend", "实缴税金一年变化（对数差）", (_TAX,)),
    Feature("log_va_per_mu", "value_added", "ln(1+亩均增加值)", ("stats.value_added", _LAND)),
    Feature("va_per_mu_pct_industry", "value_added", "亩均增加值在同行业中的百分位", ("stats.value_added", _LAND)),
    Feature("va_per_mu_change_1y", "value_added", "亩均增加值一年变化（对数差）", ("stats.value_added", _LAND)),
    Feature("log_energy_per_revenue", "energy", "ln(综合能耗/营业收入)", ("energy.energy_tce", "stats.revenue")),
    Feature("energy_per_revenue_pct_industry", "energy", "单位营业收入能耗在同行业中的百分位",
            ("energy.energy_tce", "stats.revenue")),
    Feature("energy_per_revenue_change_1y", "energy", "单位营业收入能耗一年变化（对数差）",
            ("energy.energy_tce", "stats.revenue")),
    Feature("log_tax_per_electricity", "energy", "ln(1+单位电耗税收)", ("energy.electricity", _TAX)),
    Feature("product_limit_ratio", "product_energy", "产品单耗与限额之比（最大值）", ("product_energy.unit_consumption",)),
    Feature("grade_level", "grades", "评价等级（A=1 … D=4）", ("evaluations.grade",)),
    Feature("grade_level_prev", "grades", "上年评价等级（A=1 … D=4）", ("evaluations.grade",)),
    Feature("low_grades_3y", "grades", "近三年低等级（规则集的低等级，如 C、D）次数", ("evaluations.grade",)),
    Feature("above_scale", "scale", "规上（1）或规下（0）", ("stats.scale",)),
    Feature("scale_change", "scale", "规模变化（+1 升规上，−1 降规下）", ("stats.scale",)),
    Feature("log_revenue", "scale", "ln(营业收入)", ("stats.revenue",)),
    Feature("revenue_change_1y", "scale", "营业收入一年变化（对数差）", ("stats.revenue",)),
    Feature("log_land_mu", "land", "ln(用地面积)", (_LAND,)),
    Feature("land_change_1y", "land", "用地面积一年变化（对数差）", (_LAND,)),
    Feature("leased_share", "land", "租赁用地占比", (_LAND,)),
    Feature("missing_tax", "data_gaps", "当年缺少税收数据", (_TAX,)),
    Feature("missing_land", "data_gaps", "当年缺少用地数据（或有地块行被拒收）", (_LAND,)),
    Feature("firm_age", "firm", "成立年数", ("enterprises.established",)),
)
FEATURE_BY_NAME = {f.name: f for f in FEATURES}

#: the panel's per-year figures; a feature row carries them for t, t-1 (_p1) and t-2 (_p2)
_YEARLY = ("scale", "revenue", "value_added", "tax_paid", "land_mu", "leased_share", "energy_tce", "electricity",
           "grade", "product_ratio", "tax_per_mu", "va_per_mu", "energy_per_revenue", "active")


def groups_of(names: list[str]) -> dict[str, list[int]]:
    """Column positions of each feature group among ``names`` (in the fixed group order)."""
    out: dict[str, list[int]] = {}
    for group in GROUPS:
        columns = [i for i, n in enumerate(names) if FEATURE_BY_NAME[n].group == group]
        if columns:
            out[group] = columns
    return out


def sources_present(inputs: Inputs) -> set[str]:
    """The "table.column" sources holding at least one value in ``inputs`` (already cut to the
    years the run may see, by :func:`screening.warn.labels.up_to`)."""
    found: set[str] = set()
    for table, frame in inputs.tables.items():
        counts = frame.select(pl.all().count()).row(0, named=True) if frame.height else {}
        found |= {f"{table}.{col}" for col, n in counts.items() if n}
    return found


def available_features(sources: set[str]) -> list[str]:
    return [f.name for f in FEATURES if set(f.sources) <= sources]


def firm_years(inputs: Inputs, limits: pl.DataFrame) -> pl.DataFrame:
    """One row per (firm_id, year) of ``inputs`` with the year's figures.  Each row holds one
    year only; :func:`features_at` decides which years a feature row may read."""
    t = {name: frame.lazy() for name, frame in inputs.tables.items()}
    key = [FIRM_ID, "year"]
    leased = pl.when(pl.col("tenure") == "租赁").then(pl.col("area_mu")).otherwise(0.0)
    # summed on its own (eagerly): inside the joined plan the parcels' sums could be added in another order
    land = (inputs.tables["land"].group_by(key).agg(pl.col("area_mu").sum().alias("land_mu"),
                                                    leased.sum().alias("_leased")).lazy())
    incomplete = inputs.land_incomplete.lazy().with_columns(pl.lit(True).alias("_bad"))
    # a year with a rejected parcel has unknown land, as in the engine's firm_year view
    land = land.join(incomplete, on=key, how="full", coalesce=True).select(
        *key,
        pl.when(pl.col("_bad")).then(None).otherwise(pl.col("land_mu")).alias("land_mu"),
        pl.when(pl.col("_bad")).then(None).otherwise(pl.col("_leased") / pl.col("land_mu")).alias("leased_share"),
    )
    # active in a year: the firm has a stats, tax or land row then (each marks its rows)
    parts = {
        "stats": t["stats"].select(*key, "scale", "revenue", "value_added", pl.lit(True).alias("_stats")),
        "tax": t["tax"].select(*key, "tax_paid", pl.lit(True).alias("_tax")),
        "land": land.with_columns(pl.lit(True).alias("_land")),
        "energy": t["energy"].select(*key, "energy_tce", "electricity"),
        "evaluations": t["evaluations"].select(*key, "grade"),
        "product": _product_ratios(inputs.tables["product_energy"], limits).lazy(),
    }
    # (firm, year) as one 64-bit key: six joins of a province's firm-years on one integer column
    # instead of two (the values joined are the same)
    one_key = (pl.col(FIRM_ID).cast(pl.UInt64) * (1 << 32) + pl.col("year").cast(pl.UInt64)).alias("_key")
    parts = {name: part.with_columns(one_key).drop(key) for name, part in parts.items()}
    schema = inputs.tables["stats"].schema
    panel = pl.concat([p.select("_key") for p in parts.values()]).unique().with_columns(
        (pl.col("_key") // (1 << 32)).cast(schema[FIRM_ID]).alias(FIRM_ID),
        (pl.col("_key") % (1 << 32)).cast(schema["year"]).alias("year"))
    for part in parts.values():
        panel = panel.join(part, on="_key", how="left")
    land_known = pl.col("land_mu") > 0
    marks = ("_stats", "_tax", "_land")
    # one plan: the engine reads each table once and runs the joins in parallel
    return panel.with_columns(
        pl.any_horizontal(pl.col(m).fill_null(False) for m in marks).alias("active"),
        pl.when(land_known).then(pl.col("tax_paid") / pl.col("land_mu")).alias("tax_per_mu"),
        pl.when(land_known).then(pl.col("value_added") / pl.col("land_mu")).alias("va_per_mu"),
        pl.when(pl.col("revenue") > 0).then(pl.col("energy_tce") / pl.col("revenue")).alias("energy_per_revenue"),
    ).drop(*marks, "_key").sort(key).collect()


def rule_definitions(limits: pl.DataFrame | None = None) -> Engine:
    """A DuckDB workspace holding the rules' own definitions (sql/views/00_macros.sql:
    ``rules_scope``, ``limits_in_force``, ``limit_excess``), so early warning asks the rules'
    questions rather than copies of them.  Close it after use."""
    engine = Engine()
    frame = limits if limits is not None else pl.DataFrame(
        schema={"product": pl.String, "product_name": pl.String, "standard": pl.String, "unit": pl.String,
                "limit": pl.Float64, "effective_from": pl.Date, "effective_to": pl.Date, "verified": pl.Boolean})
    engine.load("energy_limits", frame)
    engine.execute("views/00_macros.sql", sql_text("views/00_macros.sql"), {})
    return engine


_PRODUCT_RATIO = f"""
    SELECT pe.{FIRM_ID}, pe.year, max(1 + limit_excess(pe.unit_consumption, l."limit")) AS product_ratio
    FROM _product_energy pe
    JOIN limits_in_force($limit_date) l USING (product)
    WHERE pe.year = $year
    GROUP BY ALL
"""


def _product_ratios(product_energy: pl.DataFrame, limits: pl.DataFrame) -> pl.DataFrame:
    """Per firm-year: how far the firm's furthest product lies from the limit rule 4 holds it
    against in that year (the strictest in force on 31 December, ``limits_in_force``), as
    1 + (unit consumption − limit) ÷ |limit|: unit consumption ÷ limit for a positive limit,
    above 1 exactly when rule 4 would call it exceeded (a negative limit included)."""
    years = sorted(product_energy["year"].unique().to_list())
    schema = {FIRM_ID: product_energy.schema[FIRM_ID], "year": product_energy.schema["year"],
              "product_ratio": pl.Float64}
    engine = rule_definitions(limits)
    try:
        engine.attach_frame("_product_energy", product_energy.select(FIRM_ID, "year", "product", "unit_consumption"))
        parts = [engine.query("product_ratio", _PRODUCT_RATIO, {"year": y, "limit_date": dt.date(y, 12, 31)})
                 for y in years]
    finally:
        engine.close()
    return pl.concat([pl.DataFrame(schema=schema), *(p.cast(schema) for p in parts)])


def firms(inputs: Inputs) -> pl.DataFrame:
    """The registry with the 2-digit industry (大类) and the year of establishment."""
    return inputs.tables["enterprises"].select(
        FIRM_ID, "uscc", "name", "township", "industry_code",
        pl.col("industry_code").str.slice(0, 2).cast(pl.Int32, strict=False).alias("division"),
        pl.col("established").dt.year().alias("established_year"),
        "established",
    )


@dataclass(frozen=True)
class Scope:
    """Who gets a risk at year t: firms active then (a stats, tax or land row) that rules 1–3
    could screen on the list of t+2 (the rules' own ``rules_scope``: manufacturing 大类 and not
    founded within the rule set's new-firm window before it), or that report a product with a
    limit (rule 4 covers any firm)."""

    #: the rule set's scope parameters for a list year (:meth:`screening.ruleset.RuleSet.scope_params`)
    params: Callable[[int], dict[str, Any]]
    low_grades: tuple[str, ...]
    min_peers: int


def in_rules_scope(registry: pl.DataFrame, list_year: int, scope: Scope) -> pl.DataFrame:
    """(firm_id, screened): whether rules 1–3 screen the firm on the list of ``list_year``,
    answered by the rules' own scope (an unknown industry: not screened, it cannot be listed)."""
    p = scope.params(list_year)
    engine = rule_definitions()
    try:
        engine.attach_frame("_registry", registry.select(FIRM_ID, "division", "established"))
        return engine.query("rules_scope", f"""
            SELECT {FIRM_ID}, rules_scope(division, established, $division_min, $division_max, $new_firm_cutoff)
                   = 'in_scope' AS screened
            FROM _registry""", {k: p[k] for k in ("division_min", "division_max", "new_firm_cutoff")})
    finally:
        engine.close()


def features_at(panel: pl.DataFrame, registry: pl.DataFrame, t: int, scope: Scope,
                names: list[str], columns: Sequence[str] | None = None) -> pl.DataFrame:
    """One row per firm in scope at year t: ids, the facts the reasons quote, and ``names``
    (only ``columns`` of them when given: one lazy plan, so nothing else is computed or held).

    Reads only panel years t-2..t: a value of a later year cannot reach a row for t.
    """
    window = panel.lazy().filter(pl.col("year").is_between(t - 2, t))

    def year(offset: int) -> pl.LazyFrame:
        suffix = "" if offset == 0 else f"_p{offset}"
        return window.filter(pl.col("year") == t - offset).select(
            FIRM_ID, *(pl.col(c).alias(f"{c}{suffix}") for c in _YEARLY))

    rows = (
        registry.lazy().join(year(0), on=FIRM_ID, how="inner")
        .join(in_rules_scope(registry, t + 2, scope).lazy(), on=FIRM_ID, how="left")
        .join(year(1), on=FIRM_ID, how="left")
        .join(year(2), on=FIRM_ID, how="left")
        .filter(pl.col("active") & (pl.col("screened") | pl.col("product_ratio").is_not_null()))
        .drop("screened", "established")
        .with_columns(pl.lit(t, dtype=pl.Int32).alias("t"))
        # in a fixed order before the peers' sums (the lazy joins may emit rows in any order, and
        # a sum taken in another order can differ in its last digit)
        .sort(FIRM_ID)
    )
    rows = rows.with_columns(_peer_columns(scope.min_peers))
    rows = rows.with_columns(_feature_exprs(t, scope, names))
    return (rows.select(columns) if columns is not None else rows).collect()


def _by_group(col: str, by: str, min_peers: int) -> pl.Expr:
    """Whether the firm is compared with its group (a known group holding at least
    ``min_peers`` values of ``col``) rather than with all firms of the year."""
    return pl.col(by).is_not_null() & (pl.col(col).count().over(by) >= min_peers)


def _share(col: str, by: str, min_peers: int, strictly_below: bool = False) -> pl.Expr:
    """Share (0–1) of the firms compared with (see :func:`_by_group`) whose value is at or
    below the firm's, ties included; ``strictly_below``: below it only."""
    def share(group: str | None) -> pl.Expr:
        value = pl.col(col)
        rank, count = value.rank("min" if strictly_below else "max"), value.count()
        if group:
            rank, count = rank.over(group), count.over(group)
        return (rank - 1 if strictly_below else rank) / count

    return pl.when(_by_group(col, by, min_peers)).then(share(by)).otherwise(share(None))


def _peer_columns(min_peers: int) -> list[pl.Expr]:
    both = pl.col("tax_paid").is_not_null() & pl.col("land_mu").is_not_null()
    tax = pl.when(both).then(pl.col("tax_paid"))
    land = pl.when(both).then(pl.col("land_mu"))
    tax_by_industry = _by_group("tax_per_mu", "division", min_peers)  # tax_per_mu is known exactly when both are
    return [
        _share("tax_per_mu", "division", min_peers).alias("tax_pct_industry"),
        _share("tax_per_mu", "township", min_peers).alias("tax_pct_township"),
        _share("va_per_mu", "division", min_peers).alias("va_pct_industry"),
        _share("energy_per_revenue", "division", min_peers).alias("energy_pct_industry"),
        pl.when(tax_by_industry).then(tax.sum().over("division") / land.sum().over("division"))
        .otherwise(tax.sum() / land.sum()).alias("industry_tax_per_mu"),
        # for the reasons: whom the firm was compared with, and the share strictly below it
        tax_by_industry.alias("tax_by_industry"),
        _by_group("va_per_mu", "division", min_peers).alias("va_by_industry"),
        _by_group("energy_per_revenue", "division", min_peers).alias("energy_by_industry"),
        _share("energy_per_revenue", "division", min_peers, strictly_below=True).alias("energy_below_industry"),
    ]


def _log(expr: pl.Expr) -> pl.Expr:
    """Natural log of a positive value; zero, negative or missing → null."""
    return pl.when(expr > 0).then(expr.log())


def _feature_exprs(t: int, scope: Scope, names: list[str]) -> list[pl.Expr]:
    c = pl.col
    tpm, tpm1, tpm2 = c("tax_per_mu").log1p(), c("tax_per_mu_p1").log1p(), c("tax_per_mu_p2").log1p()
    grade = {g: c(g).replace_strict(GRADE_LEVEL, default=None, return_dtype=pl.Float64)
             for g in ("grade", "grade_p1")}
    low = pl.sum_horizontal(c(g).is_in(scope.low_grades).cast(pl.Float64) for g in ("grade", "grade_p1", "grade_p2"))
    above = {s: pl.when(c(s).is_null()).then(None).otherwise((c(s) == "规上").cast(pl.Float64))
             for s in ("scale", "scale_p1")}
    declines = (pl.when(tpm.is_null() | tpm1.is_null()).then(None)
                .when((c("tax_per_mu") < c("tax_per_mu_p1")) & (c("tax_per_mu_p1") < c("tax_per_mu_p2"))).then(2.0)
                .when(c("tax_per_mu") < c("tax_per_mu_p1")).then(1.0)
                .otherwise(0.0))
    exprs = {
        "log_tax_per_mu": tpm,
        "tax_per_mu_pct_industry": c("tax_pct_industry"),
        "tax_per_mu_pct_township": c("tax_pct_township"),
        "tax_per_mu_vs_industry": tpm - c("industry_tax_per_mu").log1p(),
        "log_tax_per_mu_prev": tpm1,
        "tax_per_mu_change_1y": tpm - tpm1,
        "tax_per_mu_change_2y": tpm - tpm2,
        "tax_per_mu_declines": declines,
        "tax_change_1y": c("tax_paid").log1p() - c("tax_paid_p1").log1p(),
        "log_va_per_mu": c("va_per_mu").log1p(),
        "va_per_mu_pct_industry": c("va_pct_industry"),
        "va_per_mu_change_1y": c("va_per_mu").log1p() - c("va_per_mu_p1").log1p(),
        "log_energy_per_revenue": _log(c("energy_per_revenue")),
        "energy_per_revenue_pct_industry": c("energy_pct_industry"),
        "energy_per_revenue_change_1y": _log(c("energy_per_revenue")) - _log(c("energy_per_revenue_p1")),
        "log_tax_per_electricity": pl.when(c("electricity") > 0).then(c("tax_paid") / c("electricity")).log1p(),
        "product_limit_ratio": c("product_ratio"),
        "grade_level": grade["grade"],
        "grade_level_prev": grade["grade_p1"],
        "low_grades_3y": low,
        "above_scale": above["scale"],
        "scale_change": above["scale"] - above["scale_p1"],
        "log_revenue": _log(c("revenue")),
        "revenue_change_1y": _log(c("revenue")) - _log(c("revenue_p1")),
        "log_land_mu": _log(c("land_mu")),
        "land_change_1y": _log(c("land_mu")) - _log(c("land_mu_p1")),
        "leased_share": c("leased_share"),
        "missing_tax": c("tax_paid").is_null().cast(pl.Float64),
        "missing_land": c("land_mu").is_null().cast(pl.Float64),
        "firm_age": (pl.lit(t) - c("established_year")).cast(pl.Float64),
    }
    assert set(exprs) == set(FEATURE_BY_NAME), "every feature needs exactly one expression"
    return [exprs[n].cast(pl.Float64).alias(n) for n in names]


def scope_for(ruleset, min_peers: int) -> Scope:
    """The population and the low grades, read from the rule set (no number of its own)."""
    grade_rule = "below_scale_consecutive_c_grade"
    low = ruleset.params[grade_rule]["grades"] if grade_rule in ruleset.params else list(GRADE_LEVEL)[-2:]
    return Scope(ruleset.scope_params, tuple(low), min_peers)

