"""screening whatif: the default value reproduces the default list; thresholds move firms the right way."""
from __future__ import annotations

import openpyxl
import polars as pl
import pytest

from chart_helpers import check_chart_files
from cli_helpers import cli
from screening.screen import screen
from screening.whatif import whatif

pytestmark = pytest.mark.e2e
RULES = ["above_scale_low_tax_per_mu", "below_scale_consecutive_c_grade",
         "below_scale_consecutive_low_tax_per_mu", "energy_limit_exceeded"]


def test_default_value_reproduces_the_default_list_and_ratio_is_monotonic():
    table, moved = whatif("above_scale_low_tax_per_mu.ratio=0.05,0.1,0.2")
    with screen(None, 2022) as s:
        default, hits = set(s.list["uscc"].to_list()), s.hits_per_rule()
    rows = {r["value"]: r for r in table.iter_rows(named=True)}
    assert rows["0.1"]["listed"] == len(default) and rows["0.1"]["entered"] == rows["0.1"]["left"] == 0
    assert all(rows["0.1"][rule] == hits[rule] for rule in RULES)
    # a higher ratio can only add firms to rule 1 (and so to the list); a lower one only remove them
    assert rows["0.05"]["listed"] <= rows["0.1"]["listed"] <= rows["0.2"]["listed"]
    assert rows["0.05"]["entered"] == 0 and rows["0.2"]["left"] == 0
    assert rows["0.2"]["above_scale_low_tax_per_mu"] >= rows["0.1"]["above_scale_low_tax_per_mu"]
    assert rows["0.2"]["land_mu"] >= rows["0.1"]["land_mu"]
    entered = set(moved.filter((pl.col("value") == "0.2") & (pl.col("change") == "entered"))["uscc"].to_list())
    assert len(entered) == rows["0.2"]["entered"] and not entered & default


def test_list_parameter_values_and_threshold_direction():
    table, _ = whatif("below_scale_consecutive_low_tax_per_mu.threshold=5,10,20")
    listed = table["below_scale_consecutive_low_tax_per_mu"].to_list()
    assert listed == sorted(listed)
    grades, _ = whatif("below_scale_consecutive_c_grade.grades=C+D,D")
    assert grades["below_scale_consecutive_c_grade"][1] <= grades["below_scale_consecutive_c_grade"][0]


def test_whatif_command_writes_the_contract_columns(tmp_path):
    proc = cli("whatif", "--year", "2022", "--param", "above_scale_low_tax_per_mu.ratio=0.1,0.9",
               "--out", tmp_path / "w", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    frame = pl.read_csv(tmp_path / "w" / "whatif.csv")
    for name in ("whatif.csv", "whatif_changes.csv"):  # opened in Excel/WPS: UTF-8 with a BOM
        assert (tmp_path / "w" / name).read_bytes().startswith(b"\xef\xbb\xbf"), name
    assert {"value", "listed", "land_mu", "energy_tce", *RULES} <= set(frame.columns)
    assert frame.height == 2
    # the chart beside the table, and the workbook with Chinese headers
    check_chart_files(tmp_path / "w" / "whatif.png", tmp_path / "w" / "whatif.svg")
    book = openpyxl.load_workbook(tmp_path / "w" / "whatif.xlsx")
    assert book.sheetnames == ["参数试算", "进出清单企业"]
    header = [c.value for c in book["参数试算"][1]]
    assert header[:2] == ["取值", "清单企业数"] and "命中数：规上亩均税收低" in header
    assert [r[1] for r in book["参数试算"].iter_rows(min_row=2, values_only=True)] == frame["listed"].to_list()
    assert [c.value for c in book["进出清单企业"][1]] == ["取值", "统一社会信用代码", "变动"]
    bad = cli("whatif", "--param", "above_scale_low_tax_per_mu.ratio=abc", "--out", tmp_path / "w", cwd=tmp_path)
    assert bad.returncode == 2 and "--param" in bad.stderr and "Traceback" not in bad.stderr
