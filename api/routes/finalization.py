"""定稿: the bureau decides on disputes, then freezes the year's final list.

Once a year is finalized, its list routes serve the finalized run; a run of that year stored
later is a trial (试算) and changes nothing, unless the admin stores it with
``replace_final`` (POST /api/v1/runs), which withdraws the finalization (kept whole in the
audit trail) so that the new run becomes the year's list, to be verified and finalized again.
See docs/service.md."""
from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from ..auth import User
from ..db import audit, finalized, one_snapshot, records, run_catalogue
from ..deps import CursorDep, allow
from ..schemas import Text
from .common import ERRORS, UsccPath, YearPath, run_for_year

router = APIRouter(prefix="/api/v1", tags=["finalization"])

CONFLICT = {409: {"description": "状态冲突：已定稿、没有待处理的异议，或仍有未核实的企业"}}


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    year: int = Field(ge=2000, le=2100, description="清单年度")
    decision: Literal["upheld", "rejected"] = Field(description="upheld：异议成立，企业不列入定稿清单；rejected：驳回异议，企业列入")
    note: Text(2000) | None = None


class FinalizeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: Text(2000) | None = None
    allow_unresolved: StrictBool = Field(default=False, description="为 true 时，未核实或异议未处理的企业不列入定稿清单，照常定稿")


# each listed firm of the run with its latest verification and the decision on that verification
_STANDING = """
WITH latest_v AS (
    SELECT uscc, verification_id, outcome FROM verifications WHERE list_year = ?
    QUALIFY row_number() OVER (PARTITION BY uscc ORDER BY created_at DESC, verification_id DESC) = 1
),
latest_d AS (
    SELECT uscc, verification_id, decision FROM dispute_decisions WHERE list_year = ?
    QUALIFY row_number() OVER (PARTITION BY uscc ORDER BY decided_at DESC, decision_id DESC) = 1
)
SELECT l.* EXCLUDE (run_id), v.verification_id,
       CASE WHEN v.outcome IS NULL THEN 'unverified'
            WHEN v.outcome = 'confirmed' THEN 'confirmed'
            WHEN d.decision = 'rejected' THEN 'dispute_rejected'
            WHEN d.decision = 'upheld' THEN 'dispute_upheld'
            ELSE 'dispute_pending' END AS standing
FROM run_list l
LEFT JOIN latest_v v USING (uscc)
LEFT JOIN latest_d d ON d.uscc = l.uscc AND d.verification_id = v.verification_id
WHERE l.run_id = ?
"""


def standing(cursor, year: int, run: str) -> list[dict]:
    return records(cursor, _STANDING, [year, year, run])


@router.post("/enterprises/{uscc}/dispute-decisions", status_code=status.HTTP_201_CREATED,
             responses={**ERRORS, **CONFLICT}, operation_id="finalization-decide",
             summary="经信局处理乡镇街道提出的异议（成立或驳回）")
def decide(uscc: UsccPath, body: DecisionIn, cursor: CursorDep,
           user: Annotated[User, Depends(allow("admin"))]) -> dict:
    if finalized(cursor, body.year):
        raise HTTPException(status.HTTP_409_CONFLICT, f"{body.year} 年度清单已定稿，不能再处理异议")
    run = run_for_year(cursor, body.year)
    code = uscc.strip().upper()
    firm = [f for f in standing(cursor, body.year, run) if f["uscc"] == code]
    if not firm:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"该企业不在 {body.year} 年度清单中")
    if firm[0]["standing"] not in ("dispute_pending", "dispute_upheld", "dispute_rejected"):
        raise HTTPException(status.HTTP_409_CONFLICT, "该企业最近一次核实不是异议，无需处理")
    record = {"decision_id": uuid.uuid4().hex, "uscc": code, "year": body.year,
              "verification_id": firm[0]["verification_id"], "decision": body.decision, "note": body.note,
              "decided_by": user.name, "decided_at": dt.datetime.now(dt.timezone.utc)}
    cursor.execute("BEGIN TRANSACTION")
    cursor.execute("INSERT INTO dispute_decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   [record["decision_id"], code, body.year, record["verification_id"], body.decision, body.note,
                    user.name, record["decided_at"]])
    audit(cursor, user, "decide_dispute", "enterprise", f"{body.year}/{code}",
          {"standing": firm[0]["standing"]}, record)
    cursor.execute("COMMIT")
    return record


@router.post("/lists/{year}/finalize", status_code=status.HTTP_201_CREATED, responses={**ERRORS, **CONFLICT},
             operation_id="finalization-finalize", summary="定稿：冻结该年度的最终清单")
def finalize(year: YearPath, body: FinalizeIn, cursor: CursorDep,
             user: Annotated[User, Depends(allow("admin"))]) -> dict:
    """列入定稿清单的：核实确认的企业，以及异议被驳回的企业。异议成立的企业不列入。
    仍有未核实或异议未处理的企业时返回 409，除非 allow_unresolved 为 true。定稿后不可更改。"""
    # the run, its standings and the final list: read and written in one transaction (one state)
    cursor.execute("BEGIN TRANSACTION")
    try:
        summary = _finalize(cursor, year, body, user)
    except BaseException:
        cursor.execute("ROLLBACK")
        raise
    cursor.execute("COMMIT")
    return summary


def _finalize(cursor, year: int, body: FinalizeIn, user: User) -> dict:
    if finalized(cursor, year):
        raise HTTPException(status.HTTP_409_CONFLICT, f"{year} 年度清单已于此前定稿，定稿结果不可更改")
    run = run_for_year(cursor, year)
    firms = standing(cursor, year, run)
    counts = {k: sum(f["standing"] == k for f in firms)
              for k in ("confirmed", "dispute_rejected", "dispute_upheld", "dispute_pending", "unverified")}
    if (counts["unverified"] or counts["dispute_pending"]) and not body.allow_unresolved:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"还有 {counts['unverified']} 家未核实、{counts['dispute_pending']} 家异议未处理；"
                            "处理完毕后再定稿，或设 allow_unresolved 为 true")
    final = [f for f in firms if f["standing"] in ("confirmed", "dispute_rejected")]
    now = dt.datetime.now(dt.timezone.utc)
    for f in final:
        entry = {k: v for k, v in f.items() if k not in ("standing", "verification_id")}
        cursor.execute("INSERT INTO final_list VALUES (?, ?, ?, ?, ?)",
                       [year, f["uscc"], f["standing"], f["verification_id"],
                        json.dumps(entry, ensure_ascii=False, default=str)])
    cursor.execute("INSERT INTO finalizations VALUES (?, ?, ?, ?, ?, ?)", [year, run, len(final), body.note, user.name, now])
    summary = {"year": year, "run_id": run, "final": len(final), "counts": counts, "finalized_by": user.name,
               "finalized_at": now}
    audit(cursor, user, "finalize", "list", str(year), None, summary)
    return summary


@router.get("/lists/{year}/final", responses=ERRORS, operation_id="finalization-get",
            summary="定稿清单（定稿前为 404）")
def final_list(year: YearPath, cursor: CursorDep,
               user: Annotated[User, Depends(allow("admin", "analyst", "township"))]) -> dict:
    with one_snapshot(cursor):  # a replacement of the final list cannot fall between the two reads
        info = finalized(cursor, year)
        if info is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"{year} 年度清单尚未定稿")
        rows = records(cursor, "SELECT uscc, basis, entry FROM final_list WHERE list_year = ? ORDER BY uscc", [year])
    items = [{**json.loads(r["entry"]), "basis": r["basis"]} for r in rows]
    items = [i for i in items if user.sees(i.get("township"))]
    return {"year": year, "run_id": info["run_id"], "finalized_at": info["finalized_at"], "total": len(items),
            "items": items}


@router.get("/audit", responses=ERRORS, operation_id="audit-list", summary="操作审计记录（仅 admin）")
def audit_log(cursor: CursorDep, _user: Annotated[User, Depends(allow("admin"))],
              page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
              page_size: Annotated[int, Query(ge=1, le=500)] = 100) -> dict:
    total = cursor.execute("SELECT count(*) FROM audit_log").fetchall()[0][0]
    items = records(cursor, "SELECT * FROM audit_log ORDER BY logged_at DESC, audit_id LIMIT ? OFFSET ?",
                    [page_size, (page - 1) * page_size])
    for item in items:
        item["before"] = json.loads(item["before"]) if item["before"] else None
        item["after"] = json.loads(item["after"]) if item["after"] else None
    return {"total": total, "items": items}


def settle_run(cursor, user: User, run_id: str, replace_final: bool) -> dict:
    """What a newly stored run is to its list year, for the response of POST /runs: the
    year's list; or, when the year is finalized, a trial (试算) that changes nothing — unless
    ``replace_final``, which withdraws the finalization (audited) so that the run becomes the
    year's list."""
    catalogue = run_catalogue(cursor)
    year = catalogue.runs[run_id].list_year
    final_run = catalogue.finalized.get(year)
    if final_run is not None and replace_final:
        _withdraw(cursor, user, year, run_id)
        return {"trial": False, "replaced_final": True, "served_run_id": run_id,
                "notice": f"已替换 {year} 年度定稿清单：原定稿（运行 {final_run}）已撤销并记入审计记录，"
                          f"本次筛选成为 {year} 年度清单；请重新属地核实并定稿"}
    if catalogue.is_trial(run_id):
        return {"trial": True, "replaced_final": False, "served_run_id": final_run,
                "notice": f"{year} 年度清单已定稿：本次筛选仅作试算保存，不改变各乡镇街道看到的清单"
                          f"（仍为定稿所依据的运行 {final_run}）；如需以本次结果替换定稿清单，"
                          "请以 replace_final: true 重新提交"}
    return {"trial": False, "replaced_final": False, "served_run_id": catalogue.served(year).run_id, "notice": None}


def _withdraw(cursor, user: User, year: int, run_id: str) -> None:
    """Withdraw the year's finalization and final list, in one transaction; the audit line
    keeps them (the final list's entries are the finalized run's rows, which stay stored)."""
    cursor.execute("BEGIN TRANSACTION")
    try:
        info = finalized(cursor, year)
        entries = records(cursor, "SELECT uscc, basis, verification_id FROM final_list WHERE list_year = ? "
                                  "ORDER BY uscc", [year])
        cursor.execute("DELETE FROM final_list WHERE list_year = ?", [year])
        cursor.execute("DELETE FROM finalizations WHERE list_year = ?", [year])
        audit(cursor, user, "replace_final", "list", str(year), {"finalization": info, "final_list": entries},
              {"year": year, "run_id": run_id})
        cursor.execute("COMMIT")
    except BaseException:
        cursor.execute("ROLLBACK")
        raise
