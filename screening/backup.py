"""Backup, restore and verification of the database and the files it refers to (issue 18; docs/backup.md).

A backup is a directory ``screening-backup-<time>-<tag>/`` holding one Parquet file per table
and ``manifest.json``: the time (Asia/Shanghai), the product and DuckDB versions, each table's
columns, row count, a checksum of its rows computed by DuckDB and the sha256 of its file, the
audit chain's head, and a sha256 of the manifest itself.  All tables are read inside one
transaction, so the backup is one moment of the database: a write committed before it began
is in it, a write still in flight is not, and none is half in it.  The directory is written
as ``<name>.partial`` and renamed once complete, so a backup that exists is whole.

Beside the tables, ``files/`` holds the files the snapshot refers to, each listed in the manifest
with its size and sha256: ``files/evidence/<sha256>.<ext>`` (the 属地核实 evidence files its
``evidence_files`` rows name, from ``<db>.evidence/``), ``files/uploads/<upload-…>/<file>``
(the upload folders its audit trail says ``POST /api/v1/data`` made, from the upload folder) and
``files/runs/<run_id>/<file>`` (the output folders of the stored runs its audit trail says
``POST /api/v1/runs`` made, from the service's runs folder; left out on request, counted either
way in ``run_folders``).  The service only ever adds such files (an evidence file under its
content's hash, an upload folder or a run's output folder before its audit line), so the files
a snapshot names exist unchanged when they are copied after it; only regular files are copied,
never a link.

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
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb

from . import auditchain
from ._version import __version__
from .errors import ScreeningError, from_os_error
from .paths import confined
from .retention import UPLOAD_FOLDER, service_runs, uploads_made
from .sqlquote import identifier, literal
from .store import RUN_ID_PATTERN

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
#: the folder of a backup holding the files the database refers to
FILES = "files"
#: the names a file in ``files/`` may have: an evidence file (its sha256 and kind), a file of an upload folder
_EVIDENCE_FILE = re.compile(r"evidence/[0-9a-f]{64}\.(?:jpg|png|pdf)")
_UPLOAD_FILE = re.compile(rf"uploads/{UPLOAD_FOLDER.pattern}/[A-Za-z0-9_]{{1,64}}\.[A-Za-z0-9]{{1,8}}")
#: a run's output folder is named by its id; its files by the run (整治企业清单_<年度>.xlsx, list.csv …):
#: any name of one part, as the download route serves it (GET /api/v1/runs/{run_id}/files/{name})
_RUN_FOLDER = re.compile(RUN_ID_PATTERN)
_RUN_FILE = re.compile(rf"runs/{RUN_ID_PATTERN}/(?!\.\.?\Z)[^/\\\x00-\x1f\x7f]{{1,200}}")
#: where each area of ``files/`` comes from and goes to (:class:`FileSources`), and its names
_AREAS = {"evidence": _EVIDENCE_FILE, "uploads": _UPLOAD_FILE, "runs": _RUN_FILE}
_CHUNK = 1 << 20


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


@dataclass(frozen=True)
class FileSources:
    """Where the files a database refers to live: its evidence folder, the upload folder and the
    service's runs folder (None: no run output folders are looked at)."""
    evidence: Path
    uploads: Path
    runs: Path | None = None


def file_sources(settings: Any) -> FileSources:
    """The service's folders for ``settings`` (api.config.Settings): ``<db>.evidence/``,
    ``settings.uploads()`` (SCREENING_UPLOAD_DIR, else ``uploads`` beside the database) and
    ``settings.runs()`` (SCREENING_RUNS_DIR, else ``runs`` beside the database), where the download route finds a run's files."""
    from api.routes.evidence import evidence_dir

    return FileSources(evidence_dir(Path(settings.db).resolve()), Path(settings.uploads()).resolve(),
                       settings.runs().resolve())


class _NotCopied(Exception):
    """A source file that is not copied: the reason, in Chinese."""


def _copy(src: Path, dst: Path) -> dict[str, Any]:
    """Copy the regular file ``src`` (never through a link) to the new file ``dst`` (0600) in
    blocks, hashing as it goes; its size and sha256."""
    try:
        # O_NONBLOCK: a named pipe put in its place is refused below, not waited on for ever
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise _NotCopied("数据库登记了该文件，但它已不在服务器上") from None
    except OSError as exc:
        if os.path.islink(src):
            raise _NotCopied("是符号链接，未跟随、未复制") from None
        raise _NotCopied(f"无法读取：{from_os_error(exc)}") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise _NotCopied("不是普通文件，未复制")
        dst.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        with os.fdopen(os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            for block in iter(lambda: f.read(_CHUNK), b""):
                digest.update(block)
                size += len(block)
                out.write(block)
    return {"bytes": size, "sha256": digest.hexdigest()}


@dataclass
class _Named:
    """The files a snapshot refers to: (name in the backup, source, the sha256 the database
    registers or None); apart, those of the stored runs' output folders (``run_folders``: the
    folders found, ``runs_missing``: those not there); those it names that cannot be copied
    (name → reason)."""
    files: list[tuple[str, Path, str | None]] = field(default_factory=list)
    run_files: list[tuple[str, Path, str | None]] = field(default_factory=list)
    run_folders: list[str] = field(default_factory=list)
    runs_missing: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def _named_files(con: duckdb.DuckDBPyConnection, tables: dict[str, Any], sources: FileSources) -> _Named:
    """The files the snapshot on ``con`` refers to (:class:`_Named`)."""
    from api.routes.evidence import KINDS

    suffixes = {media: suffix for _, media, suffix in KINDS}
    found = _Named()
    named, skipped = found.files, found.skipped
    if "evidence_files" in tables:
        for digest, media in con.execute(
                "SELECT DISTINCT sha256, media_type FROM evidence_files ORDER BY ALL").fetchall():
            name = f"evidence/{digest}{suffixes.get(media, '')}"
            if not _EVIDENCE_FILE.fullmatch(name):
                skipped[f"evidence/{str(digest)[:80]}"] = "数据库中登记的证据文件名或类型不合规，未复制"
                continue
            named.append((name, sources.evidence / name.split("/", 1)[1], digest))
    # an upload folder gone was removed by screening runs prune (its audit says so): nothing to keep
    _folder_files("uploads", sources.uploads, uploads_made(con), UPLOAD_FOLDER, "上传目录", named, skipped)
    if sources.runs is not None:
        found.run_folders, found.runs_missing = _folder_files("runs", sources.runs, service_runs(con), _RUN_FOLDER,
                                                              "运行输出目录", found.run_files, skipped)
        for run_id in found.runs_missing:  # removed by hand: a prune removes the run's rows with its folder
            skipped[f"runs/{run_id}"] = f"已不在 {sources.runs} 中（被手工删除，或 SCREENING_RUNS_DIR 与运行时不同），未备份"
    return found


def _folder_files(area: str, root: Path, folders: set[str], folder_name: re.Pattern, what: str,
                  named: list[tuple[str, Path, str | None]], skipped: dict[str, str]) -> tuple[list[str], list[str]]:
    """The regular files directly in each of ``folders`` (names the database gives: only a name
    ``folder_name`` matches, directly under ``root``, never a link) into ``named``, as
    ``<area>/<folder>/<file>``; what cannot be copied into ``skipped``.  Returns the folders
    read, and those that are not there."""
    read, missing = [], []
    for folder in sorted(str(name) for name in folders if name):
        if folder_name.fullmatch(folder) and (root / folder).is_symlink():  # wherever it leads
            skipped[f"{area}/{folder}"] = "是符号链接，未跟随"
            continue
        path = confined(folder, [root]) if folder_name.fullmatch(folder) else None
        if path is None or path.parent != root:
            skipped[f"{area}/{folder[:80]}"] = f"审计记录中的{what}名不合规，未复制"
            continue
        if not path.is_dir():
            missing.append(folder)
            continue
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError as exc:
            skipped[f"{area}/{folder}"] = f"无法读取：{from_os_error(exc)}"
            continue
        read.append(folder)
        for entry in entries:
            name = f"{area}/{folder}/{entry.name}"
            if not _AREAS[area].fullmatch(name) or not entry.is_file(follow_symlinks=False):
                skipped[f"{area}/{folder}/{entry.name[:80]}"] = f"不是{what}中的普通数据文件（如符号链接），未复制"
                continue
            named.append((name, Path(entry.path), None))
    return read, missing


def _copy_files(named: list[tuple[str, Path, str | None]], skipped: dict[str, str],
                into: Path) -> dict[str, Any]:
    files: dict[str, Any] = {}
    for name, source, registered in named:
        target = into / FILES / name
        try:
            entry = _copy(source, target)
        except _NotCopied as exc:
            skipped[name] = str(exc)
            continue
        if registered is not None and entry["sha256"] != registered:
            target.unlink()
            skipped[name] = "内容与数据库登记的散列值不符（文件被改动过），未复制"
            continue
        files[name] = entry
    return files


def _run_folders(named: _Named, files: dict[str, Any], included: bool) -> dict[str, Any]:
    """What the manifest says of the stored runs' output folders: included or left out, how
    many and their size in bytes, and how many are missing (each in ``files_skipped``)."""
    if included:
        size = sum(files[name]["bytes"] for name, _, _ in named.run_files if name in files)
    else:
        size = 0
        for _, source, _ in named.run_files:
            try:
                size += os.lstat(source).st_size
            except OSError:
                pass  # gone since it was listed: nothing left out
    return {"included": included, "folders": len(named.run_folders), "bytes": size, "missing": len(named.runs_missing)}


@dataclass
class Backup:
    path: Path
    manifest: dict[str, Any]

    @property
    def rows(self) -> int:
        return sum(t["rows"] for t in self.manifest["tables"].values())

    @property
    def files(self) -> dict[str, Any]:
        return self.manifest.get("files", {})

    @property
    def skipped(self) -> dict[str, str]:
        return self.manifest.get("files_skipped", {})

    @property
    def data_files(self) -> int:
        """The evidence and upload files it holds (not the run output files)."""
        return sum(1 for name in self.files if not name.startswith("runs/"))

    def run_folders_text(self) -> str:
        """The run output folders it holds or left out, for a person (the summary lines)."""
        info = self.manifest.get("run_folders")
        if info is None:
            return "运行输出目录不在备份中（旧版本写出的备份）"
        size = f"{info['bytes'] / 1024**2:,.1f} MB"
        if info["included"]:
            text = f"运行输出目录 {info['folders']} 个（{size}）"
        else:
            text = f"运行输出目录 {info['folders']} 个（{size}）按要求未备份"
        return text + (f"，另有 {info['missing']} 个已不在服务器上" if info["missing"] else "")


def new_name(now: dt.datetime | None = None) -> str:
    now = (now or dt.datetime.now(TIME_ZONE)).astimezone(TIME_ZONE)
    return f"{PREFIX}{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def write_backup(con: duckdb.DuckDBPyConnection, out: Path, database: str,
                 sources: FileSources | None = None, run_files: bool = True) -> Backup:
    """Write a backup of ``con``'s database into a new directory under ``out``.

    ``con`` must be a connection (a cursor) of its own: the tables are read in one transaction
    on it.  ``database``: the file's name, recorded in the manifest.  ``sources``: where the
    files the database refers to are (:func:`file_sources`); the files the snapshot names are
    copied into ``files/`` (none without it).  ``run_files`` False: the stored runs' output
    folders are left out (a province's run writes hundreds of MB), only counted."""
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
            named = _named_files(con, tables, sources) if sources else _Named()
        finally:
            con.execute("COMMIT")
        # the files the snapshot names were complete before the rows naming them committed, and
        # are never changed after: copying them now gives the snapshot's files
        files = _copy_files(named.files + (named.run_files if run_files else []), named.skipped, partial)
        for entry in entries.values():
            path = partial / entry["file"]
            path.chmod(0o600)
            entry["bytes"] = path.stat().st_size
            entry["sha256"] = _sha256(path)
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "name": name,
            "created_at": now.isoformat(timespec="seconds"), "time_zone": "Asia/Shanghai（北京时间）",
            "product_version": __version__, "duckdb_version": duckdb.__version__, "database": database,
            "tables": entries, "audit_head": head, "files": files, "files_skipped": named.skipped,
            "run_folders": _run_folders(named, files, run_files),
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
            "path": str(Path(backup.path).resolve()), "audit_head": backup.manifest["audit_head"]}
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


def _read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the backup in ``path``, once it is intact (its own sha256) and of this
    format; else one Chinese line (BackupError).  Its files are not looked at."""
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
    return manifest


def read_backup(path: Path) -> Backup:
    """The backup in ``path``, once its manifest is intact and every file matches it; else
    one Chinese line (BackupError)."""
    path = Path(path)
    manifest = _read_manifest(path)
    listed = set()
    for table, entry in manifest["tables"].items():
        file = path / entry["file"]
        listed.add(entry["file"])
        if not file.is_file():
            raise BackupError(f"备份 {path} 不完整：缺少表 {table} 的文件 {entry['file']}")
        if file.stat().st_size != entry["bytes"] or _sha256(file) != entry["sha256"]:
            raise BackupError(f"备份 {path} 已损坏：表 {table} 的文件 {entry['file']} 与清单中的校验值不符")
    files = manifest.get("files", {})
    if not isinstance(files, dict):
        raise BackupError(f"备份 {path} 的 {MANIFEST} 中的文件清单无法读取")
    for name, entry in sorted(files.items()):
        if not any(pattern.fullmatch(name) for pattern in _AREAS.values()):
            raise BackupError(f"备份 {path} 的清单中有不合规的文件名 {name[:100]}，拒绝使用")
        if not isinstance(entry, dict):
            raise BackupError(f"备份 {path} 的 {MANIFEST} 中文件 {name} 的记录无法读取")
        file = path / FILES / name
        try:
            info = os.lstat(file)
        except OSError:
            raise BackupError(f"备份 {path} 不完整：缺少文件 {FILES}/{name}") from None
        if not stat.S_ISREG(info.st_mode) or info.st_size != entry.get("bytes") or _sha256(file) != entry.get("sha256"):
            raise BackupError(f"备份 {path} 已损坏：文件 {FILES}/{name} 与清单中的大小或校验值不符")
    if files:
        listed.add(FILES)
        found = set()
        for parent, dirs, names in os.walk(path / FILES):  # never into a link
            found |= {(Path(parent) / n).relative_to(path / FILES).as_posix() for n in names}
            found |= {(Path(parent) / d).relative_to(path / FILES).as_posix() for d in dirs
                      if (Path(parent) / d).is_symlink()}
        extra = sorted(found - set(files))
        if extra:
            raise BackupError(f"备份 {path} 中有清单未列出的文件：{'、'.join(f'{FILES}/{n}' for n in extra[:5])}")
    extra = sorted(p.name for p in path.iterdir() if p.name != MANIFEST and p.name not in listed)
    if extra:
        raise BackupError(f"备份 {path} 中有清单未列出的文件：{'、'.join(extra[:5])}")
    return Backup(path, manifest)


@dataclass
class Restored:
    db: Path
    backup: Backup
    aside: Path | None
    #: where the backup's files were put
    sources: FileSources | None = None


def _placing(backup: Backup, sources: FileSources) -> list[tuple[Path, Path]]:
    """Where each of the backup's files goes (source, target); refused when a file of that name
    is already there with other content (never overwritten)."""
    roots = {"evidence": sources.evidence, "uploads": sources.uploads, "runs": sources.runs}
    moves = []
    for name, entry in sorted(backup.files.items()):
        area, rest = name.split("/", 1)
        if roots[area] is None:
            raise BackupError(f"备份中有运行输出文件 {FILES}/{name}，但没有给出恢复它们的运行输出目录")
        target = confined(rest, [roots[area]])
        if target is None or target != roots[area].resolve() / rest:
            raise BackupError(f"备份中的文件 {FILES}/{name} 的恢复位置不在 {roots[area]} 之中（符号链接？），拒绝恢复")
        if os.path.lexists(target):
            if target.is_symlink() or not target.is_file() or _sha256(target) != entry["sha256"]:
                raise BackupError(f"恢复位置 {target} 已有内容不同的文件，未覆盖；请先移开它再恢复")
            continue  # the same file is already there (evidence is stored under its hash)
        moves.append((backup.path / FILES / name, target))
    return moves


def _place(moves: list[tuple[Path, Path]]) -> None:
    for source, target in moves:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.restoring-{secrets.token_hex(4)}")
        try:
            shutil.copyfile(source, partial)  # copies in blocks
            partial.chmod(0o600)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)


def restore(source: Path, db: Path, force: bool = False, sources: FileSources | None = None) -> Restored:
    """Build ``db`` from the backup in ``source``.  An existing ``db`` is replaced only with
    ``force``, and then kept aside as ``<db>.before-restore-<time>``.  The backup's files go to
    ``sources`` (default: the folders the service would use for ``db`` with the current
    SCREENING_* settings: ``<db>.evidence/``, the upload folder and the runs folder, where the
    download route looks for ``<run_id>/<file>``: the path a run's record keeps, of the machine
    it ran on, is not used to find its files, there or here)."""
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
    if sources is None:
        from api.config import Settings

        sources = file_sources(Settings(db=db))
    moves = _placing(backup, sources)
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
                    legacy = legacy_layout(table, entry["columns"])
                    _create(con, "main", table, layout=tuple(map(tuple, entry["columns"])) if legacy else None)
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
        _place(moves)  # before the database that names them
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
    return Restored(db, backup, aside, sources)


def _layout(columns: tuple[tuple[str, str], ...] | None) -> list[list[str]] | None:
    """A table's columns as the manifest and :func:`_tables` give them."""
    return None if columns is None else [list(c) for c in columns]


# ---------------------------------------------------------------- verify --db

@dataclass
class Verification:
    facts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: worth knowing, not a fault (e.g. a run's output folder left out of the backup it was restored from)
    notes: list[str] = field(default_factory=list)


def _service_tables() -> dict[str, list[list[str]]]:
    """The service's tables as ensure_schema creates them (read from an empty database)."""
    from api.db import ensure_schema

    con = duckdb.connect()
    try:
        ensure_schema(con)
        return _tables(con)
    finally:
        con.close()


#: what an older version's layout of a run table has (screening.store.LEGACY_TABLES), for verify's report
_LEGACY_ZH = {"run_results": "每行带企业的统一社会信用代码，或还带规则名称与依据", "run_enterprises": "没有企业编号 firm"}

#: per run: (table, the count in the run's row it must hold)
_RUN_PARTS = (("run_list", "listed"), ("run_enterprises", "enterprises"), ("run_rejects", "rejected_rows"))


def verify_database(con: duckdb.DuckDBPyConnection, db: Path, runs: Path | None = None) -> Verification:
    """``runs``: the service's runs folder (SCREENING_RUNS_DIR), where the output folders of the
    runs it made are checked against the last backup (:func:`_check_run_files`)."""
    from .store import ADDED_COLUMNS, RULE_TEXT_COLUMNS, STORED_TABLES, legacy_layout

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
                report.facts.append(f"表 {name} 是旧版本的结构（{_LEGACY_ZH.get(name, '旧的列')}）；"
                                  "服务下次启动或下次保存运行时会自动迁移")
                continue
            added = [c for c, _ in want[len(columns):]]
            if columns == want[:len(columns)] and set(added) <= set(ADDED_COLUMNS.get(name, ())):
                # a column added to a run table since an older version wrote it (run_rejects.action):
                # the next save adds it (store._copy); any other column lacking is data lost
                added = "、".join(added)
                report.facts.append(f"表 {name} 没有本版本新增的列 {added}；下次保存运行时会自动添加")
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
        # run_rules may be absent only where run_results carries the rule texts (schema 1): then
        # rules_relation reads them from the result rows
        texts = bool({c for c, _ in present.get("run_results", [])} & set(RULE_TEXT_COLUMNS))
        missing_run_tables = [t for t in ("run_results", "run_list", "run_enterprises", "run_rules")
                              if t not in present and not (t == "run_rules" and texts)]
        if missing_run_tables:
            report.problems.append(f"有运行记录，但缺少表：{'、'.join(missing_run_tables)}")
        else:
            try:
                report.problems += _check_runs(con, present)
            except duckdb.Error:  # a run table without a column the counts read (its layout is reported above)
                report.problems.append("运行表的列已损坏（见上），无法逐次核对各次运行的行数")
            else:
                report.facts.append(f"运行记录 {con.execute('SELECT count(*) FROM runs').fetchall()[0][0]} 次，逐次核对了行数")
    if "evidence_files" in present:
        _check_evidence(con, db, report)
    if runs is not None:
        _check_run_files(con, db, Path(runs).resolve(), report)
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
    numbered = {name for name in ("run_results", "run_enterprises") if "firm" in {c for c, _ in present[name]}}
    if numbered == {"run_results"}:
        problems.append("表 run_results 以企业编号（firm）指向企业表 run_enterprises，但企业表没有企业编号列：判定结果读不出是哪家企业")
    elif "run_results" in numbered:
        # a result row names its firm by its number in the run (schema 3), read back through
        # run_enterprises; the rows an older version added since carry their uscc (firm empty)
        for run_id, lost in con.execute(
                "SELECT run_id, count(*) FROM run_results r WHERE firm IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
                "run_enterprises e WHERE e.run_id = r.run_id AND e.firm = r.firm) GROUP BY run_id ORDER BY run_id"
        ).fetchall():
            problems.append(f"运行 {run_id} 有 {lost:,} 行判定结果的企业编号（firm）不在该次运行的企业表（run_enterprises）中")
    if "run_rules" in sources:
        # run_rules has no key: a rule named twice in a run would repeat that rule's result rows
        # wherever results are read with their texts (store.results_relation), the row count unchanged
        for run_id, rules in con.execute(
                f"SELECT run_id, string_agg(DISTINCT rule_id, '、' ORDER BY rule_id) FROM (SELECT run_id, rule_id FROM "
                f"{sources['run_rules']} GROUP BY run_id, rule_id HAVING count(*) > 1) GROUP BY run_id ORDER BY run_id"
        ).fetchall():
            problems.append(f"运行 {run_id} 的规则表（run_rules）中规则 {rules} 出现不止一次")
    orphans = {t: set(c) - {r[0] for r in con.execute("SELECT run_id FROM runs").fetchall()} for t, c in counts.items()}
    for table, ids in orphans.items():
        if ids:
            problems.append(f"表 {table} 中有 {len(ids)} 个运行编号在 runs 中不存在")
    return problems


def _check_evidence(con: duckdb.DuckDBPyConnection, db: Path, report: Verification) -> None:
    """Each evidence file the database registers is beside it (``<db>.evidence/``), a regular
    file with the registered sha256 (as the download route checks it)."""
    from api.routes.evidence import KINDS, evidence_dir

    suffixes = {media: suffix for _, media, suffix in KINDS}
    folder = evidence_dir(Path(db).resolve())
    rows = con.execute("SELECT DISTINCT sha256, media_type FROM evidence_files ORDER BY ALL").fetchall()
    bad = []
    for digest, media in rows:
        name = f"{digest}{suffixes.get(media, '')}"
        path = folder / name
        if not _EVIDENCE_FILE.fullmatch(f"evidence/{name}") or path.is_symlink() or not path.is_file() \
                or _sha256(path) != digest:
            bad.append(name[:80])
    if bad:
        report.problems.append(f"{len(bad)} 个登记的证据文件不在 {folder} 中或与登记的散列值不符："
                               f"{'、'.join(bad[:5])}{' 等' if len(bad) > 5 else ''}")
    elif rows:
        report.facts.append(f"证据文件 {len(rows)} 个，都在 {folder} 中且与登记的散列值一致")


def _check_run_files(con: duckdb.DuckDBPyConnection, db: Path, root: Path, report: Verification) -> None:
    """Each stored run the service made has its output folder in ``root``; its files are those
    the last backup (``<db>.backups/last.json``; after a restore, the backup it came from) holds,
    with the same sha256.  The database registers no hash of them: the backup is the reference,
    and a run's files are never changed once written."""
    run_ids = sorted(service_runs(con))
    if not run_ids:
        return
    named: list[tuple[str, Path, str | None]] = []
    found, _ = _folder_files("runs", root, set(run_ids), _RUN_FOLDER, "运行输出目录", named, {})
    absent = sorted(set(run_ids) - set(found))
    if absent:
        report.notes.append(f"服务中运行的 {len(run_ids)} 次筛选中，{len(absent)} 次的输出目录不在 {root} 中（备份时未包含、"
                            f"已手工删除或是符号链接），其输出文件无法下载：{'、'.join(absent[:5])}{' 等' if len(absent) > 5 else ''}")
    last = last_backup(db)
    try:
        manifest = _read_manifest(Path(last["path"])) if last else None
    except BackupError:
        manifest = None
    if manifest is None:
        report.notes.append("没有可对照的最近一次备份清单，未核对运行输出文件的内容")
        return
    if not manifest.get("run_folders", {}).get("included"):
        report.notes.append(f"最近一次备份 {manifest['name']} 未包含运行输出目录，未核对其文件的内容")
        return
    files = manifest.get("files")
    listed = {name: entry for name, entry in files.items() if name.startswith("runs/") and isinstance(entry, dict)
              and _RUN_FILE.fullmatch(name)} if isinstance(files, dict) else {}
    present = {name: path for name, path, _ in named}
    backed_up = {name.split("/")[1] for name in listed}
    bad = sorted(name for name, entry in listed.items() if name.split("/")[1] in found
                 and (name not in present or _sha256(present[name]) != entry.get("sha256")))
    bad += sorted(name for name in present if name.split("/")[1] in backed_up and name not in listed)
    if bad:
        report.problems.append(f"{len(bad)} 个运行输出文件与最近一次备份 {manifest['name']} 清单中的不符（被改动、删除或新增）："
                               f"{'、'.join(bad[:5])}{' 等' if len(bad) > 5 else ''}")
    elif set(found) & backed_up:
        report.facts.append(f"运行输出目录 {len(set(found) & backed_up)} 个，其文件与最近一次备份 {manifest['name']} 的清单一致")


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
