"""``screening backup``, ``restore``, ``verify`` and ``runs prune`` (issue 18; docs/backup.md).

Registered in screening/cli/__init__.py with ``register(app)``; the console helpers of
screening/cli/common.py are imported inside the functions.
"""
from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import clock


def backup_command(
    db: Annotated[Path, typer.Option("--db", help="要备份的 DuckDB 文件（服务运行时也可以）")] = Path("screening.duckdb"),
    out: Annotated[Path, typer.Option("--out", help="备份写入此目录（每次一个新的子目录）")] = Path("backups"),
    keep: Annotated[Optional[int], typer.Option("--keep", min=1, help="写完后只保留 --out 中最新的几份备份")] = None,
    no_run_files: Annotated[bool, typer.Option("--no-run-files", help="不备份服务中运行筛选的输出目录（SCREENING_RUNS_DIR 中的名单、结果文件；全省一次运行可达数百 MB），只在清单中计数")] = False,
) -> None:
    """备份整个数据库及其引用的证据文件、上传数据和服务中运行筛选的输出目录：同一时刻的完整数据，附清单（时间、版本、各表行数与校验值、各文件的大小与 sha256）。服务运行时交由服务写出。"""
    from api.config import Settings

    from ..backup import backups_dir, file_sources, read_backup, record_last, rotate, write_backup
    from .common import _fail, out_console
    from ..errors import ScreeningError
    from ..handover import IMPORT_TIMEOUT, find
    from ..store import DatabaseLocked, connect

    try:
        if not db.exists():
            raise ScreeningError(f"数据库 {db} 不存在")
        if out.exists() and not out.is_dir():
            raise ScreeningError(f"--out {out} 不是目录")
        try:
            con = connect(db, read_only=True)
        except DatabaseLocked:
            service = find(db)
            if service is None:
                raise
            answer = service.call("POST", "/api/v1/backups", {"run_files": False} if no_run_files else {},
                                  timeout=IMPORT_TIMEOUT)
            made = Path(answer["path"])
            area = backups_dir(db).resolve()
            if made.resolve().parent != area or made.is_symlink():
                raise ScreeningError(f"服务报告的备份位置 {made} 不在其备份目录 {area} 中，未使用")
            backup = _move(read_backup(made), out)
            record_last(db, backup)  # where it is now: verify compares the run output files with it
            via = f"（由运行中的服务 {service.url} 写出）"
        else:
            try:
                # the evidence, upload and runs folders the service uses with the same SCREENING_* settings
                backup = write_backup(con, out, db.name, file_sources(Settings(db=db)), run_files=not no_run_files)
            finally:
                con.close()
            record_last(db, backup)
            via = ""
        removed = rotate(out, keep) if keep else []
    except ScreeningError as exc:
        _fail(exc)
        return
    out_console.print(f"已备份 {db} 到 {backup.path}{via}：{len(backup.manifest['tables'])} 张表，"
                      f"{backup.rows:,} 行，{backup.data_files} 个证据与上传文件，{backup.run_folders_text()}；"
                      f"时间 {backup.manifest['created_at']}（北京时间）",
                      highlight=False, soft_wrap=True)
    _skipped(backup)
    if removed:
        out_console.print(f"按 --keep {keep} 删除了 {len(removed)} 份较早的备份", highlight=False, soft_wrap=True)


def _skipped(backup) -> None:
    """Warn of each file the database names that the backup does not hold."""
    from .common import err_console

    for name, reason in backup.skipped.items():
        err_console.print(f"注意：{'运行输出目录' if name.startswith('runs/') and name.count('/') == 1 else '文件'} "
                          f"{name} 不在备份中：{reason}", highlight=False, soft_wrap=True)


def _move(backup, out: Path):
    """Move a backup the service wrote into ``out`` and check it there."""
    from ..backup import _private_dir, read_backup

    target = _private_dir(out) / backup.path.name
    if target.resolve() != backup.path.resolve():
        shutil.move(str(backup.path), str(target))
    return read_backup(target)


def restore_command(
    source: Annotated[Path, typer.Option("--from", help="备份目录（screening backup 写出的子目录）")] = ...,
    db: Annotated[Path, typer.Option("--db", help="恢复成此 DuckDB 文件")] = ...,
    force: Annotated[bool, typer.Option("--force", help="替换已有的数据库文件（原文件改名保留）")] = False,
) -> None:
    """从备份重建数据库，并把证据文件和上传数据放回新数据库旁（<数据库>.evidence/ 与上传目录），运行输出目录放回运行目录（SCREENING_RUNS_DIR）：先核对清单（文件校验值、各表行数与校验值），不完整或损坏的备份拒绝使用。"""
    from ..backup import restore
    from .common import _fail, out_console
    from ..errors import ScreeningError

    try:
        restored = restore(source, db, force)
    except ScreeningError as exc:
        _fail(exc)
        return
    manifest = restored.backup.manifest
    out_console.print(f"已从备份 {manifest['name']}（{manifest['created_at']}，DuckDB {manifest['duckdb_version']}）"
                      f"恢复到 {db}：{len(manifest['tables'])} 张表，{restored.backup.rows:,} 行，"
                      f"{restored.backup.data_files} 个证据与上传文件，{restored.backup.run_folders_text()}，"
                      f"行数与校验值一致", highlight=False, soft_wrap=True)
    if any(name.startswith("runs/") for name in restored.backup.files):
        out_console.print(f"运行输出目录放在 {restored.sources.runs} 中（服务须以同一 SCREENING_RUNS_DIR 启动才能提供下载）",
                          highlight=False, soft_wrap=True)
    _skipped(restored.backup)
    if restored.aside:
        out_console.print(f"原数据库已改名保留为 {restored.aside}", highlight=False, soft_wrap=True)


def verify_command(
    db: Annotated[Path, typer.Option("--db", help="要检查的 DuckDB 文件（只读打开）")] = Path("screening.duckdb"),
) -> None:
    """检查数据库：能否打开、表结构、每次运行的数据是否完整、登记的证据文件是否都在且未被改动、服务中运行筛选的输出文件是否与最近一次备份一致、审计记录的散列链是否完整。发现问题时退出码为 2。"""
    from rich.text import Text

    from ..backup import BackupError, verify_database
    from .common import _fail, err_console, out_console
    from ..errors import ScreeningError
    from ..store import DatabaseLocked, StoreError, connect

    try:
        if not db.exists():
            raise ScreeningError(f"数据库 {db} 不存在")
        try:
            con = connect(db, read_only=True)
        except DatabaseLocked as exc:
            raise DatabaseLocked(f"{exc}。服务运行时请先 screening backup，再把备份恢复到另一个文件后检查") from None
        except StoreError as exc:  # not a DuckDB file, or a damaged one: a finding, like the others
            raise BackupError(str(exc)) from None
        try:
            from api.config import Settings

            # the runs folder the service uses with the same SCREENING_* settings
            report = verify_database(con, db, Settings(db=db).runs())
        finally:
            con.close()
    except ScreeningError as exc:
        _fail(exc)
        return
    for fact in report.facts:
        out_console.print(Text.assemble(("正常：", "green"), fact), highlight=False, soft_wrap=True)
    for note in report.notes:
        out_console.print(Text.assemble(("注意：", "yellow"), note), highlight=False, soft_wrap=True)
    for problem in report.problems:
        err_console.print(Text.assemble(("问题：", "bold red"), problem), highlight=False, soft_wrap=True)
    if report.problems:
        err_console.print(f"发现 {len(report.problems)} 个问题", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    out_console.print("检查通过", highlight=False, soft_wrap=True)


def prune_command(
    db: Annotated[Path, typer.Option("--db", help="服务使用的 DuckDB 文件")] = Path("screening.duckdb"),
    keep: Annotated[Optional[int], typer.Option("--keep", help="每个年度保留最新的几次筛选（至少 1）")] = None,
    older_than: Annotated[Optional[float], typer.Option("--older-than", help="只删除多少天以前的试算")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="只列出将删除的试算，不删除")] = False,
) -> None:
    """删除试算运行：定稿所依据的、被核实引用的、各年度最新的运行从不删除；删除记入审计。"""
    from .common import _database, _fail, err_console, out_console
    from ..errors import ScreeningError
    from ..handover import Service

    if not db.exists():
        _fail(ScreeningError(f"数据库 {db} 不存在"))
    with _database(db) as con:
        try:
            if isinstance(con, Service):
                summary = con.call("POST", "/api/v1/runs/prune",
                                   {"keep": keep, "older_than_days": older_than, "dry_run": dry_run})
            else:
                from api.config import Settings
                from api.db import ensure_schema
                from api.deps import HANDOVER

                from ..retention import prune

                ensure_schema(con)  # the audit trail the removal is written to
                # the service's folders, from the same SCREENING_* settings it starts with (and this
                # database: the upload folder's default is beside it)
                summary = prune(con, HANDOVER, keep, older_than, dry_run, Settings(db=db).folders())
        except ScreeningError as exc:
            _fail(exc)
            return
    removed = summary["removed"]
    verb = "将删除" if dry_run else "已删除"
    if not removed:
        out_console.print("没有可删除的试算运行", highlight=False, soft_wrap=True)
    for run in removed:
        made = clock.stamp(dt.datetime.fromisoformat(run["created_at"]), seconds=True)  # people read China time
        out_console.print(f"{verb} {run['list_year']} 年度的运行 {run['run_id']}（保存于 {made}）", highlight=False, soft_wrap=True)
    if removed and not dry_run:
        out_console.print(f"共删除 {len(removed)} 次试算运行、{sum(summary['rows'].values()):,} 行数据", highlight=False, soft_wrap=True)
    files = summary.get("files", {})
    for name in files.get("run_folders", []):
        out_console.print(f"{verb}运行输出目录 {name}", highlight=False, soft_wrap=True)
    for name in files.get("uploads", []):
        out_console.print(f"{verb}上传目录 {name}（没有保存的运行、评价或措施名单使用它）", highlight=False, soft_wrap=True)
    for item in summary.get("not_removed", []):
        err_console.print(f"未能删除目录 {item['folder']}：{item['reason']}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("backup")(backup_command)
    app.command("restore")(restore_command)
    app.command("verify")(verify_command)
    runs_app = typer.Typer(help="管理已保存的运行。", no_args_is_help=True, rich_markup_mode=None)
    runs_app.command("prune")(prune_command)
    app.add_typer(runs_app, name="runs")
