"""Black-box checks of contract clauses no other test pins (../shared/contract.md).

Each test runs the ``screening`` command on a few hand-made rows and reads its output files, as
a client of the contract would; the numbers are computed by hand.  Clauses already pinned
elsewhere (outputs, API roles, golden rule boundaries, ingestion quirks) are not repeated here.
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from cli_helpers import cli
from ruleset_helpers import edit_yaml
from screening.paths import default_ruleset
from screening.uscc import check_char

pytestmark = pytest.mark.e2e

Y = 2022  # the list year; the rules read 2020 and 2021


def code(n: int) -> str:
    body = f"91330382{n:09d}"
    return body + check_char(body)


def write(folder: Path, table: str, header: list[str], rows: list[list], encoding: str = "utf-8-sig") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{table}.csv", "w", encoding=encoding, newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def firms(folder: Path, n: int, products: list[list] | None = None, *, name_of=lambda i: f"乐清市企业{i}有限公司") -> None:
    """n 规上 firms of 大类 38, each with 10 亩 and 100·i 万元 of tax in both data years, grade B."""
    years = (Y - 2, Y - 1)
    write(folder, "enterprises", ["uscc", "name", "township", "industry_code", "established"],
          [[code(i), name_of(i), "柳市镇", "3823", "2000-01-01"] for i in range(1, n + 1)])
    write(folder, "stats", ["uscc", "year", "scale", "revenue", "value_added"],
          [[code(i), y, "规上", 5000, 800] for i in range(1, n + 1) for y in years])
    write(folder, "tax", ["uscc", "year", "tax_paid"], [[code(i), y, 100 * i] for i in range(1, n + 1) for y in years])
    write(folder, "land", ["uscc", "year", "parcel_id", "area_mu", "tenure"],
          [[code(i), y, f"P{i}", 10, "自有"] for i in range(1, n + 1) for y in years])
    write(folder, "evaluations", ["uscc", "year", "grade"], [[code(i), y, "B"] for i in range(1, n + 1) for y in years])
    write(folder, "product_energy", ["uscc", "year", "product", "output", "unit_consumption"], products or [])


def run(tmp: Path, data: Path, *extra: object) -> tuple[Path, dict]:
    out = tmp / "out"
    proc = cli("run", "--data", data, "--year", Y, "--out", out, "--db", tmp / "s.duckdb", *extra, cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    return out, json.loads((out / "run.json").read_text(encoding="utf-8"))


def statuses(out: Path, rule: str) -> dict[str, str]:
    r = pl.read_csv(out / "results.csv", infer_schema=False).filter(pl.col("rule_id") == rule)
    return dict(zip(r["uscc"], r["status"]))


def rejects(out: Path) -> list[dict]:
    return pl.read_csv(out / "rejects.csv", infer_schema=False).to_dicts()


def test_energy_limits_csv_as_bureau_staff_save_it_from_excel(tmp_path):
    """Rule sets: energy_limits.csv is edited in Excel and holds the contract's seven columns.  Excel
    saves 'CSV UTF-8' with a BOM and writes dates as 2020/1/1; a limit in force on 31 December of
    Y-1 applies (an end date of that very day included); strictly above is a hit, equal is a pass."""
    rules = tmp_path / "rules"
    shutil.copytree(default_ruleset(), rules)
    header = ["product", "product_name", "standard", "unit", "limit", "effective_from", "effective_to"]
    limits = [["local_a", "本地产品甲", "DB33/T 0001-2020", "kgce/t", "50", "2020/1/1", ""],
              ["local_b", "本地产品乙", "DB33/T 0002-2020", "kgce/t", "50", "2020/1/1", f"{Y - 1}/12/31"],
              ["local_c", "本地产品丙", "DB33/T 0003-2020", "kgce/t", "50", f"{Y}/1/1", ""]]
    (rules / "energy_limits.csv").unlink()
    write(rules, "energy_limits", header, limits, encoding="utf-8-sig")
    data = tmp_path / "data"
    firms(data, 5, products=[[code(1), Y - 1, "local_a", 1, 50.01], [code(2), Y - 1, "local_b", 1, 60],
                             [code(3), Y - 1, "local_a", 1, 50], [code(4), Y - 1, "local_c", 1, 99],
                             [code(5), Y - 2, "local_a", 1, 99]])
    out, _ = run(tmp_path, data, "--rules", rules)
    assert statuses(out, "energy_limit_exceeded") == {
        code(1): "hit", code(2): "hit", code(3): "pass", code(4): "not_applicable", code(5): "not_applicable"}
    assert rejects(out) == []


def test_missing_value_marks_in_optional_columns_mean_missing(tmp_path):
    """Bad input: each mark the contract lists (—, -, －, /, 无, 空, N/A) in an optional column means
    missing — not a reject — and is listed in normalised.csv; the row is used."""
    data = tmp_path / "data"
    firms(data, 7)
    marks = ["—", "-", "－", "/", "无", "空", "N/A"]
    rows = [[code(i), y, "规上", 5000, marks[i - 1] if y == Y - 1 else 800] for i in range(1, 8) for y in (Y - 2, Y - 1)]
    write(data, "stats", ["uscc", "year", "scale", "revenue", "value_added"], rows)
    out, run_json = run(tmp_path, data)
    assert rejects(out) == []
    norm = pl.read_csv(out / "normalised.csv", infer_schema=False)
    assert sorted(norm.filter(pl.col("kind") == "missing_mark")["row"].cast(int).to_list()) == [3, 5, 7, 9, 11, 13, 15]
    assert run_json["row_counts"]["stats"]["accepted"] == 14
    assert set(statuses(out, "above_scale_low_tax_per_mu").values()) <= {"hit", "pass"}  # scale known: judged


def test_rows_of_years_the_rules_do_not_read_are_validated_too(tmp_path):
    """Input directory: rows of years the rules do not read are kept and validated like any other —
    a bad one goes to rejects.csv with its spreadsheet row number, and the count says so."""
    data = tmp_path / "data"
    firms(data, 5)
    with open(data / "tax.csv", "a", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([[code(1), Y - 4, -5], [code(2), Y - 3, "abc"], [code(3), Y - 3, 7]])
    out, run_json = run(tmp_path, data)
    assert [(r["file"], r["row"], r["column"], r["action"]) for r in rejects(out)] == [
        ("tax.csv", "12", "tax_paid", "row_rejected"), ("tax.csv", "13", "tax_paid", "row_rejected")]
    assert run_json["row_counts"]["tax"] == {"read": 13, "rejected": 2, "accepted": 11}


def test_row_numbers_count_records_as_excel_shows_them_not_lines(tmp_path):
    """Bad input: the row number is the one a spreadsheet user sees (header = row 1) — a name with a
    line break inside its cell is one row in Excel, not two."""
    data = tmp_path / "data"
    firms(data, 5, name_of=lambda i: f"乐清市企业{i}\n有限公司")
    with open(data / "enterprises.csv", "a", encoding="utf-8", newline="") as f:
        csv.writer(f).writerow([code(6)[:-1] + ("0" if code(6)[-1] != "0" else "1"), "校验位错", "柳市镇", "3823", ""])
    out, _ = run(tmp_path, data)
    assert [(r["file"], r["row"], r["column"]) for r in rejects(out)] == [("enterprises.csv", "7", "uscc")]


def test_a_table_no_enabled_rule_reads_may_be_absent(tmp_path):
    """Input directory: with rule 4 disabled in the rule set, product_energy is not needed and may be
    absent; the run screens with the other rules, and results hold only the enabled rules."""
    rules = tmp_path / "rules"
    shutil.copytree(default_ruleset(), rules)
    edit_yaml(rules / "energy_limit_exceeded.yaml", lambda d: d.update(enabled=False))
    data = tmp_path / "data"
    firms(data, 5)
    (data / "product_energy.csv").unlink()
    out, _ = run(tmp_path, data, "--rules", rules)
    results = pl.read_csv(out / "results.csv", infer_schema=False)
    assert set(results["rule_id"]) == {"above_scale_low_tax_per_mu", "below_scale_consecutive_c_grade",
                                       "below_scale_consecutive_low_tax_per_mu"}
    assert results.height == 5 * 3
