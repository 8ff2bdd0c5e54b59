"""亩均效益综合评价 (issue #3): method files, scores, grades, not-graded cases, files and command.

Firms are written as CSV files and go through the real path (ingestion -> validation ->
evaluation).  Every expected number is computed by hand in the comments.
"""
from __future__ import annotations

import json
import math
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from golden import Aliases, write_inputs
from typer.testing import CliRunner

from eval_helpers import evaluate_app
from screening.errors import InputError, RuleSetError
from screening.evaluation import (
    EvaluationWriter,
    _output_order,
    evaluate,
    evaluation_grades,
    load_evaluation_inputs,
    write_evaluation,
)
from screening.evaluation_method import load_method, methods_dir, shipped_methods
from screening.ingest import read_dir
from screening.paths import sample_data_dir
from screening.schema import TABLES
from screening.validate import validate

# huangyan-2022 carries 黄岩's divisors per data year (issue 16): these tests evaluate 2022
# data, so the 2022-data divisors below apply (the 2021 ones are pinned in test_evaluation_method.py)
YEAR = 2022
HY = {  # 黄岩 2022 divisors
    "tax_per_mu": 24.097, "value_added_per_mu": 136.16, "value_added_per_energy": 2.694,
    "value_added_per_emission": 4929.81, "labour_productivity": 18.14, "rd_intensity": 0.0302,
    "below_tax_per_mu": 11.5932, "tax_per_electricity": 0.2352,
}


# ---------------------------------------------------------------- helpers

def above(fid: str, k: float = 1.0, emission_k: float | None = 1.0, **extra: Any) -> dict[str, Any]:
    """A 规上 firm whose six 黄岩 indicators are k × the divisors (emission_k for emissions,
    None = no emission data).  VA = 1814 and 100 employees: 1814 / 100 = 18.14 exactly."""
    va = 1814.0 * k
    land = 1814.0 / HY["value_added_per_mu"]
    firm = {
        "id": fid, "scale": "规上", "value_added": va, "employees": 100, "revenue": 1000.0,
        "rd_expense": 1000.0 * HY["rd_intensity"] * k, "land_mu": land,
        "tax_paid": HY["tax_per_mu"] * land * k, "energy_tce": 1814.0 / HY["value_added_per_energy"],
        "electricity": 100.0,
    }
    if emission_k is not None:
        firm["emissions"] = va / (HY["value_added_per_emission"] * emission_k)
    firm.update(extra)
    return firm


def below(fid: str, k: float = 1.0, **extra: Any) -> dict[str, Any]:
    """A 规下 firm on 10 亩 at k × both 规下 divisors."""
    tax = HY["below_tax_per_mu"] * 10 * k
    firm = {"id": fid, "scale": "规下", "revenue": 500.0, "land_mu": 10.0, "tax_paid": tax,
            "electricity": HY["below_tax_per_mu"] * 10 / HY["tax_per_electricity"], "energy_tce": 50.0}
    firm.update(extra)
    return firm


STATS_FIELDS = ("revenue", "value_added", "employees", "rd_expense", "emissions")


def write_data(folder: Path, firms: list[dict[str, Any]], alias: Aliases) -> Path:
    tables: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}
    for f in firms:
        code = alias(f["id"])
        tables["enterprises"].append({"uscc": code, "name": f"测试企业{f['id']}", "township": "柳市镇",
                                      "industry_code": f.get("industry", "3823"), "established": f.get("established")})
        if f.get("scale"):
            tables["stats"].append({"uscc": code, "year": YEAR, "scale": f["scale"],
                                    **{k: f.get(k) for k in STATS_FIELDS}})
        if f.get("tax_paid") is not None:
            tables["tax"].append({"uscc": code, "year": YEAR, "tax_paid": f["tax_paid"]})
        if f.get("land_mu") is not None:
            tables["land"].append({"uscc": code, "year": YEAR, "parcel_id": f"P-{f['id']}",
                                   "area_mu": f["land_mu"], "tenure": "自有"})
        if f.get("energy_tce") is not None or f.get("electricity") is not None:
            tables["energy"].append({"uscc": code, "year": YEAR, "energy_tce": f.get("energy_tce"),
                                     "electricity": f.get("electricity")})
    write_inputs(tables, folder)
    return folder


def run(tmp: Path, firms: list[dict[str, Any]], method: str | Path = "huangyan-2022") -> tuple[pl.DataFrame, pl.DataFrame, Aliases]:
    alias = Aliases()
    m = load_method(method)
    data = write_data(tmp / "data", firms, alias)
    ev = evaluate(load_evaluation_inputs(data, YEAR, m), YEAR, m)
    return ev.scores, ev.items, alias


def row(scores: pl.DataFrame, alias: Aliases, fid: str) -> dict[str, Any]:
    rows = scores.filter(pl.col("uscc") == alias(fid)).to_dicts()
    assert len(rows) == 1, f"{fid}: {len(rows)} rows"
    return rows[0]


def item(items: pl.DataFrame, alias: Aliases, fid: str, indicator: str) -> dict[str, Any]:
    rows = items.filter((pl.col("uscc") == alias(fid)) & (pl.col("indicator") == indicator)).to_dicts()
    assert len(rows) == 1
    return rows[0]


# ---------------------------------------------------------------- 黄岩 formula

def test_huangyan_exactly_at_the_divisors_scores_100_and_half_scores_50(tmp_path: Path):
    # 30 + 20 + 20 + 10 + 10 + 10 = 100 at the divisors; every item halves at half of them.
    scores, items, alias = run(tmp_path, [above("AT"), above("HALF", k=0.5, emission_k=0.5),
                                          below("BAT"), below("BHALF", k=0.5)])
    assert math.isclose(row(scores, alias, "AT")["score"], 100.0, abs_tol=1e-6)
    assert math.isclose(row(scores, alias, "HALF")["score"], 50.0, abs_tol=1e-6)
    # 规下: 50 + 50 at 11.5932 万元/亩 and 0.2352 万元/万千瓦时; half the tax halves both
    assert math.isclose(row(scores, alias, "BAT")["score"], 100.0, abs_tol=1e-6)
    assert math.isclose(row(scores, alias, "BHALF")["score"], 50.0, abs_tol=1e-6)
    at = row(scores, alias, "AT")
    for ind, divisor in list(HY.items())[:6]:
        assert math.isclose(at[ind], divisor, rel_tol=1e-12)
    assert math.isclose(item(items, alias, "AT", "tax_per_mu")["item_score"], 30.0, abs_tol=1e-9)
    assert math.isclose(item(items, alias, "HALF", "value_added_per_energy")["item_score"], 10.0, abs_tol=1e-9)
    bat = item(items, alias, "BAT", "tax_per_electricity")
    assert bat["baseline"] == 0.2352 and bat["weight"] == 50 and bat["handling"] == "computed"
    # no cap in 黄岩: three times the divisor gives three times the weight
    scores, _, alias = run(tmp_path / "x3", [above("X3", k=3.0, emission_k=3.0)])
    assert math.isclose(row(scores, alias, "X3")["score"], 300.0, abs_tol=1e-6)


def test_missing_emissions_get_the_average_emission_item_score_of_above_scale_firms(tmp_path: Path):
    # Emission item (weight 10) of the 规上 firms that have emission data:
    #   E2 at 2× the divisor -> 20, E1 at the divisor -> 10, EH at half -> 5.
    # The utility U (10× -> 100) is not graded, so it is not in the reference group.
    # Average = (20 + 10 + 5) / 3 = 35/3 = 11.6667; M (no emission data, all else at the
    # divisors) scores 90 + 35/3 = 101.6667.
    firms = [above("E2", emission_k=2.0), above("E1"), above("EH", emission_k=0.5),
             above("U", emission_k=10.0, industry="4411"), above("M", emission_k=None)]
    scores, items, alias = run(tmp_path, firms)
    m = row(scores, alias, "M")
    assert m["value_added_per_emission"] is None
    assert math.isclose(m["value_added_per_emission_score"], 35 / 3, rel_tol=1e-12)
    assert math.isclose(m["score"], 90 + 35 / 3, rel_tol=1e-12)
    assert m["grade"] is not None and m["not_graded_reason"] is None
    it = item(items, alias, "M", "value_added_per_emission")
    assert it["data_status"] == "missing" and it["handling"] == "average_item_score"
    assert "缺少主要污染物排放量" in it["note"] and "平均得分11.6667" in it["note"]
    # the utility is evaluated (its score is computed) but not graded
    u = row(scores, alias, "U")
    assert math.isclose(u["score"], 190.0, rel_tol=1e-12) and u["grade"] is None and u["rank"] is None


def test_zero_denominators_follow_the_method(tmp_path: Path):
    # 黄岩 (our assumption): a 0 denominator is treated as missing data.
    #   规下 electricity 0 -> 单位电耗税收 missing -> not graded (missing policy of 规下).
    #   规上 emissions 0 -> missing -> the emission average item score: only E1 has one (10).
    firms = [below("B0", electricity=0.0), below("B1"), above("Z", emissions=0.0), above("E1")]
    scores, items, alias = run(tmp_path, firms)
    b0 = row(scores, alias, "B0")
    assert b0["grade"] is None and b0["rank"] is None
    assert b0["not_graded_reason"] == "以下指标无法评分，按本方法不定等级：单位电耗税收（用电量为0）。"
    assert b0["tax_per_electricity"] is None and b0["tax_per_electricity_score"] is None
    it = item(items, alias, "B0", "tax_per_electricity")
    assert (it["data_status"], it["handling"]) == ("zero_denominator", "not_graded")
    z = row(scores, alias, "Z")
    assert math.isclose(z["value_added_per_emission_score"], 10.0, rel_tol=1e-12)
    assert math.isclose(z["score"], 100.0, rel_tol=1e-12) and z["grade"] is not None
    assert item(items, alias, "Z", "value_added_per_emission")["note"].startswith("主要污染物排放量为0，按规上企业该项平均得分")


# ---------------------------------------------------------------- ranks and grades

def test_cutoffs_at_exact_boundaries_ten_distinct_scores(tmp_path: Path):
    # 黄岩 cut-offs (our assumption): A ≤ 20 %, B ≤ 60 %, C ≤ 95 %, D the rest.
    # 10 规下 firms with distinct scores: rank r has percentile r/10 ->
    #   r = 1, 2 -> A (0.1, 0.2 ≤ 0.2); 3–6 -> B (≤ 0.6); 7–9 -> C (≤ 0.95); 10 -> D.
    firms = [below(f"F{i}", k=1.0 + (10 - i) / 10) for i in range(1, 11)]
    scores, _, alias = run(tmp_path, firms)
    got = [(row(scores, alias, f"F{i}")["rank"], row(scores, alias, f"F{i}")["grade"]) for i in range(1, 11)]
    assert got == [(1, "A"), (2, "A"), (3, "B"), (4, "B"), (5, "B"), (6, "B"), (7, "C"), (8, "C"), (9, "C"), (10, "D")]
    assert sum(g == "A" for _, g in got) == 2
    assert row(scores, alias, "F2")["percentile"] == pytest.approx(0.2)
    assert set(scores["group_size"].drop_nulls().to_list()) == {10}


def test_ties_share_the_better_rank_and_grade(tmp_path: Path):
    # T2 and T3 have equal scores straddling the A cut-off (ranks 2 and 3 of 10).  rank =
    # 1 + number of firms with a strictly higher score, so both are rank 2, percentile
    # 0.2 -> both A (3 A's); the next firm is rank 4.  T3's tax is 1e-13 万元 above T2's
    # (floating-point noise): the scores differ around the 14th digit only and are compared
    # after rounding to 6 decimals, so they tie.
    ks = [2.0, 1.5, 1.5, 1.3, 1.2, 1.1, 1.0, 0.9, 0.8, 0.7]
    firms = [below(f"T{i}", k=k) for i, k in enumerate(ks, start=1)]
    firms[2]["tax_paid"] = firms[2]["tax_paid"] + 1e-13
    scores, _, alias = run(tmp_path, firms)
    r = {f"T{i}": row(scores, alias, f"T{i}") for i in range(1, 11)}
    assert r["T2"]["score"] != r["T3"]["score"]  # not bit-identical ...
    assert (r["T2"]["rank"], r["T3"]["rank"], r["T4"]["rank"]) == (2, 2, 4)  # ... but tied
    assert [r[f"T{i}"]["grade"] for i in range(1, 11)] == ["A", "A", "A", "B", "B", "B", "C", "C", "C", "D"]
    # the output is sorted by rank, ties by uscc
    graded = scores.filter(pl.col("rank").is_not_null())
    assert graded["rank"].to_list() == sorted(graded["rank"].to_list())


# ---------------------------------------------------------------- who is not graded

def test_not_graded_cases_and_their_reasons(tmp_path: Path):
    firms = [
        above("OK1"), above("OK2"),
        above("UTIL", industry="4411"),                       # 电力 utility
        above("NEW", established="2021-03-01"),               # after 2020-12-31: < 2 full years by end-2022
        above("OLD", established="2020-12-31"),               # boundary: graded
        below("SMALL", land_mu=2.99, tax_paid=2.99 * 11.5932),  # 规下 under 3 亩
        below("THREE", land_mu=3.0, tax_paid=3.0 * 11.5932),    # exactly 3 亩: graded
        below("NOLAND", land_mu=None),                        # 规下, land unknown
        below("NOTAX", tax_paid=None),                        # a needed value missing
        {"id": "NOSTATS", "tax_paid": 5.0, "land_mu": 4.0},    # data but no stats row: scale unknown
        above("TRADE", industry="5110"),                      # wholesale: not an industrial firm
        {"id": "IDLE"},                                       # in the registry, no 2022 data
    ]
    scores, _, alias = run(tmp_path, firms)
    reason = {f: row(scores, alias, f)["not_graded_reason"] for f in
              ("OK1", "OLD", "THREE", "UTIL", "NEW", "SMALL", "NOLAND", "NOTAX", "NOSTATS")}
    assert reason["OK1"] is None and reason["OLD"] is None and reason["THREE"] is None
    assert reason["UTIL"] == "行业代码4411属于电力、热力、燃气及水生产和供应业（大类44、45、46），为公用事业企业，参与计算但不定等级。"
    assert reason["NEW"] == "成立于2021-03-01，晚于2020-12-31，至2022年末经营不足2年，参与计算但不定等级。"
    assert reason["SMALL"] == "2022年用地2.99亩，不足3亩，规下企业不定等级。"
    assert reason["NOLAND"] == "缺少2022年用地数据（或其地块记录被拒收），无法判断是否达到3亩，不定等级。"
    assert reason["NOTAX"] == ("以下指标无法评分，按本方法不定等级：亩均税收（缺少实缴税金）；单位电耗税收（缺少实缴税金）。")
    assert reason["NOSTATS"] == "缺少2022年统计数据，无法确定规模，未参加评价。"
    for fid in ("UTIL", "NEW", "SMALL", "NOLAND", "NOTAX", "NOSTATS"):
        r = row(scores, alias, fid)
        assert r["grade"] is None and r["rank"] is None and r["grade_group"] is None, fid
    assert row(scores, alias, "NOSTATS")["scale"] is None
    assert math.isclose(row(scores, alias, "NEW")["score"], 100.0, abs_tol=1e-6)  # evaluated, not graded
    assert row(scores, alias, "SMALL")["score"] is not None
    # not industrial / no data in the year: not evaluated at all
    assert alias("TRADE") not in scores["uscc"].to_list() and alias("IDLE") not in scores["uscc"].to_list()
    # the graded 规上 group excludes UTIL and NEW: OK1, OK2, OLD
    assert row(scores, alias, "OK1")["group_size"] == 3


def test_rejected_parcel_makes_land_unknown(tmp_path: Path):
    alias = Aliases()
    data = write_data(tmp_path / "data", [below("B1"), below("B2")], alias)
    land = pl.read_csv(data / "land.csv", infer_schema=False)
    bad = pl.DataFrame({"uscc": [alias("B2")], "year": [str(YEAR)], "parcel_id": ["P-extra"], "area_mu": ["-1"],
                        "tenure": ["自有"]})
    pl.concat([land, bad.select(land.columns)]).write_csv(data / "land.csv")
    m = load_method("huangyan-2022")
    ev = evaluate(load_evaluation_inputs(data, YEAR, m), YEAR, m)
    b2 = ev.scores.filter(pl.col("uscc") == alias("B2")).to_dicts()[0]
    assert b2["land_mu"] is None and b2["grade"] is None and "地块记录被拒收" in b2["not_graded_reason"]
    assert ev.rejects.height == 1


# ---------------------------------------------------------------- the other options of a method file

def custom_method() -> dict[str, Any]:
    cite = {"source": "t", "clause": "测试"}
    return {
        "id": "custom", "version": "1", "title": "测试方法", "region": "测试", "data_year": None,
        "last_reviewed": "2026-11-27", "description": "测试用",
        "sources": {"t": {"issuer": "测试", "title": "测试", "published": "2026-01-01"}},
        "citation": cite,
        "scope": {"evaluated": {"division_min": 6, "division_max": 46, "cite": cite},
                  "not_graded": [{"kind": "divisions", "divisions": [44, 45, 46], "reason": "公用事业{industry_code}",
                                  "cite": cite}]},
        "scales": {
            "规上": {
                "indicators": [
                    {"id": "revenue_per_mu", "name": "亩均营业收入", "unit": "万元/亩",
                     "formula": {"numerator": "revenue", "denominator": "land_mu"}, "weight": 60,
                     "baseline": {"kind": "group_average", "average": "mean_of_values", "multiplier": 2.0},
                     "cite": cite},
                    {"id": "tax_per_electricity", "name": "单位电耗税收", "unit": "万元/万千瓦时",
                     "formula": {"numerator": "tax_paid", "denominator": "electricity"}, "weight": 40,
                     "baseline": {"kind": "group_average", "average": "ratio_of_sums"}, "cite": cite},
                ],
                "item_score": {"function": "ratio", "cap": 1.5, "cite": cite},
                "missing": {"policy": "zero", "cite": cite},
                "zero_denominator": {"policy": "zero", "cite": cite},
                "grading": {"within": "division", "min_group_size": 2, "pooled_group": "小行业合并",
                            "cutoffs": {"A": 0.25, "B": 0.5, "C": 0.75, "D": 1.0}, "rank_decimals": 6, "cite": cite},
            },
            "规下": {
                "indicators": [
                    {"id": "tax_per_mu", "name": "亩均税收", "unit": "万元/亩",
                     "formula": {"numerator": "tax_paid", "denominator": "land_mu"}, "weight": 100, "cite": cite},
                ],
                "item_score": {"function": "min_max", "floor": 0.2, "cite": cite},
                "missing": {"policy": "not_graded", "cite": cite},
                "zero_denominator": {"policy": "missing", "cite": cite},
                "grading": {"within": "custom", "groups": {"电气": ["38"], "仪表": ["4012"], "仪器": ["40"]},
                            "other_group": "其他", "min_group_size": 1, "pooled_group": "合并",
                            "cutoffs": {"A": 0.5, "B": 0.75, "C": 0.9, "D": 1.0}, "rank_decimals": 6, "cite": cite},
            },
        },
    }


def write_method(folder: Path, data: dict[str, Any], name: str = "custom") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def test_group_averages_cap_zero_policies_and_industry_groups(tmp_path: Path):
    # 规上, land 10 亩 each.  亩均营业收入: P1 10, P2 20, P3 60, P5 30, P4 missing revenue.
    #   baseline = 2 × mean(10, 20, 60, 30) = 2 × 30 = 60 -> items 10, 20, 60, 30; P4 0 (missing: zero).
    # 单位电耗税收: P1 10/10, P2 40/10, P4 40/20, P5 10/10; P3 electricity 0 (zero policy -> 0 points).
    #   baseline = Σtax/Σelectricity over P1, P2, P4, P5 = 100 / 50 = 2
    #   -> P1 1/2×40 = 20, P2 4/2×40 = 80 capped at 1.5×40 = 60, P4 40, P5 20.
    # Totals: P1 30, P2 80, P3 60, P4 40, P5 50.
    # Groups (within division, min size 2): 38 = {P2 80, P3 60, P1 30} -> ranks 1, 2, 3 of 3
    #   -> percentiles 1/3 (B), 2/3 (C), 1 (D); 29 and 34 have one firm each -> pooled
    #   "小行业合并" = {P5 50, P4 40} -> P5 1/2 = 0.5 (B), P4 1.0 (D).
    def p(fid, industry, revenue, tax, elec):
        return {"id": fid, "scale": "规上", "industry": industry, "revenue": revenue, "land_mu": 10.0,
                "tax_paid": tax, "electricity": elec, "energy_tce": 1.0}

    firms = [p("P1", "3823", 100.0, 10.0, 10.0), p("P2", "3823", 200.0, 40.0, 10.0), p("P3", "3821", 600.0, 20.0, 0.0),
             p("P4", "2929", None, 40.0, 20.0), p("P5", "3411", 300.0, 10.0, 10.0)]
    # 规下, min–max with floor 0.2 on 亩均税收 over the eligible firms: min 1, max 5.
    #   Q1 1 -> 100×0.2 = 20; Q2 3 -> 100×(0.2 + 0.8×0.5) = 60; Q3 5 -> 100; Q4 5 -> 100;
    #   Q6 2 -> 100×(0.2 + 0.8×0.25) = 40; the utility Q5 (10, outside the range) -> clipped to 100.
    # Custom groups, longest prefix first: 3823 -> 电气, 4012 -> 仪表, 4011 -> 仪器 (prefix 40), 2929 -> 其他.
    #   电气 = {Q2 60, Q1 20}: Q2 0.5 -> A, Q1 1.0 -> D.
    def q(fid, industry, tax, land):
        return {"id": fid, "scale": "规下", "industry": industry, "revenue": 100.0, "land_mu": land, "tax_paid": tax}

    firms += [q("Q1", "3823", 10.0, 10.0), q("Q2", "3823", 30.0, 10.0), q("Q3", "4012", 50.0, 10.0),
              q("Q4", "4011", 20.0, 4.0), q("Q5", "4411", 100.0, 10.0), q("Q6", "2929", 20.0, 10.0)]
    method = write_method(tmp_path / "m", custom_method())
    scores, items, alias = run(tmp_path, firms, method)
    got = {f: row(scores, alias, f) for f in ("P1", "P2", "P3", "P4", "P5", "Q1", "Q2", "Q3", "Q4", "Q5", "Q6")}
    for fid, want in {"P1": 30, "P2": 80, "P3": 60, "P4": 40, "P5": 50,
                      "Q1": 20, "Q2": 60, "Q3": 100, "Q4": 100, "Q5": 100, "Q6": 40}.items():
        assert math.isclose(got[fid]["score"], want, rel_tol=1e-12), (fid, got[fid]["score"])
    assert [(got[f]["grade_group"], got[f]["rank"], got[f]["grade"]) for f in ("P2", "P3", "P1", "P5", "P4")] == [
        ("38 电气机械和器材制造业", 1, "B"), ("38 电气机械和器材制造业", 2, "C"), ("38 电气机械和器材制造业", 3, "D"),
        ("小行业合并", 1, "B"), ("小行业合并", 2, "D")]
    assert [(got[f]["grade_group"], got[f]["grade"]) for f in ("Q2", "Q1", "Q3", "Q4", "Q6")] == [
        ("电气", "A"), ("电气", "D"), ("仪表", "D"), ("仪器", "D"), ("其他", "D")]
    assert got["Q5"]["grade"] is None and got["Q5"]["not_graded_reason"] == "公用事业4411"
    p2 = item(items, alias, "P2", "tax_per_electricity")
    assert p2["capped"] and p2["baseline"] == pytest.approx(2.0) and p2["item_score"] == pytest.approx(60.0)
    assert "按权重的1.5倍计60分" in p2["note"]
    p3 = item(items, alias, "P3", "tax_per_electricity")
    assert (p3["data_status"], p3["handling"], p3["item_score"]) == ("zero_denominator", "zero", 0.0)
    p4 = item(items, alias, "P4", "revenue_per_mu")
    assert (p4["data_status"], p4["handling"], p4["item_score"], p4["note"]) == ("missing", "zero", 0.0, "缺少营业收入，该项计0分")
    assert item(items, alias, "Q5", "tax_per_mu")["capped"]


# ---------------------------------------------------------------- method files

def test_shipped_methods_load_with_their_published_numbers():
    assert shipped_methods() == ["huaian-2024", "huangyan-2022", "yueqing-default"]
    hy = load_method("huangyan-2022")
    above_, below_ = hy.population("above_scale"), hy.population("below_scale")
    assert [(i.id, i.weight, i.baseline.value_for(2022)) for i in above_.indicators] == [
        ("tax_per_mu", 30, 24.097), ("value_added_per_mu", 20, 136.16), ("value_added_per_energy", 20, 2.694),
        ("value_added_per_emission", 10, 4929.81), ("labour_productivity", 10, 18.14), ("rd_intensity", 10, 0.0302)]
    assert [(i.id, i.weight, i.baseline.value_for(2022)) for i in below_.indicators] == [
        ("tax_per_mu", 50, 11.5932), ("tax_per_electricity", 50, 0.2352)]
    assert above_.item_score.cap is None and below_.item_score.cap is None
    assert above_.missing_policy(above_.indicators[3]).policy == "average_item_score"
    assert hy.sources["huangyan2023"].published.isoformat() == "2023-09-25"
    # the grade cut-offs are stated as our assumption, not the source's
    assert above_.grading.cite.source == "project_assumption" and "未公布" in above_.grading.cite.note
    yq = load_method(methods_dir() / "yueqing-default.yaml")  # a path works too
    assert yq.scales["规上"].item_score.cap == 2.0
    assert dict(yq.scales["规上"].grading.cutoffs) == {"A": 0.2, "B": 0.8, "C": 0.95, "D": 1.0}
    assert all(i.baseline.kind == "group_average" for s in yq.scales.values() for i in s.indicators)


LEGACY = Path(__file__).parent / "fixtures" / "methods_legacy"


@pytest.fixture
def huangyan_copy(tmp_path: Path) -> Path:
    """huangyan-2022 in the older ``scales:`` form (the shipped file now uses ``populations:``)."""
    target = tmp_path / "huangyan-2022.yaml"
    shutil.copy(LEGACY / "huangyan-2022.yaml", target)
    return target


def _edit(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


@pytest.mark.parametrize("change, expected", [
    (lambda d: d["scales"]["规上"]["indicators"][0].update(weigth=30),
     r"scales\.规上\.indicators\[0\]（tax_per_mu）\.weigth 是不认识的键（可用的键：id、name、unit、formula、weight"),
    (lambda d: d["scales"]["规上"]["indicators"][1].update(weight="abc"),
     r"scales\.规上\.indicators\[1\]（value_added_per_mu）\.weight 应为数字（收到 'abc'）"),
    (lambda d: d["scales"]["规下"]["indicators"][0]["formula"].update(numerator="profit"),
     r"formula\.numerator 取值应为 'tax_paid', 'value_added', 'revenue', 'rd_expense' 之一（收到 'profit'）"),
    (lambda d: d["scales"]["规上"]["indicators"][0]["formula"].update(numerator="revenue"),
     r"指标 tax_per_mu 是标准指标，公式应为 tax_paid ÷ land_mu，收到 revenue ÷ land_mu"),
    (lambda d: d["scales"]["规上"]["grading"].update(cutoffs={"A": 0.2, "B": 0.6, "C": 0.5, "D": 1.0}),
     r"grading cutoffs 必须严格递增（A < B < C < D）"),
    (lambda d: d["scales"]["规上"]["grading"].update(cutoffs={"A": 0.2, "B": 0.6, "C": 0.95}),
     r"cutoffs 应依次给出 A、B、C、D"),
    (lambda d: d["scales"]["规上"]["indicators"][0]["baseline"].update(kind="median"),
     r"baseline 的 kind 应为 'fixed', 'group_average' 之一，收到 'median'"),
    (lambda d: d["scales"]["规上"]["indicators"][0]["baseline"].update(value=-1),
     r"baseline\.value 应大于 0"),
    (lambda d: d["scope"]["not_graded"][1].update(divisions=["x"]),
     r"scope\.not_graded\[1\]（divisions）\.divisions\[0\] 应为整数（收到 'x'）"),
    (lambda d: d["scales"]["规上"]["indicators"][0]["cite"].update(source="nowhere"),
     r"引用了未定义的来源 nowhere"),
    (lambda d: d["scope"]["not_graded"][2].update(reason="成立于{founded}"),
     r"无法识别的占位符 \{founded\}"),
    (lambda d: d.pop("scales").pop("规下") and None,
     r"缺少必填项"),
    (lambda d: d["scales"].pop("规下"),
     r"scales 必须同时给出规上和规下，缺少 规下"),
    (lambda d: d.update(id="other"),
     r"id 为 other，应与文件名 huangyan-2022 一致"),
])
def test_method_file_errors_are_one_chinese_line_naming_file_and_key(huangyan_copy: Path, change, expected):
    _edit(huangyan_copy, change)
    with pytest.raises(RuleSetError) as info:
        load_method(huangyan_copy)
    message = str(info.value)
    assert message.startswith(str(huangyan_copy)), message
    assert re.search(expected, message), message
    assert "\n" not in message and message.endswith("随附的评价方法：huaian-2024、huangyan-2022、yueqing-default（也可给出 .yaml 文件路径）")


def test_unknown_method_and_bad_yaml(tmp_path: Path):
    with pytest.raises(RuleSetError, match=r"未知的评价方法 'huangyan-2099'；随附的评价方法：huaian-2024、huangyan-2022、yueqing-default"):
        load_method("huangyan-2099")
    with pytest.raises(RuleSetError, match="评价方法文件不存在"):
        load_method(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad\nscales: [\n", encoding="utf-8")
    with pytest.raises(RuleSetError, match="YAML 格式错误"):
        load_method(bad)


# ---------------------------------------------------------------- API for other rules

def test_evaluation_grades_has_the_shape_of_the_evaluations_table(tmp_path: Path):
    alias = Aliases()
    data = write_data(tmp_path / "data", [below("B1"), below("B2", k=0.5), below("SMALL", land_mu=1.0)], alias)
    m = load_method("huangyan-2022")
    inputs = validate({k: v for k, v in read_dir(data, m.needed_tables()).items() if k in m.needed_tables()})
    grades = evaluation_grades(inputs, [YEAR], m)
    assert grades.schema == pl.Schema({"firm_id": pl.UInt32, "year": pl.Int32, "grade": pl.String, "score": pl.Float64})
    # B1 rank 1 of 2 (percentile 0.5 -> B), B2 rank 2 (1.0 -> D); SMALL (1 亩) is not graded
    assert grades.height == 2 and sorted(grades["grade"].to_list()) == ["B", "D"]
    with pytest.raises(InputError, match="统计数据 stats 中没有 2020 年的数据"):
        evaluate(inputs, 2020, m)


# ---------------------------------------------------------------- the command, end to end on sample_data



def _expected_population(year: int) -> set[str]:
    """Industrial (大类 06–46) or unknown-industry firms with any row in the year (computed
    independently of the evaluation code, from the validated tables)."""
    inputs = validate(read_dir(sample_data_dir(), {"enterprises", "stats", "tax", "land", "energy"}),
                      keep_years={year})
    ids: set[int] = set(inputs.land_incomplete.filter(pl.col("year") == year)["firm_id"].to_list())
    for t in ("stats", "tax", "land", "energy"):
        ids |= set(inputs.tables[t].filter(pl.col("year") == year)["firm_id"].to_list())
    ent = inputs.tables["enterprises"].filter(pl.col("firm_id").is_in(sorted(ids)))
    div = ent["industry_code"].str.slice(0, 2).cast(pl.Int32, strict=False)
    return set(ent.filter(div.is_null() | div.is_between(6, 46))["uscc"].to_list())


@pytest.mark.e2e
@pytest.mark.parametrize("method", ["huangyan-2022", "yueqing-default"])
def test_evaluate_command_on_sample_data(tmp_path: Path, method: str):
    out = tmp_path / "out"
    result = CliRunner().invoke(evaluate_app(), ["evaluate", "--year", "2021", "--method", method, "--out", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("evaluation.csv", "evaluation.parquet", "evaluation_items.csv", "evaluation_items.parquet",
                 "亩均效益评价_2021.xlsx", "evaluation_rejects.csv", "evaluation.json"):
        assert (out / name).is_file(), name
    assert (out / "evaluation.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    csv = pl.read_csv(out / "evaluation.csv", infer_schema_length=None, schema_overrides={"uscc": pl.String})
    ev = pl.read_parquet(out / "evaluation.parquet")
    indicators = ["tax_per_mu", "value_added_per_mu", "value_added_per_energy", "value_added_per_emission",
                  "labour_productivity", "rd_intensity", "tax_per_electricity"]
    for col in ["uscc", "scale", *indicators, "score", "rank", "grade", "not_graded_reason"]:
        assert col in ev.columns and col in csv.columns, col
    assert csv.height == ev.height and ev["uscc"].n_unique() == ev.height
    assert set(ev["uscc"].to_list()) == _expected_population(2021)
    assert set(ev["grade"].unique().to_list()) <= {"A", "B", "C", "D", None}
    assert set(ev["scale"].unique().to_list()) == {"规上", "规下", None}
    graded = ev.filter(pl.col("grade").is_not_null())
    assert graded["not_graded_reason"].null_count() == graded.height
    assert ev.filter(pl.col("grade").is_null())["not_graded_reason"].null_count() == 0
    # D is the bottom 5 % of each scale (A ≤ 20 % in both shipped methods)
    for scale in ("规上", "规下"):
        g = graded.filter(pl.col("scale") == scale)
        assert g.filter(pl.col("grade") == "A").height <= 0.2 * g.height + 1
        assert g.filter(pl.col("grade") == "D").height >= 0.05 * g.height - 1
    items = pl.read_parquet(out / "evaluation_items.parquet")
    expected_items = 6 * ev.filter(pl.col("scale") == "规上").height + 2 * ev.filter(pl.col("scale") == "规下").height
    assert items.height == expected_items
    assert {"uscc", "indicator", "value", "baseline", "item_score", "weight", "handling", "data_status"} <= set(items.columns)
    sums = items.group_by("uscc").agg(pl.col("item_score").sum().alias("s"), pl.col("item_score").null_count().alias("n"))
    check = ev.join(sums, on="uscc").filter(pl.col("n") == 0)
    assert (check["score"] - check["s"]).abs().max() < 1e-9
    book = pl.read_excel(out / "亩均效益评价_2021.xlsx", sheet_id=0)
    assert list(book)[:2] == ["规上", "规下"] and "评价方法" in book
    assert book["规上"].columns[:5] == ["排名", "等级", "综合得分", "企业名称", "统一社会信用代码"]
    assert book["规上"].height == ev.filter(pl.col("scale") == "规上").height
    with zipfile.ZipFile(out / "亩均效益评价_2021.xlsx") as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
        assert 'ySplit="1"' in sheet and 'xSplit="4"' in sheet  # frozen header (and rank … name)
    assert "拒收数据行" in result.output and "A" in result.output


def test_evaluate_command_without_workbook(tmp_path: Path):
    out = tmp_path / "out"
    result = CliRunner().invoke(evaluate_app(), ["evaluate", "--year", "2021", "--out", str(out), "--no-excel"])
    assert result.exit_code == 0, result.output
    assert (out / "evaluation.csv").is_file() and not (out / "亩均效益评价_2021.xlsx").exists()
    record = json.loads((out / "evaluation.json").read_text(encoding="utf-8"))
    assert record["method"]["id"] == "yueqing-default" and "excel" not in record["outputs"]
    assert set(record["counts"]) == {"规上", "规下", "规模不明"} and record["baselines"]


def test_evaluate_command_errors_exit_2_with_one_line(tmp_path: Path):
    runner = CliRunner()
    res = runner.invoke(evaluate_app(), ["evaluate", "--year", "2021", "--method", "nope", "--out", str(tmp_path)])
    assert res.exit_code == 2
    assert "未知的评价方法 'nope'；随附的评价方法：huaian-2024、huangyan-2022、yueqing-default" in res.output
    res = runner.invoke(evaluate_app(), ["evaluate", "--year", "2021", "--data", str(tmp_path / "none"), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "数据目录不存在" in res.output
    res = runner.invoke(evaluate_app(), ["evaluate", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "缺少 --year" in res.output
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "enterprises.csv").write_text("uscc,name\n", encoding="utf-8")
    res = runner.invoke(evaluate_app(), ["evaluate", "--year", "2021", "--data", str(tmp_path / "d"), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "缺少表 stats（统计数据）" in res.output
    shutil.copytree(sample_data_dir(), tmp_path / "s")
    (tmp_path / "s" / "enterprises.csv").write_text("uscc,name\n", encoding="utf-8")
    res = runner.invoke(evaluate_app(), ["evaluate", "--year", "2021", "--data", str(tmp_path / "s"), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "enterprises.csv：缺少必需列" in res.output
    res = runner.invoke(evaluate_app(), ["evaluate", "--year", "2030", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "统计数据 stats 中没有 2030 年的数据" in res.output
    assert all(r.output.count("\n") == 1 for r in [res])


# ------------------------------------------------------------------ issue 15: the same result, faster

def test_year_slice_kept_by_validation_gives_the_same_evaluation(tmp_path: Path):
    """Tables validated with keep_years={Y} are used as they are (not filtered and copied again);
    the evaluation equals the one from every year's rows."""
    m = load_method("yueqing-default")
    files = lambda: read_dir(sample_data_dir(), m.needed_tables(), m.optional_tables())  # noqa: E731
    whole = evaluate(validate(files()), 2021, m)
    sliced = evaluate(validate(files(), keep_years={2021}), 2021, m)
    assert sliced.scores.equals(whole.scores) and sliced.items.equals(whole.items)
    assert sliced.baselines.equals(whole.baselines)


def test_each_file_is_written_on_its_own_and_equals_its_frame(tmp_path: Path):
    """evaluation.csv/.parquet and evaluation_items.csv/.parquet are written side by side, one
    job per file (timed each in evaluation.json); each is exactly its frame written alone."""
    from screening.csvsafe import csv_bytes

    m = load_method("huangyan-2022")
    ev = evaluate(load_evaluation_inputs(sample_data_dir(), 2021, m), 2021, m)
    write_evaluation(ev, tmp_path, excel=False)
    for name, frame in (("evaluation", ev.scores), ("evaluation_items", ev.items)):
        frame = frame.drop("firm_id")
        assert (tmp_path / f"{name}.csv").read_bytes() == csv_bytes(frame), name
        back = pl.read_parquet(tmp_path / f"{name}.parquet")
        assert back.columns == frame.columns and back.equals(frame.with_columns(
            pl.col(c).cast(back.schema[c]) for c in frame.columns if back.schema[c] != frame.schema[c])), name
    timings = json.loads((tmp_path / "evaluation.json").read_text(encoding="utf-8"))["timings_s"]
    assert {f"写出 {n}" for n in ("evaluation.csv", "evaluation.parquet", "evaluation_items.csv",
                                   "evaluation_items.parquet")} <= set(timings)


def test_a_table_without_rows_of_the_year_is_a_warning_not_an_error():
    """The year checks (no copy of the year's rows): an empty energy table, or one with other
    years only, warns that its indicators are all missing; tables with the year do not."""
    m = load_method("yueqing-default")
    inputs = validate(read_dir(sample_data_dir(), m.needed_tables(), m.optional_tables()))
    for energy in (inputs.tables["energy"].clear(), inputs.tables["energy"].filter(pl.col("year") != 2021)):
        inputs.tables["energy"] = energy
        warnings = evaluate(inputs, 2021, m).warnings
        assert "energy 中没有 2021 年的数据，用到它的指标全部按缺数据处理" in warnings
        assert not any(w.startswith(("tax 中没有", "land 中没有")) for w in warnings)


@pytest.mark.parametrize("populations", [2, 4])
def test_output_order_packed_key_and_general_sort_agree_with_the_documented_order(populations: int):
    """Issue 15: evaluation.csv's row order (population in the method's order, firms in no
    population last; ranking group alphabetically, rank with the not graded last, firm_id) is
    computed from the four key columns alone: as one packed 64-bit key (up to 3 populations)
    or as a sort by the four columns (more).  Both give exactly the order written out by hand."""
    import random
    from types import SimpleNamespace

    rng = random.Random(populations)
    n = 400
    ids = rng.sample(range(1, 10_000), n)
    frame = pl.DataFrame({
        "_pop": [rng.choice([None, -1, -2, *range(populations)]) for _ in range(n)],
        "grade_group": [rng.choice([None, "乙组", "甲组", "B", "a"]) for _ in range(n)],
        "rank": [rng.choice([None, *range(1, 30)]) for _ in range(n)],
        "firm_id": ids,
    }, schema={"_pop": pl.Int32, "grade_group": pl.String, "rank": pl.Int64, "firm_id": pl.UInt32})
    method = SimpleNamespace(population_list=[object()] * populations)

    def key(r: dict[str, Any]) -> tuple:
        placed = r["_pop"] is not None and r["_pop"] >= 0
        return (r["_pop"] if placed else populations, r["grade_group"] is None, r["grade_group"] or "",
                r["rank"] is None, r["rank"] or 0, r["firm_id"])

    want = sorted(range(n), key=lambda i: key(frame.row(i, named=True)))
    assert _output_order(frame, method).to_list() == want


def _other_year_rows(path: Path) -> set[tuple[str, int]]:
    """(file, row) of a CSV's rows whose year cell is plainly another valid year than YEAR."""
    raw = pl.read_csv(path, infer_schema=False)
    year = raw["year"]
    plain = year.str.contains(r"^[0-9]{4}$").fill_null(False) & (year != str(YEAR)).fill_null(False)
    return {(path.name, i + 2) for i in plain.arg_true().to_list()}


def test_evaluation_reads_only_the_years_rows_and_reports_their_problems_as_before(tmp_path: Path):
    """An evaluation of year Y leaves a row of another valid year out as it is read (a
    province's history would triple the work of reading and checking).  Every problem of a
    row of Y, and of a row whose year cannot be told (empty, out of range, full-width digits),
    is reported exactly as when every row is checked; the evaluation is the same."""
    alias = Aliases()
    data = write_data(tmp_path / "data", [above("A1"), above("A2", 0.5), below("B1"), below("B2", 2.0)], alias)
    stats = pl.read_csv(data / "stats.csv", infer_schema=False)
    extra = [  # uscc, year, revenue: problems in rows of Y, of another year, and of no readable year
        (alias("A1"), str(YEAR - 1), "abc"), (alias("A1"), str(YEAR - 2), "1000"), (alias("A2"), str(YEAR - 1), "900"),
        (alias("A1"), str(YEAR), "1000"),  # a duplicate of Y's row
        ("91330382MA2XXXXX0X", str(YEAR), "5"), ("91330382MA2XXXXX0X", str(YEAR - 1), "5"),  # not in the registry
        (alias("A2"), str(YEAR * 10), "5"), (alias("A2"), "", "5"),  # year out of range, missing
        (alias("B1"), "２０２１", "-5"), (alias("B1"), f" {YEAR - 1}", "x"),  # read, normalised and checked
    ]
    rows = pl.DataFrame([{"uscc": u, "year": y, "scale": "规上", "revenue": r} for u, y, r in extra])
    pl.concat([stats, rows], how="diagonal").write_csv(data / "stats.csv")
    land = pl.read_csv(data / "land.csv", infer_schema=False)
    bad_parcel = pl.DataFrame({"uscc": [alias("B2")], "year": [str(YEAR - 1)], "parcel_id": ["P-old"],
                               "area_mu": ["-1"], "tenure": ["自有"]})
    pl.concat([land, bad_parcel.select(land.columns)]).write_csv(data / "land.csv")

    m = load_method("yueqing-default")
    fast = load_evaluation_inputs(data, YEAR, m)
    every = validate(read_dir(data, m.needed_tables(), m.optional_tables()), keep_years={YEAR})
    skipped = _other_year_rows(data / "stats.csv") | _other_year_rows(data / "land.csv")
    assert len(skipped) == 5
    kept = every.rejects.filter(~pl.struct("file", "row").is_in(
        pl.DataFrame(sorted(skipped), schema={"file": pl.String, "row": pl.Int64}, orient="row").to_struct().implode()))
    assert kept.height < every.rejects.height  # the other years' problems were reported before
    assert fast.rejects.equals(kept)
    # Y's duplicate and unknown code; the year out of range, missing, full-width, with a space
    assert fast.rejects.select("file", "row").rows() == [("stats.csv", r) for r in (9, 10, 12, 13, 14, 15)]
    counts = fast.row_counts()
    assert counts["stats"]["other_years"] == 4 and counts["land"]["other_years"] == 1
    assert counts["stats"]["read"] == every.row_counts()["stats"]["read"] - 4
    assert fast.land_incomplete.filter(pl.col("year") == YEAR).equals(
        every.land_incomplete.filter(pl.col("year") == YEAR))
    ev_fast, ev_every = evaluate(fast, YEAR, m), evaluate(every, YEAR, m)
    assert ev_fast.scores.equals(ev_every.scores) and ev_fast.items.equals(ev_every.items)
    assert ev_fast.baselines.equals(ev_every.baselines)


def test_parquet_rows_of_other_years_are_left_out_unread(tmp_path: Path):
    """The same for a Parquet file (an integer year column): rows of other valid years are
    counted, not read; a row with an impossible year is read and rejected as before."""
    alias = Aliases()
    data = write_data(tmp_path / "data", [above("A1"), below("B1"), below("B2", 2.0)], alias)
    for name in ("stats", "tax"):
        frame = pl.read_csv(data / f"{name}.csv", infer_schema=False).with_columns(pl.col("year").cast(pl.Int64))
        older = frame.with_columns(pl.lit(YEAR - 1, dtype=pl.Int64).alias("year"))
        odd = frame.head(1).with_columns(pl.lit(99, dtype=pl.Int64).alias("year"))
        pl.concat([older, frame, odd]).write_parquet(data / f"{name}.parquet")
        (data / f"{name}.csv").unlink()
    # a text year column: "2021" of another year left out; "2022年" read and rejected as before
    energy = pl.read_csv(data / "energy.csv", infer_schema=False)
    odd_text = energy.head(1).with_columns(pl.lit(f"{YEAR}年").alias("year"))
    pl.concat([energy.with_columns(pl.lit(str(YEAR - 1)).alias("year")), energy, odd_text]).write_parquet(
        data / "energy.parquet")
    (data / "energy.csv").unlink()
    m = load_method("yueqing-default")
    fast = load_evaluation_inputs(data, YEAR, m)
    every = validate(read_dir(data, m.needed_tables(), m.optional_tables()), keep_years={YEAR})
    counts = fast.row_counts()
    assert counts["stats"]["other_years"] == 3 and counts["tax"]["other_years"] == 3
    assert counts["energy"]["other_years"] == 3
    # the two year-99 rows and the "2022年" one, numbered as the file counts them
    assert fast.rejects.select("file", "row").rows() == [("energy.parquet", 8), ("stats.parquet", 8),
                                                         ("tax.parquet", 8)]
    assert fast.rejects.equals(every.rejects)
    ev_fast, ev_every = evaluate(fast, YEAR, m), evaluate(every, YEAR, m)
    assert ev_fast.scores.equals(ev_every.scores) and ev_fast.items.equals(ev_every.items)
    out = tmp_path / "out"
    result = CliRunner().invoke(evaluate_app(), ["evaluate", "--data", str(data), "--year", str(YEAR), "--method",
                                                 "yueqing-default", "--out", str(out), "--no-excel"])
    assert result.exit_code == 0, result.output
    assert f"（只读取与校验 {YEAR} 年的数据行，其他年度的 9 行未读取）" in result.output
    record = json.loads((out / "evaluation.json").read_text(encoding="utf-8"))["inputs"]
    assert record["other_year_rows"] == 9 and record["row_counts"]["stats"]["other_years"] == 3


def test_items_csv_is_left_out_when_a_spreadsheet_could_not_open_it(tmp_path: Path, monkeypatch):
    """evaluation_items.csv is written while its rows fit in one sheet of Excel/WPS (1,048,575
    rows under the header); above that (a province: 3.4 M rows) only evaluation_items.parquet
    is written, and the terminal and evaluation.json say so.  The limit is lowered here to the
    sample's item rows."""
    import screening.spreadsheet

    m = load_method("yueqing-default")
    rows = evaluate(load_evaluation_inputs(sample_data_dir(), 2021, m), 2021, m).items.height
    for limit, written in ((rows, True), (rows - 1, False)):
        monkeypatch.setattr(screening.spreadsheet, "MAX_SHEET_ROWS", limit)
        out = tmp_path / f"out{limit}"
        result = CliRunner().invoke(evaluate_app(), ["evaluate", "--year", "2021", "--method", "yueqing-default",
                                                     "--out", str(out), "--no-excel"])
        assert result.exit_code == 0, result.output
        assert (out / "evaluation_items.csv").is_file() is written
        assert (out / "evaluation_items.parquet").is_file() and (out / "evaluation.csv").is_file()
        assert pl.read_parquet(out / "evaluation_items.parquet").height == rows
        record = json.loads((out / "evaluation.json").read_text(encoding="utf-8"))
        said = [w for w in record["warnings"] if "未写出 evaluation_items.csv" in w]
        listed = [Path(p).name for p in record["outputs"]["items"]]
        if written:
            assert not said and listed == ["evaluation_items.csv", "evaluation_items.parquet"]
            assert "evaluation_items.csv/.parquet" in result.output
        else:
            assert said == [f"得分明细共 {rows:,} 行，超过 Excel/WPS 一张工作表能打开的 {limit + 1:,} 行，"
                            "未写出 evaluation_items.csv；完整的得分明细在 evaluation_items.parquet 中"
                            "（每家企业的各项得分也在 evaluation.csv 中）"]
            assert listed == ["evaluation_items.parquet"]
            assert "未写出 evaluation_items.csv" in result.output.replace("\n", "")
            assert "evaluation_items.csv/.parquet" not in result.output


def _same_files(a: Path, b: Path) -> None:
    """The files of two evaluation folders are the same: CSV byte for byte, Parquet row for
    row with the same types, the workbook's sheets byte for byte (its creation time aside)."""
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        if name.endswith(".csv"):
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
        elif name.endswith(".parquet"):
            x, y = pl.read_parquet(a / name), pl.read_parquet(b / name)
            assert x.schema == y.schema and x.equals(y), name
        elif name.endswith(".xlsx"):
            with zipfile.ZipFile(a / name) as za, zipfile.ZipFile(b / name) as zb:
                parts = [n for n in za.namelist() if not n.startswith("docProps")]
                assert parts == [n for n in zb.namelist() if not n.startswith("docProps")]
                assert all(za.read(n) == zb.read(n) for n in parts), name


@pytest.mark.parametrize("method", ["huangyan-2022", "huaian-2024", "yueqing-default"])
def test_files_are_begun_while_the_scores_are_computed_and_are_the_same(tmp_path: Path, monkeypatch, method: str):
    """Issue 15: the command's computation leaves a core idle.  Each population's scores are
    put in order as soon as they are computed and handed over (``evaluate(scores_ready=)`` →
    ``EvaluationWriter.add_scores``: evaluation.csv is written part by part while the next
    population is scored); the item rows are complete before the last population is put in
    order, so their files are begun then (``items_ready`` → ``start_items``).  What is handed
    over is the evaluation's own, and every file (workbook included) is the same as
    ``write_evaluation`` of the finished evaluation."""
    import screening.evaluation as evaluation

    m = load_method(method)
    inputs = load_evaluation_inputs(sample_data_dir(), 2021, m)
    whole = evaluate(inputs, 2021, m)
    write_evaluation(whole, tmp_path / "whole")

    events: list[str] = []
    order = evaluation._output_order
    monkeypatch.setattr(evaluation, "_output_order", lambda *a: events.append("order") or order(*a))
    items_handed: list[pl.DataFrame] = []
    parts: list[pl.DataFrame] = []
    with EvaluationWriter(tmp_path / "early", final=tmp_path / "final") as writer:
        def items_ready(items: pl.DataFrame) -> None:
            items_handed.append(items)
            writer.start_items(items)
            events.append(f"items begun: {sorted(writer._jobs)}")

        def scores_ready(part: pl.DataFrame) -> None:
            parts.append(part)
            writer.add_scores(part)
            events.append("scores part")

        ev = evaluate(inputs, 2021, m, items_ready=items_ready, scores_ready=scores_ready)
        written = writer.finish(ev)
    populations = len(m.population_list)
    assert events == (["order", "scores part"] * (populations - 1)
                      + ["items begun: ['写出 evaluation_items.csv', '写出 evaluation_items.parquet']",
                         "order", "scores part", "scores part"])  # the last: the firms in no population
    assert len(items_handed) == 1 and items_handed[0] is ev.items and ev.items.equals(whole.items)
    assert ev.scores.equals(whole.scores) and pl.concat(parts, how="vertical_relaxed").equals(ev.scores)
    assert all(part.columns == ev.scores.columns for part in parts)
    _same_files(tmp_path / "whole", tmp_path / "early")
    assert all(Path(p).parent == tmp_path / "final" for paths in written.values() for p in paths)
    timings = json.loads((tmp_path / "early" / "evaluation.json").read_text(encoding="utf-8"))["timings_s"]
    assert {"写出 evaluation_items.parquet", "写出 evaluation.csv", "写出 Excel", "写出合计"} <= set(timings)


def test_scores_parts_unlike_the_whole_are_written_anew(tmp_path: Path):
    """evaluation.csv written part by part is kept only when the parts are the scores' rows with
    the scores' column types (a column of nulls writes the same whatever its type); otherwise
    (a part whose numbers were integers where the whole has decimals would print ``3`` for
    ``3.0``) the file is written anew from the whole frame: the bytes never differ."""
    m = load_method("yueqing-default")
    ev = evaluate(load_evaluation_inputs(sample_data_dir(), 2021, m), 2021, m)
    write_evaluation(ev, tmp_path / "whole")
    first, rest = ev.scores.head(5), ev.scores.slice(5)
    odd = first.with_columns(pl.col("rank").cast(pl.Float64))  # "1.0" where the whole writes "1"
    empty = [c for c in first.columns if first[c].is_null().all()]  # as a part lacking them has them
    assert empty
    nulls = first.with_columns(pl.lit(None).alias(c) for c in empty)
    for name, parts, kept in (("same", [first, rest], True), ("nulls", [nulls, rest], True),
                              ("odd", [odd, rest], False), ("short", [first], False)):
        with EvaluationWriter(tmp_path / name, excel=False) as writer:
            for part in parts:
                writer.add_scores(part)
            streamed = writer._scores_csv
            writer.finish(ev)
        assert streamed.matches(ev.scores.drop("firm_id")) is kept, name
        assert (tmp_path / name / "evaluation.csv").read_bytes() == (tmp_path / "whole" / "evaluation.csv").read_bytes()


def test_released_inputs_give_the_same_evaluation_and_keep_counts_and_rejects():
    """``evaluate(release_inputs=True)`` (the command) drops the validated rows once the firms'
    figures are taken (~0.6 GB at province scale): the evaluation is the same — 加减分 read
    from the adjustments table included — and what the record needs (files, counts, rejects)
    stays; without it the inputs are left as they were."""
    m = load_method("huaian-2024")
    adjustments = sample_data_dir() / "adjustments" / "adjustments.csv"
    kept = load_evaluation_inputs(sample_data_dir(), 2021, m, adjustments)
    before = {name: frame.height for name, frame in kept.tables.items()}
    reference = evaluate(kept, 2021, m)
    assert {name: frame.height for name, frame in kept.tables.items()} == before

    released = load_evaluation_inputs(sample_data_dir(), 2021, m, adjustments)
    ev = evaluate(released, 2021, m, release_inputs=True)
    assert before["adjustments"] and all(frame.height == 0 for frame in released.tables.values())
    assert ev.scores["adjustment_detail"].is_not_null().any()
    for a, b in ((ev.scores, reference.scores), (ev.items, reference.items), (ev.baselines, reference.baselines),
                 (ev.rejects, reference.rejects)):
        assert a.equals(b)
    assert ev.inputs_info == reference.inputs_info and ev.warnings == reference.warnings
    assert released.row_counts() == kept.row_counts() and released.rejects.equals(kept.rejects)


def test_an_error_after_the_item_files_are_begun_leaves_no_file_and_no_thread(tmp_path: Path, monkeypatch):
    """The item files are begun before the scores are checked: a figure out of range found
    then is still one Chinese line (exit 2), and the command waits for the files begun before
    removing its staging folder — no file, no folder, no writer thread is left."""
    import threading

    import screening.evaluation as evaluation

    def out_of_range(*args):
        raise InputError("2021年 某企业的综合得分超出数值范围")

    monkeypatch.setattr(evaluation, "_check_finite", out_of_range)
    threads = threading.active_count()
    out = tmp_path / "out"
    result = CliRunner().invoke(evaluate_app(), ["evaluate", "--year", "2021", "--method", "huangyan-2022",
                                                 "--out", str(out), "--no-excel"])
    assert result.exit_code == 2 and "超出数值范围" in result.output
    assert not out.exists() and threading.active_count() == threads


def test_a_failure_writing_a_part_of_evaluation_csv_is_one_line_and_leaves_nothing(tmp_path: Path, monkeypatch):
    """evaluation.csv is written part by part on a thread of its own: a disk that fills while a
    later part is written reaches the command line's handler (one Chinese line, exit 1) once every
    file begun is done; no file, folder or writer thread is left, and the part's file is closed."""
    import errno
    import threading

    import screening.csvsafe as csvsafe

    written, files = [], []
    append = csvsafe.append_csv

    def full_disk(frame, file, **kwargs):
        files.append(file)
        if written:
            raise OSError(errno.ENOSPC, "No space left on device", file.name)
        written.append(frame.height)
        append(frame, file, **kwargs)

    monkeypatch.setattr(csvsafe, "append_csv", full_disk)
    threads = threading.active_count()
    out = tmp_path / "out"
    result = CliRunner().invoke(evaluate_app(), ["evaluate", "--year", "2021", "--method", "huangyan-2022",
                                                 "--out", str(out), "--no-excel"])
    # the OSError reaches the command line's handler (one Chinese line, exit 1: tests/test_cli_failures.py)
    assert isinstance(result.exception, OSError) and result.exception.errno == errno.ENOSPC, result.output
    assert written and len(files) >= 2 and all(f.closed for f in files)
    assert not out.exists() and threading.active_count() == threads


def test_grade_counts_are_counted_once_per_scores_frame():
    """evaluation.json, the terminal and the workbook all print the counts: counted once (at
    province scale the grouping cost 0.1–0.4 s each time); a new scores frame is counted anew."""
    m = load_method("yueqing-default")
    ev = evaluate(load_evaluation_inputs(sample_data_dir(), 2021, m), 2021, m)
    first = ev.grade_counts()
    assert ev.grade_counts() is first
    assert sum(c["evaluated"] for c in first.values()) == ev.scores.height
    import gc
    import weakref

    counted = weakref.ref(ev.scores)
    ev.scores = ev.scores.head(3)
    gc.collect()
    assert counted() is None  # the cache does not keep the frame it counted alive
    again = ev.grade_counts()
    assert again is not first and sum(c["evaluated"] for c in again.values()) == 3


def test_workbook_sheets_longer_than_a_spreadsheet_opens_continue_on_the_next(tmp_path: Path, monkeypatch):
    """The evaluation workbook splits a population's sheet at the one row limit every writer
    shares (screening.spreadsheet.MAX_SHEET_ROWS, lowered here): 规上, 规上（续2）, …, every
    firm once."""
    import openpyxl

    import screening.spreadsheet

    m = load_method("yueqing-default")
    ev = evaluate(load_evaluation_inputs(sample_data_dir(), 2021, m), 2021, m)
    above = ev.scores.filter(pl.col("population_name") == "规上").height
    monkeypatch.setattr(screening.spreadsheet, "MAX_SHEET_ROWS", 100)
    write_evaluation(ev, tmp_path)
    book = openpyxl.load_workbook(tmp_path / "亩均效益评价_2021.xlsx", read_only=True)
    sheets = [n for n in book.sheetnames if n.startswith("规上")]
    assert sheets == ["规上", *(f"规上（续{k}）" for k in range(2, len(sheets) + 1))]
    assert len(sheets) == -(-above // 100)
    assert sum(book[n].max_row - 1 for n in sheets) == above


@pytest.mark.parametrize("failing", [True, False])
def test_closing_the_part_by_part_evaluation_csv_masks_no_earlier_error(tmp_path: Path, monkeypatch, failing: bool):
    """Closing evaluation.csv flushes what a part left buffered: on a full disk that fails too.
    After an earlier error (a figure out of range, Ctrl+C) the earlier error is the one said (exit
    2 here, not the disk's exit 1); with no earlier error the failed close is not swallowed: it
    reaches the command line's handler (one Chinese line, exit 1).  Nothing is left either way."""
    import errno
    import io

    import screening.evaluation as evaluation

    class FullOnClose(io.BufferedWriter):
        def close(self) -> None:
            super().close()
            raise OSError(errno.ENOSPC, "No space left on device", self.name)

    monkeypatch.setattr(evaluation, "open", lambda path, mode: FullOnClose(io.FileIO(path, mode)), raising=False)
    if failing:
        def out_of_range(*args):
            raise InputError("2021年 某企业的综合得分超出数值范围")

        monkeypatch.setattr(evaluation, "_check_finite", out_of_range)
    out = tmp_path / "out"
    result = CliRunner().invoke(evaluate_app(), ["evaluate", "--year", "2021", "--method", "huangyan-2022",
                                                 "--out", str(out), "--no-excel"])
    if failing:
        assert result.exit_code == 2 and "超出数值范围" in result.output, (result.output, result.exception)
    else:
        assert isinstance(result.exception, OSError) and result.exception.errno == errno.ENOSPC, result.output
    assert not out.exists()
