"""Bringing a year's departmental files into the service (数据与筛选, issue 13).

The files arrive in one multipart request (bounded as a whole by api/bodylimit.py, each file by
``upload_max_bytes``), go into a new folder the service names itself
(``upload-<年度>-<时间>-<随机>``, never a name from the client) in the upload folder
(``settings.uploads()``: ``SCREENING_UPLOAD_DIR``, else ``uploads`` beside the database file,
made 0700; never the data root, which is the bundled sample by default and may be read-only),
each file written 0600 under its table's name.  Every file passes the guard the CLI's reader
uses (:func:`screening.ingest.discovery.open_table`: a workbook is measured by
:func:`screening.filesafety.check_workbook` before anything reads it); one refused file and the
folder is removed, nothing kept.  The answer is the intake report ``screening check`` prints
(:func:`screening.ingest.report.check`), and the folder's name, which ``POST /runs`` takes as
``data``."""
from __future__ import annotations

import datetime as dt
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile, status

from screening.errors import ScreeningError, from_os_error
from screening.filesafety import FileTooLarge
from screening.ingest.discovery import EXTENSIONS, open_table
from screening.ingest.report import check as intake_check
from screening.paths import default_ruleset
from screening.retention import upload_folder_name
from screening.ruleset import load_ruleset
from screening.schema import TABLES
from screening.screen import needed_tables

from ..auth import User
from ..db import audit
from ..deps import CursorDep, allow
from .common import ERRORS

router = APIRouter(prefix="/api/v1", tags=["runs"])

#: the tables a screening run reads (file name = table name + one of EXTENSIONS); not a standalone
#: table such as projects, which its own command reads and a run never does
DATA_TABLES = tuple(name for name, table in TABLES.items() if not table.standalone)
#: what an upload may hold: the run's tables and ``accounts`` (用能户号), which ``POST /measures/lists``
#: reads from the same folder (a run never reads it)
UPLOAD_TABLES = DATA_TABLES + ("accounts",)
_CHUNK = 1024 * 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def table_of(filename: str | None) -> tuple[str, str]:
    """(table, extension) from an uploaded file's name, or a Chinese 422: only ``<表名>.<扩展名>``,
    no folder, no other name."""
    name = (filename or "").strip()
    allowed = f"文件名只能是表名加扩展名，如 enterprises.csv、land.xlsx（表名：{'、'.join(UPLOAD_TABLES)}；" \
              f"扩展名：{'、'.join(EXTENSIONS)}）"
    if not name:
        raise HTTPException(422, f"有文件没有文件名；{allowed}")
    if "/" in name or "\\" in name or _CONTROL.search(name) or name in (".", ".."):
        raise HTTPException(422, f"文件名“{name[:100]}”含有路径或控制字符；{allowed}")
    stem, dot, suffix = name.rpartition(".")
    table, ext = stem.lower(), f".{suffix.lower()}"
    if not dot or table not in UPLOAD_TABLES or ext not in EXTENSIONS:
        raise HTTPException(422, f"文件名“{name[:100]}”不是可接收的数据表文件；{allowed}")
    return table, ext


def _folder_name(year: int) -> str:
    return upload_folder_name(year, dt.datetime.now(), secrets.token_hex(3))  # runs prune knows the form


def _write(upload: UploadFile, path: Path, cap: int) -> None:
    """The upload's bytes into a new file (0600), refused (413) past ``cap`` bytes."""
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        while chunk := upload.file.read(_CHUNK):
            written += len(chunk)
            if written > cap:
                raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                                    f"{upload.filename}：文件过大（每个文件上限 {cap / 1024 / 1024:g} MB）")
            out.write(chunk)


@router.post("/data", status_code=status.HTTP_201_CREATED, operation_id="data-upload",
             responses={**ERRORS, 413: {"description": "文件过大，或工作簿解压后过大（见 docs/limits.md）"},
                        422: {"description": "文件名不是“表名.扩展名”、同一张表有多个文件、或文件不可读取；不保存任何文件"}},
             summary="上传某年度各部门数据文件到服务的上传目录下的新目录，返回数据接收检查（仅 admin）")
def upload_data(request: Request, cursor: CursorDep, user: Annotated[User, Depends(allow("admin"))],
                year: Annotated[int, Form(ge=2000, le=2100, description="清单年度：检查 Y-2 与 Y-1 年数据是否齐全，也用于目录名")],
                files: Annotated[list[UploadFile], File(description="数据表文件，文件名为表名加扩展名，如 enterprises.csv")]) -> dict:
    """文件保存到上传目录（SCREENING_UPLOAD_DIR，默认为数据库文件旁的 uploads）下由服务命名的新目录
    （upload-<年度>-<时间>-<随机>），每个文件只本用户可读写；
    任一文件被拒，整个目录删除、不保存任何文件。返回 data（目录名，供 POST /runs 的 data 使用）与
    report（与 screening check 相同的数据接收检查）。"""
    settings = request.app.state.settings
    if not 2000 <= year <= 2100:
        raise HTTPException(422, "清单年度须在 2000 至 2100 之间")
    tables: dict[str, tuple[UploadFile, str]] = {}
    for upload in files:
        table, ext = table_of(upload.filename)
        if table in tables:
            raise HTTPException(422, f"表 {table}（{TABLES[table].zh}）有多个文件（{tables[table][0].filename}、"
                                     f"{upload.filename}），请只上传一个")
        tables[table] = (upload, ext)
    if not tables:
        raise HTTPException(422, "没有上传文件")
    root = Path(settings.uploads()).resolve()
    folder = root / _folder_name(year)
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.mkdir(mode=0o700)
    except OSError as exc:  # the upload folder not writable, the disk full: the machine, not the request
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"数据未能保存：{from_os_error(exc)}") from None
    try:
        for table, (upload, ext) in tables.items():
            path = folder / f"{table}{ext}"
            _write(upload, path, settings.upload_max_bytes)
            open_table(path)  # the CLI reader's guard: a workbook bomb, binary in a CSV, … refused here
        report = intake_check(folder, year, needed_tables(load_ruleset(default_ruleset())))
    except FileTooLarge as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"{_plain(exc, folder)}；未保存任何文件") from None
    except ScreeningError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise HTTPException(422, f"{_plain(exc, folder)}；未保存任何文件") from None
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            f"数据未能保存：{from_os_error(exc)}；未保存任何文件") from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    summary = {"data": folder.name, "files": sorted(p.name for p in folder.iterdir()), "report": report}
    audit(cursor, user, "upload_data", "data", folder.name, None,
          {"files": summary["files"], "screenable": report["screenable"]})
    return summary


def _plain(exc: Exception, folder: Path) -> str:
    """The message without the server's folder path."""
    return str(exc).replace(f"{folder}/", "").replace(str(folder), "上传目录")
