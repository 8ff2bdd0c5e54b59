"""差别化措施 (issue 16, item 3) in the service: the lists per utility and the quarterly ledger.

- ``POST /api/v1/measures/lists`` (admin): compute a year's lists from a data folder under the data
  root (enterprises, evaluations, optional accounts; screening.measures) and store them, replacing
  the year's earlier lists (audited);
- ``GET /api/v1/measures/lists/{year}`` (admin, analyst; a township its own firms only);
- ``POST /api/v1/measures/ledger/upload`` (admin): a ledger workbook or CSV (table
  ``measure_ledger``), read by screening.ingest after the upload guard (size cap while it arrives,
  screening.filesafety on the workbook); one bad row and nothing is stored (422 with each row as
  Excel shows it); the quarters it holds replace the same quarters stored before (a platform's
  re-export of a quarter);
- ``GET /api/v1/measures/ledger/{year}`` (admin, analyst; a township its own rows only).
The dashboard's ``measures`` block is :func:`dashboard_block`."""
from __future__ import annotations

import datetime as dt
import json
import tempfile
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, HTTPException, Query, Request, UploadFile, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from screening.errors import ScreeningError
from screening.filesafety import FileTooLarge, FileUnreadable
from screening.ingest.discovery import EXTENSIONS, open_table
from screening.evaluation_workflow import finalized_grades
from screening.measures import OUTPUT_COLUMNS, history_from_finalized, measures, summary
from screening.measures.ledger import read_ledger
from screening.measures.policy import load_measures
from screening.paths import default_ruleset
from screening.schema import LEDGER_KINDS, UTILITIES

from ..auth import User, known_townships, nearest_townships
from ..db import audit, one_snapshot, records
from ..deps import CursorDep, allow
from .common import ERRORS, YearPath, data_folder, data_name
from .exports import _CappedUpload

router = APIRouter(prefix="/api/v1/measures", tags=["measures"])


UtilityQuery = Annotated[Literal["电", "水", "气"] | None, Query(description="类型：电、水或气（默认全部）")]
_LABEL = "上传的台账文件"
#: the file types a ledger is read from (the readers of every input table)
LEDGER_FILE_TYPES = "、".join(EXTENSIONS)


class _CappedLedger(_CappedUpload):
    """The streaming cap of the 核实表 upload, its refusal worded for the ledger."""
    refusal = (f"{_LABEL}过大（上限 {{cap}} MB）；请把台账按季度分成几份文件分别上传（{LEDGER_FILE_TYPES}；"
               "同一季度的行须在同一份文件中，后上传的季度会替换此前同季度的台账）")


# ---------------------------------------------------------------- lists

#: the years 差别化措施 lists can be computed for (and the web page shows): no link or redirect leads outside
YEARS = range(2000, 2101)


class MeasuresIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"year": 2022, "data": "upload-2022-…"}]})
    year: int = Field(ge=YEARS.start, le=YEARS.stop - 1, description="措施年度 Y：依据 Y-1 年度及以前的评价等级")
    data: str | None = Field(default=None, max_length=200,
                             description="数据目录名，位于数据根目录之下，或上传得到的 upload-…（含 enterprises、evaluations，可选 accounts）；默认即数据根目录")
    date: dt.date | None = Field(default=None, description="按哪一天执行中的政策生成（默认：该年度执行期第一天）")


@router.post("/lists", status_code=status.HTTP_201_CREATED, operation_id="measures-compute",
             responses={**ERRORS, 422: {"description": "数据目录、年度或日期无效，或数据不可读取"}},
             summary="按评价等级生成某年度供电、供水、供气单位的差别化措施名单并保存（仅 admin；替换该年度此前的名单）")
def compute_lists(body: MeasuresIn, request: Request, cursor: CursorDep,
                  user: Annotated[User, Depends(allow("admin"))]) -> dict:
    """政策表为默认规则集的 measures.yaml（数字与依据都在其中）；等级来自数据目录的 evaluations 表，
    服务中已定稿的亩均效益评价（/api/v1/evaluations）的最终等级优先于该表（名单“等级来源”列写明评价编号）。"""
    root, data = data_folder(request, body.data)
    try:
        result = measures(data, body.year, None, body.date,
                          extra_history=history_from_finalized(finalized_grades(cursor)))
    except ScreeningError as exc:
        raise HTTPException(422, str(exc).replace(str(root), "数据根目录")
                            .replace(str(Path(request.app.state.settings.uploads()).resolve()), "上传目录")) from None
    counts = summary(result)
    batch = uuid.uuid4().hex[:12]
    rows = result.rows.select(OUTPUT_COLUMNS)
    cursor.execute("BEGIN TRANSACTION")
    try:
        before = records(cursor, "SELECT batch_id, on_date, data, summary FROM measure_list_batches WHERE list_year = ?",
                         [body.year])
        cursor.execute("DELETE FROM measure_lists WHERE list_year = ?", [body.year])
        cursor.execute("DELETE FROM measure_list_batches WHERE list_year = ?", [body.year])
        cursor.register("_measure_rows", rows)
        cursor.execute(f"""INSERT INTO measure_lists SELECT ?, ?, ?, {', '.join(OUTPUT_COLUMNS)} FROM _measure_rows""",
                       [body.year, batch, result.on_date])
        cursor.unregister("_measure_rows")
        cursor.execute("INSERT INTO measure_list_batches VALUES (?, ?, ?, ?, ?, ?, now())",
                       # the folder as data_folder finds it again (runs prune keeps what a batch read from)
                       [body.year, batch, result.on_date, data_name(request.app.state.settings, data),
                        json.dumps(counts, ensure_ascii=False), user.name])
        audit(cursor, user, "measures_compute", "measures", str(body.year), before[0] if before else None,
              {"batch_id": batch, **counts})
    except BaseException:
        cursor.execute("ROLLBACK")
        raise
    cursor.execute("COMMIT")
    return {"batch_id": batch, **counts}


@router.get("/lists/{year}", operation_id="measures-list", responses=ERRORS,
            summary="某年度差别化措施名单（按类型；township 角色只看到本乡镇街道的企业）")
def get_lists(
    year: YearPath,
    cursor: CursorDep,
    user: Annotated[User, Depends(allow("admin", "analyst", "township"))],
    utility: UtilityQuery = None,
    page: Annotated[int, Query(ge=1, le=1_000_000, description="页码，从 1 开始")] = 1,
    page_size: Annotated[int, Query(ge=1, le=500, description="每页条数，最多 500")] = 100,
) -> dict:
    """每行：类型、统一社会信用代码、企业名称、乡镇街道、户号（未登记为 null，说明中注明）、等级、连续年数、
    加价标准与单位、返还比例、执行起止日期、依据与项目假设。"""
    with one_snapshot(cursor):  # the batch, the total and the page: one committed state
        return _list_page(cursor, user, year, utility, page, page_size)


def _list_page(cursor, user: User, year: int, utility: str | None, page: int, page_size: int) -> dict:
    batch = records(cursor, "SELECT batch_id, on_date, summary FROM measure_list_batches WHERE list_year = ?", [year])
    if not batch:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"{year} 年度还没有差别化措施名单，请先 POST /api/v1/measures/lists 生成")
    where, params = ["list_year = ?"], [year]
    if user.role == "township":
        where.append("township = ?")
        params.append(user.township)
    if utility:
        where.append("utility = ?")
        params.append(utility)
    clause = " AND ".join(where)
    total = cursor.execute(f"SELECT count(*) FROM measure_lists WHERE {clause}", params).fetchall()[0][0]
    items = records(cursor, f"""
        SELECT {', '.join(OUTPUT_COLUMNS)} FROM measure_lists WHERE {clause}
        ORDER BY array_position(['电', '水', '气'], utility), township, uscc, account NULLS LAST
        LIMIT ? OFFSET ?""", [*params, page_size, (page - 1) * page_size])
    return {"year": year, "date": batch[0]["on_date"], "total": total, "page": page, "page_size": page_size,
            "items": items}


# ---------------------------------------------------------------- ledger

def upload_ledger(
    request: Request,
    cursor: CursorDep,
    user: Annotated[User, Depends(allow("admin"))],
    file: Annotated[UploadFile, File(description=f"措施台账（{LEDGER_FILE_TYPES}）：年度、季度、类别、类型、统一社会信用代码、"
                                                 "企业名称、乡镇街道、计费量、金额")],
) -> Any:
    """整份文件要么全部保存，要么都不保存：有一行有误即答 422，errors 按 Excel 行号（表头为第 1 行）列出
    {row, column, reason, value}。文件中出现的（年度、季度）替换此前保存的同一季度台账（平台重新导出某季度时），
    并写入审计记录。企业的行未填乡镇街道时取该企业在差别化措施名单中的乡镇街道；仍无法确定的行拒收。"""
    settings = request.app.state.settings
    cap = settings.upload_max_bytes
    name = Path(file.filename or "").name
    suffix = Path(name).suffix.lower()
    if suffix not in EXTENSIONS:
        raise HTTPException(422, f"台账文件应为 {LEDGER_FILE_TYPES} 文件（收到“{name[:100] or '无文件名'}”）")
    data = file.file.read(cap + 1)
    if len(data) > cap:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"{_LABEL}过大（上限 {cap / 1024 / 1024:g} MB）")
    with tempfile.TemporaryDirectory(prefix="ledger-") as tmp:
        path = Path(tmp) / f"measure_ledger{suffix}"
        path.write_bytes(data)
        try:
            # the CLI reader's guard (binary in a CSV, not a workbook …), a workbook (.xlsx or .xls)
            # measured with the service's tighter caps
            open_table(path, settings.upload_limits())
            rows, rejects = read_ledger(path, load_measures(default_ruleset()).utility_aliases())
        except (FileTooLarge, FileUnreadable, ScreeningError) as exc:   # named as the user named the file
            code = status.HTTP_413_CONTENT_TOO_LARGE if isinstance(exc, FileTooLarge) else 422
            raise HTTPException(code, str(exc).replace(str(path), name).replace(path.name, name)) from None
    towns = dict(cursor.execute("SELECT DISTINCT uscc, township FROM measure_lists WHERE township IS NOT NULL").fetchall())
    errors = [{"row": r["row"], "column": r["column"], "reason": r["reason"], "value": r["value"]}
              for r in rejects.to_dicts()]
    # the townships the service knows: a row under any other (柳市 for 柳市镇, a typing error) would be
    # seen by no township user and counted on the dashboard under a name nobody has
    known = sorted(set(known_townships(cursor)) | set(towns.values()) | {t for (t,) in cursor.execute(
        "SELECT DISTINCT township FROM users WHERE township IS NOT NULL").fetchall()})
    entries = []
    for r in rows.to_dicts():
        listed = towns.get(r["uscc"])
        township = r["township"] or listed
        if township is None:
            errors.append({"row": r["row"], "column": "乡镇街道", "value": r["uscc"],
                           "reason": "未填乡镇街道，且该企业不在差别化措施名单中，无法确定属地"})
        elif listed is not None and township != listed:  # a township would see another's firm
            errors.append({"row": r["row"], "column": "乡镇街道", "value": township,
                           "reason": f"与该企业在差别化措施名单中的乡镇街道“{listed}”不一致"})
        elif known and township not in known:
            near = nearest_townships(township, known)
            errors.append({"row": r["row"], "column": "乡镇街道", "value": township,
                           "reason": f"乡镇街道“{township}”不在已保存的企业名录、差别化措施名单和乡镇街道用户中"
                                     + (f"；是否指：{'、'.join(near)}？" if near else "")})
        entries.append({**r, "township": township})
    if errors:
        errors.sort(key=lambda e: (e["row"], e["column"] or ""))
        listed = errors[:settings.upload_errors_listed]
        return JSONResponse(status_code=422, content={
            "detail": f"台账有 {len({e['row'] for e in errors}):,} 行有误，整份文件未保存；请按行号改正后重新上传",
            "errors": listed, "errors_total": len(errors), "errors_omitted": len(errors) - len(listed)})
    if not entries:
        raise HTTPException(422, "台账没有数据行")
    batch = uuid.uuid4().hex[:12]
    quarters = sorted({(e["year"], e["quarter"]) for e in entries})
    cursor.execute("BEGIN TRANSACTION")
    try:
        replaced = 0
        for year, quarter in quarters:
            replaced += cursor.execute("SELECT count(*) FROM measure_ledger WHERE year = ? AND quarter = ?",
                                       [year, quarter]).fetchall()[0][0]
            cursor.execute("DELETE FROM measure_ledger WHERE year = ? AND quarter = ?", [year, quarter])
        cursor.executemany("INSERT INTO measure_ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())", [
            [uuid.uuid4().hex, batch, e["year"], e["quarter"], e["kind"], e["utility"], e["uscc"], e["name"],
             e["township"], e["quantity"], e["amount"], e["note"], name, e["row"], user.name] for e in entries])
        # amounts so large that a year's total leaves the range of a number: the dashboard and the
        # totals would show nothing (null) for the year; refuse the file instead
        overflow = cursor.execute("SELECT year FROM measure_ledger GROUP BY year HAVING NOT isfinite(sum(amount)) "
                                  "ORDER BY year").fetchall()
        if overflow:
            raise HTTPException(422, f"台账金额合计超出数值范围（{'、'.join(str(y) for (y,) in overflow)} 年度），"
                                     "请检查金额单位和数值；整份文件未保存")
        audit(cursor, user, "measures_ledger_import", "measure_ledger", batch, {"replaced_rows": replaced} if replaced else None,
              {"file": name, "rows": len(entries), "quarters": [f"{y}Q{q}" for y, q in quarters]})
    except BaseException:
        cursor.execute("ROLLBACK")
        raise
    cursor.execute("COMMIT")
    return {"batch_id": batch, "stored": len(entries), "replaced": replaced,
            "quarters": [{"year": y, "quarter": q} for y, q in quarters]}


router.add_api_route(
    "/ledger/upload", upload_ledger, methods=["POST"], status_code=status.HTTP_201_CREATED,
    operation_id="measures-ledger-upload", route_class_override=_CappedLedger,
    summary="上传差别化措施季度台账（Excel 或 CSV，仅 admin；整份文件要么全部保存，要么都不保存）",
    responses={**ERRORS, 201: {"description": "{batch_id, stored: 保存的行数, replaced: 被替换的旧行数, quarters}"},
               413: {"description": "文件过大，或工作簿解压后过大（见 docs/limits.md）"},
               422: {"description": "文件不可读取或缺少列，或有行不合格：errors 按行号（表头为第 1 行）列出 "
                                    "{row, column, reason, value}，不保存任何一行"}})


@router.get("/ledger/{year}", operation_id="measures-ledger", responses=ERRORS,
            summary="某年度差别化措施台账（按季度、类型、类别汇总与明细；township 角色只看到本乡镇街道）")
def get_ledger(
    year: YearPath,
    cursor: CursorDep,
    user: Annotated[User, Depends(allow("admin", "analyst", "township"))],
    utility: UtilityQuery = None,
    quarter: Annotated[int | None, Query(ge=1, le=4, description="季度 1—4（默认全部）")] = None,
) -> dict:
    clause, params = _ledger_rows(user, year, utility, quarter)
    with one_snapshot(cursor):  # the rows and their totals: one committed state
        items = records(cursor, f"""
            SELECT year, quarter, kind, utility, uscc, name, township, quantity, amount, note, source_file, source_row
            FROM measure_ledger WHERE {clause} ORDER BY quarter, township, uscc NULLS LAST, kind, utility""", params)
        totals = ledger_totals(cursor, user, year, utility, quarter)
    return {"year": year, "unit": "万元", "kinds": list(LEDGER_KINDS), "totals": totals, "items": items}


def _ledger_rows(user: User, year: int, utility: str | None, quarter: int | None) -> tuple[str, list]:
    """The WHERE (fixed column tests) and parameters of a year's ledger rows as ``user`` may see them."""
    where, params = ["year = ?"], [year]
    for column, value in (("township", user.township if user.role == "township" else None), ("utility", utility),
                          ("quarter", quarter)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    return " AND ".join(where), params


def ledger_totals(cursor, user: User, year: int, utility: str | None = None, quarter: int | None = None) -> list[dict]:
    """The ledger's rows and amounts (万元) per quarter, utility and kind, as ``user`` may see them
    (the web page reads these alone, never the rows)."""
    clause, params = _ledger_rows(user, year, utility, quarter)
    return records(cursor, f"""
        SELECT quarter, utility, kind, count(*) AS rows, sum(amount) AS amount_wan_yuan
        FROM measure_ledger WHERE {clause} GROUP BY ALL ORDER BY quarter, utility NULLS LAST, kind""", params)


# ---------------------------------------------------------------- dashboard

def dashboard_block(cursor, year: int) -> dict:
    """The dashboard's ``measures`` block (aggregates only): the year's lists per utility and the
    ledger's amounts per quarter and kind (万元)."""
    batch = records(cursor, "SELECT on_date, summary FROM measure_list_batches WHERE list_year = ?", [year])
    lists = None
    if batch:
        counts = json.loads(batch[0]["summary"])
        lists = {"date": batch[0]["on_date"].isoformat(), "by_utility": counts["by_utility"]}
    ledger = records(cursor, """
        SELECT quarter, kind, sum(amount) AS amount FROM measure_ledger WHERE year = ?
        GROUP BY ALL ORDER BY quarter, kind""", [year])
    by_quarter = [{"quarter": q, **{k: round(sum(r["amount"] for r in ledger if r["quarter"] == q and r["kind"] == k), 4)
                                    for k in LEDGER_KINDS}} for q in range(1, 5)]
    totals = {k: round(sum(r["amount"] for r in ledger if r["kind"] == k), 4) for k in LEDGER_KINDS}
    return {"lists": lists, "ledger": {"unit": "万元", "kinds": list(LEDGER_KINDS), "by_quarter": by_quarter,
                                       "totals": totals, "has_rows": bool(ledger)},
            "utilities": list(UTILITIES)}
