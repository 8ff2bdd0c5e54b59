from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from ..auth import User
from ..db import records
from ..deps import CursorDep, allow
from ..schemas import ListPage
from .common import ERRORS, LATEST_VERIFICATION, run_for_year, YearPath

router = APIRouter(prefix="/api/v1/lists", tags=["lists"])

# sort keys (never user text in SQL: the query parameter picks one of these)
_ORDER = {
    "township": "l.township", "uscc": "l.uscc", "tax_per_mu": "l.tax_per_mu NULLS LAST",
    "land_mu": "l.land_mu DESC NULLS LAST", "energy_tce": "l.energy_tce DESC NULLS LAST",
    "hit_count": "l.hit_count DESC",
}


@router.get("/{year}", response_model=ListPage, responses=ERRORS, operation_id="lists-get",
            summary="某年度整治企业清单（最新一次筛选）")
def get_list(
    year: YearPath,
    cursor: CursorDep,
    user: Annotated[User, Depends(allow("admin", "analyst", "township"))],
    township: Annotated[str | None, Query(description="乡镇街道；township 角色只能看到本乡镇街道")] = None,
    rule: Annotated[str | None, Query(description="只列命中该规则的企业，如 above_scale_low_tax_per_mu")] = None,
    industry: Annotated[str | None, Query(max_length=4, description="行业代码或其前缀，如 38（大类）或 3823")] = None,
    verification: Annotated[Literal["pending", "confirmed", "disputed"] | None,
                            Query(description="属地核实状态")] = None,
    disposition: Annotated[Literal["兼并重组", "整体腾退", "搬迁入园", "改造提升"] | None,
                           Query(description="建议处置方式")] = None,
    sort: Annotated[Literal["township", "uscc", "tax_per_mu", "land_mu", "energy_tce", "hit_count"],
                    Query(description="排序字段（数值字段按从大到小，tax_per_mu 按从小到大）")] = "township",
    page: Annotated[int, Query(ge=1, le=1_000_000, description="页码，从 1 开始")] = 1,
    page_size: Annotated[int, Query(ge=1, le=500, description="每页条数，最多 500")] = 50,
) -> dict:
    """清单按乡镇街道和统一社会信用代码排序，每行附属地核实状态。"""
    run = run_for_year(cursor, year)
    filters = [
        ("l.run_id = ?", run),
        ("l.township = ?", user.township if user.role == "township" else None),  # a township sees only itself
        ("l.township = ?", township),
        ("list_contains(string_split(l.rule_ids, ';'), ?)", rule),
        ("starts_with(l.industry_code, ?)", industry),
        ("coalesce(v.outcome, 'pending') = ?", verification),
        ("l.suggested_disposition = ?", disposition),
    ]
    where = [condition for condition, value in filters if value]
    params = [value for _, value in filters if value]
    clause = " AND ".join(where)
    source = f"run_list l LEFT JOIN ({LATEST_VERIFICATION}) v ON v.uscc = l.uscc AND v.list_year = l.list_year"
    total = cursor.execute(f"SELECT count(*) FROM {source} WHERE {clause}", params).fetchall()[0][0]
    items = records(cursor, f"""
        SELECT l.* EXCLUDE (run_id, list_year), coalesce(v.outcome, 'pending') AS verification_status
        FROM {source}
        WHERE {clause}
        ORDER BY {_ORDER[sort]}, l.uscc
        LIMIT ? OFFSET ?
    """, [*params, page_size, (page - 1) * page_size])
    return {"year": year, "run_id": run, "total": total, "page": page, "page_size": page_size, "items": items}
