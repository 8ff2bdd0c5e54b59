"""预警名单 (early warnings): advisory risks stored by ``screening warn --db``; never a rule status."""
from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from pydantic import BaseModel, Field

from ..auth import User
from ..db import one_snapshot, records, table_exists
from ..deps import CursorDep, allow
from ..schemas import FirmItem
from .common import ERRORS, township_scope

router = APIRouter(prefix="/api/v1/warnings", tags=["warnings"])

ADVISORY = "仅供参考：预警是模型估计的可能性，不改变任何规则判定；清单仍由规则认定。"
MAX_LIMIT = 500

WarnYearPath = Annotated[int, Path(ge=1900, le=2100,
                                   description="预警年度 Y：用截至 Y-1 年的数据，估计进入 Y+1 年度清单的可能性")]


class WarningItem(FirmItem):
    risk: float = Field(ge=0, le=1, description="进入 Y+1 年度清单的估计概率（0—1）")
    rank: int = Field(description="风险排名（1 为最高）：township 角色为本乡镇街道内的排名，其他角色为全县排名（见 rank_scope）")
    factors: str = Field(description="主要原因（中文，按对风险的影响从大到小，以“；”分隔）")


class WarningPage(BaseModel):
    year: int
    warn_id: str
    created_at: dt.datetime
    data_year: int = Field(description="所用数据的最新年度（Y-1）")
    target_list_year: int = Field(description="所预测的清单年度（Y+1）")
    model: str = Field(description="选用的模型")
    backtest: dict[str, Any] = Field(description="回测摘要：AUC、前 k 名精确率、Brier 分数及朴素基线")
    advisory: str = Field(examples=[ADVISORY])
    rank_scope: Literal["county", "township"] = Field(description="rank 的范围：county 全县，township 本乡镇街道")
    total: int
    limit: int
    offset: int
    items: list[WarningItem]


_RESPONSES = {**ERRORS, 404: {"description": "该年度还没有预警结果"}}


def _latest_warn(cursor, year: int) -> dict[str, Any]:
    rows = records(cursor, """
        SELECT warn_id, created_at, data_year, target_list_year, model, metrics FROM warn_runs
        WHERE year = ? ORDER BY created_at DESC, warn_id DESC LIMIT 1
    """, [year]) if table_exists(cursor, "warn_runs") else []
    if not rows:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"{year} 年度还没有预警结果，请先运行 screening warn --year {year} --db <本服务的数据库文件>")
    return rows[0]


def _summary(metrics: str) -> dict[str, Any]:
    bt = json.loads(metrics or "{}")
    if not bt:
        return {}
    chosen = bt["candidates"][bt["chosen"]]
    return {"test_list_year": bt["test_list_year"], "chosen": bt["chosen"],
            "auc": chosen["auc"], "precision_at": chosen["precision_at"], "brier": chosen["brier"],
            "baseline_auc": bt["baseline"]["auc"], "baseline_precision_at": bt["baseline"]["precision_at"],
            "note": bt.get("note")}


@router.get("/{year}", response_model=WarningPage, responses=_RESPONSES, operation_id="warnings-get",
            summary="某年度预警名单（仅供参考，最新一次预警）")
def get_warnings(
    year: WarnYearPath,
    cursor: CursorDep,
    user: Annotated[User, Depends(allow("admin", "analyst", "township"))],
    township: Annotated[str | None, Query(max_length=100, description="乡镇街道（须为预警名单中的乡镇街道）；"
                                                                     "township 角色只能看到本乡镇街道")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"每页条数，最多 {MAX_LIMIT}")] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="跳过的条数（从 0 开始）")] = 0,
) -> dict:
    """最新一次 `screening warn --year Y` 的结果，按风险从高到低排列，每行附主要原因。

    预警只是模型对企业进入下一年度清单可能性的估计，仅供参考，不改变任何规则判定。
    township 角色只看到本乡镇街道的企业，排名也只在本乡镇街道内计算（不透露全县位次）。"""
    own = user.township if user.role == "township" else None  # a township sees only itself
    with one_snapshot(cursor):
        run = _latest_warn(cursor, year)
        known = [] if own or not (township or "").strip() else [t for (t,) in cursor.execute(
            "SELECT DISTINCT township FROM warn_results WHERE warn_id = ? AND township IS NOT NULL",
            [run["warn_id"]]).fetchall()]
        township = township_scope(user, township, known)
        filters = [("warn_id = ?", run["warn_id"]), ("township = ?", township)]
        where = " AND ".join(condition for condition, value in filters if value)
        params = [value for _, value in filters if value]
        total = cursor.execute(f"SELECT count(*) FROM warn_results WHERE {where}", params).fetchall()[0][0]
        # a township never learns where its firms stand in the county: ranked among its own firms
        rank = "row_number() OVER (ORDER BY risk DESC, uscc)" if own else "rank"
        items = records(cursor, f"""
            SELECT uscc, name, township, industry_code, scale, risk, {rank} AS rank, factors
            FROM warn_results WHERE {where}
            ORDER BY risk DESC, uscc
            LIMIT ? OFFSET ?
        """, [*params, limit, offset])
    return {"year": year, "warn_id": run["warn_id"], "created_at": run["created_at"], "data_year": run["data_year"],
            "target_list_year": run["target_list_year"], "model": run["model"], "backtest": _summary(run["metrics"]),
            "advisory": ADVISORY, "rank_scope": "township" if own else "county", "total": total, "limit": limit,
            "offset": offset, "items": items}


def firm_warning(cursor, uscc: str, year: int) -> dict[str, Any] | None:
    """The firm's early warning from the newest warning run of ``year`` (the risk of entering the
    list of ``year + 1``), for its 一企一策 record: risk and reasons, marked advisory; no rank (a rank
    among the county is not a township's to see).  None when there is no warning run or no row."""
    if not table_exists(cursor, "warn_runs"):
        return None
    try:
        run = _latest_warn(cursor, year)
    except HTTPException:
        return None
    rows = records(cursor, "SELECT risk, factors FROM warn_results WHERE warn_id = ? AND uscc = ?",
                   [run["warn_id"], uscc])
    if not rows:
        return None
    return {**rows[0], "warn_id": run["warn_id"], "data_year": run["data_year"],
            "target_list_year": run["target_list_year"], "advisory": ADVISORY}
