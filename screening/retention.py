"""Retention: remove trial runs (试算) that pile up, never a run anyone relies on.

A run is kept when it is the newest run of its list year, the finalized (定稿) run of its year
(``finalizations``: the final list, its plans and progress are built on it), or the run of any
verification (``verifications.run_id``; dispute decisions refer to verifications).  Every other
run is a trial: a what-if or a re-run that was superseded (docs/service.md: after 定稿 every
later run of the year is a trial).  ``--keep N`` keeps the N newest runs of each year,
``--older-than DAYS`` removes only trials older than that; given both, a trial must be
beyond both.  The removal is one transaction with its audit line.

Files go with the rows (:class:`Folders`, given by the service from its settings): the output
folder ``<runs_dir>/<run_id>`` of each removed run, and every upload folder (``upload-…``, made by
``POST /api/v1/data``) in the upload folder (``upload_dir``; or under the data root, where versions
before it saved them) that no remaining run, evaluation or 差别化措施 batch
read from and that is older than both ``--older-than`` days and ``upload_grace_days``: a folder
uploaded and never run, or whose runs were all trials, would
otherwise stay on the server for ever.  They are removed after the rows are committed.
"""
from __future__ import annotations

import datetime as dt
import re
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import duckdb

from .errors import ScreeningError, from_os_error
from .paths import confined
from .sqlquote import identifier
from .store import STORED_TABLES


class PruneError(ScreeningError):
    exit_code = 2


#: the name ``POST /api/v1/data`` gives an upload folder: upload-<年度>-<时间>-<随机>
UPLOAD_FOLDER = re.compile(r"upload-(\d{4})-(\d{8}T\d{6})-[0-9a-f]{6}")


def upload_folder_name(year: int, now: dt.datetime, token: str) -> str:
    """The folder name of an upload of ``year`` made at ``now`` (local time), ``token`` 6 hex digits."""
    return f"upload-{year}-{now.strftime('%Y%m%dT%H%M%S')}-{token}"


@dataclass(frozen=True)
class Folders:
    """Where the service keeps files that belong to stored runs (api.config.Settings)."""
    data_root: Path
    runs_dir: Path
    #: an upload no stored run read from is kept at least this many days (a longer --older-than: that)
    upload_grace_days: float
    #: where POST /api/v1/data saves uploads (earlier versions saved them under data_root, still looked at)
    upload_dir: Path | None = None


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
          dry_run: bool = False, folders: Folders | None = None, now: dt.datetime | None = None) -> dict[str, Any]:
    """Remove the trial runs (:func:`trials`) in one transaction, audited, then (``folders``
    given) their output folders and the stale upload folders; returns what was removed:
    ``removed`` (runs), ``rows`` per table, ``files`` ({"run_folders", "uploads"}: folder names),
    ``not_removed`` (a folder the file system refused, with the reason)."""
    from api.db import audit

    now = now or dt.datetime.now(dt.timezone.utc)
    con.execute("BEGIN TRANSACTION")
    try:
        found = trials(con, keep, older_than_days, now)
        ids = [t.run_id for t in found]
        rows: dict[str, int] = {}
        files = _stale_folders(con, ids, older_than_days, folders, now) if folders else {}
        if ids and not dry_run:
            for table in (*RUN_TABLES, "runs"):
                if _exists(con, table):
                    rows[table] = int(con.execute(
                        f"DELETE FROM {identifier(table)} WHERE run_id IN (SELECT unnest(?))", [ids]).fetchall()[0][0])
        summary = {"removed": [{"run_id": t.run_id, "list_year": t.list_year, "created_at": t.created_at.isoformat()}
                               for t in found],
                   "rows": rows, "files": {kind: [p.name for p in paths] for kind, paths in files.items()},
                   "keep": keep, "older_than_days": older_than_days, "dry_run": dry_run}
        if (ids or any(files.values())) and not dry_run:
            audit(con, user, "prune_runs", "run", ",".join(ids), None, summary)
        con.execute("COMMIT")
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass
        raise
    summary["not_removed"] = [] if dry_run else _remove(path for paths in files.values() for path in paths)
    return summary


def _stale_folders(con: duckdb.DuckDBPyConnection, removed: list[str], older_than_days: float | None,
                   folders: Folders, now: dt.datetime) -> dict[str, list[Path]]:
    """The removed runs' output folders, and the upload folders nothing that stays refers to."""
    runs_dir = folders.runs_dir.resolve()
    # a run id is only ever a folder name directly under runs_dir: an id such as ``..`` or
    # ``a/b`` (a run record brought in by hand) names no folder of ours and is left alone
    run_folders = [runs_dir / run_id for run_id in removed
                   if _plain_folder(runs_dir / run_id) and (runs_dir / run_id).resolve().parent == runs_dir]
    root = folders.data_root.resolve()
    used = _folders_in_use(con, removed, root)
    made = uploads_made(con)
    # the grace period is a floor: ``--older-than 0`` (every trial run) must not take an upload
    # made yesterday that nobody has run yet
    days = max(older_than_days or 0.0, folders.upload_grace_days)
    cutoff = (now.astimezone() - dt.timedelta(days=days)).replace(tzinfo=None)  # the names hold local time
    places = [root] + ([folders.upload_dir.resolve()] if folders.upload_dir is not None else [])
    uploads = []
    for path in sorted({path for place in places if place.is_dir() for path in place.iterdir()}):
        match = UPLOAD_FOLDER.fullmatch(path.name)
        # only a folder the service made (its upload_data audit line): one named like it by hand is not ours
        if match is None or path.name in used or path.name not in made or not _plain_folder(path):
            continue
        try:
            made_at = dt.datetime.strptime(match.group(2), "%Y%m%dT%H%M%S")
        except ValueError:
            continue  # not a name the service gave
        if made_at < cutoff:
            uploads.append(path)
    return {"run_folders": run_folders, "uploads": uploads}


def uploads_made(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The upload folders POST /api/v1/data made (each upload is audited under its folder name)."""
    if not _exists(con, "audit_log"):
        return set()
    return {key for (key,) in con.execute(
        "SELECT DISTINCT entity_key FROM audit_log WHERE action = 'upload_data' AND entity = 'data'").fetchall()}


def service_runs(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The stored runs POST /api/v1/runs made (each is audited under its run id once its output
    folder ``<runs_dir>/<run_id>`` is complete); a run a prune removed is no longer stored."""
    if not _exists(con, "audit_log") or not _exists(con, "runs"):
        return set()
    return {key for (key,) in con.execute(
        "SELECT DISTINCT entity_key FROM audit_log WHERE action = 'run' AND entity = 'run' "
        "AND entity_key IN (SELECT run_id FROM runs)").fetchall()}


def _folders_in_use(con: duckdb.DuckDBPyConnection, removed: list[str], root: Path) -> set[str]:
    """Names of the data root's folders that a remaining run (its input files), an evaluation or a
    差别化措施 batch read from: they are kept, an evaluation's to be reproduced from."""
    references: list[str] = []
    if _exists(con, "runs"):
        for (files,) in con.execute(
                "SELECT json_extract_string(record, '$.inputs.*.file') FROM runs "
                "WHERE run_id NOT IN (SELECT unnest(?::VARCHAR[]))", [removed]).fetchall():
            references += [file for file in files or [] if file]
    for table, column in (("eval_runs", "data_dir"), ("measure_list_batches", "data")):
        if _exists(con, table):
            references += [value for (value,) in con.execute(
                f"SELECT DISTINCT {identifier(column)} FROM {identifier(table)} WHERE {identifier(column)} IS NOT NULL"
            ).fetchall() if value]
    return {name for reference in references for name in _root_folders(reference, root)}


def _root_folders(reference: str, root: Path) -> set[str]:
    """The data root's top-level folders a stored path may name.  Resolved as the service resolves
    a request's path (:func:`screening.paths.confined`: relative from the root, absolute as is,
    ``..`` and links followed), and, whatever directory it was written from (a relative path
    of a command-line run), every part of it that is an upload folder's name: kept rather than lost."""
    names = {part for part in PurePath(reference).parts if UPLOAD_FOLDER.fullmatch(part)}
    found = confined(reference, [root])
    if found is not None and found != root:
        names.add(found.relative_to(root).parts[0])
    return names


def _plain_folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _remove(paths) -> list[dict[str, str]]:
    refused = []
    for path in paths:
        try:
            shutil.rmtree(path)
        except OSError as exc:
            refused.append({"folder": path.name, "reason": str(from_os_error(exc))})
    return refused
