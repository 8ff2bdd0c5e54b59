"""Producing a year's list while the service runs, without a second process ever opening
the database file: the service screens in its own process (POST /runs), or imports a run
that ``screening run`` staged in a file of its own when it found the database held
(POST /runs/import, see screening.handover)."""
from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import FileResponse, StreamingResponse
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from screening.errors import ScreeningError
from screening.evaluation_workflow import finalized_grades
from screening.handover import NotStaged, discard
from screening.outputs import planned_outputs, write_all, write_run_json
from screening.screen import screen
from screening.store import RUN_ID_PATTERN, import_staged

from ..auth import User
from ..db import audit, ensure_schema, table_exists
from ..deps import CursorDep, allow
from .common import ERRORS, data_folder
from .exports import _disposition
from .finalization import settle_run

router = APIRouter(prefix="/api/v1", tags=["runs"])
_one_at_a_time = threading.Lock()

#: a run's id as screening.screen makes it: list year, start time, six hex digits
RunIdPath = Annotated[str, PathParam(pattern=f"^{RUN_ID_PATTERN}$", description="运行编号",
                                     examples=["2022-20260101T080000-0a1b2c"])]


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"year": 2022, "set": []}]})
    year: int | None = Field(default=None, ge=2000, le=2100, description="清单年度（默认：数据支持的最新年度）")
    data: str | None = Field(default=None, max_length=200,
                             description="数据目录名，位于服务配置的数据根目录（SCREENING_DATA_ROOT）之下，或上传得到的 upload-…（在上传目录 SCREENING_UPLOAD_DIR 中）；默认即数据根目录")
    set: list[str] = Field(default_factory=list, max_length=20, description="参数调整，如 above_scale_low_tax_per_mu.ratio=0.1")
    replace_final: StrictBool = Field(default=False, description="该年度已定稿时：为 true 则撤销原定稿（记入审计），以本次筛选作为"
                                                           "该年度清单，需重新核实并定稿；为 false（默认）则本次筛选只作试算保存")


@router.post("/runs", status_code=status.HTTP_201_CREATED,
             responses={**ERRORS, 409: {"description": "另一次筛选正在进行"}, 422: {"description": "数据或参数无效"}},
             operation_id="runs-create", summary="在服务中运行筛选并保存（仅 admin；不需要停止服务）")
def create_run(body: RunIn, request: Request, cursor: CursorDep,
               user: Annotated[User, Depends(allow("admin"))]) -> dict:
    settings = request.app.state.settings
    root, data = data_folder(request, body.data)
    if not _one_at_a_time.acquire(blocking=False):
        raise HTTPException(status.HTTP_409_CONFLICT, "另一次筛选正在进行，请稍后再试")
    try:
        # rule 2's computed grades: the final grades of the years' finalized evaluations (定稿)
        s = screen(data, body.year, None, body.set, keep_tables=False, host=request.app.state.con, confine=(root,),
                   final_grades=finalized_grades(cursor))
        with s:
            out = settings.runs() / s.run_id
            error = write_all(s, out, None)
            write_run_json(s, out, planned_outputs(s, out), stored=error is None)
            if error is not None:
                raise error
            summary = {"run_id": s.run_id, "list_year": s.list_year, "listed": s.list.height,
                       "enterprises": s.enterprises, "hits_per_rule": s.hits_per_rule(),
                       "rejected_rows": s.inputs.rejected_rows, "warnings": s.warnings, "outputs": str(out)}
        summary |= settle_run(cursor, user, s.run_id, body.replace_final)  # a trial once the year is finalized
    except ScreeningError as exc:
        raise HTTPException(422, str(exc)) from None
    finally:
        _one_at_a_time.release()
    audit(cursor, user, "run", "run", summary["run_id"], None, summary)
    return summary


@router.post("/runs/staging", status_code=status.HTTP_201_CREATED, responses=ERRORS, operation_id="runs-stage",
             summary="为命令行交接分配一个暂存文件（仅 admin；screening run 发现服务占用数据库时自动调用）")
def stage_run(request: Request, _user: Annotated[User, Depends(allow("admin"))]) -> dict:
    """返回服务在自己的暂存目录中生成的文件路径和一次性凭据；写好后凭此凭据调用 /runs/import。"""
    path, token = request.app.state.staging.issue()
    return {"path": str(path), "token": token}


class ImportIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"token": "Zm9vYmFy…"}]})
    token: str = Field(min_length=1, max_length=200, description="POST /runs/staging 返回的一次性凭据")


@router.post("/runs/import", status_code=status.HTTP_201_CREATED,
             responses={**ERRORS, 409: {"description": "另一次筛选或导入正在进行，或该运行已导入"},
                        422: {"description": "凭据无效、已使用或已过期，或文件不是本程序暂存的运行记录"}},
             operation_id="runs-import", summary="导入命令行暂存的运行记录（仅 admin；screening run 发现服务占用数据库时自动调用）")
def import_run(body: ImportIn, request: Request, cursor: CursorDep,
               user: Annotated[User, Depends(allow("admin"))]) -> dict:
    staging = request.app.state.staging
    if not _one_at_a_time.acquire(blocking=False):
        raise HTTPException(status.HTTP_409_CONFLICT, "另一次筛选或导入正在进行，请稍后再试")
    try:
        staged = staging.redeem(body.token)
        try:
            imported = import_staged(cursor, staged)
        finally:
            discard(staged)
        ensure_schema(cursor)  # the per-firm indexes, when these are the database's first runs
    except NotStaged as exc:
        raise HTTPException(422, str(exc)) from None
    except ScreeningError as exc:
        code = status.HTTP_409_CONFLICT if "已经导入" in str(exc) else 422
        raise HTTPException(code, str(exc)) from None
    finally:
        _one_at_a_time.release()
    summary = {**imported, "staged": staged.name}
    kind = "run" if imported["run_ids"] else "warnings"  # a screening run, or a warn run (warn_* tables)
    audit(cursor, user, f"import_{kind}", kind, ",".join(imported["run_ids"]) or staged.name, None, summary)
    return summary


@router.get("/runs/{run_id}/check", responses={**ERRORS, 404: {"description": "没有该运行，或该运行保存时尚未记录数据接收检查"}},
            operation_id="runs-check", summary="某次运行的数据接收检查（与该运行写出的 check.json 相同）")
def get_run_check(run_id: RunIdPath, cursor: CursorDep,
                  _user: Annotated[User, Depends(allow("admin", "analyst"))]) -> dict:
    rows = cursor.execute("SELECT json_extract(record, '$.check') FROM runs WHERE run_id = ?", [run_id]).fetchall() \
        if table_exists(cursor, "runs") else []
    if not rows:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"没有运行 {run_id}")
    if rows[0][0] is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"运行 {run_id} 保存时尚未记录数据接收检查，请重新运行筛选")
    return json.loads(rows[0][0])


def output_files(settings, run_id: str) -> list[str]:
    """The files of a run's output folder (``settings.runs()/<run_id>``, written by POST /runs); none when
    the folder is absent (a run made elsewhere, or pruned)."""
    folder = settings.runs() / run_id
    try:
        if folder.is_symlink():  # a run folder is made by the service: a link leads somewhere else
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_file() and not p.is_symlink())
    except OSError:
        return []


_MEDIA = {".csv": "text/csv; charset=utf-8", ".json": "application/json",
          ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
          ".parquet": "application/vnd.apache.parquet"}


@router.get("/runs/{run_id}/files/{name}", responses={**ERRORS, 404: {"description": "没有该运行的输出目录，或其中没有该文件"}},
            response_class=FileResponse, operation_id="runs-file",
            summary="下载某次运行的输出文件（list.csv、整治企业清单_<年度>.xlsx、results.parquet、rejects.csv、run.json 等）")
def get_run_file(run_id: RunIdPath, name: Annotated[str, PathParam(max_length=200, description="文件名（该运行输出目录中的文件）")],
                 request: Request, _user: Annotated[User, Depends(allow("admin", "analyst"))]) -> StreamingResponse:
    """只提供该运行输出目录中实际存在的文件：文件名须与目录中的某个文件完全相同，不接受路径。"""
    settings = request.app.state.settings
    missing = HTTPException(status.HTTP_404_NOT_FOUND, f"运行 {run_id} 的输出中没有文件“{name[:100]}”")
    if name not in output_files(settings, run_id):
        raise missing
    # the file is opened, not its path: a folder or file swapped for a link after the listing
    # above is refused, and what is sent is the file that was checked
    handle = _open_run_file(settings.runs() / run_id, name)
    if handle is None:
        raise missing
    suffix = Path(name).suffix
    fallback = f"{run_id}{suffix}" if not name.isascii() else name
    size = os.fstat(handle.fileno()).st_size
    return StreamingResponse(_chunks(handle), media_type=_MEDIA.get(suffix.lower(), "application/octet-stream"),
                             headers={"Content-Disposition": _disposition(name, fallback), "Content-Length": str(size)})


def _open_run_file(folder: Path, name: str):
    """The regular file ``name`` directly in ``folder``, opened without following a link at either
    step, nor waiting (O_NONBLOCK: a named pipe swapped in would hold the worker until a writer
    came; reading a regular file is the same with it); None when it is not there, is a link, or
    is not a regular file."""
    try:
        directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=directory)
    except OSError:
        return None
    finally:
        os.close(directory)
    handle = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        handle.close()
        return None
    return handle


def _chunks(handle, size: int = 1 << 20):
    with handle:
        while block := handle.read(size):
            yield block
