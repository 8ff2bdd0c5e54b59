"""The mutation harness itself (tests/mutation/run.py, ``python3 dev.py mutate``): it runs the
tests against a mutated copy, reports a caught and a surviving mutant as such, exits non-zero
when one survives, never touches the working files, and refuses a stale mutant list."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("mutation_run", ROOT / "tests" / "mutation" / "run.py")
mutation = importlib.util.module_from_spec(spec)
sys.modules["mutation_run"] = mutation
spec.loader.exec_module(mutation)

SELECTION = ["tests/rules/yueqing-2022/test_dispositions.yaml"]


def write_list(path: Path, mutants: list[dict]) -> Path:
    path.write_text(yaml.safe_dump({"mutants": mutants}, allow_unicode=True), encoding="utf-8")
    return path


def test_caught_and_surviving_mutants_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    screen_py = ROOT / "screening" / "screen.py"
    before = screen_py.read_bytes()
    listing = write_list(tmp_path / "m.yaml", [
        {"id": "scale_inverted", "file": "screening/screen.py", "original": 'cond &= pl.col("scale") == when.scale',
         "replacement": 'cond &= pl.col("scale") != when.scale', "zh": "规模取反", "en": "scale inverted",
         "tests": SELECTION},
        # a comment only: no test can fail, so it must be reported as surviving
        {"id": "comment_only", "file": "sql/outputs/list.sql", "original": "-- The 整治企业清单",
         "replacement": "-- 整治企业清单", "zh": "只改注释", "en": "comment only", "tests": SELECTION},
    ])
    code = mutation.main(["--mutants", str(listing)])
    out = capsys.readouterr().out
    assert code == 1, out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    assert "caught" in rows["scale_inverted"] and "survived" not in rows["scale_inverted"]
    assert "survived" in rows["comment_only"]
    assert "共 2 个变异体：捕获 1，未捕获 1" in out
    assert screen_py.read_bytes() == before  # the mutants were applied to a copy only


def test_stale_mutant_list_is_refused(tmp_path: Path):
    listing = write_list(tmp_path / "m.yaml", [
        {"id": "gone", "file": "sql/views/00_macros.sql", "original": "no such text", "replacement": "x",
         "zh": "已不存在", "en": "stale"},
    ])
    with pytest.raises(SystemExit, match="gone：原文在 sql/views/00_macros.sql 中出现 0 次"):
        mutation.main(["--mutants", str(listing)])


def test_shipped_mutant_list_is_current():
    """Every shipped mutant names a text found exactly once (else `dev.py mutate` refuses to run)."""
    mutants = mutation.load(mutation.DEFAULT_LIST)
    assert len(mutants) >= 70
    files = {m.file for m in mutants}
    assert {"sql/views/00_macros.sql", "sql/audit/statuses.sql", "screening/screen.py",
            "sql/rules/energy_limit_exceeded.sql"} <= files
