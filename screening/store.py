"""Keep every run in the DuckDB database file (``--db``), where the API reads it.

Re-running a year adds a run; old runs are never overwritten.  The run's engine
attaches the file and copies its tables in one transaction, so a run is stored
completely or not at all, and millions of result rows never pass through Python.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl

from .errors import ScreeningError

if TYPE_CHECKING:
    from .screen import Screening

SCHEMA_VERSION = 1
ALIAS = "store"

RUNS_DDL = f"""
CREATE TABLE IF NOT EXISTS {ALIAS}.runs (
    run_id VARCHAR PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    list_year INTEGER NOT NULL,
    ruleset_id VARCHAR NOT NULL,
    ruleset_version VARCHAR NOT NULL,
    parameters JSON NOT NULL,
    overrides JSON NOT NULL,
    input_hashes JSON NOT NULL,
    row_counts JSON NOT NULL,
    timings JSON NOT NULL,
    enterprises INTEGER NOT NULL,
    listed INTEGER NOT NULL,
    rejected_rows INTEGER NOT NULL,
    record JSON NOT NULL
)
"""


class StoreError(ScreeningError):
    exit_code = 1


def _lock_message(db: Path, exc: Exception) -> str:
    if "lock" in str(exc).lower():
        return (f"数据库 {db} 正被另一个进程占用（例如正在运行的 screening serve）；服务运行时请用 "
                f"POST /api/v1/runs 生成清单，或改用其他 --db 文件")
    return f"无法打开数据库 {db}：{exc}"


def connect(db: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(db), read_only=read_only)
    except duckdb.Error as exc:
        raise StoreError(_lock_message(db, exc)) from None


def _copy(con: duckdb.DuckDBPyConnection, alias: str, table: str, select_sql: str) -> None:
    """Create ``alias.table`` shaped like the SELECT on first use, then append its rows by name."""
    con.execute(f"CREATE TABLE IF NOT EXISTS {alias}.{table} AS SELECT * FROM ({select_sql}) LIMIT 0")
    con.execute(f"INSERT INTO {alias}.{table} BY NAME {select_sql}")


def save_run(s: "Screening", db: Path | None, record: dict[str, Any]) -> None:
    """Store the run; safe to call from another thread than the one writing files.

    ``db``: the file to attach; None when the run's engine lives inside the service, whose
    own database (the engine's host catalog) then receives the run.
    """
    con = s.engine.cursor()
    alias = s.engine.host_catalog if db is None else ALIAS
    if db is not None:
        try:
            con.execute(f"ATTACH '{_quote(db)}' AS {ALIAS}")
        except duckdb.Error as exc:
            raise StoreError(_lock_message(db, exc)) from None
    try:
        con.execute(f"CREATE TABLE IF NOT EXISTS {alias}.schema_info (key VARCHAR PRIMARY KEY, value VARCHAR)")
        con.execute(f"INSERT OR IGNORE INTO {alias}.schema_info VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
        con.execute(RUNS_DDL.replace(f"{ALIAS}.runs", f"{alias}.runs"))
        con.execute("BEGIN TRANSACTION")
        con.execute(
            f"INSERT INTO {alias}.runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                s.run_id, s.started_at, s.list_year, s.ruleset.meta.id, s.ruleset.meta.version,
                _json(s.ruleset.params), _json(s.ruleset.overrides),
                _json({k: v["sha256"] for k, v in record["inputs"].items()}),
                _json(record["row_counts"]), _json(s.timings), record["enterprises"], s.list.height,
                s.inputs.rejected_rows, _json(record),
            ],
        )
        source = f"read_parquet('{_quote(s.results_file)}')" if s.results_file else "results_out"
        _copy(con, alias, "run_results", f"SELECT * FROM {source}")
        con.register("_list", s.list.to_arrow())
        con.register("_rejects", s.inputs.rejects.with_columns(pl.lit(s.run_id).alias("run_id")).to_arrow())
        _copy(con, alias, "run_list", "SELECT * FROM _list")
        _copy(con, alias, "run_rejects", "SELECT * FROM _rejects")
        _copy(con, alias, "run_enterprises",
              f"SELECT '{s.run_id}' AS run_id, * EXCLUDE (firm_id) FROM firm_panel ORDER BY firm_id")
        con.execute("COMMIT")
    except duckdb.Error as exc:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass  # the failure happened before the transaction began
        raise StoreError(f"写入数据库 {db} 失败：{exc}") from None
    finally:
        for name in ("_list", "_rejects"):
            try:
                con.unregister(name)
            except duckdb.Error:
                pass
        if db is not None:
            con.execute(f"DETACH {ALIAS}")
        con.close()


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
