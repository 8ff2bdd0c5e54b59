"""Producing a year's list while the service runs: the service screens in its own process
and stores the run in its own database, so no second process ever needs the file."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field

from screening.errors import ScreeningError
from screening.outputs import planned_outputs, write_all, write_run_json
from screening.screen import screen

from ..auth import User
from ..db import audit
from ..deps import CursorDep, allow
from .common import ERRORS

router = APIRouter(prefix="/api/v1", tags=["runs"])
_one_at_a_time = threading.Lock()


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"year": 2022, "set": []}]})
    year: int | None = Field(default=None, ge=2000, le=2100, description="清单年度（默认：数据支持的最新年度）")
    data: str | None = Field(default=None, max_length=200,
                             description="数据目录名，位于服务配置的数据根目录（SCREENING_DATA_ROOT）之下；默认即数据根目录")
    set: list[str] = Field(default_factory=list, max_length=20, description="参数调整，如 above_scale_low_tax_per_mu.ratio=0.1")


@router.post("/runs", status_code=status.HTTP_201_CREATED,
             responses={**ERRORS, 409: {"description": "另一次筛选正在进行"}, 422: {"description": "数据或参数无效"}},
             operation_id="runs-create", summary="在服务中运行筛选并保存（仅 admin；不需要停止服务）")
def create_run(body: RunIn, request: Request, cursor: CursorDep,
               user: Annotated[User, Depends(allow("admin"))]) -> dict:
    settings = request.app.state.settings
    root = Path(settings.data_root).resolve()
    data = (root / body.data).resolve() if body.data else root
    if root != data and root not in data.parents:
        raise HTTPException(422, "数据目录必须位于数据根目录之下")
    if not _one_at_a_time.acquire(blocking=False):
        raise HTTPException(status.HTTP_409_CONFLICT, "另一次筛选正在进行，请稍后再试")
    try:
        s = screen(data, body.year, None, body.set, keep_tables=False, host=request.app.state.con)
        with s:
            out = Path(settings.runs_dir) / s.run_id
            error = write_all(s, out, None)
            write_run_json(s, out, planned_outputs(s, out), stored=error is None)
            if error is not None:
                raise error
            summary = {"run_id": s.run_id, "list_year": s.list_year, "listed": s.list.height,
                       "enterprises": s.enterprises, "hits_per_rule": s.hits_per_rule(),
                       "rejected_rows": s.inputs.rejected_rows, "warnings": s.warnings, "outputs": str(out)}
    except ScreeningError as exc:
        raise HTTPException(422, str(exc)) from None
    finally:
        _one_at_a_time.release()
    audit(cursor, user, "run", "run", summary["run_id"], None, summary)
    return summary
