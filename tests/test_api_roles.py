"""The role × route matrix over every route of the OpenAPI document (issue 4, item 2).

Each role calls each route.  A refused role gets 403 (401 without a token); an admitted
role gets past authorization.  Writes are sent with a body the route must reject (422), so
the matrix changes nothing; the flows themselves are tested in test_api*.py.
"""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.auth import ROLE_ZH
from api.config import Settings
from api.main import create_app
from api_helpers import TOWNSHIP, bearer, build_service_db

pytestmark = pytest.mark.api

ADMIN, ANALYST, TOWN, DASH = "admin", "analyst", "township", "dashboard"

#: who may call each route (operation id → roles)
ALLOWED = {
    "lists-get": {ADMIN, ANALYST, TOWN},
    "lists-export": {ADMIN, ANALYST, TOWN},
    "lists-upload-verifications": {ADMIN, TOWN},
    "enterprises-get": {ADMIN, ANALYST, TOWN},
    "enterprises-verify": {ADMIN, TOWN},
    "evidence-upload": {ADMIN, TOWN},
    "evidence-get": {ADMIN, ANALYST, TOWN},
    "dashboard-get": {ADMIN, ANALYST, DASH},
    "finalization-decide": {ADMIN},
    "finalization-finalize": {ADMIN},
    "finalization-get": {ADMIN, ANALYST, TOWN},
    "finalization-export": {ADMIN},
    "audit-list": {ADMIN},
    "plans-put": {ADMIN},
    "plans-get": {ADMIN, ANALYST, TOWN},
    "plans-progress": {ADMIN, TOWN},
    "plans-complete": {ADMIN},
    "runs-create": {ADMIN},
    "runs-stage": {ADMIN},
    "runs-import": {ADMIN},
    "runs-prune": {ADMIN},
    "runs-check": {ADMIN, ANALYST},
    "runs-file": {ADMIN, ANALYST},
    "data-upload": {ADMIN},
    "backups-create": {ADMIN},
    "users-create": {ADMIN},
    "users-revoke": {ADMIN},
    "users-password": {ADMIN},
    "warnings-get": {ADMIN, ANALYST, TOWN},
    "projects-get": {ADMIN, ANALYST},
    "measures-compute": {ADMIN},
    "measures-list": {ADMIN, ANALYST, TOWN},
    "measures-ledger-upload": {ADMIN},
    "measures-ledger": {ADMIN, ANALYST, TOWN},
    "evaluations-create": {ADMIN},
    "evaluations-list": {ADMIN, ANALYST, TOWN},
    "evaluations-get": {ADMIN, ANALYST, TOWN},
    "evaluations-results": {ADMIN, ANALYST, TOWN},
    "evaluations-firm": {ADMIN, ANALYST, TOWN},
    "evaluations-confirm": {ADMIN, TOWN},
    "evaluations-publish": {ADMIN},
    "evaluations-publication": {ADMIN, ANALYST, TOWN},
    "evaluations-object": {ADMIN, TOWN},
    "evaluations-objections": {ADMIN, ANALYST, TOWN},
    "evaluations-review": {ADMIN},
    "evaluations-regrade": {ADMIN},
    "evaluations-finalize": {ADMIN},
    "evaluations-reproduce": {ADMIN, ANALYST},
}
PUBLIC = {"health-get"}
INVALID_BODY = {"__not_a_field__": True}


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    db, tokens = build_service_db(tmp_path_factory.mktemp("roles"))
    with TestClient(create_app(Settings(db=db))) as client:
        firm = client.get(f"/api/v1/lists/2022?township={TOWNSHIP}&page_size=1",
                          headers=bearer(tokens["admin"])).json()["items"][0]["uscc"]
        operations = [(method.upper(), path, op["operationId"])
                      for path, ops in client.app.openapi()["paths"].items() for method, op in ops.items()]
        yield client, tokens, firm, operations


def _call(client: TestClient, method: str, path: str, firm: str, headers: dict[str, str]):
    url = (path.replace("{year}", "2022").replace("{uscc}", firm).replace("{name}", "无此用户")
           .replace("{run_id}", "2022-20260101T080000-0a1b2c")
           .replace("{evaluation_id}", "E2021-20260101T080000-0a1b2c").replace("{population}", "规下"))
    if method == "GET":
        return client.get(url, headers=headers)
    if method == "DELETE":
        return client.delete(url, headers=headers)
    if url.endswith("/upload"):
        return client.post(url, headers=headers)  # no file: 422 once admitted
    return client.request(method, url, headers=headers, json=INVALID_BODY)


def test_every_route_is_in_the_matrix(matrix):
    _, _, _, operations = matrix
    assert {op for _, _, op in operations} == set(ALLOWED) | PUBLIC


@pytest.mark.parametrize("role", [ADMIN, ANALYST, TOWN, DASH])
def test_each_role_on_each_route(matrix, role):
    client, tokens, firm, operations = matrix
    wrong, refusals = [], set()
    for method, path, op in operations:
        if op in PUBLIC:
            continue
        response = _call(client, method, path, firm, bearer(tokens[role]))
        status = response.status_code
        admitted = role in ALLOWED[op]
        if (admitted and status in (401, 403)) or (not admitted and status != 403) or status >= 500:
            wrong.append((op, status))
        if status == 403 and not admitted:
            refusals.add(response.json()["detail"])
    assert not wrong, f"{role}: {wrong}"
    # a refusal names the role as people know it, in Chinese only (it once said “角色 township 无权使用此功能”,
    # then “乡镇街道角色（township）无权使用此功能”: the code is the program's, not the reader's)
    assert all(ROLE_ZH[role] in detail and role not in detail for detail in refusals), refusals


def test_no_token_is_401_on_every_route(matrix):
    client, _, firm, operations = matrix
    codes = {op: _call(client, method, path, firm, {}).status_code
             for method, path, op in operations if op not in PUBLIC}
    assert set(codes.values()) == {401}, codes


def test_writes_in_the_matrix_changed_nothing(matrix):
    client, tokens, _, _ = matrix
    log = client.get("/api/v1/audit", headers=bearer(tokens["admin"])).json()
    items = log["items"] if isinstance(log, dict) else log
    # the users made for the test on the file (本机命令行) are audited; nothing the matrix called is
    assert [i for i in items if i["user_name"] != "本机命令行"] == []
