"""Typed text with bidirectional overrides (U+202E …) and other invisible format characters: a
township user could make a reason display reversed (spoofed) on every page, export and printout.
They are taken out, as in cells read from department files; line breaks and tabs stay."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from api.main import create_app
from api_helpers import bearer
from web_helpers import build_web_db, sign_in

pytestmark = pytest.mark.api


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    db, tokens, _ = build_web_db(tmp_path_factory.mktemp("typed"))
    with TestClient(create_app(Settings(db=db))) as client:
        firm = client.get("/api/v1/lists/2022", headers=bearer(tokens["township"]),
                          params={"page_size": 1}).json()["items"][0]["uscc"]
        yield client, tokens, firm


def test_bidi_overrides_and_zero_width_characters_are_taken_out_of_typed_text(service):
    client, tokens, firm = service
    response = client.post(f"/api/v1/enterprises/{firm}/verifications", headers=bearer(tokens["township"]),
                           json={"year": 2022, "outcome": "disputed", "reason": "\u202e企业已关停\u202c\u200b",
                                 "note": "第一行\n\u2066第二行\u2069\t备注\u200f"})
    assert response.status_code == 201, response.text
    stored = response.json()
    assert stored["reason"] == "企业已关停" and stored["note"] == "第一行\n第二行\t备注"
    record = client.get(f"/api/v1/enterprises/{firm}", params={"year": 2022}, headers=bearer(tokens["admin"])).json()
    assert all("\u202e" not in (v.get("reason") or "") for v in record["verifications"])


def test_a_reason_of_only_invisible_characters_is_no_reason(service):
    client, tokens, firm = service
    response = client.post(f"/api/v1/enterprises/{firm}/verifications", headers=bearer(tokens["township"]),
                           json={"year": 2022, "outcome": "disputed", "reason": "\u200b\u202e"})
    assert response.status_code == 422, response.text



FULL_WIDTH = {ord(c): ord(c) + 0xFEE0 for c in "0123456789ABCDEFGHJKLMNPQRTUWXY"}


@pytest.mark.parametrize("how", ["full_width", "lower", "zero_width", "spaces"])
def test_a_code_pasted_from_a_chat_or_pdf_finds_the_firm(service, how):
    """A clerk pastes a code from WeChat or a PDF into the search box or the address bar: full-width,
    lower case, a zero-width space, spaces.  (The API's path stays exact: 18 capitals or digits.)"""
    client, tokens, firm = service
    typed = {"full_width": firm.translate(FULL_WIDTH), "lower": firm.lower(), "zero_width": firm[:9] + "\u200b" + firm[9:],
             "spaces": f" {firm[:4]} {firm[4:]}\u3000"}[how]
    found = client.get("/api/v1/lists/2022", params={"q": typed}, headers=bearer(tokens["township"])).json()
    assert [f["uscc"] for f in found["items"]] == [firm]
    sign_in(client, "township")
    page = client.get(f"/firms/{typed}", params={"year": 2022})
    assert page.status_code == 200 and firm in page.text
    listed = client.get("/lists/2022", params={"q": typed})
    assert f"/firms/{firm}" in listed.text
    client.cookies.clear()
