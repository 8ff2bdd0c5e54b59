"""The service's tables beside the stored runs, and the queries the routes share."""
from __future__ import annotations

from typing import Any

import duckdb

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
"""


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    for statement in SERVICE_DDL.split(";"):
        if statement.strip():
            con.execute(statement)


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    rows = con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = ? AND schema_name = 'main'", [name]).fetchall()
    return bool(rows)


def latest_run(con: duckdb.DuckDBPyConnection, year: int) -> str | None:
    if not table_exists(con, "runs"):
        return None
    rows = con.execute("SELECT run_id FROM runs WHERE list_year = ? ORDER BY created_at DESC, run_id DESC LIMIT 1",
                       [year]).fetchall()
    return rows[0][0] if rows else None


def records(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]
