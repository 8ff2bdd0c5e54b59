from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from ..auth import User
from ..db import records
from ..deps import CursorDep, allow
from ..schemas import ListPage
from .common import ERRORS, LATEST_VERIFICATION, run_for_year, YearPath

router = APIRouter(prefix="/api/v1/lists", tags=["lists"])


@router.get("/{year}", response_model=ListPage, responses=ERRORS, operation_id="lists-get",
            summary="某年度整治企业清单（最新一次筛选）")
def get_list(
    year: YearPath,
    cursor: CursorDep,
    user: Annotated[User, Depends(allow("admin", "analyst", "township"))],
    township: Annotated[str | None, Query(description="乡镇街道；township 角色只能看到本乡镇街道")] = None,
    rule: Annotated[str | None, Query(description="只列命中该规则的企业，如 above_scale_low_tax_per_mu")] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000, description="页码，从 1 开始")] = 1,
    page_size: Annotated[int, Query(ge=1, le=500, description="每页条数，最多 500")] = 50,
) -> dict:
    """清单按乡镇街道和统一社会信用代码排序，每行附属地核实状态。"""
    run = run_for_year(cursor, year)
    where, params = ["l.run_id = ?"], [run]
    if user.role == "township":
        where.append("l.township = ?")
        params.append(user.township)
    if township:
        where.append("l.township = ?")
        params.append(township)
    if rule:
        where.append("list_contains(string_split(l.rule_ids, ';'), ?)")
        params.append(rule)
    clause = " AND ".join(where)
    total = cursor.execute(f"SELECT count(*) FROM run_list l WHERE {clause}", params).fetchall()[0][0]
    items = records(cursor, f"""
        SELECT l.* EXCLUDE (run_id, list_year), coalesce(v.outcome, 'pending') AS verification_status
        FROM run_list l
        LEFT JOIN ({LATEST_VERIFICATION}) v ON v.uscc = l.uscc AND v.list_year = l.list_year
        WHERE {clause}
        ORDER BY l.township, l.uscc
        LIMIT ? OFFSET ?
    """, [*params, page_size, (page - 1) * page_size])
    return {"year": year, "run_id": run, "total": total, "page": page, "page_size": page_size, "items": items}
