#!/usr/bin/env python3
"""The four rules of the contract (rules 1-4), as an analyst would write them with pandas.

    .venv/bin/python benchmarks/pandas_reference.py --data benchmarks/data/firms1000000-seed1 --year 2022

Reads the Parquet inputs, groups, merges and compares; writes no outputs and prints the
hit count of each rule (JSON).  It is the yardstick of issue 15: ``screening run`` must
not be slower than this script on the same input (benchmarks/bench_run.py runs both and
checks that they find the same hits).  It assumes clean input (``screening synth
--clean``): no validation, no rejected rows.  The numbers (ratios, thresholds, grades, the
tolerance of "strictly below") are read from the rule set, as the engine reads them.

pandas is a benchmark dependency only (``pip install -e '.[bench]'``), never the engine's.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from screening.paths import default_ruleset  # noqa: E402
from screening.ruleset import load_ruleset  # noqa: E402


def strictly_below(v: pd.Series, t, eps: float) -> pd.Series:
    """v < t, and not within the rule set's relative tolerance of t (as the engine compares)."""
    return (v < t) & ((v - t).abs() > eps * abs(t))


def reference(data: Path, year: int, rules: Path | None = None) -> dict[str, int]:
    """Hits per rule for list year ``year`` (data years ``year-2`` and ``year-1``)."""
    rs = load_ruleset(rules or default_ruleset())
    scope = {k: v.value for k, v in rs.meta.scope.items()}
    eps = rs.meta.comparison["relative_tolerance"]
    y_prev, y_last = year - 2, year - 1

    def read(name: str, columns: list[str]) -> pd.DataFrame:
        frame = pd.read_parquet(data / f"{name}.parquet", columns=columns)
        return frame[frame["year"].isin([y_prev, y_last])] if "year" in columns else frame

    firms = read("enterprises", ["uscc", "industry_code", "established"])
    stats = read("stats", ["uscc", "year", "scale"])
    tax = read("tax", ["uscc", "year", "tax_paid"])
    land = read("land", ["uscc", "year", "area_mu"]).groupby(["uscc", "year"], as_index=False)["area_mu"].sum()
    grades = read("evaluations", ["uscc", "year", "grade"])
    products = read("product_energy", ["uscc", "year", "product", "unit_consumption"])

    # one row per firm and year, then the two years side by side
    fy = stats.merge(tax, on=["uscc", "year"], how="outer").merge(land, on=["uscc", "year"], how="outer")
    fy = fy.merge(grades, on=["uscc", "year"], how="outer")
    fy["tax_per_mu"] = fy["tax_paid"] / fy["area_mu"]
    panel = firms.copy()
    panel["division"] = pd.to_numeric(panel["industry_code"].str[:2], errors="coerce")
    for suffix, y in (("prev", y_prev), ("last", y_last)):
        part = fy[fy["year"] == y].drop(columns="year").add_suffix(f"_{suffix}").rename(columns={f"uscc_{suffix}": "uscc"})
        panel = panel.merge(part, on="uscc", how="left")

    manufacturing = panel["division"].between(scope["manufacturing_division_min"], scope["manufacturing_division_max"])
    cutoff = pd.Timestamp(dt.date(y_prev, 1, 1))
    new_firm = pd.to_datetime(panel["established"]) >= cutoff
    in_scope = manufacturing & ~new_firm.fillna(False) & panel["scale_last"].notna()
    hits: dict[str, int] = {}

    # rule 1: 规上, two-year 亩均税收 below ratio × the industry's average
    p1 = rs.params["above_scale_low_tax_per_mu"]
    contrib = fy.merge(panel[["uscc", "division"]], on="uscc")
    contrib = contrib[(contrib["scale"] == "规上") & contrib["tax_paid"].notna() & (contrib["area_mu"] > 0)
                      & contrib["division"].between(scope["manufacturing_division_min"],
                                                    scope["manufacturing_division_max"])]
    by_division = contrib.groupby("division").agg(tax=("tax_paid", "sum"), land=("area_mu", "sum"),
                                                  firms=("uscc", "nunique"))
    overall = contrib["tax_paid"].sum() / contrib["area_mu"].sum()
    by_division["average"] = (by_division["tax"] / by_division["land"]).where(
        by_division["firms"] >= p1["min_group_size"], overall)
    average = panel["division"].map(by_division["average"]).fillna(overall)
    value = (panel["tax_paid_prev"] + panel["tax_paid_last"]) / (panel["area_mu_prev"] + panel["area_mu_last"])
    r1 = in_scope & (panel["scale_last"] == "规上") & strictly_below(value, p1["ratio"] * average, eps)
    hits["above_scale_low_tax_per_mu"] = int(r1.sum())

    # rules 2 and 3: 规下 with at least min_land_mu in the latest year
    def below_scale(params: dict) -> pd.Series:
        return (in_scope & (panel["scale_last"] == "规下") & panel["area_mu_last"].notna()
                & ~strictly_below(panel["area_mu_last"], params["min_land_mu"], eps))

    p2 = rs.params["below_scale_consecutive_c_grade"]
    r2 = below_scale(p2) & panel["grade_prev"].isin(p2["grades"]) & panel["grade_last"].isin(p2["grades"])
    hits["below_scale_consecutive_c_grade"] = int(r2.sum())

    p3 = rs.params["below_scale_consecutive_low_tax_per_mu"]
    r3 = (below_scale(p3) & panel["area_mu_prev"].notna()
          & strictly_below(panel["tax_per_mu_prev"], p3["threshold"], eps)
          & strictly_below(panel["tax_per_mu_last"], p3["threshold"], eps))
    hits["below_scale_consecutive_low_tax_per_mu"] = int(r3.sum())

    # rule 4: a product of the latest year above the strictest limit in force on 31 December
    limits = pd.read_csv(rs.directory / "energy_limits.csv", parse_dates=["effective_from", "effective_to"])
    day = pd.Timestamp(dt.date(y_last, 12, 31))
    limits = limits[(limits["effective_from"] <= day) & (limits["effective_to"].isna() | (limits["effective_to"] >= day))]
    limits = limits.groupby("product", as_index=False)["limit"].min()
    measured = products[products["year"] == y_last].merge(limits, on="product")
    over = strictly_below(measured["limit"], measured["unit_consumption"], 0.0) & (
        (measured["unit_consumption"] - measured["limit"]).abs() > eps * measured["limit"].abs())
    hits["energy_limit_exceeded"] = int(measured.loc[over, "uscc"].nunique())
    return hits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--year", type=int, default=2022)
    ap.add_argument("--rules", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None, help="also write the result to this file")
    args = ap.parse_args()
    start = time.perf_counter()
    hits = reference(args.data, args.year, args.rules)
    text = json.dumps({"hits_per_rule": hits, "seconds": round(time.perf_counter() - start, 2)}, ensure_ascii=False)
    if args.json:
        args.json.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
