"""Jinja2 with autoescaping on for every template (a firm named <script>… shows as text)."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from screening import clock
from screening.ruleset import STATUS_ZH
from screening.schema import TABLES as DATA_TABLES

from ..auth import ROLE_ZH

TEMPLATES = Path(__file__).parent / "templates"

ENV = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                  trim_blocks=True, lstrip_blocks=True)

STATUS = STATUS_ZH  # the rule statuses as people read them, defined once in screening.ruleset
VERIFICATION = {"pending": "待核实", "confirmed": "已确认", "disputed": "有异议"}
STANDING = {"unverified": "未核实", "confirmed": "已确认", "dispute_pending": "异议待处理",
            "dispute_upheld": "异议成立", "dispute_rejected": "异议驳回"}
ACTIONS = {"verify": "属地核实", "decide_dispute": "异议处理", "put_plan": "制定或修改方案", "plan_progress": "登记方案进展",
           "measures_compute": "生成差别化措施名单", "measures_ledger_import": "导入措施台账",
           "complete_plan": "方案完成", "finalize": "定稿", "login": "登录", "login_failed": "登录失败", "logout": "退出",
           "change_password": "修改密码", "reset_password": "重设密码", "create_user": "创建用户", "revoke_user": "停用用户", "run": "筛选", "evidence": "上传证据文件",
           "evaluate": "评价测算", "evaluation_confirm": "评价数据确认", "evaluation_publish": "评价公示",
           "evaluation_object": "评价异议", "evaluation_review": "评价复核", "evaluation_regrade": "调档",
           "evaluation_finalize": "评价定稿", "password_change_failed": "修改密码失败", "replace_final": "撤销定稿并替换清单",
           "backup": "备份", "upload_data": "上传数据", "prune_runs": "清理试算运行",
           "import_run": "导入命令行筛选", "import_warnings": "导入命令行预警"}
#: what an audit line is about (its ``entity``), as people read it on the 审计 page
ENTITIES = {"session": "登录", "user": "用户", "enterprise": "企业", "plan": "一企一策方案", "list": "清单",
            "evaluation": "亩均评价", "measures": "差别化措施名单", "measure_ledger": "措施台账", "database": "数据库备份",
            "run": "筛选运行", "warnings": "预警", "data": "上传数据"}
ROLES = ROLE_ZH
#: each input table's name as people know it (企业名录 for enterprises), from the schema
TABLES = {name: table.zh for name, table in DATA_TABLES.items()}


def _number(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    try:
        return f"{float(value):,.{digits}f}"
    except (TypeError, ValueError):
        return str(value)


def _when(value: Any) -> str:
    """A time as people here read it (screening.clock: 北京时间 unless configured), to the minute;
    a naive time from the database is the machine's local time, as DuckDB stores ``now()``."""
    if isinstance(value, dt.datetime):
        return clock.local(value).strftime("%Y-%m-%d %H:%M")
    return "—" if value is None else str(value)


def _beijing(value: Any) -> str:
    """An ISO time (or datetime) in the people's zone (北京时间), to the second."""
    try:
        moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return clock.local(moment).strftime("%Y-%m-%d %H:%M:%S")


def _jsontext(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)  # shown as text: autoescaped like any other


ENV.filters.update(number=_number, when=_when, jsontext=_jsontext, beijing=_beijing)
ENV.globals.update(ACTIONS=ACTIONS, STATUS=STATUS, VERIFICATION=VERIFICATION, STANDING=STANDING, ROLES=ROLES, TABLES=TABLES,
                   ENTITIES=ENTITIES)


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    csrf = getattr(request.state, "csrf_token", "")
    html = ENV.get_template(template).render(request=request, csrf_token=csrf, **context)
    response = HTMLResponse(html, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response
