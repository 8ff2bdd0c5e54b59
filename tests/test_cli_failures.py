"""Issue 10, findings 9 and 10 (command-line part).

- A list year whose data years are not in the input is refused (exit 2, one line saying which
  years the data hold and which list years they support) by ``run``, ``whatif`` and
  POST /api/v1/runs (422); ``warn``, ``compare`` and ``evaluate`` refuse their own years.
- Every command failure is one Chinese line, exit 2 for a path that cannot be used as given
  (``--out`` is a file, or lies below one), 1 for the machine (permission, disk full).
  Tests run as root in CI, where chmod stops nobody: permission and disk-full failures are
  raised by the patched file system calls, in process, through the real entry point.
- A command writes into a staging folder and moves its files into OUT at the end: a crash
  leaves nothing half-written in OUT, and the next command removes what it left.
"""
from __future__ import annotations

import errno
import json
import os
import pathlib
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from api.main import create_app
from api_helpers import bearer, build_service_db
from cli_helpers import cli
from screening import cli as cli_module
from screening.outdir import STAGING_PREFIX
from screening.screen import check_list_year
from screening.validate import Inputs

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
PARAM = "above_scale_low_tax_per_mu.ratio=0.1"


def one_line_error(proc_or_text) -> str:
    text = proc_or_text if isinstance(proc_or_text, str) else proc_or_text.stderr + proc_or_text.stdout
    stderr = proc_or_text if isinstance(proc_or_text, str) else proc_or_text.stderr
    assert "Traceback" not in text and "内部错误" not in text, text
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


# --------------------------------------------------------------------------- finding 9: list years

def test_run_refuses_a_list_year_the_data_cannot_support(tmp_path: Path):
    proc = cli("run", "--year", "2025", "--out", "out", "--db", "db.duckdb", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    line = one_line_error(proc)
    assert "2025" in line and "2017—2021" in line and "2018—2022" in line
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "db.duckdb").exists()  # no 2025 run stored


def test_whatif_refuses_a_list_year_the_data_cannot_support(tmp_path: Path):
    proc = cli("whatif", "--year", "2025", "--param", PARAM, "--out", "out", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "2017—2021" in one_line_error(proc)


@pytest.mark.parametrize("args", [
    ("warn", "--year", "2025"),
    ("evaluate", "--year", "2030"),
])
def test_warn_and_evaluate_refuse_a_year_without_data(tmp_path: Path, args):
    proc = cli(*args, "--out", "out", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert args[2] in one_line_error(proc) or str(int(args[2]) - 1) in proc.stderr


def _inputs(years: dict[str, list[int]]) -> Inputs:
    tables = {name: pl.DataFrame({"year": ys}, schema={"year": pl.Int32}) for name, ys in years.items()}
    return Inputs(tables, pl.DataFrame())


def test_list_year_check_reads_the_tables_the_rules_need():
    inputs = _inputs({"stats": [2019, 2020], "tax": [2020, 2021], "land": [2021]})
    assert check_list_year(inputs, 2022, {"stats", "tax", "land"}) == []
    # the latest data year alone: the rules comparing two years are 数据不足, said as a warning
    assert "2018" in check_list_year(inputs, 2020, {"stats", "tax", "land"})[0]
    with pytest.raises(Exception, match="2019—2021.*2020—2022") as refused:
        check_list_year(inputs, 2024, {"stats", "tax", "land"})
    assert refused.value.exit_code == 2
    with pytest.raises(Exception, match="没有任何年度"):
        check_list_year(_inputs({"stats": []}), 2022, {"stats"})


def test_service_refuses_a_run_of_a_year_without_data(tmp_path_factory):
    db, tokens = build_service_db(tmp_path_factory.mktemp("year_runs"))
    settings = Settings(db=db, runs_dir=tmp_path_factory.mktemp("year_runs_out"), data_root=ROOT / "sample_data")
    admin = bearer(tokens["admin"])
    with TestClient(create_app(settings)) as client:
        response = client.post("/api/v1/runs", headers=admin, json={"year": 2025})
        assert response.status_code == 422, response.text
        assert "可筛选的清单年度" in response.json()["detail"]
        assert client.get("/api/v1/lists/2025", headers=admin).status_code == 404


# ------------------------------------------------------------------- finding 10: one-line failures

COMMANDS = {
    "run": ("run", "--db", "db.duckdb"),
    "evaluate": ("evaluate", "--year", "2021"),
    "warn": ("warn",),
    "whatif": ("whatif", "--param", PARAM),
    "compare": ("compare", "--before", "2022", "--after", "2021", "--db", "db.duckdb"),
    "synth": ("synth", "--firms", "20"),
    "projects": ("projects", "--data", ROOT / "sample_data" / "projects"),
}


@pytest.mark.parametrize("command", COMMANDS)
def test_out_that_is_a_file_is_exit_2_one_line(tmp_path: Path, command: str):
    (tmp_path / "taken").write_text("not a directory")
    proc = cli(*COMMANDS[command], "--out", "taken", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "taken" in one_line_error(proc)
    assert (tmp_path / "taken").read_text() == "not a directory"


@pytest.mark.parametrize("command", ["run", "synth"])
def test_out_below_a_file_is_exit_2_one_line(tmp_path: Path, command: str):
    (tmp_path / "taken").write_text("not a directory")
    proc = cli(*COMMANDS[command], "--out", tmp_path / "taken" / "out", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    line = one_line_error(proc)
    assert "taken" in line and "不是目录" in line


def _main(monkeypatch, capsys, *args) -> tuple[int, str]:
    """The console entry point, in process (so the file system can be patched)."""
    monkeypatch.setattr(sys, "argv", ["screening", *map(str, args)])
    monkeypatch.delenv("SCREENING_DEBUG", raising=False)
    with pytest.raises(SystemExit) as ended:
        cli_module.main()
    return ended.value.code, capsys.readouterr().err


@pytest.mark.parametrize("command", COMMANDS)
def test_out_in_a_read_only_directory_is_exit_1_one_line(tmp_path: Path, monkeypatch, capsys, command: str):
    read_only = tmp_path / "read_only"
    real_mkdir = pathlib.Path.mkdir

    def mkdir(self, *args, **kwargs):  # what a non-root user meets in a directory it cannot write
        if read_only in (self, *self.parents):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    monkeypatch.chdir(tmp_path)
    code, err = _main(monkeypatch, capsys, *COMMANDS[command], "--out", read_only / "out")
    assert code == 1, err
    line = one_line_error(err)
    assert "没有权限" in line and str(read_only / "out") in line
    assert not any(tmp_path.rglob(STAGING_PREFIX + "*"))


def test_disk_full_while_writing_is_exit_1_one_line(tmp_path: Path, monkeypatch, capsys):
    def full(self, *args, **kwargs):  # as Polars reports it: no errno attribute, the number in the text
        raise OSError("No space left on device (os error 28)")

    monkeypatch.setattr(pl.DataFrame, "write_csv", full)
    monkeypatch.chdir(tmp_path)
    code, err = _main(monkeypatch, capsys, "synth", "--firms", "20", "--out", tmp_path / "data")
    assert code == 1, err
    assert "磁盘空间不足" in one_line_error(err)


# --------------------------------------------------------------------- finding 10: crash leftovers

CRASH = """
import os, sys
from screening import outputs
from screening.cli import main
outputs.write_run_json = lambda *a, **k: os._exit(9)   # killed after every file but run.json
sys.argv = ["screening", "run", "--out", sys.argv[1], "--db", sys.argv[2]]
main()
"""


@pytest.fixture(scope="module")
def crashed(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("crash")
    (tmp / "out").mkdir()
    (tmp / "out" / "mine.txt").write_text("a file of the user's own")
    proc = subprocess.run([sys.executable, "-c", CRASH, str(tmp / "out"), str(tmp / "db.duckdb")],
                          capture_output=True, text=True, cwd=tmp, timeout=300)
    assert proc.returncode == 9, proc.stderr
    return tmp


def test_a_crash_leaves_no_half_written_files_in_out(crashed: Path):
    out = crashed / "out"
    top = {p.name for p in out.iterdir()}
    assert not top & {"list.csv", "list.parquet", "results.csv", "results.parquet", "rejects.csv"}, top
    leftovers = [p for p in out.iterdir() if p.name.startswith(STAGING_PREFIX)]
    assert len(leftovers) == 1 and (leftovers[0] / "list.csv").exists()
    assert (out / "mine.txt").exists()


def test_the_next_command_removes_what_a_crash_left(crashed: Path):
    out = crashed / "out"
    live = out / f"{STAGING_PREFIX}{os.getpid()}-inuse"   # a running process's: listed, kept
    live.mkdir()
    proc = cli("compare", "--before", "2022", "--after", "2022", "--db", crashed / "db.duckdb", "--out", out,
               cwd=crashed)
    assert proc.returncode == 0, proc.stderr
    assert "已删除上次中断留下的未完成输出" in proc.stderr and "正在写出" in proc.stderr
    assert [p.name for p in out.iterdir() if p.name.startswith(STAGING_PREFIX)] == [live.name]
    assert (out / "compare.csv").exists() and (out / "mine.txt").exists()


def test_a_finished_run_replaces_the_files_and_records_them_last(tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "list.csv").write_text("old")
    (out / "run.json").write_text("{}")
    proc = cli("run", "--year", "2022", "--out", out, "--db", tmp_path / "db.duckdb", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert record["outputs"]["list"][0] == str(out / "list.csv")
    assert (out / "list.csv").read_text(encoding="utf-8-sig") != "old"
    assert not any(p.name.startswith(STAGING_PREFIX) for p in out.iterdir())


def test_a_database_in_a_missing_folder_is_refused_before_screening(tmp_path):
    """``run --db /nonexist/dir/x.duckdb`` wrote every output, then failed to store the run."""
    proc = cli("run", "--db", tmp_path / "nope" / "x.duckdb", "--out", tmp_path / "out", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "所在目录不存在" in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()


DB_COMMANDS = {
    "run": ("run", "--out", "out"),
    "users add": ("users", "add", "--name", "经信局", "--role", "admin"),
    "users password": ("users", "password", "--name", "经信局", "--generate-password"),
    "compare": ("compare", "--before", "2021", "--after", "2022", "--out", "out"),
    "serve": ("serve", "--port", "1"),  # the database is opened before the port is tried
    "export-final": ("export-final", "--year", "2022", "--out", "out"),  # a folder was “不存在”
}


NOT_A_DATABASE = {"folder": "是目录", "spreadsheet": "不是 DuckDB 数据库文件", "pipe": "不是普通文件"}


@pytest.mark.parametrize("kind", NOT_A_DATABASE)
@pytest.mark.parametrize("command", DB_COMMANDS)
def test_a_db_that_is_no_database_is_exit_2_one_chinese_line(tmp_path: Path, command: str, kind: str):
    """``--db`` naming a folder or another kind of file: DuckDB's English message, exit 1, and
    for a folder every output written before the run failed to be stored; a named pipe held
    the command for ever (DuckDB's open waits for a writer)."""
    db = tmp_path / "db"
    if kind == "folder":
        db.mkdir()
    elif kind == "pipe":
        os.mkfifo(db)
    else:
        db.write_bytes(b"PK\x03\x04 a workbook, not a database")
    proc = cli(*DB_COMMANDS[command], "--db", db, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stderr
    line = one_line_error(proc)
    assert str(db) in line and NOT_A_DATABASE[kind] in line, line
    assert "Error" not in line, line
    assert not (tmp_path / "out").exists()
    assert {"folder": db.is_dir, "pipe": db.is_fifo, "spreadsheet": lambda: db.read_bytes().startswith(b"PK")}[kind]()


# ---------------------------------------------------------------- settings from the environment

BAD_SETTINGS = {
    "grace-days-text": ({"SCREENING_UPLOAD_GRACE_DAYS": "abc"},
                        "环境变量 SCREENING_UPLOAD_GRACE_DAYS 的值“abc”无效：应为不小于 0 的数"),
    "grace-days-negative": ({"SCREENING_UPLOAD_GRACE_DAYS": "-1"},
                            "环境变量 SCREENING_UPLOAD_GRACE_DAYS 的值“-1”无效：应为不小于 0 的数"),
    "two-at-once": ({"SCREENING_CACHE_RUNS": "99", "SCREENING_COOKIE_SECURE": "maybe"},
                    "环境变量 SCREENING_CACHE_RUNS 的值“99”无效：应为 0 至 50 之间的整数；"
                    "环境变量 SCREENING_COOKIE_SECURE 的值“maybe”无效：应为 true 或 false（也可写 1/0、yes/no、on/off）"),
}


@pytest.mark.parametrize("command", [["runs", "prune", "--keep", "1"], ["serve", "--port", "8765"]], ids=["prune", "serve"])
@pytest.mark.parametrize("env, line", BAD_SETTINGS.values(), ids=BAD_SETTINGS.keys())
def test_a_bad_setting_in_the_environment_is_one_chinese_line(tmp_path: Path, command, env, line):
    """`runs prune` printed pydantic's English ValidationError (exit 1), `serve` the same as an
    internal error; now one line naming the variable, the value and what is allowed, exit 2."""
    import duckdb

    duckdb.connect(str(tmp_path / "s.duckdb")).close()
    proc = cli(*command, "--db", tmp_path / "s.duckdb", cwd=tmp_path, env=env, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"错误：{line}"
    assert proc.stdout == ""


def test_a_bad_time_zone_is_said_before_any_work(tmp_path: Path):
    """SCREENING_TIMEZONE was first read when a time was printed: for `screening run`, after the
    whole screening had run and its files were written.  Now the command stops at once."""
    proc = cli("run", "--out", tmp_path / "out", "--db", tmp_path / "s.duckdb", cwd=tmp_path,
               env={"SCREENING_TIMEZONE": "Mars/Olympus_Mons"}, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == "错误：环境变量 SCREENING_TIMEZONE 的值“Mars/Olympus_Mons”无效：应为 IANA 时区名，如 Asia/Shanghai"
    assert not (tmp_path / "out").exists() and not (tmp_path / "s.duckdb").exists()
    helped = cli("run", "--help", cwd=tmp_path, env={"SCREENING_TIMEZONE": "Mars/Olympus_Mons"}, timeout=60)
    assert helped.returncode == 0 and "--data" in helped.stdout


def test_every_settings_construction_speaks_chinese(monkeypatch):
    """Settings are built in one class: the service's own start (get_settings), serve, prune, tests."""
    from screening import clock
    from screening.errors import SettingsError

    monkeypatch.setenv("screening_upload_max_rows", "many")      # the variables are read in any case
    with pytest.raises(SettingsError, match="^环境变量 screening_upload_max_rows 的值“many”无效：应为不小于 10 的整数$"):
        Settings()
    monkeypatch.delenv("screening_upload_max_rows")
    monkeypatch.setenv("SCREENING_RULES_DIR", "x" * 300)
    assert Settings().rules_dir == Path("x" * 300)
    monkeypatch.setenv("SCREENING_TIMEZONE", "Mars/Olympus")
    with pytest.raises(SettingsError, match="^环境变量 SCREENING_TIMEZONE 的值“Mars/Olympus”无效：应为 IANA 时区名"):
        clock.zone()
