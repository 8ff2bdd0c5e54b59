"""A backup taken while a real ``screening serve`` takes a stream of verifications and plan
edits (issue 18): the restored database holds exactly the writes acknowledged before the
backup began — each whole, with its audit line — and nothing half-applied."""
from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import duckdb
import pytest

from fastapi.testclient import TestClient

from api.config import Settings
from api.db import ensure_schema
from api.main import create_app
from cli_helpers import cli
from screening import backup as bk
from screening.retention import RUN_TABLES

pytestmark = pytest.mark.e2e

#: writes per stream (each is one request on 127.0.0.1), and the stream's time limit
WRITES, SECONDS = 120, 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(base: str, method: str, route: str, token: str | None, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(base + route, data=data, method=method, headers={
        "Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read()), dict(r.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}"), dict(exc.headers)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("backup_service")
    db = tmp / "svc.duckdb"
    for year in (2021, 2022):
        proc = cli("run", "--out", tmp / f"out{year}", "--db", db, "--year", year, cwd=tmp)
        assert proc.returncode == 0, proc.stderr
    con = duckdb.connect(str(db))
    ensure_schema(con)
    (run, created), = con.execute("SELECT run_id, created_at FROM runs WHERE list_year = 2022").fetchall()
    # an older re-run of 2022: a trial the prune may remove
    for table in RUN_TABLES:
        con.execute(f"INSERT INTO {table} SELECT * REPLACE ('run-trial' AS run_id) FROM {table} WHERE run_id = ?", [run])
    con.execute("INSERT INTO runs SELECT * REPLACE ('run-trial' AS run_id, ? AS created_at) FROM runs WHERE run_id = ?",
                [created - dt.timedelta(days=1), run])
    con.close()
    added = cli("users", "add", "--db", db, "--name", "局管理员", "--role", "admin", cwd=tmp)
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip().splitlines()[-1]
    port = _free_port()
    script = Path(sys.executable).parent / "screening"
    server = subprocess.Popen([str(script), "serve", "--db", str(db), "--port", str(port)], cwd=tmp,
                              env={**os.environ, "SCREENING_RUNS_DIR": str(tmp / "runs")},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                _call(base, "GET", "/api/v1/health", None)
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("service did not start: " + server.stderr.read())
        yield {"tmp": tmp, "db": db, "base": base, "token": token, "server": server}
    finally:
        server.terminate()
        server.wait(timeout=30)
        server.stderr.close()


def _send_files(base: str, route: str, token: str, fields: dict[str, str], files: list[tuple[str, str, bytes, str]]):
    """A multipart POST: ``files`` as (field, file name, content, type)."""
    boundary = "----backup-test-boundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode("utf-8")
             for k, v in fields.items()]
    parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
              f"Content-Type: {kind}\r\n\r\n".encode("utf-8") + data + b"\r\n" for field, name, data, kind in files]
    request = urllib.request.Request(base + route, data=b"".join(parts) + f"--{boundary}--\r\n".encode(), method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                                              "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=60) as r:
        return r.status, json.loads(r.read())


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32 + "现场".encode("utf-8")


def _finalize_2021(base: str, token: str) -> str:
    firms = _call(base, "GET", "/api/v1/lists/2021?page_size=3", token)[1]["items"]
    for firm in firms:
        assert _call(base, "POST", f"/api/v1/enterprises/{firm['uscc']}/verifications", token,
                     {"year": 2021, "outcome": "confirmed"})[0] == 201
    status, answer, _ = _call(base, "POST", "/api/v1/lists/2021/finalize", token, {"allow_unresolved": True})
    assert status == 201, answer
    return firms[0]["uscc"]


def test_backup_during_writes_holds_exactly_what_was_acknowledged_before(service):
    base, token, tmp, db = service["base"], service["token"], service["tmp"], service["db"]
    assert _call(base, "GET", "/api/v1/health", None)[1] == {"status": "ok", "last_backup_age_hours": None}
    planned = _finalize_2021(base, token)
    firms = [f["uscc"] for f in _call(base, "GET", "/api/v1/lists/2022?page_size=20", token)[1]["items"]]
    # an evidence file and an upload folder: the backup carries them, the restore puts them back
    status, evidence = _send_files(base, f"/api/v1/enterprises/{firms[0]}/evidence?year=2022", token, {},
                                   [("file", "现场.png", PNG, "image/png")])
    assert status == 201
    status, upload = _send_files(base, "/api/v1/data", token, {"year": "2022"},
                                 [("files", "enterprises.csv", "uscc,name\n".encode("utf-8"), "text/csv")])
    assert status == 201
    # a run made through the service (as the web page 数据与筛选 does): its output folder in SCREENING_RUNS_DIR
    status, run, _ = _call(base, "POST", "/api/v1/runs", token, {"year": 2021})
    assert status == 201, run
    workbook = tmp / "runs" / run["run_id"] / "整治企业清单_2021.xlsx"
    assert workbook.is_file()
    verified: list[tuple[str, float]] = []  # (verification id, when acknowledged)
    plan_versions: list[tuple[int, float]] = []
    stop = threading.Event()
    failures: list = []

    def verifications():
        deadline = time.monotonic() + SECONDS
        for i in range(WRITES):
            if stop.is_set() or time.monotonic() > deadline:
                break
            status, answer, _ = _call(base, "POST", f"/api/v1/enterprises/{firms[i % len(firms)]}/verifications",
                                      token, {"year": 2022, "outcome": "confirmed", "note": f"第 {i} 次"})
            if status == 201:
                verified.append((answer["verification_id"], time.monotonic()))
            elif status != 409:
                failures.append((status, answer))

    def plans():
        deadline, etag = time.monotonic() + SECONDS, None
        for i in range(WRITES):
            if stop.is_set() or time.monotonic() > deadline:
                break
            body = {"disposition": "改造提升", "measures": f"第 {i} 版措施", "lead": "市经信局",
                    "expected_land_mu": 0, "expected_energy_tce": i}
            status, answer, headers = _call(base, "PUT", f"/api/v1/enterprises/{planned}/plan?year=2021", token, body,
                                            {"If-Match": etag} if etag else None)
            if status == 200:
                etag = headers.get("ETag") or headers.get("etag")
                plan_versions.append((answer["version"], time.monotonic()))
            elif status == 409:
                etag = _call(base, "GET", f"/api/v1/enterprises/{planned}/plan?year=2021", token)[2].get("ETag")
            else:
                failures.append((status, answer))

    threads = [threading.Thread(target=verifications), threading.Thread(target=plans)]
    for t in threads:
        t.start()
    while len(verified) < WRITES // 3 and any(t.is_alive() for t in threads):
        time.sleep(0.05)
    began = time.monotonic()
    made = cli("backup", "--db", db, "--out", tmp / "nightly", cwd=tmp)
    ended = time.monotonic()
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert made.returncode == 0, made.stderr
    assert "由运行中的服务" in made.stdout
    assert not failures, failures
    backups = list((tmp / "nightly").iterdir())
    assert len(backups) == 1 and not list(bk.backups_dir(db).glob(bk.PREFIX + "*"))  # moved out of the service's area
    age = _call(base, "GET", "/api/v1/health", None)[1]
    assert age["status"] == "ok" and 0 <= age["last_backup_age_hours"] < 0.1

    manifest = json.loads((backups[0] / bk.MANIFEST).read_text(encoding="utf-8"))
    assert sorted(name for name in manifest["files"] if not name.startswith("runs/")) == [
        f"evidence/{evidence['sha256']}.png", f"uploads/{upload['data']}/enterprises.csv"]
    assert f"runs/{run['run_id']}/{workbook.name}" in manifest["files"] and manifest["run_folders"]["folders"] == 1
    # --no-run-files is handed over too: the service leaves the run's folder out and says so
    light = cli("backup", "--db", db, "--out", tmp / "light", "--no-run-files", cwd=tmp)
    assert light.returncode == 0 and "由运行中的服务" in light.stdout, light.stderr
    assert "运行输出目录 1 个（" in light.stdout and "按要求未备份" in light.stdout
    assert not (next((tmp / "light").iterdir()) / bk.FILES / "runs").exists()

    restored = tmp / "restored" / "restored.duckdb"
    proc = cli("restore", "--from", backups[0], "--db", restored, cwd=tmp,
               env={"SCREENING_RUNS_DIR": str(tmp / "runs_restored")})
    assert proc.returncode == 0, proc.stderr
    assert (restored.parent / "restored.duckdb.evidence" / f"{evidence['sha256']}.png").read_bytes() == PNG
    assert (restored.parent / "uploads" / upload["data"] / "enterprises.csv").is_file()
    con = duckdb.connect(str(restored), read_only=True)
    try:
        ids = {r[0] for r in con.execute("SELECT verification_id FROM verifications WHERE list_year = 2022").fetchall()}
        before = {v for v, at in verified if at < began}
        assert before and before <= ids                   # every write acknowledged before the backup began
        assert ids <= {v for v, _ in verified}            # nothing that was never acknowledged
        assert len(ids) < len(verified) or ended - began > 0  # (the stream went on during the backup)
        # none half-applied: each verification with its audit line, each plan version with its own
        audited = {json.loads(a)["verification_id"] for (a,) in con.execute(
            "SELECT after FROM audit_log WHERE action = 'verify' AND entity_key LIKE '2022/%'").fetchall()}
        assert audited == ids
        (version,), = con.execute("SELECT version FROM plans WHERE list_year = 2021").fetchall()
        assert version >= max((v for v, at in plan_versions if at < began), default=0)
        assert version <= max(v for v, _ in plan_versions)
        plan_lines = con.execute("SELECT count(*) FROM audit_log WHERE entity = 'plan'").fetchall()[0][0]
        assert plan_lines == version
    finally:
        con.close()
    verify = cli("verify", "--db", restored, cwd=tmp)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "审计链完整" in verify.stdout and "与最近一次备份记录的链尾一致" in verify.stdout
    # a working service on the restored file: the same token, lists, the final list, the plan
    with TestClient(create_app(Settings(db=restored, runs_dir=tmp / "runs_restored"))) as client:
        admin = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/v1/lists/2022?page_size=1", headers=admin).status_code == 200
        assert client.get("/api/v1/lists/2021/final", headers=admin).json()["total"] > 0
        assert client.get(f"/api/v1/enterprises/{planned}/plan?year=2021", headers=admin).json()["version"] == version
        assert client.get("/api/v1/health").json()["last_backup_age_hours"] < 0.1
        served = client.get(f"/api/v1/evidence/{evidence['evidence_id']}", headers=admin)
        assert served.status_code == 200 and served.content == PNG
        # the run's files, from the restored runs folder (the record still names the old one)
        served = client.get(f"/api/v1/runs/{run['run_id']}/files/{workbook.name}", headers=admin)
        assert served.status_code == 200 and served.content == workbook.read_bytes()


def test_prune_hands_over_and_keeps_the_finalized_and_latest_runs(service):
    base, token, tmp, db = service["base"], service["token"], service["tmp"], service["db"]
    proc = cli("runs", "prune", "--db", db, "--keep", "1", cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    assert "run-trial" in proc.stdout and "占用" not in proc.stderr
    assert _call(base, "GET", "/api/v1/lists/2022?page_size=1", token)[0] == 200
    status, log, _ = _call(base, "GET", "/api/v1/audit?page_size=5", token)
    items = log["items"] if isinstance(log, dict) else log
    assert any(item["action"] == "prune_runs" and "run-trial" in item["entity_key"] for item in items)
    # after the service stops: the finalized 2021 run and the newest run of each year are still there
    service["server"].terminate()
    service["server"].wait(timeout=30)
    con = duckdb.connect(str(db), read_only=True)
    try:
        years = sorted(r[0] for r in con.execute("SELECT list_year FROM runs").fetchall())
        finalized = con.execute("SELECT run_id FROM finalizations").fetchall()
    finally:
        con.close()
    # the finalized 2021 run, the newest 2021 run (the trial run made through the service) and the newest 2022 run
    assert years == [2021, 2021, 2022] and finalized
    verify = cli("verify", "--db", db, cwd=tmp)
    assert verify.returncode == 0, verify.stdout + verify.stderr
