"""Backup, restore and verification of the one database file (issue 18; docs/backup.md).

A backup is a directory ``screening-backup-<time>-<tag>/`` holding one Parquet file per table
and ``manifest.json``: the time (Asia/Shanghai), the product and DuckDB versions, each table's
columns, row count, a checksum of its rows computed by DuckDB and the sha256 of its file, the
audit chain's head, and a sha256 of the manifest itself.  All tables are read inside one
transaction, so the backup is one moment of the database: a write committed before it began
is in it, a write still in flight is not, and none is half in it.  The directory is written
as ``<name>.partial`` and renamed once complete, so a backup that exists is whole.

:func:`restore` builds a new database file from a backup only after the files match the
manifest, and only keeps it when every table's rows match their count and checksum.
:func:`verify_database` checks a database: schema, every run complete, the audit chain.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb

from . import auditchain
from ._version import __version__
from .errors import ScreeningError
from .sqlquote import identifier, literal

FORMAT = "screening-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PREFIX = "screening-backup-"
PARTIAL = ".partial"
TIME_ZONE = ZoneInfo("Asia/Shanghai")
#: the file beside a database's backups recording the last backup (for GET /health)
LAST = "last.json"
_NAME = re.compile(r"^screening-backup-\d{8}-\d{6}-[0-9a-f]{6}$")
_SAFE_TABLE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_TZ_TYPE = "TIMESTAMP WITH TIME ZONE"


class BackupError(ScreeningError):
    """A backup that cannot be used as given (damaged, partial, not a backup): exit 2."""
    exit_code = 2


def backups_dir(db: Path) -> Path:
    """The directory beside ``db`` where the service writes backups (owner only)."""
    return Path(db).parent / f"{Path(db).name}.backups"


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.is_symlink() or not path.is_dir():
        raise BackupError(f"{path} 不是目录")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _manifest_digest(manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
                          .encode("utf-8")).hexdigest()


def _tables(con: duckdb.DuckDBPyConnection) -> dict[str, list[list[str]]]:
    """Every table of the database's main schema, with its columns (name, DuckDB type) in order."""
    columns: dict[str, list[list[str]]] = {}
    for table, column, kind in con.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = 'main' "
            "ORDER BY table_name, column_index").fetchall():
        columns.setdefault(table, []).append([column, kind])
    return columns


def checksum(con: duckdb.DuckDBPyConnection, table: str, columns: list[list[str]]) -> tuple[int, str]:
    """Row count and md5 over the rows of ``table`` (the given columns), computed by DuckDB:
    each row's md5 of its text, the md5s sorted, so the physical order of rows does not matter.
    Times with a time zone count as microseconds, so the session's time zone does not either."""
    fields = ", ".join(f"{identifier(name)} := "
                       + (f"epoch_us({identifier(name)})" if kind == _TZ_TYPE else identifier(name))
                       for name, kind in columns)
    rows, digest = con.execute(
        f"SELECT count(*), coalesce(md5(string_agg(h, '' ORDER BY h)), '') FROM "
        f"(SELECT md5(CAST(struct_pack({fields}) AS VARCHAR)) AS h FROM {identifier(table)})").fetchall()[0]
    return int(rows), digest


def _audit_head(con: duckdb.DuckDBPyConnection, tables: dict[str, Any]) -> list | None:
    if "row_hash" not in {c for c, _ in tables.get("audit_log", [])}:
        return None
    rows = con.execute("SELECT seq, row_hash FROM audit_log WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1").fetchall()
    return [int(rows[0][0]), rows[0][1]] if rows else None


@dataclass
class Backup:
    path: Path
    manifest: dict[str, Any]

    @property
    def rows(self) -> int:
        return sum(t["rows"] for t in self.manifest["tables"].values())


def new_name(now: dt.datetime | None = None) -> str:
    now = (now or dt.datetime.now(TIME_ZONE)).astimezone(TIME_ZONE)
    return f"{PREFIX}{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def write_backup(con: duckdb.DuckDBPyConnection, out: Path, database: str) -> Backup:
    """Write a backup of ``con``'s database into a new directory under ``out``.

    ``con`` must be a connection (a cursor) of its own: the tables are read in one transaction
    on it.  ``database``: the file's name, recorded in the manifest."""
    out = _private_dir(Path(out))
    now = dt.datetime.now(TIME_ZONE)
    name = new_name(now)
    partial = out / (name + PARTIAL)
    partial.mkdir(mode=0o700)
    try:
        con.execute("BEGIN TRANSACTION")  # one snapshot for every table
        try:
            tables = _tables(con)
            entries: dict[str, Any] = {}
            for i, (table, columns) in enumerate(sorted(tables.items())):
                file = f"{table}.parquet" if _SAFE_TABLE.match(table) else f"table-{i:03d}.parquet"
                con.execute(f"COPY (SELECT * FROM {identifier(table)}) TO {literal(partial / file)} "
                            f"(FORMAT parquet, COMPRESSION zstd)")
                rows, digest = checksum(con, table, columns)
                entries[table] = {"file": file, "columns": columns, "rows": rows, "checksum": digest}
            head = _audit_head(con, tables)
        finally:
            con.execute("COMMIT")
        for entry in entries.values():
            path = partial / entry["file"]
            path.chmod(0o600)
            entry["bytes"] = path.stat().st_size
            entry["sha256"] = _sha256(path)
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "name": name,
            "created_at": now.isoformat(timespec="seconds"), "time_zone": "Asia/Shanghai（北京时间）",
            "product_version": __version__, "duckdb_version": duckdb.__version__, "database": database,
            "tables": entries, "audit_head": head,
        }
        manifest["manifest_sha256"] = _manifest_digest(manifest)
        target = partial / MANIFEST
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(manifest, f, ensure_ascii=False, indent=2)
        final = out / name
        os.rename(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return Backup(final, manifest)


def record_last(db: Path, backup: Backup) -> None:
    """Note the backup beside the database (for the health route and for verify's audit head)."""
    directory = _private_dir(backups_dir(db))
    info = {"name": backup.manifest["name"], "created_at": backup.manifest["created_at"],
            "path": str(backup.path), "audit_head": backup.manifest["audit_head"]}
    tmp = directory / f".{LAST}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(info, f, ensure_ascii=False)
    os.replace(tmp, directory / LAST)


def last_backup(db: Path) -> dict[str, Any] | None:
    try:
        info = json.loads((backups_dir(db) / LAST).read_text(encoding="utf-8"))
        info["created_at"] = dt.datetime.fromisoformat(info["created_at"])
        return info
    except (OSError, ValueError, KeyError, TypeError):
        return None


def last_backup_age_hours(db: Path) -> float | None:
    info = last_backup(db)
    if info is None:
        return None
    age = dt.datetime.now(dt.timezone.utc) - info["created_at"]
    return round(max(age.total_seconds(), 0) / 3600, 2)


def rotate(out: Path, keep: int) -> list[str]:
    """Remove all but the ``keep`` newest backups in ``out`` (only directories that are backups)."""
    backups = sorted(p.name for p in Path(out).iterdir()
                     if _NAME.match(p.name) and p.is_dir() and not p.is_symlink() and (p / MANIFEST).is_file())
    removed = backups[:-keep] if keep > 0 else []
    for name in removed:
        shutil.rmtree(Path(out) / name)
    return removed


def read_backup(path: Path) -> Backup:
    """The backup in ``path``, once its manifest is intact and every file matches it; else
    one Chinese line (BackupError)."""
    path = Path(path)
    if path.name.endswith(PARTIAL):
        raise BackupError(f"{path} 是未写完的备份（{PARTIAL}），不能使用")
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{path} 不是备份目录：没有 {MANIFEST}") from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"备份 {path} 的 {MANIFEST} 无法读取或已损坏：{exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path} 不是本程序写出的备份")
    if manifest.get("manifest_sha256") != _manifest_digest(manifest):
        raise BackupError(f"备份 {path} 的 {MANIFEST} 与其校验值不符：清单被改动或损坏，拒绝使用")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(f"备份 {path} 的格式版本 {manifest.get('format_version')} 不受本版本支持")
    listed = set()
    for table, entry in manifest["tables"].items():
        file = path / entry["file"]
        listed.add(entry["file"])
        if not file.is_file():
            raise BackupError(f"备份 {path} 不完整：缺少表 {table} 的文件 {entry['file']}")
        if file.stat().st_size != entry["bytes"] or _sha256(file) != entry["sha256"]:
            raise BackupError(f"备份 {path} 已损坏：表 {table} 的文件 {entry['file']} 与清单中的校验值不符")
    extra = sorted(p.name for p in path.iterdir() if p.name != MANIFEST and p.name not in listed)
    if extra:
        raise BackupError(f"备份 {path} 中有清单未列出的文件：{'、'.join(extra[:5])}")
    return Backup(path, manifest)


@dataclass
class Restored:
    db: Path
    backup: Backup
    aside: Path | None


def restore(source: Path, db: Path, force: bool = False) -> Restored:
    """Build ``db`` from the backup in ``source``.  An existing ``db`` is replaced only with
    ``force``, and then kept aside as ``<db>.before-restore-<time>``."""
    from api.db import ensure_schema

    from .store import STORED_TABLES, DatabaseLocked, _create, connect, legacy_layout

    backup = read_backup(source)
    db = Path(db)
    if db.exists() and not force:
        raise BackupError(f"数据库 {db} 已存在，未覆盖；确需用备份替换它，请加 --force（原文件会改名保留）")
    if db.exists():
        try:
            connect(db, read_only=True).close()
        except DatabaseLocked:
            raise DatabaseLocked(f"数据库 {db} 正被服务或其他进程使用，不能替换；请先停止服务再恢复，"
                                 f"或恢复到另一个文件") from None
    db.parent.mkdir(parents=True, exist_ok=True)
    building = db.with_name(f".{db.name}.restoring-{secrets.token_hex(4)}")
    try:
        con = duckdb.connect(str(building))
        try:
            ensure_schema(con)
            for table, entry in backup.manifest["tables"].items():
                file = literal(backup.path / entry["file"])
                if table in STORED_TABLES:
                    # a backup of a file an older version wrote is restored as it was; ensure_schema
                    # below migrates it (screening.store.migrate), as the service's start would
                    _create(con, "main", table, legacy=legacy_layout(table, entry["columns"]))
                elif not con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = ? AND schema_name = 'main'",
                                     [table]).fetchall():
                    con.execute(f"CREATE TABLE {identifier(table)} AS SELECT * FROM read_parquet({file}) LIMIT 0")
                try:
                    con.execute(f"INSERT INTO {identifier(table)} BY NAME SELECT * FROM read_parquet({file})")
                except duckdb.Error as exc:
                    raise BackupError(f"备份中的表 {table} 无法恢复到本版本的数据库结构：{exc}") from None
                if checksum(con, table, entry["columns"]) != (entry["rows"], entry["checksum"]):
                    raise BackupError(f"备份 {backup.path} 的表 {table} 恢复后的行数或校验值与清单不符，拒绝使用")
            ensure_schema(con)  # migrates an older layout (above); the per-firm indexes, now the run tables hold rows
            con.execute("CHECKPOINT")
        finally:
            con.close()
        aside = None
        if db.exists():
            stamp = dt.datetime.now(TIME_ZONE).strftime("%Y%m%d-%H%M%S")
            aside = db.with_name(f"{db.name}.before-restore-{stamp}")
            os.replace(db, aside)
            wal = db.with_name(db.name + ".wal")
            if wal.exists():
                os.replace(wal, aside.with_name(aside.name + ".wal"))
        os.replace(building, db)
        record_last(db, backup)  # its audit head is what verify --db compares with
    finally:
        for leftover in (building, building.with_name(building.name + ".wal")):
            leftover.unlink(missing_ok=True)
    return Restored(db, backup, aside)


def _layout(columns: tuple[tuple[str, str], ...] | None) -> list[list[str]] | None:
    """A table's columns as the manifest and :func:`_tables` give them."""
    return None if columns is None else [list(c) for c in columns]


# ---------------------------------------------------------------- verify --db

@dataclass
class Verification:
    facts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _service_tables() -> dict[str, list[list[str]]]:
    """The service's tables as ensure_schema creates them (read from an empty database)."""
    from api.db import ensure_schema

    con = duckdb.connect()
    try:
        ensure_schema(con)
        return _tables(con)
    finally:
        con.close()


#: per run: (table, the count in the run's row it must hold)
_RUN_PARTS = (("run_list", "listed"), ("run_enterprises", "enterprises"), ("run_rejects", "rejected_rows"))


def verify_database(con: duckdb.DuckDBPyConnection, db: Path) -> Verification:
    from .store import STORED_TABLES, legacy_layout

    report = Verification()
    present = _tables(con)
    expected = {name: _layout(columns) for name, columns in STORED_TABLES.items()}
    service = _service_tables()
    for name, columns in present.items():
        want = expected.get(name) or service.get(name)
        if want is not None and columns != want:
            if name == "audit_log" and columns == [c for c in want if c[0] not in ("seq", "prev_hash", "row_hash")]:
                report.facts.append("审计表是旧版本的结构（没有散列链）；服务下次启动时会自动添加")
                continue
            if legacy_layout(name, columns):
                report.facts.append(f"表 {name} 是旧版本的结构（每行带规则名称与依据）；服务下次启动或下次保存运行时会自动迁移")
                continue
            report.problems.append(f"表 {name} 的列与本版本不符")
    from api.db import ADDED_LATER

    missing = sorted(set(service) - set(present))
    if missing and len(missing) < len(service):
        later = [name for name in missing if name in ADDED_LATER]
        if later:
            report.facts.append(f"没有本版本新增的表 {'、'.join(f'{n}（{ADDED_LATER[n]}）' for n in later)}："
                                "数据库由上一版本写出，服务下次启动时自动建立")
        if len(later) < len(missing):
            report.problems.append(f"缺少服务数据表：{'、'.join(n for n in missing if n not in ADDED_LATER)}")
    if "runs" in present:
        legacy = legacy_layout("run_results", present.get("run_results", []))
        missing_run_tables = [t for t in ("run_results", "run_list", "run_enterprises", "run_rules")
                              if t not in present and not (t == "run_rules" and legacy)]
        if missing_run_tables:
            report.problems.append(f"有运行记录，但缺少表：{'、'.join(missing_run_tables)}")
        else:
            report.problems += _check_runs(con, present)
            report.facts.append(f"运行记录 {con.execute('SELECT count(*) FROM runs').fetchall()[0][0]} 次，逐次核对了行数")
    if "audit_log" in present:
        _check_audit(con, db, present["audit_log"], report)
    report.facts.insert(0, f"数据库 {db} 可以打开，共 {len(present)} 张表")
    return report


def _check_runs(con: duckdb.DuckDBPyConnection, present: dict[str, Any]) -> list[str]:
    problems = []
    from .store import rules_relation

    counts: dict[str, dict[str, int]] = {}
    sources = {t: identifier(t) for t in ("run_results", "run_rules", "run_list", "run_enterprises", "run_rejects",
                                          "run_anomalies") if t in present}
    if "run_results" in present:  # each run's rules, also those whose texts an older version left on the result rows
        sources["run_rules"] = rules_relation(con)
    for table, source in sources.items():
        counts[table] = dict(con.execute(f"SELECT run_id, count(*) FROM {source} GROUP BY run_id").fetchall())
    for run_id, year, listed, enterprises, rejected, record in con.execute(
            "SELECT run_id, list_year, listed, enterprises, rejected_rows, CAST(record AS VARCHAR) FROM runs "
            "ORDER BY created_at, run_id").fetchall():
        try:
            record = json.loads(record)
            results = sum(sum(v.values()) for v in record["status_counts"].values())
            anomalies = record.get("anomalies", {}).get("rows")
        except (ValueError, TypeError, KeyError, AttributeError):
            problems.append(f"运行 {run_id}（{year} 年度）的运行记录无法读取")
            continue
        want = {"run_list": listed, "run_enterprises": enterprises, "run_rejects": rejected,
                "run_results": results, "run_anomalies": anomalies,
                "run_rules": len(record["status_counts"])}  # each rule the run applied, once
        for table, number in want.items():
            if table in counts and number is not None and counts[table].get(run_id, 0) != number:
                problems.append(f"运行 {run_id}（{year} 年度）不完整：{table} 有 {counts[table].get(run_id, 0):,} 行，"
                                f"运行记录为 {number:,} 行")
    orphans = {t: set(c) - {r[0] for r in con.execute("SELECT run_id FROM runs").fetchall()} for t, c in counts.items()}
    for table, ids in orphans.items():
        if ids:
            problems.append(f"表 {table} 中有 {len(ids)} 个运行编号在 runs 中不存在")
    return problems


def _check_audit(con: duckdb.DuckDBPyConnection, db: Path, columns: list[list[str]], report: Verification) -> None:
    if "row_hash" not in {c for c, _ in columns}:
        total = con.execute("SELECT count(*) FROM audit_log").fetchall()[0][0]
        report.facts.append(f"审计记录 {total} 条，均由旧版本写入，没有散列链，无法核对")
        return
    cur = con.execute(auditchain.SELECT_SQL)
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r)) for r in cur.fetchall()]
    last = last_backup(db)
    head = tuple(last["audit_head"]) if last and last.get("audit_head") else None
    chain = auditchain.check(rows, head)
    report.problems += chain.problems
    if chain.unchained:
        report.facts.append(f"审计链从第 {chain.unchained + 1} 条记录开始（之前的 {chain.unchained} 条由旧版本写入，没有散列链）")
    if not chain.problems:
        against = "，与最近一次备份记录的链尾一致" if head else ""
        report.facts.append(f"审计链完整：{chain.chained} 条记录前后相接{against}")
