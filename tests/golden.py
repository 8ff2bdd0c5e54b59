"""Golden rule cases written in YAML (tests/rules/<ruleset>/test_<rule_id>.yaml).

A case describes firms in plain terms and the statuses and numbers expected, computed
by hand.  Firms are named by short aliases (``F``, ``B1`` …) that the runner turns into
valid 统一社会信用代码.  Inputs go through the real path: CSV files -> ingestion ->
validation -> DuckDB rules, so the cases test the whole engine, not a shortcut.
"""
from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from screening.paths import default_ruleset
from screening.schema import TABLES
from screening.screen import screen
from screening.uscc import check_char


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class YearData(_Strict):
    scale: Literal["规上", "规下"] | None = None
    revenue: float | None = None
    tax: float | None = None
    land: float | None = None
    tenure: Literal["自有", "租赁"] = "自有"
    grade: str | None = None
    energy_tce: float | None = None


class Firm(_Strict):
    id: str
    industry: str | None = "3823"
    township: str = "柳市镇"
    established: str | None = None
    years: dict[int, YearData] = Field(default_factory=dict)


class Expect(_Strict):
    firm: str
    rule: str | None = None
    status: Literal["hit", "pass", "insufficient_data", "not_applicable"]
    reason_code: str | None = None
    value: float | None = None
    threshold: float | None = None
    industry_avg: float | None = None
    industry_group: str | None = None
    group_firms: int | None = None
    value_prev: float | None = None
    value_last: float | None = None
    value_text: str | None = None
    source: str | None = None
    reason_contains: list[str] = Field(default_factory=list)
    #: texts the reason must NOT contain (e.g. a limit that is not the one applied)
    reason_lacks: list[str] = Field(default_factory=list)
    #: fields that must be empty (None) in the result
    empty: list[str] = Field(default_factory=list)


class ListRow(_Strict):
    """A listed firm's suggested disposition (rules/<set>/dispositions.yaml, first matching entry)."""

    firm: str
    disposition: str
    lead: str
    cooperating: str | None = None


class Case(_Strict):
    name: str
    year: int = 2022
    set: list[str] = Field(default_factory=list)
    firms: list[Firm] = Field(default_factory=list)
    tables: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    energy_limits: list[dict[str, Any]] | None = None
    expected: list[Expect]
    listed: list[str] | None = None
    dispositions: list[ListRow] = Field(default_factory=list)


class CaseFile(_Strict):
    rule: str
    cases: list[Case]
    model_config = ConfigDict(extra="allow")  # only x-… keys, which hold YAML anchors

    @model_validator(mode="after")
    def _only_anchor_extras(self) -> "CaseFile":
        unknown = [k for k in (self.model_extra or {}) if not k.startswith("x-")]
        if unknown:
            raise ValueError(f"unknown keys {unknown}")
        return self


class Aliases:
    """Alias -> valid uscc, stable in order of first use."""

    def __init__(self) -> None:
        self.codes: dict[str, str] = {}

    def __call__(self, alias: str) -> str:
        if alias not in self.codes:
            body = f"91330382{len(self.codes) + 1:09d}"
            self.codes[alias] = body + check_char(body)
        return self.codes[alias]


def build_tables(case: Case, alias: Aliases) -> dict[str, list[dict[str, Any]]]:
    tables: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}
    for firm in case.firms:
        code = alias(firm.id)
        tables["enterprises"].append({"uscc": code, "name": f"测试企业{firm.id}", "township": firm.township,
                                      "industry_code": firm.industry, "established": firm.established})
        for year, d in sorted(firm.years.items()):
            if d.scale is not None:
                revenue = d.revenue if d.revenue is not None else (5000.0 if d.scale == "规上" else 500.0)
                tables["stats"].append({"uscc": code, "year": year, "scale": d.scale, "revenue": revenue})
            if d.tax is not None:
                tables["tax"].append({"uscc": code, "year": year, "tax_paid": d.tax})
            if d.land is not None:
                tables["land"].append({"uscc": code, "year": year, "parcel_id": f"P-{firm.id}",
                                       "area_mu": d.land, "tenure": d.tenure})
            if d.grade is not None:
                tables["evaluations"].append({"uscc": code, "year": year, "grade": d.grade})
            if d.energy_tce is not None:
                tables["energy"].append({"uscc": code, "year": year, "energy_tce": d.energy_tce, "electricity": 1.0})
    for name, rows in case.tables.items():
        for row in rows:
            row = dict(row)
            if "uscc" in row:
                row["uscc"] = alias(str(row["uscc"]))
            tables[name].append(row)
    return tables


def write_inputs(tables: dict[str, list[dict[str, Any]]], folder: Path) -> None:
    """One CSV per table, every value as text; required headers are always written."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        present = {k for r in rows for k in r}
        header = [c.name for c in TABLES[name].columns if c.required or c.name in present]
        if name == "land":
            areas = [a for a in ("area_mu", "area_m2") if a in present] or ["area_mu"]
            header = [h for h in header if h not in ("area_mu", "area_m2")] + areas
        frame = pl.DataFrame({h: [None if r.get(h) is None else str(r.get(h)) for r in rows] for h in header},
                             schema={h: pl.String for h in header})
        frame.write_csv(folder / f"{name}.csv")


def ruleset_with_limits(limits: list[dict[str, Any]] | None, folder: Path) -> Path:
    target = folder / "ruleset"
    shutil.copytree(default_ruleset(), target)
    if limits is not None:
        cols = ["product", "product_name", "standard", "unit", "limit", "effective_from", "effective_to"]
        cols += [c for c in ("verified",) if any(c in r for r in limits)]
        pl.DataFrame({c: [None if r.get(c) is None else str(r.get(c)) for r in limits] for c in cols},
                     schema={c: pl.String for c in cols}).write_csv(target / "energy_limits.csv")
    return target


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def run_case(case: Case, default_rule: str, tmp: Path) -> list[str]:
    """Run one case; return the list of mismatches (empty when the case passes)."""
    alias = Aliases()
    write_inputs(build_tables(case, alias), tmp / "data")
    rules = ruleset_with_limits(case.energy_limits, tmp)
    with screen(tmp / "data", case.year, rules, case.set) as s:
        results, listing = s.results, s.list
    listed = set(listing["uscc"].to_list())
    by_key = {(r["uscc"], r["rule_id"]): r for r in results.iter_rows(named=True)}
    problems: list[str] = []
    for exp in case.expected:
        rule = exp.rule or default_rule
        got = by_key.get((alias(exp.firm), rule))
        if got is None:
            problems.append(f"{exp.firm}/{rule}: no result row")
            continue
        where = f"{exp.firm}/{rule}"
        if got["status"] != exp.status:
            problems.append(f"{where}: status {got['status']} ({got['reason_code']}: {got['reason']}), expected {exp.status}")
        for fld in ("reason_code", "industry_group", "group_firms", "value_text", "source"):
            want = getattr(exp, fld)
            if want is not None and got[fld] != want:
                problems.append(f"{where}: {fld} {got[fld]!r}, expected {want!r}")
        for fld in ("value", "threshold", "industry_avg", "value_prev", "value_last"):
            want = getattr(exp, fld)
            if want is not None and not _close(got[fld], want):
                problems.append(f"{where}: {fld} {got[fld]!r}, expected {want!r}")
        for fld in exp.empty:
            if got[fld] is not None:
                problems.append(f"{where}: {fld} should be empty, got {got[fld]!r}")
        for text in exp.reason_contains:
            if text not in (got["reason"] or ""):
                problems.append(f"{where}: reason {got['reason']!r} lacks {text!r}")
        for text in exp.reason_lacks:
            if text in (got["reason"] or ""):
                problems.append(f"{where}: reason {got['reason']!r} should not contain {text!r}")
    rows = {r["uscc"]: r for r in listing.iter_rows(named=True)}
    for want in case.dispositions:
        row = rows.get(alias(want.firm))
        if row is None:
            problems.append(f"{want.firm}: not on the list, expected {want.disposition}")
            continue
        for fld, col in (("disposition", "suggested_disposition"), ("lead", "disposition_lead"),
                         ("cooperating", "disposition_cooperating")):
            value = getattr(want, fld)
            if value is not None and row[col] != value:
                problems.append(f"{want.firm}: {col} {row[col]!r}, expected {value!r}")
    if case.listed is not None:
        want = {alias(a) for a in case.listed}
        if listed != want:
            inverse = {v: k for k, v in alias.codes.items()}
            problems.append(f"list: {sorted(inverse.get(u, u) for u in listed)}, expected {sorted(case.listed)}")
    return problems


# ---------------------------------------------------------------- 拟建项目 (screening projects)

class ProjectExpect(_Strict):
    project: str
    two_high: bool | None = None
    intensity: float | None = None
    standard: float | None = None
    intensity_status: Literal["hit", "pass", "insufficient_data"] | None = None
    authority: Literal["below_review", "county", "upper"] | None = None
    suggestion: str | None = None
    reason_contains: list[str] = Field(default_factory=list)
    empty: list[str] = Field(default_factory=list)


class ProjectReject(_Strict):
    row: int
    column: str
    reason_contains: str


class ProjectCase(_Strict):
    name: str
    set: list[str] = Field(default_factory=list)
    projects: list[dict[str, Any]]
    expected: list[ProjectExpect] = Field(default_factory=list)
    rejected: list[ProjectReject] = Field(default_factory=list)
    #: the projects that must be in the output, all of them (rejected rows are not)
    reviewed: list[str] | None = None


class ProjectCaseFile(_Strict):
    rule: Literal["projects"]
    cases: list[ProjectCase]


def run_project_case(case: ProjectCase, tmp: Path) -> list[str]:
    """Run one 拟建项目 case through the real path (CSV -> ingestion -> SQL); return mismatches."""
    from screening.projects import review

    folder = tmp / "data"
    folder.mkdir(parents=True, exist_ok=True)
    columns = TABLES["projects"].columns
    header = [c.name for c in columns if c.required or any(c.name in r for r in case.projects)]
    pl.DataFrame({h: [None if r.get(h) is None else str(r.get(h)) for r in case.projects] for h in header},
                 schema={h: pl.String for h in header}).write_csv(folder / "projects.csv")
    result = review(folder, default_ruleset(), case.set)
    rows = {r["project_id"]: r for r in result.results.iter_rows(named=True)}
    problems: list[str] = []
    for exp in case.expected:
        got = rows.get(exp.project)
        if got is None:
            problems.append(f"{exp.project}: no result row")
            continue
        for fld in ("two_high", "intensity_status", "authority", "suggestion"):
            want = getattr(exp, fld)
            if want is not None and got[fld] != want:
                problems.append(f"{exp.project}: {fld} {got[fld]!r}, expected {want!r} ({got['reason']})")
        for fld in ("intensity", "standard"):
            want = getattr(exp, fld)
            if want is not None and not _close(got[fld], want):
                problems.append(f"{exp.project}: {fld} {got[fld]!r}, expected {want!r}")
        for fld in exp.empty:
            if got[fld] is not None:
                problems.append(f"{exp.project}: {fld} should be empty, got {got[fld]!r}")
        for text in exp.reason_contains:
            if text not in (got["reason"] or ""):
                problems.append(f"{exp.project}: reason {got['reason']!r} lacks {text!r}")
    lines = result.rejects.iter_rows(named=True)
    rejects = [(r["row"], r["column"], r["reason"]) for r in lines]
    for want in case.rejected:
        if not any(r == want.row and c == want.column and want.reason_contains in reason for r, c, reason in rejects):
            problems.append(f"row {want.row}/{want.column}: no reject containing {want.reason_contains!r}; got {rejects}")
    if case.reviewed is not None and sorted(rows) != sorted(case.reviewed):
        problems.append(f"reviewed {sorted(rows)}, expected {sorted(case.reviewed)}")
    return problems
