"""A township's list as Excel or CSV, and the filled-in Excel sheet uploaded back as verifications.

The Excel export is also the form for 属地核实: the columns 核实结果 (drop-down 确认/异议), 异议原因 and
备注 are left empty for the township to fill in offline.  The upload validates every filled row and
stores all of them in one transaction, or none of them (422 with the bad rows by row number).  A row
equal to the firm's latest verification is not stored again; the upload's size, inflated size and
sheet extent are capped before the workbook is parsed (:mod:`screening.filesafety`, docs/limits.md).
"""
from __future__ import annotations

import datetime as dt
import io
import re
import uuid
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal
from urllib.parse import quote

import polars as pl
from fastapi import APIRouter, Depends, File, HTTPException, Query, Request, UploadFile, status
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.types import Message

from screening import clock, filesafety
from screening.filesafety import FileTooLarge, FileUnreadable, Limits

from screening.csvsafe import csv_bytes
from screening.excel import (ANOMALY_COLUMN, LIST_COLUMNS, WORKBOOK_OPTIONS, Workbook, _formats, _list_sheet,
                             print_setup, sheet_name)
from screening.store import results_relation

from ..auth import User
from ..db import audit, finalized, one_snapshot, run_catalogue, table_exists
from ..deps import CursorDep, ReadModelDep, allow
from ..schemas import VerificationIn
from .common import ERRORS, YearPath, run_for_year, served_run, township_scope

router = APIRouter(prefix="/api/v1/lists", tags=["exports"])

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_TYPE = "text/csv; charset=utf-8"

# the firm's current verification status (the latest verification, as in GET /lists/{year})
STATUS_ZH = {"pending": "待核实", "confirmed": "确认", "disputed": "异议"}
STATUS_COLUMNS: tuple[tuple[str, str, int, str], ...] = (
    ("verification_status", "核实状态", 9, "text"),
    ("verification_reason", "最近核实原因", 20, "wrap"),
    ("verified_by", "最近核实人", 10, "text"),
    ("verified_at", f"最近核实时间（{clock.label()}）", 17, "text"),
)

# the columns the township fills in (left empty in the download)
USCC_HEADER, OUTCOME_HEADER, REASON_HEADER, NOTE_HEADER = "统一社会信用代码", "核实结果", "异议原因", "备注"
FILL_COLUMNS: tuple[tuple[str, str, int, str], ...] = (
    ("fill_outcome", OUTCOME_HEADER, 10, "text"),
    ("fill_reason", REASON_HEADER, 30, "wrap"),
    ("fill_note", NOTE_HEADER, 30, "wrap"),
)
REQUIRED_HEADERS = (USCC_HEADER, OUTCOME_HEADER, REASON_HEADER)
OUTCOMES = {"确认": "confirmed", "异议": "disputed", "confirmed": "confirmed", "disputed": "disputed"}
FIELD_HEADERS = {"outcome": OUTCOME_HEADER, "reason": REASON_HEADER, "note": NOTE_HEADER}

_EXPORT_SQL = """
WITH hits AS (
    SELECT uscc, string_agg(coalesce(rule_title, rule_id), '；' ORDER BY rule_id) AS rule_titles
    FROM {hits} GROUP BY uscc
),
latest AS (
    SELECT uscc, outcome, reason, created_by, created_at FROM verifications WHERE list_year = $year
    QUALIFY row_number() OVER (PARTITION BY uscc ORDER BY created_at DESC, verification_id DESC) = 1
)
SELECT row_number() OVER (ORDER BY l.township, l.uscc) AS list_no,
       l.* EXCLUDE (run_id, list_year),
       coalesce(h.rule_titles, l.rule_ids) AS rule_titles,
       coalesce(v.outcome, 'pending') AS verification_status,
       v.reason AS verification_reason,
       v.created_by AS verified_by,
       strftime(timezone($zone, v.created_at), '%Y-%m-%d %H:%M') AS verified_at
FROM run_list l
LEFT JOIN hits h USING (uscc)
LEFT JOIN latest v USING (uscc)
WHERE l.run_id = $run AND ($township IS NULL OR l.township = $township)
ORDER BY l.township, l.uscc
"""

_UNSAFE_NAME = re.compile(r'[\\/:*?"<>|\x00-\x1f]')


def _disposition(filename: str, fallback: str) -> str:
    """attachment; an ASCII fallback for old clients and the UTF-8 name per RFC 5987/6266."""
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _export_frame(cursor, year: int, run: str, township: str | None) -> pl.DataFrame:
    frame = cursor.sql(_EXPORT_SQL.format(
        hits=results_relation(cursor, "(SELECT * FROM run_results WHERE run_id = $run AND status = 'hit')")),
                       params={"run": run, "year": year, "township": township, "zone": clock.zone_name()}).pl()
    frame = frame.join(_anomaly_notes(cursor, run), on="uscc", how="left", maintain_order="left")
    return frame.with_columns(pl.col("verification_status").replace_strict(STATUS_ZH, default=pl.col("verification_status")))


def _anomaly_notes(cursor, run: str) -> pl.DataFrame:
    """数据核查提示（仅供参考） of the run's flagged firms; none from a database older than the check."""
    if not table_exists(cursor, "run_anomalies"):
        return pl.DataFrame(schema={"uscc": pl.String, "anomaly_note": pl.String})
    return cursor.sql("SELECT uscc, indicators AS anomaly_note FROM run_anomalies WHERE run_id = $run AND flagged",
                      params={"run": run}).pl()


def _csv(frame: pl.DataFrame) -> bytes:
    columns = (*LIST_COLUMNS, *STATUS_COLUMNS, ANOMALY_COLUMN)
    # float noise such as 5.220000000000001 rounded away; the Excel cells keep full precision
    out = frame.select(pl.col(c).alias(header) for c, header, *_ in columns).with_columns(
        pl.col(pl.Float64).round(6))
    # with a BOM (Excel then reads UTF-8); text that a spreadsheet would run as a formula neutralised
    return csv_bytes(out)


def _xlsx(frame: pl.DataFrame, year: int, run: str, township: str | None) -> bytes:
    # the rule titles say which rules hit; their program codes (rule_ids) stay off the form people fill in
    columns = (*(c for c in LIST_COLUMNS if c[0] != "rule_ids"), *STATUS_COLUMNS, ANOMALY_COLUMN, *FILL_COLUMNS)
    frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(c) for c, *_ in FILL_COLUMNS)
    buffer = io.BytesIO()
    with Workbook(buffer, {**WORKBOOK_OPTIONS, "in_memory": True}) as wb:
        fmts = _formats(wb)
        used: set[str] = {"填写说明"}
        name = sheet_name(township or "整治企业清单", used)
        _list_sheet(wb, fmts, name, frame, columns)   # header, widths, frozen header and first columns, filter
        ws = wb.get_worksheet_by_name(name)
        first_fill = len(columns) - len(FILL_COLUMNS)
        fill_header = wb.add_format({"font_name": "等线", "font_size": 10, "bold": True, "bg_color": "#FFF2CC",
                                     "border": 1, "text_wrap": True, "valign": "vcenter", "align": "center"})
        for c, (_, header, _w, _k) in enumerate(FILL_COLUMNS, start=first_fill):
            ws.write_string(0, c, header, fill_header)
        if frame.height:
            ws.data_validation(1, first_fill, frame.height, first_fill, {
                "validate": "list", "source": ["确认", "异议"], "ignore_blank": True,
                "input_title": "核实结果", "input_message": "请选择：确认 或 异议（选择异议须填写异议原因）",
                "error_title": "核实结果无效", "error_message": "只能选择“确认”或“异议”", "error_type": "stop",
            })
        # printed to be filled in by hand in the township, as the run's workbook prints (docs/print.md):
        # landscape A4, one page wide, the header on every page, title and run in the page header
        print_setup(ws, f"{year}年度高耗低效整治企业属地核实表（{township or '全部乡镇街道'}）",
                    f"运行编号 {run}　导出时间 {clock.stamp()}")
        # the form is twice as wide as the list: two pages wide, printed across then down, so the
        # columns to fill in come right after the evidence they judge; 序号、代码、名称 on every page
        ws.fit_to_pages(2, 0)
        ws.repeat_columns(0, 2)
        ws.print_across()
        _instructions(wb, fmts, year, run, township, name)
    return buffer.getvalue()


def _instructions(wb: Workbook, fmts: dict[str, Any], year: int, run: str, township: str | None,
                  sheet: str) -> None:
    ws = wb.add_worksheet("填写说明")
    ws.set_column(0, 0, 100)
    lines = [
        f"{year}年度高耗低效整治企业清单：属地核实表（{township or '全部乡镇街道'}）",
        f"运行编号：{run}；导出时间：{clock.stamp()}",
        f"1. 在工作表“{sheet}”的“核实结果”列下拉选择“确认”或“异议”；选择“异议”时必须填写“异议原因”，“备注”可选。",
        "2. 未填写“核实结果”的行不会提交，可以分批填写、多次上传；“核实状态”等列是导出时的状态，仅供参考。",
        "3. 请勿修改“统一社会信用代码”列和表头；可以删除不需要的行，但不要改动企业与代码的对应关系。",
        ("4. 填好后登录网页，在“清单”页点“核实表下载与上传”，选择本文件上传。只要有一行有误，整份文件都不保存，"
         "并按行号列出每一处问题；改正后重新上传即可。"),
    ]
    ws.write_string(0, 0, lines[0], fmts["title"])
    for r, line in enumerate(lines[1:], start=2):
        ws.write_string(r, 0, line, fmts["wrap"])


@router.get("/{year}/export", response_class=Response, operation_id="lists-export",
            summary="导出某年度清单（Excel 核实表或 CSV），附当前属地核实状态",
            responses={**ERRORS, 200: {"description": "xlsx：带“核实结果”下拉框的核实表；csv：UTF-8（带 BOM）",
                                       "content": {XLSX_TYPE: {}, "text/csv": {}}}})
def export_list(
    year: YearPath,
    cursor: CursorDep,
    model: ReadModelDep,
    user: Annotated[User, Depends(allow("admin", "analyst", "township"))],
    fmt: Annotated[Literal["xlsx", "csv"], Query(alias="format", description="xlsx（默认）或 csv")] = "xlsx",
    township: Annotated[str | None, Query(description="乡镇街道（默认：全部；须为该次筛选中的乡镇街道）；"
                                                      "township 角色总是本乡镇街道")] = None,
) -> Response:
    """Excel 核实表的“核实结果”（下拉：确认/异议）、“异议原因”“备注”三列留空，由乡镇街道离线填写后上传。

    导出该年度的清单：定稿后为定稿所依据的筛选，定稿前为最新一次筛选（与 GET /lists/{year} 相同）。"""
    with one_snapshot(cursor):  # the run, its rows and their verification status: one state
        stored = served_run(run_catalogue(cursor), year)
        township = township_scope(user, township, [] if user.role == "township"
                                  else model.run_list(cursor, stored).townships)
        run = stored.run_id
        frame = _export_frame(cursor, year, run, township)
    if township is not None and frame.is_empty():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{year} 年度清单中没有 {township} 的企业")
    stem = f"{year}年度整治企业清单_{_UNSAFE_NAME.sub('_', township or '全部')}"
    fallback = f"list_{year}"
    if fmt == "csv":
        body, media, filename, fallback = _csv(frame), CSV_TYPE, f"{stem}.csv", f"{fallback}.csv"
    else:
        body, media, filename, fallback = (_xlsx(frame, year, run, township), XLSX_TYPE, f"{stem}_核实表.xlsx",
                                           f"{fallback}.xlsx")
    return Response(body, media_type=media, headers={"Content-Disposition": _disposition(filename, fallback),
                                                     "Cache-Control": "no-store"})


# ---------------------------------------------------------------------------------------------- upload

class BadWorkbook(Exception):
    """The file is not a workbook, or no sheet has the form's columns."""


UPLOAD_LABEL = "上传的文件"
_RESEND = "请上传从本系统导出并填写的核实表（.xlsx）"


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _read_sheets(data: bytes) -> dict[str, pl.DataFrame]:
    """Every sheet as text cells, without a header and without dropping empty rows (read_excel drops them
    by default, and calamine otherwise starts at the first non-empty row), so index + 1 is Excel's row."""
    return pl.read_excel(io.BytesIO(data), engine="calamine", sheet_id=0, infer_schema_length=0,
                         has_header=False, drop_empty_rows=False, drop_empty_cols=False,
                         raise_if_empty=False, read_options={"header_row": None, "skip_rows": 0})


def _read_form(data: bytes, year: int, limits: Limits) -> list[tuple[int, dict[str, str]]]:
    """[(spreadsheet row number, {header: text})] of the first sheet that has the form's columns.

    The workbook is measured first (:func:`screening.filesafety.check_workbook`): one that would
    inflate beyond the caps raises :class:`FileTooLarge` and never reaches the reader."""
    filesafety.require_kind(data[:filesafety.HEAD_BYTES], "zip", UPLOAD_LABEL, "有效的 Excel 工作簿（.xlsx）")
    filesafety.check_workbook(io.BytesIO(data), UPLOAD_LABEL, limits)
    with filesafety.reader_errors(UPLOAD_LABEL, "无法按 Excel 工作簿读取"):
        sheets = _read_sheets(data)
    for frame in sheets.values():
        rows = frame.rows()
        for h, row in enumerate(rows[:20]):   # the header: row 1 in the exported form
            headers = [_text(v) for v in row]
            if all(name in headers for name in REQUIRED_HEADERS):
                index = {name: headers.index(name) for name in (*REQUIRED_HEADERS, NOTE_HEADER) if name in headers}
                return [(r + 1, {name: _text(values[i]) for name, i in index.items()})
                        for r, values in enumerate(rows[h + 1:], start=h + 1)]
    raise BadWorkbook(f"工作簿中没有包含“{'”“'.join(REQUIRED_HEADERS)}”列的工作表；请使用本系统导出的核实表"
                      f"（GET /api/v1/lists/{year}/export?format=xlsx）填写后上传")


def _row_problems(row: dict[str, str], year: int) -> tuple[list[tuple[str, str]], VerificationIn | None]:
    """One filled row's outcome, reason and note, checked by the same model as the POST route."""
    given = row[OUTCOME_HEADER]
    outcome = OUTCOMES.get(given) or OUTCOMES.get(given.lower())
    if outcome is None:
        return [(OUTCOME_HEADER, f"核实结果应为“确认”或“异议”，填写的是“{given}”")], None
    try:
        body = VerificationIn(year=year, outcome=outcome, reason=row[REASON_HEADER] or None,
                              note=row.get(NOTE_HEADER) or None)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = err.get("loc") or ()
            column = FIELD_HEADERS.get(str(loc[0]), str(loc[0])) if loc else REASON_HEADER
            if not loc:  # the model's own rule: a dispute needs a reason
                problems.append((REASON_HEADER, "核实结果为“异议”时必须填写异议原因"))
            elif err["type"] == "string_too_long":
                problems.append((column, f"{column}最多 {err['ctx']['max_length']} 个字符"))
            else:
                problems.append((column, str(err["msg"]).removeprefix("Value error, ")))
        return problems, None
    return [], body


def _validate(rows: list[tuple[int, dict[str, str]]], listed: dict[str, str | None], user: User, year: int
              ) -> tuple[list[dict[str, Any]], list[tuple[int, str, VerificationIn]], int]:
    """(errors, accepted rows, skipped rows): every filled row is checked, all problems are reported."""
    errors: list[dict[str, Any]] = []
    accepted: list[tuple[int, str, VerificationIn]] = []
    first_row: dict[str, int] = {}
    skipped = 0
    for number, row in rows:
        code = row[USCC_HEADER].upper()
        if not row[OUTCOME_HEADER]:
            skipped += any(row.values())   # a row with nothing in it is not counted at all
            continue
        problems: list[tuple[str, str]] = []
        if not code:
            problems.append((USCC_HEADER, "缺少统一社会信用代码"))
        elif code not in listed or not user.sees(listed[code]):
            # for a township, another township's firm looks the same as a firm that is not listed
            where = f"本乡镇街道（{user.township}）的" if user.role == "township" else ""
            problems.append((USCC_HEADER, f"该企业不在{where} {year} 年度清单中"))
        elif code in first_row:
            problems.append((USCC_HEADER, f"与第 {first_row[code]} 行是同一家企业，一份文件中每家企业只能填写一次"))
        else:
            first_row[code] = number
        more, body = _row_problems(row, year)
        problems += more
        errors += [{"row": number, "column": column, "reason": reason,
                    "value": code if column == USCC_HEADER else row.get(column, "")} for column, reason in problems]
        if body is not None and not problems:
            accepted.append((number, code, body))
    return errors, accepted, skipped


def _too_many_rows(rows: list[tuple[int, dict[str, str]]], listed: dict[str, str | None], user: User,
                   year: int) -> str | None:
    """A file can hold at most one filled row per firm the user may verify: more is refused at once,
    before any row is checked (the error list of such a file would be the file)."""
    filled = sum(1 for _, row in rows if row[OUTCOME_HEADER])
    reach = sum(1 for township in listed.values() if user.sees(township))
    if filled <= reach:
        return None
    scope = f"本乡镇街道（{user.township}）" if user.role == "township" else ""
    return (f"核实表填写了 {filled:,} 行核实结果，多于{scope} {year} 年度清单中的 {reach:,} 家企业"
            f"（每家企业只能填写一次），整份文件未保存；{_RESEND}")


def _error_answer(errors: list[dict[str, Any]], listed_max: int) -> JSONResponse:
    """422 with the first ``listed_max`` problems and the count of the rest."""
    rows = len({e["row"] for e in errors})
    detail = f"核实表有 {rows:,} 行有误，整份文件未保存；请按行号改正后重新上传"
    omitted = max(0, len(errors) - listed_max)
    if omitted:
        detail += f"（共 {len(errors):,} 处问题，下面列出前 {listed_max:,} 处，另有 {omitted:,} 处未列出）"
    return JSONResponse(status_code=422, content={
        "detail": detail, "errors": errors[:listed_max], "errors_total": len(errors), "errors_omitted": omitted})


_LATEST_SQL = """
SELECT uscc, outcome, reason, note FROM verifications WHERE list_year = ?
QUALIFY row_number() OVER (PARTITION BY uscc ORDER BY created_at DESC, verification_id DESC) = 1
"""


def _record(body: VerificationIn) -> tuple[str, str | None, str | None]:
    """(outcome, reason, note) as stored, the same for a new row and for the firm's latest one."""
    return body.outcome, (body.reason or "").strip() or None, (body.note or "").strip() or None


def _store(cursor, user: User, year: int, run: str, accepted: list[tuple[int, str, VerificationIn]],
           filename: str | None) -> tuple[int, int]:
    """The same rows and audit lines as POST /enterprises/{uscc}/verifications, one per accepted row
    that differs from the firm's latest verification of the year; (stored, unchanged).

    A row equal to the latest one (same outcome, reason and note) is not stored again: uploading the
    same sheet twice leaves the record as it was."""
    latest = {uscc: (outcome, reason, note)
              for uscc, outcome, reason, note in cursor.execute(_LATEST_SQL, [year]).fetchall()}
    now = dt.datetime.now(dt.timezone.utc)
    stored = 0
    for number, code, body in accepted:
        outcome, reason, note = _record(body)
        if latest.get(code) == (outcome, reason, note):
            continue
        record = {
            "verification_id": uuid.uuid4().hex, "uscc": code, "year": year, "run_id": run,
            "outcome": outcome, "reason": reason, "note": note, "created_by": user.name, "created_at": now,
        }
        cursor.execute("INSERT INTO verifications VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       [record["verification_id"], code, year, run, outcome, reason, note, user.name, now])
        audit(cursor, user, "verify", "enterprise", f"{year}/{code}", None,
              {**record, "upload": {"file": filename, "row": number}})
        stored += 1
    return stored, len(accepted) - stored


def _stored_message(stored: int, unchanged: int, skipped: int) -> str:
    parts = [f"新保存 {stored:,} 条核实结果"]
    if unchanged:
        parts.append(f"{unchanged:,} 行与该企业最近一次核实结果相同，未重复保存")
    if skipped:
        parts.append(f"{skipped:,} 行未填写核实结果，已跳过")
    return "；".join(parts)


class _CappedUpload(APIRoute):
    """Reads the request body as a stream and refuses it (413) as soon as it exceeds the
    ``upload_max_bytes`` setting: a declared Content-Length above the cap is refused before any
    byte is read, and a body without one is counted while it arrives, so no oversized upload is
    ever spooled in full.  A subclass names its own file and what to send instead (``refusal``)."""

    #: the 413's message, ``{cap}`` the cap in MB
    refusal = f"{UPLOAD_LABEL}过大（上限 {{cap}} MB）；{_RESEND}"

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def capped(request: Request) -> Response:
            cap = request.app.state.settings.upload_max_bytes
            too_large = HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                                      self.refusal.format(cap=f"{cap / 1024 / 1024:g}"))
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > cap:
                raise too_large
            receive, received = request.receive, 0

            async def counted() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > cap:
                        raise too_large
                return message

            return await handler(Request(request.scope, counted))

        return capped


def upload_verifications(
    request: Request,
    year: YearPath,
    cursor: CursorDep,
    user: Annotated[User, Depends(allow("admin", "township"))],
    file: Annotated[UploadFile, File(description="从 GET /api/v1/lists/{year}/export?format=xlsx 下载并填写的核实表")],
) -> Any:
    """逐行校验：企业须在该年度清单中且属于本乡镇街道；核实结果为确认或异议（也接受 confirmed/disputed）；
    异议须填写原因。未填核实结果的行跳过；与该企业最近一次核实结果（结果、原因、备注）相同的行不重复保存。
    其余每行记为一条核实记录（与 POST /enterprises/{uscc}/verifications 相同），并逐条写入审计记录。
    文件大小、解压后大小、工作表行列数都有上限（见 docs/limits.md），超出时答 413，不读取文件内容。"""
    settings = request.app.state.settings
    run_for_year(cursor, year)
    if finalized(cursor, year):
        raise HTTPException(status.HTTP_409_CONFLICT, f"{year} 年度清单已定稿，不能再提交核实结果")
    cap = settings.upload_max_bytes
    data = file.file.read(cap + 1)
    if len(data) > cap:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"{UPLOAD_LABEL}过大（上限 {cap / 1024 / 1024:g} MB）；{_RESEND}")
    try:
        rows = _read_form(data, year, settings.upload_limits())
    except FileTooLarge as exc:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, str(exc)) from None
    except FileUnreadable as exc:
        return JSONResponse(status_code=422, content={"detail": f"{exc}；{_RESEND}"})
    except BadWorkbook as exc:
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    # checked and written in one transaction: a finalization or a new run cannot slip in between
    cursor.execute("BEGIN TRANSACTION")
    try:
        if finalized(cursor, year):
            raise HTTPException(status.HTTP_409_CONFLICT, f"{year} 年度清单已定稿，不能再提交核实结果")
        run = run_for_year(cursor, year)
        listed = dict(cursor.execute("SELECT uscc, township FROM run_list WHERE run_id = ?", [run]).fetchall())
        refusal = _too_many_rows(rows, listed, user, year)
        errors, accepted, skipped = ([], [], 0) if refusal else _validate(rows, listed, user, year)
        if not errors and not refusal:
            stored, unchanged = _store(cursor, user, year, run, accepted, file.filename)
    except BaseException:
        cursor.execute("ROLLBACK")
        raise
    if refusal or errors:
        cursor.execute("ROLLBACK")
        if refusal:
            return JSONResponse(status_code=422, content={"detail": refusal})
        return _error_answer(errors, settings.upload_errors_listed)
    cursor.execute("COMMIT")
    return {"stored": stored, "unchanged": unchanged, "skipped": skipped,
            "message": _stored_message(stored, unchanged, skipped)}


router.add_api_route(
    "/{year}/verifications/upload", upload_verifications, methods=["POST"], status_code=status.HTTP_201_CREATED,
    operation_id="lists-upload-verifications", route_class_override=_CappedUpload,
    summary="上传填好的 Excel 核实表，批量记录属地核实结果（整份文件要么全部保存，要么都不保存）",
    responses={**ERRORS,
               201: {"description": "已保存：{stored: 新保存的行数, unchanged: 与最近一次核实结果相同而未重复保存的行数, "
                                    "skipped: 未填核实结果而跳过的行数, message: 中文说明}"},
               409: {"description": "该年度清单已定稿"},
               413: {"description": "文件过大：上传的字节数、解压后大小、压缩比、工作表行列数超过上限（见 docs/limits.md）"},
               422: {"description": "文件不是 Excel 工作簿或缺少核实表的列（只有 detail）；填写的行多于清单企业数；或有行不合格："
                                    "errors 按行号（表头为第 1 行）列出 {row, column, reason, value}（最多列出前若干处，"
                                    "errors_total 为总数，errors_omitted 为未列出的处数），不保存任何一行"}})
