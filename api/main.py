"""The app factory.  Nothing touches the database at import time: the file is opened in
the lifespan, read-write, by this one process (DuckDB allows one writer per file)."""
from __future__ import annotations

import os
import re
from contextlib import asynccontextmanager

import duckdb
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from screening import handover
from screening.store import owner_only, private_umask

from .auth import token_hash
from .bodylimit import BodyLimit
from .config import Settings, get_settings
from .db import ensure_schema
from .deps import known_query
from .readmodel import ReadModel, WriteTracker
from .routes import (backups, dashboard, data, enterprises, evaluations, evidence, exports, final_export, finalization,
                     health, lists, measures, plans, projects, runs, users)
from .routes import warnings as warning_routes
from .routes.common import PATTERN_MESSAGES
from . import web

DESCRIPTION = """高耗低效企业筛选引擎的服务接口：年度清单、一企一策档案、乡镇街道属地核实与看板汇总。

除 `/api/v1/health` 外，所有接口都需要请求头 `Authorization: Bearer <令牌>`（令牌由 `screening users add` 生成）。
角色：admin（经信局，全部功能）、township（本乡镇街道的企业：查看与核实）、analyst（只读）、dashboard（只看汇总）。"""


_MESSAGES = {
    "missing": "缺少此项",
    "extra_forbidden": "不接受此项",
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "string_type": "应为文本",
    "json_invalid": "不是有效的 JSON",
    "literal_error": "“{input}”无效，可选值：{expected}",
    "enum": "“{input}”无效，可选值：{expected}",
    "less_than_equal": "不能大于 {le}",
    "greater_than_equal": "不能小于 {ge}",
    "less_than": "应小于 {lt}",
    "greater_than": "应大于 {gt}",
    "string_too_long": "最多 {max_length} 个字符",
    "string_too_short": "至少 {min_length} 个字符",
    "too_long": "最多 {max_length} 项",
    "too_short": "至少 {min_length} 项",
    "float_parsing": "应为数字",
    "float_type": "应为数字",
    "finite_number": "应为有限的数字",
    "bool_parsing": "应为 true 或 false",
    "bool_type": "应为 true 或 false",
    "date_parsing": "应为日期（如 2022-05-07）",
    "date_from_datetime_parsing": "应为日期（如 2022-05-07）",
    "date_type": "应为日期（如 2022-05-07）",
    "datetime_parsing": "应为时间（如 2022-05-07T09:30:00+08:00）",
    "list_type": "应为列表",
    "dict_type": "应为对象",
    "model_type": "应为对象",
    "model_attributes_type": "应为对象",
}


def _chinese(err: dict) -> str:
    if err.get("type") == "string_pattern_mismatch":
        known = PATTERN_MESSAGES.get((err.get("ctx") or {}).get("pattern"))
        if known:
            return known
    template = _MESSAGES.get(err.get("type", ""))
    if template:
        ctx = dict(err.get("ctx") or {})
        if "expected" in ctx:  # pydantic lists choices as "'a', 'b' or 'c'"
            ctx["expected"] = "、".join(c.strip(" '") for c in str(ctx["expected"]).replace(" or ", ", ").split(", "))
        try:
            return template.format(input=err.get("input"), **ctx)
        except (KeyError, IndexError):
            return template
    message = str(err.get("msg", "")).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    # a library's English sentence never reaches a person: our own validators speak Chinese
    return "取值无效" if re.search(r"[A-Za-z]{4,}", re.sub(r"[\w.-]*[_/][\w./-]*", "", message)) and \
        not re.search(r"[\u4e00-\u9fff]", message) else message


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        umask = private_umask()  # the database, its WAL and staged files: owner only
        app.state.con = duckdb.connect(str(settings.db))
        owner_only(settings.db)
        app.state.staging = handover.Staging(settings.db)
        ensure_schema(app.state.con)
        app.state.read_model = ReadModel(app.state.con, settings.cache_runs)
        app.state.read_model.preload()
        app.state.handover_hash = None
        token = handover.announce(settings.db, settings.url) if settings.url else None
        if token:
            app.state.handover_hash = token_hash(token)
        try:
            yield
        finally:
            if token:
                handover.withdraw(settings.db, token)
            app.state.read_model.wait_loaded()  # a load still running must not outlive the connection
            app.state.con.close()
            os.umask(umask)

    app = FastAPI(title="高耗低效企业筛选服务", version="0.1.0", description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None,
                  dependencies=[Depends(known_query)])  # an unknown query parameter is 422, never ignored  # /docs and /redoc: served offline by api.web
    app.state.settings = settings
    app.state.read_model = None
    app.add_middleware(WriteTracker, read_model=lambda: app.state.read_model)
    app.add_middleware(BodyLimit, settings=lambda: app.state.settings)  # outermost: before any handler reads
    for module in (health, lists, exports, enterprises, evidence, dashboard, finalization, final_export, plans, runs, data,
                   users, backups, projects, measures, evaluations):
        app.include_router(module.router)
    app.include_router(warning_routes.router)  # 预警名单 (screening warn --db)
    web.install(app, _chinese)  # the web app: pages, sign-in, static files, /docs and /redoc (api/web)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        # a JSON syntax error's location is a character position, not a field
        problems = [{"field": "" if err.get("type") == "json_invalid" else
                     ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")),
                     "message": _chinese(err)} for err in exc.errors()]
        text = "；".join(f"{p['field']}：{p['message']}" if p["field"] else p["message"] for p in problems)
        page = web.error_page(request, 422, f"网址或表单中的内容无效：{text}")
        if page is not None:
            return page
        return JSONResponse(status_code=422, content={"detail": f"请求内容无效：{text}", "errors": problems})

    @app.exception_handler(duckdb.TransactionException)
    async def _conflict(request: Request, _exc: duckdb.TransactionException) -> Response:
        # two requests committed at the same moment (e.g. two audit lines after the same one): the
        # first won, this one changed nothing
        page = web.error_page(request, 409, "数据正被同时修改，本次提交未生效，请返回重新打开页面后再提交")
        if page is not None:
            return page
        return JSONResponse(status_code=409, content={"detail": "数据正被同时修改，本次提交未生效，请重新读取后再提交"})

    return app
