"""The service's tables beside the stored runs, and the queries the routes share."""
from __future__ import annotations

from typing import Any

import duckdb

from screening.sqlquote import identifier

SERVICE_DDL = """
CREATE TABLE IF NOT EXISTS users (
    user_id VARCHAR PRIMARY KEY,
    name VARCHAR NOT NULL UNIQUE,
    role VARCHAR NOT NULL,
    township VARCHAR,
    token_sha256 VARCHAR NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS verifications (
    verification_id VARCHAR PRIMARY KEY,
    uscc VARCHAR NOT NULL,
    list_year INTEGER NOT NULL,
    run_id VARCHAR NOT NULL,
    outcome VARCHAR NOT NULL,
    reason VARCHAR,
    note VARCHAR,
    created_by VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS dispute_decisions (
    decision_id VARCHAR PRIMARY KEY,
    uscc VARCHAR NOT NULL,
    list_year INTEGER NOT NULL,
    verification_id VARCHAR NOT NULL,
    decision VARCHAR NOT NULL,
    note VARCHAR,
    decided_by VARCHAR NOT NULL,
    decided_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS finalizations (
    list_year INTEGER PRIMARY KEY,
    run_id VARCHAR NOT NULL,
    firms INTEGER NOT NULL,
    note VARCHAR,
    finalized_by VARCHAR NOT NULL,
    finalized_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS final_list (
    list_year INTEGER NOT NULL,
    uscc VARCHAR NOT NULL,
    basis VARCHAR NOT NULL,
    verification_id VARCHAR,
    entry JSON NOT NULL,
    PRIMARY KEY (list_year, uscc)
);
CREATE TABLE IF NOT EXISTS plans (
    list_year INTEGER NOT NULL,
    uscc VARCHAR NOT NULL,
    plan JSON NOT NULL,
    status VARCHAR NOT NULL,
    completed_at TIMESTAMPTZ,
    version INTEGER NOT NULL,
    updated_by VARCHAR NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (list_year, uscc)
);
CREATE TABLE IF NOT EXISTS plan_progress (
    progress_id VARCHAR PRIMARY KEY,
    list_year INTEGER NOT NULL,
    uscc VARCHAR NOT NULL,
    progress_date DATE NOT NULL,
    note VARCHAR NOT NULL,
    created_by VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_log (
    audit_id VARCHAR PRIMARY KEY,
    logged_at TIMESTAMPTZ NOT NULL,
    user_name VARCHAR NOT NULL,
    role VARCHAR NOT NULL,
    action VARCHAR NOT NULL,
    entity VARCHAR NOT NULL,
    entity_key VARCHAR NOT NULL,
    before JSON,
    after JSON
);
"""


#: per-firm lookups in the stored runs: (table, column) pairs that get an ART index
FIRM_INDEXES = (("run_results", "uscc"), ("run_enterprises", "uscc"), ("run_list", "uscc"), ("run_anomalies", "uscc"))


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    for statement in SERVICE_DDL.split(";"):
        if statement.strip():
            con.execute(statement)
    for table, column in FIRM_INDEXES:
        if table_exists(con, table):
            con.execute(f"CREATE INDEX IF NOT EXISTS {identifier(f'{table}_{column}')} ON {identifier(table)} ({identifier(column)})")


def firm_rows(table: str) -> str:
    """Rows of one firm in one run.  The firm filter stands alone in the inner scan so that
    DuckDB uses the index (it does not when run_id is filtered in the same scan)."""
    return f"(SELECT * FROM {identifier(table)} WHERE uscc = ? OFFSET 0) WHERE run_id = ?"


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    rows = con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = ? AND schema_name = 'main'", [name]).fetchall()
    return bool(rows)


def latest_run(con: duckdb.DuckDBPyConnection, year: int) -> str | None:
    if not table_exists(con, "runs"):
        return None
    rows = con.execute("SELECT run_id FROM runs WHERE list_year = ? ORDER BY created_at DESC, run_id DESC LIMIT 1",
                       [year]).fetchall()
    return rows[0][0] if rows else None


def audit(con: duckdb.DuckDBPyConnection, user: Any, action: str, entity: str, key: str,
          before: Any, after: Any) -> None:
    """Append one line to the audit trail (append-only: no route updates or deletes it)."""
    import datetime as dt
    import json
    import uuid

    def dump(value: Any) -> str | None:
        return None if value is None else json.dumps(value, ensure_ascii=False, default=str)

    con.execute("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [uuid.uuid4().hex, dt.datetime.now(dt.timezone.utc), user.name, user.role, action, entity, key,
                 dump(before), dump(after)])


def finalized(con: duckdb.DuckDBPyConnection, year: int) -> dict[str, Any] | None:
    rows = records(con, "SELECT * FROM finalizations WHERE list_year = ?", [year])
    return rows[0] if rows else None


def records(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]
