from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import OrderedDict, defaultdict
from typing import Annotated

import duckdb
from fastapi import APIRouter, Depends, HTTPException, Query, status

from screening.anomaly import ADVISORY

from ..auth import User
from ..db import audit, finalized, firm_results, firm_rows, records
from ..deps import CursorDep, ReadModelDep, allow
from ..readmodel import ReadModel, anomalies_checked
from ..schemas import EnterpriseRecord, Verification, VerificationIn
from .common import ERRORS, UsccPath, run_for_year, served_run
from .warnings import firm_warning

router = APIRouter(prefix="/api/v1/enterprises", tags=["enterprises"])

_NOT_FOUND = "未找到该企业"


def _panels(model: ReadModel, cursor, uscc: str, runs: list[str]) -> list[dict]:
    """The firm's stored panel rows in the given runs, with each run's list year and time:
    from memory where the run is loaded, else one index scan."""
    rows, missing = [], []
    for run in runs:
        frames = model.frames(run)
        if frames is None:
            missing.append(run)
        else:
            rows += frames.enterprises.rows(uscc)
    if missing:
        rows += records(cursor, """
            SELECT e.* EXCLUDE (firm), r.list_year, r.created_at AS run_created_at
            FROM (SELECT * FROM run_enterprises WHERE uscc = ? OFFSET 0) e
            JOIN runs r USING (run_id)
            WHERE list_contains(?, run_id)
        """, [uscc, missing])
    return rows


def _results(model: ReadModel, cursor, uscc: str, run: str) -> list[dict]:
    frames = model.frames(run)
    if frames is not None:
        return frames.results.rows(uscc, drop=("uscc",))
    return [{k: v for k, v in row.items() if k not in ("run_id", "list_year", "uscc")}
            for row in firm_results(cursor, uscc, run)]


def _anomaly(model: ReadModel, cursor, uscc: str, run: str, year: int) -> dict | None:
    """The run's 数据核查提示 for the firm: advisory, never a rule status.  None when the run
    predates the check; a checked run keeps a row for every listed and every flagged firm."""
    frames = model.frames(run)
    if frames is not None:
        rows = None if frames.anomalies is None else frames.anomalies.rows(uscc, drop=("uscc",))
    else:
        try:  # the table is missing in older databases
            rows = records(cursor, f"SELECT * EXCLUDE (run_id, uscc) FROM {firm_rows('run_anomalies')}", [uscc, run])
        except duckdb.CatalogException:
            rows = None
    if rows is None:
        return None
    if rows:
        row = rows[0]
    elif frames.checked if frames is not None else anomalies_checked(cursor, run):
        row = {"anomaly_score": None, "flagged": False, "indicator_ids": None, "indicators": None}
    else:
        return None
    row = {k: row[k] for k in ("anomaly_score", "flagged", "indicator_ids", "indicators")}
    ids = row["indicator_ids"].split(";") if row["indicator_ids"] else []
    return {"year": year, "run_id": run, **row, "indicator_ids": ids, "advisory": ADVISORY}


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
            summary="一企一策档案：企业概况、各条规则判定与依据、属地核实记录、数据核查提示（仅供参考）")
def get_enterprise(
    uscc: UsccPath,
    cursor: CursorDep,
    model: ReadModelDep,
    user: Annotated[User, Depends(allow("admin", "analyst", "township"))],
    year: Annotated[int | None, Query(ge=1900, le=2100, description="清单年度（默认：有筛选结果的最近年度；只有数据够不到的年度时除外）")] = None,
) -> dict:
    catalogue = model.catalogue(cursor)  # one catalogue: the run and the history agree
    year = year if year is not None else catalogue.default_year()
    if year is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "还没有任何筛选结果")
    run = served_run(catalogue, year)
    code = uscc.strip().upper()
    # the run each list year serves: together they hold every data year (indicator history)
    panels = _panels(model, cursor, code, [r.run_id for r in catalogue.served_runs.values()])
    profile = next((p for p in panels if p["run_id"] == run.run_id), None)
    # a firm of another township is indistinguishable from a firm that does not exist
    if profile is None or not user.sees(profile["township"]):
        raise HTTPException(status.HTTP_404_NOT_FOUND, _NOT_FOUND)
    profile = {k: v for k, v in profile.items() if k not in ("run_id", "list_year", "run_created_at")}
    entry = model.run_list(cursor, run).entry(code)
    # listed by an earlier run of the year, not by the one the year serves
    dropped = entry is None and bool(
        model.listed_in(cursor, catalogue).runs_of(code) & {r.run_id for r in catalogue.earlier(run)})
    state = model.service_state(cursor, year)
    return {**profile, "year": year, "run_id": run.run_id, "listed": entry is not None, "list_entry": entry,
            "indicators": _indicators(panels), "change_history": model.changes(cursor, code),
            "no_longer_flagged": dropped,
            "results": _results(model, cursor, code, run.run_id),
            "anomaly": _anomaly(model, cursor, code, run.run_id, year),
            "verifications": state.verifications.get(code, []),
            "evidence": evidence_of(cursor, code, year),
            "dispute_decisions": state.decisions.get(code, []),
            "finalized": state.finalization is not None, "on_final_list": code in state.final_basis,
            "plan": state.plans.get(code),
            "key_energy_user": _key_energy_user(cursor, run.run_id, code),
            "early_warning": firm_warning(cursor, code, year)}


#: each run's 重点用能单位 rows by firm: stored runs never change, so a run's are read (and its
#: record's JSON parsed) once, not on every record request (that parse cost ~35 ms on 1 M firms)
_KEY_USERS: OrderedDict[str, tuple[dict, dict[str, list[dict]]] | None] = OrderedDict()
_KEY_USERS_RUNS = 4


def _key_users_of(cursor, run: str) -> tuple[dict, dict[str, list[dict]]] | None:
    if run in _KEY_USERS:
        return _KEY_USERS[run]
    found = cursor.execute("""
        SELECT json_extract(record, '$.key_energy_users') FROM runs WHERE run_id = ?
    """, [run]).fetchall()
    summary = json.loads(found[0][0]) if found and found[0][0] else None
    by_firm: dict[str, list[dict]] = defaultdict(list)
    for r in (summary or {}).get("rows", []):
        by_firm[r.get("uscc")].append({k: v for k, v in r.items() if k != "uscc"})
    entry = (summary, dict(by_firm)) if summary else None
    _KEY_USERS[run] = entry
    while len(_KEY_USERS) > _KEY_USERS_RUNS:
        _KEY_USERS.popitem(last=False)
    return entry


def _key_energy_user(cursor, run: str, uscc: str) -> dict | None:
    """The firm's 重点用能单位 rows recorded by the run (screening.projects.key_energy_summary):
    energy, energy per 万元 of value added and whether it rose, per data year; None when the firm
    is not one (or the run predates the feature)."""
    entry = _key_users_of(cursor, run)
    rows = entry[1].get(uscc) if entry else None
    if not rows:
        return None
    summary = entry[0]
    return {"threshold_tce": summary["threshold_tce"], "citation": summary["citation"], "years": rows,
            "rising": bool(rows[-1].get("rising")), "note": rows[-1]["note"], "advisory": "仅供参考"}


def evidence_of(cursor, uscc: str, year: int) -> list[dict]:
    """The firm's 属地核实 evidence files for the list year, oldest first (no content; see
    api/routes/evidence.py)."""
    return records(cursor, """SELECT evidence_id, media_type, size_bytes, sha256, original_name, note, created_by, created_at
                              FROM evidence_files WHERE uscc = ? AND list_year = ? ORDER BY created_at, evidence_id""",
                   [uscc, year])


def _profile(cursor, run: str, uscc: str, user: User) -> dict:
    rows = records(cursor, f"SELECT * EXCLUDE (run_id, firm) FROM {firm_rows('run_enterprises')}", [uscc, run])
    # a firm of another township is indistinguishable from a firm that does not exist
    if not rows or not user.sees(rows[0]["township"]):
        raise HTTPException(status.HTTP_404_NOT_FOUND, _NOT_FOUND)
    return rows[0]


@router.post("/{uscc}/verifications", response_model=Verification, status_code=status.HTTP_201_CREATED,
             responses={**ERRORS, 422: {"description": "请求内容无效，或企业不在该年度清单中"}},
             operation_id="enterprises-verify", summary="记录属地核实结果（确认或提出异议）")
def add_verification(
    uscc: UsccPath,
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
