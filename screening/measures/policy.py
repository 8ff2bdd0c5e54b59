"""The dated policy table of differential measures: ``rules/<set>/measures.yaml``.

One entry per (utility, grade) policy with its dates, its surcharge steps by consecutive years in
the grade, an optional refund, its citation and what of it is a project assumption.  Numbers live
in the YAML only; the logic is ``sql/rules/measures.sql``.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

import polars as pl
import yaml
from pydantic import Field, ValidationError, model_validator

from ..config_errors import describe
from ..errors import RuleSetError
from ..ruleset import Cite, _Strict
from ..ruleset import Source as RuleSource
from ..schema import UTILITIES

FILE = "measures.yaml"
GRADES = ("A", "B", "C", "D")


class Source(RuleSource):
    """A rule set's source, except that the date may be unknown."""
    #: None when the public text seen gives no date (said so in the YAML, to be checked)
    published: dt.date | None = None


class Utility(_Strict):
    code: Literal["electricity", "water", "gas"]
    unit: str
    quantity: str
    provider: str
    #: other ways a department's file writes the utility (电力, 自来水, 天然气 …), read as this one
    aliases: list[str] = Field(default_factory=list)


class Period(_Strict):
    start_month: int = Field(ge=1, le=12)
    start_day: int = Field(ge=1, le=31)
    months: int = Field(ge=1, le=24)
    cite: Cite


class Step(_Strict):
    from_years: int = Field(ge=1)
    surcharge: float = Field(ge=0)


class Refund(_Strict):
    share: float = Field(gt=0, le=1)
    cite: Cite


class Policy(_Strict):
    id: str
    utility: Literal["电", "水", "气"]
    grade: Literal["A", "B", "C", "D"]
    valid_from: dt.date
    valid_to: dt.date | None
    steps: list[Step] = Field(min_length=1)
    refund: Refund | None = None
    cite: Cite
    #: what of this policy is the project's assumption rather than the cited text (None: nothing)
    assumption: str | None

    @model_validator(mode="after")
    def _ordered(self) -> "Policy":
        years = [s.from_years for s in self.steps]
        if years != sorted(set(years)) or years[0] != 1:
            raise ValueError(f"政策 {self.id}：steps 的 from_years 应从 1 开始、逐档递增且不重复")
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise ValueError(f"政策 {self.id}：valid_to 早于 valid_from")
        return self


class MeasuresFile(_Strict):
    id: str
    title: str
    last_reviewed: dt.date
    sources: dict[str, Source]
    utilities: dict[Literal["电", "水", "气"], Utility]
    period: Period
    policies: list[Policy]
    messages: dict[Literal["surcharge", "refund", "no_account"], str]

    @model_validator(mode="after")
    def _consistent(self) -> "MeasuresFile":
        cites = [self.period.cite] + [p.cite for p in self.policies] + [p.refund.cite for p in self.policies if p.refund]
        unknown = sorted({c.source for c in cites} - set(self.sources))
        if unknown:
            raise ValueError(f"引用了未声明的来源 {unknown}（应在 sources 中）")
        ids = [p.id for p in self.policies]
        if len(ids) != len(set(ids)):
            raise ValueError("政策 id 重复")
        missing = [u for u in UTILITIES if u not in self.utilities]
        if missing:
            raise ValueError(f"utilities 缺少 {'、'.join(missing)} 的计价单位（电、水、气都要写）")
        # two policies for the same utility and grade must not be in force on the same day
        for i, a in enumerate(self.policies):
            for b in self.policies[i + 1:]:
                if (a.utility, a.grade) == (b.utility, b.grade) and _overlap(a, b):
                    raise ValueError(f"政策 {a.id} 与 {b.id}（{a.utility} {a.grade}类）执行期重叠")
        return self

    def citation_text(self, cite: Cite) -> str:
        src = self.sources[cite.source]
        doc = f"{src.doc_no} " if src.doc_no else ""
        return f"{doc}{src.issuer}《{src.short_title or src.title}》{cite.clause}"

    def steps_frame(self) -> pl.DataFrame:
        """One row per step of every policy: what ``sql/rules/measures.sql`` reads as ``policy_steps``."""
        rows = [{"policy_id": p.id, "utility": p.utility, "grade": p.grade, "valid_from": p.valid_from,
                 "valid_to": p.valid_to, "from_years": s.from_years, "surcharge": s.surcharge,
                 "refund_share": p.refund.share if p.refund else None}
                for p in self.policies for s in p.steps]
        return pl.DataFrame(rows, schema={"policy_id": pl.String, "utility": pl.String, "grade": pl.String,
                                          "valid_from": pl.Date, "valid_to": pl.Date, "from_years": pl.Int64,
                                          "surcharge": pl.Float64, "refund_share": pl.Float64})

    def utility_aliases(self) -> dict[str, str]:
        """Each alias of a utility → the utility (电/水/气), for the ``utility`` column of
        ``accounts`` and of the ledger."""
        return {alias: name for name, u in self.utilities.items() for alias in u.aliases}

    def policy(self, policy_id: str) -> Policy:
        return next(p for p in self.policies if p.id == policy_id)

    def period_of(self, year: int) -> tuple[dt.date, dt.date]:
        """The days list year ``year``'s measures run: from its start date for ``months`` months."""
        start = dt.date(year, self.period.start_month, self.period.start_day)
        return start, _add_months(start, self.period.months) - dt.timedelta(days=1)


def _overlap(a: Policy, b: Policy) -> bool:
    far = dt.date.max
    return a.valid_from <= (b.valid_to or far) and b.valid_from <= (a.valid_to or far)


def _add_months(day: dt.date, months: int) -> dt.date:
    month = day.month - 1 + months
    return day.replace(year=day.year + month // 12, month=month % 12 + 1)


def load_measures(ruleset_dir: Path, path: Path | None = None) -> MeasuresFile:
    """``measures.yaml`` of a rule set (or ``path``); a missing or invalid file raises RuleSetError."""
    path = Path(path) if path else Path(ruleset_dir) / FILE
    if not path.is_file():
        raise RuleSetError(f"{path}：缺少差别化措施政策表 {FILE}（见 docs/measures.md）")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RuleSetError(f"{path}：无法读取（{type(exc).__name__}）") from None
    try:
        return MeasuresFile.model_validate(data)
    except ValidationError as exc:
        raise RuleSetError(f"{path} 无效：{describe(exc, data, MeasuresFile)}") from None
