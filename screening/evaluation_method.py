"""A 亩均效益综合评价 method (``rules/methods/<id>.yaml``): the pydantic model and its loader.

A method states, for each population (规上, 规下, 租赁企业, 小微园 …: a scope predicate over
the contract's columns; the older ``scales:`` form is 规上 and 规下), the indicators (each a ratio of two input
quantities from a closed set), their weights and baselines, the item score function, what
happens to missing data and zero denominators, the grade cut-offs or score lines and the
quotas; the 加减分 items (points, % of the score, one-vote items that force a grade) read from
the ``adjustments`` table; plus who is evaluated, who is evaluated but not graded and who is
T (暂不评价).  A fixed baseline may carry one value per data year.  Every number carries a citation
(``cite: {source, clause, note}`` pointing at ``sources``), as in the screening rule sets.
The logic that applies a method is :mod:`screening.evaluation`; docs/evaluation.md explains
the file field by field for bureau staff.

Validation errors are one Chinese line naming the file and the key, e.g.
``rules/methods/x.yaml：scales.规上.indicators[0]（tax_per_mu）.weight 应为数字（收到 'abc'）``.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, PrivateAttr, ValidationError, model_validator

from .config_errors import describe
from .errors import RuleSetError
from .paths import confined, rules_dir
from .ruleset import Cite, Source, _load_yaml, _Strict

SCALES = ("规上", "规下")
#: how counts and the workbook label firms outside every population
NO_SCALE, NO_POPULATION = "规模不明", "未归入参评群体"
GRADES = ("A", "B", "C", "D")

#: The closed set of input quantities an indicator may divide (column -> Chinese label, unit).
#: Numerators are outputs and denominators are inputs, so every indicator is "higher is better".
NUMERATORS: dict[str, tuple[str, str]] = {
    "tax_paid": ("实缴税金", "万元"),
    "value_added": ("工业增加值", "万元"),
    "revenue": ("营业收入", "万元"),
    "rd_expense": ("研发经费", "万元"),
}
DENOMINATORS: dict[str, tuple[str, str]] = {
    "land_mu": ("用地面积", "亩"),
    "energy_tce": ("综合能耗", "吨标准煤"),
    "electricity": ("用电量", "万千瓦时"),
    "emissions": ("主要污染物排放量", "吨"),
    "employees": ("年平均职工人数", "人"),
    "revenue": ("营业收入", "万元"),
}
QUANTITIES: dict[str, tuple[str, str]] = {**NUMERATORS, **DENOMINATORS}
#: which input table holds each quantity (land_mu is the sum of the year's parcels)
QUANTITY_TABLE = {
    "tax_paid": "tax", "value_added": "stats", "revenue": "stats", "rd_expense": "stats", "employees": "stats",
    "emissions": "stats", "land_mu": "land", "energy_tce": "energy", "electricity": "energy",
}

#: Standard indicator ids: a method that uses one of these ids must use its formula, so that
#: ``tax_per_mu`` means 亩均税收 in every method and every output file.
STANDARD_INDICATORS: dict[str, tuple[str, str]] = {
    "tax_per_mu": ("tax_paid", "land_mu"),                    # 亩均税收
    "value_added_per_mu": ("value_added", "land_mu"),         # 亩均增加值
    "value_added_per_energy": ("value_added", "energy_tce"),  # 单位能耗增加值
    "value_added_per_emission": ("value_added", "emissions"), # 单位排放增加值
    "labour_productivity": ("value_added", "employees"),      # 全员劳动生产率
    "rd_intensity": ("rd_expense", "revenue"),                # R&D经费占营业收入比重
    "tax_per_electricity": ("tax_paid", "electricity"),       # 单位电耗税收
    "revenue_per_mu": ("revenue", "land_mu"),                 # 亩均营业收入
    "revenue_per_electricity": ("revenue", "electricity"),    # 单位用电营业收入
}
#: column names of evaluation.csv that an indicator id may not take
RESERVED_IDS = {
    "firm_id", "year", "uscc", "name", "township", "industry_code", "scale", "score", "rank", "group_size",
    "percentile", "grade", "grade_group", "not_graded_reason", "method_id", *QUANTITIES,
    "population", "population_name", "base_score", "adjustment", "initial_grade", "grade_class",
    "adjustment_detail", "population_rank", "population_size", "population_percentile",
    "small_park", "tenure", "own_land_mu", "leased_land_mu",
}

#: placeholders a not-graded reason may use: per rule kind, beyond the shared ones
_SHARED_FIELDS = {"year", "scale", "industry_code", "division", "established", "population"}
_RULE_FIELDS = {
    "industry_unknown": set(),
    "divisions": {"divisions"},
    "new_firm": {"years", "cutoff"},
    "min_land": {"land_mu", "min_land_mu"},
}
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")

Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Positive = Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)]
Division = Annotated[int, Field(strict=True, ge=1, le=99)]
Share = Annotated[float, Field(strict=True, gt=0, le=1, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]
Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)]
DataYear = Annotated[int, Field(strict=False, ge=1949, le=2100)]


# ---------------------------------------------------------------- indicators and scores

class Formula(_Strict):
    numerator: Literal["tax_paid", "value_added", "revenue", "rd_expense"]
    denominator: Literal["land_mu", "energy_tce", "electricity", "emissions", "employees", "revenue"]


class DatedValue(_Strict):
    """One data year's published number, with its own citation (黄岩 2021 and 2022 data)."""

    value: Positive
    cite: Cite


class FixedBaseline(_Strict):
    """A published divisor (黄岩: 亩均税收 ÷ 24.097): one ``value`` for every data year, or
    ``values`` keyed by data year (the one of the year evaluated is used; a year without one
    is an error naming the method and the year)."""

    kind: Literal["fixed"]
    value: Positive | None = None
    values: dict[DataYear, DatedValue] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> FixedBaseline:
        if (self.value is None) == (self.values is None):
            raise ValueError("固定基准值应写 value（各年度通用）或 values（按数据年度：{2022: {value: …, cite: …}}）之一")
        if self.values is not None and not self.values:
            raise ValueError("values 至少需要一个数据年度")
        return self

    def value_for(self, year: int) -> float | None:
        if self.value is not None:
            return self.value
        dated = (self.values or {}).get(year)
        return dated.value if dated else None

    def years(self) -> list[int]:
        return sorted(self.values or {})


class GroupAverageBaseline(_Strict):
    """``multiplier`` × the average over the scale's firms that are graded-eligible and have a value.

    ``ratio_of_sums`` = Σ numerator ÷ Σ denominator (how 亩均 figures are officially reported);
    ``mean_of_values`` = the plain mean of the firms' values."""

    kind: Literal["group_average"]
    average: Literal["ratio_of_sums", "mean_of_values"]
    multiplier: Positive = 1.0


Baseline = Annotated[Union[FixedBaseline, GroupAverageBaseline], Field(discriminator="kind")]


class MissingPolicy(_Strict):
    """A firm without the indicator's data: the scale's average item score among the eligible
    firms that have it (黄岩's rule for emissions), 0 points, or not graded."""

    policy: Literal["average_item_score", "zero", "not_graded"]
    cite: Cite


class ZeroDenominatorPolicy(_Strict):
    """A denominator of 0: 0 points, or handled like missing data (then the missing policy applies)."""

    policy: Literal["zero", "missing"]
    cite: Cite


class Indicator(_Strict):
    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)]
    name: str
    unit: str
    formula: Formula
    weight: Positive
    baseline: Baseline | None = None  # required by the ratio score, not used by min_max
    missing: MissingPolicy | None = None  # overrides the scale's policy for this indicator
    zero_denominator: ZeroDenominatorPolicy | None = None
    cite: Cite


class RatioScore(_Strict):
    """item = value ÷ baseline × weight, at most ``cap`` × weight (``cap: null`` = no cap)."""

    function: Literal["ratio"]
    cap: Positive | None
    cite: Cite


class MinMaxScore(_Strict):
    """item = weight × [floor + (1 − floor)·(x − min)/(max − min)] (旌德), min and max over the
    scale's eligible firms that have a value; all equal → full weight."""

    function: Literal["min_max"]
    floor: Annotated[float, Field(strict=True, ge=0, lt=1, allow_inf_nan=False)]
    cite: Cite


ItemScore = Annotated[Union[RatioScore, MinMaxScore], Field(discriminator="function")]


class Quotas(_Strict):
    """Hard limits on the shares of grades in a ranking group, applied after the cut-offs or
    score lines (德州 2024: A ≤ 20 %, D ≥ 5 %).

    ``max_a_share``: at most floor(share × n) firms keep A; a firm keeps A only when the firms
    scoring at least as much as it are within that number, so firms tied across the limit all
    become B.  ``min_d_share``: at least ceil(share × n) firms are D: the lowest scores, and
    every firm tied with the last of them too."""

    max_a_share: Share | None = None
    min_d_share: Share | None = None
    cite: Cite

    @model_validator(mode="after")
    def _check(self) -> Quotas:
        if self.max_a_share is None and self.min_d_share is None:
            raise ValueError("quotas 至少需要 max_a_share（A类最高比例）或 min_d_share（D类最低比例）之一")
        return self


class Grading(_Strict):
    """Grades by rank within the population (optionally within industry groups), or by score
    lines; then optional quotas.

    rank = 1 + the number of graded firms of the group with a strictly higher score (scores
    rounded to ``rank_decimals`` first); percentile = rank ÷ n; the grade is the first whose
    cut-off is ≥ the percentile.  Equal scores therefore share the better grade.  ``bands``
    gives each grade's share (淮安: A 20 %, B 40 %, C 35 %, D 5 %) instead of the cumulative
    ``cutoffs``; ``thresholds`` gives score lines (A ≥ 90 …) instead of ranks.
    """

    within: Literal["population", "scale", "division", "custom"]
    groups: dict[str, list[Annotated[str, Field(pattern=r"^\d{2,4}$")]]] | None = None
    other_group: str | None = None
    min_group_size: Annotated[int, Field(strict=True, ge=1)] | None = None
    pooled_group: str | None = None
    cutoffs: dict[str, Positive] | None = None
    bands: dict[str, Share] | None = None
    thresholds: dict[str, Number] | None = None
    quotas: Quotas | None = None
    rank_decimals: Annotated[int, Field(strict=True, ge=0, le=12)]
    cite: Cite

    def cumulative(self) -> dict[str, float] | None:
        """The cumulative percentile cut-offs (from ``cutoffs`` or ``bands``), None for score lines."""
        if self.cutoffs is not None:
            return dict(self.cutoffs)
        if self.bands is not None:
            out, total = {}, 0.0
            for g in GRADES:
                total += self.bands[g]
                out[g] = total
            out["D"] = 1.0
            return out
        return None

    @model_validator(mode="after")
    def _check(self) -> Grading:
        given = [k for k in ("cutoffs", "bands", "thresholds") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("grading 应给出 cutoffs（累计名次比例）、bands（各等级比例）或 thresholds（分数线）三者之一"
                             + (f"，收到 {'、'.join(given)}" if given else ""))
        if self.bands is not None:
            if list(self.bands) != list(GRADES):
                raise ValueError(f"bands 应依次给出 A、B、C、D 四个等级的比例，收到 {'、'.join(self.bands) or '空'}")
            if abs(sum(self.bands.values()) - 1.0) > 1e-9:
                raise ValueError(f"bands 各等级比例之和应为 1，收到 {sum(self.bands.values()):g}")
        if self.thresholds is not None:
            if list(self.thresholds) != list(GRADES[:3]):
                raise ValueError(f"thresholds 应依次给出 A、B、C 的最低分（其余为 D），收到 {'、'.join(self.thresholds) or '空'}")
            v = list(self.thresholds.values())
            if any(b >= a for a, b in zip(v, v[1:])):
                raise ValueError(f"thresholds 必须严格递减（A > B > C），收到 {v}")
        self._check_groups()
        if self.cutoffs is None:
            return self
        if list(self.cutoffs) != list(GRADES):
            raise ValueError(f"cutoffs 应依次给出 A、B、C、D 四个等级的累计比例，收到 {'、'.join(self.cutoffs) or '空'}")
        values = list(self.cutoffs.values())
        if any(b <= a for a, b in zip(values, values[1:])):
            raise ValueError(f"cutoffs 必须严格递增（A < B < C < D），收到 {values}")
        if values[-1] != 1.0:
            raise ValueError(f"cutoffs 中 D 应为 1（其余企业均为 D），收到 {values[-1]:g}")
        return self

    def _check_groups(self) -> None:
        if self.within == "custom":
            if not self.groups or not self.other_group:
                raise ValueError("within: custom 需要 groups（组名: [行业代码前缀]）和 other_group")
            prefixes = [p for codes in self.groups.values() for p in codes]
            dup = sorted({p for p in prefixes if prefixes.count(p) > 1})
            if dup:
                raise ValueError(f"groups 中行业代码 {'、'.join(dup)} 出现在多个组")
        elif self.groups is not None or self.other_group is not None:
            raise ValueError("groups 与 other_group 只用于 within: custom")
        if self.within in ("scale", "population"):
            if self.min_group_size is not None or self.pooled_group is not None:
                raise ValueError("min_group_size 与 pooled_group 只用于按行业分组（within: division 或 custom）")
        elif self.min_group_size is None or not self.pooled_group:
            raise ValueError("按行业分组时需要 min_group_size（少于该数的组合并排名）和 pooled_group（合并组的名称）")


class ScaleMethod(_Strict):
    indicators: Annotated[list[Indicator], Field(min_length=1)]
    item_score: ItemScore
    missing: MissingPolicy
    zero_denominator: ZeroDenominatorPolicy
    grading: Grading

    @model_validator(mode="after")
    def _check(self) -> ScaleMethod:
        ids = [i.id for i in self.indicators]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"指标 id 重复：{'、'.join(dup)}")
        for ind in self.indicators:
            if self.item_score.function == "ratio" and ind.baseline is None:
                raise ValueError(f"指标 {ind.id} 缺少 baseline（item_score 为 ratio 时每个指标都需要基准值）")
            if self.item_score.function == "min_max" and ind.baseline is not None:
                raise ValueError(f"指标 {ind.id} 不应有 baseline（min_max 评分不使用基准值）")
        return self

    def missing_policy(self, ind: Indicator) -> MissingPolicy:
        return ind.missing or self.missing

    def zero_policy(self, ind: Indicator) -> ZeroDenominatorPolicy:
        return ind.zero_denominator or self.zero_denominator


class PopulationScope(_Strict):
    """Who belongs to a population: every condition given must hold (none given: everyone).

    ``tenure``: ``own`` = at least one 自有 parcel in the year; ``tenant`` = parcels in the year,
    all 租赁 (no industrial land of its own).  ``min_land_mu`` ≤ land < ``below_land_mu``.
    ``small_park``: the registry's 小微园 flag; it marks the park's firms, so an empty flag
    counts as 否.  A condition on a value the firm lacks (land, tenure, scale, industry) is
    unknown: the firm is then not placed in a later population by default but left ungraded,
    with the reason."""

    scale: list[Literal["规上", "规下"]] | None = None
    tenure: Literal["own", "tenant"] | None = None
    min_land_mu: Positive | None = None
    below_land_mu: Positive | None = None
    small_park: bool | None = None
    divisions: list[Division] | None = None

    def uses_land(self) -> bool:
        return self.tenure is not None or self.min_land_mu is not None or self.below_land_mu is not None


class Population(ScaleMethod):
    """A group of firms ranked on its own, with its own indicators, baselines and grading.
    Firms go to the first population (in file order) whose ``when`` holds."""

    id: Identifier
    name: Annotated[str, Field(min_length=1, max_length=20)]
    when: PopulationScope
    cite: Cite


# ---------------------------------------------------------------- 加减分

class AdjustmentItem(_Strict):
    """One 加减分 item.  ``bonus`` / ``penalty``: points, or % of the score before 加减分
    (``unit: percent``), the value fixed here or read from the table's ``value`` column, at most
    ``max_points`` points.  ``grade`` (一票否决): forces the grade (``mode: force``) or caps it
    (``mode: at_most``, e.g. 失信 → 不得评为A)."""

    id: Identifier
    name: str
    effect: Literal["bonus", "penalty", "grade"]
    unit: Literal["points", "percent"] = "points"
    value: NonNegative | None = None
    max_points: Positive | None = None
    grade: Literal["A", "B", "C", "D"] | None = None
    mode: Literal["force", "at_most"] = "force"
    cite: Cite

    @model_validator(mode="after")
    def _check(self) -> AdjustmentItem:
        if self.effect == "grade":
            if self.grade is None:
                raise ValueError(f"加减分项目 {self.id} 为一票否决（effect: grade），需要 grade（如 D）")
            if self.value is not None or self.max_points is not None or self.unit != "points":
                raise ValueError(f"加减分项目 {self.id} 为一票否决，不应有 value、max_points 或 unit")
        elif self.grade is not None or self.mode != "force":
            raise ValueError(f"加减分项目 {self.id} 不是一票否决，不应有 grade 或 mode")
        return self


class Adjustments(_Strict):
    """The 加减分 items of a method and the caps on the total added and deducted."""

    items: Annotated[list[AdjustmentItem], Field(min_length=1)]
    max_bonus: Positive | None = None
    max_penalty: Positive | None = None
    cite: Cite

    @model_validator(mode="after")
    def _check(self) -> Adjustments:
        ids = [i.id for i in self.items]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"加减分项目 id 重复：{'、'.join(dup)}")
        return self

    def item(self, item_id: str) -> AdjustmentItem | None:
        return next((i for i in self.items if i.id == item_id), None)


# ---------------------------------------------------------------- scope

class Evaluated(_Strict):
    """Firms evaluated: those with data in the year whose 2-digit 大类 is in the range
    (06–46 = 采矿业、制造业、电力热力燃气及水生产和供应业), or whose industry code is unknown."""

    division_min: Division
    division_max: Division
    cite: Cite


class _Rule(_Strict):
    reason: str
    #: ``T``: 暂不评价 (淮安 2024: utilities, firms producing < 2 years), shown as grade_class T
    grade_class: Literal["T"] | None = None
    cite: Cite


class IndustryUnknownRule(_Rule):
    kind: Literal["industry_unknown"]


class DivisionsRule(_Rule):
    kind: Literal["divisions"]
    divisions: Annotated[list[Division], Field(min_length=1)]


class NewFirmRule(_Rule):
    """Established after 31 December of (Y − years): fewer than ``years`` full years of
    operation by the end of data year Y (for Y = 2021 and 2 years: established in 2020 or later)."""

    kind: Literal["new_firm"]
    years: Annotated[int, Field(strict=True, ge=1, le=10)]


class MinLandRule(_Rule):
    """Firms of ``scale`` whose land in Y is below ``min_land_mu`` (≥ the minimum is graded);
    land unknown → ``reason_unknown``."""

    kind: Literal["min_land"]
    scale: Literal["规上", "规下"]
    min_land_mu: Positive
    reason_unknown: str


NotGradedRule = Annotated[
    Union[IndustryUnknownRule, DivisionsRule, NewFirmRule, MinLandRule], Field(discriminator="kind")
]


class Scope(_Strict):
    evaluated: Evaluated
    not_graded: list[NotGradedRule]


# ---------------------------------------------------------------- the method

class Publication(_Strict):
    """How long the results are published for objections (公示), counted in days including the
    first and the last (黄岩, 海曙, 巢湖, 济宁: 2.5 to 8 days); the service's default when the
    bureau does not give one when it publishes."""

    days: Annotated[int, Field(strict=True, ge=1, le=60)]
    cite: Cite


class Method(_Strict):
    id: str
    version: str
    title: str
    region: str
    #: the data year the method's numbers were set for (null: any year, e.g. group averages)
    data_year: int | None
    last_reviewed: dt.date
    description: str
    sources: dict[str, Source]
    citation: Cite
    scope: Scope
    #: the older form: 规上 and 规下 only (read as populations above_scale and below_scale)
    scales: dict[Literal["规上", "规下"], ScaleMethod] | None = None
    populations: Annotated[list[Population], Field(min_length=1)] | None = None
    adjustments: Adjustments | None = None
    publication: Publication | None = None

    _path: Path = PrivateAttr(default=Path())
    _sha256: str = PrivateAttr(default="")
    _groups: list[Population] = PrivateAttr(default_factory=list)

    @property
    def publication_days(self) -> int | None:
        """The method's 公示 length in days (None: the service's setting)."""
        return self.publication.days if self.publication is not None else None

    @property
    def population_list(self) -> list[Population]:
        """The populations in order (a ``scales:`` method: 规上 then 规下)."""
        return self._groups

    def population(self, pop_id: str) -> Population:
        return next(p for p in self._groups if p.id == pop_id)

    def baseline_years(self) -> list[int]:
        """Data years for which every dated baseline has a value ([] when none is dated)."""
        dated = [set(i.baseline.years()) for p in self._groups for i in p.indicators
                 if isinstance(i.baseline, FixedBaseline) and i.baseline.values is not None]
        return sorted(set.intersection(*dated)) if dated else []

    def missing_baselines(self, year: int) -> list[str]:
        """Population·indicator pairs with no baseline value for data year ``year``."""
        return [f"{p.name}·{i.name}" for p in self._groups for i in p.indicators
                if isinstance(i.baseline, FixedBaseline) and i.baseline.value_for(year) is None]

    @property
    def path(self) -> Path:
        return self._path

    @property
    def sha256(self) -> str:
        return self._sha256

    def title_for(self, year: int) -> str:
        """The heading of an evaluation of data year ``year``: one year, said one way.  A year the
        method's own title names ("（2022年度数据）": the data it was published for) is left out there."""
        base = re.sub(r"（\d{4}年度?数据）", "", self.title).strip()
        return f"{base}：{year}年度数据（评价方法 {self.id}）"

    @model_validator(mode="after")
    def _check(self) -> Method:
        if self.scales is None and self.populations is None:
            raise ValueError("缺少必填项：应给出 populations（参评群体列表）或 scales（规上、规下）")
        if self.scales is not None and self.populations is not None:
            raise ValueError("populations 与 scales 只能给出一个（scales 是只分规上、规下的旧写法）")
        if self.scales is not None:
            missing = [s for s in SCALES if s not in self.scales]
            if missing:
                raise ValueError(f"scales 必须同时给出规上和规下，缺少 {'、'.join(missing)}")
            ids = {"规上": "above_scale", "规下": "below_scale"}
            self._groups = [Population(id=ids[s], name=s, when=PopulationScope(scale=[s]), cite=self.citation,
                                       **{k: getattr(self.scales[s], k) for k in ScaleMethod.model_fields})
                            for s in SCALES]
        else:
            ids = [p.id for p in self.populations]
            dup = sorted({i for i in ids if ids.count(i) > 1})
            if dup:
                raise ValueError(f"populations 中 id 重复：{'、'.join(dup)}")
            self._groups = list(self.populations)
        ev = self.scope.evaluated
        if ev.division_min > ev.division_max:
            raise ValueError("scope.evaluated 的 division_min 不能大于 division_max")
        for cite_loc, cite in _cites(self):
            if cite.source not in self.sources:
                raise ValueError(f"{cite_loc} 引用了未定义的来源 {cite.source}（sources 中有：{'、'.join(self.sources)}）")
        formulas: dict[str, tuple[str, str, str]] = {}
        for pop in self._groups:
            scale = pop.name if self.scales is not None else pop.id
            where_ = "scales" if self.scales is not None else "populations"
            for ind in pop.indicators:
                pair = (ind.formula.numerator, ind.formula.denominator)
                if ind.formula.numerator == ind.formula.denominator:
                    raise ValueError(f"{where_}.{scale} 指标 {ind.id} 的分子与分母相同")
                if ind.id in RESERVED_IDS or ind.id.endswith("_score"):
                    raise ValueError(f"{where_}.{scale} 指标 id {ind.id} 与输出列名冲突，请换一个名称")
                standard = STANDARD_INDICATORS.get(ind.id)
                if standard and standard != pair:
                    raise ValueError(f"{where_}.{scale} 指标 {ind.id} 是标准指标，公式应为 {standard[0]} ÷ {standard[1]}，"
                                     f"收到 {pair[0]} ÷ {pair[1]}；如需其他公式请另取 id")
                seen = formulas.setdefault(ind.id, (*pair, ind.name))
                if seen != (*pair, ind.name):
                    raise ValueError(f"指标 {ind.id} 在各参评群体中的公式或名称不一致")
        names = [p.name for p in self._groups]
        if len(set(names)) != len(names):
            raise ValueError(f"populations 中名称重复：{'、'.join(sorted({n for n in names if names.count(n) > 1}))}")
        for i, rule in enumerate(self.scope.not_graded):
            allowed = _SHARED_FIELDS | _RULE_FIELDS[rule.kind]
            texts = [rule.reason] + ([rule.reason_unknown] if isinstance(rule, MinLandRule) else [])
            for text in texts:
                bad = [f for f in _PLACEHOLDER.findall(text) if f not in allowed]
                if bad:
                    raise ValueError(f"scope.not_graded[{i}] 的说明中有无法识别的占位符 {{{bad[0]}}}，"
                                     f"可用：{'、'.join('{' + f + '}' for f in sorted(allowed))}")
        return self

    # -- conveniences used by the evaluation
    def indicator_columns(self) -> list[str]:
        """Indicator ids in output order: the first population's, then the next one's new ones."""
        return list(dict.fromkeys(i.id for p in self._groups for i in p.indicators))

    def quantities(self) -> list[str]:
        used = {q for p in self._groups for i in p.indicators for q in (i.formula.numerator, i.formula.denominator)}
        if any(isinstance(r, MinLandRule) for r in self.scope.not_graded) or any(p.when.uses_land() for p in self._groups):
            used.add("land_mu")
        return [q for q in QUANTITIES if q in used]

    def needed_tables(self) -> set[str]:
        return {"enterprises", "stats", *(QUANTITY_TABLE[q] for q in self.quantities())}

    def optional_tables(self) -> set[str]:
        """Tables read when present: the 加减分 table of a method with adjustment items."""
        return {"adjustments"} if self.adjustments is not None else set()

    def citation_text(self, cite: Cite) -> str:
        src = self.sources[cite.source]
        doc = f"{src.doc_no} " if src.doc_no else ""
        return f"{doc}{src.issuer}《{src.title}》{cite.clause}，{src.published.isoformat()}"


def _cites(model: BaseModel, loc: str = "") -> list[tuple[str, Cite]]:
    """Every citation in the method, with where it is (for error messages)."""
    found: list[tuple[str, Cite]] = []

    def walk(value: Any, where: str) -> None:
        if isinstance(value, Cite):
            found.append((where, value))
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name), f"{where}.{name}" if where else name)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{where}.{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{where}[{i}]")

    walk(model, loc)
    return found


# ---------------------------------------------------------------- loading

def methods_dir() -> Path:
    return rules_dir() / "methods"


def shipped_methods() -> list[str]:
    return sorted(p.stem for p in methods_dir().glob("*.yaml"))


def _listing() -> str:
    return f"；随附的评价方法：{'、'.join(shipped_methods()) or '（无）'}（也可给出 .yaml 文件路径）"


#: the one answer to a method the service may not read, whatever was wrong with it (a path
#: outside, missing, a directory, ``..``): the same words, so nothing of the host's files shows
METHOD_REFUSED = "评价方法无效：只能使用随附的评价方法（{names}），或规则集目录、数据根目录中的 .yaml 文件"


def resolve_method_path(name_or_path: str | Path, within: Sequence[Path] | None = None) -> Path:
    """The file of a method: a shipped name, or a .yaml path.

    ``within``: the directories a method file may come from (the service passes its rule
    set and data root; every refusal is then METHOD_REFUSED); None lets the command line
    name any local file (``screening evaluate --method FILE``: the user owns the machine)."""
    text = str(name_or_path).strip()
    if within is not None:
        if text in shipped_methods():
            return methods_dir() / f"{text}.yaml"
        path = confined(text, within) if text.endswith((".yaml", ".yml")) else None
        if path is None or not path.is_file():
            raise RuleSetError(METHOD_REFUSED.format(names="、".join(shipped_methods())))
        return path
    if isinstance(name_or_path, Path) or text.endswith((".yaml", ".yml")) or "/" in text or "\\" in text:
        path = Path(text)
        if not path.is_file():
            raise RuleSetError(f"评价方法文件不存在：{path}{_listing()}")
        return path
    path = methods_dir() / f"{text}.yaml"
    if not text or not path.is_file():
        raise RuleSetError(f"未知的评价方法 {text!r}{_listing()}")
    return path


def load_method(name_or_path: str | Path, within: Sequence[Path] | None = None) -> Method:
    """Load and validate a method: a shipped name (``huangyan-2022``) or a path to a .yaml file
    (inside ``within`` when given, see :func:`resolve_method_path`).

    Any problem raises :class:`RuleSetError` (exit code 2) with one Chinese line naming the
    file and the key, followed by the list of shipped methods."""
    path = resolve_method_path(name_or_path, within)
    try:
        raw = _load_yaml(path)
    except RuleSetError as exc:
        raise RuleSetError(f"{exc}{_listing()}") from None
    if not isinstance(raw, dict):
        raise RuleSetError(f"{path}：文件内容应为键值映射（YAML mapping）{_listing()}")
    # top-level keys starting with "x-" only hold YAML anchors (&name) for reuse below
    raw = {k: v for k, v in raw.items() if not str(k).startswith("x-")}
    try:
        method = Method.model_validate(raw)
    except ValidationError as exc:
        raise RuleSetError(f"{path}：{describe(exc, raw, Method)}{_listing()}") from None
    if method.id != path.stem:
        raise RuleSetError(f"{path}：id 为 {method.id}，应与文件名 {path.stem} 一致{_listing()}")
    method._path = path.resolve()
    method._sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    return method


