"""Issue 15: results.csv is slim (the contract's columns, the reason code, the reason and the
years); the rule title and citation are given once per rule in rules.csv/.parquet and in the
database (run_rules), not on every row of results.parquet; ``Screening.results`` and the
database's readers join them back where a person reads them."""
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


def test_rules_csv_gives_each_rule_once_and_results_do_not_repeat_it(run: Path):
    rules = pl.read_csv(run / "out" / "rules.csv")
    assert rules.columns == ["rule_id", "rule_title", "citation"] and rules["rule_id"].is_unique().all()
    results = pl.read_parquet(run / "out" / "results.parquet")
    # issue 15: a rule's title and citation are stored once per rule, not on each of its rows
    assert not {"rule_title", "citation"} & set(results.columns)
    assert set(results["rule_id"].unique()) == set(rules["rule_id"])
    assert pl.read_parquet(run / "out" / "rules.parquet").equals(rules)
    con = connect(run / "db.duckdb", read_only=True)
    try:
        stored = con.execute("SELECT rule_id, rule_title, citation FROM run_rules").fetchall()
    finally:
        con.close()
    assert sorted(stored) == sorted(rules.rows())


def test_screening_results_join_each_rules_texts_back_in_the_readers_order(run: Path):
    from screening import outputs
    from screening.screen import screen
    from screening.store import RESULT_COLUMNS

    rules = pl.read_csv(run / "out" / "rules.csv")
    (run / "again").mkdir()
    with screen(None, 2022, keep_tables=False) as s:
        outputs.write_results_parquet(s, run / "again")
        outputs.release_results(s)
        results = s.results  # read back from the file, the texts joined
    assert results.columns == [c for c, _ in RESULT_COLUMNS]
    assert sorted(results.select("rule_id", "rule_title", "citation").unique().rows()) == sorted(rules.rows())
    assert results["rule_title"].null_count() == results["citation"].null_count() == 0
