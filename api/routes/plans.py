"""一企一策 plans for the firms on the final list: measures, departments, expected land and
energy freed, milestones, progress, completion.  Edits carry a version (ETag / If-Match):
a write based on a stale version gets 409, never a silent overwrite."""
from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Annotated, Literal

import duckdb
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from screening import clock

from ..auth import User
from ..db import audit, finalized, records
from ..deps import CursorDep, allow
from ..readmodel import PROGRESS_SQL, plan_record
from ..schemas import Text
from .common import ERRORS, UsccPath

router = APIRouter(prefix="/api/v1/enterprises", tags=["plans"])

CONFLICT = {409: {"description": "版本冲突（If-Match 与当前版本不符）、缺少 If-Match，或企业不在定稿清单中"}}
DISPOSITIONS = ("兼并重组", "整体腾退", "搬迁入园", "改造提升")


class Milestone(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Text(200, 1, examples=["完成节能诊断"])
    due: dt.date = Field(description="到期日期")
    done: StrictBool = False


class PlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "disposition": "改造提升", "measures": "更换高效电机，实施节能技改", "lead": "市经信局",
        "cooperating": ["市发改局"], "expected_land_mu": 0, "expected_energy_tce": 120.5,
        "milestones": [{"title": "完成节能诊断", "due": "2022-09-30"}]}]})
    disposition: Literal["兼并重组", "整体腾退", "搬迁入园", "改造提升"]
    measures: Text(4000, 1, description="具体整治措施")
    lead: Text(100, 1, description="牵头单位")
    cooperating: list[Text(100, 1)] = Field(default_factory=list, max_length=20, description="配合单位")
    expected_land_mu: float = Field(ge=0, le=1e6, description="预计腾出用地（亩）")
    expected_energy_tce: float = Field(ge=0, le=1e9, description="预计腾出用能（吨标准煤）")
    milestones: list[Milestone] = Field(default_factory=list, max_length=50)


class ProgressIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date: dt.date = Field(description="进展日期")
    note: Text(4000, 1, description="进展情况")


def _etag(version: int) -> str:
    return f'"{version}"'


def _on_final_list(cursor, year: int, uscc: str, user: User) -> dict:
    if not finalized(cursor, year):
        raise HTTPException(status.HTTP_409_CONFLICT, f"{year} 年度清单尚未定稿，定稿后才能制定一企一策方案")
    rows = records(cursor, "SELECT entry FROM final_list WHERE list_year = ? AND uscc = ?", [year, uscc])
    entry = json.loads(rows[0]["entry"]) if rows else None
    if entry is None or not user.sees(entry.get("township")):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"该企业不在 {year} 年度定稿清单中")
    return entry


def load_plan(cursor, year: int, uscc: str) -> dict | None:
    rows = records(cursor, "SELECT * FROM plans WHERE list_year = ? AND uscc = ?", [year, uscc])
    if not rows:
        return None
    return plan_record(rows[0], records(cursor, PROGRESS_SQL.format(where="list_year = ? AND uscc = ?"), [year, uscc]))


def _write(cursor, year: int, uscc: str, user: User, plan: dict, status_: str, completed_at, if_match: str | None,
           action: str) -> dict:
    before = load_plan(cursor, year, uscc)
    now = dt.datetime.now(dt.timezone.utc)
    body = json.dumps(plan, ensure_ascii=False, default=str)
    try:
        cursor.execute("BEGIN TRANSACTION")
        if before is None:
            if if_match not in (None, "*"):
                raise HTTPException(status.HTTP_409_CONFLICT, "方案尚不存在，If-Match 无对应版本")
            cursor.execute("INSERT INTO plans VALUES (?, ?, ?, ?, ?, 1, ?, ?)",
                           [year, uscc, body, status_, completed_at, user.name, now])
        else:
            if if_match is None:
                raise HTTPException(status.HTTP_409_CONFLICT, "修改已有方案须带 If-Match 请求头（取自上次读取的 ETag）")
            expected = if_match.strip().strip('"')
            updated = cursor.execute(
                "UPDATE plans SET plan = ?, status = ?, completed_at = ?, version = version + 1, updated_by = ?, "
                "updated_at = ? WHERE list_year = ? AND uscc = ? AND CAST(version AS VARCHAR) = ? RETURNING version",
                [body, status_, completed_at, user.name, now, year, uscc, expected]).fetchall()
            if not updated:
                raise HTTPException(status.HTTP_409_CONFLICT,
                                    f"方案已被他人修改（当前版本 {before['version']}），请重新读取后再提交")
        after = load_plan(cursor, year, uscc)
        audit(cursor, user, action, "plan", f"{year}/{uscc}", before, after)
        cursor.execute("COMMIT")
    except HTTPException:
        cursor.execute("ROLLBACK")
        raise
    except duckdb.TransactionException:
        # another request changed the same plan at the same moment: its write won
        cursor.execute("ROLLBACK")
        raise HTTPException(status.HTTP_409_CONFLICT, "方案正被同时修改，本次提交未生效，请重新读取后再提交") from None
    return after


@router.put("/{uscc}/plan", responses={**ERRORS, **CONFLICT, 200: {"description": "已保存；响应头 ETag 为新版本"}},
            operation_id="plans-put", summary="制定或修改一企一策整治方案（仅 admin）")
def put_plan(uscc: UsccPath, body: PlanIn, response: Response, cursor: CursorDep,
             user: Annotated[User, Depends(allow("admin"))],
             year: Annotated[int, Query(ge=2000, le=2100, description="清单年度")],
             if_match: Annotated[str | None, Header(description="修改已有方案时必填：上次读取的 ETag")] = None) -> dict:
    code = uscc.strip().upper()
    _on_final_list(cursor, year, code, user)
    current = load_plan(cursor, year, code)
    if current and current["status"] == "completed":
        raise HTTPException(status.HTTP_409_CONFLICT, "方案已完成，不能再修改")
    plan = _write(cursor, year, code, user, body.model_dump(mode="json"), "in_progress", None, if_match, "put_plan")
    response.headers["ETag"] = _etag(plan["version"])
    return plan


@router.get("/{uscc}/plan", responses=ERRORS, operation_id="plans-get", summary="一企一策整治方案（含进展）")
def get_plan(uscc: UsccPath, response: Response, cursor: CursorDep,
             user: Annotated[User, Depends(allow("admin", "analyst", "township"))],
             year: Annotated[int, Query(ge=2000, le=2100)]) -> dict:
    code = uscc.strip().upper()
    _on_final_list(cursor, year, code, user)
    plan = load_plan(cursor, year, code)
    if plan is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "尚未制定方案")
    response.headers["ETag"] = _etag(plan["version"])
    return plan


@router.post("/{uscc}/plan/progress", status_code=status.HTTP_201_CREATED, responses={**ERRORS, **CONFLICT},
             operation_id="plans-progress", summary="登记方案进展（admin，或本乡镇街道）")
def add_progress(uscc: UsccPath, body: ProgressIn, cursor: CursorDep,
                 user: Annotated[User, Depends(allow("admin", "township"))],
                 year: Annotated[int, Query(ge=2000, le=2100)]) -> dict:
    code = uscc.strip().upper()
    _on_final_list(cursor, year, code, user)
    if load_plan(cursor, year, code) is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "尚未制定方案，不能登记进展")
    record = {"progress_id": uuid.uuid4().hex, "date": body.date, "note": body.note, "created_by": user.name,
              "created_at": dt.datetime.now(dt.timezone.utc)}
    cursor.execute("BEGIN TRANSACTION")
    cursor.execute("INSERT INTO plan_progress VALUES (?, ?, ?, ?, ?, ?, ?)",
                   [record["progress_id"], year, code, body.date, body.note, user.name, record["created_at"]])
    audit(cursor, user, "plan_progress", "plan", f"{year}/{code}", None, record)
    cursor.execute("COMMIT")
    return record


@router.post("/{uscc}/plan/complete", responses={**ERRORS, **CONFLICT}, operation_id="plans-complete",
             summary="登记方案完成（仅 admin，须带 If-Match）")
def complete(uscc: UsccPath, response: Response, cursor: CursorDep, user: Annotated[User, Depends(allow("admin"))],
             year: Annotated[int, Query(ge=2000, le=2100)],
             if_match: Annotated[str | None, Header()] = None) -> dict:
    code = uscc.strip().upper()
    _on_final_list(cursor, year, code, user)
    current = load_plan(cursor, year, code)
    if current is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "尚未制定方案")
    body = {k: current[k] for k in PlanIn.model_fields}
    plan = _write(cursor, year, code, user, body, "completed", dt.datetime.now(dt.timezone.utc), if_match,
                  "complete_plan")
    response.headers["ETag"] = _etag(plan["version"])
    return plan


def plan_summary(cursor, year: int) -> dict:
    """Plans, completion, land and energy the plans expect to free, overdue milestones."""
    rows = records(cursor, "SELECT plan, status FROM plans WHERE list_year = ?", [year])
    today = clock.today()  # a milestone is overdue by China's calendar, not the server's
    plans = [(json.loads(r["plan"]), r["status"]) for r in rows]
    overdue = sum(1 for p, s in plans if s != "completed"
                  for m in p.get("milestones", []) if not m.get("done") and dt.date.fromisoformat(m["due"]) < today)
    return {
        "plans": len(plans),
        "completed": sum(s == "completed" for _, s in plans),
        "expected_land_mu": sum(p["expected_land_mu"] for p, _ in plans),
        "expected_energy_tce": sum(p["expected_energy_tce"] for p, _ in plans),
        # what completed plans freed (the same measure as screening.final's progress, issue 14)
        "freed_land_mu": sum(p["expected_land_mu"] for p, s in plans if s == "completed"),
        "freed_energy_tce": sum(p["expected_energy_tce"] for p, s in plans if s == "completed"),
        "overdue_milestones": overdue,
    }
