"""Start-up and ending of the command line (issue 15: ``import screening.cli`` is paid by every
command, a run of a million firms included; `screening evaluate --no-excel` ≤ 6 s).

Start-up does no per-code-point Python work; the Excel writer and the database layer are loaded
only when used; `evaluate` and `run` (every file written and closed, the database too, only the
result left in memory) end their process at once through the console entry point, with their
output flushed, instead of freeing the heap object by object."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_space_class_is_what_python_calls_white_space():
    """xlsxwriter tests ``\\s`` (CPython's ``str.isspace``); the class built without a Python
    loop over every code point holds exactly those characters."""
    from screening.excel_rows import _SPACE_CLASS

    expected = "[" + "".join(f"\\x{{{c:X}}}" for c in range(sys.maxunicode + 1) if chr(c).isspace()) + "]"
    assert _SPACE_CLASS == expected


def test_importing_the_cli_does_not_loop_over_code_points():
    """Importing the Excel row writer (which every CLI start does) calls ``str.isspace`` a
    handful of times at most, not once per Unicode code point (1,114,112 calls, ~80 ms)."""
    code = (
        "import numpy, polars, xlsxwriter, cProfile, pstats\n"
        "p = cProfile.Profile(); p.enable()\n"
        "import screening.excel_rows\n"
        "p.disable()\n"
        "names = (\"<method 'isspace' of 'str' objects>\", '<built-in method builtins.chr>')\n"
        "calls = sum(s[1] for f, s in pstats.Stats(p).stats.items() if f[2] in names)\n"
        "print(calls)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout.strip()) < 1000


def _python(code: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_the_package_loads_compare_and_export_on_first_use():
    proc = _python("""
import sys, screening
assert "xlsxwriter" not in sys.modules and "screening.compare" not in sys.modules, sorted(sys.modules)
assert {"compare_runs", "export_excel", "screen", "whatif"} <= set(dir(screening))
from screening.compare import compare_runs
from screening.export import export_excel
assert screening.compare_runs is compare_runs and screening.export_excel is export_excel
import screening.screen, screening.whatif
assert callable(screening.screen) and not isinstance(screening.screen, type(sys))   # the function
assert callable(screening.whatif) and not isinstance(screening.whatif, type(sys))
try:
    screening.no_such_name
except AttributeError as exc:
    assert "no_such_name" in str(exc)
else:
    raise SystemExit("no AttributeError")
print("ok")
""")
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_evaluate_without_a_workbook_never_loads_the_excel_writer(tmp_path: Path):
    proc = _python("""
import sys
from screening.cli import main
sys.argv = ["screening", "evaluate", "--year", "2021", "--out", sys.argv[1], "--no-excel"]
try:
    main()
except SystemExit as ended:
    assert ended.code == 0, ended.code
print("xlsxwriter" in sys.modules)
""", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False"
    assert (tmp_path / "out" / "evaluation.csv").is_file()


#: the console entry point with an atexit marker: written only when the interpreter is torn down
CONSOLE = """
import atexit, sys
marker = sys.argv[1]
atexit.register(lambda: open(marker, "w").write("torn down"))
sys.argv = ["screening", *sys.argv[2:]]
from screening.cli import console
console()
"""


def test_evaluate_ends_its_process_at_once_with_every_line_and_file_out(tmp_path: Path):
    out, marker = tmp_path / "out", tmp_path / "marker"
    proc = _python(CONSOLE, str(marker), "evaluate", "--year", "2021", "--out", str(out), "--no-excel")
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists()  # the heap was not torn down
    assert "输出目录" in proc.stdout and "用时" in proc.stdout  # the last line reached the pipe
    assert json.loads((out / "evaluation.json").read_text(encoding="utf-8"))["counts"]
    assert sorted(p.name for p in out.iterdir()) == [
        "evaluation.csv", "evaluation.json", "evaluation.parquet", "evaluation_items.csv",
        "evaluation_items.parquet", "evaluation_rejects.csv"]  # no staging folder left


def test_a_run_ends_its_process_at_once_with_its_database_closed(tmp_path: Path):
    """The database was checkpointed and closed before the run's last line: no WAL is left, the
    file verifies and holds the run."""
    out, db, marker = tmp_path / "out", tmp_path / "runs.duckdb", tmp_path / "marker"
    proc = _python(CONSOLE, str(marker), "run", "--out", str(out), "--db", str(db))
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists() and "运行记录" in proc.stdout and "用时" in proc.stdout
    assert not (tmp_path / "runs.duckdb.wal").exists()
    assert (out / "run.json").is_file() and (out / "results.parquet").is_file()
    verify = subprocess.run([sys.executable, "-m", "screening", "verify", "--db", str(db)], capture_output=True,
                            text=True, cwd=ROOT, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert verify.returncode == 0 and "运行记录 1 次" in verify.stdout, verify.stdout + verify.stderr


@pytest.mark.parametrize("args, code", [
    (["evaluate", "--out", "OUT"], 2),              # no --year: the usual error and exit code
    (["evaluate", "--year", "1990", "--out", "OUT", "--no-excel"], 2),  # no data for the year
    (["synth", "--firms", "5", "--out", "OUT"], 0),  # another command: the usual ending
])
def test_other_endings_tear_the_interpreter_down_as_usual(tmp_path: Path, args: list[str], code: int):
    marker = tmp_path / "marker"
    proc = _python(CONSOLE, str(marker), *(str(tmp_path / "out") if a == "OUT" else a for a in args))
    assert proc.returncode == code, proc.stderr
    assert marker.read_text() == "torn down"


def test_python_dash_m_and_the_installed_script_use_the_console_entry_point():
    assert (ROOT / "screening" / "__main__.py").read_text(encoding="utf-8").split() == [
        "from", ".cli", "import", "console", "console()"]
    assert 'screening = "screening.cli:console"' in (ROOT / "pyproject.toml").read_text(encoding="utf-8")


def test_a_quick_end_without_standard_streams_still_succeeds(tmp_path: Path):
    """A console script started with its output closed (``screening evaluate … >&- 2>&-`` in cron,
    a Windows scheduled task under pythonw) has ``sys.stdout`` and ``sys.stderr`` None: the
    finished command still ends with 0, its files all out, not with a traceback about flushing None."""
    out = tmp_path / "out"
    proc = _python("""
import sys
sys.argv = ["screening", "evaluate", "--year", "2021", "--out", sys.argv[1], "--no-excel"]
sys.stdout = sys.stderr = None
from screening.cli import console
console()
""", str(out))
    assert proc.returncode == 0, proc.stderr
    assert (out / "evaluation.json").is_file() and (out / "evaluation.csv").is_file()
