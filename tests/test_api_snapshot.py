"""One snapshot per request (issue 10, finding 1): while runs are stored, no list, export or
record response holds a row of another township or outside its filter, and totals match items.

Runs are stored here by copying the stored 2022 run under new run ids, straight into the
service's database, and telling the service as POST /api/v1/runs does (``wrote``): a copy
takes milliseconds, so the tests can store a run between any two steps of a request.
"""
from __future__ import annotations

import io
import itertools
import random
import threading
import time
from contextlib import contextmanager

import polars as pl
import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from api.main import create_app
from api_helpers import OTHER, TOWNSHIP, bearer, build_service_db

pytestmark = pytest.mark.api

YEAR = 2022
ROLES = ("admin", "analyst", "township", "other_township")
RULES = ("above_scale_low_tax_per_mu", "below_scale_consecutive_c_grade", "below_scale_consecutive_low_tax_per_mu",
         "energy_limit_exceeded")
SORTS = ("township", "uscc", "tax_per_mu", "land_mu", "energy_tce", "hit_count")
_copies = itertools.count(1)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    db, tokens = build_service_db(tmp_path_factory.mktemp("snapshot"))
    with TestClient(create_app(Settings(db=db))) as client:
        client.app.state.read_model.wait_loaded()
        yield client, tokens


def _query(cursor, sql: str, params: list) -> list[dict]:
    cur = cursor.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def store_run(app, year: int = YEAR, results: bool = True) -> str:
    """A copy of the year's first stored run under a new id, stored in one transaction, then
    the service is told as after POST /api/v1/runs.  ``results=False`` leaves out the rule
    results (the slow part of a copy), for tests that read lists only."""
    cursor = app.state.con.cursor()
    try:
        source = cursor.execute("SELECT run_id FROM runs WHERE list_year = ? ORDER BY created_at LIMIT 1",
                                [year]).fetchall()[0][0]
        new = f"{year}-copy-{next(_copies):04d}"
        tables = [r[0] for r in cursor.execute("""
            SELECT table_name FROM duckdb_columns()
            WHERE schema_name = 'main' AND column_name = 'run_id' AND table_name LIKE 'run\\_%' ESCAPE '\\'
        """).fetchall() if results or r[0] != "run_results"]
        cursor.execute("BEGIN TRANSACTION")
        cursor.execute("INSERT INTO runs SELECT * REPLACE (? AS run_id, now() AS created_at) FROM runs WHERE run_id = ?",
                       [new, source])
        for table in tables:
            cursor.execute(f"INSERT INTO {table} SELECT * REPLACE (? AS run_id) FROM {table} WHERE run_id = ?",
                           [new, source])
        cursor.execute("COMMIT")
    finally:
        cursor.close()
    app.state.read_model.wrote("/api/v1/runs")
    return new


@contextmanager
def store_between_reads(app, results: bool, per_request: int = 5):
    """Store a run after each call a request makes into the read model (up to ``per_request``
    per request; calls the model makes to itself aside): the interleaving a concurrent
    POST /runs can produce, forced deterministically."""
    model = app.state.read_model
    budget = {"left": 0}
    depth = threading.local()
    skip = {"wrote", "preload", "wait_loaded"}
    names = [n for n, a in vars(type(model)).items() if callable(a) and not n.startswith("_") and n not in skip]

    def wrap(method):
        def wrapped(*args, **kwargs):
            depth.n = getattr(depth, "n", 0) + 1
            try:
                result = method(*args, **kwargs)
            finally:
                depth.n -= 1
            if budget["left"] > 0 and depth.n == 0:
                budget["left"] -= 1
                store_run(app, results=results)
            return result
        return wrapped

    for name in names:
        setattr(model, name, wrap(getattr(model, name)))

    def arm():
        budget["left"] = per_request

    try:
        yield arm
    finally:
        for name in names:
            delattr(model, name)


# ------------------------------------------------------------------ what a response must hold

def _oracle(client, run: str, f: dict, own: str | None) -> list[dict]:
    """The run's list rows that pass the filters, from the database (verification filters aside)."""
    cursor = client.app.state.con.cursor()
    try:
        rows = _query(cursor, "SELECT * EXCLUDE (run_id, list_year) FROM run_list WHERE run_id = ?", [run])
    finally:
        cursor.close()
    keep = []
    for r in rows:
        if own and r["township"] != own:
            continue
        if f.get("township") and r["township"] != f["township"]:
            continue
        if f.get("rule") and f["rule"] not in r["rule_ids"].split(";"):
            continue
        if f.get("industry") and not (r["industry_code"] or "").startswith(f["industry"]):
            continue
        if f.get("disposition") and r["suggested_disposition"] != f["disposition"]:
            continue
        keep.append(r)
    return keep


def check_list(client, tokens, role: str, f: dict) -> None:
    own = {"township": TOWNSHIP, "other_township": OTHER}.get(role)
    r = client.get(f"/api/v1/lists/{YEAR}", headers=bearer(tokens[role]), params=f)
    if own and f.get("township", own) != own:  # another township's name: refused, never an empty page
        assert r.status_code == 403, r.text
        return
    assert r.status_code == 200, r.text
    body = r.json()
    page, size = f.get("page", 1), f.get("page_size", 50)
    expected = _oracle(client, body["run_id"], f, own)
    if own:
        assert {i["township"] for i in body["items"]} <= {own}, f"{role} received another township's rows"
    assert body["total"] == len(expected), (role, f)
    assert len(body["items"]) == max(0, min(size, body["total"] - (page - 1) * size)), (role, f)
    by_code = {e["uscc"]: e for e in expected}
    for item in body["items"]:
        row = by_code.get(item["uscc"])
        assert row is not None, f"{item['uscc']} ({item['township']}) is outside the filter {f} for {role}"
        assert {k: item[k] for k in row} == row, "the item is not the run's row of that firm"
    assert len({i["uscc"] for i in body["items"]}) == len(body["items"])


def check_export(client, tokens, role: str, own: str | None) -> None:
    r = client.get(f"/api/v1/lists/{YEAR}/export", headers=bearer(tokens[role]), params={"format": "csv"})
    assert r.status_code == 200, r.text
    frame = pl.read_csv(io.BytesIO(r.content[3:]), infer_schema=False)
    codes = frame["统一社会信用代码"].to_list()
    assert len(set(codes)) == len(codes)
    if own:
        assert set(frame["乡镇街道"].to_list()) == {own}, f"{role} exported another township's rows"
    cursor = client.app.state.con.cursor()
    try:  # every copy of the run lists the same firms
        listed = dict(cursor.execute("SELECT uscc, township FROM run_list WHERE run_id = (SELECT run_id FROM runs "
                                     "WHERE list_year = ? ORDER BY created_at LIMIT 1)", [YEAR]).fetchall())
    finally:
        cursor.close()
    assert sorted(codes) == sorted(c for c, t in listed.items() if own is None or t == own)


def check_record(client, tokens, role: str, code: str, township: str) -> None:
    own = {"township": TOWNSHIP, "other_township": OTHER}.get(role)
    r = client.get(f"/api/v1/enterprises/{code}", headers=bearer(tokens[role]), params={"year": YEAR})
    if own and township != own:
        assert r.status_code == 404, f"{role} read a record of {township}"
        return
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["uscc"] == code and body["township"] == township
    assert body["listed"] and body["list_entry"]["township"] == township and body["list_entry"]["name"] == body["name"]
    assert {x["rule_id"] for x in body["results"]} == set(RULES)


def _filters(rng: random.Random, townships: list[str]) -> dict:
    f: dict = {"page_size": rng.choice([1, 7, 50, 500]), "page": rng.choice([1, 1, 2, 3]),
               "sort": rng.choice(SORTS)}
    if rng.random() < 0.4:
        f["township"] = rng.choice(townships)
    if rng.random() < 0.4:
        f["rule"] = rng.choice(RULES)
    if rng.random() < 0.2:
        f["industry"] = rng.choice(["3", "38", "17", "26"])
    if rng.random() < 0.2:
        f["disposition"] = rng.choice(["兼并重组", "整体腾退", "搬迁入园", "改造提升"])
    return f


def _listed(client, tokens) -> list[tuple[str, str]]:
    items = client.get(f"/api/v1/lists/{YEAR}?page_size=500", headers=bearer(tokens["admin"])).json()["items"]
    return [(i["uscc"], i["township"]) for i in items]


# ------------------------------------------------------------------ the tests

@pytest.mark.parametrize("role", ["township", "admin"])
def test_a_run_stored_between_any_two_reads_changes_no_page(service, role):
    """The interleaving that leaked (a township got a page of other townships' firms), forced."""
    client, tokens = service
    rng = random.Random(f"between-{role}")
    townships = sorted({t for _, t in _listed(client, tokens)})
    with store_between_reads(client.app, results=False) as arm:
        for f in [{"page_size": 500}, {"page_size": 7, "page": 2, "sort": "tax_per_mu"},
                  *(_filters(rng, townships) for _ in range(2))]:
            arm()
            check_list(client, tokens, role, f)


@pytest.mark.parametrize("role", ["township", "admin"])
def test_a_run_stored_between_any_two_reads_changes_no_record_or_export(service, role):
    client, tokens = service
    own = {"township": TOWNSHIP, "other_township": OTHER}.get(role)
    listed = _listed(client, tokens)
    firms = [x for x in listed if x[1] == TOWNSHIP][:1] + [x for x in listed if x[1] == OTHER][:1]
    store_run(client.app)  # the year's newest run holds its rule results, as every stored run does
    with store_between_reads(client.app, results=True, per_request=3) as arm:
        for code, township in firms:
            arm()
            check_record(client, tokens, role, code, township)
        arm()
        check_export(client, tokens, role, own)


def test_lists_exports_and_records_while_runs_are_stored(service):
    """Readers of every role hammer the routes on threads while a writer stores runs
    (bounded: at most 12 runs and 6 seconds)."""
    client, tokens = service
    listed = _listed(client, tokens)
    townships = sorted({t for _, t in listed})
    store_run(client.app)
    done = threading.Event()
    failures: list[BaseException] = []
    stored = []

    def writer():
        try:
            deadline = time.monotonic() + 6
            while len(stored) < 12 and time.monotonic() < deadline:
                stored.append(store_run(client.app))
                time.sleep(0.01)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
        finally:
            done.set()

    def reader(role: str, seed: int):
        rng = random.Random(seed)
        own = {"township": TOWNSHIP, "other_township": OTHER}.get(role)
        try:
            while not done.is_set() and not failures:
                kind = rng.random()
                if kind < 0.7:
                    check_list(client, tokens, role, _filters(rng, townships))
                elif kind < 0.9:
                    check_record(client, tokens, role, *rng.choice(listed))
                else:
                    check_export(client, tokens, role, own)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader, args=(role, i))
                                                   for i, role in enumerate(ROLES)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures, failures[0]
    assert len(stored) >= 3

