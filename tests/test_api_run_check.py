"""GET /api/v1/runs/{run_id}/check (issue 12, item 6): the intake report a run wrote as
check.json, served from the run's stored record."""
from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from api.main import create_app
from api_helpers import bearer, build_service_db

pytestmark = pytest.mark.api


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("runcheck")
    db, tokens = build_service_db(root)
    with TestClient(create_app(Settings(db=db))) as client:
        yield client, tokens, root / "out"


def test_the_served_report_is_the_runs_check_json(served):
    client, tokens, out = served
    run_id = json.loads((out / "run.json").read_text(encoding="utf-8"))["run_id"]
    written = json.loads((out / "check.json").read_text(encoding="utf-8"))
    for role in ("admin", "analyst"):
        resp = client.get(f"/api/v1/runs/{run_id}/check", headers=bearer(tokens[role]))
        assert resp.status_code == 200, resp.text
        report = resp.json()
        assert report["tables"] == written["tables"]
        assert report == written
    assert set(report["tables"]) >= {"enterprises", "stats", "tax", "land"}
    assert report["tables"]["enterprises"]["rows"]["accepted"] > 0


def test_an_unknown_run_is_404_in_chinese(served):
    client, tokens, _ = served
    resp = client.get("/api/v1/runs/2022-20260101T080000-0a1b2c/check", headers=bearer(tokens["admin"]))
    assert resp.status_code == 404
    assert "没有运行" in resp.json()["detail"]


@pytest.mark.parametrize("run_id", ["abc", "2022-20260101T080000-0A1B2C", "2022-20260101T080000-0a1b2c'--"])
def test_a_malformed_run_id_is_refused_before_any_lookup(served, run_id):
    client, tokens, _ = served
    resp = client.get(f"/api/v1/runs/{run_id}/check", headers=bearer(tokens["admin"]))
    assert resp.status_code == 422
    assert re.search(r"[\u4e00-\u9fff]", json.dumps(resp.json(), ensure_ascii=False))


@pytest.mark.parametrize("role", ["township", "dashboard"])
def test_township_and_dashboard_may_not_read_it(served, role):
    client, tokens, _ = served
    assert client.get("/api/v1/runs/2022-20260101T080000-0a1b2c/check", headers=bearer(tokens[role])).status_code == 403
