"""`POST /api/v1/runs/import` takes only files the service staged, checked exactly (issue 10,
finding 2), and the database, its WAL and the staging area are its owner's only (finding 10).

The staged files here are built by hand: a valid warning run (the smallest staged kind), and
the hostile ones a security review used -- a table name that ends the statement and writes a
file, one that inserts an admin token into ``users``, extra columns, tables and views."""
from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import duckdb
import pytest
from fastapi.testclient import TestClient

from api.auth import add_user, token_hash
from api.config import Settings
from api.main import create_app
from api_helpers import bearer
from screening import handover, store

pytestmark = pytest.mark.api

WRITES_A_FILE = "run_x AS SELECT 1 AS a; COPY (SELECT 42 AS a) TO '{target}'; CREATE TABLE run_y"
EVIL_TOKEN = "evil-token"
ADDS_AN_ADMIN = ("run_x AS SELECT 1 AS a; INSERT INTO users VALUES ('evil', 'evil', 'admin', NULL, "
                 f"'{token_hash(EVIL_TOKEN)}', now(), NULL); CREATE TABLE run_y")


def warn_file(path: Path, extra_sql: str = "", create_sql: dict[str, str] | None = None) -> Path:
    """A staged warning run (warn_runs + warn_results with one row each), then ``extra_sql``;
    ``create_sql`` replaces the DDL of a table."""
    con = duckdb.connect(str(path))
    try:
        for table in store.STAGED_KINDS["warnings"]:
            if create_sql and table in create_sql:
                con.execute(create_sql[table])
            else:
                store._create(con, "main", table)
        con.execute("INSERT INTO warn_runs (warn_id, created_at, year, firms) VALUES ('warn-2022-x', ?, 2022, 1)",
                    [dt.datetime.now(dt.timezone.utc)])
        con.execute("INSERT INTO warn_results (warn_id, year, uscc, risk) VALUES ('warn-2022-x', 2022, 'X', 0.5)")
        if extra_sql:
            con.execute(extra_sql)
    finally:
        con.close()
    return path


@pytest.fixture()
def service(tmp_path):
    db = tmp_path / "svc.duckdb"
    con = store.connect(db)
    admin = add_user(con, "局管理员", "admin", None)
    con.close()
    with TestClient(create_app(Settings(db=db, runs_dir=tmp_path / "runs"))) as client:
        yield client, bearer(admin), db


def _slot(client, headers) -> tuple[Path, str]:
    answer = client.post("/api/v1/runs/staging", headers=headers)
    assert answer.status_code == 201, answer.text
    return Path(answer.json()["path"]), answer.json()["token"]


def _users(client, headers) -> int:
    con = client.app.state.con.cursor()
    try:
        return con.execute("SELECT count(*) FROM users").fetchall()[0][0]
    finally:
        con.close()


def test_a_staged_warning_run_is_imported_once(service):
    client, headers, _ = service
    path, token = _slot(client, headers)
    warn_file(path)
    answer = client.post("/api/v1/runs/import", headers=headers, json={"token": token})
    assert answer.status_code == 201, answer.text
    assert answer.json()["tables"] == {"warn_results": 1, "warn_runs": 1}
    assert not path.exists()  # removed once imported
    again = client.post("/api/v1/runs/import", headers=headers, json={"token": token})
    assert again.status_code == 422 and again.json()["detail"] == handover.NOT_STAGED


@pytest.mark.parametrize("hostile", ["writes_a_file", "adds_an_admin"])
def test_injected_table_names_are_refused_and_run_nothing(service, tmp_path, hostile):
    client, headers, _ = service
    target = tmp_path / "written_by_the_service.csv"
    name = WRITES_A_FILE.format(target=target) if hostile == "writes_a_file" else ADDS_AN_ADMIN
    path, token = _slot(client, headers)
    quoted = '"' + name.replace('"', '""') + '"'
    warn_file(path, f"CREATE TABLE {quoted} (a INTEGER)")
    users = _users(client, headers)
    answer = client.post("/api/v1/runs/import", headers=headers, json={"token": token})
    assert answer.status_code == 422 and answer.json()["detail"] == handover.NOT_STAGED
    assert not target.exists()
    assert _users(client, headers) == users
    assert client.post("/api/v1/runs/staging", headers=bearer(EVIL_TOKEN)).status_code == 401


@pytest.mark.parametrize("hostile", ["writes_a_file", "adds_an_admin"])
def test_the_store_itself_never_runs_a_staged_name(tmp_path, hostile):
    """The same files handed to import_staged directly (the code path under the route)."""
    target = tmp_path / "written.csv"
    name = WRITES_A_FILE.format(target=target) if hostile == "writes_a_file" else ADDS_AN_ADMIN
    staged = tmp_path / "staged.duckdb"
    con = duckdb.connect(str(staged))
    con.execute("CREATE TABLE " + '"' + name.replace('"', '""') + '"' + " (a INTEGER)")
    con.close()
    db = duckdb.connect(str(tmp_path / "db.duckdb"))
    db.execute("CREATE TABLE users (user_id VARCHAR, name VARCHAR, role VARCHAR, township VARCHAR, "
               "token_sha256 VARCHAR, created_at TIMESTAMPTZ, revoked_at TIMESTAMPTZ)")
    try:
        try:
            store.import_staged(db, staged)
            refusal = None
        except Exception as exc:  # noqa: BLE001 -- which refusal is asserted below, after the harm
            refusal = exc
        assert not target.exists()
        assert db.execute("SELECT count(*) FROM users").fetchall()[0][0] == 0
        assert type(refusal).__name__ == "NotStaged"
    finally:
        db.close()


@pytest.mark.parametrize("change", [
    "ALTER TABLE warn_results ADD COLUMN extra VARCHAR",
    "ALTER TABLE warn_results DROP COLUMN factors",
    "CREATE TABLE run_extra (a INTEGER)",
    "CREATE TABLE users (a INTEGER)",
    "CREATE VIEW run_view AS SELECT 1 AS a",
    "CREATE SCHEMA other; CREATE TABLE other.warn_runs (a INTEGER)",
    "CREATE MACRO run_macro(a) AS a + 1",
    "CREATE SEQUENCE run_seq",
])
def test_a_staged_file_with_anything_more_or_less_is_refused(service, change):
    client, headers, _ = service
    path, token = _slot(client, headers)
    warn_file(path, change)
    answer = client.post("/api/v1/runs/import", headers=headers, json={"token": token})
    assert answer.status_code == 422 and answer.json()["detail"] == handover.NOT_STAGED


@pytest.mark.parametrize("ddl", [
    "CREATE TABLE warn_results (warn_id VARCHAR, year INTEGER, uscc VARCHAR, name VARCHAR, township VARCHAR, "
    "industry_code VARCHAR, scale VARCHAR, risk VARCHAR, rank INTEGER, factors VARCHAR, factor_groups VARCHAR)",
    "CREATE TABLE warn_results (warn_id VARCHAR, year INTEGER, uscc VARCHAR, name VARCHAR, township VARCHAR, "
    "industry_code VARCHAR, scale VARCHAR, risk DOUBLE, rank INTEGER, factors VARCHAR AS (uscc || 'x'), "
    "factor_groups VARCHAR)",
])
def test_a_column_of_another_type_or_a_generated_one_is_refused(service, ddl):
    client, headers, _ = service
    path, token = _slot(client, headers)
    warn_file(path, create_sql={"warn_results": ddl})
    answer = client.post("/api/v1/runs/import", headers=headers, json={"token": token})
    assert answer.status_code == 422 and answer.json()["detail"] == handover.NOT_STAGED


def test_a_path_outside_the_staging_area_is_refused(service, tmp_path):
    client, headers, _ = service
    outside = warn_file(tmp_path / "outside.duckdb")
    by_path = client.post("/api/v1/runs/import", headers=headers, json={"path": str(outside)})
    assert by_path.status_code == 422
    unknown = client.post("/api/v1/runs/import", headers=headers, json={"token": "not-issued"})
    assert unknown.status_code == 422 and unknown.json()["detail"] == handover.NOT_STAGED
    path, token = _slot(client, headers)
    path.symlink_to(outside)  # the slot pointing elsewhere
    linked = client.post("/api/v1/runs/import", headers=headers, json={"token": token})
    assert linked.status_code == 422 and linked.json()["detail"] == handover.NOT_STAGED
    assert outside.is_file() and not os.path.lexists(path)
    path, token = _slot(client, headers)
    os.link(outside, path)  # a second name of a file outside
    hard = client.post("/api/v1/runs/import", headers=headers, json={"token": token})
    assert hard.status_code == 422 and hard.json()["detail"] == handover.NOT_STAGED
    assert outside.is_file()


def test_staging_slots_expire(tmp_path):
    staging = handover.Staging(tmp_path / "db.duckdb", ttl=0)
    path, token = staging.issue()
    warn_file(path)
    with pytest.raises(handover.NotStaged):
        staging.redeem(token)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_database_wal_and_staging_are_owner_only(tmp_path):
    db = tmp_path / "fresh.duckdb"
    old = os.umask(0o022)  # what a login shell usually has
    try:
        with TestClient(create_app(Settings(db=db, runs_dir=tmp_path / "runs"))) as client:
            con = client.app.state.con
            con.execute("CREATE TABLE filler AS SELECT range AS x FROM range(1000)")  # a write: the WAL exists
            wal = db.with_name(db.name + ".wal")
            assert wal.exists()
            assert _mode(db) == 0o600 and _mode(wal) == 0o600
            staging = client.app.state.staging
            assert _mode(staging.directory) == 0o700
            path, _ = staging.issue()
            warn_file(path)
            assert _mode(path) == 0o600
        assert os.umask(0o022) == 0o022  # the service gives the umask back when it stops
    finally:
        os.umask(old)


def test_an_older_world_readable_database_is_tightened(tmp_path):
    db = tmp_path / "old.duckdb"
    duckdb.connect(str(db)).close()
    db.chmod(0o644)
    store.connect(db).close()
    assert _mode(db) == 0o600


def _run_file(path: Path, run_id: str, result_run_id: str) -> Path:
    """A staged run: every table of a run, one runs row and one run_results row."""
    con = duckdb.connect(str(path))
    try:
        for table in store.STAGED_KINDS["run"]:
            store._create(con, "main", table)
        con.execute("INSERT INTO runs VALUES (?, now(), 2022, 'yueqing-2022', '1', '{}', '{}', '{}', '{}', '{}', "
                    "1, 0, 0, '{}')", [run_id])
        con.execute("INSERT INTO run_results (run_id, firm, rule_id, status) VALUES (?, 0, 'r', 'pass')",
                    [result_run_id])
    finally:
        con.close()
    return path


def _nothing_copied(client) -> None:
    cursor = client.app.state.con.cursor()
    try:
        assert not cursor.execute("SELECT 1 FROM duckdb_tables() WHERE table_name IN ('runs', 'run_results') "
                                  "AND database_name = current_database()").fetchall()
    finally:
        cursor.close()


@pytest.mark.parametrize(("run_id", "result_run_id", "said"), [
    ("..", "..", "不是本工具生成的格式"),  # later a folder name to the service (runs_dir/<run_id>)
    ("2022-20260101T080000-0a1b2c", "2021-20250101T080000-ffffff", "不属于文件中的任何一次运行"),
])
def test_a_staged_run_with_a_made_up_id_or_rows_of_another_run_is_refused(service, run_id, result_run_id, said):
    """A staged file named any run id, and its rows any run: a row under the id of a run already
    stored was added to that run."""
    client, headers, db = service
    path, token = _slot(client, headers)
    _run_file(path, run_id, result_run_id)
    answer = client.post("/api/v1/runs/import", headers=headers, json={"token": token})
    assert answer.status_code == 422 and said in answer.json()["detail"], answer.text
    _nothing_copied(client)


def test_staged_warning_rows_of_another_warning_run_are_refused(service):
    client, headers, _ = service
    path, token = _slot(client, headers)
    warn_file(path, "INSERT INTO warn_results (warn_id, year, uscc, risk) VALUES ('warn-other', 2022, 'Y', 0.1)")
    answer = client.post("/api/v1/runs/import", headers=headers, json={"token": token})
    assert answer.status_code == 422 and "warn_results" in answer.json()["detail"], answer.text


@pytest.mark.parametrize(("enterprises", "said"), [
    ([], "不在该次运行的企业表"),  # the result row's firm 0 is no firm of the run
    ([("91330000000000000X", 1)], "不在该次运行的企业表"),
    ([("91330000000000000X", 0), ("91330000000000001X", 0)], "为空或重复"),  # one number, two firms
    ([("91330000000000000X", 0), ("91330000000000001X", None)], "为空或重复"),
])
def test_a_staged_run_whose_results_name_no_firm_of_its_enterprises_is_refused(service, enterprises, said):
    """run_results names its firm by the run's firm number (run_enterprises.firm): a staged run
    whose result rows name a number its enterprises lack, or whose enterprises number a firm
    twice or not at all, would be read without its firm (or doubled); it is refused."""
    client, _, _ = service
    answer = _import_numbered(service, enterprises)
    assert answer.status_code == 422 and said in answer.json()["detail"], answer.text
    _nothing_copied(client)


@pytest.mark.parametrize("rules", [["r", "r"], [None]])
def test_a_staged_run_naming_a_rule_twice_or_none_in_its_rules_is_refused(service, rules):
    """run_rules has no key: a rule named twice would repeat that rule's result rows wherever
    results are read with their texts; a staged run with one (or an empty rule id) is refused."""
    client, headers, _ = service
    path, token = _slot(client, headers)
    _run_file(path, STAGED_RUN, STAGED_RUN)
    con = duckdb.connect(str(path))
    try:
        con.execute("INSERT INTO run_enterprises (run_id, uscc, firm) VALUES (?, '91330000000000000X', 0)", [STAGED_RUN])
        for rule in rules:
            con.execute("INSERT INTO run_rules (run_id, rule_id) VALUES (?, ?)", [STAGED_RUN, rule])
    finally:
        con.close()
    answer = client.post("/api/v1/runs/import", headers=headers, json={"token": token})
    assert answer.status_code == 422 and "run_rules" in answer.json()["detail"], answer.text
    _nothing_copied(client)


def test_a_staged_run_whose_results_name_its_firms_is_imported(service):
    answer = _import_numbered(service, [("91330000000000000X", 0)])
    assert answer.status_code == 201 and answer.json()["run_ids"] == [STAGED_RUN], answer.text


STAGED_RUN = "2022-20260101T080000-0a1b2c"


def _import_numbered(service, enterprises: list[tuple[str, int | None]]):
    """The answer to importing a staged run whose one result row names firm 0, with these
    (uscc, firm) rows in its run_enterprises."""
    client, headers, _ = service
    path, token = _slot(client, headers)
    _run_file(path, STAGED_RUN, STAGED_RUN)
    con = duckdb.connect(str(path))
    try:
        for uscc, firm in enterprises:
            con.execute("INSERT INTO run_enterprises (run_id, uscc, firm) VALUES (?, ?, ?)", [STAGED_RUN, uscc, firm])
    finally:
        con.close()
    return client.post("/api/v1/runs/import", headers=headers, json={"token": token})
