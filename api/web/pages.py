"""The pages.  Each page is another view of an API route: it calls that route's function with
the same dependencies (cursor, read model, the user admitted by the same ``allow`` roles), so
the role and township rules, the one-snapshot reads and the checks are the API's own.
A refused write renders the page again with the route's Chinese message."""
from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import typing
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, Response, UploadFile, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool
from pydantic import TypeAdapter, ValidationError

from screening.evaluation_method import shipped_methods
from screening.evaluation_workflow import CORRECTABLE
from screening.ingest.report import COVERAGE_TABLES, TABLE_HEADERS, table_rows
from screening.projects import AUTHORITY_ZH as PROJECT_AUTHORITY
from screening.projects import STATUS_ZH as PROJECT_STATUS
from screening.store import rules_relation
from screening.uscc import PATTERN as USCC_PATTERN, as_typed

from ..auth import ROLES, User, check_password, check_password_rules, generate_password, set_password
from ..db import audit, one_write, records, run_catalogue
from ..deps import CursorDep, ReadModelDep, allow, current_user
from ..routes import (backups, dashboard, data, enterprises, evaluations, evidence, exports, finalization, health, lists,
                      measures, plans, projects, runs, users)
from ..routes.finalization import DecisionIn, FinalizeIn
from ..routes.plans import PlanIn, ProgressIn
from ..schemas import VerificationIn
from ..session import COOKIE, address_key, current_session, name_key
from .templating import STANDING, render

router = APIRouter(include_in_schema=False)

LOGIN_CSRF_COOKIE = "screening_login_csrf"
ANY_ROLE = ("admin", "township", "analyst", "dashboard")
HOME = {"admin": "/workbench", "township": "/lists", "analyst": "/workbench", "dashboard": "/screen"}


def _page_user(*roles: str):
    """``allow(*roles)`` (the API's rule), remembering the user for the error page's menu."""
    admitted = allow(*roles)

    async def check(request: Request, user: Annotated[User, Depends(current_user)]) -> User:
        request.state.web_user = user
        return await admitted(user)
    return check


def _chinese(request: Request, exc: ValidationError) -> str:
    message = request.app.state.validation_message  # the API's own wording (api.main)
    return "；".join(
        (f"{'.'.join(str(p) for p in err.get('loc', ()))}：" if err.get("loc") else "") + message(err)
        for err in exc.errors())


def _model(request: Request, cls, data: dict[str, Any]):
    """The API's request body from a form (422 with the API's Chinese message when invalid)."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise HTTPException(422, f"填写内容无效：{_chinese(request, exc)}") from None


_HINTS: dict[int, dict[str, Any]] = {}


def _query(request: Request, func, name: str, value: str | None):
    """A query value checked by the API route's own annotation for ``name`` ('' means not given)."""
    if value is None or value.strip() == "":
        return None
    hints = _HINTS.setdefault(id(func), typing.get_type_hints(func, include_extras=True))
    try:
        return TypeAdapter(hints[name]).validate_python(value.strip())
    except ValidationError as exc:
        raise HTTPException(422, f"筛选条件 {name} 无效：{_chinese(request, exc)}") from None


def _year(model, cursor, year: int | None) -> int:
    year = year if year is not None else model.catalogue(cursor).default_year()
    if year is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "还没有任何筛选结果")
    return year


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


# ---------------------------------------------------------------- sign-in

@router.get("/login")
def login_page(request: Request) -> HTMLResponse:
    return _login_form(request)


def _login_form(request: Request, error: str | None = None, name: str = "", code: int = 200) -> HTMLResponse:
    token = secrets.token_urlsafe(32)  # double-submit: the form field must match this cookie
    response = render(request, "login.html", status_code=code, user=None, title="登录", error=error, name=name,
                      login_csrf=token)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/login",
                        secure=request.app.state.settings.cookie_secure)
    return response


@router.post("/login")
def login(request: Request, cursor: CursorDep, name: Annotated[str, Form(max_length=200)] = "",
          password: Annotated[str, Form(max_length=1000)] = "",
          csrf_token: Annotated[str, Form(max_length=200)] = "") -> Response:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not secrets.compare_digest(cookie, csrf_token):
        return _login_form(request, "表单已过期，请重新登录", name, status.HTTP_403_FORBIDDEN)
    name = name.strip()
    throttle, client = request.app.state.login_throttle, _client(request)
    keys = (name_key(name), address_key(client))
    wait = throttle.wait(*keys)
    if wait:
        return _login_form(request, f"登录失败次数过多，请 {wait} 秒后再试", name, status.HTTP_429_TOO_MANY_REQUESTS)
    user = check_password(cursor, name, password) if name and password else None
    who = User("-", name[:64] or "（空）", "-", None)
    if user is None:
        throttle.fail(*keys)
        audit(cursor, who, "login_failed", "session", name[:64], None, {"client": client})
        return _login_form(request, "用户名或密码不正确", name, status.HTTP_401_UNAUTHORIZED)
    throttle.clear(keys[0])
    sessions = request.app.state.web_sessions
    sessions.drop(request.cookies.get(COOKIE))  # a fresh id at every sign-in
    session_id, _ = sessions.create(user.user_id)
    audit(cursor, user, "login", "session", user.name, None, {"client": client})
    response = _see_other(HOME[user.role])
    response.set_cookie(COOKIE, session_id, httponly=True, samesite="strict", path="/",
                        secure=request.app.state.settings.cookie_secure)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, cursor: CursorDep, user: Annotated[User, Depends(_page_user(*ANY_ROLE))]) -> Response:
    request.app.state.web_sessions.drop(request.cookies.get(COOKIE))
    audit(cursor, user, "logout", "session", user.name, None, None)
    response = _see_other("/login")
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/")
def home(user: Annotated[User, Depends(_page_user(*ANY_ROLE))]) -> Response:
    return _see_other(HOME[user.role])


@router.get("/account")
def account(request: Request, user: Annotated[User, Depends(_page_user(*ANY_ROLE))]) -> HTMLResponse:
    return render(request, "account.html", user=user, title="修改密码", message=None, error=None)


@router.post("/account")
def change_password(request: Request, cursor: CursorDep, user: Annotated[User, Depends(_page_user(*ANY_ROLE))],
                    current: Annotated[str, Form(max_length=1000)] = "",
                    new: Annotated[str, Form(max_length=1000)] = "",
                    again: Annotated[str, Form(max_length=1000)] = "") -> HTMLResponse:
    error = None
    if check_password(cursor, user.name, current) is None:
        error = "当前密码不正确"
        audit(cursor, user, "password_change_failed", "user", user.name, None, None)
    elif new != again:
        error = "两次输入的新密码不一致"
    else:
        try:
            with one_write(cursor):  # the new password and its audit line together
                set_password(cursor, user.name, check_password_rules(new))
                audit(cursor, user, "change_password", "user", user.name, None, None)
        except ValueError as exc:
            error = str(exc)
    if error:
        return render(request, "account.html", status_code=422, user=user, title="修改密码", message=None, error=error)
    found = current_session(request)
    request.app.state.web_sessions.drop_user(user.user_id, keep=request.cookies.get(COOKIE) if found else None)
    return render(request, "account.html", user=user, title="修改密码", message="密码已修改；其他设备上的登录已退出", error=None)


# ---------------------------------------------------------------- 清单

LIST_FILTERS = ("township", "rule", "industry", "verification", "disposition", "sort")
SORTS = {"township": "乡镇街道", "uscc": "信用代码", "tax_per_mu": "亩均税收（从低到高）", "land_mu": "用地（从大到小）",
         "energy_tce": "能耗（从大到小）", "hit_count": "命中规则数"}
DISPOSITIONS = ("兼并重组", "整体腾退", "搬迁入园", "改造提升")


_RULE_TITLES: dict[str, dict[str, str]] = {}  # by run id: stored runs never change


def _rule_titles(cursor, run_id: str) -> dict[str, str]:
    """The Chinese title of each rule the run applied (for the rule filter)."""
    if run_id not in _RULE_TITLES:
        rows = cursor.execute(f"SELECT rule_id, rule_title FROM {rules_relation(cursor)} WHERE run_id = ?",
                              [run_id]).fetchall()
        if len(_RULE_TITLES) > 50:
            _RULE_TITLES.clear()
        _RULE_TITLES[run_id] = dict(rows)
    return _RULE_TITLES[run_id]


@router.get("/lists")
def list_default(cursor: CursorDep, model: ReadModelDep,
                 _user: Annotated[User, Depends(_page_user("admin", "analyst", "township"))]) -> Response:
    return _see_other(f"/lists/{_year(model, cursor, None)}")


@router.get("/lists/{year}")
def list_page(request: Request, year: int, cursor: CursorDep, model: ReadModelDep,
              user: Annotated[User, Depends(_page_user("admin", "analyst", "township"))],
              township: str | None = None, rule: str | None = None, industry: str | None = None,
              verification: str | None = None, disposition: str | None = None, sort: str | None = None,
              q: str | None = None, page: int = 1) -> HTMLResponse:
    raw = {"township": township, "rule": rule, "industry": industry, "verification": verification,
           "disposition": disposition, "sort": sort}
    chosen = {k: _query(request, lists.get_list, k, v) for k, v in raw.items()}
    chosen = {k: v for k, v in chosen.items() if v is not None}
    search = (q or "").strip()
    catalogue = model.catalogue(cursor)
    snapshot = model.run_list(cursor, run := lists.served_run(catalogue, year))  # the choices offered below
    data = lists.get_list(year=year, cursor=cursor, model=model, user=user, page=max(1, min(page, 1_000_000)),
                          page_size=50, q=search[:100] or None, **{"sort": "township", **chosen})
    townships = [user.township] if user.role == "township" else sorted(snapshot.townships)
    query = {k: v for k, v in {**raw, "q": search}.items() if v}
    export = f"/api/v1/lists/{year}/export?format=xlsx" + (
        f"&township={chosen['township']}" if "township" in chosen else "")
    return render(request, "list.html", user=user, title=f"{year} 年度清单", data=data, year=year, raw=raw,
                  q=search, townships=townships, sorts=SORTS,
                  rules={r: _rule_titles(cursor, run.run_id).get(r, r) for r in sorted(snapshot.rule_ids)},
                  dispositions=DISPOSITIONS, query=query, export=export, run_id=run.run_id,
                  pages=max(1, (data["total"] + 49) // 50))


# ---------------------------------------------------------------- 企业档案

def _record(request: Request, uscc: str, year: int | None, cursor, model, user: User,
            error: str | None = None, code: int = 200, notice: str | None = None) -> HTMLResponse:
    record = enterprises.get_enterprise(uscc=uscc, cursor=cursor, model=model, user=user, year=year)
    chart = {"years": [r["year"] for r in record["indicators"]],
             "tax_per_mu": [r["tax_per_mu"] for r in record["indicators"]],
             "energy_tce": [r["energy_tce"] for r in record["indicators"]],
             "land_mu": [r["land_mu"] for r in record["indicators"]]}
    return render(request, "record.html", status_code=code, user=user, title=f"一企一策档案 · {record['name'] or record['uscc']}",
                  r=record, chart=chart, error=error, notice=notice)


@router.get("/firms/{uscc}")
def record_page(request: Request, uscc: str, cursor: CursorDep, model: ReadModelDep,
                user: Annotated[User, Depends(_page_user("admin", "analyst", "township"))],
                year: int | None = None, done: str | None = None) -> HTMLResponse:
    notice = {"confirmed": "已记录：确认", "disputed": "已记录：异议", "decided": "已记录异议处理结果",
              "progress": "已登记进展", "evidence": "证据文件已上传"}.get(done or "")
    return _record(request, as_typed(uscc), year, cursor, model, user, notice=notice)


@router.post("/firms/{uscc}/verify")
def verify(request: Request, uscc: str, cursor: CursorDep, model: ReadModelDep,
           user: Annotated[User, Depends(_page_user("admin", "township"))],
           year: Annotated[int, Form()], outcome: Annotated[str, Form(max_length=20)],
           reason: Annotated[str, Form(max_length=1000)] = "", note: Annotated[str, Form(max_length=4000)] = "") -> Response:
    try:
        body = _model(request, VerificationIn, {"year": year, "outcome": outcome, "reason": reason.strip() or None,
                                       "note": note.strip() or None})
        enterprises.add_verification(uscc=uscc, body=body, cursor=cursor, user=user)
    except HTTPException as exc:
        if exc.status_code == 404:
            raise
        return _record(request, uscc, year, cursor, model, user, error=str(exc.detail), code=exc.status_code)
    return _see_other(f"/firms/{uscc.strip().upper()}?year={year}&done={body.outcome}")


@router.post("/firms/{uscc}/decide")
def decide(request: Request, uscc: str, cursor: CursorDep, model: ReadModelDep,
           user: Annotated[User, Depends(_page_user("admin"))],
           year: Annotated[int, Form()], decision: Annotated[str, Form(max_length=20)],
           note: Annotated[str, Form(max_length=4000)] = "") -> Response:
    try:
        body = _model(request, DecisionIn, {"year": year, "decision": decision, "note": note.strip() or None})
        finalization.decide(uscc=uscc, body=body, cursor=cursor, user=user)
    except HTTPException as exc:
        if exc.status_code == 404:
            raise
        return _record(request, uscc, year, cursor, model, user, error=str(exc.detail), code=exc.status_code)
    return _see_other(f"/firms/{uscc.strip().upper()}?year={year}&done=decided")


@router.post("/firms/{uscc}/evidence")
def add_evidence(request: Request, uscc: str, cursor: CursorDep, model: ReadModelDep,
                 user: Annotated[User, Depends(_page_user("admin", "township"))],
                 year: Annotated[int, Form()], file: Annotated[UploadFile, File()],
                 note: Annotated[str, Form(max_length=500)] = "") -> Response:
    try:
        evidence.upload_evidence(request=request, uscc=uscc, cursor=cursor, user=user, year=year, file=file,
                                 note=note or None)
    except HTTPException as exc:
        if exc.status_code == 404:
            raise
        return _record(request, uscc, year, cursor, model, user, error=str(exc.detail), code=exc.status_code)
    return _see_other(f"/firms/{uscc.strip().upper()}?year={year}&done=evidence")


# ---------------------------------------------------------------- 属地核实表

def _sheet_page(request: Request, year: int, user: User, result: dict | None = None, code: int = 200) -> HTMLResponse:
    return render(request, "sheet.html", status_code=code, user=user, title=f"{year} 年度核实表", year=year, result=result)


@router.get("/lists/{year}/sheet")
def sheet_page(request: Request, year: int, cursor: CursorDep,
               user: Annotated[User, Depends(_page_user("admin", "township"))]) -> HTMLResponse:
    exports.run_for_year(cursor, year)  # 404 for a year without a list
    return _sheet_page(request, year, user)


def upload_sheet(request: Request, year: int, cursor: CursorDep,
                 user: Annotated[User, Depends(_page_user("admin", "township"))],
                 file: Annotated[UploadFile, File()]) -> HTMLResponse:
    try:
        answer = exports.upload_verifications(request=request, year=year, cursor=cursor, user=user, file=file)
    except HTTPException as exc:
        if exc.status_code == 404:
            raise
        return _sheet_page(request, year, user, {"detail": exc.detail}, exc.status_code)
    if isinstance(answer, JSONResponse):
        return _sheet_page(request, year, user, json.loads(answer.body), answer.status_code)
    return _sheet_page(request, year, user, answer)


# the same streaming cap on the body as the API's upload route
router.add_api_route("/lists/{year}/sheet", upload_sheet, methods=["POST"], route_class_override=exports._CappedUpload,
                     include_in_schema=False)


# ---------------------------------------------------------------- 核实与定稿

@router.get("/lists/{year}/finalization")
def finalization_page(request: Request, year: int, cursor: CursorDep,
                      user: Annotated[User, Depends(_page_user("admin", "analyst"))]) -> HTMLResponse:
    return _finalization(request, year, cursor, user)


def _finalization(request: Request, year: int, cursor, user: User, error: str | None = None,
                  code: int = 200, summary: dict | None = None) -> HTMLResponse:
    run = finalization.run_for_year(cursor, year)
    firms = finalization.standing(cursor, year, run)
    kinds = tuple(STANDING)
    by_township: dict[str, dict[str, int]] = {}
    for f in firms:
        row = by_township.setdefault(f["township"] or "（未知）", dict.fromkeys(kinds, 0))
        row[f["standing"]] += 1
    totals = {k: sum(r[k] for r in by_township.values()) for k in kinds}
    disputes = [f for f in firms if f["standing"] == "dispute_pending"]
    info = finalization.finalized(cursor, year)
    return render(request, "finalization.html", status_code=code, user=user, title=f"{year} 年度核实与定稿",
                  year=year, by_township=sorted(by_township.items()), totals=totals, kinds=kinds,
                  disputes=disputes, info=info, error=error, summary=summary)


@router.post("/lists/{year}/finalize")
def finalize(request: Request, year: int, cursor: CursorDep, user: Annotated[User, Depends(_page_user("admin"))],
             note: Annotated[str, Form(max_length=2000)] = "",
             allow_unresolved: Annotated[str, Form(max_length=10)] = "") -> HTMLResponse:
    body = _model(request, FinalizeIn, {"note": note.strip() or None, "allow_unresolved": allow_unresolved == "1"})
    try:
        summary = finalization.finalize(year=year, body=body, cursor=cursor, user=user)
    except HTTPException as exc:
        if exc.status_code == 404:
            raise
        return _finalization(request, year, cursor, user, str(exc.detail), exc.status_code)
    return _finalization(request, year, cursor, user, summary=summary)


# ---------------------------------------------------------------- 方案

def _plan_page(request: Request, uscc: str, year: int, cursor, user: User, form: dict | None = None,
               error: str | None = None, code: int = 200, notice: str | None = None) -> HTMLResponse:
    code_ = uscc.strip().upper()
    entry = plans._on_final_list(cursor, year, code_, user)
    plan = plans.load_plan(cursor, year, code_)
    if form is None:
        form = _plan_form(plan)
    elif plan is not None and error and "已被他人修改" in error:
        # the text sent stays; saving it again is a deliberate choice over the version now shown
        form = {**form, "version": str(plan["version"])}
    return render(request, "plan.html", status_code=code, user=user, title=f"一企一策方案 · {entry.get('name') or code_}",
                  year=year, uscc=code_, entry=entry, plan=plan, form=form, error=error, notice=notice,
                  dispositions=DISPOSITIONS, today=dt.date.today().isoformat())


def _plan_form(plan: dict | None) -> dict:
    if plan is None:
        return {"version": "", "disposition": "改造提升", "measures": "", "lead": "", "cooperating": "",
                "expected_land_mu": "0", "expected_energy_tce": "0", "milestones": ""}
    return {"version": str(plan["version"]), "disposition": plan["disposition"], "measures": plan["measures"],
            "lead": plan["lead"], "cooperating": "、".join(plan["cooperating"]),
            "expected_land_mu": str(plan["expected_land_mu"]), "expected_energy_tce": str(plan["expected_energy_tce"]),
            "milestones": "\n".join(f"{m['due']} {m['title']}{' [完成]' if m.get('done') else ''}"
                                    for m in plan["milestones"])}


@router.get("/firms/{uscc}/plan")
def plan_page(request: Request, uscc: str, year: int, cursor: CursorDep,
              user: Annotated[User, Depends(_page_user("admin", "analyst", "township"))],
              done: str | None = None) -> HTMLResponse:
    return _plan_page(request, as_typed(uscc), year, cursor, user,
                      notice={"saved": "方案已保存", "progress": "已登记进展"}.get(done or ""))


def _milestones(text: str) -> list[dict]:
    items = []
    for number, line in enumerate((line.strip() for line in text.splitlines()), 1):
        if not line:
            continue
        due, _, title = line.partition(" ")
        done = title.endswith("[完成]")
        items.append({"due": due, "title": title.removesuffix("[完成]").strip(), "done": done})
    return items


@router.post("/firms/{uscc}/plan")
def save_plan(request: Request, uscc: str, year: int, cursor: CursorDep, user: Annotated[User, Depends(_page_user("admin"))],
              version: Annotated[str, Form(max_length=20)] = "", disposition: Annotated[str, Form(max_length=20)] = "",
              measures: Annotated[str, Form(max_length=8000)] = "", lead: Annotated[str, Form(max_length=200)] = "",
              cooperating: Annotated[str, Form(max_length=2000)] = "",
              expected_land_mu: Annotated[str, Form(max_length=40)] = "",
              expected_energy_tce: Annotated[str, Form(max_length=40)] = "",
              milestones: Annotated[str, Form(max_length=8000)] = "") -> Response:
    form = {"version": version, "disposition": disposition, "measures": measures, "lead": lead,
            "cooperating": cooperating, "expected_land_mu": expected_land_mu,
            "expected_energy_tce": expected_energy_tce, "milestones": milestones}
    try:
        body = _model(request, PlanIn, {
            "disposition": disposition, "measures": measures.strip(), "lead": lead.strip(),
            "cooperating": [c.strip() for c in cooperating.replace(",", "、").replace("，", "、").split("、") if c.strip()],
            "expected_land_mu": expected_land_mu.strip() or "0", "expected_energy_tce": expected_energy_tce.strip() or "0",
            "milestones": _milestones(milestones)})
        plans.put_plan(uscc=uscc, body=body, response=Response(), cursor=cursor, user=user, year=year,
                       if_match=f'"{version}"' if version else None)
    except HTTPException as exc:
        if exc.status_code == 404:
            raise
        # nothing typed is lost: the form comes back as sent, beside the current version
        message = str(exc.detail)
        if "已被他人修改" in message:
            message = f"{message.removesuffix('，请重新读取后再提交')}。你填写的内容仍在下方；对照上面的当前版本后，可再次保存。"
        return _plan_page(request, uscc, year, cursor, user, form=form, error=message, code=exc.status_code)
    return _see_other(f"/firms/{uscc.strip().upper()}/plan?year={year}&done=saved")


@router.post("/firms/{uscc}/plan/progress")
def plan_progress(request: Request, uscc: str, year: int, cursor: CursorDep,
                  user: Annotated[User, Depends(_page_user("admin", "township"))],
                  date: Annotated[str, Form(max_length=20)] = "", note: Annotated[str, Form(max_length=4000)] = "") -> Response:
    try:
        body = _model(request, ProgressIn, {"date": date, "note": note.strip()})
        plans.add_progress(uscc=uscc, body=body, cursor=cursor, user=user, year=year)
    except HTTPException as exc:
        if exc.status_code == 404:
            raise
        return _plan_page(request, uscc, year, cursor, user, error=str(exc.detail), code=exc.status_code)
    return _see_other(f"/firms/{uscc.strip().upper()}/plan?year={year}&done=progress")


# ---------------------------------------------------------------- 大屏

@router.get("/screen")
def screen_default(cursor: CursorDep, model: ReadModelDep,
                   _user: Annotated[User, Depends(_page_user("admin", "analyst", "dashboard"))]) -> Response:
    return _see_other(f"/screen/{_year(model, cursor, None)}")


@router.get("/screen/{year}")
def screen(request: Request, year: int, cursor: CursorDep,
           user: Annotated[User, Depends(_page_user("admin", "analyst", "dashboard"))]) -> HTMLResponse:
    data = dashboard.get_dashboard(year=year, cursor=cursor, _user=user)
    return render(request, "screen.html", user=user, title=f"{year} 年度高耗低效企业整治大屏", d=data, year=year)


# ---------------------------------------------------------------- 工作台

@router.get("/workbench")
def workbench_default(cursor: CursorDep, model: ReadModelDep,
                      _user: Annotated[User, Depends(_page_user("admin", "analyst"))]) -> Response:
    return _see_other(f"/workbench/{_year(model, cursor, None)}")


@router.get("/workbench/{year}")
def workbench(request: Request, year: int, cursor: CursorDep,
              user: Annotated[User, Depends(_page_user("admin", "analyst"))]) -> HTMLResponse:
    """The year's progress: the dashboard's aggregates and the finalization standings."""
    data = dashboard.get_dashboard(year=year, cursor=cursor, _user=user)
    standings = [f["standing"] for f in finalization.standing(cursor, year, data["run_id"])]
    decided = sum(s in ("dispute_upheld", "dispute_rejected") for s in standings)
    stages = [("列入清单", data["listed"]), ("已核实", data["verification"]["confirmed"] + data["verification"]["disputed"]),
              ("有异议", data["verification"]["disputed"]), ("异议已处理", decided), ("定稿", data["final"]),
              ("制定方案", data["plans"]["plans"]), ("整治完成", data["plans"]["completed"])]
    return render(request, "workbench.html", user=user, title=f"{year} 年度工作台", d=data, year=year, stages=stages)


# ---------------------------------------------------------------- 数据与筛选

def _runs_page(request: Request, cursor, user: User, error: str | None = None, summary: dict | None = None,
               code: int = 200, upload: dict | None = None) -> HTMLResponse:
    catalogue = run_catalogue(cursor)
    rows = records(cursor, """SELECT run_id, created_at, list_year, ruleset_id, ruleset_version, overrides, input_hashes,
                                     enterprises, listed, rejected_rows FROM runs ORDER BY created_at DESC, run_id DESC""", [])
    for row in rows:
        row["overrides"] = json.loads(row["overrides"]) if row["overrides"] else None
        row["input_hashes"] = json.loads(row["input_hashes"]) if row["input_hashes"] else {}
        row["served"] = catalogue.served(row["list_year"]) is not None and catalogue.served(row["list_year"]).run_id == row["run_id"]
        row["trial"] = catalogue.is_trial(row["run_id"])
        row["final"] = catalogue.finalized.get(row["list_year"]) == row["run_id"]
        row["files"] = runs.output_files(request.app.state.settings, row["run_id"])
    return render(request, "runs.html", status_code=code, user=user, title="数据与筛选", rows=rows, error=error,
                  summary=summary, upload=upload, tables=data.DATA_TABLES, extensions=data.EXTENSIONS,
                  intake_headers=TABLE_HEADERS, intake_rows=table_rows(upload["report"]) if upload else [],
                  coverage_tables=COVERAGE_TABLES)


@router.get("/runs")
def runs_page(request: Request, cursor: CursorDep, user: Annotated[User, Depends(_page_user("admin", "analyst"))]) -> HTMLResponse:
    return _runs_page(request, cursor, user)


@router.post("/runs")
def start_run(request: Request, cursor: CursorDep, user: Annotated[User, Depends(_page_user("admin"))],
              year: Annotated[str, Form(max_length=10)] = "", data: Annotated[str, Form(max_length=200)] = "",
              overrides: Annotated[str, Form(max_length=4000)] = "", replace_final: Annotated[str, Form(max_length=10)] = "",
              confirm: Annotated[str, Form(max_length=10)] = "") -> HTMLResponse:
    try:
        if confirm != "1":
            raise HTTPException(422, "请勾选“确认运行筛选”后再提交")
        body = _model(request, runs.RunIn, {"year": year.strip() or None, "data": data.strip() or None,
                                   "set": [line.strip() for line in overrides.splitlines() if line.strip()],
                                   "replace_final": replace_final == "1"})
        summary = runs.create_run(body=body, request=request, cursor=cursor, user=user)
    except HTTPException as exc:
        return _runs_page(request, cursor, user, error=str(exc.detail), code=exc.status_code)
    return _runs_page(request, cursor, user, summary=summary)


@router.post("/runs/data")
def upload_data(request: Request, cursor: CursorDep, user: Annotated[User, Depends(_page_user("admin"))],
                year: Annotated[str, Form(max_length=10)] = "",
                files: Annotated[list[UploadFile] | None, File()] = None) -> HTMLResponse:
    """The API's upload (POST /api/v1/data), then the intake report on the page."""
    try:
        if not year.strip().isdigit():
            raise HTTPException(422, "请填写清单年度（四位数字）")
        if not files or not any(f.filename for f in files):
            raise HTTPException(422, "请选择要上传的数据文件")
        answer = data.upload_data(request=request, cursor=cursor, user=user, year=int(year), files=files)
    except HTTPException as exc:
        return _runs_page(request, cursor, user, error=str(exc.detail), code=exc.status_code)
    return _runs_page(request, cursor, user, upload=answer)


# ---------------------------------------------------------------- 差别化措施

MEASURES_PAGE_SIZE = 100


def _measures_year(cursor, model) -> int:
    """The newest year with stored lists, else the list year the service serves, else this year; a
    year the page does not show (a CLI run of list year 1999) gives the nearest one it shows."""
    row = cursor.execute("SELECT max(list_year) FROM measure_list_batches").fetchall()
    if row and row[0][0] is not None:
        year = int(row[0][0])
    else:
        year = model.catalogue(cursor).default_year()
        year = year if year is not None else dt.date.today().year
    return min(max(year, measures.YEARS.start), measures.YEARS.stop - 1)


def _measures_page(request: Request, year: int, cursor, user: User, utility: str | None = None, page: int = 1,
                   error: str | None = None, code: int = 200, notice: str | None = None,
                   upload: dict | None = None) -> HTMLResponse:
    """The year's lists (GET /api/v1/measures/lists/{year}: the route's own function, scoping and
    paging) and the ledger's totals (GET /api/v1/measures/ledger/{year}); the admin's forms."""
    lists = None
    try:
        lists = measures.get_lists(year=year, cursor=cursor, user=user, utility=utility, page=page,
                                   page_size=MEASURES_PAGE_SIZE)
    except HTTPException as exc:
        if exc.status_code != 404:
            raise
    ledger = {"totals": measures.ledger_totals(cursor, user, year, utility)}
    total = lists["total"] if lists else 0
    return render(request, "measures.html", status_code=code, user=user, title=f"{year} 年度差别化措施", year=year,
                  lists=lists, ledger=ledger, utility=utility or "", utilities=("电", "水", "气"), page=page,
                  pages=max(1, (total + MEASURES_PAGE_SIZE - 1) // MEASURES_PAGE_SIZE), error=error,
                  notice=notice, upload=upload, neighbours=[y for y in (year - 1, year + 1) if y in measures.YEARS],
                  ledger_types=measures.LEDGER_FILE_TYPES, ledger_accept=",".join(measures.EXTENSIONS))


@router.get("/measures")
def measures_default(cursor: CursorDep, model: ReadModelDep,
                     _user: Annotated[User, Depends(_page_user("admin", "analyst", "township"))]) -> Response:
    return _see_other(f"/measures/{_measures_year(cursor, model)}")


@router.get("/measures/{year}")
def measures_page(request: Request, year: int, cursor: CursorDep,
                  user: Annotated[User, Depends(_page_user("admin", "analyst", "township"))],
                  utility: str | None = None, page: int = 1) -> HTMLResponse:
    chosen = _query(request, measures.get_lists, "utility", utility)
    return _measures_page(request, _checked_year(year), cursor, user, chosen, max(1, min(page, 1_000_000)))


def _checked_year(year: int) -> int:
    if year not in measures.YEARS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"没有 {year} 年度")
    return year


@router.post("/measures/{year}/compute")
def compute_measures(request: Request, year: int, cursor: CursorDep, user: Annotated[User, Depends(_page_user("admin"))],
                     data: Annotated[str, Form(max_length=200)] = "", date: Annotated[str, Form(max_length=20)] = "",
                     confirm: Annotated[str, Form(max_length=10)] = "") -> HTMLResponse:
    """POST /api/v1/measures/lists from a form: the year's lists replaced (audited)."""
    year = _checked_year(year)
    try:
        if confirm != "1":
            raise HTTPException(422, "请勾选“确认生成（替换该年度此前的名单）”后再提交")
        body = _model(request, measures.MeasuresIn, {"year": year, "data": data.strip() or None,
                                                      "date": date.strip() or None})
        done = measures.compute_lists(body=body, request=request, cursor=cursor, user=user)
    except HTTPException as exc:
        return _measures_page(request, year, cursor, user, error=str(exc.detail), code=exc.status_code)
    counts = "、".join(f"{u} {c['firms']:,} 家" for u, c in done["by_utility"].items())
    return _measures_page(request, year, cursor, user, notice=f"已生成 {year} 年度名单" + (f"：{counts}" if counts else ""))


def upload_measures_ledger(request: Request, year: int, cursor: CursorDep,
                           user: Annotated[User, Depends(_page_user("admin"))],
                           file: Annotated[UploadFile, File()]) -> HTMLResponse:
    """POST /api/v1/measures/ledger/upload from a form: all rows or none; the rows at fault listed."""
    year = _checked_year(year)
    try:
        answer = measures.upload_ledger(request=request, cursor=cursor, user=user, file=file)
    except HTTPException as exc:
        return _measures_page(request, year, cursor, user, code=exc.status_code, upload={"detail": exc.detail})
    if isinstance(answer, JSONResponse):
        return _measures_page(request, year, cursor, user, code=answer.status_code, upload=json.loads(answer.body))
    quarters = "、".join(f"{q['year']} 年第 {q['quarter']} 季度" for q in answer["quarters"])
    message = f"已保存台账 {answer['stored']:,} 行（{quarters}）" + (
        f"，替换了此前同季度的 {answer['replaced']:,} 行" if answer["replaced"] else "")
    return _measures_page(request, year, cursor, user, upload={"message": message})


# the same streaming cap on the body as the API's upload route
router.add_api_route("/measures/{year}/ledger", upload_measures_ledger, methods=["POST"],
                     route_class_override=measures._CappedLedger, include_in_schema=False)


# ---------------------------------------------------------------- 拟建项目节能审查

PROJECT_PAGE_SIZE = 50


def _choices(func, name: str) -> tuple[str, ...]:
    """The values of a route's ``Literal[...] | None`` query parameter (offered as a select)."""
    hints = _HINTS.setdefault(id(func), typing.get_type_hints(func, include_extras=True))
    optional = typing.get_args(hints[name])[0]  # Annotated[X | None, Query(...)] → X | None
    literal = next(a for a in typing.get_args(optional) if a is not type(None))
    return typing.get_args(literal)


@router.get("/projects")
def projects_page(request: Request, cursor: CursorDep, model: ReadModelDep,
                  user: Annotated[User, Depends(_page_user("admin", "analyst"))],
                  suggestion: str | None = None, page: int = 1) -> HTMLResponse:
    """The review of ``GET /api/v1/projects`` (the route's own function, filter and paging)."""
    chosen = _query(request, projects.get_projects, "suggestion", suggestion)
    page = max(1, min(page, 1_000_000))
    data, error, code = None, None, 200
    try:
        data = projects.get_projects(request=request, _user=user, data=None, suggestion=chosen, page=page,
                                     page_size=PROJECT_PAGE_SIZE)
    except HTTPException as exc:  # no register under the data root, or one that cannot be read
        error, code = str(exc.detail), exc.status_code
    key_energy = None
    year = model.catalogue(cursor).default_year()
    if year is not None:
        key_energy = dashboard.get_dashboard(year=year, cursor=cursor, _user=user)["key_energy_users"]
    total = data["total"] if data else 0
    return render(request, "projects.html", status_code=code, user=user, title="拟建项目节能审查", data=data,
                  error=error, suggestions=_choices(projects.get_projects, "suggestion"),
                  chosen=chosen or "", page=page, pages=max(1, (total + PROJECT_PAGE_SIZE - 1) // PROJECT_PAGE_SIZE),
                  key_energy=key_energy, status_zh=PROJECT_STATUS, authority_zh=PROJECT_AUTHORITY)


# ---------------------------------------------------------------- 备份

def _backups_page(request: Request, user: User, done: dict | None = None, error: str | None = None,
                  code: int = 200) -> HTMLResponse:
    age = health.health(request)["last_backup_age_hours"]  # what the health route reports
    return render(request, "backups.html", status_code=code, user=user, title="备份", done=done, error=error, age=age)


@router.get("/backups")
def backups_page(request: Request, user: Annotated[User, Depends(_page_user("admin"))]) -> HTMLResponse:
    return _backups_page(request, user)


@router.post("/backups")
def create_backup(request: Request, cursor: CursorDep, user: Annotated[User, Depends(_page_user("admin"))],
                  confirm: Annotated[str, Form(max_length=10)] = "",
                  no_run_files: Annotated[str, Form(max_length=10)] = "") -> HTMLResponse:
    try:
        if confirm != "1":
            raise HTTPException(422, "请勾选“确认备份”后再提交")
        body = backups.BackupIn(run_files=no_run_files != "1")
        done = backups.create_backup(body=body, request=request, cursor=cursor, user=user)
    except HTTPException as exc:
        return _backups_page(request, user, error=str(exc.detail), code=exc.status_code)
    return _backups_page(request, user, done=done)


# ---------------------------------------------------------------- 用户与审计

def _users_page(request: Request, cursor, user: User, error: str | None = None, created: dict | None = None,
                code: int = 200, reset: dict | None = None) -> HTMLResponse:
    rows = records(cursor, """SELECT u.name, u.role, u.township, u.created_at, u.revoked_at,
                                     p.user_id IS NOT NULL AS has_password
                              FROM users u LEFT JOIN user_passwords p USING (user_id) ORDER BY u.created_at""", [])
    return render(request, "users.html", status_code=code, user=user, title="用户", rows=rows, roles=ROLES,
                  error=error, created=created, reset=reset)


@router.get("/users")
def users_page(request: Request, cursor: CursorDep, user: Annotated[User, Depends(_page_user("admin"))]) -> HTMLResponse:
    return _users_page(request, cursor, user)


@router.post("/users")
def create_user(request: Request, cursor: CursorDep, user: Annotated[User, Depends(_page_user("admin"))],
                name: Annotated[str, Form(max_length=1000)] = "", role: Annotated[str, Form(max_length=20)] = "",
                township: Annotated[str, Form(max_length=1000)] = "") -> HTMLResponse:
    password = generate_password()
    try:
        body = _model(request, users.UserIn, {"name": name, "role": role, "township": township.strip() or None,
                                              "password": password})  # the user, password and audit line together
        created = users.create_user(body=body, cursor=cursor, user=user)
    except HTTPException as exc:
        return _users_page(request, cursor, user, error=str(exc.detail), code=exc.status_code)
    return _users_page(request, cursor, user, created={**created, "password": password})


@router.post("/users/password")
def reset_password(request: Request, cursor: CursorDep, user: Annotated[User, Depends(_page_user("admin"))],
                   name: Annotated[str, Form(max_length=1000)] = "") -> HTMLResponse:
    """A user who forgot the web password gets a new one, generated and shown once (the route's
    checks, audit line and signing out everywhere)."""
    password = generate_password()
    try:
        users.reset_password(name=name, body=users.PasswordIn(password=password), request=request, cursor=cursor,
                             user=user)
    except HTTPException as exc:
        return _users_page(request, cursor, user, error=str(exc.detail), code=exc.status_code)
    return _users_page(request, cursor, user, reset={"name": name, "password": password})


@router.post("/users/revoke")
def revoke(request: Request, cursor: CursorDep, user: Annotated[User, Depends(_page_user("admin"))],
           name: Annotated[str, Form(max_length=1000)] = "") -> HTMLResponse:
    try:
        users.revoke(name=name, cursor=cursor, user=user)
    except HTTPException as exc:
        return _users_page(request, cursor, user, error=str(exc.detail), code=exc.status_code)
    return _users_page(request, cursor, user)


@router.get("/audit")
def audit_page(request: Request, cursor: CursorDep, user: Annotated[User, Depends(_page_user("admin"))],
               page: int = 1) -> HTMLResponse:
    page = max(1, min(page, 1_000_000))
    data = finalization.audit_log(cursor=cursor, _user=user, page=page, page_size=100)
    return render(request, "audit.html", user=user, title="审计记录", data=data, page=page,
                  pages=max(1, (data["total"] + 99) // 100))


# ---------------------------------------------------------------- 亩均效益评价 (docs/evaluation-workflow.md)

EVAL_READERS = ("admin", "analyst", "township")


@router.get("/evaluations")
def evaluations_page(request: Request, cursor: CursorDep,
                     user: Annotated[User, Depends(_page_user(*EVAL_READERS))]) -> HTMLResponse:
    return _evaluations(request, cursor, user)


def _evaluations(request: Request, cursor, user: User, error: str | None = None, code: int = 200,
                 form: dict | None = None) -> HTMLResponse:
    data = evaluations.list_evaluations(cursor=cursor, _user=user, year=None)
    return render(request, "evaluations.html", status_code=code, user=user, title="亩均效益评价", items=data["items"],
                  methods=shipped_methods(), error=error, form=form or {})


@router.post("/evaluations")
def evaluations_create(request: Request, cursor: CursorDep, user: Annotated[User, Depends(_page_user("admin"))],
                       year: Annotated[str, Form(max_length=10)] = "", method: Annotated[str, Form(max_length=200)] = "",
                       data: Annotated[str, Form(max_length=200)] = "",
                       note: Annotated[str, Form(max_length=2000)] = "") -> Response:
    form = {"year": year, "method": method, "data": data, "note": note}
    try:
        body = _model(request, evaluations.EvaluationIn, {"year": year.strip(), "method": method.strip(),
                                                          "data": data.strip() or None, "note": note.strip() or None})
        made = evaluations.create_evaluation(body=body, request=request, cursor=cursor, user=user)
    except HTTPException as exc:
        return _evaluations(request, cursor, user, str(exc.detail), exc.status_code, form)
    return _see_other(f"/evaluations/{made['evaluation_id']}")


def _evaluation_id(value: str) -> str:
    if not re.fullmatch(r"E\d{4}-\d{8}T\d{6}-[0-9a-f]{6}", value):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"没有评价 {value}")
    return value


@router.get("/evaluations/{evaluation_id}")
def evaluation_page(request: Request, evaluation_id: str, cursor: CursorDep,
                    user: Annotated[User, Depends(_page_user(*EVAL_READERS))], population: str | None = None,
                    grade: str | None = None, q: str | None = None, page: int = 1,
                    reproduce: str | None = None) -> HTMLResponse:
    return _evaluation(request, _evaluation_id(evaluation_id), cursor, user,
                       filters={"population": population or None, "grade": grade or None, "q": q or None,
                                "page": max(1, min(page, 1_000_000))}, reproduce=bool(reproduce))


@router.get("/evaluations/{evaluation_id}/firms/{uscc}")
def evaluation_firm_page(request: Request, evaluation_id: str, uscc: str, cursor: CursorDep,
                         user: Annotated[User, Depends(_page_user(*EVAL_READERS))]) -> HTMLResponse:
    """一家企业的评价明细（GET /api/v1/evaluations/{id}/firms/{uscc} 的网页）：得分逐项从何而来。"""
    code = as_typed(uscc)  # as the firm's record page reads a pasted code
    if not re.fullmatch(USCC_PATTERN, code):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"评价 {evaluation_id} 中没有该企业")
    trace = evaluations.firm_trace(evaluation_id=_evaluation_id(evaluation_id), uscc=code, cursor=cursor, user=user)
    return render(request, "evaluation_firm.html", user=user, title=f"评价明细 · {trace['firm']['name'] or code}",
                  t=trace, f=trace["firm"], quantities=CORRECTABLE)


def _evaluation(request: Request, evaluation_id: str, cursor, user: User, error: str | None = None, code: int = 200,
                notice: str | None = None, filters: dict | None = None, reproduce: bool = False) -> HTMLResponse:
    filters = filters or {"population": None, "grade": None, "q": None, "page": 1}
    info = evaluations.get_evaluation(evaluation_id=evaluation_id, cursor=cursor, user=user)
    try:
        results = evaluations.result_page(cursor, info, user, None, filters["population"], filters["grade"],
                                          filters["q"], filters["page"], 100)
    except HTTPException as exc:
        if exc.status_code != 422:
            raise
        error, code = str(exc.detail), 422
        results = evaluations.result_page(cursor, info, user, page_size=100)
    objections = evaluations.objection_list(cursor, info, user)
    reproduced = None
    if info["status"] == "finalized" and user.role in ("admin", "analyst") and reproduce:
        reproduced = evaluations.reproduce(evaluation_id=evaluation_id, cursor=cursor, _user=user)
    return render(request, "evaluation.html", status_code=code, user=user, title=f"亩均效益评价 {evaluation_id}",
                  info=info, results=results, objections=objections, error=error, notice=notice, filters=filters,
                  quantities=CORRECTABLE, reproduced=reproduced)


def _evaluation_write(request: Request, evaluation_id: str, cursor, user: User, write, notice: str) -> HTMLResponse:
    """Run one workflow step (the API route's function); the page again with its message."""
    evaluation_id = _evaluation_id(evaluation_id)
    try:
        write()
    except HTTPException as exc:
        if exc.status_code == 404:
            raise
        return _evaluation(request, evaluation_id, cursor, user, str(exc.detail), exc.status_code)
    return _evaluation(request, evaluation_id, cursor, user, notice=notice)


def _one_correction(quantity: str, value: str) -> dict[str, Any]:
    if not quantity.strip():
        return {}
    try:
        return {quantity.strip(): float(value)}
    except ValueError:
        raise HTTPException(422, f"更正后的数值“{value}”不是数字") from None


@router.post("/evaluations/{evaluation_id}/publish")
def evaluation_publish(request: Request, evaluation_id: str, cursor: CursorDep,
                       user: Annotated[User, Depends(_page_user("admin"))],
                       start: Annotated[str, Form(max_length=20)] = "",
                       days: Annotated[str, Form(max_length=5)] = "") -> HTMLResponse:
    def write():
        body = _model(request, evaluations.PublishIn, {"start": start.strip() or None, "days": days.strip() or None})
        evaluations.publish(evaluation_id=evaluation_id, body=body, request=request, cursor=cursor, user=user)
    return _evaluation_write(request, evaluation_id, cursor, user, write, "已公示")


@router.post("/evaluations/{evaluation_id}/confirm")
def evaluation_confirm(request: Request, evaluation_id: str, cursor: CursorDep,
                       user: Annotated[User, Depends(_page_user("admin", "township"))],
                       uscc: Annotated[str, Form(max_length=30)] = "", outcome: Annotated[str, Form(max_length=20)] = "",
                       quantity: Annotated[str, Form(max_length=30)] = "", value: Annotated[str, Form(max_length=30)] = "",
                       note: Annotated[str, Form(max_length=2000)] = "") -> HTMLResponse:
    def write():
        body = _model(request, evaluations.ConfirmationIn, {"outcome": outcome, "note": note.strip() or None,
                                                            "corrections": _one_correction(quantity, value)})
        evaluations.confirm(evaluation_id=evaluation_id, uscc=_uscc(uscc), body=body, cursor=cursor, user=user)
    return _evaluation_write(request, evaluation_id, cursor, user, write, "已登记数据确认")


def _uscc(value: str) -> str:
    code = value.strip().upper()
    if len(code) != 18 or not code.isalnum():
        raise HTTPException(422, "统一社会信用代码应为 18 位数字或大写字母")
    return code


@router.post("/evaluations/{evaluation_id}/object")
def evaluation_object(request: Request, evaluation_id: str, cursor: CursorDep,
                      user: Annotated[User, Depends(_page_user("admin", "township"))],
                      uscc: Annotated[str, Form(max_length=30)] = "", reason: Annotated[str, Form(max_length=1000)] = "",
                      evidence_ref: Annotated[str, Form(max_length=500)] = "",
                      stamped: Annotated[str, Form(max_length=5)] = "",
                      quantity: Annotated[str, Form(max_length=30)] = "",
                      value: Annotated[str, Form(max_length=30)] = "") -> HTMLResponse:
    def write():
        body = _model(request, evaluations.ObjectionIn, {
            "reason": reason.strip(), "evidence_ref": evidence_ref.strip() or None, "stamped": stamped == "1",
            "corrections": _one_correction(quantity, value)})
        evaluations.object_(evaluation_id=evaluation_id, uscc=_uscc(uscc), body=body, cursor=cursor, user=user)
    return _evaluation_write(request, evaluation_id, cursor, user, write, "已登记异议")


@router.post("/evaluations/{evaluation_id}/review")
async def evaluation_review(request: Request, evaluation_id: str, cursor: CursorDep,
                            user: Annotated[User, Depends(_page_user("admin"))]) -> HTMLResponse:
    form = await request.form()
    decisions = [{"objection_id": key.removeprefix("decision_"), "decision": value}
                 for key, value in form.multi_items() if key.startswith("decision_") and value]
    note = str(form.get("note") or "").strip() or None

    def write():
        body = _model(request, evaluations.ReviewIn, {"decisions": decisions, "note": note})
        evaluations.review(evaluation_id=evaluation_id, body=body, cursor=cursor, user=user)
    # the review recomputes the evaluation (seconds on a province's firms): off the event loop, so the
    # service keeps answering everyone else meanwhile
    return await run_in_threadpool(_evaluation_write, request, evaluation_id, cursor, user, write,
                                   "复核完成：决定已一次应用，得分与名次已重新计算")


@router.post("/evaluations/{evaluation_id}/grade")
def evaluation_grade(request: Request, evaluation_id: str, cursor: CursorDep,
                     user: Annotated[User, Depends(_page_user("admin"))],
                     uscc: Annotated[str, Form(max_length=30)] = "", grade: Annotated[str, Form(max_length=2)] = "",
                     reason: Annotated[str, Form(max_length=1000)] = "",
                     approver: Annotated[str, Form(max_length=200)] = "") -> HTMLResponse:
    def write():
        body = _model(request, evaluations.GradeChangeIn, {"grade": grade, "reason": reason.strip(),
                                                           "approver": approver.strip()})
        evaluations.regrade(evaluation_id=evaluation_id, uscc=_uscc(uscc), body=body, cursor=cursor, user=user)
    return _evaluation_write(request, evaluation_id, cursor, user, write, "已调档")


@router.post("/evaluations/{evaluation_id}/finalize")
def evaluation_finalize(request: Request, evaluation_id: str, cursor: CursorDep,
                        user: Annotated[User, Depends(_page_user("admin"))],
                        note: Annotated[str, Form(max_length=2000)] = "",
                        confirm: Annotated[str, Form(max_length=5)] = "") -> HTMLResponse:
    def write():
        if confirm != "1":
            raise HTTPException(422, "请勾选“确认定稿”：定稿后不可更改")
        body = _model(request, evaluations.EvalFinalizeIn, {"note": note.strip() or None})
        evaluations.finalize(evaluation_id=evaluation_id, body=body, cursor=cursor, user=user)
    return _evaluation_write(request, evaluation_id, cursor, user, write, "已定稿")
