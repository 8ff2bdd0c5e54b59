"""energy_limits.csv's ``verified`` column: a rule-4 hit resting on a limit not checked against
the standard's official text says so in its reason, in the run summary (command line, run.json)
and in the workbook's 规则与依据 sheet; with every limit verified nothing is said."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import openpyxl
import polars as pl
import pytest

from cli_helpers import cli
from screening.errors import RuleSetError
from screening.excel import write_workbook
from screening.paths import default_ruleset
from screening.ruleset import load_energy_limits
from screening.screen import screen

NOTE = "限额数值待核对官方文本"
R4 = "energy_limit_exceeded"
FIELD = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*(:[^{}]*)?\}")  # a template field (reasons._FIELD)
HEADER = "product,product_name,standard,unit,limit,effective_from,effective_to"


def _limits(tmp_path: Path, text: str) -> pl.DataFrame:
    path = tmp_path / "energy_limits.csv"
    path.write_text(text, encoding="utf-8")
    return load_energy_limits(path)


def test_verified_is_read(tmp_path: Path):
    frame = _limits(tmp_path, f"{HEADER},verified\na,A,T,t,1,2020-01-01,,是\nb,B,T,t,1,2020-01-01,,否\n"
                              "c,C,T,t,1,2020-01-01,,\nd,D,T,t,1,2020-01-01,, yes \n")
    assert dict(zip(frame["product"], frame["verified"])) == {"a": True, "b": False, "c": False, "d": True}


def test_without_the_column_nothing_is_verified(tmp_path: Path):
    frame = _limits(tmp_path, f"{HEADER}\na,A,T,t,1,2020-01-01,\n")
    assert frame["verified"].to_list() == [False]


def test_an_unreadable_mark_names_its_row(tmp_path: Path):
    with pytest.raises(RuleSetError, match="第 3 行无效.*verified"):
        _limits(tmp_path, f"{HEADER},verified\na,A,T,t,1,2020-01-01,,是\nb,B,T,t,1,2020-01-01,,也许\n")


def test_shipped_limits_are_all_unverified():
    """The shipped table's numbers come from a transcription (see its note column)."""
    assert not load_energy_limits(default_ruleset() / "energy_limits.csv")["verified"].any()


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("limits_run")
    proc = cli("run", "--out", tmp / "out", "--db", tmp / "db.duckdb", "--year", 2022, cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    (tmp / "stdout.txt").write_text(proc.stdout, encoding="utf-8")
    return tmp


def test_unverified_hits_are_named_in_the_summary(sample_run: Path):
    hits = pl.read_parquet(sample_run / "out" / "results.parquet").filter(
        (pl.col("rule_id") == R4) & (pl.col("status") == "hit"))
    assert hits.height == 4
    assert hits["reason"].str.contains(NOTE).all()
    assert set(hits["reason_code"]) == {"hit_unverified"}
    stdout = " ".join((sample_run / "stdout.txt").read_text(encoding="utf-8").split())
    assert "4 家命中企业所依据的能耗限额" in stdout and NOTE in stdout
    run_json = json.loads((sample_run / "out" / "run.json").read_text(encoding="utf-8"))
    assert any(NOTE in w for w in run_json["warnings"])


def test_unverified_hits_are_named_in_the_rules_sheet(sample_run: Path):
    sheet = pl.read_excel(sample_run / "out" / "整治企业清单_2022.xlsx", sheet_name="规则与依据")
    notes = dict(zip(sheet[sheet.columns[0]], sheet["说明"]))
    assert NOTE in notes[R4] and "4 家" in notes[R4]
    assert not any(NOTE in (notes[r] or "") for r in notes if r != R4)


def test_no_template_field_is_printed_in_the_workbook(sample_run: Path):
    """Every text of the rule set reaches the workbook filled in: rule 4's note names the day its
    limits are read on (“{year_last}年12月31日” was once printed as is in 规则与依据)."""
    book = openpyxl.load_workbook(sample_run / "out" / "整治企业清单_2022.xlsx", read_only=True)
    left = [(ws.title, value) for ws in book.worksheets for row in ws.iter_rows(values_only=True)
            for value in row if isinstance(value, str) and FIELD.search(value)]
    assert left == []
    sheet = pl.read_excel(sample_run / "out" / "整治企业清单_2022.xlsx", sheet_name="规则与依据")
    notes = dict(zip(sheet[sheet.columns[0]], sheet["说明"]))
    assert "在“2021年12月31日”有效的限定值" in notes[R4]


def test_verified_limits_say_nothing(tmp_path: Path):
    rules = tmp_path / "rules"
    shutil.copytree(default_ruleset(), rules)
    limits = pl.read_csv(rules / "energy_limits.csv", infer_schema=False)
    limits.with_columns(pl.lit("是").alias("verified")).write_csv(rules / "energy_limits.csv")
    with screen(None, 2022, rules, anomalies=False) as s:
        assert s.hits_per_rule()[R4] == 4
        assert s.unverified_limit_hits == 0
        assert not any(NOTE in w for w in s.warnings)
        assert not s.results.filter(pl.col("reason").str.contains(NOTE)).height
        write_workbook(s, tmp_path / "book.xlsx")
    sheet = pl.read_excel(tmp_path / "book.xlsx", sheet_name="规则与依据")
    assert not sheet["说明"].fill_null("").str.contains(NOTE).any()
