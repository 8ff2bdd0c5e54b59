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
