"""The command line hands its writes over to a running service instead of meeting its lock
(issue 4, item 8): `screening run` and `screening users` while `screening serve` holds the file."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import duckdb
import pytest

from screening import handover, store

from cli_helpers import cli

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def serving(tmp_path_factory):
    """A real `screening serve` on an empty database, and two CLI runs made while it serves."""
    tmp = tmp_path_factory.mktemp("handover")
    db, port = tmp / "svc.duckdb", _free_port()
    script = Path(sys.executable).parent / "screening"
    env = {**os.environ, "SCREENING_RUNS_DIR": str(tmp / "runs")}
    server = subprocess.Popen([str(script), "serve", "--db", str(db), "--port", str(port)], cwd=tmp, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                _get(base + "/api/v1/health")
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("service did not start: " + server.stderr.read())
        added = cli("users", "add", "--db", db, "--name", "局管理员", "--role", "admin", cwd=tmp)
        token = added.stdout.strip().splitlines()[-1] if added.returncode == 0 else None
        first = cli("run", "--out", "out1", "--db", db, "--year", "2022", cwd=tmp)
        second = cli("run", "--out", "out2", "--db", db, "--year", "2021", cwd=tmp)
        lists = {year: _get(f"{base}/api/v1/lists/{year}?page_size=5", token) for year in (2022, 2021)} \
            if token else {}
        warned = cli("warn", "--year", "2022", "--out", "outw", "--db", db, cwd=tmp)
        warnings = _get(f"{base}/api/v1/warnings/2022?limit=5", token) if token and warned.returncode == 0 else None
        reset = cli("users", "password", "--db", db, "--name", "局管理员", "--generate-password", cwd=tmp)
        revoked = cli("users", "revoke", "--db", db, "--name", "局管理员", cwd=tmp)
        compared = cli("compare", "--before", "2021", "--after", "2022", "--db", db, "--out", "outc", cwd=tmp)
        computed = cli("run", "--out", "outg", "--db", db, "--year", "2022",
                       "--set", "below_scale_consecutive_c_grade.grade_source=computed", cwd=tmp)
        yield {"tmp": tmp, "db": db, "base": base, "token": token, "added": added, "runs": (first, second),
               "lists": lists, "warned": warned, "warnings": warnings, "reset": reset, "revoked": revoked, "compared": compared,
               "computed": computed, "server": server}
    finally:
        server.terminate()
        server.wait(timeout=30)
        server.stderr.close()


def test_users_add_hands_over_and_prints_a_working_token(serving):
    added = serving["added"]
    assert added.returncode == 0, added.stderr
    assert serving["token"]


def test_users_password_hands_over_to_the_service(serving):
    """The service holds the file: the new password is set through it (PUT /users/{name}/password),
    which also signs the user out of its web sessions."""
    reset = serving["reset"]
    assert reset.returncode == 0 and "已重设用户 局管理员" in reset.stdout, reset.stderr
    assert "网页登录密码（只显示这一次）" in reset.stderr


def test_runs_hand_over_without_a_lock_error(serving):
    for proc in serving["runs"]:
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr + proc.stdout
        assert "占用" not in proc.stderr
        assert "交由它保存" in proc.stdout


def test_handed_over_runs_are_served(serving):
    """Both years are in the service's database, readable through the API at once."""
    for year, out in ((2022, "out1"), (2021, "out2")):
        run_json = json.loads((serving["tmp"] / out / "run.json").read_text(encoding="utf-8"))
        assert run_json["stored_in_database"] is True
        assert run_json["stored_via_service"] == serving["base"]
        page = serving["lists"][year]
        assert page["run_id"] == run_json["run_id"]
        assert page["total"] == run_json["listed"] > 0


def test_a_command_that_cannot_hand_over_names_the_running_service(serving):
    """compare, verify and export-final said 没有找到可交接的服务 although the service was running."""
    proc = serving["compared"]
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "正由运行中的服务" in lines[0] and serving["base"] in lines[0], proc.stderr
    assert "没有找到可交接的服务" not in lines[0]


def test_a_run_with_computed_grades_cannot_read_the_final_evaluations_from_a_held_database(serving):
    """Rule 2 with computed grades reads the finalized evaluations from --db (docs/evaluation-workflow.md):
    while the service holds the file, the run stops (exit 1) rather than silently compute other grades."""
    proc = serving["computed"]
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "已定稿的亩均效益评价" in lines[0] and "POST /api/v1/runs" in lines[0], proc.stderr
    assert not (serving["tmp"] / "outg").exists()


def test_warn_hands_over_its_warnings(serving):
    assert serving["warned"].returncode == 0, serving["warned"].stderr
    assert "交由运行中的服务" in serving["warned"].stdout
    page = serving["warnings"]
    assert page["total"] > 0 and len(page["items"]) == 5
    assert all(0 <= item["risk"] <= 1 for item in page["items"])


def test_no_staging_files_are_left_behind(serving):
    for out in ("out1", "out2", "outw"):
        assert not list((serving["tmp"] / out).glob(".staged-*")), out
    staging = handover.staging_dir(serving["db"])
    assert staging.is_dir() and not list(staging.iterdir())  # the service's own area, emptied after each import


def test_revoke_hands_over_too(serving):
    assert serving["revoked"].returncode == 0, serving["revoked"].stderr
    with pytest.raises(urllib.error.HTTPError) as refused:
        _get(f"{serving['base']}/api/v1/lists/2022", serving["token"])
    assert refused.value.code == 401


def test_after_the_service_stops_the_database_holds_everything(serving):
    serving["server"].terminate()
    serving["server"].wait(timeout=30)
    assert not handover.service_file(serving["db"]).exists()  # withdrawn on shutdown
    con = duckdb.connect(str(serving["db"]), read_only=True)
    try:
        years = sorted(r[0] for r in con.execute("SELECT list_year FROM runs").fetchall())
        assert years == [2021, 2022]
        out1 = json.loads((serving["tmp"] / "out1" / "run.json").read_text(encoding="utf-8"))
        listed = con.execute("SELECT count(*) FROM run_list WHERE run_id = ?", [out1["run_id"]]).fetchall()[0][0]
        assert listed == out1["listed"]
        results = con.execute("SELECT count(*) FROM run_results WHERE run_id = ?", [out1["run_id"]]).fetchall()[0][0]
        assert results == out1["enterprises"] * len(out1["hits_per_rule"])
        actions = [r[0] for r in con.execute("SELECT action FROM audit_log ORDER BY logged_at").fetchall()]
        assert actions.count("import_run") == 2 and actions.count("import_warnings") == 1
        assert "create_user" in actions and "revoke_user" in actions
        who = {r[0] for r in con.execute("SELECT user_name FROM audit_log").fetchall()}
        assert who == {handover.HANDOVER_USER}
        revoked = con.execute("SELECT revoked_at IS NOT NULL FROM users WHERE name = '局管理员'").fetchall()
        assert revoked == [(True,)]
        for table, columns in store.STORED_TABLES.items():  # what the writers staged is what the import expects
            described = con.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? "
                                    "ORDER BY column_index", [table]).fetchall()
            assert tuple(described) in (columns, ()), table  # schema_info stays in the staged file
    finally:
        con.close()


# ---------------------------------------------------------------- a frozen or second service (issue 10, finding 10)

HOLDER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("CREATE TABLE IF NOT EXISTS held (x INTEGER)")
print("ready", flush=True)
time.sleep(60)
"""

#: `screening users add` in a process whose call timeout is one second instead of CALL_TIMEOUT
USERS_ADD_QUICKLY = """
import sys
from screening import handover
handover.CALL_TIMEOUT = 1.0
from screening.cli import main
sys.argv = ["screening", "users", "add", "--db", sys.argv[1], "--name", "x", "--role", "analyst"]
main()
"""


@pytest.fixture()
def held(tmp_path):
    """A database held by another process, and a listening socket that never answers."""
    db = tmp_path / "held.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db)], stdout=subprocess.PIPE, text=True)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes connections; nobody ever reads or answers
    try:
        assert holder.stdout.readline().strip() == "ready"
        yield db, holder.pid, f"http://127.0.0.1:{silent.getsockname()[1]}"
    finally:
        silent.close()
        holder.kill()
        holder.wait(timeout=30)
        holder.stdout.close()


def _announce(db: Path, url: str, pid: int) -> None:
    handover.service_file(db).write_text(json.dumps({"url": url, "pid": pid, "token": "t"}), encoding="utf-8")


def test_the_waits_are_bounded():
    assert handover.CONNECT_TIMEOUT <= 10 and handover.CALL_TIMEOUT <= 60 and handover.IMPORT_TIMEOUT <= 600


def test_a_frozen_service_is_one_line_after_the_timeout(held):
    db, pid, url = held
    _announce(db, url, pid)
    started = time.monotonic()
    service = handover.find(db)
    with pytest.raises(handover.HandoverError, match="1 秒内没有响应"):
        service.call("POST", "/api/v1/runs/import", {"token": "t"}, timeout=1)
    assert time.monotonic() - started < 5


def test_the_command_line_gives_up_on_a_frozen_service(held, tmp_path):
    db, pid, url = held
    _announce(db, url, pid)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", USERS_ADD_QUICKLY, str(db)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert time.monotonic() - started < 30
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "没有响应" in lines[0] and str(pid) in lines[0], proc.stderr


def test_a_second_serve_names_the_service_that_holds_the_database(held, tmp_path):
    db, pid, url = held
    _announce(db, url, pid)
    proc = cli("serve", "--db", db, "--port", _free_port(), cwd=tmp_path, timeout=60)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "已被另一个服务占用" in lines[0] and f"PID {pid}" in lines[0] and url in lines[0]
    assert "没有找到可交接的服务" not in lines[0]


def test_a_second_serve_on_a_database_held_by_a_command_names_its_pid(held, tmp_path):
    db, pid, _ = held
    proc = cli("serve", "--db", db, "--port", _free_port(), cwd=tmp_path, timeout=60)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "已被另一个进程" in lines[0] and f"PID {pid}" in lines[0], proc.stderr
    assert "没有找到可交接的服务" not in lines[0]
