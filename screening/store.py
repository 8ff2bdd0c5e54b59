"""Keep every run in the DuckDB database file (``--db``), where the API reads it.

Re-running a year adds a run; old runs are never overwritten.  The run's engine
attaches the file and copies its tables in one transaction, so a run is stored
completely or not at all, and millions of result rows never pass through Python.
"""
from __future__ import annotations

import json
import os
import re
import stat
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl

from . import handover
from .errors import ScreeningError, environment_error
from .sqlquote import identifier, literal

if TYPE_CHECKING:
    from .screen import Screening

#: 1: run_results held each rule's title and citation on every row; 2: they are in run_rules;
#: 3: run_results names its firm by the run's firm number (``firm``, run_enterprises.firm), not by uscc
SCHEMA_VERSION = 3
ALIAS = "store"

#: the two keyed tables; the others are created from their columns in STORED_TABLES
SCHEMA_INFO_DDL = "CREATE TABLE IF NOT EXISTS {table} (key VARCHAR PRIMARY KEY, value VARCHAR)"
RUNS_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
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

_V, _I, _B, _D, _L, _TZ = "VARCHAR", "INTEGER", "BOOLEAN", "DOUBLE", "BIGINT", "TIMESTAMP WITH TIME ZONE"

#: a run's results as every reader sees them (the API, pages, exports, compare, the final list),
#: in this order: stored as run_results (without the rule texts, the firm by its number) joined
#: with run_enterprises and run_rules (results_relation).  Schema version 1 stored exactly these
#: columns in run_results, the two rule texts on every row.
RESULT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("list_year", _I), ("uscc", _V), ("rule_id", _V), ("rule_title", _V), ("status", _V), ("value", _D),
    ("threshold", _D), ("industry_avg", _D), ("industry_group", _V), ("industry_group_name", _V),
    ("group_firms", _L), ("value_prev", _D), ("value_last", _D), ("value_text", _V), ("threshold_text", _V),
    ("years", _V), ("value_prev_text", _V), ("value_last_text", _V), ("source", _V), ("reason_code", _V),
    ("reason", _V), ("detail", _V), ("citation", _V), ("run_id", _V))
#: the texts the same on every result row of a rule in a run: stored once per rule in run_rules
RULE_TEXT_COLUMNS = ("rule_title", "citation")
#: a run's firm in run_results: its number in the run (run_enterprises.firm, 0, 1, 2 … as the
#: engine numbers the registry), not the 18-character uscc repeated on the firm's four rows:
#: the province's database copy costs about 0.8 CPU s less and its run_results 37 % less space
#: (docs/outputs.md §5)
FIRM_KEY = ("firm", _I)
_SCHEMA_2_RESULTS = tuple(c for c in RESULT_COLUMNS if c[0] not in RULE_TEXT_COLUMNS)
_SCHEMA_2_ENTERPRISES = (
    ("run_id", _V), ("uscc", _V), ("name", _V), ("township", _V), ("industry_code", _V), ("division", _I),
    ("industry_name", _V), ("established", "DATE"), ("scale_prev", _V), ("scale_last", _V), ("tax_prev", _D),
    ("tax_last", _D), ("land_prev", _D), ("land_last", _D), ("tax_per_mu_prev", _D), ("tax_per_mu_last", _D),
    ("grade_prev", _V), ("grade_last", _V), ("computed_grade_prev", _V), ("computed_grade_last", _V),
    ("energy_last", _D), ("all_leased_last", _B), ("parcels_last", _L), ("scope_code", _V))
#: the layouts older versions wrote, by table (schema 1's run_results, then schema 2's tables):
#: read as they are, migrated when written (migrate)
LEGACY_TABLES: dict[str, tuple[tuple[tuple[str, str], ...], ...]] = {
    "run_results": (RESULT_COLUMNS, _SCHEMA_2_RESULTS),
    "run_enterprises": (_SCHEMA_2_ENTERPRISES,),
}

#: the columns added at the end of a run table after a version had written it without them: a
#: file lacking only these is an older version's, and the next save adds them (_copy); a run table
#: lacking any other column has lost data (verify reports it as a problem)
ADDED_COLUMNS: dict[str, tuple[str, ...]] = {"run_rejects": ("action",)}


def legacy_layout(table: str, columns) -> bool:
    """Whether ``columns`` ((name, type) pairs) are a layout of ``table`` that :func:`migrate`
    brings to STORED_TABLES: one an older version wrote (LEGACY_TABLES), or the current one with
    columns an older version added when it then ran into a migrated file (its own columns, at the
    end: run_results' texts or uscc; see migrate)."""
    have = set(map(tuple, columns))
    current = set(STORED_TABLES.get(table, ()))
    older = [set(layout) for layout in LEGACY_TABLES.get(table, ())]
    if not older or have == current or not have <= current.union(*older):
        return False
    return any(have >= layout for layout in older) or have > current

#: every table a run or a warning run brings into the database, column by column, as
#: DuckDB describes it (duckdb_columns().data_type).  The tables are created from this
#: (``runs`` from RUNS_DDL), so what save_run and save_tables write is exactly this, and a
#: staged file is imported only when its tables are exactly one of STAGED_KINDS with these
#: columns (tests/test_store.py holds the writers to it).
STORED_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "schema_info": (("key", _V), ("value", _V)),
    "runs": (("run_id", _V), ("created_at", _TZ), ("list_year", _I), ("ruleset_id", _V), ("ruleset_version", _V),
             ("parameters", "JSON"), ("overrides", "JSON"), ("input_hashes", "JSON"), ("row_counts", "JSON"),
             ("timings", "JSON"), ("enterprises", _I), ("listed", _I), ("rejected_rows", _I), ("record", "JSON")),
    # one row per (firm, rule): the rule's title and citation are in run_rules, once per rule, the
    # firm's uscc in run_enterprises (RESULT_COLUMNS: the columns a reader sees; see results_relation)
    "run_results": tuple(FIRM_KEY if c[0] == "uscc" else c for c in _SCHEMA_2_RESULTS),
    "run_rules": (("run_id", _V), ("rule_id", _V), ("rule_title", _V), ("citation", _V)),
    "run_list": (("list_year", _I), ("uscc", _V), ("name", _V), ("township", _V), ("industry_code", _V),
                 ("industry_name", _V), ("scale", _V), ("rule_ids", _V), ("hit_count", _L), ("reasons", _V),
                 ("tax_per_mu", _D), ("land_mu", _D), ("energy_tce", _D), ("tax_per_mu_prev", _D), ("land_prev", _D),
                 ("suggested_disposition", _V), ("disposition_lead", _V), ("disposition_cooperating", _V),
                 ("disposition_basis", _V), ("run_id", _V)),
    # ``action`` came after ``run_id``: an older database gets it added at the end (ADDED_COLUMNS, _copy)
    "run_rejects": (("file", _V), ("row", _L), ("column", _V), ("reason", _V), ("value", _V), ("run_id", _V),
                    ("action", _V)),
    # ``firm`` (the run's firm number, run_results' key) came with schema 3: at the end, where a
    # migrated table has it
    "run_enterprises": _SCHEMA_2_ENTERPRISES + (FIRM_KEY,),
    "run_anomalies": (("run_id", _V), ("list_year", _I), ("uscc", _V), ("name", _V), ("township", _V),
                      ("industry_code", _V), ("listed", _B), ("flagged", _B), ("anomaly_score", _D),
                      ("indicator_ids", _V), ("indicators", _V), ("advisory", _V)),
    "warn_runs": (("warn_id", _V), ("created_at", _TZ), ("year", _I), ("data_year", _I), ("target_list_year", _I),
                  ("model", _V), ("model_zh", _V), ("model_file", _V), ("training_data_sha256", _V), ("software", _V),
                  ("firms", _I), ("metrics", _V)),
    "warn_results": (("warn_id", _V), ("year", _I), ("uscc", _V), ("name", _V), ("township", _V),
                     ("industry_code", _V), ("scale", _V), ("risk", _D), ("rank", _I), ("factors", _V),
                     ("factor_groups", _V)),
}

#: what a staged file holds, exactly: a screening run (save_run) or a warning run (save_tables)
STAGED_KINDS = {
    "run": frozenset({"schema_info", "runs", "run_results", "run_rules", "run_list", "run_rejects",
                      "run_enterprises", "run_anomalies"}),
    "warnings": frozenset({"warn_runs", "warn_results"}),
}
#: staged tables that are checked but not copied (the database has its own)
_NOT_IMPORTED = frozenset({"schema_info"})

#: a run's id as screening.screen makes it: list year, start time, six hex digits
RUN_ID_PATTERN = r"\d{4}-\d{8}T\d{6}-[0-9a-f]{6}"
#: per staged kind: the table naming the runs, its key, and the tables whose rows belong to them
_STAGED_KEYS = {"run": ("runs", "run_id"), "warnings": ("warn_runs", "warn_id")}


class StoreError(ScreeningError):
    exit_code = 1


class NotADatabase(StoreError):
    """``--db`` names something that is not a database file (a folder, a spreadsheet…): bad input."""

    exit_code = 2


class DatabaseLocked(StoreError):
    """Another process (normally ``screening serve``) holds the file; ``pid`` when DuckDB names it."""

    def __init__(self, message: str, pid: int | None = None):
        super().__init__(message)
        self.pid = pid


def _open_error(db: Path, exc: Exception) -> StoreError:
    if "lock" in str(exc).lower():
        found = re.search(r"\(PID (\d+)\)", str(exc))
        pid = int(found.group(1)) if found else None
        holder = f"（PID {pid}）" if pid else ""
        service = handover.find(db)
        if service is not None:  # a command that cannot be handed over (compare, verify, export-final …)
            return DatabaseLocked(f"数据库 {db} 正由运行中的服务（{service.url}，PID {service.pid}）使用，此命令不能交由服务执行；"
                                  f"请在网页或接口中完成，或先停止服务，或对 screening backup 恢复出的副本运行", pid)
        return DatabaseLocked(f"数据库 {db} 正被另一个进程{holder}占用，且没有找到可交接的服务"
                              f"（{handover.service_file(db).name}）；请稍后重试，或改用其他 --db 文件", pid)
    problem = environment_error(exc, db)  # a folder, no permission, a read-only disk …
    if problem is not None:
        return (NotADatabase if problem.exit_code == 2 else StoreError)(f"无法打开数据库 {db}：{problem}")
    if "not a valid DuckDB database file" in str(exc):
        return NotADatabase(f"无法打开数据库 {db}：该文件不是 DuckDB 数据库文件，请检查 --db 指向的文件"
                            "（本工具的数据库文件，如 screening.duckdb）")
    return StoreError(f"无法打开数据库 {db}：{exc}")


def owner_only(db: Path) -> None:
    """Make the database file and its WAL readable by their owner only (they hold every firm,
    note, audit line and token hash).  New files are private by the process umask (see
    :func:`private_umask`); this tightens files an older version left 0644."""
    for path in (db, db.with_name(db.name + ".wal")):
        try:
            if path.is_file() and path.stat().st_mode & 0o077:
                path.chmod(0o600)
        except OSError:
            pass  # not ours to change: DuckDB reports what matters when it opens the file


def private_umask() -> int:
    """Let this process create files for its owner only (database, WAL, staged files, outputs);
    returns the previous umask so that a caller with a lifetime (the service) can restore it."""
    previous = os.umask(0o077)
    os.umask(previous | 0o077)
    return previous


def connect(db: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    try:
        kind = os.stat(db).st_mode
    except OSError:
        kind = None  # not there (made anew), or not reachable: DuckDB's error says which
    if kind is not None and not (stat.S_ISREG(kind) or stat.S_ISDIR(kind)):
        # a named pipe would hold DuckDB's open for ever (a device reads as nothing): refused at once
        raise NotADatabase(f"无法打开数据库 {db}：它不是普通文件（是命名管道、设备等），请检查 --db 指向的文件"
                           "（本工具的数据库文件，如 screening.duckdb）")
    try:
        con = duckdb.connect(str(db), read_only=read_only)
    except duckdb.Error as exc:
        raise _open_error(db, exc) from None
    owner_only(Path(db))
    return con


def _create(con: duckdb.DuckDBPyConnection, alias: str, table: str, layout=None) -> None:
    """Create ``alias.table`` if missing, with the columns of STORED_TABLES (and its keys), or
    with ``layout`` ((name, type) pairs of LEGACY_TABLES: a backup of a database an older
    version wrote is restored as it was, then migrated)."""
    target = f"{identifier(alias)}.{identifier(table)}"
    keyed = {"runs": RUNS_DDL, "schema_info": SCHEMA_INFO_DDL}.get(table)
    if keyed:
        con.execute(keyed.format(table=target))
        return
    columns = ", ".join(f"{identifier(name)} {kind}" for name, kind in (layout or STORED_TABLES[table]))
    con.execute(f"CREATE TABLE IF NOT EXISTS {target} ({columns})")


def _columns(con: duckdb.DuckDBPyConnection, table: str, alias: str | None = None) -> set[str]:
    """The columns of ``alias.table`` (None: the current database); empty when there is no such table."""
    where = "database_name = current_database()" if alias is None else "database_name = ?"
    return {r[0] for r in con.execute(
        f"SELECT column_name FROM duckdb_columns() WHERE {where} AND schema_name = 'main' AND table_name = ?",
        ([] if alias is None else [alias]) + [table]).fetchall()}


def _outdated(con: duckdb.DuckDBPyConnection, alias: str | None = None) -> bool:
    """Whether the run tables of ``alias`` (None: the current database) are an older version's:
    run_results with the rule texts (schema 1) or with uscc (schema 2, or rows an older version
    added to a migrated file), run_enterprises without the firm number."""
    results = _columns(con, "run_results", alias)
    enterprises = _columns(con, "run_enterprises", alias)
    return bool(results & {"rule_title", "citation", "uscc"}) or bool(enterprises and "firm" not in enterprises)


def _drop_indexes(con: duckdb.DuckDBPyConnection, alias: str, table: str) -> list[tuple[str, str, bool]]:
    """Drop the indexes of ``alias.table`` (DuckDB alters no indexed table); returns them, to be made again."""
    indexes = con.execute("SELECT index_name, expressions, is_unique FROM duckdb_indexes() WHERE database_name = ? "
                          "AND schema_name = 'main' AND table_name = ?", [alias, table]).fetchall()
    for name, _, _ in indexes:
        con.execute(f"DROP INDEX {identifier(alias)}.{identifier(name)}")
    return indexes


def _make_indexes(con: duckdb.DuckDBPyConnection, alias: str, table: str, indexes) -> None:
    for name, expressions, unique in indexes:
        con.execute(f"CREATE {'UNIQUE ' if unique else ''}INDEX IF NOT EXISTS {identifier(name)} "
                    f"ON {identifier(alias)}.{identifier(table)} ({expressions.strip('[]')})")


def migrate(con: duckdb.DuckDBPyConnection, alias: str) -> bool:
    """Bring the database attached as ``alias`` to SCHEMA_VERSION, inside the caller's transaction.

    - schema 1 -> 2: run_results' rule titles and citations go to run_rules (once per run and
      rule, as every row of the rule carried them), and the two columns are dropped;
    - schema 2 -> 3: each run's firms get their number in run_enterprises (``firm``: 0, 1, 2 …
      in uscc order within the run), and run_results is rewritten with that number in place of
      ``uscc``.  A firm of run_results that its run's run_enterprises lacks is refused (StoreError):
      every version stored both from the same firms.
    Rows an older version added to a migrated file are brought along (only the runs lacking
    them get rules or numbers: nothing is doubled).  Indexes are dropped and made again, the
    per-firm index of run_results on ``firm`` in place of ``uscc``.  Every writer calls this
    before adding a run; a reader of an unmigrated file (read-only) goes through
    :func:`results_relation`.  Returns whether anything changed."""
    if not _outdated(con, alias):
        return False
    catalog = identifier(alias)
    results = _columns(con, "run_results", alias)
    if results & set(RULE_TEXT_COLUMNS):
        _create(con, alias, "run_rules")
        # only the runs run_rules lacks: a migrated file that an older version then ran into has
        # the two columns back, empty on the rows of every run run_rules already holds
        con.execute(f"INSERT INTO {catalog}.run_rules BY NAME SELECT run_id, rule_id, min(rule_title) AS rule_title, "
                    f"min(citation) AS citation FROM {catalog}.run_results r WHERE NOT EXISTS "
                    f"(SELECT 1 FROM {catalog}.run_rules k WHERE k.run_id = r.run_id AND k.rule_id = r.rule_id) "
                    "GROUP BY run_id, rule_id")
    enterprises = _columns(con, "run_enterprises", alias)
    if enterprises:
        if "firm" not in enterprises:
            kept = _drop_indexes(con, alias, "run_enterprises")
            con.execute(f"ALTER TABLE {catalog}.run_enterprises ADD COLUMN firm {FIRM_KEY[1]}")
            _make_indexes(con, alias, "run_enterprises", kept)
        # a run whose result rows already name their firms by number keeps its enterprises' own
        # numbers: numbered anew (uscc order, not the registry's) its results would name other firms
        unnumbered = f"SELECT run_id FROM {catalog}.run_enterprises GROUP BY run_id HAVING count(firm) = 0"
        if "firm" in results and (lost := con.execute(
                f"SELECT run_id FROM {catalog}.run_results WHERE firm IS NOT NULL AND run_id IN ({unnumbered}) "
                "ORDER BY run_id LIMIT 1").fetchall()):
            raise StoreError(f"数据库无法升级到本版本的结构：运行 {lost[0][0]} 的判定结果以企业编号（firm）指向企业表"
                             "（run_enterprises），企业表却没有这些编号；请从备份恢复")
        # the runs without numbers (all of a schema-2 file; those an older version added since)
        con.execute(f"""UPDATE {catalog}.run_enterprises e SET firm = n.firm FROM (
            SELECT rowid AS row, (row_number() OVER (PARTITION BY run_id ORDER BY uscc, rowid) - 1)::INTEGER AS firm
            FROM {catalog}.run_enterprises WHERE run_id IN ({unnumbered})) n
            WHERE e.rowid = n.row""")
    if results:
        _rewrite_results(con, alias, results)
    _create(con, alias, "schema_info")
    con.execute(f"INSERT OR REPLACE INTO {catalog}.schema_info VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
    return True


def _rewrite_results(con: duckdb.DuckDBPyConnection, alias: str, have: set[str]) -> None:
    """run_results in the current layout: a row keeps its firm number, or gets its firm's from
    run_enterprises by uscc; the rule texts stay in run_rules (migrate)."""
    catalog = identifier(alias)
    if "uscc" in have:
        if not _columns(con, "run_enterprises", alias):
            raise StoreError("数据库无法升级到本版本的结构：有判定结果表（run_results），却没有企业表（run_enterprises）；请从备份恢复")
        firm = "coalesce(r.firm, n.firm)" if "firm" in have else "n.firm"
        numbers = (f"LEFT JOIN (SELECT run_id, uscc, min(firm) AS firm FROM {catalog}.run_enterprises GROUP BY ALL) n "
                   "ON n.run_id = r.run_id AND n.uscc = r.uscc")
    else:
        firm, numbers = "r.firm", ""
    listed = ", ".join(f"{firm} AS firm" if name == "firm" else f"r.{identifier(name)}"
                       for name, _ in STORED_TABLES["run_results"])
    indexes = _drop_indexes(con, alias, "run_results")
    # a province's rewrite takes seconds: no DuckDB progress bar in the service's log or the CLI's output
    con.execute("SET enable_progress_bar = false")
    staged = identifier("run_results_migrating")
    con.execute(f"CREATE TABLE {catalog}.{staged} AS SELECT {listed} FROM {catalog}.run_results r {numbers}")
    lost = con.execute(f"SELECT run_id, count(*) FROM {catalog}.{staged} WHERE firm IS NULL GROUP BY run_id "
                       "ORDER BY run_id LIMIT 1").fetchall()
    if lost:
        raise StoreError(f"数据库无法升级到本版本的结构：运行 {lost[0][0]} 有 {lost[0][1]:,} 行判定结果的企业不在该次运行的"
                         "企业表（run_enterprises）中；请用写出它的版本核对，或从备份恢复")
    con.execute(f"DROP TABLE {catalog}.run_results")
    con.execute(f"ALTER TABLE {catalog}.{staged} RENAME TO run_results")
    if indexes:  # the per-firm index, on the firm number now
        con.execute(f"CREATE INDEX IF NOT EXISTS run_results_firm ON {catalog}.run_results (firm)")


def upgrade(con: duckdb.DuckDBPyConnection) -> bool:
    """:func:`migrate` the connection's own database file in a transaction of its own (the
    service's start, a restore, any command that makes the service's tables)."""
    if not _outdated(con):
        return False
    con.execute("BEGIN TRANSACTION")
    try:
        migrate(con, con.execute("SELECT current_database()").fetchall()[0][0])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return True


def results_relation(con: duckdb.DuckDBPyConnection, rows: str = "run_results") -> str:
    """SQL for rows of the current database's run_results (the table, or a subquery over it such
    as one firm's index scan) with RESULT_COLUMNS in their order: the firm's uscc joined from
    run_enterprises by its number, each rule's title and citation from run_rules.  A file an
    older version wrote and nobody has migrated yet (opened read-only) is read as it is: its
    rows name the firm by uscc (schemas 1 and 2), and schema 1's carry the rule texts."""
    have = _columns(con, "run_results")
    joins = []
    if "firm" in have:
        # rows an older version added to a migrated file name their firm by uscc (see migrate)
        joins.append("LEFT JOIN run_enterprises e ON e.run_id = r.run_id AND e.firm = r.firm")
        uscc = "coalesce(r.uscc, e.uscc)" if "uscc" in have else "e.uscc"
    else:
        uscc = "r.uscc"
    texts = have & set(RULE_TEXT_COLUMNS)
    if not texts or _table_exists(con, "run_rules"):
        joins.append("LEFT JOIN run_rules k ON k.run_id = r.run_id AND k.rule_id = r.rule_id")
        text = ("coalesce(r.{0}, k.{0}) AS {0}" if texts else "k.{0} AS {0}").format
    else:  # schema 1, unmigrated: the texts are on every row
        text = "r.{0} AS {0}".format
    listed = ", ".join(f"{uscc} AS uscc" if c == "uscc" else text(identifier(c)) if c in RULE_TEXT_COLUMNS
                       else f"r.{identifier(c)}" for c, _ in RESULT_COLUMNS)
    return f"(SELECT {listed} FROM {rows} r {' '.join(joins)})"


def rules_relation(con: duckdb.DuckDBPyConnection) -> str:
    """SQL for each stored run's rules (run_id, rule_id, rule_title, citation) in the current
    database: run_rules, or in an unmigrated schema-1 file the texts its result rows carry."""
    if not _columns(con, "run_results") & set(RULE_TEXT_COLUMNS):
        return "run_rules"
    grouped = ("SELECT run_id, rule_id, min(rule_title) AS rule_title, min(citation) AS citation "
               "FROM run_results r{where} GROUP BY run_id, rule_id")
    if not _table_exists(con, "run_rules"):
        return f"({grouped.format(where='')})"
    # both (see migrate): run_rules, and the runs an older version added since
    where = " WHERE NOT EXISTS (SELECT 1 FROM run_rules k WHERE k.run_id = r.run_id AND k.rule_id = r.rule_id)"
    return f"(SELECT run_id, rule_id, rule_title, citation FROM run_rules UNION ALL {grouped.format(where=where)})"


def _copy(con: duckdb.DuckDBPyConnection, alias: str, table: str, select_sql: str) -> int:
    """Create ``alias.table`` on first use, then append the SELECT's rows by column name; returns how many."""
    _create(con, alias, table)
    target = f"{identifier(alias)}.{identifier(table)}"
    if table in STORED_TABLES and table not in ("runs", "schema_info"):
        # a column added to a stored table since the database was created (e.g. run_rejects' action)
        # is added to it, at the end, where STORED_TABLES lists it
        have = {r[0] for r in con.execute(f"DESCRIBE {target}").fetchall()}
        for name, kind in STORED_TABLES[table]:
            if name not in have:
                con.execute(f"ALTER TABLE {target} ADD COLUMN {identifier(name)} {kind}")
    return int(con.execute(f"INSERT INTO {target} BY NAME {select_sql}").fetchall()[0][0])


def save_run(s: "Screening", db: Path | None, record: dict[str, Any]) -> str | None:
    """Store the run; safe to call from another thread than the one writing files.

    ``db``: the file to attach; None when the run's engine lives inside the service, whose
    own database (the engine's host catalog) then receives the run.  When a running service
    holds ``db``, the run is written to a file the service staged for it and handed over
    (see :func:`import_staged`); returns the service's address then.
    """
    return _or_hand_over(lambda target: _save_run(s, target, record), db)


def save_tables(db: Path, tables: dict[str, pl.DataFrame]) -> str | None:
    """Append rows to tables of the database (created on first use) in one transaction;
    hands over to a running service like :func:`save_run`.  The tables must be one staged
    kind exactly (today the warning run: ``warn_runs`` and ``warn_results``)."""
    if frozenset(tables) not in STAGED_KINDS.values():
        raise ValueError(f"tables {sorted(tables)} cannot be stored: see STAGED_KINDS")

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

    return _or_hand_over(write, db)


def _or_hand_over(write, db: Path | None) -> str | None:
    """Write to ``db``; if a running service holds it, write into a file the service staged
    for this hand-over (``POST /runs/staging``), have it imported, and return its address."""
    try:
        write(db)
        return None
    except DatabaseLocked:
        service = handover.find(db) if db is not None else None
        if service is None:
            raise
        slot = service.call("POST", "/api/v1/runs/staging", {})
        staged = Path(slot["path"])
        try:
            write(staged)
            service.call("POST", "/api/v1/runs/import", {"token": slot["token"]}, timeout=handover.IMPORT_TIMEOUT)
            return service.url
        finally:
            handover.discard(staged)


def check_staged(con: duckdb.DuckDBPyConnection, catalog: str) -> list[str]:
    """The tables of the attached ``catalog`` to import, when it holds exactly one staged kind
    (STAGED_KINDS) with exactly the columns of STORED_TABLES and nothing else: no other
    schema, view, sequence, macro, type, default or generated column.  Raises handover.NotStaged."""
    def rows(sql: str) -> list[tuple]:
        return con.execute(sql, [catalog]).fetchall()

    tables = rows("SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ?")
    names = frozenset(name for _, name in tables)
    others = (rows("SELECT 1 FROM duckdb_views() WHERE database_name = ? AND NOT internal")
              + rows("SELECT 1 FROM duckdb_sequences() WHERE database_name = ?")
              + rows("SELECT 1 FROM duckdb_functions() WHERE database_name = ? AND NOT internal")
              + rows("SELECT 1 FROM duckdb_types() WHERE database_name = ? AND NOT internal")
              + rows("SELECT 1 FROM duckdb_schemas() WHERE database_name = ? AND NOT internal AND schema_name <> 'main'"))
    if others or len(names) != len(tables) or any(schema != "main" for schema, _ in tables) \
            or names not in STAGED_KINDS.values():
        raise handover.NotStaged()
    columns: dict[str, list[tuple[str, str]]] = {name: [] for name in names}
    for table, column, kind, default in rows(
            "SELECT table_name, column_name, data_type, column_default FROM duckdb_columns() "
            "WHERE database_name = ? ORDER BY table_name, column_index"):
        if default is not None:
            raise handover.NotStaged()
        columns[table].append((column, kind))
    if any(tuple(columns[name]) != STORED_TABLES[name] for name in names):
        raise handover.NotStaged()
    return sorted(names - _NOT_IMPORTED, key=lambda n: (n != "runs", n))  # runs first


def import_staged(con: duckdb.DuckDBPyConnection, staged: Path) -> dict[str, Any]:
    """Copy the tables of a staged file into ``con``'s database, in one transaction, once the
    file is exactly a staged run (:func:`check_staged`).

    ``staged`` must be a file the service staged itself (see screening.handover.Staging).
    Refuses a staged run whose id the database already holds (a file imported twice).
    Returns the rows copied per table and the run ids brought in."""
    catalog = f"staged_{uuid.uuid4().hex[:12]}"  # never the name of the service's own catalog
    try:
        con.execute(f"ATTACH {literal(staged)} AS {identifier(catalog)} (READ_ONLY)")
    except (duckdb.Error, ValueError):
        raise handover.NotStaged() from None
    try:
        names = check_staged(con, catalog)
        source = {name: f"{identifier(catalog)}.{identifier(name)}" for name in names}
        _check_staged_ids(con, source, staged.name)
        _check_staged_firms(con, source, staged.name)
        _check_staged_rules(con, source, staged.name)
        if "runs" in names and _table_exists(con, "runs") and con.execute(
                f"SELECT count(*) FROM runs WHERE run_id IN (SELECT run_id FROM {source['runs']})").fetchall()[0][0]:
            raise StoreError(f"文件 {staged.name} 中的运行已经导入过")
        run_ids = ([r[0] for r in con.execute(f"SELECT run_id FROM {source['runs']} ORDER BY run_id").fetchall()]
                   if "runs" in names else [])
        counts = {}
        con.execute("BEGIN TRANSACTION")
        try:
            if "run_results" in names:  # the service's own file may be one an older version wrote
                migrate(con, con.execute("SELECT current_database()").fetchall()[0][0])
            for name in names:
                listed = ", ".join(identifier(column) for column, _ in STORED_TABLES[name])
                _copy(con, "main", name, f"SELECT {listed} FROM {source[name]}")
                counts[name] = int(con.execute(f"SELECT count(*) FROM {source[name]}").fetchall()[0][0])
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise StoreError(f"导入 {staged.name} 失败：{exc}") from None
        return {"tables": counts, "run_ids": run_ids}
    finally:
        con.execute(f"DETACH {identifier(catalog)}")


def _check_staged_ids(con: duckdb.DuckDBPyConnection, source: dict[str, str], file: str) -> None:
    """A staged run's id must be one the engine makes (a name such as ``..`` would later be a
    folder name to the service), and every row of the staged tables must belong to a staged run:
    a row under another id would be added to a run already stored."""
    for head, key in _STAGED_KEYS.values():
        if head not in source:
            continue
        bad = [] if key != "run_id" else con.execute(
            f"SELECT run_id FROM {source[head]} WHERE run_id IS NULL OR NOT regexp_full_match(run_id, ?) LIMIT 1",
            [RUN_ID_PATTERN]).fetchall()
        if bad:
            raise StoreError(f"文件 {file} 中的运行编号“{str(bad[0][0])[:40]}”不是本工具生成的格式")
        for name, table in source.items():
            if name == head or key not in {c for c, _ in STORED_TABLES[name]}:
                continue
            stray = con.execute(f"SELECT count(*) FROM {table} WHERE {identifier(key)} IS NULL OR {identifier(key)} "
                                f"NOT IN (SELECT {identifier(key)} FROM {source[head]})").fetchall()[0][0]
            if stray:
                raise StoreError(f"文件 {file} 的表 {name} 中有 {stray} 行不属于文件中的任何一次运行")


def _check_staged_firms(con: duckdb.DuckDBPyConnection, source: dict[str, str], file: str) -> None:
    """A staged run's result rows name their firm by its number in the run (run_enterprises.firm,
    FIRM_KEY): its enterprises must number each firm once, and every result row must name one of
    them; else the row would be read without its firm (or once per firm of that number)."""
    if "run_results" not in source:
        return
    results, enterprises = source["run_results"], source["run_enterprises"]
    numbered = con.execute(f"SELECT count(*) FROM (SELECT run_id, firm FROM {enterprises} GROUP BY ALL "
                           "HAVING firm IS NULL OR count(*) > 1)").fetchall()[0][0]
    if numbered:
        raise StoreError(f"文件 {file} 的表 run_enterprises 中有 {numbered} 个企业编号（firm）为空或重复")
    lost = con.execute(f"SELECT count(*) FROM {results} r ANTI JOIN {enterprises} e "
                       "ON e.run_id = r.run_id AND e.firm = r.firm").fetchall()[0][0]
    if lost:
        raise StoreError(f"文件 {file} 的表 run_results 中有 {lost:,} 行的企业编号（firm）不在该次运行的企业表（run_enterprises）中")



def _check_staged_rules(con: duckdb.DuckDBPyConnection, source: dict[str, str], file: str) -> None:
    """run_rules has no key: a staged run naming a rule twice (or none) would repeat that rule's
    result rows wherever results are read with their texts (results_relation)."""
    if "run_rules" not in source:
        return
    twice = con.execute(f"SELECT count(*) FROM (SELECT run_id, rule_id FROM {source['run_rules']} GROUP BY ALL "
                        "HAVING rule_id IS NULL OR count(*) > 1)").fetchall()[0][0]
    if twice:
        raise StoreError(f"文件 {file} 的表 run_rules 中有 {twice} 条规则为空或在同一次运行中出现不止一次")

def _table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = ? AND schema_name = 'main' "
                            "AND database_name = current_database()", [name]).fetchall())


def _save_run(s: "Screening", db: Path | None, record: dict[str, Any]) -> None:
    con = s.engine.cursor()
    # this session appends in the order read: DuckDB then streams the rows into the file's
    # row groups instead of buffering each thread's share (4 M result rows of a province:
    # about 600 MB less at the run's peak, and less CPU); the engine's other sessions keep
    # their unordered, parallel COPYs
    con.execute("SET SESSION preserve_insertion_order = true")
    alias = s.engine.host_catalog if db is None else ALIAS
    if db is not None:
        try:
            con.execute(f"ATTACH {literal(db)} AS {identifier(ALIAS)}")
        except duckdb.Error as exc:
            con.close()
            raise _open_error(db, exc) from None
        owner_only(db)
    try:
        catalog = identifier(alias)
        _create(con, alias, "schema_info")
        con.execute(f"INSERT OR IGNORE INTO {catalog}.schema_info VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
        _create(con, alias, "runs")
        con.execute("BEGIN TRANSACTION")
        migrate(con, alias)
        con.execute(
            f"INSERT INTO {catalog}.runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                s.run_id, s.started_at, s.list_year, s.ruleset.meta.id, s.ruleset.meta.version,
                _json(s.ruleset.params), _json(s.ruleset.overrides),
                _json({k: v["sha256"] for k, v in record["inputs"].items()}),
                _json(record["row_counts"]), _json(s.timings), record["enterprises"], s.list.height,
                s.inputs.rejected_rows, _json(record),
            ],
        )
        # the firm by its number in the run (run_enterprises.firm), the rule texts once per rule in
        # run_rules (results_out does not repeat them per row)
        if s.results_file:
            rows = (f"SELECT p.firm_id::INTEGER AS firm, r.* EXCLUDE (uscc) FROM read_parquet({literal(s.results_file)}) r "
                    "JOIN firm_panel p ON p.uscc = r.uscc")
        else:
            rows = "SELECT firm_id::INTEGER AS firm, * EXCLUDE (firm_id, uscc) FROM results_explained"
        stored = _copy(con, alias, "run_results", rows)
        if stored != sum(sum(counts.values()) for counts in record["status_counts"].values()):
            raise duckdb.ConstraintException(f"判定结果存入 {stored:,} 行，与本次运行的结果行数不符")
        _copy(con, alias, "run_rules", f"SELECT {literal(s.run_id)} AS run_id, * FROM rule_info")
        con.register("_list", s.list.to_arrow())
        con.register("_rejects", s.inputs.rejects.with_columns(pl.lit(s.run_id).alias("run_id")).to_arrow())
        _copy(con, alias, "run_list", "SELECT * FROM _list")
        _copy(con, alias, "run_rejects", "SELECT * FROM _rejects")
        # in the order read, as run_results: no reader depends on the stored order (the service
        # sorts by uscc, point reads use the uscc index); sorting a province's 1 M rows with all
        # their columns cost about 0.6 CPU s (docs/run-performance.md, 写出阶段)
        _copy(con, alias, "run_enterprises",
              f"SELECT {literal(s.run_id)} AS run_id, firm_id::INTEGER AS firm, * EXCLUDE (firm_id) FROM firm_panel")
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
            con.execute(f"DETACH {identifier(ALIAS)}")
        con.close()


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
