"""Retention: remove trial runs (试算) that pile up, never a run anyone relies on.

A run is kept when it is the newest run of its list year, the finalized (定稿) run of its year
(``finalizations``: the final list, its plans and progress are built on it), or the run of any
verification (``verifications.run_id``; dispute decisions refer to verifications).  Every other
run is a trial: a what-if or a re-run that was superseded (docs/service.md: after 定稿 every
later run of the year is a trial).  ``--keep N`` keeps the N newest runs of each year,
``--older-than DAYS`` removes only trials older than that; given both, a trial must be
beyond both.  The removal is one transaction with its audit line.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import duckdb

from .errors import ScreeningError
from .sqlquote import identifier
from .store import STORED_TABLES


class PruneError(ScreeningError):
    exit_code = 2


@dataclass(frozen=True)
class Trial:
    run_id: str
    list_year: int
    created_at: dt.datetime


def _exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = ? AND schema_name = 'main' "
                            "AND database_name = current_database()", [table]).fetchall())


def trials(con: duckdb.DuckDBPyConnection, keep: int | None, older_than_days: float | None,
           now: dt.datetime | None = None) -> list[Trial]:
    """The runs a prune with these limits removes (oldest first)."""
    if keep is None and older_than_days is None:
        raise PruneError("请给出 --keep（每个年度保留最新的几次筛选）或 --older-than（删除多少天以前的试算），或两者")
    if keep is not None and keep < 1:
        raise PruneError("--keep 至少为 1：每个年度最新的一次筛选总是保留")
    if older_than_days is not None and older_than_days < 0:
        raise PruneError("--older-than 不能为负数")
    if not _exists(con, "runs"):
        return []
    protected = ["newest = 1"]
    if _exists(con, "finalizations"):
        protected.append("run_id IN (SELECT run_id FROM finalizations)")
    if _exists(con, "verifications"):
        protected.append("run_id IN (SELECT run_id FROM verifications)")
    limits, params = [], []
    if keep is not None:
        limits.append("newest > ?")
        params.append(keep)
    if older_than_days is not None:
        now = now or dt.datetime.now(dt.timezone.utc)
        limits.append("created_at < ?")
        params.append(now - dt.timedelta(days=older_than_days))
    rows = con.execute(
        "SELECT run_id, list_year, created_at FROM (SELECT run_id, list_year, created_at, row_number() OVER "
        "(PARTITION BY list_year ORDER BY created_at DESC, run_id DESC) AS newest FROM runs) "
        f"WHERE NOT ({' OR '.join(protected)}) AND {' AND '.join(limits)} ORDER BY created_at, run_id",
        params).fetchall()
    return [Trial(*row) for row in rows]


#: the tables holding a run's rows, by run_id (``runs`` itself last)
RUN_TABLES = tuple(name for name, columns in STORED_TABLES.items()
                   if name != "runs" and any(column == "run_id" for column, _ in columns)
                   and not name.startswith("warn_"))


def prune(con: duckdb.DuckDBPyConnection, user: Any, keep: int | None, older_than_days: float | None,
          dry_run: bool = False) -> dict[str, Any]:
    """Remove the trial runs (:func:`trials`) in one transaction, audited; returns what was removed."""
    from api.db import audit

    con.execute("BEGIN TRANSACTION")
    try:
        found = trials(con, keep, older_than_days)
        ids = [t.run_id for t in found]
        rows: dict[str, int] = {}
        if ids and not dry_run:
            for table in (*RUN_TABLES, "runs"):
                if _exists(con, table):
                    rows[table] = int(con.execute(
                        f"DELETE FROM {identifier(table)} WHERE run_id IN (SELECT unnest(?))", [ids]).fetchall()[0][0])
        summary = {"removed": [{"run_id": t.run_id, "list_year": t.list_year, "created_at": t.created_at.isoformat()}
                               for t in found],
                   "rows": rows, "keep": keep, "older_than_days": older_than_days, "dry_run": dry_run}
        if ids and not dry_run:
            audit(con, user, "prune_runs", "run", ",".join(ids), None, summary)
        con.execute("COMMIT")
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass
        raise
    return summary
