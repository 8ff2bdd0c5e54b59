"""属地核实 → 异议处理 → 定稿, the frozen final list, and the audit trail."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from api.main import create_app
from api_helpers import TOWNSHIP, bearer, build_service_db

pytestmark = pytest.mark.api


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    db, tokens = build_service_db(tmp_path_factory.mktemp("final"))
    with TestClient(create_app(Settings(db=db))) as client:
        yield client, tokens


def test_verification_decision_finalization_flow(service):
    client, tokens = service
    admin, township = bearer(tokens["admin"]), bearer(tokens["township"])
    mine = [i["uscc"] for i in client.get("/api/v1/lists/2022?page_size=500", headers=township).json()["items"]]
    everyone = [i["uscc"] for i in client.get("/api/v1/lists/2022?page_size=500", headers=admin).json()["items"]]
    confirmed, rejected, upheld, pending = mine[0], mine[1], mine[2], mine[3]

    def verify(uscc, outcome, headers=township, **extra):
        body = {"year": 2022, "outcome": outcome, **extra}
        return client.post(f"/api/v1/enterprises/{uscc}/verifications", headers=headers, json=body)

    assert verify(confirmed, "confirmed").status_code == 201
    for uscc in (rejected, upheld, pending):
        assert verify(uscc, "disputed", reason="数据有误", note="税收数据漏报").status_code == 201

    def decide(uscc, decision, headers=admin):
        return client.post(f"/api/v1/enterprises/{uscc}/dispute-decisions", headers=headers,
                           json={"year": 2022, "decision": decision, "note": "经信局审核"})

    assert decide(rejected, "rejected").status_code == 201
    assert decide(upheld, "upheld").status_code == 201
    assert decide(confirmed, "rejected").status_code == 409      # nothing disputed there
    assert decide(rejected, "rejected", township).status_code == 403

    # unresolved firms block the finalization unless the bureau says otherwise
    blocked = client.post("/api/v1/lists/2022/finalize", headers=admin, json={})
    assert blocked.status_code == 409 and "未核实" in blocked.json()["detail"]
    assert client.post("/api/v1/lists/2022/finalize", headers=township, json={}).status_code == 403
    assert client.get("/api/v1/lists/2022/final", headers=admin).status_code == 404
    assert client.get("/api/v1/dashboard/2022", headers=admin).json()["final"] == 0

    # everyone else in the list is confirmed by their township (admin acts for the other townships)
    for uscc in everyone:
        if uscc not in (confirmed, rejected, upheld, pending):
            assert verify(uscc, "confirmed", headers=admin).status_code == 201
    done = client.post("/api/v1/lists/2022/finalize", headers=admin, json={"allow_unresolved": True, "note": "定稿"})
    assert done.status_code == 201
    summary = done.json()
    assert summary["counts"]["dispute_pending"] == 1 and summary["counts"]["dispute_upheld"] == 1
    assert summary["final"] == len(everyone) - 2

    final = client.get("/api/v1/lists/2022/final", headers=admin).json()
    on_final = {i["uscc"]: i["basis"] for i in final["items"]}
    assert on_final[confirmed] == "confirmed" and on_final[rejected] == "dispute_rejected"
    assert upheld not in on_final and pending not in on_final
    assert final["total"] == summary["final"]
    own = client.get("/api/v1/lists/2022/final", headers=township).json()
    assert own["items"] and {i["township"] for i in own["items"]} == {TOWNSHIP}
    assert client.get("/api/v1/dashboard/2022", headers=bearer(tokens["dashboard"])).json()["final"] == summary["final"]

    # frozen: no second finalization, no more verifications or decisions
    assert client.post("/api/v1/lists/2022/finalize", headers=admin, json={}).status_code == 409
    assert verify(confirmed, "disputed", reason="x").status_code == 409
    assert decide(pending, "rejected").status_code == 409
    record = client.get(f"/api/v1/enterprises/{rejected}", headers=township).json()
    assert record["finalized"] and record["on_final_list"] and record["dispute_decisions"][0]["decision"] == "rejected"


def test_every_write_is_in_the_audit_trail(service):
    client, tokens = service
    admin = bearer(tokens["admin"])
    assert client.get("/api/v1/audit", headers=bearer(tokens["analyst"])).status_code == 403
    trail = client.get("/api/v1/audit?page_size=500", headers=admin).json()
    actions = {item["action"] for item in trail["items"]}
    assert {"verify", "decide_dispute", "finalize"} <= actions
    verify = next(i for i in trail["items"] if i["action"] == "verify")
    assert verify["user_name"] and verify["after"]["outcome"] in ("confirmed", "disputed")
    decision = next(i for i in trail["items"] if i["action"] == "decide_dispute")
    assert decision["before"]["standing"] == "dispute_pending" and decision["after"]["decision"] in ("upheld", "rejected")


PLAN = {"disposition": "改造提升", "measures": "更换高效电机，实施节能技改", "lead": "市经信局",
        "cooperating": ["市发改局"], "expected_land_mu": 0, "expected_energy_tce": 120.5,
        "milestones": [{"title": "完成节能诊断", "due": "2022-09-30"}, {"title": "完成技改", "due": "2099-12-31"}]}


def _final_firm(client, tokens) -> str:
    final = client.get("/api/v1/lists/2022/final", headers=bearer(tokens["township"])).json()
    return final["items"][0]["uscc"]


def test_plan_versions_progress_and_completion(service):
    client, tokens = service
    admin, township = bearer(tokens["admin"]), bearer(tokens["township"])
    firm = _final_firm(client, tokens)
    url = f"/api/v1/enterprises/{firm}/plan?year=2022"
    assert client.put(url, headers=township, json=PLAN).status_code == 403
    created = client.put(url, headers=admin, json=PLAN)
    assert created.status_code == 200 and created.headers["ETag"] == '"1"'
    assert client.put(url, headers=admin, json=PLAN).status_code == 409            # no If-Match
    assert client.put(url, headers={**admin, "If-Match": '"7"'}, json=PLAN).status_code == 409
    changed = client.put(url, headers={**admin, "If-Match": '"1"'}, json={**PLAN, "expected_land_mu": 3.5})
    assert changed.status_code == 200 and changed.json()["version"] == 2
    assert client.put(url, headers={**admin, "If-Match": '"1"'}, json=PLAN).status_code == 409   # stale
    bad = client.put(url, headers={**admin, "If-Match": '"2"'}, json={**PLAN, "disposition": "关停"})
    assert bad.status_code == 422

    progress = client.post(f"/api/v1/enterprises/{firm}/plan/progress?year=2022", headers=township,
                           json={"date": "2022-08-01", "note": "已完成节能诊断"})
    assert progress.status_code == 201
    record = client.get(f"/api/v1/enterprises/{firm}?year=2022", headers=township).json()
    assert record["plan"]["version"] == 2 and record["plan"]["progress"][0]["note"] == "已完成节能诊断"
    dash = client.get("/api/v1/dashboard/2022", headers=bearer(tokens["dashboard"])).json()
    assert dash["plans"]["plans"] == 1 and dash["plans"]["overdue_milestones"] == 1
    assert dash["targets"]["land_mu"]["planned"] == 3.5

    done = client.post(f"/api/v1/enterprises/{firm}/plan/complete?year=2022", headers={**admin, "If-Match": '"2"'})
    assert done.status_code == 200 and done.json()["status"] == "completed" and done.headers["ETag"] == '"3"'
    dash = client.get("/api/v1/dashboard/2022", headers=bearer(tokens["dashboard"])).json()
    # what the completed plans freed meets the targets (as the workbook's 汇总), not the listed firms' land
    assert dash["targets"]["land_mu"]["completed"] == 3.5 and dash["targets"]["firms"]["completed"] == 1
    assert client.put(url, headers={**admin, "If-Match": '"3"'}, json=PLAN).status_code == 409
    other = client.get("/api/v1/lists/2022/final", headers=bearer(tokens["other_township"])).json()["items"][0]["uscc"]
    assert client.get(f"/api/v1/enterprises/{other}/plan?year=2022", headers=township).status_code == 404


def test_concurrent_plan_edits_one_wins_the_rest_conflict(service, tmp_path):
    import socket
    import threading
    import time

    import httpx
    import uvicorn

    client, tokens = service
    admin = bearer(tokens["admin"])
    firms = client.get("/api/v1/lists/2022/final", headers=admin).json()["items"]
    firm = firms[-1]["uscc"]
    url = f"/api/v1/enterprises/{firm}/plan?year=2022"
    assert client.put(url, headers=admin, json=PLAN).status_code == 200

    # a real server on loopback, the same app and database as the test client
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(client.app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    try:
        codes: list[int] = []
        barrier = threading.Barrier(8)

        def edit(i: int) -> None:
            barrier.wait()
            r = httpx.put(f"http://127.0.0.1:{port}{url}", headers={**admin, "If-Match": '"1"'},
                          json={**PLAN, "measures": f"方案 {i}"}, timeout=30)
            codes.append(r.status_code)

        workers = [threading.Thread(target=edit, args=(i,)) for i in range(8)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert sorted(codes) == [200] + [409] * 7
    plan = client.get(url, headers=admin).json()
    assert plan["version"] == 2 and plan["measures"].startswith("方案 ")
    trail = client.get("/api/v1/audit?page_size=500", headers=admin).json()["items"]
    assert sum(1 for t in trail if t["action"] == "put_plan" and t["entity_key"] == f"2022/{firm}") == 2


def test_restart_keeps_everything(service):
    client, tokens = service
    admin = bearer(tokens["admin"])
    before = (client.get("/api/v1/lists/2022/final", headers=admin).json(),
              client.get("/api/v1/audit?page_size=500", headers=admin).json()["total"])
    db = client.app.state.settings.db
    client.app.state.con.close()  # the service stops (its file is released) …
    with TestClient(create_app(Settings(db=db))) as restarted:  # … and starts again on the same file
        after = (restarted.get("/api/v1/lists/2022/final", headers=admin).json(),
                 restarted.get("/api/v1/audit?page_size=500", headers=admin).json()["total"])
    assert after == before


def test_runs_while_serving_keep_verifications(tmp_path_factory):
    """A new run of the same year through the service: no lock error, history kept."""
    db, tokens = build_service_db(tmp_path_factory.mktemp("runs"))
    settings = Settings(db=db, runs_dir=tmp_path_factory.mktemp("runs_out"))
    admin = bearer(tokens["admin"])
    with TestClient(create_app(settings)) as client:
        first = client.get("/api/v1/lists/2022?page_size=500", headers=admin).json()
        rule1 = [i["uscc"] for i in first["items"] if i["rule_ids"] == "above_scale_low_tax_per_mu"]
        firm = rule1[0]
        assert client.post(f"/api/v1/enterprises/{firm}/verifications", headers=admin,
                           json={"year": 2022, "outcome": "confirmed"}).status_code == 201
        assert client.post("/api/v1/runs", headers=bearer(tokens["analyst"]), json={}).status_code == 403
        run = client.post("/api/v1/runs", headers=admin,
                          json={"year": 2022, "set": ["above_scale_low_tax_per_mu.ratio=0.01"]})
        assert run.status_code == 201, run.text
        body = run.json()
        assert body["run_id"] != first["run_id"] and body["listed"] < first["total"]
        second = client.get("/api/v1/lists/2022?page_size=500", headers=admin).json()
        assert second["run_id"] == body["run_id"] and second["total"] == body["listed"]
        record = client.get(f"/api/v1/enterprises/{firm}?year=2022", headers=admin).json()
        if firm not in {i["uscc"] for i in second["items"]}:
            assert record["listed"] is False and record["no_longer_flagged"] is True
        assert record["verifications"][0]["outcome"] == "confirmed"
        bad = client.post("/api/v1/runs", headers=admin, json={"set": ["nope.x=1"]})
        assert bad.status_code == 422 and "可用参数" in bad.json()["detail"]
        assert client.post("/api/v1/runs", headers=admin, json={"data": "../../etc"}).status_code == 422
        assert (settings.runs_dir / body["run_id"] / "list.csv").exists()


def test_runs_of_the_service_go_beside_the_database_whatever_the_working_directory(tmp_path_factory, monkeypatch):
    """SCREENING_RUNS_DIR unset: the output folders of runs started through the service are in
    ``runs/`` beside the database file (as the uploads), never in the working directory, which a
    service manager may set anywhere; the download route, backups and prune look there too."""
    db, tokens = build_service_db(tmp_path_factory.mktemp("beside"))
    elsewhere = tmp_path_factory.mktemp("cwd")
    monkeypatch.delenv("SCREENING_RUNS_DIR", raising=False)
    monkeypatch.chdir(elsewhere)
    settings = Settings(db=db)
    assert settings.runs() == db.parent / "runs" and settings.folders().runs_dir == db.parent / "runs"
    admin = bearer(tokens["admin"])
    with TestClient(create_app(settings)) as client:
        run = client.post("/api/v1/runs", headers=admin, json={"year": 2022})
        assert run.status_code == 201, run.text
        run_id = run.json()["run_id"]
        assert (db.parent / "runs" / run_id / "list.csv").is_file()
        assert not (elsewhere / "runs").exists()
        got = client.get(f"/api/v1/runs/{run_id}/files/list.csv", headers=admin)
        assert got.status_code == 200 and got.content == (db.parent / "runs" / run_id / "list.csv").read_bytes()
    monkeypatch.setenv("SCREENING_RUNS_DIR", str(elsewhere / "set"))
    assert Settings(db=db).runs() == elsewhere / "set"
