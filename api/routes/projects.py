"""拟建项目节能审查 (seed 一.5) over the service's data root: ``GET /api/v1/projects``.

The review is computed from the ``projects`` table under the data root (SCREENING_DATA_ROOT) on
each request, as ``screening projects`` computes it: a register holds tens to a few hundred
projects, so this is cheap, and there is no stored copy to go stale.  Read only; bounded pages.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from screening.errors import ScreeningError
from screening.ingest import file_names

from ..auth import User
from ..deps import allow
from .common import ERRORS, data_folder

router = APIRouter(prefix="/api/v1/projects", tags=["projects"])


def _folder(request: Request, data: str | None) -> Path:
    """``data`` under the data root; else the data root or its projects/ folder, as the command looks."""
    from screening.projects import find_register

    root, folder = data_folder(request, data)
    if data:
        return folder
    path = find_register(root)
    if path is not None:
        return path.parent.resolve()
    raise HTTPException(404, f"数据根目录中没有拟建项目表（{file_names('projects')}）")


@router.get("", responses=ERRORS, operation_id="projects-get",
            summary="拟建项目节能审查：是否两高、能耗强度与准入标准、审查权限和处理建议（仅供参考）")
def get_projects(
    request: Request,
    _user: Annotated[User, Depends(allow("admin", "analyst"))],
    data: Annotated[str | None, Query(max_length=200, description="数据目录名，位于数据根目录之下（默认：数据根目录或其 projects/ 子目录）")] = None,
    suggestion: Annotated[Literal["不予受理", "受理并开展节能审查", "报上级审查", "登记备案"] | None,
                          Query(description="只列该处理建议的项目")] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000, description="页码，从 1 开始")] = 1,
    page_size: Annotated[int, Query(ge=1, le=500, description="每页条数，最多 500")] = 50,
) -> dict:
    """与 `screening projects` 相同的判定（默认规则集）；处理建议仅供参考，由审查机关依法决定。

    返回 `{"total", "items", "rejected_rows", "rejects"}`：`items` 每项含 project_id、two_high、intensity、
    standard、intensity_status、authority、suggestion、reason 等；`rejects` 为被拒收的行（最多 100 行）及原因。"""
    from screening.projects import review

    folder = _folder(request, data)
    try:
        result = review(folder)
    except ScreeningError as exc:
        raise HTTPException(422, str(exc)) from None
    rows = result.results
    if suggestion is not None:
        rows = rows.filter(rows["suggestion"].str.starts_with(suggestion))
    start = (page - 1) * page_size
    rejects = result.rejects.head(100)
    return {"total": rows.height, "page": page, "page_size": page_size,
            "items": rows.slice(start, page_size).to_dicts(),
            "rejected_rows": int(result.rejects["row"].n_unique()) if result.rejects.height else 0,
            "rejects": rejects.select("file", "row", "column", "reason", "value").to_dicts()}
