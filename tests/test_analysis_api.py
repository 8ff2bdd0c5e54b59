"""The Python API for analysts and the year-over-year comparison of stored runs."""
from __future__ import annotations

import polars as pl
import pytest

import screening
import screening.paths
from cli_helpers import cli

pytestmark = pytest.mark.e2e


def test_python_api_gives_the_same_numbers_as_the_command(tmp_path):
    assert cli("run", "--out", tmp_path / "out", "--db", tmp_path / "db.duckdb", cwd=tmp_path).returncode == 0
    command_list = pl.read_parquet(tmp_path / "out" / "list.parquet")
    with screening.screen(None, 2022) as s:
        assert s.list["uscc"].to_list() == command_list["uscc"].to_list()
        firm = s.list["uscc"][0]
        explained = s.results.filter(pl.col("uscc") == firm)
        assert explained.height == 4 and explained["reason"].null_count() == 0
    inputs = screening.load_inputs(screening.paths.sample_data_dir())
    assert inputs.rejected_rows == 11 and set(inputs.frame("tax")["year"].unique()) == set(range(2017, 2022))


def test_compare_two_years(tmp_path):
    db = tmp_path / "db.duckdb"
    for year in ("2021", "2022"):
        assert cli("run", "--year", year, "--out", tmp_path / year, "--db", db, cwd=tmp_path).returncode == 0
    table = screening.compare_runs(db, 2021, 2022)
    before = pl.read_parquet(tmp_path / "2021" / "list.parquet")["uscc"].to_list()
    after = pl.read_parquet(tmp_path / "2022" / "list.parquet")["uscc"].to_list()
    counts = dict(table.group_by("change").len().iter_rows())
    assert counts["entered"] == len(set(after) - set(before))
    assert counts["left"] == len(set(before) - set(after))
    assert counts["stayed"] == len(set(after) & set(before))
    entered = table.filter(pl.col("change") == "entered").row(0, named=True)
    assert "→hit" in entered["why"] and entered["rule_ids_before"] is None
    left = table.filter(pl.col("change") == "left").row(0, named=True)
    assert "hit→" in left["why"]
    proc = cli("compare", "--before", "2021", "--after", "2022", "--db", db, "--out", tmp_path / "cmp", cwd=tmp_path)
    assert proc.returncode == 0 and (tmp_path / "cmp" / "compare.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    missing = cli("compare", "--before", "2019", "--after", "2022", "--db", db, cwd=tmp_path)
    assert missing.returncode == 2 and "2019" in missing.stderr
