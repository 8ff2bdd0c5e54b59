"""Turn the rule set's Chinese message templates into one vectorized SQL expression.

A template such as ``"亩均税收{value:.2f}万元/亩，低于{ratio:%}"`` names result columns
(``value``), firm_panel columns (``grade_last``) or constants (rule parameters, the years,
scope numbers).  Constants are formatted in Python once; columns are formatted by DuckDB
(``printf``) for every row at once.  Supported specs: none, ``.Nf``, ``g`` and ``%``.
"""
from __future__ import annotations

import re
from typing import Any

from .errors import RuleSetError
from .sqlquote import literal

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([^{}]*))?\}")
_SPEC = re.compile(r"^(\.\d+f|g|%)?$")
MISSING = "—"


def format_constant(value: Any, spec: str | None) -> str:
    if isinstance(value, (list, tuple)):
        return "/".join(str(v) for v in value)
    if spec == "%":
        return f"{float(value) * 100:g}%"
    if spec == "g":
        return f"{float(value):g}"
    if spec:
        return format(float(value), spec)
    return str(value)


def _constant(constants: dict[str, Any], name: str, spec: str | None, where: str) -> str:
    """The constant ``name`` as a template prints it; a number's format (.2f, g, %) given to a
    value that is no number (a choice, a text) is a RuleSetError, not an internal error."""
    try:
        return format_constant(constants[name], spec)
    except (TypeError, ValueError):
        raise RuleSetError(f"{where}：模板字段 {{{name}:{spec}}} 的格式只用于数字，而 {name} 的值是“{constants[name]}”"
                           f"（去掉“:{spec}”）") from None


def _column_sql(ref: str, spec: str | None) -> str:
    if spec == "%":
        expr = f"printf('%g%%', {ref} * 100)"
    elif spec == "g":
        expr = f"printf('%g', {ref})"
    elif spec:
        expr = f"printf('%{spec}', {ref})"
    else:
        expr = f"CAST({ref} AS VARCHAR)"
    return f"coalesce({expr}, {literal(MISSING)})"


def compile_template(template: str, constants: dict[str, Any], columns: dict[str, str], where: str) -> str:
    """SQL expression for one template; ``columns`` maps field name -> qualified column.

    The text and the constants between two columns become one literal, and the pieces one
    ``concat`` (one string built per row, not one per ``||``); no piece is ever NULL (a column
    is coalesced to MISSING), so this is the same text as joining them with ``||``."""
    pieces: list[str] = []
    text: list[str] = []  # literal text since the last column

    def flush() -> None:
        if text and "".join(text):
            pieces.append(literal("".join(text)))
        text.clear()

    pos = 0
    for m in _FIELD.finditer(template):
        text.append(template[pos:m.start()])
        name, spec = m.group(1), m.group(2)
        if spec is not None and not _SPEC.match(spec):
            raise RuleSetError(f"{where}：模板字段 {{{name}:{spec}}} 的格式不受支持（可用 .2f、g、%）")
        if name in constants:
            text.append(_constant(constants, name, spec, where))
        elif name in columns:
            flush()
            pieces.append(_column_sql(columns[name], spec))
        else:
            raise RuleSetError(f"{where}：模板引用了未知字段 {{{name}}}")
        pos = m.end()
    text.append(template[pos:])
    flush()
    if not pieces:
        return "''"
    return pieces[0] if len(pieces) == 1 else f"concat({', '.join(pieces)})"


def render_constants(template: str, constants: dict[str, Any], where: str) -> str:
    """A text that names constants only (a rule citation's note), formatted in Python: the
    same fields and specs as the message templates; any other field is a RuleSetError."""
    def field(m: re.Match) -> str:
        name, spec = m.group(1), m.group(2)
        if spec is not None and not _SPEC.match(spec):
            raise RuleSetError(f"{where}：模板字段 {{{name}:{spec}}} 的格式不受支持（可用 .2f、g、%）")
        if name not in constants:
            raise RuleSetError(f"{where}：引用了未知字段 {{{name}}}（可用：{'、'.join(constants)}）")
        return _constant(constants, name, spec, where)

    return _FIELD.sub(field, template)


def case_expression(rule_messages: dict[str, dict[str, str]], constants: dict[str, dict[str, Any]],
                    columns: dict[str, str], rule_col: str, code_col: str) -> str:
    """``CASE rule_id WHEN … THEN CASE reason_code WHEN … THEN <template> END END``."""
    outer = []
    for rule_id, messages in rule_messages.items():
        inner = " ".join(
            f"WHEN {literal(code)} THEN {compile_template(text.strip(), constants[rule_id], columns, f'{rule_id}.messages.{code}')}"
            for code, text in messages.items()
        )
        outer.append(f"WHEN {literal(rule_id)} THEN CASE {code_col} {inner} END")
    return f"CASE {rule_col} {' '.join(outer)} END"
