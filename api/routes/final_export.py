"""The 定稿 list for signature and the notices to the listed firms, as one zip (screening.final)."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import Response

from screening.errors import InputError, RuleSetError
from screening.final import export_zip
from screening.paths import default_ruleset
from screening.ruleset import load_ruleset

from ..auth import User
from ..deps import CursorDep, allow
from .common import ERRORS, YearPath
from .exports import _disposition

router = APIRouter(prefix="/api/v1/lists", tags=["finalization"])

ZIP_TYPE = "application/zip"


@router.get("/{year}/final/export", response_class=Response, operation_id="finalization-export",
            summary="导出定稿清单（带签章栏的 Excel）与每家企业的认定告知书（Word），打包为 zip（仅 admin）",
            responses={**ERRORS, 200: {"description": "zip：定稿清单_<年度>.xlsx、告知书/*.docx、告知书_<年度>_合并打印.docx",
                                       "content": {ZIP_TYPE: {}}},
                       409: {"description": "规则集的告知书设置或模板有误"}})
def export_final(year: YearPath, request: Request, cursor: CursorDep,
                 _user: Annotated[User, Depends(allow("admin"))]) -> Response:
    settings = request.app.state.settings
    try:
        rs = load_ruleset(settings.rules_dir or default_ruleset())
        with tempfile.TemporaryDirectory(prefix="final-export-") as scratch:
            body = export_zip(cursor, year, rs, Path(scratch))
    except InputError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except RuleSetError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return Response(body, media_type=ZIP_TYPE, headers={
        "Content-Disposition": _disposition(f"{year}年度定稿清单与告知书.zip", f"final_{year}.zip"),
        "Cache-Control": "no-store"})
