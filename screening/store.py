"""Keep every run in the DuckDB database file (``--db``), where the API reads it.

Re-running a year adds a run; old runs are never overwritten.  One transaction per
run, so a run is stored completely or not at all.
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

RUNS_DDL = """
CREATE TABLE IF NOT EXISTS runs (
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


def connect(db: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(db), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise StoreError(f"数据库 {db} 正被另一个进程占用（例如正在运行的 screening serve），请稍后重试或改用其他 --db 文件") from None
        raise StoreError(f"无法打开数据库 {db}：{exc}") from None


def _ensure(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> None:
    """Create ``table`` with run_id plus the frame's columns if it does not exist yet."""
    con.register("_shape", frame.head(0).to_arrow())
    try:
        con.execute(f'CREATE TABLE IF NOT EXISTS "{table}" AS SELECT * FROM _shape')
    finally:
        con.unregister("_shape")


def _append(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> None:
    _ensure(con, table, frame)
    con.register("_rows", frame.to_arrow())
    try:
        con.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM _rows')
    finally:
        con.unregister("_rows")


def save_run(s: "Screening", db: Path, record: dict[str, Any]) -> None:
    con = connect(db)
    try:
        con.execute("CREATE TABLE IF NOT EXISTS schema_info (key VARCHAR PRIMARY KEY, value VARCHAR)")
        con.execute("INSERT OR IGNORE INTO schema_info VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
        con.execute(RUNS_DDL)
        con.execute("BEGIN TRANSACTION")
        con.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                s.run_id, s.started_at, s.list_year, s.ruleset.meta.id, s.ruleset.meta.version,
                _json(s.ruleset.params), _json(s.ruleset.overrides),
                _json({k: v["sha256"] for k, v in record["inputs"].items()}),
                _json(record["row_counts"]), _json(s.timings), s.panel.height, s.list.height,
                s.inputs.rejected_rows, _json(record),
            ],
        )
        _append(con, "run_results", s.results)
        _append(con, "run_list", s.list.drop("hit_rules", strict=False))
        _append(con, "run_rejects", s.inputs.rejects.with_columns(pl.lit(s.run_id).alias("run_id")))
        _append(con, "run_enterprises", s.panel.with_columns(pl.lit(s.run_id).alias("run_id")))
        con.execute("COMMIT")
    except duckdb.Error as exc:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass  # the failure happened before the transaction began
        raise StoreError(f"写入数据库 {db} 失败：{exc}") from None
    finally:
        con.close()


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def list_runs(db: Path) -> pl.DataFrame:
    con = connect(db, read_only=True)
    try:
        return con.sql("SELECT run_id, created_at, list_year, ruleset_id, ruleset_version, listed, rejected_rows "
                       "FROM runs ORDER BY created_at").pl()
    finally:
        con.close()
