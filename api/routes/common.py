"""Pieces the routes share."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import HTTPException, Path, Request, status

from screening import uscc as uscc_mod
from screening.paths import confined
from screening.retention import UPLOAD_FOLDER

from ..auth import User
from ..db import RunCatalogue, StoredRun, run_catalogue

#: an enterprise's code in a path: 18 digits or capital letters but I, O, S, V, Z (GB 32100-2015), checked
#: before any lookup; a code that does not match is 422 with the CLI's reason (api.main, PATTERN_MESSAGES)
UsccPath = Annotated[str, Path(pattern=uscc_mod.PATTERN, description="统一社会信用代码（18 位）",
                              examples=["91330381145618741G"])]

#: what a 422 says when a value does not match one of these patterns (pydantic's own text is English)
PATTERN_MESSAGES = {uscc_mod.PATTERN: uscc_mod.FORMAT_REASON}

#: a list year in a path (bounded, so that no number can overflow the database's integers)
YearPath = Annotated[int, Path(ge=1900, le=2100, description="清单年度")]

ERRORS = {
    401: {"description": "缺少令牌或令牌无效", "model": None},
    403: {"description": "当前角色无权使用此功能，或乡镇街道用户指定了其他乡镇街道"},
    404: {"description": "年度无筛选结果，或企业不存在、不在本乡镇街道"},
    422: {"description": "参数无效，如未知的规则编号、乡镇街道或状态（detail 列出可选值）"},
}

#: a data folder a request may name: inside the data root, or an upload folder the service made
DATA_FOLDER_REFUSED = ("数据目录无效：须为数据根目录（SCREENING_DATA_ROOT）下的目录，"
                       "或上传得到的 upload-…目录（在上传目录 SCREENING_UPLOAD_DIR 中）")


def data_folder(request: Request, name: str | None) -> tuple[FilePath, FilePath]:
    """(the service's data root, the data folder a request names: a folder inside the data root
    (the root itself when ``name`` is empty), or an upload folder (``upload-<年度>-<时间>-<随机>``,
    POST /api/v1/data) in the upload folder).  A name that leads outside both is 422, with one
    message whatever the path."""
    settings = request.app.state.settings
    root = FilePath(settings.data_root).resolve()
    if not name:
        return root, root
    upload = upload_folder(settings, name)
    data = upload if upload is not None and upload.is_dir() else confined(name, [root]) or upload
    if data is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, DATA_FOLDER_REFUSED)
    return root, data


def upload_folder(settings, name: str) -> FilePath | None:
    """The upload folder ``name`` names in the upload folder (by its name or its full path), or None:
    only a folder directly in it with a name the service gives (no ``..``, no link leading out)."""
    uploads = FilePath(settings.uploads()).resolve()
    found = confined(name, [uploads])
    if found is None or found.parent != uploads or not UPLOAD_FOLDER.fullmatch(found.name):
        return None
    return found


def data_name(settings, data: FilePath) -> str:
    """How a stored record names ``data`` (from :func:`data_folder`) so that :func:`data_folder`
    finds it again: its path under the data root, or an upload folder's name."""
    root = FilePath(settings.data_root).resolve()
    return data.relative_to(root).as_posix() if data == root or root in data.parents else data.name


# the latest verification per (firm, year): what a list shows as the firm's verification status
LATEST_VERIFICATION = """
    SELECT uscc, list_year, outcome
    FROM verifications
    QUALIFY row_number() OVER (PARTITION BY uscc, list_year ORDER BY created_at DESC, verification_id DESC) = 1
"""


def served_run(catalogue: RunCatalogue, year: int) -> StoredRun:
    """The run the list year serves: its finalized (定稿) run once finalized, else its newest
    run; 404 when the year has none."""
    run = catalogue.served(year)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{year} 年度还没有筛选结果，请先运行 screening run --year {year}")
    return run


def run_for_year(cursor, year: int) -> str:
    """The id of the run the list year serves (see :func:`served_run`)."""
    return served_run(run_catalogue(cursor), year).run_id


def check_choice(value: str | None, valid: Iterable[str], what: str) -> None:
    """A filter value must be one the data know: 422 naming the valid values otherwise."""
    valid = sorted(valid)
    if value is not None and value not in valid:
        raise HTTPException(422,
                            f"{what}“{value}”无效，可选值：{'、'.join(valid) if valid else '（无）'}")


def township_scope(user: User, requested: str | None, valid: Iterable[str], what: str = "乡镇街道") -> str | None:
    """The township a page of firms is filtered to, decided here for every list route alike.

    A township user always gets its own township: naming another one (known or not) is 403,
    and it is never shown the valid names (they would tell it the county's other townships).
    Other roles get the township they asked for, which must be one the data know (422 naming
    the valid values), or None (all townships)."""
    requested = (requested or "").strip() or None
    if user.role == "township":
        if requested is not None and requested != user.township:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"只能查看本乡镇街道（{user.township}）的企业")
        return user.township
    check_choice(requested, valid, what)
    return requested
