"""An in-memory read model for the hot read routes (the 一企一策 record above all).

Why: every DuckDB query costs a few tenths of a millisecond however small, and the record
route needs a dozen of them; on a province's database that caps one worker near 120
requests/s.  This process is the only writer of the database file (DuckDB allows one), so
it knows exactly when the data change and can keep what it reads in memory:

* stored runs never change once written, so everything read from one run is kept under its
  run id and never goes stale: the served run of each list year is held as Polars frames
  sorted by enterprise code (a binary search finds a firm), loaded in the background (until
  a run is loaded, readers ask DuckDB, so nothing ever waits for the load); a run's list is
  one immutable :class:`RunList` (its rows, its sort orders, its townships);
* the small, mutable service tables (verifications, decisions, final list, plans, audit)
  are read per list year in a few bulk queries and grouped by firm;
* tokens, and the run catalogue (which runs exist, which one each list year serves).

One snapshot per request: a route takes the catalogue once, picks its run from it, and reads
every row it returns from that run's immutable objects (authorization filters included), so
a run stored meanwhile cannot mix into its answer.  No route may read rows of one run from two
objects that are refreshed separately (that is how a township once received another
township's rows).

Every write request (any method but GET/HEAD/OPTIONS) bumps a generation counter when it
has finished (after its commit); cached mutable state read under an older generation is read
again.  State is tagged with the generation current when its read *started*, so a read
racing a write is never kept.
"""
from __future__ import annotations

import ctypes
import gc
import json
import logging
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import duckdb
import numpy as np
import polars as pl

from screening.store import results_relation

from .auth import User, find_user, token_hash
from .db import RunCatalogue, StoredRun, records, run_catalogue, table_exists

log = logging.getLogger("uvicorn.error")  # the server's own log, when served by uvicorn
LOADED = "已将运行 {run} 读入内存（{rows} 行，{seconds:.1f} 秒）"

#: tokens kept in memory (only valid ones are cached, so random tokens cannot fill it)
MAX_TOKENS = 10_000
#: rows per batch when reading a run into memory
READ_BATCH_ROWS = 200_000
#: run lists kept in memory (a list is small: one row per listed firm)
MAX_LISTS = 16
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


class ByFirm:
    """A table sorted by enterprise code, with the codes as a NumPy array of bytes: finding
    a firm's rows is a binary search of a few microseconds."""

    def __init__(self, frame: pl.DataFrame, *order: str, compact: bool = True, keep_code: bool = True):
        # texts sort as texts (a categorical would sort by first appearance)
        frame = frame.sort("uscc", *(pl.col(c).cast(pl.String) for c in order), maintain_order=True)
        self.keys = frame["uscc"].to_numpy().astype("S")  # codes are ASCII (GB 32100): 18 bytes each
        frame = frame if keep_code else frame.drop("uscc")
        self.frame = _compact(frame) if compact else frame

    def rows(self, uscc: str, drop: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        key = uscc.encode("utf-8", "replace")
        if b"\x00" in key:  # NumPy's fixed-width bytes drop trailing NULs: "code\0" would find "code"
            return []
        lo, hi = int(np.searchsorted(self.keys, key, "left")), int(np.searchsorted(self.keys, key, "right"))
        if hi <= lo:
            return []
        return [{k: v for k, v in r.items() if k not in drop} for r in self.frame.slice(lo, hi - lo).to_dicts()]


class RunList:
    """One stored run's list (its run_list rows), the run's townships and rule ids: immutable,
    as the stored run is.  A request takes one and reads every row it returns from it, with
    every filter (the caller's township too) applied to it: nothing stored meanwhile can
    change what the request sees."""

    #: the columns a list page may be filtered on
    FILTERED = ("uscc", "name", "township", "rule_ids", "industry_code", "suggested_disposition")

    def __init__(self, run: StoredRun, frame: pl.DataFrame, townships: frozenset[str]):
        self.run = run
        self.townships = townships
        self._firms = ByFirm(frame, compact=False)  # kept as stored: texts sort exactly as in the database
        self._orders: dict[tuple[str, bool], pl.DataFrame] = {}
        self._lock = threading.Lock()

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return self.run.rule_ids

    def entry(self, uscc: str) -> dict[str, Any] | None:
        """The firm's row of the list (without its code), or None when it is not listed."""
        rows = self._firms.rows(uscc, drop=("uscc",))
        return rows[0] if rows else None

    def page(self, where: list[pl.Expr], sort: str, descending: bool, offset: int, limit: int
             ) -> tuple[int, list[dict[str, Any]]]:
        """(rows matching every condition, the rows from ``offset``): sorted by ``sort``, then
        by code, nulls last."""
        ordered = self._order(sort, descending)
        matching = ordered.filter(*where) if where else ordered
        rows = matching["_row"].slice(offset, limit)
        return matching.height, self._firms.frame[rows].to_dicts()

    def _order(self, column: str, descending: bool) -> pl.DataFrame:
        """The filtered columns and ``_row`` (the row in this list) in one sort order: sorting
        text is the slow part of a page, so each order is sorted once per run."""
        key = (column, descending)
        with self._lock:
            cached = self._orders.get(key)
        if cached is None:
            cached = (self._firms.frame.with_row_index("_row")
                      .select("_row", *dict.fromkeys((*self.FILTERED, column)))
                      .sort([column, "uscc"], descending=[descending, False], nulls_last=True))
            with self._lock:
                cached = self._orders.setdefault(key, cached)
        return cached


class ListedIn:
    """Which of a fixed set of stored runs list each firm (stored runs never change, so the
    answer for these runs never does)."""

    def __init__(self, runs: frozenset[str], frame: pl.DataFrame):
        self.runs = runs
        self._firms = ByFirm(frame, "run_id", compact=False)

    def covers(self, catalogue: RunCatalogue) -> bool:
        return self.runs.issuperset(catalogue.runs)

    def runs_of(self, uscc: str) -> set[str]:
        return {r["run_id"] for r in self._firms.rows(uscc)}


@dataclass
class RunFrames:
    """One stored run's per-firm tables."""
    enterprises: ByFirm
    results: ByFirm
    #: the run's 数据核查提示 (None: the database predates the check) and whether the run was checked
    anomalies: ByFirm | None
    checked: bool


@dataclass
class ServiceState:
    """The service tables of one list year, grouped by firm."""
    finalization: dict[str, Any] | None
    verifications: dict[str, list[dict]] = field(default_factory=dict)
    decisions: dict[str, list[dict]] = field(default_factory=dict)
    final_basis: dict[str, str] = field(default_factory=dict)
    plans: dict[str, dict] = field(default_factory=dict)
    progress: dict[str, list[dict]] = field(default_factory=dict)

    @cached_property
    def outcomes(self) -> dict[str, str]:
        """Each verified firm's latest outcome (its verification status on the list)."""
        return {uscc: rows[-1]["outcome"] for uscc, rows in self.verifications.items()}


class ReadModel:
    def __init__(self, con: duckdb.DuckDBPyConnection, max_runs: int):
        self._con = con
        self._max_runs = max_runs
        self._lock = threading.Lock()
        self.generation = 0
        self._tokens: OrderedDict[str, tuple[int, User]] = OrderedDict()
        self._catalogue: tuple[int, RunCatalogue] | None = None
        self._lists: OrderedDict[str, RunList] = OrderedDict()
        self._listed_in: ListedIn | None = None
        self._changes: tuple[int, dict[str, list[dict]]] | None = None
        self._states: dict[int, tuple[int, ServiceState]] = {}
        self._frames: OrderedDict[str, RunFrames] = OrderedDict()
        self._loading: set[str] = set()

    # ------------------------------------------------------------------ invalidation

    def wrote(self, path: str) -> None:
        """A write request has finished (``path``: its route, for the record)."""
        with self._lock:
            self.generation += 1

    def _fresh(self, entry: tuple[int, Any] | None, generation: int) -> Any:
        return entry[1] if entry is not None and entry[0] == generation else None

    # ------------------------------------------------------------------ users and runs

    def user(self, cursor: duckdb.DuckDBPyConnection, token: str) -> User | None:
        key, generation = token_hash(token), self.generation
        with self._lock:
            cached = self._fresh(self._tokens.get(key), generation)
        if cached is not None:
            return cached
        user = find_user(cursor, token)
        if user is not None:
            with self._lock:
                self._tokens[key] = (generation, user)
                while len(self._tokens) > MAX_TOKENS:
                    self._tokens.popitem(last=False)
        return user

    def catalogue(self, cursor: duckdb.DuckDBPyConnection) -> RunCatalogue:
        """The stored runs and the run each list year serves (see :class:`api.db.RunCatalogue`):
        take it once per request and pick the request's run from it."""
        generation = self.generation
        cached = self._fresh(self._catalogue, generation)
        if cached is None:
            cached = run_catalogue(cursor)
            self._catalogue = (generation, cached)
        return cached

    def run_list(self, cursor: duckdb.DuckDBPyConnection, run: StoredRun) -> RunList:
        """The run's list, read once per run (a stored run never changes)."""
        with self._lock:
            found = self._lists.get(run.run_id)
            if found is not None:
                self._lists.move_to_end(run.run_id)
                return found
        frame = cursor.sql("SELECT * EXCLUDE (run_id, list_year) FROM run_list WHERE run_id = $run",
                           params={"run": run.run_id}).pl()
        townships = frozenset(t for (t,) in cursor.execute(
            "SELECT DISTINCT township FROM run_enterprises WHERE run_id = ? AND township IS NOT NULL",
            [run.run_id]).fetchall())
        made = RunList(run, frame, townships)
        with self._lock:
            made = self._lists.setdefault(run.run_id, made)
            while len(self._lists) > MAX_LISTS:
                self._lists.popitem(last=False)
        return made

    def listed_in(self, cursor: duckdb.DuckDBPyConnection, catalogue: RunCatalogue) -> ListedIn:
        """Which runs of the catalogue list each firm."""
        current = self._listed_in
        if current is None or not current.covers(catalogue):
            runs = frozenset(catalogue.runs)
            frame = cursor.sql("SELECT uscc, run_id FROM run_list WHERE list_contains($runs, run_id)",
                               params={"runs": sorted(runs)}).pl()
            current = self._listed_in = ListedIn(runs, frame)
        return current

    # ------------------------------------------------------------------ stored runs

    def frames(self, run_id: str) -> RunFrames | None:
        """The run's frames if loaded; otherwise start loading them and return None."""
        if self._max_runs <= 0:
            return None
        with self._lock:
            frames = self._frames.get(run_id)
            if frames is not None:
                self._frames.move_to_end(run_id)
                return frames
            if run_id in self._loading:
                return None
            self._loading.add(run_id)
        threading.Thread(target=self._load, args=(run_id,), name=f"load-{run_id}", daemon=True).start()
        return None

    def _load(self, run_id: str) -> None:
        cursor = self._con.cursor()
        started = time.perf_counter()
        try:
            enterprises = _read(cursor, """
                SELECT e.* EXCLUDE (firm), r.list_year, r.created_at AS run_created_at
                FROM run_enterprises e JOIN runs r USING (run_id) WHERE e.run_id = $run
            """, run_id)
            results = _read(cursor, "SELECT * EXCLUDE (run_id, list_year) FROM "
                            f"{results_relation(cursor, '(SELECT * FROM run_results WHERE run_id = $run)')}", run_id)
            anomalies = _read(cursor, "SELECT * EXCLUDE (run_id) FROM run_anomalies WHERE run_id = $run",
                              run_id) if table_exists(cursor, "run_anomalies") else None
            rows = enterprises.height + results.height
            frames = RunFrames(ByFirm(enterprises), ByFirm(results, "rule_id", keep_code=False),
                               None if anomalies is None else ByFirm(anomalies), anomalies_checked(cursor, run_id))
            del enterprises, results, anomalies
            _release_freed_memory()
            gc.freeze()  # what is loaded stays: full collections need not walk it again
            with self._lock:
                self._frames[run_id] = frames
                while len(self._frames) > self._max_runs:
                    self._frames.popitem(last=False)
            log.info(LOADED.format(run=run_id, rows=rows,
                                   seconds=time.perf_counter() - started))
        except (duckdb.Error, pl.exceptions.PolarsError) as exc:  # the DuckDB path keeps serving
            log.warning("读取运行 %s 到内存失败：%s", run_id, exc)
        finally:
            cursor.close()
            with self._lock:
                self._loading.discard(run_id)

    def preload(self) -> None:
        """Start loading the served run of the newest list years (called at start-up)."""
        cursor = self._con.cursor()
        try:
            served = self.catalogue(cursor).served_runs
        finally:
            cursor.close()
        for year in sorted(served, reverse=True)[: self._max_runs]:
            self.frames(served[year].run_id)

    def wait_loaded(self, timeout: float = 600) -> None:
        """For tests and benchmarks: block until background loads have finished."""
        for thread in [t for t in threading.enumerate() if t.name.startswith("load-")]:
            thread.join(timeout)

    # ------------------------------------------------------------------ service tables

    def service_state(self, cursor: duckdb.DuckDBPyConnection, year: int) -> ServiceState:
        generation = self.generation
        state = self._fresh(self._states.get(year), generation)
        if state is None:
            state = _read_state(cursor, year)
            self._states[year] = (generation, state)
        return state

    def changes(self, cursor: duckdb.DuckDBPyConnection, uscc: str) -> list[dict]:
        """Audit lines about the firm (their key ends in /<uscc>), oldest first."""
        generation = self.generation
        grouped = self._fresh(self._changes, generation)
        if grouped is None:
            grouped = _group(records(cursor, """
                SELECT regexp_extract(entity_key, '/([^/]+)$', 1) AS firm,
                       logged_at, user_name, action, entity, entity_key, after
                FROM audit_log WHERE entity_key LIKE '%/%' ORDER BY logged_at
            """, []), "firm")
            self._changes = (generation, grouped)
        return grouped.get(uscc, [])


def anomalies_checked(cursor: duckdb.DuckDBPyConnection, run_id: str) -> bool:
    """Whether the run ran the data check (runs stored before it existed did not)."""
    rows = cursor.execute("SELECT json_extract(record, '$.anomalies.scored') IS NOT NULL FROM runs WHERE run_id = ?",
                          [run_id]).fetchall()
    return bool(rows and rows[0][0])


def _read(cursor: duckdb.DuckDBPyConnection, sql: str, run_id: str) -> pl.DataFrame:
    """A query's rows in batches, each compacted as it arrives: the peak stays near the
    compact size rather than the size of all rows as plain text."""
    reader = cursor.sql(sql, params={"run": run_id}).to_arrow_reader(READ_BATCH_ROWS)
    parts: list[pl.DataFrame] = []
    repeated: list[str] = []
    for batch in reader:
        part = pl.from_arrow(batch)
        if not parts:  # the first batch decides which texts repeat, so that every batch agrees
            repeated = _repeated(part, limit=64)
        parts.append(part.with_columns(pl.col(repeated).cast(pl.Categorical)))
    return pl.concat(parts, how="vertical") if parts else pl.from_arrow(reader.schema.empty_table())


def _release_freed_memory() -> None:
    """Hand the memory freed after a load back to the system (glibc keeps it otherwise)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to do


def _compact(frame: pl.DataFrame) -> pl.DataFrame:
    """Repeated texts (rule titles, citations, statuses, run ids) as categoricals: a run of
    a million firms then takes a few hundred MB instead of 1.5 GB."""
    return frame.with_columns(pl.col(_repeated(frame, max(64, frame.height // 100))).cast(pl.Categorical))


def _repeated(frame: pl.DataFrame, limit: int) -> list[str]:
    return [c for c, t in frame.schema.items() if t == pl.String and c != "uscc" and frame[c].n_unique() <= limit]


def _group(rows: list[dict], key: str) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        grouped[row.pop(key)].append(row)
    return dict(grouped)


def _read_state(cursor: duckdb.DuckDBPyConnection, year: int) -> ServiceState:
    finalization = records(cursor, "SELECT * FROM finalizations WHERE list_year = ?", [year])
    state = ServiceState(finalization[0] if finalization else None)
    state.verifications = _group(records(cursor, """
        SELECT verification_id, uscc, list_year AS year, run_id, outcome, reason, note, created_by, created_at,
               uscc AS firm
        FROM verifications WHERE list_year = ? ORDER BY created_at, verification_id
    """, [year]), "firm")
    state.decisions = _group(records(cursor, """
        SELECT *, uscc AS firm FROM dispute_decisions WHERE list_year = ? ORDER BY decided_at
    """, [year]), "firm")
    for d in (r for rows in state.decisions.values() for r in rows):
        d.pop("uscc")
    state.final_basis = dict(cursor.execute("SELECT uscc, basis FROM final_list WHERE list_year = ?",
                                            [year]).fetchall())
    state.progress = _group(records(cursor, PROGRESS_SQL.format(where="list_year = ?"), [year]), "firm")
    state.plans = {row["uscc"]: plan_record(row, state.progress.get(row["uscc"], []))
                   for row in records(cursor, "SELECT * FROM plans WHERE list_year = ?", [year])}
    return state


#: one plan's progress lines, oldest first (``firm`` names the enterprise for grouping)
PROGRESS_SQL = """
    SELECT progress_id, progress_date AS date, note, created_by, created_at, uscc AS firm
    FROM plan_progress WHERE {where} ORDER BY progress_date, created_at
"""


def plan_record(row: dict[str, Any], progress: list[dict]) -> dict[str, Any]:
    """A plan as the API shows it: the stored plan with its status, version and progress."""
    return {**json.loads(row["plan"]), "status": row["status"], "completed_at": row["completed_at"],
            "version": row["version"], "updated_by": row["updated_by"], "updated_at": row["updated_at"],
            "progress": [{k: v for k, v in p.items() if k != "firm"} for p in progress]}


class WriteTracker:
    """ASGI middleware: when a write request's handler has finished (it has committed),
    tell the read model — before the response leaves, so that a client's next read after
    the answer never sees the state from before its write."""

    def __init__(self, app: Callable, read_model: Callable[[], ReadModel | None]):
        self.app = app
        self.read_model = read_model

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in _READS:
            return await self.app(scope, receive, send)

        def wrote() -> None:
            model = self.read_model()
            if model is not None:
                model.wrote(scope["path"])

        async def send_after_write(message):
            if message["type"] == "http.response.start":
                wrote()
            await send(message)

        try:
            return await self.app(scope, receive, send_after_write)
        finally:
            wrote()  # also when the handler failed before answering
