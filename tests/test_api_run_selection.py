"""Which run a list year serves (issue 10, finding 9): after 定稿 the finalized run, whatever is
stored later; a later run of that year is a trial (试算) unless the admin explicitly replaces
the final list (audited); the record route defaults to the newest year whose run judged firms."""
from __future__ import annotations

import io
import json

import polars as pl
import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from api.main import create_app
from api_helpers import bearer, build_service_db

pytestmark = pytest.mark.api

RATIO = "above_scale_low_tax_per_mu.ratio=0.12"  # 247 firms on the sample instead of 223


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    db, tokens = build_service_db(tmp_path_factory.mktemp("selection"))
    settings = Settings(db=db, runs_dir=tmp_path_factory.mktemp("selection_runs"))
    with TestClient(create_app(settings)) as client:
        yield client, tokens


def _served(client, tokens) -> dict:
    """What each list route serves for 2022: run ids and list sizes."""
    admin, township = bearer(tokens["admin"]), bearer(tokens["township"])
    listed = client.get("/api/v1/lists/2022?page_size=500", headers=admin).json()
    own = client.get("/api/v1/lists/2022?page_size=500", headers=township).json()
    dash = client.get("/api/v1/dashboard/2022", headers=bearer(tokens["dashboard"])).json()
    csv = client.get("/api/v1/lists/2022/export?format=csv", headers=admin)
    exported = pl.read_csv(io.BytesIO(csv.content[3:]), infer_schema=False)
    return {"list": (listed["run_id"], listed["total"]), "township": (own["run_id"], own["total"]),
            "dashboard": (dash["run_id"], dash["listed"]), "export": exported.height,
            "finalized": (listed.get("finalized"), dash.get("finalized")), "codes": {i["uscc"] for i in listed["items"]}}


def _audit(client, tokens, action: str) -> list[dict]:
    items = client.get("/api/v1/audit?page_size=500", headers=bearer(tokens["admin"])).json()["items"]
    return [i for i in items if i["action"] == action]


def test_after_finalization_a_new_run_is_a_trial_until_the_final_list_is_replaced(service):
    client, tokens = service
    admin = bearer(tokens["admin"])
    before = _served(client, tokens)
    final_run, listed = before["list"]
    own_total = before["township"][1]
    firm = sorted(before["codes"])[0]
    assert client.post(f"/api/v1/enterprises/{firm}/verifications", headers=admin,
                       json={"year": 2022, "outcome": "confirmed"}).status_code == 201
    done = client.post("/api/v1/lists/2022/finalize", headers=admin, json={"allow_unresolved": True})
    assert done.status_code == 201 and done.json()["run_id"] == final_run

    # a new run of the finalized year, with another parameter: stored as a trial
    trial = client.post("/api/v1/runs", headers=admin, json={"year": 2022, "set": [RATIO]})
    assert trial.status_code == 201, trial.text
    body = trial.json()
    assert body["listed"] > listed and body["run_id"] != final_run
    after = _served(client, tokens)
    assert after["list"] == (final_run, listed) and after["dashboard"] == (final_run, listed)
    assert after["township"] == (final_run, own_total) and after["export"] == listed
    assert after["finalized"] == (True, True)
    assert body["trial"] is True and body["served_run_id"] == final_run and "试算" in body["notice"]
    assert _audit(client, tokens, "run")[0]["after"]["trial"] is True  # the run's record says so too
    assert client.get("/api/v1/lists/2022/final", headers=admin).json()["total"] == 1
    # a firm only the trial lists: its record is the finalized run's, where it is not listed
    cursor = client.app.state.con.cursor()
    try:
        newcomer = cursor.execute("SELECT uscc FROM run_list WHERE run_id = ? AND uscc NOT IN "
                                  "(SELECT uscc FROM run_list WHERE run_id = ?) LIMIT 1",
                                  [body["run_id"], final_run]).fetchall()[0][0]
    finally:
        cursor.close()
    record = client.get(f"/api/v1/enterprises/{newcomer}?year=2022", headers=admin).json()
    assert record["run_id"] == final_run and record["listed"] is False and record["no_longer_flagged"] is False

    # the admin replaces the final list explicitly: audited, and the new run is the year's list
    replaced = client.post("/api/v1/runs", headers=admin, json={"year": 2022, "set": [RATIO], "replace_final": True})
    assert replaced.status_code == 201, replaced.text
    new = replaced.json()
    assert new["trial"] is False and new["replaced_final"] is True and new["served_run_id"] == new["run_id"]
    line = _audit(client, tokens, "replace_final")
    assert len(line) == 1 and line[0]["user_name"] == "经信局"
    assert line[0]["before"]["finalization"]["run_id"] == final_run
    assert [e["uscc"] for e in line[0]["before"]["final_list"]] == [firm]
    assert line[0]["after"]["run_id"] == new["run_id"]
    now = _served(client, tokens)
    assert now["list"] == (new["run_id"], new["listed"]) and now["dashboard"] == (new["run_id"], new["listed"])
    assert now["export"] == new["listed"] and now["finalized"] == (False, False)
    assert client.get("/api/v1/lists/2022/final", headers=admin).status_code == 404
    assert client.get("/api/v1/dashboard/2022", headers=admin).json()["final"] == 0
    # the year can be verified and finalized again, on the new list
    again = client.post("/api/v1/lists/2022/finalize", headers=admin, json={"allow_unresolved": True})
    assert again.status_code == 201 and again.json()["run_id"] == new["run_id"]


def test_replace_final_on_a_year_not_finalized_is_an_ordinary_run(service, tmp_path):
    client, tokens = service
    admin = bearer(tokens["admin"])
    made = client.post("/api/v1/runs", headers=admin, json={"year": 2021, "replace_final": True})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["trial"] is False and body["replaced_final"] is False and body["served_run_id"] == body["run_id"]
    assert client.get("/api/v1/lists/2021", headers=admin).json()["run_id"] == body["run_id"]


def test_record_defaults_to_the_newest_year_whose_run_judged_firms(service):
    """A run for a list year the data do not reach (every rule insufficient_data) is stored,
    but the record route does not default to it."""
    client, tokens = service
    admin = bearer(tokens["admin"])
    firm = client.get("/api/v1/lists/2022?page_size=1", headers=admin).json()["items"][0]["uscc"]
    cursor = client.app.state.con.cursor()
    try:
        source = cursor.execute("SELECT run_id FROM runs WHERE list_year = 2022 ORDER BY created_at LIMIT 1"
                                ).fetchall()[0][0]
        counts = json.loads(cursor.execute("SELECT json_extract(record, '$.status_counts') FROM runs WHERE run_id = ?",
                                           [source]).fetchall()[0][0])
        nothing = {rule: {**dict.fromkeys(c, 0), "insufficient_data": sum(c.values())} for rule, c in counts.items()}
        cursor.execute("BEGIN TRANSACTION")
        cursor.execute("""
            INSERT INTO runs SELECT * REPLACE ('2025-empty' AS run_id, 2025 AS list_year, now() AS created_at, 0 AS listed,
                                               json_merge_patch(record, ?) AS record)
            FROM runs WHERE run_id = ?""", [json.dumps({"status_counts": nothing, "list_year": 2025}), source])
        cursor.execute("INSERT INTO run_enterprises SELECT * REPLACE ('2025-empty' AS run_id) FROM run_enterprises "
                       "WHERE run_id = ?", [source])
        cursor.execute("COMMIT")
    finally:
        cursor.close()
    client.app.state.read_model.wrote("/api/v1/runs")
    record = client.get(f"/api/v1/enterprises/{firm}", headers=admin)
    assert record.status_code == 200 and record.json()["year"] == 2022
    # asked for, the 2025 run is still there
    assert client.get(f"/api/v1/enterprises/{firm}?year=2025", headers=admin).json()["run_id"] == "2025-empty"
