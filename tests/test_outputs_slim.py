"""Issue 15: results.csv is slim (the contract's columns, the reason code, the reason and the
years); the rule title and citation are given once per rule in rules.csv and in the database
(run_rules), and with every row in results.parquet, as before."""
from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from cli_helpers import cli
from screening.csvsafe import neutralise
from screening.outputs import RESULTS_CSV_COLUMNS
from screening.store import connect

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("slim")
    proc = cli("run", "--out", tmp / "out", "--db", tmp / "db.duckdb", "--year", 2022, cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    return tmp


def test_results_csv_holds_the_slim_columns_of_every_row(run: Path):
    csv = pl.read_csv(run / "out" / "results.csv", infer_schema=False)
    parquet = pl.read_parquet(run / "out" / "results.parquet")
    assert tuple(csv.columns) == RESULTS_CSV_COLUMNS
    expected = neutralise(parquet.select(RESULTS_CSV_COLUMNS)).with_columns(
        pl.col("value", "threshold").map_elements(lambda v: None if v is None else repr(v), return_dtype=pl.String))
    key = ["uscc", "rule_id"]
    both = csv.join(expected, on=key, how="full", suffix="_pq", coalesce=True)
    assert both.height == parquet.height == csv.height
    for name in ("status", "reason_code", "reason", "years"):
        assert (both[name].fill_null("") == both[f"{name}_pq"].fill_null("")).all(), name
    for name in ("value", "threshold"):
        a, b = both[name].cast(pl.Float64), both[f"{name}_pq"].cast(pl.Float64)
        assert (a.is_null() == b.is_null()).all() and ((a - b).abs().fill_null(0) <= 1e-9 * b.abs().fill_null(1)).all()


def test_rules_csv_gives_each_rule_once_as_the_results_carry_it(run: Path):
    rules = pl.read_csv(run / "out" / "rules.csv")
    assert rules.columns == ["rule_id", "rule_title", "citation"] and rules["rule_id"].is_unique().all()
    carried = pl.read_parquet(run / "out" / "results.parquet").select("rule_id", "rule_title", "citation").unique()
    assert sorted(carried.rows()) == sorted(rules.rows())
    assert pl.read_parquet(run / "out" / "rules.parquet").equals(rules)
    con = connect(run / "db.duckdb", read_only=True)
    try:
        stored = con.execute("SELECT rule_id, rule_title, citation FROM run_rules").fetchall()
    finally:
        con.close()
    assert sorted(stored) == sorted(rules.rows())
