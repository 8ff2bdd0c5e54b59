"""The record route's in-memory read model answers exactly as DuckDB does, and a write is
visible to the very next read (api/readmodel.py)."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from api.main import create_app
from api_helpers import TOWNSHIP, bearer, build_service_db

pytestmark = pytest.mark.api


@pytest.fixture(scope="module")
def two_apps(tmp_path_factory):
    """One database, served with runs in memory and without (one process may open a file twice)."""
    db, tokens = build_service_db(tmp_path_factory.mktemp("readmodel"))
    with TestClient(create_app(Settings(db=db, cache_runs=2))) as cached, \
            TestClient(create_app(Settings(db=db, cache_runs=0))) as direct:
        cached.app.state.read_model.wait_loaded()
        yield cached, direct, tokens


def _firms(client, tokens, n: int) -> list[str]:
    """Listed and unlisted firms, and codes that exist nowhere."""
    admin = bearer(tokens["admin"])
    listed = [r["uscc"] for r in client.get(f"/api/v1/lists/2022?page_size={n}", headers=admin).json()["items"]]
    cursor = client.app.state.con.cursor()
    try:
        unlisted = [r[0] for r in cursor.execute(
            "SELECT uscc FROM run_enterprises WHERE uscc NOT IN (SELECT uscc FROM run_list) ORDER BY uscc LIMIT ?",
            [n]).fetchall()]
    finally:
        cursor.close()
    return listed + unlisted + ["91330382MA2XXXXXXX", "not-a-code"]


def _same_everywhere(two_apps, codes: list[str], token: str) -> None:
    cached, direct, _ = two_apps
    direct.app.state.read_model.wrote("/")  # writes went through the other app (one writer per file in service)
    for code in codes:
        a = cached.get(f"/api/v1/enterprises/{code}?year=2022", headers=bearer(token))
        b = direct.get(f"/api/v1/enterprises/{code}?year=2022", headers=bearer(token))
        assert a.status_code == b.status_code, code
        assert a.json() == b.json(), code


def test_runs_are_loaded_into_memory(two_apps):
    cached, direct, _ = two_apps
    assert cached.app.state.read_model._frames, "the newest run should be in memory"
    assert not direct.app.state.read_model._frames


@pytest.mark.parametrize("role", ["admin", "township"])
def test_memory_and_duckdb_give_the_same_record(two_apps, role):
    cached, _, tokens = two_apps
    _same_everywhere(two_apps, _firms(cached, tokens, 15), tokens[role])


def test_a_write_is_seen_by_the_next_read(two_apps):
    cached, _, tokens = two_apps
    township = bearer(tokens["township"])
    code = cached.get(f"/api/v1/lists/2022?township={TOWNSHIP}&page_size=1",
                      headers=bearer(tokens["admin"])).json()["items"][0]["uscc"]
    before = cached.get(f"/api/v1/enterprises/{code}?year=2022", headers=township).json()
    written = cached.post(f"/api/v1/enterprises/{code}/verifications", headers=township,
                          json={"year": 2022, "outcome": "confirmed", "note": "现场核实"})
    assert written.status_code == 201, written.text
    after = cached.get(f"/api/v1/enterprises/{code}?year=2022", headers=township).json()
    assert len(after["verifications"]) == len(before["verifications"]) + 1
    assert len(after["change_history"]) == len(before["change_history"]) + 1
    _same_everywhere(two_apps, [code], tokens["township"])  # the other app reads the same file


def test_a_revoked_token_is_refused_at_once(two_apps):
    cached, _, tokens = two_apps
    admin = bearer(tokens["admin"])
    made = cached.post("/api/v1/users", headers=admin, json={"name": "临时", "role": "analyst"}).json()
    assert cached.get("/api/v1/lists/2022", headers=bearer(made["token"])).status_code == 200  # now cached
    assert cached.delete("/api/v1/users/临时", headers=admin).status_code == 200
    assert cached.get("/api/v1/lists/2022", headers=bearer(made["token"])).status_code == 401


ORACLE = """
    SELECT l.uscc
    FROM run_list l
    LEFT JOIN (SELECT uscc, list_year, arg_max(outcome, (created_at, verification_id)) AS outcome
               FROM verifications GROUP BY ALL) v ON v.uscc = l.uscc AND v.list_year = l.list_year
    WHERE l.run_id = ? AND (? IS NULL OR l.township = ?) AND (? IS NULL OR coalesce(v.outcome, 'pending') = ?)
    ORDER BY {order}, l.uscc
"""
ORDERS = {"township": "l.township", "uscc": "l.uscc", "tax_per_mu": "l.tax_per_mu NULLS LAST",
          "land_mu": "l.land_mu DESC NULLS LAST", "energy_tce": "l.energy_tce DESC NULLS LAST",
          "hit_count": "l.hit_count DESC"}


@pytest.mark.parametrize("sort", list(ORDERS))
@pytest.mark.parametrize(("township", "verification"), [(None, None), (TOWNSHIP, None), (None, "pending")])
def test_list_pages_match_the_database(two_apps, sort, township, verification):
    """Every page of the in-memory list equals SQL over the stored tables (order, filters, totals)."""
    cached, _, tokens = two_apps
    admin = bearer(tokens["admin"])
    query = f"/api/v1/lists/2022?sort={sort}&page_size=200" + (f"&township={township}" if township else "") \
        + (f"&verification={verification}" if verification else "")
    first = cached.get(query, headers=admin).json()
    cursor = cached.app.state.con.cursor()
    try:
        expected = [r[0] for r in cursor.execute(ORACLE.format(order=ORDERS[sort]),
                                                 [first["run_id"], township, township, verification,
                                                  verification]).fetchall()]
    finally:
        cursor.close()
    got, page = [], 1
    while True:
        body = cached.get(f"{query}&page={page}", headers=admin).json()
        got += [item["uscc"] for item in body["items"]]
        if len(body["items"]) < 200:
            break
        page += 1
    assert first["total"] == len(expected)
    assert got == expected
