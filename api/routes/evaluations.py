"""亩均效益评价 as a year's workflow (docs/evaluation-workflow.md):

数据确认 (optional) → 测算 → 公示 → 异议 (through the township, inside the window only) →
复核 (one audited batch that computes the evaluation again) → 调档 → 定稿 (frozen, reproducible).

Scores are never computed here: a 测算 and a 复核 call screening.evaluation.evaluate() on the
stored inputs (screening.evaluation_workflow).  Every step writes one audit line (api.db.audit)
in the same transaction as its change.  A township user reaches only its own township's firms
(others are 404, as for the list)."""
from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator
from urllib.parse import quote

from screening import clock
from screening.errors import ScreeningError
from screening.evaluation import load_evaluation_inputs
from screening.evaluation_method import GRADES, load_method
from screening.evaluation_workflow import (CORRECTABLE, Correction, apply_corrections, blob_sha256, check_corrections,
                                           compute, final_grades_sha256, inputs_sha256, method_from_text,
                                           item_rows, original_values, pack_inputs, publication_workbook,
                                           unpack_inputs)

from ..auth import User
from ..db import audit, one_snapshot, records
from ..deps import CursorDep, allow
from ..schemas import Text
from .common import ERRORS, UsccPath, check_choice, data_folder, township_scope

router = APIRouter(prefix="/api/v1/evaluations", tags=["evaluations"])
_one_at_a_time = threading.Lock()
#: 公示 and 定稿 check "no other evaluation of the year is published / finalized" and then write:
#: two requests at once (each a thread of the one service process) must not both pass the check
_year_step = threading.Lock()

#: an evaluation's id: E, data year, time of the 测算, six hex digits
EvaluationIdPath = Annotated[str, Path(pattern=r"^E\d{4}-\d{8}T\d{6}-[0-9a-f]{6}$", description="评价编号",
                                       examples=["E2021-20261129T080000-0a1b2c"])]
STATUS_ZH = {"computed": "已测算（未公示）", "published": "公示中或公示结束待复核", "reviewed": "已复核",
             "finalized": "已定稿"}
CONFLICT = {409: {"description": "状态不允许此操作（如已定稿、不在公示期内、尚未复核）"}}
READERS = ("admin", "analyst", "township")
#: firms listed in a review's answer and audit line (all are counted; every score stays in eval_results)
CHANGES_LISTED = 500
#: the last year a date of this service may name (the data years stop at 2100 too)
LAST_YEAR = 2100


def today() -> dt.date:
    """The date people live in (China time): the publication window is counted in it."""
    return clock.today()


# ---------------------------------------------------------------- bodies

Corrections = Annotated[dict[str, float], Field(default_factory=dict, max_length=len(CORRECTABLE),
                                                description="更正的数据项及更正后的数值，如 {\"land_mu\": 12.5}；"
                                                            f"可更正：{'、'.join(CORRECTABLE)}")]


class _CorrectionsBody(BaseModel):
    @field_validator("corrections", check_fields=False)
    @classmethod
    def _checked(cls, value: dict[str, Any] | None) -> dict[str, float] | None:
        return None if value is None else check_corrections(value)


class EvaluationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"year": 2021, "method": "yueqing-default"}]})
    year: int = Field(ge=2000, le=2100, description="数据年度（评价哪一年的数据）")
    method: str = Field(min_length=1, max_length=200, description="随附的评价方法名（rules/methods/ 下），或数据根目录下的方法文件（.yaml）")
    data: str | None = Field(default=None, max_length=200, description="数据目录名，位于数据根目录（SCREENING_DATA_ROOT）之下，或上传得到的 upload-…（在上传目录 SCREENING_UPLOAD_DIR 中）")
    note: Text(2000) | None = None


class ConfirmationIn(_CorrectionsBody):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"outcome": "corrected", "corrections": {"land_mu": 12.5}, "note": "企业提供土地证"}]})
    outcome: Literal["confirmed", "corrected"] = Field(description="confirmed：企业确认数据无误；corrected：企业更正数据")
    corrections: Corrections
    note: Text(2000) | None = None


class PublishIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"start": "2026-12-01", "days": 7}]})
    start: dt.date | None = Field(default=None, description="公示开始日期（默认今天，北京时间）")
    days: int | None = Field(default=None, ge=1, le=60, description="公示天数（含首尾两天）；默认取评价方法的 "
                                                                    "publication_days，方法未规定时取服务配置")


class ObjectionIn(_CorrectionsBody):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"reason": "用地面积有误，实为 12.5 亩", "evidence_ref": "不动产权证 浙(2021)乐清市不动产权第0012345号",
         "stamped": True, "corrections": {"land_mu": 12.5}}]})
    reason: Text(1000, min_length=1) = Field(description="异议理由")
    evidence_ref: Text(500) | None = Field(default=None, description="证明材料（文号、证书编号或已上传证据文件的编号）")
    stamped: StrictBool = Field(description="是否附加盖公章的书面材料")
    corrections: Corrections


class DecisionItem(_CorrectionsBody):
    model_config = ConfigDict(extra="forbid")
    objection_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    decision: Literal["accepted", "rejected"] = Field(description="accepted：异议成立；rejected：驳回")
    corrections: dict[str, float] | None = Field(default=None, description="异议成立时应用的更正（默认取异议中提出的更正）")
    note: Text(2000) | None = None


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decisions: list[DecisionItem] = Field(default_factory=list, max_length=10_000,
                                          description="对每一条待处理异议的决定（必须覆盖全部待处理异议）")
    note: Text(2000) | None = None


class GradeChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"grade": "B", "reason": "领导小组会议纪要〔2026〕3号：该企业已完成技改", "approver": "领导小组组长 张三"}]})
    grade: Literal["A", "B", "C", "D"] = Field(description="调整后的等级")
    reason: Text(1000, min_length=1) = Field(description="调档理由（必填）")
    approver: Text(200, min_length=1) = Field(description="批准人（必填）")


class EvalFinalizeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: Text(2000) | None = None


# ---------------------------------------------------------------- reading

_INFO = ("evaluation_id, data_year, method_id, method_version, method_sha256, inputs_sha256, data_dir, status, revision, "
         "firms, note, created_by, created_at, publication_start, publication_end, published_by, published_at, "
         "window_closed_at, reviewed_by, reviewed_at, finalized_by, finalized_at, final_sha256")


def evaluation_info(cursor, evaluation_id: str) -> dict[str, Any]:
    rows = records(cursor, f"SELECT {_INFO} FROM eval_runs WHERE evaluation_id = ?", [evaluation_id])
    if not rows:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"没有评价 {evaluation_id}")
    info = rows[0]
    info["status_name"] = STATUS_ZH[info["status"]]
    info["window"] = _window_state(info)
    return info


def _window_state(info: dict) -> str | None:
    """before / open / closed (the publication window, in China time), None before 公示."""
    start, end = info["publication_start"], info["publication_end"]
    if start is None:
        return None
    now = today()
    return "before" if now < start else "open" if now <= end else "closed"


def _window_text(info: dict) -> str:
    return f"公示期为 {info['publication_start']} 至 {info['publication_end']}（{clock.label()}）"


def _not_finalized(info: dict) -> None:
    if info["status"] == "finalized":
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"评价 {info['evaluation_id']} 已于 {clock.stamp(info['finalized_at'])} 定稿，不能再更改")


def _firm(cursor, info: dict, uscc: str, user: User) -> dict[str, Any]:
    """The firm's row in the evaluation's current results; 404 when absent or outside the user's township."""
    code = uscc.strip().upper()
    rows = records(cursor, "SELECT * FROM eval_results WHERE evaluation_id = ? AND revision = ? AND uscc = ?",
                   [info["evaluation_id"], info["revision"], code])
    if not rows or not user.sees(rows[0]["township"]):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"评价 {info['evaluation_id']} 中没有该企业")
    return rows[0]


def _allowed_corrections(firm: dict, corrections: dict[str, float]) -> None:
    used = sorted(json.loads(firm["quantities"] or "{}"))
    wrong = sorted(set(corrections) - set(used))
    if wrong:
        raise HTTPException(422, f"{'、'.join(wrong)} 不是本评价方法使用的数据项；可更正：{'、'.join(used) or '无'}")


def _grade_counts(cursor, info: dict, user: User) -> list[dict[str, Any]]:
    rows = records(cursor, """
        SELECT population, population_name, coalesce(grade, '未定等级') AS grade, township, count(*) AS n
        FROM eval_results WHERE evaluation_id = ? AND revision = ? GROUP BY ALL""",
                   [info["evaluation_id"], info["revision"]])
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        if not user.sees(r["township"]):
            continue
        row = out.setdefault(r["population"], {"population": r["population"], "population_name": r["population_name"],
                                               "firms": 0, **{g: 0 for g in GRADES}, "未定等级": 0})
        row[r["grade"]] = row.get(r["grade"], 0) + r["n"]
        row["firms"] += r["n"]
    return [out[k] for k in sorted(out)]


# ---------------------------------------------------------------- 测算

@router.post("", status_code=status.HTTP_201_CREATED, responses={**ERRORS, 409: {"description": "另一次测算正在进行"}},
             operation_id="evaluations-create", summary="测算：按评价方法计算某数据年度的亩均效益评价并保存（仅 admin）")
def create_evaluation(body: EvaluationIn, request: Request, cursor: CursorDep,
                      user: Annotated[User, Depends(allow("admin"))]) -> dict:
    """读取数据目录中该年度的数据，应用乡镇街道此前确认的更正（原值与更正值都保存），调用评价计算，
    保存所用的输入数据、每家企业所用的数据和结果，以及方法编号、版本与散列值。"""
    root, data = data_folder(request, body.data)
    if not _one_at_a_time.acquire(blocking=False):
        raise HTTPException(status.HTTP_409_CONFLICT, "另一次测算或复核正在进行，请稍后再试")
    try:
        try:
            method = load_method(body.method, [root])
            inputs = load_evaluation_inputs(data, body.year, method)
            confirmed = records(cursor, """
                SELECT confirmation_id, uscc, corrections FROM eval_confirmations WHERE data_year = ?
                QUALIFY row_number() OVER (PARTITION BY uscc ORDER BY created_at DESC, confirmation_id DESC) = 1""",
                                [body.year])
            wanted = sorted(((c["confirmation_id"], Correction(c["uscc"], q, v))
                             for c in confirmed for q, v in json.loads(c["corrections"]).items()),
                            key=lambda w: (w[0], w[1].quantity))  # the order a recomputation applies them in
            corrected, outcome = apply_corrections(inputs, body.year, [c for _, c in wanted])
            ev, rows = compute(corrected, body.year, method)
        except ScreeningError as exc:
            raise HTTPException(422, str(exc)) from None
        now = dt.datetime.now(dt.timezone.utc)
        eid = f"E{body.year}-{clock.local(now):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
        blobs = pack_inputs(inputs)
        info = {"evaluation_id": eid, "data_year": body.year, "method_id": method.id, "method_version": method.version,
                "method_sha256": method.sha256, "inputs_sha256": inputs_sha256(blobs), "data_dir": body.data,
                "firms": rows.height, "warnings": ev.warnings, "rejected_rows": inputs.rejected_rows}
        originals = {u: original_values(inputs, body.year, u) for u in {c.uscc for _, c in wanted}}
        cursor.execute("BEGIN TRANSACTION")
        try:
            cursor.execute("INSERT INTO eval_runs (evaluation_id, data_year, method_id, method_version, method_sha256, "
                           "method_text, inputs_sha256, data_dir, status, revision, firms, note, created_by, created_at) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'computed', 0, ?, ?, ?, ?)",
                           [eid, body.year, method.id, method.version, method.sha256, method.path.read_bytes(),
                            info["inputs_sha256"], body.data, rows.height, body.note, user.name, now])
            for name, blob in blobs.items():
                cursor.execute("INSERT INTO eval_inputs VALUES (?, ?, ?, ?)", [eid, name, blob_sha256(blob), blob])
            _store_rows(cursor, eid, 0, rows, item_rows(ev))
            for (source_id, c), done in zip(wanted, outcome):
                cursor.execute("INSERT INTO eval_corrections VALUES (?, 0, ?, ?, ?, ?, 'confirmation', ?, ?, ?)",
                               [eid, c.uscc, c.quantity, originals[c.uscc][c.quantity], c.value, source_id,
                                done["applied"], done["reason"]])
            info["corrections"] = outcome
            audit(cursor, user, "evaluate", "evaluation", eid, None, {k: v for k, v in info.items() if k != "corrections"}
                  | {"corrections_applied": sum(o["applied"] for o in outcome)})
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
    finally:
        _one_at_a_time.release()
    return {**info, "status": "computed", "counts": _grade_counts(cursor, evaluation_info(cursor, eid), user)}


def _store_rows(cursor, evaluation_id: str, revision: int, rows, items) -> None:
    """A revision's result rows and the item-by-item trace of their scores (eval_items)."""
    for table, frame in (("eval_results", rows), ("eval_items", items)):
        cursor.register("_eval_rows", frame)
        try:
            cursor.execute(f"INSERT INTO {table} BY NAME SELECT ? AS evaluation_id, ? AS revision, * FROM _eval_rows",
                           [evaluation_id, revision])
        finally:
            cursor.unregister("_eval_rows")


@router.get("", responses=ERRORS, operation_id="evaluations-list", summary="已保存的评价（测算）")
def list_evaluations(cursor: CursorDep, _user: Annotated[User, Depends(allow(*READERS))],
                     year: Annotated[int | None, Query(ge=2000, le=2100, description="数据年度")] = None) -> dict:
    items = records(cursor, f"SELECT {_INFO} FROM eval_runs WHERE ? IS NULL OR data_year = ? "
                            "ORDER BY created_at DESC, evaluation_id DESC", [year, year])
    for item in items:
        item["status_name"] = STATUS_ZH[item["status"]]
        item["window"] = _window_state(item)
    return {"total": len(items), "items": items}


@router.get("/{evaluation_id}", responses=ERRORS, operation_id="evaluations-get",
            summary="一次评价：方法、输入散列、状态、公示期、各组各等级家数")
def get_evaluation(evaluation_id: EvaluationIdPath, cursor: CursorDep,
                   user: Annotated[User, Depends(allow(*READERS))]) -> dict:
    info = evaluation_info(cursor, evaluation_id)
    objections = records(cursor, "SELECT o.decision, r.township FROM eval_objections o JOIN eval_results r "
                                 "ON r.evaluation_id = o.evaluation_id AND r.revision = 0 AND r.uscc = o.uscc "
                                 "WHERE o.evaluation_id = ?", [evaluation_id])
    seen = [o for o in objections if user.sees(o["township"])]
    info["objections"] = {"total": len(seen), "pending": sum(o["decision"] is None for o in seen),
                          "accepted": sum(o["decision"] == "accepted" for o in seen),
                          "rejected": sum(o["decision"] == "rejected" for o in seen)}
    info["counts"] = _grade_counts(cursor, info, user)
    # what the 测算 said of its inputs (rows refused, 加减分 rows that could not be used): kept in its
    # audit line, shown with the evaluation so that nothing the page's user sent vanishes unsaid
    made = cursor.execute("SELECT after FROM audit_log WHERE action = 'evaluate' AND entity = 'evaluation' "
                          "AND entity_key = ? ORDER BY seq LIMIT 1", [evaluation_id]).fetchall()
    after = json.loads(made[0][0]) if made and made[0][0] else {}
    info["warnings"], info["rejected_rows"] = after.get("warnings") or [], after.get("rejected_rows") or 0
    return info


_RESULTS = """
WITH cur AS (SELECT * FROM eval_results WHERE evaluation_id = $id AND revision = $rev),
first AS (SELECT uscc, score AS published_score, rank AS published_rank, grade AS published_grade
          FROM eval_results WHERE evaluation_id = $id AND revision = 0),
chg AS (SELECT uscc, to_grade, reason AS change_reason, approver, created_by AS changed_by FROM eval_grade_changes
        WHERE evaluation_id = $id
        QUALIFY row_number() OVER (PARTITION BY uscc ORDER BY created_at DESC, change_id DESC) = 1),
obj AS (SELECT uscc, count(*) AS objections, count(*) FILTER (WHERE decision IS NULL) AS objections_pending
        FROM eval_objections WHERE evaluation_id = $id GROUP BY uscc),
silent AS (SELECT uscc FROM eval_no_objection WHERE evaluation_id = $id)
SELECT cur.* EXCLUDE (evaluation_id, revision), first.published_score, first.published_rank, first.published_grade,
       chg.to_grade AS manual_grade, chg.change_reason, chg.approver, chg.changed_by,
       coalesce(chg.to_grade, cur.grade) AS final_grade,
       coalesce(obj.objections, 0) AS objections, coalesce(obj.objections_pending, 0) AS objections_pending,
       silent.uscc IS NOT NULL AS no_objection, count(*) OVER () AS _total
FROM cur LEFT JOIN first USING (uscc) LEFT JOIN chg USING (uscc) LEFT JOIN obj USING (uscc)
LEFT JOIN silent USING (uscc)
WHERE ($township IS NULL OR cur.township = $township) AND ($population IS NULL OR cur.population = $population)
  AND ($grade IS NULL OR coalesce(chg.to_grade, cur.grade) = $grade)
  AND ($q IS NULL OR contains(cur.name, $q) OR cur.uscc = upper($q)) AND ($uscc IS NULL OR cur.uscc = $uscc)
ORDER BY cur.population, cur.rank NULLS LAST, cur.uscc
LIMIT $limit OFFSET $offset
"""


def result_page(cursor, info: dict, user: User, township: str | None = None, population: str | None = None,
                grade: str | None = None, q: str | None = None, page: int = 1, page_size: int = 100,
                uscc: str | None = None) -> dict:
    """The evaluation's current results per firm (the caller's township only, for a township
    user), with 初评等级, the computed grade, a manual 调档 and the final grade side by side;
    ``uscc``: that firm's row only."""
    townships = [] if user.role == "township" else [r[0] for r in cursor.execute(
        "SELECT DISTINCT township FROM eval_results WHERE evaluation_id = ? AND revision = 0 AND township IS NOT NULL",
        [info["evaluation_id"]]).fetchall()]
    # scoping: applied here, once, for the page and the API alike
    township = township_scope(user, township, townships, "乡镇街道 township")
    names = dict(cursor.execute(
        "SELECT DISTINCT population, population_name FROM eval_results WHERE evaluation_id = ? AND revision = 0",
        [info["evaluation_id"]]).fetchall())
    populations = list(names)
    check_choice(population, populations, "评价分组 population")
    check_choice(grade, [*GRADES], "等级 grade")
    params = {"id": info["evaluation_id"], "rev": info["revision"], "township": township, "population": population,
              "grade": grade, "q": (q or "").strip() or None, "uscc": uscc, "limit": page_size,
              "offset": (page - 1) * page_size}
    items = records(cursor, _RESULTS, params)
    total = items[0]["_total"] if items else 0
    if not items and page > 1:  # past the last page: the total still
        first = records(cursor, _RESULTS, {**params, "limit": 1, "offset": 0})
        total = first[0]["_total"] if first else 0
    corrections: dict[str, list[dict]] = {}
    if items:
        for c in records(cursor, "SELECT uscc, revision, quantity, original, corrected, source, source_id, applied, reason "
                                 "FROM eval_corrections WHERE evaluation_id = ? AND uscc IN (SELECT unnest(?)) "
                                 "ORDER BY revision, quantity", [info["evaluation_id"], [i["uscc"] for i in items]]):
            corrections.setdefault(c.pop("uscc"), []).append(c)
    for item in items:
        item.pop("_total")
        item["quantities"] = json.loads(item["quantities"] or "{}")
        item["detail"] = json.loads(item["detail"] or "{}")
        item["corrections"] = corrections.get(item["uscc"], [])
    return {"evaluation_id": info["evaluation_id"], "status": info["status"], "revision": info["revision"],
            "populations": sorted(populations), "population_names": {p: names[p] or p for p in sorted(populations)},
            "total": total, "page": page, "page_size": page_size, "items": items}


@router.get("/{evaluation_id}/results", responses=ERRORS, operation_id="evaluations-results",
            summary="评价结果（每家企业：所用数据、得分、名次、初评等级、调档、最终等级）；乡镇街道只看本乡镇街道")
def results(evaluation_id: EvaluationIdPath, cursor: CursorDep, user: Annotated[User, Depends(allow(*READERS))],
            township: Annotated[str | None, Query(max_length=100)] = None,
            population: Annotated[str | None, Query(max_length=100, description="评价分组")] = None,
            grade: Annotated[str | None, Query(max_length=1, description="最终等级")] = None,
            q: Annotated[str | None, Query(max_length=100, description="企业名称或统一社会信用代码")] = None,
            page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
            page_size: Annotated[int, Query(ge=1, le=500)] = 100) -> dict:
    return result_page(cursor, evaluation_info(cursor, evaluation_id), user, township, population, grade, q, page,
                       page_size)


@router.get("/{evaluation_id}/firms/{uscc}", responses=ERRORS, operation_id="evaluations-firm",
            summary="一家企业的评价明细：每项指标的数值、基准值、权重、单项得分与说明，加减分、总分、名次与等级"
                    "（当前版本；乡镇街道只看本乡镇街道）")
def firm_trace(evaluation_id: EvaluationIdPath, uscc: UsccPath, cursor: CursorDep,
               user: Annotated[User, Depends(allow(*READERS))]) -> dict:
    """How the firm's score came about, item by item, as the firm is told it: ``firm`` is its row of
    GET /evaluations/{id}/results; ``items`` one per indicator in the method's order: ``value``
    (numerator ÷ denominator, in ``unit``), ``baseline`` (基准值), ``weight``, ``item_score``
    (分), ``capped`` (单项上限), ``handling`` and ``note`` (missing data and how the method scores it).
    ``base_score`` (the items' sum) + ``adjustment`` (加减分, ``detail.adjustment_detail``) = ``score``.
    ``traced`` is false for an evaluation computed before the trace was stored (items empty).
    404 for a firm not in the evaluation or outside a township user's township."""
    with one_snapshot(cursor):
        info = evaluation_info(cursor, evaluation_id)
        firm = _firm(cursor, info, uscc, user)  # the township check, once
        (row,) = result_page(cursor, info, user, uscc=firm["uscc"], page_size=1)["items"]
        items = records(cursor, "SELECT * EXCLUDE (evaluation_id, revision, uscc) FROM eval_items "
                                "WHERE evaluation_id = ? AND revision = ? AND uscc = ?",
                        [evaluation_id, info["revision"], firm["uscc"]])
    order = [k for k in row["detail"] if f"{k}_score" in row["detail"]]  # the scores' columns: the method's order
    items.sort(key=lambda i: (order.index(i["indicator"]) if i["indicator"] in order else len(order), i["indicator"]))
    return {"evaluation_id": evaluation_id, "status": info["status"], "revision": info["revision"],
            "data_year": info["data_year"], "method_id": info["method_id"], "traced": bool(items),
            "firm": row, "items": items, "indicator_names": {} if items else _indicator_names(cursor, info)}


def _indicator_names(cursor, info: dict) -> dict[str, str]:
    """Indicator id -> name from the evaluation's stored method (the page of an evaluation
    computed before items were stored names its item scores by these)."""
    (text,), = cursor.execute("SELECT method_text FROM eval_runs WHERE evaluation_id = ?",
                              [info["evaluation_id"]]).fetchall()
    try:
        method = method_from_text(info["method_id"], text)
    except ScreeningError:
        return {}
    return {i.id: i.name for p in method.population_list for i in p.indicators}


# ---------------------------------------------------------------- 数据确认

@router.post("/{evaluation_id}/firms/{uscc}/confirmation", status_code=status.HTTP_201_CREATED,
             responses={**ERRORS, **CONFLICT}, operation_id="evaluations-confirm",
             summary="数据确认：乡镇街道登记企业确认或更正了本评价所用的数据（公示前；下次测算时应用更正）")
def confirm(evaluation_id: EvaluationIdPath, uscc: UsccPath, body: ConfirmationIn, cursor: CursorDep,
            user: Annotated[User, Depends(allow("admin", "township"))]) -> dict:
    info = evaluation_info(cursor, evaluation_id)
    firm = _firm(cursor, info, uscc, user)
    if info["status"] != "computed":
        raise HTTPException(status.HTTP_409_CONFLICT, f"评价 {evaluation_id} 已公示，数据更正请在公示期内通过异议提出")
    # a trial 测算 of a year another evaluation already published: no later 测算 of the year can be
    # published, so a correction recorded here would never reach a published result
    other = records(cursor, "SELECT evaluation_id, status FROM eval_runs WHERE data_year = ? AND status <> 'computed' "
                            "ORDER BY status = 'finalized' DESC LIMIT 1", [info["data_year"]])
    if other:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"{info['data_year']} 年度数据的评价 {other[0]['evaluation_id']} {STATUS_ZH[other[0]['status']]}，"
                            "本次测算不会再公示，数据确认请不要记在这里；更正请在公示期内通过异议提出")
    if body.outcome == "corrected" and not body.corrections:
        raise HTTPException(422, "更正（corrected）时必须填写更正的数据项 corrections")
    if body.outcome == "confirmed" and body.corrections:
        raise HTTPException(422, "确认（confirmed）时不能填写更正的数据项；有更正请选 corrected")
    _allowed_corrections(firm, body.corrections)
    shown = json.loads(firm["quantities"] or "{}")
    record = {"confirmation_id": uuid.uuid4().hex, "evaluation_id": evaluation_id, "data_year": info["data_year"],
              "uscc": firm["uscc"], "outcome": body.outcome, "corrections": body.corrections,
              "originals": {q: shown.get(q) for q in body.corrections}, "note": body.note, "created_by": user.name,
              "created_at": dt.datetime.now(dt.timezone.utc)}
    cursor.execute("BEGIN TRANSACTION")
    cursor.execute("INSERT INTO eval_confirmations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [record["confirmation_id"], evaluation_id, info["data_year"], firm["uscc"], body.outcome,
                    json.dumps(body.corrections), json.dumps(record["originals"]), body.note, user.name,
                    record["created_at"]])
    audit(cursor, user, "evaluation_confirm", "evaluation", f"{evaluation_id}/{firm['uscc']}", None, record)
    cursor.execute("COMMIT")
    return record


# ---------------------------------------------------------------- 公示

@router.post("/{evaluation_id}/publish", status_code=status.HTTP_201_CREATED, responses={**ERRORS, **CONFLICT},
             operation_id="evaluations-publish", summary="公示：定下公示期（开始、结束日期）；公示期内接受异议（仅 admin）")
def publish(evaluation_id: EvaluationIdPath, body: PublishIn, request: Request, cursor: CursorDep,
            user: Annotated[User, Depends(allow("admin"))]) -> dict:
    with _year_step:
        return _publish(evaluation_id, body, request, cursor, user)


def _publish(evaluation_id: str, body: PublishIn, request: Request, cursor, user: User) -> dict:
    cursor.execute("BEGIN TRANSACTION")
    try:
        info = evaluation_info(cursor, evaluation_id)
        _not_finalized(info)
        if info["status"] != "computed":
            raise HTTPException(status.HTTP_409_CONFLICT, f"评价 {evaluation_id} 已于此前公示（{_window_text(info)}）")
        other = records(cursor, "SELECT evaluation_id FROM eval_runs WHERE data_year = ? AND status <> 'computed' "
                                "AND evaluation_id <> ?", [info["data_year"], evaluation_id])
        if other:
            raise HTTPException(status.HTTP_409_CONFLICT,
                                f"{info['data_year']} 年度数据的评价 {other[0]['evaluation_id']} 已公示，同一年度只能公示一次评价")
        method = method_from_text(info["method_id"], _method_text(cursor, evaluation_id))
        days = body.days or method.publication_days or request.app.state.settings.evaluation_publication_days
        start = body.start or today()
        if start.year <= info["data_year"] or start.year > LAST_YEAR:
            # a mistyped year would leave the evaluation published with a window that never (or
            # already) came: no objection could be made and no review ever held
            raise HTTPException(422, f"公示开始日期 {start} 无效：{info['data_year']} 年度数据的评价应在 "
                                     f"{info['data_year'] + 1} 年至 {LAST_YEAR} 年之间公示")
        end = start + dt.timedelta(days=int(days) - 1)
        now = dt.datetime.now(dt.timezone.utc)
        cursor.execute("UPDATE eval_runs SET status = 'published', publication_start = ?, publication_end = ?, "
                       "published_by = ?, published_at = ? WHERE evaluation_id = ?",
                       [start, end, user.name, now, evaluation_id])
        after = {"publication_start": start, "publication_end": end, "days": int(days), "published_by": user.name}
        audit(cursor, user, "evaluation_publish", "evaluation", evaluation_id, {"status": info["status"]}, after)
        cursor.execute("COMMIT")
    except BaseException:
        cursor.execute("ROLLBACK")
        raise
    return evaluation_info(cursor, evaluation_id)


def _method_text(cursor, evaluation_id: str) -> bytes:
    return bytes(cursor.execute("SELECT method_text FROM eval_runs WHERE evaluation_id = ?",
                                [evaluation_id]).fetchall()[0][0])


@router.get("/{evaluation_id}/publication/{population}", responses={**ERRORS, 200: {
    "content": {"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {}}}},
            operation_id="evaluations-publication", summary="公示名单（每个评价分组一个 xlsx）；乡镇街道只含本乡镇街道")
def publication(evaluation_id: EvaluationIdPath, population: Annotated[str, Path(max_length=100)], cursor: CursorDep,
                user: Annotated[User, Depends(allow(*READERS))]) -> Response:
    info = evaluation_info(cursor, evaluation_id)
    if info["publication_start"] is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"评价 {evaluation_id} 尚未公示")
    # a population is named by its id (``below_scale``) or by the name people read (``规下``)
    known = cursor.execute("SELECT DISTINCT population, population_name FROM eval_results "
                           "WHERE evaluation_id = ? AND revision = 0 ORDER BY population", [evaluation_id]).fetchall()
    match = next((pid for pid, pname in known if population in (pid, pname)), None)
    if match is None:
        choices = "、".join(f"{pid}（{pname}）" if pname and pname != pid else str(pid) for pid, pname in known)
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"没有评价分组“{population}”，可选：{choices}")
    population = match
    rows = records(cursor, "SELECT * FROM eval_results WHERE evaluation_id = ? AND revision = 0 AND population = ? "
                           "ORDER BY rank NULLS LAST, uscc", [evaluation_id, population])
    chosen = [r for r in rows if user.sees(r["township"])]
    name = rows[0]["population_name"] if rows else population
    quantities = sorted({q for r in rows for q in json.loads(r["quantities"] or "{}")}, key=list(CORRECTABLE).index)
    scope = f"（{user.township}）" if user.role == "township" else ""
    title = f"{info['data_year']}年度亩均效益综合评价结果公示：{name}{scope}"
    note = (f"{_window_text(info)}；评价编号 {evaluation_id}，评价方法 {info['method_id']}（版本 {info['method_version']}）；"
            "对结果有异议的，请在公示期内通过所在乡镇街道书面提出（附盖章材料），逾期视为无异议。")
    content = publication_workbook(title, note, chosen, quantities)
    filename = f"亩均效益评价公示_{info['data_year']}_{name}.xlsx"
    return Response(content, media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f"attachment; filename=\"evaluation-publication.xlsx\"; "
                                                    f"filename*=UTF-8''{quote(filename)}"})


# ---------------------------------------------------------------- 异议

@router.post("/{evaluation_id}/firms/{uscc}/objections", status_code=status.HTTP_201_CREATED,
             responses={**ERRORS, **CONFLICT}, operation_id="evaluations-object",
             summary="异议：乡镇街道在公示期内为本乡镇街道的企业提出异议（理由、证明材料、是否盖章）")
def object_(evaluation_id: EvaluationIdPath, uscc: UsccPath, body: ObjectionIn, cursor: CursorDep,
            user: Annotated[User, Depends(allow("admin", "township"))]) -> dict:
    info = evaluation_info(cursor, evaluation_id)
    firm = _firm(cursor, info, uscc, user)
    _not_finalized(info)
    if info["publication_start"] is None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"评价 {evaluation_id} 尚未公示，公示期内才能提出异议")
    window = _window_state(info)
    if window == "before":
        raise HTTPException(status.HTTP_409_CONFLICT, f"{_window_text(info)}，尚未开始，不能提出异议")
    if window == "closed" or info["status"] != "published":
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"{_window_text(info)}，已结束，不能再提出异议；公示期内未提出异议的企业按无异议处理")
    _allowed_corrections(firm, body.corrections)
    record = {"objection_id": uuid.uuid4().hex, "evaluation_id": evaluation_id, "uscc": firm["uscc"],
              "reason": body.reason, "evidence_ref": body.evidence_ref, "stamped": body.stamped,
              "corrections": body.corrections, "created_by": user.name, "created_at": dt.datetime.now(dt.timezone.utc)}
    cursor.execute("BEGIN TRANSACTION")
    cursor.execute("INSERT INTO eval_objections (objection_id, evaluation_id, uscc, reason, evidence_ref, stamped, "
                   "corrections, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [record["objection_id"], evaluation_id, firm["uscc"], body.reason, body.evidence_ref, body.stamped,
                    json.dumps(body.corrections), user.name, record["created_at"]])
    audit(cursor, user, "evaluation_object", "evaluation", f"{evaluation_id}/{firm['uscc']}", None, record)
    cursor.execute("COMMIT")
    return record


def objection_list(cursor, info: dict, user: User) -> list[dict[str, Any]]:
    rows = records(cursor, """
        SELECT o.*, r.name, r.township, r.population_name FROM eval_objections o
        JOIN eval_results r ON r.evaluation_id = o.evaluation_id AND r.revision = 0 AND r.uscc = o.uscc
        WHERE o.evaluation_id = ? ORDER BY o.created_at, o.objection_id""", [info["evaluation_id"]])
    out = []
    for r in rows:
        if user.sees(r["township"]):
            r["corrections"] = json.loads(r["corrections"] or "{}")
            r["decided_corrections"] = json.loads(r["decided_corrections"]) if r["decided_corrections"] else None
            out.append(r)
    return out


@router.get("/{evaluation_id}/objections", responses=ERRORS, operation_id="evaluations-objections",
            summary="异议及其处理；公示期结束后未提出异议的企业数（按无异议处理）")
def objections(evaluation_id: EvaluationIdPath, cursor: CursorDep,
               user: Annotated[User, Depends(allow(*READERS))]) -> dict:
    info = evaluation_info(cursor, evaluation_id)
    items = objection_list(cursor, info, user)
    silent = records(cursor, "SELECT n.uscc, r.township FROM eval_no_objection n JOIN eval_results r "
                             "ON r.evaluation_id = n.evaluation_id AND r.revision = 0 AND r.uscc = n.uscc "
                             "WHERE n.evaluation_id = ?", [evaluation_id])
    return {"evaluation_id": evaluation_id, "window": info["window"], "publication_start": info["publication_start"],
            "publication_end": info["publication_end"], "total": len(items), "items": items,
            "no_objection": sum(user.sees(s["township"]) for s in silent)}


# ---------------------------------------------------------------- 复核

@router.post("/{evaluation_id}/review", status_code=status.HTTP_201_CREATED, responses={**ERRORS, **CONFLICT},
             operation_id="evaluations-review",
             summary="复核：公示期结束后，一次决定全部异议，应用成立异议的更正并重新计算得分与名次（仅 admin）")
def review(evaluation_id: EvaluationIdPath, body: ReviewIn, cursor: CursorDep,
           user: Annotated[User, Depends(allow("admin"))]) -> dict:
    """一批决定、一个事务、一条审计记录：记录公示期内未提出异议的企业为“无异议”；异议成立且有更正的，把更正值
    （与原值一起保存）放进保存的输入数据，以保存的评价方法重新调用评价计算，保存新的一版结果。"""
    if not _one_at_a_time.acquire(blocking=False):
        raise HTTPException(status.HTTP_409_CONFLICT, "另一次测算或复核正在进行，请稍后再试")
    try:
        cursor.execute("BEGIN TRANSACTION")
        try:
            summary = _review(cursor, evaluation_id, body, user)
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
    finally:
        _one_at_a_time.release()
    return summary


def _review(cursor, evaluation_id: str, body: ReviewIn, user: User) -> dict:
    info = evaluation_info(cursor, evaluation_id)
    _not_finalized(info)
    if info["status"] == "computed":
        raise HTTPException(status.HTTP_409_CONFLICT, f"评价 {evaluation_id} 尚未公示，公示期结束后才能复核")
    if info["status"] == "reviewed":
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"评价 {evaluation_id} 已于 {clock.stamp(info['reviewed_at'])} 复核，异议的决定只批量应用一次")
    if info["window"] != "closed":
        raise HTTPException(status.HTTP_409_CONFLICT, f"{_window_text(info)}，公示期结束后才能复核")
    pending = {o["objection_id"]: o for o in objection_list(cursor, info, user) if o["decision"] is None}
    decided = {d.objection_id: d for d in body.decisions}
    unknown = sorted(set(decided) - set(pending))
    if unknown:
        raise HTTPException(422, f"以下异议不存在或已处理：{'、'.join(unknown)}")
    if len(decided) != len(body.decisions):
        raise HTTPException(422, "同一条异议只能有一个决定")
    missing = sorted(set(pending) - set(decided))
    if missing:
        raise HTTPException(422, f"还有 {len(missing)} 条异议没有决定（{'、'.join(missing[:20])}）；复核须一次决定全部异议")
    now = dt.datetime.now(dt.timezone.utc)
    revision = info["revision"] + 1
    # silence inside the window is no objection, recorded once the window has closed
    cursor.execute("INSERT INTO eval_no_objection SELECT evaluation_id, uscc, ? FROM eval_results r "
                   "WHERE evaluation_id = ? AND revision = 0 AND NOT EXISTS (SELECT 1 FROM eval_objections o "
                   "WHERE o.evaluation_id = r.evaluation_id AND o.uscc = r.uscc) ON CONFLICT DO NOTHING",
                   [now, evaluation_id])
    silent = cursor.execute("SELECT count(*) FROM eval_no_objection WHERE evaluation_id = ?",
                            [evaluation_id]).fetchall()[0][0]
    wanted: list[tuple[str, Correction]] = []
    for oid, d in decided.items():
        chosen = d.corrections if d.corrections is not None else pending[oid]["corrections"]
        if d.decision == "accepted":
            firm = _firm(cursor, info, pending[oid]["uscc"], user)
            _allowed_corrections(firm, chosen)
            wanted += [(oid, Correction(firm["uscc"], q, v)) for q, v in chosen.items()]
        cursor.execute("UPDATE eval_objections SET decision = ?, decision_note = ?, decided_corrections = ?, "
                       "decided_by = ?, decided_at = ?, batch_revision = ? WHERE objection_id = ?",
                       [d.decision, d.note, json.dumps(chosen if d.decision == "accepted" else {}), user.name, now,
                        revision, oid])
    wanted.sort(key=lambda w: (w[0], w[1].quantity))  # the order a recomputation applies them in
    changes: list[dict[str, Any]] = []
    applied: list[dict[str, Any]] = []
    if wanted:
        inputs, method, earlier = _stored(cursor, info)
        corrected, _ = apply_corrections(inputs, info["data_year"], earlier)
        before = {u: original_values(corrected, info["data_year"], u) for u in {c.uscc for _, c in wanted}}
        corrected, outcome = apply_corrections(corrected, info["data_year"], [c for _, c in wanted])
        try:
            ev, rows = compute(corrected, info["data_year"], method)
        except ScreeningError as exc:
            raise HTTPException(422, str(exc)) from None
        for (oid, c), done in zip(wanted, outcome):
            cursor.execute("INSERT INTO eval_corrections VALUES (?, ?, ?, ?, ?, ?, 'objection', ?, ?, ?)",
                           [evaluation_id, revision, c.uscc, c.quantity, before[c.uscc][c.quantity], c.value, oid,
                            done["applied"], done["reason"]])
            applied.append({**done, "objection_id": oid, "original": before[c.uscc][c.quantity]})
        _store_rows(cursor, evaluation_id, revision, rows, item_rows(ev))
        changes = records(cursor, """
            SELECT n.uscc, n.name, n.population, o.score AS score_before, n.score AS score_after,
                   o.rank AS rank_before, n.rank AS rank_after, o.grade AS grade_before, n.grade AS grade_after
            FROM eval_results n JOIN eval_results o ON o.evaluation_id = n.evaluation_id AND o.uscc = n.uscc
                                                  AND o.revision = ?
            WHERE n.evaluation_id = ? AND n.revision = ?
              AND (o.score IS DISTINCT FROM n.score OR o.rank IS DISTINCT FROM n.rank OR o.grade IS DISTINCT FROM n.grade)
            ORDER BY n.grade IS NOT DISTINCT FROM o.grade, n.population, n.rank NULLS LAST, n.uscc""",
                          [info["revision"], evaluation_id, revision])
    else:  # nothing to correct: the results stand, as the same revision under the new number
        for table in ("eval_results", "eval_items"):
            cursor.execute(f"INSERT INTO {table} SELECT * REPLACE (? AS revision) FROM {table} "
                           "WHERE evaluation_id = ? AND revision = ?", [revision, evaluation_id, info["revision"]])
    cursor.execute("UPDATE eval_runs SET status = 'reviewed', revision = ?, window_closed_at = ?, reviewed_by = ?, "
                   "reviewed_at = ? WHERE evaluation_id = ?", [revision, now, user.name, now, evaluation_id])
    # every changed firm is in the two stored revisions; the answer and the audit line list the
    # firms whose grade changed first, up to CHANGES_LISTED (a baseline taken from the group average
    # moves every score of the group when one firm's data change)
    summary = {"evaluation_id": evaluation_id, "revision": revision,
               "accepted": sum(d.decision == "accepted" for d in decided.values()),
               "rejected": sum(d.decision == "rejected" for d in decided.values()), "no_objection": silent,
               "corrections": applied, "changed_count": len(changes),
               "grade_changed_count": sum(c["grade_before"] != c["grade_after"] for c in changes),
               "changed": changes[:CHANGES_LISTED], "note": body.note}
    audit(cursor, user, "evaluation_review", "evaluation", evaluation_id,
          {"status": info["status"], "revision": info["revision"]},
          {**summary, "decisions": [{"objection_id": oid, "uscc": pending[oid]["uscc"], "decision": d.decision,
                                     "note": d.note} for oid, d in decided.items()]})
    return summary


def _stored(cursor, info: dict):
    """The stored inputs (hash checked), the stored method and the corrections applied so far."""
    eid = info["evaluation_id"]
    blobs = {name: bytes(data) for name, data in cursor.execute(
        "SELECT table_name, data FROM eval_inputs WHERE evaluation_id = ?", [eid]).fetchall()}
    if inputs_sha256(blobs) != info["inputs_sha256"]:
        raise HTTPException(status.HTTP_409_CONFLICT, f"评价 {eid} 保存的输入数据与其散列值不符，不能重新计算")
    method = method_from_text(info["method_id"], _method_text(cursor, eid))
    if method.sha256 != info["method_sha256"]:
        raise HTTPException(status.HTTP_409_CONFLICT, f"评价 {eid} 保存的评价方法与其散列值不符，不能重新计算")
    earlier = [Correction(u, q, v) for u, q, v in cursor.execute(
        "SELECT uscc, quantity, corrected FROM eval_corrections WHERE evaluation_id = ? AND applied "
        "ORDER BY revision, source, source_id, quantity", [eid]).fetchall()]
    return unpack_inputs(blobs), method, earlier


# ---------------------------------------------------------------- 调档

@router.post("/{evaluation_id}/firms/{uscc}/grade", status_code=status.HTTP_201_CREATED,
             responses={**ERRORS, **CONFLICT}, operation_id="evaluations-regrade",
             summary="调档：复核后人工调整一家企业的等级（理由、批准人必填；初评等级与最终等级都保留）（仅 admin）")
def regrade(evaluation_id: EvaluationIdPath, uscc: UsccPath, body: GradeChangeIn, cursor: CursorDep,
            user: Annotated[User, Depends(allow("admin"))]) -> dict:
    cursor.execute("BEGIN TRANSACTION")
    try:
        info = evaluation_info(cursor, evaluation_id)
        _not_finalized(info)
        if info["status"] != "reviewed":
            raise HTTPException(status.HTTP_409_CONFLICT, f"评价 {evaluation_id} 尚未复核，复核后才能调档")
        firm = _firm(cursor, info, uscc, user)
        if firm["grade"] is None:
            raise HTTPException(status.HTTP_409_CONFLICT, f"该企业未定等级（{firm['not_graded_reason'] or '—'}），不能调档")
        previous = records(cursor, "SELECT to_grade FROM eval_grade_changes WHERE evaluation_id = ? AND uscc = ? "
                                   "ORDER BY created_at DESC, change_id DESC LIMIT 1", [evaluation_id, firm["uscc"]])
        from_grade = previous[0]["to_grade"] if previous else firm["grade"]
        record = {"change_id": uuid.uuid4().hex, "evaluation_id": evaluation_id, "uscc": firm["uscc"],
                  "initial_grade": firm["initial_grade"], "computed_grade": firm["grade"], "from_grade": from_grade,
                  "to_grade": body.grade, "reason": body.reason, "approver": body.approver, "created_by": user.name,
                  "created_at": dt.datetime.now(dt.timezone.utc)}
        cursor.execute("INSERT INTO eval_grade_changes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       [record["change_id"], evaluation_id, firm["uscc"], from_grade, body.grade, body.reason,
                        body.approver, user.name, record["created_at"]])
        audit(cursor, user, "evaluation_regrade", "evaluation", f"{evaluation_id}/{firm['uscc']}",
              {"grade": from_grade}, record)
        cursor.execute("COMMIT")
    except BaseException:
        cursor.execute("ROLLBACK")
        raise
    return record


# ---------------------------------------------------------------- 定稿

_FINAL_ROWS = """
    WITH chg AS (SELECT uscc, to_grade FROM eval_grade_changes WHERE evaluation_id = $id
                 QUALIFY row_number() OVER (PARTITION BY uscc ORDER BY created_at DESC, change_id DESC) = 1)
    SELECT r.evaluation_id, r.uscc, r.township, r.initial_grade, r.grade AS computed_grade,
           coalesce(chg.to_grade, r.grade) AS final_grade, r.score, r.rank
    FROM eval_results r LEFT JOIN chg USING (uscc)
    WHERE r.evaluation_id = $id AND r.revision = $rev
"""


def final_rows(cursor, info: dict) -> list[dict[str, Any]]:
    """Per firm: 初评等级, the computed grade of the current revision, the final grade (调档 or computed)."""
    return records(cursor, _FINAL_ROWS + " ORDER BY r.uscc", {"id": info["evaluation_id"], "rev": info["revision"]})


@router.post("/{evaluation_id}/finalize", status_code=status.HTTP_201_CREATED, responses={**ERRORS, **CONFLICT},
             operation_id="evaluations-finalize",
             summary="定稿：冻结最终等级（最终等级、方法散列、输入散列）；此后不可更改（仅 admin）")
def finalize(evaluation_id: EvaluationIdPath, body: EvalFinalizeIn, cursor: CursorDep,
             user: Annotated[User, Depends(allow("admin"))]) -> dict:
    with _year_step:
        return _finalize(evaluation_id, body, cursor, user)


def _finalize(evaluation_id: str, body: EvalFinalizeIn, cursor, user: User) -> dict:
    cursor.execute("BEGIN TRANSACTION")
    try:
        info = evaluation_info(cursor, evaluation_id)
        _not_finalized(info)
        if info["status"] != "reviewed":
            raise HTTPException(status.HTTP_409_CONFLICT, f"评价 {evaluation_id} 尚未复核，复核后才能定稿")
        other = records(cursor, "SELECT evaluation_id FROM eval_runs WHERE data_year = ? AND status = 'finalized'",
                        [info["data_year"]])
        if other:
            raise HTTPException(status.HTTP_409_CONFLICT,
                                f"{info['data_year']} 年度数据已有定稿的评价 {other[0]['evaluation_id']}")
        rows = final_rows(cursor, info)
        digest = final_grades_sha256(rows)
        now = dt.datetime.now(dt.timezone.utc)
        cursor.execute(f"INSERT INTO eval_final {_FINAL_ROWS}", {"id": evaluation_id, "rev": info["revision"]})
        cursor.execute("UPDATE eval_runs SET status = 'finalized', finalized_by = ?, finalized_at = ?, final_sha256 = ? "
                       "WHERE evaluation_id = ?", [user.name, now, digest, evaluation_id])
        summary = {"evaluation_id": evaluation_id, "data_year": info["data_year"], "firms": len(rows),
                   "final_sha256": digest, "method_id": info["method_id"], "method_sha256": info["method_sha256"],
                   "inputs_sha256": info["inputs_sha256"], "revision": info["revision"], "finalized_by": user.name,
                   "finalized_at": now, "note": body.note,
                   "regraded": sum(r["final_grade"] != r["computed_grade"] for r in rows)}
        audit(cursor, user, "evaluation_finalize", "evaluation", evaluation_id, {"status": info["status"]}, summary)
        cursor.execute("COMMIT")
    except BaseException:
        cursor.execute("ROLLBACK")
        raise
    return summary


@router.get("/{evaluation_id}/reproduce", responses={**ERRORS, **CONFLICT}, operation_id="evaluations-reproduce",
            summary="复现：以保存的输入、方法、更正与调档重新计算，与定稿结果逐户比对")
def reproduce(evaluation_id: EvaluationIdPath, cursor: CursorDep,
              _user: Annotated[User, Depends(allow("admin", "analyst"))]) -> dict:
    info = evaluation_info(cursor, evaluation_id)
    if info["status"] != "finalized":
        raise HTTPException(status.HTTP_409_CONFLICT, f"评价 {evaluation_id} 尚未定稿，定稿后才能复现")
    inputs, method, applied = _stored(cursor, info)
    corrected, _ = apply_corrections(inputs, info["data_year"], applied)
    try:
        _, rows = compute(corrected, info["data_year"], method)
    except ScreeningError as exc:
        raise HTTPException(422, str(exc)) from None
    manual = dict(cursor.execute("SELECT uscc, to_grade FROM eval_grade_changes WHERE evaluation_id = ? "
                                 "QUALIFY row_number() OVER (PARTITION BY uscc ORDER BY created_at DESC, change_id DESC) = 1",
                                 [evaluation_id]).fetchall())
    again = [{"uscc": r["uscc"], "initial_grade": r["initial_grade"], "computed_grade": r["grade"],
              "final_grade": manual.get(r["uscc"], r["grade"]), "score": r["score"], "rank": r["rank"]}
             for r in rows.iter_rows(named=True)]
    stored = {r["uscc"]: r for r in records(cursor, "SELECT * FROM eval_final WHERE evaluation_id = ?", [evaluation_id])}
    differences = []
    for r in again:
        s = stored.pop(r["uscc"], None)
        if s is None or any(s[k] != r[k] for k in ("initial_grade", "computed_grade", "final_grade", "rank")) or \
                (s["score"] is None) != (r["score"] is None) or \
                (s["score"] is not None and round(s["score"], 6) != round(r["score"], 6)):
            differences.append({"uscc": r["uscc"], "stored": s, "recomputed": r})
    differences += [{"uscc": u, "stored": s, "recomputed": None} for u, s in stored.items()]
    digest = final_grades_sha256(again)
    return {"evaluation_id": evaluation_id, "reproduced": not differences and digest == info["final_sha256"],
            "final_sha256": info["final_sha256"], "recomputed_sha256": digest, "method_sha256": method.sha256,
            "inputs_sha256": info["inputs_sha256"], "differences": differences[:100]}
