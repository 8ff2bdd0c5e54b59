from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status

from ..auth import User
from ..db import audit, finalized, firm_rows, records, table_exists
from ..deps import CursorDep, allow
from ..schemas import EnterpriseRecord, Verification, VerificationIn
from .common import ERRORS, run_for_year
from .plans import load_plan

router = APIRouter(prefix="/api/v1/enterprises", tags=["enterprises"])

_NOT_FOUND = "未找到该企业"


def _latest_year(cursor) -> int:
    if not table_exists(cursor, "runs"):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "还没有任何筛选结果")
    return cursor.execute("SELECT max(list_year) FROM runs").fetchall()[0][0]


def _profile(cursor, run: str, uscc: str, user: User) -> dict:
    rows = records(cursor, f"SELECT * EXCLUDE (run_id) FROM {firm_rows('run_enterprises')}", [uscc, run])
    # a firm of another township is indistinguishable from a firm that does not exist
    if not rows or not user.sees(rows[0]["township"]):
        raise HTTPException(status.HTTP_404_NOT_FOUND, _NOT_FOUND)
    return rows[0]


def _verifications(cursor, uscc: str, year: int) -> list[dict]:
    return records(cursor, """
        SELECT verification_id, uscc, list_year AS year, run_id, outcome, reason, note, created_by, created_at
        FROM verifications WHERE uscc = ? AND list_year = ? ORDER BY created_at, verification_id
    """, [uscc, year])


def _panels(cursor, uscc: str) -> list[dict]:
    """The firm's stored panel rows in every run, with each run's list year and time (one index scan)."""
    return records(cursor, """
        SELECT e.*, r.list_year, r.created_at AS run_created_at
        FROM (SELECT * FROM run_enterprises WHERE uscc = ? OFFSET 0) e
        JOIN runs r USING (run_id)
    """, [uscc])


def _indicators(panels: list[dict]) -> list[dict]:
    """Every data year the runs hold for the firm (the newest run wins for a year): scale, tax,
    land, 亩均税收, energy and the official 亩均 grade — its grade history too."""
    by_year: dict[int, tuple] = {}
    for p in panels:
        for year, sfx, energy in ((p["list_year"] - 2, "prev", None), (p["list_year"] - 1, "last", p["energy_last"])):
            row = {"year": year, "scale": p[f"scale_{sfx}"], "tax_paid": p[f"tax_{sfx}"], "land_mu": p[f"land_{sfx}"],
                   "tax_per_mu": p[f"tax_per_mu_{sfx}"], "energy_tce": energy, "grade": p[f"grade_{sfx}"]}
            rank = (p["run_created_at"], energy is not None)
            if year not in by_year or rank > by_year[year][0]:
                by_year[year] = (rank, row)
    return [row for _, (_, row) in sorted(by_year.items())]


@router.get("/{uscc}", response_model=EnterpriseRecord, responses=ERRORS, operation_id="enterprises-get",
            summary="一企一策档案：企业概况、各条规则判定与依据、属地核实记录")
def get_enterprise(
    uscc: str,
    cursor: CursorDep,
    user: Annotated[User, Depends(allow("admin", "analyst", "township"))],
    year: Annotated[int | None, Query(ge=1900, le=2100, description="清单年度（默认：最近有筛选结果的年度）")] = None,
) -> dict:
    year = year if year is not None else _latest_year(cursor)
    run = run_for_year(cursor, year)
    code = uscc.strip().upper()
    panels = _panels(cursor, code)
    profile = next((p for p in panels if p["run_id"] == run), None)
    # a firm of another township is indistinguishable from a firm that does not exist
    if profile is None or not user.sees(profile["township"]):
        raise HTTPException(status.HTTP_404_NOT_FOUND, _NOT_FOUND)
    profile = {k: v for k, v in profile.items() if k not in ("run_id", "list_year", "run_created_at")}
    results = records(cursor, f"SELECT * EXCLUDE (run_id, list_year, uscc) FROM {firm_rows('run_results')}",
                      [code, run])
    listed_in = records(cursor, "SELECT * EXCLUDE (uscc) FROM run_list WHERE uscc = ?", [code])
    entry = [{k: v for k, v in r.items() if k not in ("run_id", "list_year")} for r in listed_in if r["run_id"] == run]
    earlier = sum(1 for r in listed_in if r["list_year"] == year and r["run_id"] != run)
    decisions = records(cursor, "SELECT * EXCLUDE (uscc) FROM dispute_decisions WHERE uscc = ? AND list_year = ? "
                                "ORDER BY decided_at", [code, year])
    final = cursor.execute("SELECT basis FROM final_list WHERE list_year = ? AND uscc = ?", [year, code]).fetchall()
    changes = records(cursor, "SELECT logged_at, user_name, action, entity, entity_key, after FROM audit_log "
                              "WHERE entity_key LIKE '%/' || ? ORDER BY logged_at", [code])
    return {**profile, "year": year, "run_id": run, "listed": bool(entry), "list_entry": entry[0] if entry else None,
            "indicators": _indicators(panels), "change_history": changes,
            "no_longer_flagged": not entry and earlier > 0,
            "results": results, "verifications": _verifications(cursor, code, year), "dispute_decisions": decisions,
            "finalized": finalized(cursor, year) is not None, "on_final_list": bool(final),
            "plan": load_plan(cursor, year, code)}


@router.post("/{uscc}/verifications", response_model=Verification, status_code=status.HTTP_201_CREATED,
             responses={**ERRORS, 422: {"description": "请求内容无效，或企业不在该年度清单中"}},
             operation_id="enterprises-verify", summary="记录属地核实结果（确认或提出异议）")
def add_verification(
    uscc: str,
    body: VerificationIn,
    cursor: CursorDep,
    user: Annotated[User, Depends(allow("admin", "township"))],
) -> dict:
    run = run_for_year(cursor, body.year)
    code = _profile(cursor, run, uscc.strip().upper(), user)["uscc"]
    if finalized(cursor, body.year):
        raise HTTPException(status.HTTP_409_CONFLICT, f"{body.year} 年度清单已定稿，不能再提交核实结果")
    if not cursor.execute(f"SELECT 1 FROM {firm_rows('run_list')}", [code, run]).fetchall():
        raise HTTPException(422, f"该企业不在 {body.year} 年度清单中，无需属地核实")
    record = {
        "verification_id": uuid.uuid4().hex, "uscc": code, "year": body.year, "run_id": run,
        "outcome": body.outcome, "reason": (body.reason or "").strip() or None, "note": body.note,
        "created_by": user.name, "created_at": dt.datetime.now(dt.timezone.utc),
    }
    cursor.execute("BEGIN TRANSACTION")
    cursor.execute("INSERT INTO verifications VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [record["verification_id"], code, body.year, run, record["outcome"], record["reason"],
                    record["note"], record["created_by"], record["created_at"]])
    audit(cursor, user, "verify", "enterprise", f"{body.year}/{code}", None, record)
    cursor.execute("COMMIT")
    return record
