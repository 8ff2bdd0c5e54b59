"""Hostile requests found by a review of the service (issue 10's kinds): every request body is
bounded, typed text holds no control characters, a code with a NUL finds no firm, and the
framework's own refusals are Chinese."""
from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from api.main import create_app
from api_helpers import bearer, build_service_db

pytestmark = pytest.mark.api

CHINESE = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    db, tokens = build_service_db(tmp_path_factory.mktemp("hostile"))
    with TestClient(create_app(Settings(db=db, body_max_bytes=64 * 1024))) as client:
        firm = client.get("/api/v1/lists/2022", headers=bearer(tokens["township"]),
                          params={"page_size": 1}).json()["items"][0]["uscc"]
        yield client, tokens, firm


def test_a_json_body_above_the_cap_is_413_before_it_is_read(service):
    """A 300 MB JSON note took the service up by 0.8 GB before it answered 422."""
    client, tokens, firm = service
    url = f"/api/v1/enterprises/{firm}/verifications"
    declared = client.post(url, headers={**bearer(tokens["township"]), "Content-Type": "application/json",
                                         "Content-Length": str(300 * 1024 ** 2)}, content=b"{}")
    assert declared.status_code == 413 and "过大" in declared.json()["detail"]

    def chunks():  # no Content-Length: counted while it arrives
        yield b'{"year": 2022, "outcome": "confirmed", "note": "'
        for _ in range(200):
            yield b"a" * 1024
        yield b'"}'

    streamed = client.post(url, headers={**bearer(tokens["township"]), "Content-Type": "application/json"},
                           content=chunks())
    assert streamed.status_code == 413 and "过大" in streamed.json()["detail"]
    small = client.post(url, headers=bearer(tokens["township"]),
                        json={"year": 2022, "outcome": "confirmed", "note": "现场核实无误"})
    assert small.status_code == 201, small.text


@pytest.mark.parametrize("path, body", [
    ("/api/v1/enterprises/{firm}/verifications", {"year": 2022, "outcome": "disputed", "reason": "停产\u0000\u001b[31m红"}),
    ("/api/v1/enterprises/{firm}/verifications", {"year": 2022, "outcome": "confirmed", "note": "\u0000" * 10}),
    ("/api/v1/enterprises/{firm}/dispute-decisions", {"year": 2022, "decision": "rejected", "note": "驳回\u0000\u0007"}),
    ("/api/v1/lists/2022/finalize", {"note": "定稿\u0000\u001b[2J"}),
], ids=["reason", "note", "decision", "finalize"])
def test_typed_text_with_control_characters_is_422(service, path, body):
    client, tokens, firm = service
    response = client.post(path.format(firm=firm), headers=bearer(tokens["admin"]), json=body)
    assert response.status_code == 422, response.text
    assert "控制字符" in response.json()["detail"]


def test_plan_text_with_control_characters_is_422(service):
    client, tokens, firm = service
    plan = {"disposition": "改造提升", "measures": "技改\u0000", "lead": "市经信局", "cooperating": ["发改\u0001"],
            "expected_land_mu": 0, "expected_energy_tce": 1, "milestones": [{"title": "诊断\u001b", "due": "2022-09-30"}]}
    response = client.put(f"/api/v1/enterprises/{firm}/plan", params={"year": 2022},
                          headers={**bearer(tokens["admin"]), "If-Match": '"0"'}, json=plan)
    assert response.status_code == 422, response.text
    fields = {e["field"] for e in response.json()["errors"]}
    assert {"measures", "cooperating.0", "milestones.0.title"} <= fields


def test_line_breaks_and_tabs_stay_allowed(service):
    client, tokens, firm = service
    response = client.post(f"/api/v1/enterprises/{firm}/verifications", headers=bearer(tokens["township"]),
                           json={"year": 2022, "outcome": "confirmed", "note": "第一行\n第二行\t备注"})
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("code", ["{firm}%00", "{firm}x", "abc", "{lower}"])
def test_a_code_that_is_not_18_capitals_or_digits_finds_no_firm(service, code):
    """`…/enterprises/<code>%00` answered 200 with the firm's record (NumPy drops trailing NULs)."""
    client, tokens, firm = service
    response = client.get(f"/api/v1/enterprises/{code.format(firm=firm, lower=firm.lower())}",
                          headers=bearer(tokens["admin"]), params={"year": 2022})
    assert response.status_code == 422, response.text
    assert CHINESE.search(response.json()["detail"])


@pytest.mark.parametrize("path", ["/api/v1/enterprises/{code}", "/api/v1/enterprises/{code}/plan"])
@pytest.mark.parametrize("code", ["{lower}", "{firm17}O", "{firm}x"])
def test_a_malformed_code_in_a_path_is_said_as_the_cli_says_it(service, path, code):
    """A lowercase code was answered "uscc：取值无效" (pydantic's English, replaced): the reason is the
    one the CLI gives for such a code in a file, and a code with I, O, S, V or Z never reaches a lookup."""
    from screening import uscc as uscc_mod
    client, tokens, firm = service
    code = code.format(firm=firm, lower=firm.lower(), firm17=firm[:17])
    response = client.get(path.format(code=code), headers=bearer(tokens["admin"]), params={"year": 2022})
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == f"请求内容无效：uscc：{uscc_mod.FORMAT_REASON}"


def test_the_read_model_never_matches_a_code_with_a_nul():
    import polars as pl

    from api.readmodel import ByFirm
    frame = ByFirm(pl.DataFrame({"uscc": ["91330381145618741G"], "v": [1]}))
    assert frame.rows("91330381145618741G") and frame.rows("91330381145618741G\x00") == []


@pytest.mark.parametrize("method, path, kwargs, status", [
    ("get", "/api/v1/nope", {}, 404),
    ("delete", "/api/v1/health", {}, 405),
    ("post", "/api/v1/lists/2022/finalize", {"content": b'{"note": "\xff\xfe"}'}, None),
    ("post", "/api/v1/lists/2022/finalize", {"content": b'{"note":'}, 422),
], ids=["unknown-address", "method", "bad-utf8", "broken-json"])
def test_the_frameworks_refusals_are_chinese(service, method, path, kwargs, status):
    client, tokens, _firm = service
    headers = {**bearer(tokens["admin"]), "Content-Type": "application/json"}
    response = getattr(client, method)(path, headers=headers, **kwargs)
    assert status is None or response.status_code == status, response.text
    assert 400 <= response.status_code < 500
    detail = response.json()["detail"]
    assert CHINESE.search(detail) and not re.search(r"[A-Za-z]{4,}", detail.replace("JSON", "").replace("UTF", "")), detail
    assert "：8：" not in detail  # a JSON syntax error names no character position as a field


@pytest.mark.parametrize("path, params", [
    ("/api/v1/lists/2022", {"townsip": "柳市镇"}),
    ("/api/v1/lists/2022", {"status": "confirmed"}),
    ("/api/v1/warnings/2022", {"min_risk": "2"}),
    ("/api/v1/dashboard/2022", {"year": "2021"}),
], ids=["misspelt-filter", "unknown-filter", "warnings", "dashboard"])
def test_an_unknown_query_parameter_is_422_not_ignored(service, path, params):
    """``?townsip=柳市镇`` answered the whole county's list, as if the filter had been applied."""
    client, tokens, _firm = service
    response = client.get(path, headers=bearer(tokens["admin"]), params=params)
    assert response.status_code == 422, response.text
    assert list(params)[0] in response.json()["detail"] and "可用的查询参数" in response.json()["detail"]


def test_known_query_parameters_still_work(service):
    client, tokens, _firm = service
    response = client.get("/api/v1/lists/2022", headers=bearer(tokens["admin"]),
                          params={"township": "柳市镇", "page": 1, "page_size": 5})
    assert response.status_code == 200 and response.json()["items"]
