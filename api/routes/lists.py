from __future__ import annotations

import re
from typing import Annotated, Literal

import polars as pl
from fastapi import APIRouter, Depends, HTTPException, Query

from screening.ingest.header import INVISIBLE_CHARS
from screening.uscc import as_typed

from ..auth import User
from ..deps import CursorDep, ReadModelDep, allow
from ..schemas import ListPage
from .common import ERRORS, YearPath, check_choice, served_run, township_scope

_INVISIBLE = re.compile(f"[{INVISIBLE_CHARS}]")

router = APIRouter(prefix="/api/v1/lists", tags=["lists"])

_INDUSTRY = re.compile(r"[0-9]{1,4}")

# sort keys: (column, descending); every order ends with the code, nulls last
_ORDER = {
    "township": ("township", False), "uscc": ("uscc", False), "tax_per_mu": ("tax_per_mu", False),
    "land_mu": ("land_mu", True), "energy_tce": ("energy_tce", True), "hit_count": ("hit_count", True),
}


@router.get("/{year}", response_model=ListPage, responses=ERRORS, operation_id="lists-get",
            summary="某年度整治企业清单（该年度的清单：定稿后为定稿所依据的筛选，定稿前为最新一次筛选）")
def get_list(
    year: YearPath,
    cursor: CursorDep,
    model: ReadModelDep,
    user: Annotated[User, Depends(allow("admin", "analyst", "township"))],
    township: Annotated[str | None, Query(description="乡镇街道（须为该次筛选中的乡镇街道）；township 角色只能看到本乡镇街道")] = None,
    rule: Annotated[str | None, Query(description="只列命中该规则的企业，如 above_scale_low_tax_per_mu")] = None,
    industry: Annotated[str | None, Query(max_length=4, description="行业代码或其前缀（1—4 位数字），如 38（大类）或 3823")] = None,
    verification: Annotated[Literal["pending", "confirmed", "disputed"] | None,
                            Query(description="属地核实状态")] = None,
    disposition: Annotated[Literal["兼并重组", "整体腾退", "搬迁入园", "改造提升"] | None,
                           Query(description="建议处置方式")] = None,
    sort: Annotated[Literal["township", "uscc", "tax_per_mu", "land_mu", "energy_tce", "hit_count"],
                    Query(description="排序字段（数值字段按从大到小，tax_per_mu 按从小到大）")] = "township",
    q: Annotated[str | None, Query(max_length=100, description="按企业名称或统一社会信用代码搜索（包含该文字即可）")] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000, description="页码，从 1 开始")] = 1,
    page_size: Annotated[int, Query(ge=1, le=500, description="每页条数，最多 500")] = 50,
) -> dict:
    """清单按乡镇街道和统一社会信用代码排序，每行附属地核实状态。

    该年度的清单：定稿（POST /lists/{year}/finalize）之后是定稿所依据的那次筛选，此后同一年度
    的新筛选只作试算保存，不改变清单；定稿之前是该年度最新一次筛选。未知的规则编号、乡镇街道
    或状态返回 422，并列出可选值。

    One snapshot: the run is picked once from the catalogue and every row, filter (the caller's
    township included) and total comes from that run's immutable list (api/readmodel.py)."""
    catalogue = model.catalogue(cursor)
    run = served_run(catalogue, year)
    snapshot = model.run_list(cursor, run)
    township = township_scope(user, township, snapshot.townships)  # a township user: always its own
    rule, industry, q = (v.strip() or None if v is not None else None for v in (rule, industry, q))
    check_choice(rule, snapshot.rule_ids, "规则编号")
    if industry is not None and not _INDUSTRY.fullmatch(industry):
        raise HTTPException(422, f"行业代码“{industry}”无效：应为 1—4 位数字，如 38 或 3823")
    outcomes = model.service_state(cursor, year).outcomes
    conditions = [
        pl.col("township") == township if township else None,
        pl.col("rule_ids").str.split(";").list.contains(rule) if rule else None,
        pl.col("industry_code").str.starts_with(industry) if industry else None,
        pl.col("suggested_disposition") == disposition if disposition else None,
        _status_is(verification, outcomes) if verification else None,
        _matches(q) if q else None,
    ]
    column, descending = _ORDER[sort]
    total, items = snapshot.page([c for c in conditions if c is not None], column, descending,
                                 (page - 1) * page_size, page_size)
    for item in items:
        item["verification_status"] = outcomes.get(item["uscc"], "pending")
    return {"year": year, "run_id": run.run_id, "finalized": year in catalogue.finalized,
            "total": total, "page": page, "page_size": page_size, "items": items}


def _status_is(status: str, outcomes: dict[str, str]) -> pl.Expr:
    """Firms whose latest verification outcome is ``status`` ('pending': none yet)."""
    if status == "pending":
        return ~pl.col("uscc").is_in(list(outcomes))
    return pl.col("uscc").is_in([uscc for uscc, outcome in outcomes.items() if outcome == status])


def _matches(text: str) -> pl.Expr:
    """Firms whose name contains ``text``, or whose code contains it as a person types or pastes a
    code (any letter case, full-width, with spaces or invisible characters: :func:`as_typed`)."""
    name = _INVISIBLE.sub("", text).strip()
    return (pl.col("name").fill_null("").str.contains(name, literal=True)
            | pl.col("uscc").str.contains(as_typed(text), literal=True))
