"""Keep every run in the DuckDB database file (``--db``), where the API reads it.

Re-running a year adds a run; old runs are never overwritten.  The run's engine
attaches the file and copies its tables in one transaction, so a run is stored
completely or not at all, and millions of result rows never pass through Python.
"""
from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl

from . import handover
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


#: the tables a staged file may bring into the service's database: runs, their run_* tables
#: and the warning runs (warn_*)
IMPORTABLE_PREFIXES = ("run_", "warn_")


class StoreError(ScreeningError):
    exit_code = 1


class DatabaseLocked(StoreError):
    """Another process (normally ``screening serve``) holds the file."""


def _open_error(db: Path, exc: Exception) -> StoreError:
    if "lock" in str(exc).lower():
        return DatabaseLocked(f"数据库 {db} 正被另一个进程占用，且没有找到可交接的服务（{handover.service_file(db).name}）；"
                              f"请稍后重试，或在服务中用 POST /api/v1/runs 生成清单，或改用其他 --db 文件")
    return StoreError(f"无法打开数据库 {db}：{exc}")


def connect(db: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(db), read_only=read_only)
    except duckdb.Error as exc:
        raise _open_error(db, exc) from None


def _copy(con: duckdb.DuckDBPyConnection, alias: str, table: str, select_sql: str) -> None:
    """Create ``alias.table`` shaped like the SELECT on first use, then append its rows by name."""
    con.execute(f"CREATE TABLE IF NOT EXISTS {alias}.{table} AS SELECT * FROM ({select_sql}) LIMIT 0")
    # a column added to an output since the database was created (e.g. rejects' action) is added to it
    have = {r[0] for r in con.execute(f"DESCRIBE {alias}.{table}").fetchall()}
    for name, dtype, *_ in con.execute(f"DESCRIBE SELECT * FROM ({select_sql}) LIMIT 0").fetchall():
        if name not in have:
            con.execute(f'ALTER TABLE {alias}.{table} ADD COLUMN "{name}" {dtype}')
    con.execute(f"INSERT INTO {alias}.{table} BY NAME {select_sql}")


def save_run(s: "Screening", db: Path | None, record: dict[str, Any], out: Path | None = None) -> str | None:
    """Store the run; safe to call from another thread than the one writing files.

    ``db``: the file to attach; None when the run's engine lives inside the service, whose
    own database (the engine's host catalog) then receives the run.  When a running service
    holds ``db``, the run is staged in ``out`` and handed over to it; returns its address then.
    """
    return _or_hand_over(lambda target: _save_run(s, target, record), db, out, s.run_id)


def save_tables(db: Path, tables: dict[str, pl.DataFrame], out: Path) -> str | None:
    """Append rows to tables of the database (created on first use) in one transaction;
    hands over to a running service like :func:`save_run`.  Table names must be importable
    (``runs``, ``run_*`` or ``warn_*``)."""
    for name in tables:
        _check_importable(name)

    def write(target: Path) -> None:
        con = connect(target)
        try:
            con.execute("BEGIN TRANSACTION")
            for name, frame in tables.items():
                con.register("_rows", frame.to_arrow())
                _copy(con, "main", name, "SELECT * FROM _rows")
                con.unregister("_rows")
            con.execute("COMMIT")
        except duckdb.Error as exc:
            raise StoreError(f"写入数据库 {target} 失败：{exc}") from None
        finally:
            con.close()

    return _or_hand_over(write, db, out, "tables")


def _or_hand_over(write, db: Path | None, out: Path | None, tag: str) -> str | None:
    """Write to ``db``; if a running service holds it, stage in ``out`` and return the service's address."""
    try:
        write(db)
        return None
    except DatabaseLocked:
        service = handover.find(db) if db is not None and out is not None else None
        if service is None:
            raise
        staged = out / f".staged-{tag}-{uuid.uuid4().hex[:8]}.duckdb"
        try:
            write(staged)
            service.call("POST", "/api/v1/runs/import", {"path": str(staged.resolve())})
            return service.url
        finally:
            for leftover in (staged, staged.with_name(staged.name + ".wal")):
                leftover.unlink(missing_ok=True)


def import_staged(con: duckdb.DuckDBPyConnection, staged: Path) -> dict[str, Any]:
    """Copy the importable tables of a staged file into ``con``'s database, in one transaction.

    Refuses a staged run whose id the database already holds (a file imported twice).
    Returns the rows copied per table and the run ids brought in."""
    try:
        con.execute(f"ATTACH '{_quote(staged)}' AS staged (READ_ONLY)")
    except duckdb.Error as exc:
        raise StoreError(f"无法读取待导入的文件 {staged}：{exc}") from None
    try:
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'staged' ORDER BY table_name").fetchall()]
        names = [n for n in names if _importable(n)]
        if not names:
            raise StoreError(f"文件 {staged} 中没有可导入的表")
        if "runs" in names and _table_exists(con, "runs") and con.execute(
                "SELECT count(*) FROM runs WHERE run_id IN (SELECT run_id FROM staged.runs)").fetchall()[0][0]:
            raise StoreError(f"文件 {staged} 中的运行已经导入过")
        run_ids = ([r[0] for r in con.execute("SELECT run_id FROM staged.runs ORDER BY run_id").fetchall()]
                   if "runs" in names else [])
        counts = {}
        con.execute("BEGIN TRANSACTION")
        try:
            if run_ids:
                con.execute(RUNS_DDL.replace(f"{ALIAS}.runs", "main.runs"))  # with its primary key
            for name in names:
                _copy(con, "main", name, f"SELECT * FROM staged.{name}")
                counts[name] = int(con.execute(f"SELECT count(*) FROM staged.{name}").fetchall()[0][0])
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise StoreError(f"导入 {staged} 失败：{exc}") from None
        return {"tables": counts, "run_ids": run_ids}
    finally:
        con.execute("DETACH staged")


def _importable(name: str) -> bool:
    return name == "runs" or name.startswith(IMPORTABLE_PREFIXES)


def _check_importable(name: str) -> None:
    if not _importable(name) or not name.replace("_", "").isalnum():
        raise ValueError(f"table {name!r} cannot be stored: use runs, run_* or warn_*")


def _table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = ? AND schema_name = 'main' "
                            "AND database_name = current_database()", [name]).fetchall())


def _save_run(s: "Screening", db: Path | None, record: dict[str, Any]) -> None:
    con = s.engine.cursor()
    alias = s.engine.host_catalog if db is None else ALIAS
    if db is not None:
        try:
            con.execute(f"ATTACH '{_quote(db)}' AS {ALIAS}")
        except duckdb.Error as exc:
            con.close()
            raise _open_error(db, exc) from None
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
        con.register("_anomalies", s.anomalies.to_arrow())  # the advisory 数据核查提示
        _copy(con, alias, "run_anomalies", "SELECT * FROM _anomalies")
        con.execute("COMMIT")
    except duckdb.Error as exc:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass  # the failure happened before the transaction began
        raise StoreError(f"写入数据库 {db} 失败：{exc}") from None
    finally:
        for name in ("_list", "_rejects", "_anomalies"):
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
