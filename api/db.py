"""The service's tables beside the stored runs, and the queries the routes share."""
from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Any

import duckdb

#: service tables a later version added, with what they hold: a database the version before wrote
#: lacks them until the service next starts (ensure_schema creates them), which is no damage
ADDED_LATER = {"eval_items": "亩均评价的逐项得分"}

from screening import auditchain
from screening.sqlquote import identifier
from screening.store import results_relation, upgrade

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
CREATE TABLE IF NOT EXISTS evidence_files (
    evidence_id VARCHAR PRIMARY KEY,
    uscc VARCHAR NOT NULL,
    list_year INTEGER NOT NULL,
    media_type VARCHAR NOT NULL,
    size_bytes BIGINT NOT NULL,
    sha256 VARCHAR NOT NULL,
    original_name VARCHAR,
    note VARCHAR,
    created_by VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS user_passwords (
    user_id VARCHAR PRIMARY KEY,
    password_argon2 VARCHAR NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS eval_runs (
    evaluation_id VARCHAR PRIMARY KEY,
    data_year INTEGER NOT NULL,
    method_id VARCHAR NOT NULL,
    method_version VARCHAR NOT NULL,
    method_sha256 VARCHAR NOT NULL,
    method_text BLOB NOT NULL,
    inputs_sha256 VARCHAR NOT NULL,
    data_dir VARCHAR,
    status VARCHAR NOT NULL,
    revision INTEGER NOT NULL,
    firms INTEGER NOT NULL,
    note VARCHAR,
    created_by VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    publication_start DATE,
    publication_end DATE,
    published_by VARCHAR,
    published_at TIMESTAMPTZ,
    window_closed_at TIMESTAMPTZ,
    reviewed_by VARCHAR,
    reviewed_at TIMESTAMPTZ,
    finalized_by VARCHAR,
    finalized_at TIMESTAMPTZ,
    final_sha256 VARCHAR
);
CREATE TABLE IF NOT EXISTS eval_inputs (
    evaluation_id VARCHAR NOT NULL,
    table_name VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (evaluation_id, table_name)
);
CREATE TABLE IF NOT EXISTS eval_results (
    evaluation_id VARCHAR NOT NULL,
    revision INTEGER NOT NULL,
    uscc VARCHAR NOT NULL,
    name VARCHAR,
    township VARCHAR,
    industry_code VARCHAR,
    scale VARCHAR,
    population VARCHAR,
    population_name VARCHAR,
    score DOUBLE,
    base_score DOUBLE,
    adjustment DOUBLE,
    rank BIGINT,
    group_size BIGINT,
    grade VARCHAR,
    initial_grade VARCHAR,
    grade_class VARCHAR,
    not_graded_reason VARCHAR,
    quantities JSON,
    detail JSON,
    PRIMARY KEY (evaluation_id, revision, uscc)
);
CREATE TABLE IF NOT EXISTS eval_items (
    evaluation_id VARCHAR NOT NULL,
    revision INTEGER NOT NULL,
    uscc VARCHAR NOT NULL,
    indicator VARCHAR NOT NULL,
    indicator_name VARCHAR,
    unit VARCHAR,
    numerator DOUBLE,
    denominator DOUBLE,
    value DOUBLE,
    baseline DOUBLE,
    weight DOUBLE,
    item_score DOUBLE,
    data_status VARCHAR,
    handling VARCHAR,
    capped BOOLEAN,
    note VARCHAR,
    PRIMARY KEY (evaluation_id, revision, uscc, indicator)
);
CREATE TABLE IF NOT EXISTS eval_confirmations (
    confirmation_id VARCHAR PRIMARY KEY,
    evaluation_id VARCHAR NOT NULL,
    data_year INTEGER NOT NULL,
    uscc VARCHAR NOT NULL,
    outcome VARCHAR NOT NULL,
    corrections JSON NOT NULL,
    originals JSON NOT NULL,
    note VARCHAR,
    created_by VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS eval_corrections (
    evaluation_id VARCHAR NOT NULL,
    revision INTEGER NOT NULL,
    uscc VARCHAR NOT NULL,
    quantity VARCHAR NOT NULL,
    original DOUBLE,
    corrected DOUBLE NOT NULL,
    source VARCHAR NOT NULL,
    source_id VARCHAR NOT NULL,
    applied BOOLEAN NOT NULL,
    reason VARCHAR
);
CREATE TABLE IF NOT EXISTS eval_objections (
    objection_id VARCHAR PRIMARY KEY,
    evaluation_id VARCHAR NOT NULL,
    uscc VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    evidence_ref VARCHAR,
    stamped BOOLEAN NOT NULL,
    corrections JSON NOT NULL,
    created_by VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    decision VARCHAR,
    decision_note VARCHAR,
    decided_corrections JSON,
    decided_by VARCHAR,
    decided_at TIMESTAMPTZ,
    batch_revision INTEGER
);
CREATE TABLE IF NOT EXISTS eval_no_objection (
    evaluation_id VARCHAR NOT NULL,
    uscc VARCHAR NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (evaluation_id, uscc)
);
CREATE TABLE IF NOT EXISTS eval_grade_changes (
    change_id VARCHAR PRIMARY KEY,
    evaluation_id VARCHAR NOT NULL,
    uscc VARCHAR NOT NULL,
    from_grade VARCHAR,
    to_grade VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    approver VARCHAR NOT NULL,
    created_by VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS eval_final (
    evaluation_id VARCHAR NOT NULL,
    uscc VARCHAR NOT NULL,
    township VARCHAR,
    initial_grade VARCHAR,
    computed_grade VARCHAR,
    final_grade VARCHAR,
    score DOUBLE,
    rank BIGINT,
    PRIMARY KEY (evaluation_id, uscc)
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
    after JSON,
    seq BIGINT,
    prev_hash VARCHAR,
    row_hash VARCHAR
);
-- 差别化措施 (api/routes/measures.py): the lists per utility of a year, and the quarterly ledger
CREATE TABLE IF NOT EXISTS measure_lists (
    list_year INTEGER NOT NULL,
    batch_id VARCHAR NOT NULL,
    on_date DATE NOT NULL,
    utility VARCHAR NOT NULL,
    uscc VARCHAR NOT NULL,
    name VARCHAR,
    township VARCHAR,
    account VARCHAR,
    grade VARCHAR NOT NULL,
    grade_year INTEGER NOT NULL,
    consecutive_years INTEGER NOT NULL,
    surcharge DOUBLE,
    unit VARCHAR NOT NULL,
    refund_share DOUBLE,
    previous_grade VARCHAR,
    valid_from DATE NOT NULL,
    valid_to DATE NOT NULL,
    policy_id VARCHAR NOT NULL,
    grade_source VARCHAR,
    note VARCHAR,
    citation VARCHAR,
    assumption VARCHAR
);
CREATE TABLE IF NOT EXISTS measure_list_batches (
    list_year INTEGER PRIMARY KEY,
    batch_id VARCHAR NOT NULL,
    on_date DATE NOT NULL,
    data VARCHAR NOT NULL,
    summary JSON NOT NULL,
    created_by VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS measure_ledger (
    entry_id VARCHAR PRIMARY KEY,
    batch_id VARCHAR NOT NULL,
    year INTEGER NOT NULL,
    quarter INTEGER NOT NULL,
    kind VARCHAR NOT NULL,
    utility VARCHAR,
    uscc VARCHAR,
    name VARCHAR,
    township VARCHAR NOT NULL,
    quantity DOUBLE,
    amount DOUBLE NOT NULL,
    note VARCHAR,
    source_file VARCHAR,
    source_row INTEGER NOT NULL,
    imported_by VARCHAR NOT NULL,
    imported_at TIMESTAMPTZ NOT NULL
);
"""

#: the audit chain (screening.auditchain) on a database an older version created: the columns
#: are added (its older lines keep none: the chain starts after them) and ``seq`` is unique, so
#: that two transactions can never both commit a line after the same one
AUDIT_CHAIN_DDL = (
    "ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS seq BIGINT",
    "ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS prev_hash VARCHAR",
    "ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS row_hash VARCHAR",
    "CREATE UNIQUE INDEX IF NOT EXISTS audit_log_seq ON audit_log (seq)",
)


#: per-firm lookups in the stored runs: (table, column) pairs that get an ART index; run_results
#: names its firm by the run's firm number (screening.store.FIRM_KEY), found by uscc in run_enterprises
FIRM_INDEXES = (("run_results", "firm"), ("run_enterprises", "uscc"), ("run_list", "uscc"), ("run_anomalies", "uscc"))


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    for statement in SERVICE_DDL.split(";"):
        if statement.strip():
            con.execute(statement)
    for statement in AUDIT_CHAIN_DDL:
        con.execute(statement)
    upgrade(con)  # the run tables of a file an older version wrote (screening.store.migrate)
    for table, column in FIRM_INDEXES:
        if table_exists(con, table):
            con.execute(f"CREATE INDEX IF NOT EXISTS {identifier(f'{table}_{column}')} ON {identifier(table)} ({identifier(column)})")


def _firm_scan(table: str) -> str:
    """All runs' rows of one firm, alone in its scan so that DuckDB uses the index (it does not
    when run_id is filtered in the same scan)."""
    return f"(SELECT * FROM {identifier(table)} WHERE uscc = ? OFFSET 0)"


def firm_rows(table: str) -> str:
    """Rows of one firm in one run (parameters: uscc, run_id)."""
    return f"{_firm_scan(table)} WHERE run_id = ?"


def firm_results(con: duckdb.DuckDBPyConnection, uscc: str, run_id: str) -> list[dict[str, Any]]:
    """The firm's run_results rows in one run, with store.RESULT_COLUMNS (its uscc, each rule's
    title and citation) ordered by rule_id: its number in the run is looked up by uscc
    (run_enterprises' index), then its rows by that number (run_results' index); none when the
    run does not hold the firm."""
    found = con.execute(f"SELECT firm FROM {firm_rows('run_enterprises')}", [uscc, run_id]).fetchall()
    if not found:
        return []
    rows = "(SELECT * FROM run_results WHERE firm = ? OFFSET 0)"
    return records(con, f"SELECT * FROM {results_relation(con, rows)} WHERE run_id = ? ORDER BY rule_id",
                   [found[0][0], run_id])


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    rows = con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = ? AND schema_name = 'main'", [name]).fetchall()
    return bool(rows)


@dataclass(frozen=True)
class StoredRun:
    run_id: str
    list_year: int
    created_at: dt.datetime
    #: the rules the run applied (every rule id a filter may name)
    rule_ids: tuple[str, ...]
    #: whether any rule could judge any firm (hit or pass): a run whose data years are not in
    #: its input judges nothing
    judged: bool


@dataclass(frozen=True)
class RunCatalogue:
    """The stored runs and which one serves each list year, read in one statement.

    A list year serves its finalized (定稿) run once finalized, else its newest run.  A run
    of a finalized year newer than the finalized run is a trial (试算): stored, never served.
    Stored runs never change, so everything read by run id agrees with this catalogue."""
    runs: Mapping[str, StoredRun]  # oldest first
    finalized: Mapping[int, str]   # list year → finalized run

    def served(self, year: int) -> StoredRun | None:
        return self.served_runs.get(year)

    @cached_property
    def served_runs(self) -> Mapping[int, StoredRun]:
        """The run each list year serves, by list year."""
        newest = {run.list_year: run for run in self.runs.values()}  # oldest first: the last one stays
        return MappingProxyType({year: self.runs[self.finalized[year]] if year in self.finalized else run
                                 for year, run in sorted(newest.items())})

    def is_trial(self, run_id: str) -> bool:
        run = self.runs[run_id]
        final = self.finalized.get(run.list_year)
        return final is not None and _order(run) > _order(self.runs[final])

    def earlier(self, run: StoredRun) -> list[StoredRun]:
        """The runs of the same list year stored before ``run``."""
        return [r for r in self.runs.values() if r.list_year == run.list_year and _order(r) < _order(run)]

    def default_year(self) -> int | None:
        """The newest list year with a stored run, preferring years whose run judged any firm
        (a run for a year the data do not reach judges nothing)."""
        served = self.served_runs
        judged = [year for year, run in served.items() if run.judged]
        return max(judged or served, default=None)


def _order(run: StoredRun) -> tuple[dt.datetime, str]:
    return run.created_at, run.run_id


_CATALOGUE_SQL = """
SELECT r.run_id, r.list_year, r.created_at,
       json_keys(r.record, '$.hits_per_rule') AS rule_ids,
       json_extract(r.record, '$.status_counts') AS status_counts,
       coalesce(f.run_id = r.run_id, false) AS finalized
FROM runs r LEFT JOIN {finalizations} f USING (list_year)
ORDER BY r.created_at, r.run_id
"""


def run_catalogue(con: duckdb.DuckDBPyConnection) -> RunCatalogue:
    """The stored runs (one statement: one consistent state of runs and finalizations)."""
    if not table_exists(con, "runs"):
        return RunCatalogue({}, {})
    runs, finalized = {}, {}
    # a database the service has not opened yet has no service tables
    finalizations = "finalizations" if table_exists(con, "finalizations") else \
        "(SELECT NULL::INTEGER AS list_year, NULL::VARCHAR AS run_id)"
    for run_id, year, created_at, rule_ids, counts, final in con.execute(
            _CATALOGUE_SQL.format(finalizations=finalizations)).fetchall():
        runs[run_id] = StoredRun(run_id, year, created_at, tuple(sorted(rule_ids or ())), _judged(counts))
        if final:
            finalized[year] = run_id
    return RunCatalogue(MappingProxyType(runs), MappingProxyType(finalized))


def _judged(status_counts: str | None) -> bool:
    if status_counts is None:
        return True  # stored before the counts were recorded: assume it did
    return any(c.get("hit", 0) + c.get("pass", 0) for c in json.loads(status_counts).values())


def served_run(con: duckdb.DuckDBPyConnection, year: int) -> str | None:
    """The run a list year serves (see :class:`RunCatalogue`)."""
    run = run_catalogue(con).served(year)
    return None if run is None else run.run_id


@contextmanager
def one_snapshot(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Every query inside reads the same committed state (a DuckDB transaction is a snapshot):
    for a route that answers from several queries."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    finally:
        con.execute("ROLLBACK")


@contextmanager
def one_write(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """A change and its audit line in one transaction: both are kept, or neither (a password
    set or a token revoked without its audit line, when writing the line fails)."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


#: one audit line at a time per process (the service is the one writer of its database)
_AUDIT_LOCK = threading.Lock()
#: database path → (seq, audit_id) of the newest line written, perhaps not yet committed
_WRITTEN: dict[str, tuple[int, str]] = {}
#: seconds an audit line waits for the line before it, written by another request whose
#: transaction has not committed yet (the routes commit right after their audit line)
AUDIT_WAIT = 2.0
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _chain_head(con: duckdb.DuckDBPyConnection) -> tuple[int, str]:
    rows = con.execute("SELECT seq, row_hash FROM audit_log WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1").fetchall()
    return (int(rows[0][0]), rows[0][1]) if rows else (0, auditchain.GENESIS)


def audit(con: duckdb.DuckDBPyConnection, user: Any, action: str, entity: str, key: str,
          before: Any, after: Any) -> None:
    """Append one line to the audit trail (append-only: no route updates or deletes it), in
    the caller's transaction, chained to the line before it (screening.auditchain).

    The line before is the newest one this request's transaction sees or that is committed;
    a line another request wrote and has not committed yet is waited for (AUDIT_WAIT), so
    that the chain stays one line after another.  Should two transactions still chain to
    the same line, the unique ``seq`` lets only the first commit."""
    def dump(value: Any) -> str | None:
        return None if value is None else json.dumps(value, ensure_ascii=False, default=str)

    with _AUDIT_LOCK:
        committed = con.cursor()  # a connection of its own: sees every commit, not this transaction's snapshot
        try:
            database = str(committed.execute(
                "SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchall()[0][0])
            own, latest = _chain_head(con), _chain_head(committed)
            pending = _WRITTEN.get(database)
            if pending and max(own[0], latest[0]) < pending[0]:
                deadline = time.monotonic() + AUDIT_WAIT
                while latest[0] < pending[0] and time.monotonic() < deadline:
                    time.sleep(0.002)
                    latest = _chain_head(committed)
        finally:
            committed.close()
        seq, prev_hash = max(own, latest)
        now = dt.datetime.now(dt.timezone.utc)
        line = {"seq": seq + 1, "audit_id": uuid.uuid4().hex, "logged_us": (now - _EPOCH) // dt.timedelta(microseconds=1),
                "user_name": user.name, "role": user.role, "action": action, "entity": entity, "entity_key": key,
                "before": dump(before), "after": dump(after)}
        con.execute("INSERT INTO audit_log (audit_id, logged_at, user_name, role, action, entity, entity_key, before, "
                    "after, seq, prev_hash, row_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [line["audit_id"], now, user.name, user.role, action, entity, key, line["before"], line["after"],
                     line["seq"], prev_hash, auditchain.row_hash(prev_hash, line)])
        _WRITTEN[database] = (line["seq"], line["audit_id"])


def finalized(con: duckdb.DuckDBPyConnection, year: int) -> dict[str, Any] | None:
    rows = records(con, "SELECT * FROM finalizations WHERE list_year = ?", [year])
    return rows[0] if rows else None


def records(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]
