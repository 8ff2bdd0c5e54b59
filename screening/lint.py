"""Project rules for rule sets and rule SQL, checked in the test suite and by ``screening lint``.

* rule SQL holds logic only: no numeric literal other than 0 and 1 (numbers live in rules/);
* every ``$parameter`` a rule's SQL uses is a rule parameter or one the engine supplies;
* every parameter the YAML declares is used by the SQL (no dead numbers);
* every message template compiles (known fields, supported formats);
* every citation names a declared source (checked when the rule set loads);
* a rule set not reviewed for a year draws a warning (not an error: old rule sets stay usable).
"""
from __future__ import annotations

import datetime as dt
import re

from . import reasons
from .engine import param_names, sql_text
from .errors import RuleSetError
from .ruleset import RuleSet

#: parameters the engine binds for every rule (see screen._base_params)
ENGINE_PARAMS = {"year_prev", "year_last", "division_min", "division_max", "new_firm_cutoff", "limit_date", "eps"}
_NUMBER = re.compile(r"(?<![\w$.'])(\d+(?:\.\d+)?)(?![\w.])")
_STRING = re.compile(r"'(?:[^']|'')*'")
_COMMENT = re.compile(r"--[^\n]*")
REVIEW_MONTHS = 12


def numeric_literals(sql: str) -> list[str]:
    """Numeric literals in SQL text, ignoring comments, strings and printf formats.

    A line marked ``-- lint: structural number`` is exempt: for numbers that are part of a
    code's definition (the 2-digit 大类 of a GB/T 4754 code), not policy.
    """
    kept = "\n".join(line for line in sql.splitlines() if "lint: structural number" not in line)
    code = _STRING.sub("''", _COMMENT.sub("", kept))
    return [n for n in _NUMBER.findall(code) if n not in ("0", "1")]


def lint_ruleset(rs: RuleSet) -> list[str]:
    problems: list[str] = []
    for rid in rs.meta.rules:
        rule = rs.rules[rid]
        sql = sql_text(f"rules/{rid}.sql")
        literals = numeric_literals(sql)
        if literals:
            problems.append(f"sql/rules/{rid}.sql：含有数字常量 {literals}，阈值应写在规则集参数中")
        used = set(param_names(sql))
        declared = {n for n, p in rule.parameters.items() if p.applies_in == "sql"}
        unknown = used - declared - ENGINE_PARAMS
        if unknown:
            problems.append(f"sql/rules/{rid}.sql：使用了未声明的参数 {sorted(unknown)}")
        unused = declared - used
        if unused:
            problems.append(f"{rid}.yaml：参数 {sorted(unused)} 未在 SQL 中使用")
        constants = rs.template_constants(rs.meta.designed_for_list_year)[rid]
        columns = {name: name for name in _TEMPLATE_COLUMNS}
        for code, text in {**rs.meta.scope_messages, **rule.messages}.items():
            try:
                reasons.compile_template(text, constants, columns, f"{rid}.messages.{code}")
            except RuleSetError as exc:
                problems.append(str(exc))
    for fid, family in rs.families.items():  # projects, key energy users: the same rules for their SQL
        sql = sql_text(f"rules/{fid}.sql")
        literals = numeric_literals(sql)
        if literals:
            problems.append(f"sql/rules/{fid}.sql：含有数字常量 {literals}，阈值应写在规则集参数中")
        used = set(param_names(sql))
        declared = set(family.parameters)
        unknown = used - declared - {"eps"}
        if unknown:
            problems.append(f"sql/rules/{fid}.sql：使用了未声明的参数 {sorted(unknown)}")
        unused = declared - used
        if unused:
            problems.append(f"{fid}.yaml：参数 {sorted(unused)} 未在 SQL 中使用")
    if "projects" in rs.families:
        from .projects import TEMPLATE_COLUMNS, template_constants

        constants = template_constants(rs.family_params["projects"])
        for code, text in rs.families["projects"].messages.items():
            try:
                reasons.compile_template(text, constants, {c: c for c in TEMPLATE_COLUMNS}, f"projects.messages.{code}")
            except RuleSetError as exc:
                problems.append(str(exc))
    for path in ("views/00_macros.sql", "views/10_firm_year.sql", "views/20_firm_panel.sql"):
        literals = numeric_literals(sql_text(path))
        if literals:
            problems.append(f"sql/{path}：含有数字常量 {literals}")
    problems += notice_problems(rs)
    return problems


def notice_problems(rs: RuleSet) -> list[str]:
    """The rule set's 告知书 set-up (notice.yaml and its template), when it has one: the template
    must render with sample values (a placeholder the bureau broke in Word shows here, not on
    the day the notices are printed)."""
    from .final import NOTICE_FILE, check_template, notice_config

    if not (rs.directory / NOTICE_FILE).is_file():
        return []
    try:
        check_template(rs, notice_config(rs))
    except RuleSetError as exc:
        return [str(exc)]
    return []


def review_warnings(rs: RuleSet, today: dt.date | None = None) -> list[str]:
    today = today or dt.date.today()
    months = (today.year - rs.meta.last_reviewed.year) * 12 + today.month - rs.meta.last_reviewed.month
    if months > REVIEW_MONTHS:
        return [f"规则集 {rs.meta.id} 上次复核于 {rs.meta.last_reviewed}，已超过 {REVIEW_MONTHS} 个月，请对照文件复核"]
    return []


#: fields a message template may name: result evidence and firm_panel columns
_TEMPLATE_COLUMNS = (
    "value", "threshold", "industry_avg", "industry_group", "industry_group_name", "group_firms", "value_prev",
    "value_last", "value_text", "threshold_text", "detail", "detail_note", "years", "value_prev_text", "value_last_text", "source",
    "uscc", "name", "township", "industry_code", "division", "industry_name", "established", "scale_prev",
    "scale_last", "tax_prev", "tax_last", "land_prev", "land_last", "tax_per_mu_prev", "tax_per_mu_last",
    "grade_prev", "grade_last", "computed_grade_prev", "computed_grade_last", "energy_last", "all_leased_last", "parcels_last", "scope_code",
)
