"""The HTTP API of the contract: roles, township isolation, lists, records, verification, dashboard."""
from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from api.main import create_app
from api_helpers import OTHER, TOWNSHIP, bearer, build_service_db
from cli_helpers import cli
from screening.store import connect

pytestmark = pytest.mark.api


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """The sample screened into a database, users for every role, and a client on the app."""
    db, tokens = build_service_db(tmp_path_factory.mktemp("api"))
    con = connect(db)
    stored = con.execute("SELECT count(*) FROM users WHERE token_sha256 IN (?, ?)",
                         [tokens["admin"], tokens["analyst"]]).fetchall()[0][0]
    con.close()
    assert stored == 0  # tokens themselves are never stored
    with TestClient(create_app(Settings(db=db))) as client:
        yield client, tokens


_h = bearer


def _firm(client, tokens, township: str) -> str:
    body = client.get(f"/api/v1/lists/2022?township={township}&page_size=1", headers=_h(tokens["admin"])).json()
    return body["items"][0]["uscc"]


def test_health_needs_no_token(service):
    client, _ = service
    # the contract's {"status": "ok"}, and the age of the last backup (none yet: null; docs/backup.md)
    assert client.get("/api/v1/health").json() == {"status": "ok", "last_backup_age_hours": None}


@pytest.mark.parametrize("path", ["/api/v1/lists/2022", "/api/v1/dashboard/2022", "/api/v1/enterprises/X"])
@pytest.mark.parametrize("token", [None, "wrong", "revoked"])
def test_missing_bad_or_revoked_token_is_401(service, path, token):
    client, tokens = service
    headers = {} if token is None else _h(tokens.get(token, token))
    assert client.get(path, headers=headers).status_code == 401


@pytest.mark.parametrize(("role", "lists", "record", "verify", "dashboard"), [
    ("admin", 200, 200, 201, 200),
    ("township", 200, 200, 201, 403),
    ("analyst", 200, 200, 403, 200),
    ("dashboard", 403, 403, 403, 200),
])
def test_role_route_matrix(service, role, lists, record, verify, dashboard):
    client, tokens = service
    firm = _firm(client, tokens, TOWNSHIP)
    h = _h(tokens[role])
    assert client.get("/api/v1/lists/2022", headers=h).status_code == lists
    assert client.get(f"/api/v1/enterprises/{firm}?year=2022", headers=h).status_code == record
    body = {"year": 2022, "outcome": "confirmed", "note": f"{role} 核实"}
    assert client.post(f"/api/v1/enterprises/{firm}/verifications", headers=h, json=body).status_code == verify
    assert client.get("/api/v1/dashboard/2022", headers=h).status_code == dashboard


def test_list_paging_filters_and_totals(service):
    client, tokens = service
    h = _h(tokens["admin"])
    full = client.get("/api/v1/lists/2022?page_size=500", headers=h).json()
    assert full["total"] == len(full["items"]) == 223
    pages = [client.get(f"/api/v1/lists/2022?page={p}&page_size=100", headers=h).json()["items"] for p in (1, 2, 3)]
    assert [i["uscc"] for page in pages for i in page] == [i["uscc"] for i in full["items"]]
    rule = client.get("/api/v1/lists/2022?rule=energy_limit_exceeded", headers=h).json()
    assert rule["total"] == 4 and all("energy_limit_exceeded" in i["rule_ids"].split(";") for i in rule["items"])
    item = full["items"][0]
    assert {"uscc", "name", "township", "rule_ids", "reasons", "suggested_disposition"} <= set(item)
    assert client.get("/api/v1/lists/2022?page_size=501", headers=h).status_code == 422
    assert client.get("/api/v1/lists/2022?page=0", headers=h).status_code == 422
    assert client.get("/api/v1/lists/2031", headers=h).status_code == 404


def test_township_sees_only_its_own_firms(service):
    client, tokens = service
    h = _h(tokens["township"])
    mine = client.get("/api/v1/lists/2022?page_size=500", headers=h).json()
    assert mine["total"] == len(mine["items"]) > 0
    assert {i["township"] for i in mine["items"]} == {TOWNSHIP}
    # asking for another township does not widen the view: refused, as the export refuses it
    asked = client.get(f"/api/v1/lists/2022?township={OTHER}", headers=h)
    assert asked.status_code == 403 and OTHER not in asked.json()["detail"]
    other = _firm(client, tokens, OTHER)
    assert client.get(f"/api/v1/enterprises/{other}", headers=h).status_code == 404
    body = {"year": 2022, "outcome": "confirmed"}
    assert client.post(f"/api/v1/enterprises/{other}/verifications", headers=h, json=body).status_code == 404


def test_enterprise_record_carries_every_rule_with_evidence(service):
    client, tokens = service
    firm = _firm(client, tokens, TOWNSHIP)
    record = client.get(f"/api/v1/enterprises/{firm}", headers=_h(tokens["analyst"])).json()
    assert record["uscc"] == firm and record["township"] == TOWNSHIP and record["year"] == 2022
    assert record["listed"] is True and record["plan"] is None
    assert {r["rule_id"] for r in record["results"]} == {
        "above_scale_low_tax_per_mu", "below_scale_consecutive_c_grade",
        "below_scale_consecutive_low_tax_per_mu", "energy_limit_exceeded"}
    hits = [r for r in record["results"] if r["status"] == "hit"]
    assert hits and all(r["reason"] and r["citation"] for r in hits)
    assert isinstance(record["verifications"], list)
    assert client.get("/api/v1/enterprises/913303820000000000", headers=_h(tokens["admin"])).status_code == 404


def test_verification_flow_and_validation(service):
    client, tokens = service
    h = _h(tokens["township"])
    firm = client.get("/api/v1/lists/2022?page=2&page_size=1", headers=h).json()["items"][0]["uscc"]
    body = {"year": 2022, "outcome": "disputed", "reason": "企业已关停", "note": "2022年3月停产"}
    created = client.post(f"/api/v1/enterprises/{firm}/verifications", headers=h, json=body)
    assert created.status_code == 201
    stored = created.json()
    assert stored["outcome"] == "disputed" and stored["reason"] == "企业已关停" and stored["created_by"] == "柳市"
    record = client.get(f"/api/v1/enterprises/{firm}", headers=h).json()
    assert record["verifications"][-1]["verification_id"] == stored["verification_id"]
    listed = client.get("/api/v1/lists/2022?page=2&page_size=1", headers=h).json()["items"][0]
    assert listed["verification_status"] == "disputed"
    dash = client.get("/api/v1/dashboard/2022", headers=_h(tokens["admin"])).json()
    assert dash["verification"]["disputed"] >= 1

    bad = [
        {"year": 2022, "outcome": "disputed"},            # a dispute needs its reason
        {"year": 2022, "outcome": "maybe"},
        {"outcome": "confirmed"},
        {"year": "x", "outcome": "confirmed"},
        {"year": 2022, "outcome": "confirmed", "extra": 1},
    ]
    for body in bad:
        response = client.post(f"/api/v1/enterprises/{firm}/verifications", headers=h, json=body)
        assert response.status_code == 422, body
        assert response.json()["detail"].startswith("请求内容无效")
    assert client.post(f"/api/v1/enterprises/{firm}/verifications", headers=h, content=b"{not json").status_code == 422


def test_verification_of_a_firm_not_on_the_list_is_refused(service):
    client, tokens = service
    h = _h(tokens["admin"])
    listed = {i["uscc"] for i in client.get("/api/v1/lists/2022?page_size=500", headers=h).json()["items"]}
    record = client.get("/api/v1/enterprises/" + next(iter(listed)), headers=h).json()
    assert record["listed"]
    import duckdb  # any unlisted firm of the run

    con: duckdb.DuckDBPyConnection = client.app.state.con.cursor()
    unlisted = con.execute("SELECT uscc FROM run_enterprises WHERE uscc NOT IN (SELECT uscc FROM run_list) LIMIT 1"
                           ).fetchall()[0][0]
    response = client.post(f"/api/v1/enterprises/{unlisted}/verifications", headers=h,
                           json={"year": 2022, "outcome": "confirmed"})
    assert response.status_code == 422 and "不在 2022 年度清单" in response.json()["detail"]


def test_dashboard_aggregates_only(service):
    client, tokens = service
    dash = client.get("/api/v1/dashboard/2022", headers=_h(tokens["dashboard"])).json()
    assert dash["listed"] == 223 and dash["final"] == 0
    assert sum(t["listed"] for t in dash["by_township"]) == 223
    assert {"township", "listed", "land_mu", "energy_tce"} <= set(dash["by_township"][0])
    assert dash["targets"]["firms"]["target"] == 150 and dash["targets"]["land_mu"]["target"] == 300
    assert dash["targets"]["energy_tce"]["target"] == 5000
    assert "uscc" not in str(dash)


def test_openapi_documents_the_routes(service):
    client, _ = service
    spec = client.get("/openapi.json").json()
    for path in ("/api/v1/health", "/api/v1/lists/{year}", "/api/v1/enterprises/{uscc}",
                 "/api/v1/enterprises/{uscc}/verifications", "/api/v1/dashboard/{year}"):
        assert path in spec["paths"]
    assert "401" in spec["paths"]["/api/v1/lists/{year}"]["get"]["responses"]


def test_users_cli_refuses_bad_roles(tmp_path: Path):
    db = tmp_path / "u.duckdb"
    for args in (["--role", "boss"], ["--role", "township"], ["--role", "admin", "--township", TOWNSHIP]):
        proc = cli("users", "add", "--db", db, "--name", "x", *args, cwd=tmp_path)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert cli("users", "add", "--db", db, "--name", "x", "--role", "analyst", cwd=tmp_path).returncode == 0
    duplicate = cli("users", "add", "--db", db, "--name", "x", "--role", "analyst", cwd=tmp_path)
    assert duplicate.returncode == 2 and "已存在" in duplicate.stderr
    assert cli("users", "revoke", "--db", db, "--name", "x", cwd=tmp_path).returncode == 0
    assert cli("users", "revoke", "--db", db, "--name", "x", cwd=tmp_path).returncode == 2


def test_dashboard_year_over_year_and_industries(service, tmp_path):
    client, tokens = service
    h = _h(tokens["admin"])
    dash = client.get("/api/v1/dashboard/2022", headers=h).json()
    assert dash["year_over_year"] is None  # no 2021 list in this database
    assert sum(i["listed"] for i in dash["by_industry"]) == dash["listed"]
    # a 2021 list into the same database: the 2022 dashboard compares with it
    db = client.app.state.settings.db
    con = client.app.state.con
    from screening.outputs import planned_outputs, write_all, write_run_json
    from screening.screen import screen

    with screen(None, 2021, keep_tables=False, host=con) as s:
        assert write_all(s, tmp_path / "out", None) is None
        write_run_json(s, tmp_path / "out", planned_outputs(s, tmp_path / "out"))
    client.app.state.read_model.wrote("/api/v1/runs")  # stored behind the routes' back: say so, as POST /runs does
    change = client.get("/api/v1/dashboard/2022", headers=h).json()["year_over_year"]
    listed_2021 = client.get("/api/v1/lists/2021", headers=h).json()["total"]
    assert change["previous_year"] == 2021
    assert change["entered"] + change["stayed"] == dash["listed"]
    assert change["left"] + change["stayed"] == listed_2021
    assert db.exists()


def test_admin_manages_users_while_serving(service):
    client, tokens = service
    admin = _h(tokens["admin"])
    body = {"name": "新乡镇用户", "role": "township", "township": TOWNSHIP}
    assert client.post("/api/v1/users", headers=_h(tokens["analyst"]), json=body).status_code == 403
    created = client.post("/api/v1/users", headers=admin, json=body)
    assert created.status_code == 201
    token = created.json()["token"]
    assert client.get("/api/v1/lists/2022", headers=_h(token)).json()["total"] > 0
    assert client.post("/api/v1/users", headers=admin, json=body).status_code == 409
    assert client.post("/api/v1/users", headers=admin, json={"name": "x", "role": "township"}).status_code == 422
    assert client.delete("/api/v1/users/新乡镇用户", headers=admin).status_code == 200
    assert client.get("/api/v1/lists/2022", headers=_h(token)).status_code == 401
    assert client.delete("/api/v1/users/新乡镇用户", headers=admin).status_code == 404


def test_list_filters_and_sorting(service):
    client, tokens = service
    h = _h(tokens["admin"])
    full = client.get("/api/v1/lists/2022?page_size=500", headers=h).json()["items"]
    by_industry = client.get("/api/v1/lists/2022?industry=38&page_size=500", headers=h).json()
    assert by_industry["total"] == sum(i["industry_code"].startswith("38") for i in full)
    moved = client.get("/api/v1/lists/2022?disposition=搬迁入园&page_size=500", headers=h).json()
    assert moved["total"] == sum(i["suggested_disposition"] == "搬迁入园" for i in full) > 0
    pending = client.get("/api/v1/lists/2022?verification=pending&page_size=500", headers=h).json()
    done = client.get("/api/v1/lists/2022?verification=confirmed&page_size=500", headers=h).json()
    disputed = client.get("/api/v1/lists/2022?verification=disputed&page_size=500", headers=h).json()
    assert pending["total"] + done["total"] + disputed["total"] == len(full)
    land = [i["land_mu"] for i in client.get("/api/v1/lists/2022?sort=land_mu&page_size=500", headers=h).json()["items"]]
    known = [x for x in land if x is not None]
    assert known == sorted(known, reverse=True)
    assert client.get("/api/v1/lists/2022?sort=name; DROP TABLE users", headers=h).status_code == 422


@pytest.mark.parametrize("role", ["admin", "township"])
@pytest.mark.parametrize(("url", "param", "value", "listed"), [
    ("/api/v1/lists/2022", "rule", "nope", "above_scale_low_tax_per_mu"),
    ("/api/v1/lists/2022", "township", "柳市", TOWNSHIP),
    ("/api/v1/lists/2022", "township", "不存在镇", OTHER),
    ("/api/v1/lists/2022", "industry", "3x", "38"),
    ("/api/v1/lists/2022", "verification", "done", "confirmed"),
    ("/api/v1/lists/2022", "disposition", "关停", "改造提升"),
])
def test_unknown_filter_values_are_422_naming_the_valid_ones(service, role, url, param, value, listed):
    """?rule=nope once answered 200 with an empty list (issue 10): a filter value the data do not
    know is a mistake the caller must hear about."""
    client, tokens = service
    if role == "township" and param == "township":
        return  # a township user never names another township: see the test below
    r = client.get(url, headers=_h(tokens[role]), params={param: value})
    assert r.status_code == 422, r.text
    assert value in r.json()["detail"] and listed in r.json()["detail"]
    assert client.get(url, headers=_h(tokens[role]), params={param: listed}).status_code == 200


@pytest.mark.parametrize("url", ["/api/v1/lists/2022", "/api/v1/lists/2022/export"])
def test_a_township_user_naming_another_township_is_refused_alike_on_list_and_export(service, url):
    """The list answered 200 with nothing and the export 403 for the same question; an unknown
    name was 422 listing every township of the county.  Now both refuse (403) without naming any."""
    client, tokens = service
    h = _h(tokens["township"])
    for asked in (OTHER, "无此镇"):
        r = client.get(url, headers=h, params={"township": asked})
        assert r.status_code == 403, (asked, r.text)
        assert OTHER not in r.json()["detail"] and "无此镇" not in r.json()["detail"]
    for own in (TOWNSHIP, f" {TOWNSHIP} ", ""):
        assert client.get(url, headers=h, params={"township": own}).status_code == 200


def test_an_unknown_township_in_the_export_is_422(service):
    client, tokens = service
    r = client.get("/api/v1/lists/2022/export", headers=_h(tokens["admin"]), params={"township": "柳市"})
    assert r.status_code == 422 and TOWNSHIP in r.json()["detail"]


def test_record_holds_indicators_by_year_and_change_history(service):
    client, tokens = service
    h = _h(tokens["admin"])
    firm = _firm(client, tokens, TOWNSHIP)
    record = client.get(f"/api/v1/enterprises/{firm}?year=2022", headers=h).json()
    years = [row["year"] for row in record["indicators"]]
    assert years == sorted(years) and {2020, 2021} <= set(years)  # 2019 too once a 2021 run is stored
    assert all("grade" in row and "tax_per_mu" in row for row in record["indicators"])
    assert any(c["action"] == "verify" for c in record["change_history"])


@pytest.mark.parametrize("busy", ["runs", "evaluations"])
def test_prune_waits_while_a_screening_or_an_evaluation_is_computed(service, busy):
    """A screening or an evaluation being computed reads an upload folder no stored record names
    yet: a prune then would remove it under the job.  It answers 409 until the job is done."""
    from api.routes import evaluations, runs

    client, tokens = service
    lock = {"runs": runs, "evaluations": evaluations}[busy]._one_at_a_time
    body = {"keep": 1, "dry_run": True}
    with lock:
        answer = client.post("/api/v1/runs/prune", headers=_h(tokens["admin"]), json=body)
        assert answer.status_code == 409 and "稍后" in answer.json()["detail"]
    assert client.post("/api/v1/runs/prune", headers=_h(tokens["admin"]), json=body).status_code == 200
    assert not runs._one_at_a_time.locked() and not evaluations._one_at_a_time.locked()
