"""Backups and retention while the service runs (``screening backup`` and ``screening runs
prune`` hand over to these routes when the service holds the database; docs/backup.md).

The backup route takes no path: the service writes into its own directory beside the
database (``<db>.backups/``), and the command line moves the finished backup from there."""
from __future__ import annotations

import threading
from typing import Annotated

import duckdb
from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from screening.backup import backups_dir, file_sources, record_last, rotate, write_backup
from screening.errors import ScreeningError, from_os_error
from screening.retention import prune

from ..auth import User
from ..db import audit
from ..deps import CursorDep, allow
from . import evaluations, runs
from .common import ERRORS

router = APIRouter(prefix="/api/v1", tags=["backups"])
_one_at_a_time = threading.Lock()


class BackupIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"keep": 7}]})
    keep: int | None = Field(default=None, ge=1, le=1000,
                             description="写完后只保留服务备份目录中最新的几份（默认不删除）")
    run_files: StrictBool = Field(default=True, description="是否备份服务中运行筛选的输出目录（SCREENING_RUNS_DIR；"
                                                            "全省一次运行可达数百 MB）；为 false 时只在清单中计数")


@router.post("/backups", status_code=status.HTTP_201_CREATED,
             responses={**ERRORS, 409: {"description": "另一次备份正在进行"}},
             operation_id="backups-create", summary="备份整个数据库及证据文件、上传数据和运行输出目录（仅 admin；服务照常运行，备份是同一时刻的完整数据）")
def create_backup(body: BackupIn, request: Request, cursor: CursorDep,
                  user: Annotated[User, Depends(allow("admin"))]) -> dict:
    """在服务自己的备份目录（数据库文件旁的 `<数据库>.backups/`）中写一份备份，返回其名称、位置和清单摘要。"""
    db = request.app.state.settings.db
    if not _one_at_a_time.acquire(blocking=False):
        raise HTTPException(status.HTTP_409_CONFLICT, "另一次备份正在进行，请稍后再试")
    try:
        snapshot = request.app.state.con.cursor()  # its own transaction: one moment of the whole database
        try:
            backup = write_backup(snapshot, backups_dir(db), db.name, file_sources(request.app.state.settings),
                                  run_files=body.run_files)
        finally:
            snapshot.close()
        record_last(db, backup)
        removed = rotate(backups_dir(db), body.keep) if body.keep else []
    except ScreeningError as exc:
        raise HTTPException(422, str(exc)) from None
    except OSError as exc:  # the disk is full, the directory not writable: the machine, not the request
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"备份未能写出：{from_os_error(exc)}") from None
    except duckdb.Error as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"备份未能写出：{exc}") from None
    finally:
        _one_at_a_time.release()
    summary = {"name": backup.manifest["name"], "path": str(backup.path), "created_at": backup.manifest["created_at"],
               "tables": {name: t["rows"] for name, t in backup.manifest["tables"].items()},
               "audit_head": backup.manifest["audit_head"], "files": backup.data_files,
               "run_folders": backup.manifest["run_folders"], "run_folders_text": backup.run_folders_text(),
               "files_skipped": backup.skipped, "rotated": removed}
    audit(cursor, user, "backup", "database", backup.manifest["name"], None, summary)
    return summary


class PruneIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"keep": 3, "older_than_days": 90}]})
    keep: int | None = Field(default=None, ge=1, le=10_000, description="每个年度保留最新的几次筛选")
    older_than_days: float | None = Field(default=None, ge=0, le=100_000, description="只删除多少天以前的试算")
    dry_run: StrictBool = Field(default=False, description="只列出将删除的试算，不删除")


@router.post("/runs/prune", responses=ERRORS, operation_id="runs-prune",
             summary="删除试算运行（仅 admin；定稿所依据的、被核实引用的和各年度最新的运行从不删除）")
def prune_runs(body: PruneIn, request: Request, cursor: CursorDep,
               user: Annotated[User, Depends(allow("admin"))]) -> dict:
    """删除的运行的输出目录（runs_dir/<run_id>）和不再被任何运行、评价、措施名单引用的上传目录一并删除
    （docs/backup.md 第 5 节）。"""
    # a screening or an evaluation being computed reads an upload folder that no stored record
    # names yet, and a backup copies the upload folders its snapshot names: the prune waits for
    # a moment when none runs (409, say to try again)
    held = []
    try:
        for lock in (runs._one_at_a_time, evaluations._one_at_a_time, _one_at_a_time):
            if not lock.acquire(blocking=False):
                raise HTTPException(status.HTTP_409_CONFLICT, "有筛选、亩均评价测算或备份正在进行，请稍后再清理")
            held.append(lock)
        return prune(cursor, user, body.keep, body.older_than_days, body.dry_run, request.app.state.settings.folders())
    except ScreeningError as exc:
        raise HTTPException(422, str(exc)) from None
    finally:
        for lock in held:
            lock.release()
