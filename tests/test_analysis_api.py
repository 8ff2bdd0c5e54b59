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


def test_year_over_year_reasons_on_a_hand_built_case(tmp_path):
    """Seven 规上 firms of 大类 38 on 10 亩 each, 亩均税收 per year (万元):
    B1–B4 61.25 every year; E 61.25, 4, 4 (2019–2021); L 4, 4, 61.25; S 2, 2, 2.
    Both lists (2021: data 2019–2020; 2022: data 2020–2021) have Σtax 567.25 on 140 亩 →
    industry average 4.0517857, threshold 0.40517857.  E: 65.25/20 = 3.2625 → 8/20 = 0.40
    (enters); L: 0.40 → 3.2625 (leaves); S: 0.20 both years (stays)."""
    from golden import Aliases, Case, build_tables, write_inputs

    per_year = {"B1": (61.25,) * 3, "B2": (61.25,) * 3, "B3": (61.25,) * 3, "B4": (61.25,) * 3,
                "E": (61.25, 4, 4), "L": (4, 4, 61.25), "S": (2, 2, 2)}
    case = Case(name="两年对比", expected=[], firms=[
        {"id": firm, "years": {y: {"scale": "规上", "tax": tax, "land": 10} for y, tax in zip((2019, 2020, 2021), taxes)}}
        for firm, taxes in per_year.items()])
    alias = Aliases()
    write_inputs(build_tables(case, alias), tmp_path / "data")
    db = tmp_path / "db.duckdb"
    for year in ("2021", "2022"):
        proc = cli("run", "--data", tmp_path / "data", "--year", year, "--out", tmp_path / year, "--db", db,
                   cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    table = screening.compare_runs(db, 2021, 2022)
    rows = {r["uscc"]: r for r in table.iter_rows(named=True)}
    assert set(rows) == {alias("E"), alias("L"), alias("S")}
    rule = "above_scale_low_tax_per_mu"
    assert rows[alias("E")]["change"] == "entered"
    assert rows[alias("E")]["why"] == f"{rule}：pass→hit（数值 3.26→0.40，阈值 0.41→0.41）"
    assert rows[alias("L")]["change"] == "left"
    assert rows[alias("L")]["why"] == f"{rule}：hit→pass（数值 0.40→3.26，阈值 0.41→0.41）"
    assert (rows[alias("S")]["change"], rows[alias("S")]["why"]) == ("stayed", "")
    assert rows[alias("S")]["rule_ids_before"] == rows[alias("S")]["rule_ids_after"] == rule


def test_the_same_data_gives_bit_identical_results():
    """Industry averages are summed in a fixed order, so thresholds do not drift in their
    last bits between runs (DuckDB adds in parallel, in any order)."""
    frames = []
    for _ in range(3):
        with screening.screen(None, 2022) as s:
            frames.append(s.results.select("uscc", "rule_id", "status", "value", "threshold", "industry_avg")
                          .sort("uscc", "rule_id"))
    assert frames[0].equals(frames[1]) and frames[0].equals(frames[2])
