"""Pieces the routes share."""
from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Path, status

from ..db import latest_run

#: a list year in a path (bounded, so that no number can overflow the database's integers)
YearPath = Annotated[int, Path(ge=1900, le=2100, description="清单年度")]

ERRORS = {
    401: {"description": "缺少令牌或令牌无效", "model": None},
    403: {"description": "当前角色无权使用此功能"},
    404: {"description": "年度无筛选结果，或企业不存在、不在本乡镇街道"},
}

# the latest verification per (firm, year): what a list shows as the firm's verification status
LATEST_VERIFICATION = """
    SELECT uscc, list_year, outcome
    FROM verifications
    QUALIFY row_number() OVER (PARTITION BY uscc, list_year ORDER BY created_at DESC, verification_id DESC) = 1
"""


def run_for_year(cursor, year: int) -> str:
    run = latest_run(cursor, year)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{year} 年度还没有筛选结果，请先运行 screening run --year {year}")
    return run
