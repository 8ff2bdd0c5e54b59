"""亩均效益综合评价 as bureaus run it (issue 16, parts 1 and 4): populations, dated baselines,
加减分 and one-vote items, score lines and quotas, T (暂不评价), and the shipped 黄岩 and 淮安 methods.

Firms are written as CSV files and go through the real path (ingestion -> validation ->
evaluation).  Every expected number is computed by hand in the comments.

Most cases use a one-indicator method: 亩均税收 ÷ 10 × 100 on 10 亩, so a firm's score before
加减分 equals its tax in 万元 (tax 88 on 10 亩 -> 8.8 万元/亩 -> 8.8 ÷ 10 × 100 = 88 points).
"""
from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from golden import Aliases, write_inputs
from typer.testing import CliRunner

from eval_helpers import evaluate_app
from screening.errors import InputError, RuleSetError
from screening.evaluation import evaluate, load_evaluation_inputs, write_evaluation
from screening.evaluation_method import load_method
from screening.schema import TABLES

CITE = {"source": "t", "clause": "测试"}


# ---------------------------------------------------------------- helpers

def firm(fid: str, base: float | None = None, *, scale: str = "规上", year: int = 2022, land: float = 10.0,
         parcels: list[tuple[float, str | None]] | None = None, **extra: Any) -> dict[str, Any]:
    """A firm whose score under :func:`one_indicator` is ``base`` (tax = base on 10 亩)."""
    f = {"id": fid, "scale": scale, "year": year, "revenue": 100.0, "tax_paid": base,
         "parcels": parcels if parcels is not None else [(land, "自有")], "electricity": 10.0, "energy_tce": 5.0}
    f.update(extra)
    return f


def write_data(folder: Path, firms: list[dict[str, Any]], alias: Aliases,
               adjustments: list[dict[str, Any]] | None = None, registry_extra: str | None = None) -> Path:
    """One stats/tax/land/energy row set per firm-year; ``registry_extra``: a registry column to add
    under that header (e.g. 是否小微园) from each firm's ``park`` value."""
    tables: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES if name in (
        "enterprises", "stats", "tax", "land", "energy")}
    seen: set[str] = set()
    for f in firms:
        code = alias(f["id"])
        if code not in seen:
            seen.add(code)
            row = {"uscc": code, "name": f"测试企业{f['id']}", "township": "柳市镇",
                   "industry_code": f.get("industry", "3823"), "established": f.get("established", "2000-01-01")}
            tables["enterprises"].append(row)
        y = f["year"]
        tables["stats"].append({"uscc": code, "year": y, "scale": f["scale"], "revenue": f["revenue"],
                                "value_added": f.get("value_added"), "employees": None, "rd_expense": None,
                                "emissions": None})
        if f.get("tax_paid") is not None:
            tables["tax"].append({"uscc": code, "year": y, "tax_paid": f["tax_paid"]})
        for i, (area, tenure) in enumerate(f["parcels"]):
            tables["land"].append({"uscc": code, "year": y, "parcel_id": f"P-{f['id']}-{i}", "area_mu": area,
                                   "tenure": tenure})
        tables["energy"].append({"uscc": code, "year": y, "energy_tce": f["energy_tce"], "electricity": f["electricity"]})
    write_inputs(tables, folder)
    if registry_extra:  # write_inputs writes the schema's English headers only: add the column as a bureau names it
        ent = pl.read_csv(folder / "enterprises.csv", infer_schema=False)
        parks = {alias(f["id"]): f.get("park") for f in firms}
        ent.with_columns(pl.col("uscc").replace_strict(parks, default=None, return_dtype=pl.String)
                         .alias(registry_extra)).write_csv(folder / "enterprises.csv")
    if adjustments is not None:
        rows = [{"uscc": alias(a["id"]), "year": a.get("year", 2022), "item": a["item"], "value": a.get("value"),
                 "source": a.get("source", "区科技局"), "document": a.get("document")} for a in adjustments]
        frame = pl.DataFrame(rows, schema={"uscc": pl.String, "year": pl.Int64, "item": pl.String,
                                           "value": pl.Float64, "source": pl.String, "document": pl.String})
        # Chinese headers, as a bureau's file has them
        frame.rename({"uscc": "统一社会信用代码", "year": "年份", "item": "加减分项目", "value": "分值",
                      "source": "认定部门", "document": "依据文件"}).write_csv(folder / "adjustments.csv")
    return folder


def population(pid: str, name: str, when: dict[str, Any], grading: dict[str, Any] | None = None) -> dict[str, Any]:
    grading = copy.deepcopy(grading)  # the tests below edit the method they get
    return {
        "id": pid, "name": name, "when": when, "cite": CITE,
        "indicators": [{"id": "tax_per_mu", "name": "亩均税收", "unit": "万元/亩",
                        "formula": {"numerator": "tax_paid", "denominator": "land_mu"}, "weight": 100,
                        "baseline": {"kind": "fixed", "value": 10}, "cite": CITE}],
        "item_score": {"function": "ratio", "cap": None, "cite": CITE},
        "missing": {"policy": "not_graded", "cite": CITE},
        "zero_denominator": {"policy": "missing", "cite": CITE},
        "grading": grading or {"within": "population", "cutoffs": {"A": 0.2, "B": 0.6, "C": 0.95, "D": 1.0},
                               "rank_decimals": 6, "cite": CITE},
    }


LINES = {"within": "population", "thresholds": {"A": 90, "B": 75, "C": 60}, "rank_decimals": 6, "cite": CITE}


def one_indicator(pops: list[dict[str, Any]] | None = None, adjustments: dict[str, Any] | None = None,
                  not_graded: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    m = {
        "id": "custom", "version": "1", "title": "测试方法", "region": "测试", "data_year": None,
        "last_reviewed": "2026-11-29", "description": "测试用",
        "sources": {"t": {"issuer": "测试", "title": "测试", "published": "2026-01-01"}},
        "citation": CITE,
        "scope": {"evaluated": {"division_min": 6, "division_max": 46, "cite": CITE}, "not_graded": not_graded or []},
        "populations": pops or [population("all", "参评", {}, LINES)],
    }
    if adjustments is not None:
        m["adjustments"] = adjustments
    return m


def write_method(folder: Path, data: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{data['id']}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def run(tmp: Path, firms: list[dict[str, Any]], method: str | Path | dict[str, Any], year: int = 2022,
        adjustments: list[dict[str, Any]] | None = None, registry_extra: str | None = None):
    alias = Aliases()
    if isinstance(method, dict):
        method = write_method(tmp / "m", method)
    m = load_method(method)
    data = write_data(tmp / "data", firms, alias, adjustments, registry_extra)
    ev = evaluate(load_evaluation_inputs(data, year, m), year, m)
    return ev, alias


def row(ev, alias: Aliases, fid: str) -> dict[str, Any]:
    rows = ev.scores.filter(pl.col("uscc") == alias(fid)).to_dicts()
    assert len(rows) == 1, f"{fid}: {len(rows)} rows"
    return rows[0]


# ---------------------------------------------------------------- dated baselines (黄岩 2021 and 2022 data)

def test_a_firm_at_the_benchmark_of_its_year_and_under_the_other_years(tmp_path: Path):
    # A 规下 firm on 10 亩 exactly at 黄岩's 2021-data divisors:
    #   tax = 16.601058 × 10 = 166.01058 万元; electricity = 166.01058 ÷ 0.236565 万千瓦时.
    # 2021 data -> 50 × 1 + 50 × 1 = 100.
    # The same figures as 2022 data are held against the 2022 divisors:
    #   50 × 16.601058 / 11.5932 + 50 × 0.236565 / 0.2352
    #   = 50 × 1.4319651 + 50 × 1.0058036 = 71.598256 + 50.290179 = 121.888434.
    tax = 16.601058 * 10
    kw = dict(scale="规下", tax_paid=tax, electricity=tax / 0.236565)
    firms = [firm("F", year=2021, **kw), firm("F", year=2022, **kw)]
    ev21, alias = run(tmp_path / "a", firms, "huangyan-2022", year=2021)
    ev22, _ = run(tmp_path / "b", firms, "huangyan-2022", year=2022)
    assert math.isclose(row(ev21, alias, "F")["score"], 100.0, rel_tol=1e-12)
    assert math.isclose(row(ev22, alias, "F")["score"], 121.888434, rel_tol=1e-8)
    # the baselines actually used are recorded per year
    used = {r["indicator"]: r["baseline"] for r in ev21.baselines.filter(pl.col("population") == "below_scale").to_dicts()}
    assert used == {"tax_per_mu": 16.601058, "tax_per_electricity": 0.236565}
    assert not ev21.warnings  # the 2021 divisors are the published ones for 2021 data: no "只作对照" warning
    # a year without published divisors is refused, naming the method and the year
    with pytest.raises(RuleSetError, match=r"评价方法 huangyan-2022 没有 2023 年度数据适用的基准值，方法中有 2021、2022 年度的基准值"):
        run(tmp_path / "c", [firm("F", year=2023, **kw)], "huangyan-2022", year=2023)


def test_shipped_methods_carry_both_published_divisor_sets_and_huaian():
    hy = load_method("huangyan-2022")
    above = hy.population("above_scale")
    assert [(i.id, i.baseline.value_for(2021), i.baseline.value_for(2022)) for i in above.indicators] == [
        ("tax_per_mu", 26.01, 24.097), ("value_added_per_mu", 132.27, 136.16), ("value_added_per_energy", 2.54, 2.694),
        ("value_added_per_emission", 4861.08, 4929.81), ("labour_productivity", 17.45, 18.14),
        ("rd_intensity", 0.0305, 0.0302)]
    below = hy.population("below_scale")
    assert [(i.baseline.value_for(2021), i.baseline.value_for(2022)) for i in below.indicators] == [
        (16.601058, 11.5932), (0.236565, 0.2352)]
    assert below.indicators[0].baseline.values[2021].cite.source == "huangyan2022"
    assert hy.sources["huangyan2022"].published.isoformat() == "2022-09-20"
    ha = load_method("huaian-2024")
    [pop] = ha.population_list
    assert [(i.id, i.weight, i.baseline.multiplier) for i in pop.indicators] == [
        ("tax_per_mu", 45, 2.0), ("revenue_per_mu", 35, 2.0), ("tax_per_energy", 20, 2.0)]
    assert pop.grading.cumulative() == pytest.approx({"A": 0.2, "B": 0.6, "C": 0.95, "D": 1.0})
    assert [r.grade_class for r in ha.scope.not_graded] == [None, "T", "T", None]
    assert ha.sources["huaian2024"].published.isoformat() == "2024-05-31"
    # what the source leaves open is marked as our assumption
    assert pop.cite.source == "project_assumption" and "同一名单" in pop.cite.note
    assert "上年度" in pop.indicators[0].cite.note


# ---------------------------------------------------------------- 加减分

ADJ = {
    "cite": CITE,
    "max_bonus": 3.5,
    "items": [
        {"id": "high_tech", "name": "高新技术企业", "effect": "bonus", "max_points": 3, "cite": CITE},
        {"id": "patent", "name": "发明专利", "effect": "bonus", "value": 2, "cite": CITE},
        {"id": "energy_saving", "name": "节能改造", "effect": "bonus", "unit": "percent", "cite": CITE},
        {"id": "env_penalty", "name": "环保处罚", "effect": "penalty", "cite": CITE},
        {"id": "serious_accident", "name": "较大安全事故", "effect": "grade", "grade": "D", "cite": CITE},
        {"id": "dishonest", "name": "失信", "effect": "grade", "grade": "B", "mode": "at_most", "cite": CITE},
    ],
}


def test_a_bonus_crosses_a_grade_line_and_the_caps_stop_it(tmp_path: Path):
    # Score lines: A ≥ 90, B ≥ 75, C ≥ 60, else D.
    #   X  base 88 + 高新 3                      = 91  -> A (B without the bonus)
    #   Y  base 86 + 高新 5, capped at 3 per item = 89  -> B (91 = A without the item cap)
    #   Z  base 86 + 高新 3 + 专利 2 (fixed) = 5, total bonus capped at 3.5 = 89.5 -> B (91 = A without it)
    #   W  base 80 + 节能 4 % of 80 = 3.2        = 83.2 -> B
    #   V  base 92 − 环保 5                      = 87  -> B (A before)
    #   N  base 88, no item                      = 88, adjustment 0 -> B
    firms = [firm(f, b) for f, b in [("X", 88), ("Y", 86), ("Z", 86), ("W", 80), ("V", 92), ("N", 88)]]
    adj = [{"id": "X", "item": "high_tech", "value": 3, "document": "浙科发〔2022〕1号"},
           {"id": "Y", "item": "high_tech", "value": 5},
           {"id": "Z", "item": "high_tech", "value": 3}, {"id": "Z", "item": "patent", "source": "区市场监管局"},
           {"id": "W", "item": "energy_saving", "value": 4, "source": "区发改局"},
           {"id": "V", "item": "env_penalty", "value": 5, "source": "生态环境分局", "document": "温环罚〔2022〕8号"}]
    ev, alias = run(tmp_path, firms, one_indicator(adjustments=ADJ), adjustments=adj)
    want = {"X": (88, 3, 91, "A"), "Y": (86, 3, 89, "B"), "Z": (86, 3.5, 89.5, "B"), "W": (80, 3.2, 83.2, "B"),
            "V": (92, -5, 87, "B"), "N": (88, 0, 88, "B")}
    for fid, (base, adjustment, score, grade) in want.items():
        r = row(ev, alias, fid)
        assert math.isclose(r["base_score"], base, abs_tol=1e-9), fid
        assert math.isclose(r["adjustment"], adjustment, abs_tol=1e-9), fid
        assert math.isclose(r["score"], score, abs_tol=1e-9), fid
        assert r["grade"] == r["initial_grade"] == r["grade_class"] == grade, fid
    assert row(ev, alias, "X")["adjustment_detail"] == "高新技术企业加3分（认定部门：区科技局；依据：浙科发〔2022〕1号）"
    assert row(ev, alias, "Y")["adjustment_detail"] == "高新技术企业加3分（5分，超过单项上限，按3分计）（认定部门：区科技局）"
    assert row(ev, alias, "Z")["adjustment_detail"] == (
        "高新技术企业加3分（认定部门：区科技局）；发明专利加2分（认定部门：区市场监管局）；加分合计5分，超过上限3.5分，按3.5分计")
    assert row(ev, alias, "W")["adjustment_detail"] == "节能改造加4%即3.2分（认定部门：区发改局）"
    assert row(ev, alias, "V")["adjustment_detail"] == "环保处罚扣5分（认定部门：生态环境分局；依据：温环罚〔2022〕8号）"
    assert row(ev, alias, "N")["adjustment_detail"] is None


def test_one_vote_items_force_or_cap_the_grade_after_the_initial_grade(tmp_path: Path):
    # U base 95 -> initial A; a serious accident forces D (初评 A, 调档后 D).
    # S base 95 -> initial A; 失信 caps it at B.
    # R base 70 -> initial C; "at most B" leaves C as it is.
    # Q base 50 (initial D) with both: D.
    firms = [firm("U", 95), firm("S", 95), firm("R", 70), firm("Q", 50), firm("OK", 95)]
    adj = [{"id": "U", "item": "serious_accident", "source": "应急管理局", "document": "事故调查报告"},
           {"id": "S", "item": "dishonest", "source": "发改局（信用办）"}, {"id": "R", "item": "dishonest", "source": "发改局"},
           {"id": "Q", "item": "serious_accident", "source": "应急管理局"}, {"id": "Q", "item": "dishonest", "source": "发改局"}]
    ev, alias = run(tmp_path, firms, one_indicator(adjustments=ADJ), adjustments=adj)
    got = {f: (row(ev, alias, f)["initial_grade"], row(ev, alias, f)["grade"], row(ev, alias, f)["grade_class"])
           for f in ("U", "S", "R", "Q", "OK")}
    assert got == {"U": ("A", "D", "D"), "S": ("A", "B", "B"), "R": ("C", "C", "C"), "Q": ("D", "D", "D"),
                   "OK": ("A", "A", "A")}
    u = row(ev, alias, "U")
    assert u["score"] == u["base_score"] == 95 and u["adjustment"] == 0  # no points, only the grade
    assert u["adjustment_detail"] == "较大安全事故：一票否决，等级定为D（认定部门：应急管理局；依据：事故调查报告）"
    assert row(ev, alias, "S")["adjustment_detail"] == "失信：等级不高于B（认定部门：发改局（信用办））"


def test_unusable_adjustment_rows_are_rejected_with_their_row_number(tmp_path: Path):
    # adjustments.csv rows (header = row 1): 2 unknown item, 3 value missing where the table must
    # give it, 4 a value other than the method's fixed 2, 5 a value on a one-vote item,
    # 6 negative (schema check), 7 fine, 8 another year (not checked against the method, not used),
    # 9 a firm with no 2022 data (not evaluated: the row is unused, and the run says so)
    firms = [firm("A", 80), firm("GONE", 50, year=2021)]
    adj = [{"id": "A", "item": "brand"}, {"id": "A", "item": "high_tech"}, {"id": "A", "item": "patent", "value": 3},
           {"id": "A", "item": "serious_accident", "value": 1}, {"id": "A", "item": "env_penalty", "value": -2},
           {"id": "A", "item": "energy_saving", "value": 10}, {"id": "A", "item": "nothing", "year": 2021},
           {"id": "GONE", "item": "high_tech", "value": 1}]
    ev, alias = run(tmp_path, firms, one_indicator(adjustments=ADJ), adjustments=adj)
    rej = {(r["row"], r["column"]): r["reason"] for r in ev.rejects.to_dicts()}
    assert rej == {
        (2, "加减分项目"): "加减分项目“brand”不是评价方法 custom 的项目（可用：high_tech、patent、energy_saving、env_penalty、"
                          "serious_accident、dishonest）",
        (3, "分值"): "缺少分值：项目“高新技术企业”的分值按数据表填写",
        (4, "分值"): "分值3与评价方法对项目“发明专利”规定的2不一致（可留空）",
        (5, "分值"): "项目“较大安全事故”为一票否决，不填分值",
        (6, "分值"): "分值不能为负数",
    }
    a = row(ev, alias, "A")  # only row 7 applies: 10 % of 80 = 8, the total bonus capped at 3.5 -> 83.5
    assert a["adjustment"] == pytest.approx(3.5) and a["score"] == pytest.approx(83.5) and a["grade"] == "B"
    assert ev.rejected_rows() == 5 and any("加减分表中 4 行不能使用" in w for w in ev.warnings)
    assert "加减分表中 1 行的企业没有参加本次评价（2022年没有数据或不属于参评行业），未使用" in ev.warnings


# ---------------------------------------------------------------- quotas

QUOTA_LINES = {**LINES, "quotas": {"max_a_share": 0.2, "min_d_share": 0.1, "cite": CITE}}


@pytest.mark.parametrize("scores, want", [
    # 10 firms, A ≤ floor(0.2 × 10) = 2, D ≥ ceil(0.1 × 10) = 1.
    # Exact boundary, no ties: lines give A to 99, 97, 95, 93; only the first two keep A (2 = 20 %);
    # 61 is the lowest -> D (1 = 10 %); 62 stays C.
    ([99, 97, 95, 93, 80, 80, 70, 65, 62, 61], ["A", "A", "B", "B", "B", "B", "C", "C", "C", "D"]),
    # Ties across the limits: 95 and 95 would be A's 2 and 3: keeping both breaks "≤ 2", so both
    # become B (only 99 keeps A); 61 and 61 are both the lowest: both D (2 D's, ≥ 1).
    ([99, 95, 95, 93, 80, 80, 70, 65, 61, 61], ["A", "B", "B", "B", "B", "B", "C", "C", "D", "D"]),
])
def test_quotas_at_the_exact_boundary_and_with_ties(tmp_path: Path, scores: list[int], want: list[str]):
    firms = [firm(f"Q{i}", s) for i, s in enumerate(scores)]
    ev, alias = run(tmp_path, firms, one_indicator([population("all", "参评", {}, QUOTA_LINES)]))
    assert [row(ev, alias, f"Q{i}")["initial_grade"] for i in range(len(scores))] == want
    assert [row(ev, alias, f"Q{i}")["grade"] for i in range(len(scores))] == want


def test_quotas_apply_to_band_grades_too_and_bands_equal_cutoffs(tmp_path: Path):
    # 淮安 bands A 20 / B 40 / C 35 / D 5 % = cumulative 0.2 / 0.6 / 0.95 / 1.0.  20 firms 100 … 81:
    # rank r -> percentile r/20: A r ≤ 4, B ≤ 12, C ≤ 19, D r = 20.  A quota of 10 % keeps A for
    # ranks 1–2 (floor(0.1 × 20) = 2); ranks 3–4 become B.
    grading = {"within": "population", "bands": {"A": 0.2, "B": 0.4, "C": 0.35, "D": 0.05}, "rank_decimals": 6,
               "quotas": {"max_a_share": 0.1, "cite": CITE}, "cite": CITE}
    firms = [firm(f"R{r}", 101 - r) for r in range(1, 21)]
    ev, alias = run(tmp_path, firms, one_indicator([population("all", "参评", {}, grading)]))
    got = [row(ev, alias, f"R{r}")["grade"] for r in range(1, 21)]
    assert got == ["A"] * 2 + ["B"] * 10 + ["C"] * 7 + ["D"]


# ---------------------------------------------------------------- populations

CIXI = [  # 慈溪's four lists (规上; 规下 ≥ 3 亩; 规下 < 3 亩; tenants without land of their own)
    population("above", "规上", {"scale": ["规上"]}),
    population("tenant", "租赁", {"tenure": "tenant"}),
    population("below_large", "规下3亩以上", {"scale": ["规下"], "min_land_mu": 3}),
    population("below_small", "规下3亩以下", {"scale": ["规下"], "below_land_mu": 3}),
]


def test_a_tenant_firm_is_ranked_in_its_own_population(tmp_path: Path):
    # Tenants first (after 规上): T1 2 亩 all 租赁 (tax 3 -> 1.5 万元/亩 -> 15), T2 5 亩 all 租赁
    # (tax 5 -> 1 -> 10): 租赁 = {T1 15, T2 10} -> ranks 1, 2 of 2.
    # MIX has one 自有 and one 租赁 parcel: not a tenant; 3 + 3 = 6 亩 -> 规下3亩以上 with L1.
    #   MIX tax 30 / 6 = 5 -> 50; L1 tax 80 / 10 = 8 -> 80: ranks L1 1, MIX 2.
    # S1 2 亩 自有 (tax 1 -> 0.5 -> 5): 规下3亩以下 alone, rank 1 of 1.
    # UNK: its only parcel has no tenure: whether it is a tenant cannot be told -> not graded.
    # BIG (规上, 租赁 land) stays in 规上: the first population that holds wins.
    firms = [firm("T1", 3, scale="规下", parcels=[(2, "租赁")]), firm("T2", 5, scale="规下", parcels=[(5, "租赁")]),
             firm("MIX", 30, scale="规下", parcels=[(3, "自有"), (3, "租赁")]), firm("L1", 80, scale="规下"),
             firm("S1", 1, scale="规下", parcels=[(2, "自有")]), firm("UNK", 50, scale="规下", parcels=[(10, None)]),
             firm("BIG", 90, parcels=[(10, "租赁")])]
    ev, alias = run(tmp_path, firms, one_indicator(CIXI))
    got = {f: (row(ev, alias, f)["population"], row(ev, alias, f)["population_name"], row(ev, alias, f)["rank"],
               row(ev, alias, f)["population_size"]) for f in ("T1", "T2", "MIX", "L1", "S1", "BIG")}
    assert got == {"T1": ("tenant", "租赁", 1, 2), "T2": ("tenant", "租赁", 2, 2), "MIX": ("below_large", "规下3亩以上", 2, 2),
                   "L1": ("below_large", "规下3亩以上", 1, 2), "S1": ("below_small", "规下3亩以下", 1, 1),
                   "BIG": ("above", "规上", 1, 1)}
    assert math.isclose(row(ev, alias, "T1")["score"], 15.0) and row(ev, alias, "T1")["grade_group"] == "租赁"
    mix = row(ev, alias, "MIX")  # the facts the populations were told apart by are written out
    assert (mix["tenure"], mix["own_land_mu"], mix["leased_land_mu"], mix["land_mu"]) == ("自有", 3.0, 3.0, 6.0)
    assert row(ev, alias, "T1")["tenure"] == "租赁" and row(ev, alias, "UNK")["tenure"] is None
    unk = row(ev, alias, "UNK")
    assert unk["population"] is None and unk["grade"] is None and unk["grade_class"] is None
    assert unk["not_graded_reason"] == "缺少用地权属，无法判断是否属于参评群体“租赁”，不定等级。"
    # the workbook has a sheet per population, and one for the firm in none
    write_evaluation(ev, tmp_path / "out")
    book = pl.read_excel(tmp_path / "out" / "亩均效益评价_2022.xlsx", sheet_id=0)
    assert list(book)[:5] == ["规上", "租赁", "规下3亩以上", "规下3亩以下", "未归入参评群体"]
    assert book["租赁"].height == 2 and "评价方法" in book and "自有用地（亩）" in book["租赁"].columns


def test_small_park_firms_are_ranked_apart_and_the_flag_is_read_as_departments_write_it(tmp_path: Path):
    # The registry column 是否小微园 (a synonym of small_park) holds Y / 是 / 否 / empty; empty means 否.
    # 小微园 = {P1 40, P2 20}; 其他 = {O1 30, O2 10, O3 60}.
    pops = [population("park", "小微园", {"small_park": True}), population("other", "其他", {})]
    firms = [firm("P1", 40, park="Y"), firm("P2", 20, park="是"), firm("O1", 30, park="否"), firm("O2", 10),
             firm("O3", 60, park="N")]
    ev, alias = run(tmp_path, firms, one_indicator(pops), registry_extra="是否小微园")
    got = {f: (row(ev, alias, f)["population"], row(ev, alias, f)["rank"]) for f in ("P1", "P2", "O1", "O2", "O3")}
    assert got == {"P1": ("park", 1), "P2": ("park", 2), "O3": ("other", 1), "O1": ("other", 2), "O2": ("other", 3)}


def test_a_firm_in_no_population_is_listed_with_the_reason(tmp_path: Path):
    pops = [population("above", "规上", {"scale": ["规上"]})]
    ev, alias = run(tmp_path, [firm("A", 50), firm("B", 50, scale="规下")], one_indicator(pops))
    b = row(ev, alias, "B")
    assert b["population"] is None and b["grade"] is None and b["score"] is None
    assert b["not_graded_reason"] == "不属于评价方法 custom 的任何参评群体，不定等级。"
    assert ev.grade_counts()["未归入参评群体"]["not_graded"] == 1


# ---------------------------------------------------------------- T (暂不评价)

def test_t_class_with_reasons_under_huaian(tmp_path: Path):
    # 淮安: utilities (44–46) and firms producing < 2 years are T; a 规下 firm under 3 亩 is not
    # evaluated (no class); the others are graded in one list.
    # Baselines = 2 × Σnum/Σden over the eligible firms G1–G4 (10 亩, energy 5 tce each):
    #   亩均税收: tax 40, 30, 20, 10 -> Σ 100 / 40 亩 = 2.5 -> baseline 5
    #   亩均营业收入: revenue 100 each -> 400 / 40 = 10 -> baseline 20
    #   单位能耗税收: 100 / 20 tce = 5 -> baseline 10
    #   G1: 4/5×45 + 10/20×35 + 8/10×20 = 36 + 17.5 + 16 = 69.5 -> rank 1 of 4, percentile 0.25 > 0.20 -> B
    #   G2: 3/5×45 + 17.5 + 6/10×20 = 27 + 17.5 + 12 = 56.5 -> 2/4 = 0.50 ≤ 0.60 -> B
    #   G3: 2/5×45 + 17.5 + 4/10×20 = 18 + 17.5 + 8 = 43.5 -> 3/4 = 0.75 ≤ 0.95 -> C
    #   G4: 1/5×45 + 17.5 + 2/10×20 = 9 + 17.5 + 4 = 30.5 -> 4/4 = 1.00 -> D
    firms = [firm(f"G{i}", t) for i, t in enumerate([40, 30, 20, 10], start=1)]
    firms += [firm("UTIL", 50, industry="4430"), firm("NEW", 50, established="2021-06-01"),
              firm("SMALL", 5, scale="规下", parcels=[(2, "自有")])]
    ev, alias = run(tmp_path, firms, "huaian-2024", year=2022)
    grades = {f: (row(ev, alias, f)["grade"], row(ev, alias, f)["grade_class"]) for f in ("G1", "G2", "G3", "G4")}
    assert grades == {"G1": ("B", "B"), "G2": ("B", "B"), "G3": ("C", "C"), "G4": ("D", "D")}
    assert math.isclose(row(ev, alias, "G1")["score"], 69.5, rel_tol=1e-12)
    util, new, small = row(ev, alias, "UTIL"), row(ev, alias, "NEW"), row(ev, alias, "SMALL")
    assert (util["grade"], util["grade_class"]) == (None, "T")
    assert util["not_graded_reason"] == ("行业代码4430属于电力、热力、燃气及水生产和供应业（大类44、45、46），"
                                         "为水、电、气资源要素供给企业，列为T类（暂不评价）。")
    assert (new["grade"], new["grade_class"]) == (None, "T")
    assert new["not_graded_reason"] == "成立于2021-06-01，晚于2020-12-31，至2022年末不足2年，按投产不到2年的新办企业列为T类（暂不评价）。"
    assert (small["grade"], small["grade_class"]) == (None, None)
    assert small["not_graded_reason"] == "2022年用地2亩，不足3亩，规下企业不参加评价。"
    counts = ev.grade_counts()["参评"]
    assert (counts["evaluated"], counts["B"], counts["not_graded"], counts["T"]) == (7, 2, 3, 2)


# ---------------------------------------------------------------- method files

def _load(tmp_path: Path, data: dict[str, Any]) -> str:
    with pytest.raises(RuleSetError) as info:
        load_method(write_method(tmp_path, data))
    return str(info.value)


@pytest.mark.parametrize("change, expected", [
    (lambda m: m["populations"][0]["grading"].update(thresholds={"A": 60, "B": 75, "C": 90}),
     r"thresholds 必须严格递减（A > B > C）"),
    (lambda m: m["populations"][0]["grading"].update(cutoffs={"A": 0.2, "B": 0.6, "C": 0.95, "D": 1.0}),
     r"grading 应给出 cutoffs（累计名次比例）、bands（各等级比例）或 thresholds（分数线）三者之一，收到 cutoffs、thresholds"),
    (lambda m: m["populations"][0]["grading"].pop("thresholds") and m["populations"][0]["grading"].update(
        bands={"A": 0.2, "B": 0.4, "C": 0.3, "D": 0.05}), r"bands 各等级比例之和应为 1，收到 0\.95"),
    (lambda m: m["populations"][0]["grading"].update(quotas={"cite": CITE}),
     r"quotas 至少需要 max_a_share（A类最高比例）或 min_d_share（D类最低比例）之一"),
    (lambda m: m["populations"][0]["grading"].update(quotas={"max_a_share": 1.5, "cite": CITE}),
     r"populations\[0\]（all）\.grading\.quotas\.max_a_share 应不大于 1"),
    (lambda m: m["populations"][0]["when"].update(tenure="rented"), r"when\.tenure 取值应为 'own', 'tenant' 之一"),
    (lambda m: m["populations"][0]["when"].update(parks=True), r"when\.parks 是不认识的键（可用的键：scale、tenure"),
    (lambda m: m["populations"].append(copy.deepcopy(m["populations"][0])), r"populations 中 id 重复：all"),
    (lambda m: m["populations"][0]["indicators"][0]["baseline"].update(values={2022: {"value": 3, "cite": CITE}}),
     r"固定基准值应写 value（各年度通用）或 values"),
    (lambda m: m["populations"][0]["indicators"][0].update(baseline={"kind": "fixed", "values": {2022: {"value": 3}}}),
     r"baseline\.values\.2022\.cite 缺少必填项"),
    (lambda m: m.update(adjustments={**ADJ, "items": [{"id": "x", "name": "事故", "effect": "grade", "cite": CITE}]}),
     r"加减分项目 x 为一票否决（effect: grade），需要 grade（如 D）"),
    (lambda m: m.update(adjustments={**ADJ, "items": [{"id": "x", "name": "专利", "effect": "bonus", "grade": "A",
                                                        "cite": CITE}]}),
     r"加减分项目 x 不是一票否决，不应有 grade 或 mode"),
    (lambda m: m.update(adjustments={**ADJ, "items": ADJ["items"] + ADJ["items"][:1]}), r"加减分项目 id 重复：high_tech"),
    (lambda m: m.update(scales={}), r"populations 与 scales 只能给出一个"),
    (lambda m: m["scope"]["not_graded"].append({"kind": "industry_unknown", "reason": "x", "grade_class": "X",
                                                 "cite": CITE}), r"grade_class 取值应为 'T' 之一"),
])
def test_new_method_keys_are_checked_with_one_chinese_line(tmp_path: Path, change, expected):
    m = one_indicator(adjustments=copy.deepcopy(ADJ))
    change(m)
    message = _load(tmp_path, m)
    assert re.search(expected, message), message
    assert "\n" not in message


# ---------------------------------------------------------------- the command



def test_evaluate_command_reads_adjustments_from_the_data_directory(tmp_path: Path):
    alias = Aliases()
    firms = [firm("X", 88), firm("U", 95), firm("N", 70)]
    data = write_data(tmp_path / "data", firms, alias,
                      [{"id": "X", "item": "high_tech", "value": 3}, {"id": "U", "item": "serious_accident"},
                       {"id": "N", "item": "brand", "value": 1}])
    method = write_method(tmp_path / "m", one_indicator(adjustments=ADJ))
    out = tmp_path / "out"
    res = CliRunner().invoke(evaluate_app(), ["evaluate", "--data", str(data), "--year", "2022", "--method", str(method),
                                      "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "加减分：2 家企业有加减分或一票否决项目；一票否决改变等级 1 家" in res.output
    assert "拒收数据行：1 行" in res.output
    csv = pl.read_csv(out / "evaluation.csv", infer_schema_length=None, schema_overrides={"uscc": pl.String})
    for col in ("population", "population_name", "base_score", "adjustment", "score", "initial_grade", "grade",
                "grade_class", "adjustment_detail", "population_rank", "population_size", "population_percentile",
                "rank", "not_graded_reason"):
        assert col in csv.columns, col
    u = csv.filter(pl.col("uscc") == alias("U")).to_dicts()[0]
    assert (u["initial_grade"], u["grade"], u["grade_class"]) == ("A", "D", "D")
    rejects = pl.read_csv(out / "evaluation_rejects.csv")
    assert rejects["reason"].to_list() == ["加减分项目“brand”不是评价方法 custom 的项目（可用：high_tech、patent、"
                                           "energy_saving、env_penalty、serious_accident、dishonest）"]
    book = pl.read_excel(out / "亩均效益评价_2022.xlsx", sheet_id=0)
    assert {"加减分前得分", "加减分", "初评等级", "加减分说明"} <= set(book["参评"].columns)
    record = json.loads((out / "evaluation.json").read_text(encoding="utf-8"))
    assert record["inputs"]["adjustments"] == {"read": True, "rows_used": 2, "rows_rejected_by_method": 1,
                                               "rows_of_firms_not_evaluated": 0, "firms_adjusted": 2}
    assert record["inputs"]["files"]["adjustments"]["sha256"]
    assert record["counts"]["参评"]["T"] == 0


def test_evaluate_command_year_without_benchmark_exits_2(tmp_path: Path):
    res = CliRunner().invoke(evaluate_app(), ["evaluate", "--year", "2020", "--method", "huangyan-2022", "--out", str(tmp_path)])
    assert res.exit_code == 2
    assert "评价方法 huangyan-2022 没有 2020 年度数据适用的基准值" in res.output


@pytest.mark.e2e
def test_huaian_on_sample_data(tmp_path: Path):
    out = tmp_path / "out"
    res = CliRunner().invoke(evaluate_app(), ["evaluate", "--year", "2021", "--method", "huaian-2024", "--out", str(out),
                                      "--no-excel"])
    assert res.exit_code == 0, res.output
    ev = pl.read_parquet(out / "evaluation.parquet")
    graded = ev.filter(pl.col("grade").is_not_null())
    n = graded.height
    # bands 20/40/35/5 over the one list: A ≤ 20 % (+ ties), D the bottom 5 %
    assert graded.filter(pl.col("grade") == "A").height <= 0.2 * n + 1
    assert graded.filter(pl.col("grade") == "D").height >= 0.05 * n - 1
    t = ev.filter(pl.col("grade_class") == "T")
    assert t.height > 0 and t["grade"].null_count() == t.height
    assert t["not_graded_reason"].str.contains("T类").all()
    assert (ev.filter(pl.col("grade").is_not_null())["grade"] == ev.filter(pl.col("grade").is_not_null())["grade_class"]).all()


@pytest.mark.e2e
def test_the_sample_adjustments_move_grades_as_the_sample_readme_says(tmp_path: Path):
    # sample_data/adjustments/adjustments.csv (synthetic), 2021 data under huaian-2024:
    #   顺优 is just below the A line without 加减分 (B) and crosses it with +5;
    #   雅凯's 8 points are capped at the item's 5; 宇科's 2 + 3 + 5 = 10 = the total cap;
    #   奇东 (A) has a serious accident -> D.
    adjustments = Path(__file__).parents[1] / "sample_data" / "adjustments" / "adjustments.csv"
    plain, with_adj = tmp_path / "plain", tmp_path / "adj"
    for out, extra in ((plain, []), (with_adj, ["--adjustments", str(adjustments)])):
        res = CliRunner().invoke(evaluate_app(), ["evaluate", "--year", "2021", "--method", "huaian-2024", "--out", str(out),
                                          "--no-excel", *extra])
        assert res.exit_code == 0, res.output
    before = pl.read_parquet(plain / "evaluation.parquet")
    after = pl.read_parquet(with_adj / "evaluation.parquet")

    def of(frame: pl.DataFrame, name: str) -> dict[str, Any]:
        return frame.filter(pl.col("name") == name).to_dicts()[0]

    assert of(before, "乐清市顺优电气有限公司")["grade"] == "B" and of(after, "乐清市顺优电气有限公司")["grade"] == "A"
    assert of(after, "乐清市雅凯计量仪表制造有限公司")["adjustment"] == 5
    assert of(after, "浙江宇科流体设备科技有限公司")["adjustment"] == 10
    q = of(after, "乐清市奇东电表实业有限公司")
    assert (q["initial_grade"], q["grade"]) == ("A", "D")
    assert before["adjustment_detail"].null_count() == before.height  # nothing read without the option
    assert (before.filter(pl.col("base_score").is_not_null())["adjustment"] == 0).all()


def test_adjustments_are_read_only_on_request(tmp_path: Path):
    # a screening run never opens the 加减分 table (even a broken one); evaluate reads it when the
    # method has items, or when --adjustments names a file
    from screening.ingest import read_dir

    alias = Aliases()
    data = write_data(tmp_path / "data", [firm("A", 80)], alias)
    (data / "adjustments.csv").write_text("no,such,header\n", encoding="utf-8")
    assert "adjustments" not in read_dir(data, {"enterprises", "stats"})
    assert "adjustments" in read_dir(data, {"enterprises"}, optional={"adjustments"})
    runner = CliRunner()
    res = runner.invoke(evaluate_app(), ["evaluate", "--data", str(data), "--year", "2022", "--method",
                                 str(write_method(tmp_path / "m", one_indicator(adjustments=ADJ))), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "adjustments.csv" in res.output
    res = runner.invoke(evaluate_app(), ["evaluate", "--data", str(data), "--year", "2022", "--method",
                                 str(write_method(tmp_path / "m2", one_indicator())), "--out", str(tmp_path / "o2")])
    assert res.exit_code == 0, res.output  # a method without items does not read the table
    res = runner.invoke(evaluate_app(), ["evaluate", "--data", str(data), "--year", "2022", "--method",
                                 str(write_method(tmp_path / "m3", one_indicator())), "--out", str(tmp_path / "o3"),
                                 "--adjustments", str(data / "adjustments.csv")])
    assert res.exit_code == 2 and "评价方法 custom 没有加减分项目，不能使用加减分文件 adjustments.csv" in res.output
    res = runner.invoke(evaluate_app(), ["evaluate", "--data", str(data), "--year", "2022", "--method", "huaian-2024",
                                 "--out", str(tmp_path / "o4"), "--adjustments", str(tmp_path / "none.csv")])
    assert res.exit_code == 2 and "加减分文件不存在或不是文件" in res.output


def test_rule_2_with_computed_grades_names_the_year_without_divisors(tmp_path: Path):
    # the 2022 list reads grades of 2020 and 2021: huangyan-2022 has no 2020 divisors, so grades
    # computed under it for that list are refused with the method and the year (never a guess)
    from screening.evaluation import evaluation_grades
    from screening.ingest import read_dir
    from screening.validate import validate

    alias = Aliases()
    kw = dict(scale="规下", electricity=10.0)
    data = write_data(tmp_path / "data", [firm("F", 50, year=y, **kw) for y in (2020, 2021, 2022)], alias)
    inputs = validate(read_dir(data, {"enterprises", "stats", "tax", "land", "energy"}))
    m = load_method("huangyan-2022")
    with pytest.raises(RuleSetError, match="评价方法 huangyan-2022 没有 2020 年度数据适用的基准值"):
        evaluation_grades(inputs, [2020, 2021], m)
    grades = evaluation_grades(inputs, [2021, 2022], m)  # the 2023 list: both years have divisors
    assert grades["year"].to_list() == [2021, 2022]


def test_an_absurdly_large_adjustment_value_is_written_not_a_crash(tmp_path: Path):
    # A department's 分值 of 1e300 (a typing error) went into the Chinese note through a cast to a
    # 64-bit integer and stopped the whole evaluation ("InvalidOperationError").  The item cap of 3
    # still decides the points: base 80 + 3 = 83 -> B; the note names the value as written.
    firms = [firm("A", 80), firm("B", 50)]
    adj = [{"id": "A", "item": "high_tech", "value": 1e300}, {"id": "B", "item": "env_penalty", "value": 1e300}]
    ev, alias = run(tmp_path, firms, one_indicator(adjustments=ADJ), adjustments=adj)
    a = row(ev, alias, "A")
    assert a["adjustment"] == pytest.approx(3) and a["score"] == pytest.approx(83) and a["grade"] == "B"
    assert a["adjustment_detail"].startswith("高新技术企业加3分（1e+300分，超过单项上限，按3分计）"), a["adjustment_detail"]
    b = row(ev, alias, "B")  # no item cap, the total deduction capped (max_penalty is not set: the score is below 0)
    assert b["adjustment_detail"].startswith("环保处罚扣1e+300分"), b["adjustment_detail"]


def test_a_quotient_beyond_the_range_of_numbers_is_one_chinese_line_not_an_infinity(tmp_path: Path):
    # 实缴税金 1.7e308 on 0.5 亩: 亩均税收 = 3.4e308 is past the largest float (infinity).  The
    # workbook writer refused the infinity ("NAN/INF not supported"), an internal error after the
    # scores were made; now the evaluation stops first, naming the firm and the figure (exit 2).
    with pytest.raises(InputError) as caught:
        run(tmp_path, [firm("A", 1.7e308, land=0.5), firm("B", 50)], one_indicator())
    assert "测试企业A" in str(caught.value) and "亩均税收" in str(caught.value) and "超出数值范围" in str(caught.value)
    # two uncapped 加分 of 1e308 each sum past it too
    adj = {**ADJ, "max_bonus": None}
    adj["items"] = [{"id": "a", "name": "甲", "effect": "bonus", "cite": CITE},
                    {"id": "b", "name": "乙", "effect": "bonus", "cite": CITE}]
    with pytest.raises(InputError) as caught:
        run(tmp_path / "2", [firm("A", 80), firm("B", 50)], one_indicator(adjustments={k: v for k, v in adj.items() if v is not None}),
            adjustments=[{"id": "A", "item": "a", "value": 1e308}, {"id": "A", "item": "b", "value": 1e308}])
    assert "综合得分" in str(caught.value)


def test_a_group_average_baseline_past_the_range_of_numbers_is_one_chinese_line(tmp_path: Path):
    # Two firms at 实缴税金 1.7e308 on 10 亩 each: each 亩均税收 is finite, the group's Σ实缴税金
    # is not, so the average baseline was infinite and every firm scored 0 (all ranked equal).
    m = one_indicator()
    m["populations"][0]["indicators"][0]["baseline"] = {"kind": "group_average", "average": "ratio_of_sums",
                                                       "multiplier": 1.0}
    with pytest.raises(InputError, match="亩均税收”的基准值超出数值范围"):
        run(tmp_path, [firm("A", 1.7e308), firm("B", 1.7e308), firm("C", 50)], m)
