"""Pydantic's validation errors in Chinese, for the YAML files people edit (rule sets, 亩均评价
methods, the notice, the measures policy, the warning and data-check settings).

One error is shown as ``key.path 说明`` with the keys as the file writes them (list items by
their ``id``), what was given, and how many errors there are in all; never pydantic's English.
"""
from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ValidationError

_MESSAGES = {
    "missing": "缺少必填项",
    "float_type": "应为数字",
    "float_parsing": "应为数字",
    "int_type": "应为整数",
    "int_parsing": "应为整数",
    "int_from_float": "应为整数",
    "finite_number": "应为有限的数字",
    "string_type": "应为文本",
    "bool_type": "应为 true 或 false",
    "bool_parsing": "应为 true 或 false",
    "date_type": "应为日期（如 2023-09-25）",
    "date_parsing": "应为日期（如 2023-09-25）",
    "date_from_datetime_parsing": "应为日期（如 2023-09-25）",
    "dict_type": "应为键值映射",
    "model_type": "应为键值映射",
    "model_attributes_type": "应为键值映射",
    "list_type": "应为列表",
}


def describe(exc: ValidationError, raw: Any, model: type[BaseModel] | None = None) -> str:
    """The first validation error as ``key.path 中文说明``, plus the error count.  ``raw``: the
    data validated (keys are shown as written); ``model``: the model validated, whose accepted
    keys are listed for an unknown key."""
    err = exc.errors(include_url=False)[0]
    loc, etype, ctx = err["loc"], err["type"], err.get("ctx") or {}
    where = _format_loc(loc, raw)
    given = f"（收到 {err['input']!r}）" if etype not in ("missing", "extra_forbidden") and not isinstance(
        err.get("input"), (dict, list)) else ""
    if etype == "extra_forbidden":
        allowed = _allowed_keys(model, loc) if model is not None else None
        listing = f"（可用的键：{'、'.join(allowed)}）" if allowed else ""
        text = f"是不认识的键{listing}"
    elif etype == "literal_error":
        text = f"取值应为 {str(ctx.get('expected', '')).replace(' or ', ', ')} 之一{given}"
    elif etype == "union_tag_invalid":
        text = f"的 {ctx.get('discriminator', '').strip(chr(39))} 应为 {ctx.get('expected_tags', '')} 之一，收到 {ctx.get('tag')!r}"
    elif etype == "union_tag_not_found":
        text = f"缺少 {ctx.get('discriminator', '').strip(chr(39))}"
    elif etype in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": "大于", "greater_than_equal": "不小于", "less_than": "小于", "less_than_equal": "不大于"}[etype]
        bound = next(iter(ctx.values()), "")
        text = f"应{op} {bound}{given}"
    elif etype == "string_pattern_mismatch":
        text = f"格式不对（应匹配 {ctx.get('pattern')}）{given}"
    elif etype == "too_short":
        text = f"至少需要 {ctx.get('min_length')} 项"
    elif etype == "value_error":
        text = str(ctx.get("error", err["msg"]))
    else:
        text = _MESSAGES.get(etype, err["msg"]) + given
    count = exc.error_count()
    more = f"（共 {count} 处错误，请逐一修正）" if count > 1 else ""
    return f"{where} {text}{more}" if where else f"{text}{more}"


def _format_loc(loc: tuple[Any, ...], raw: Any) -> str:
    """``scales.规上.indicators[0]（tax_per_mu）.weight``: keys as written, discriminator tags
    dropped, list items labelled with their ``id`` when they have one."""
    parts: list[str] = []
    node = raw
    skipped: Any = None  # the node whose tag was already skipped
    for part in loc:
        if isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node):
            node = node[part]
            label = f"[{part}]"
            if isinstance(node, dict) and isinstance(node.get("id") or node.get("kind"), str):
                label += f"（{node.get('id') or node.get('kind')}）"
            if parts:
                parts[-1] += label
            else:
                parts.append(label)
        elif (isinstance(node, dict) and node is not skipped and isinstance(part, str)
              and part in (node.get("kind"), node.get("function"))):
            skipped = node  # a discriminated union's tag, not a key the user wrote (checked first:
            continue        # kind "divisions" has a key "divisions" too)
        elif isinstance(node, dict) and part in node:
            node = node[part]
            parts.append(str(part))
        else:
            parts.append(str(part))
            node = None
    return ".".join(parts)


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """The keys ``model`` accepts where an unknown key was found (best effort)."""
    annotation: Any = model
    for part in loc[:-1]:
        annotation = _step(annotation, part)
        if annotation is None:
            return None
    found = _as_model(annotation, None)
    if found is None:
        return None
    return [f.alias or name for name, f in found.model_fields.items()]


def _unwrap(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [a for arg in typing.get_args(annotation) for a in _unwrap(arg) if a is not type(None)]
    return [annotation]


def _as_model(annotation: Any, tag: Any) -> type[BaseModel] | None:
    models = [a for a in _unwrap(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
    if tag is None:
        return models[0] if len(models) == 1 else None
    for m in models:
        for f in m.model_fields.values():
            if typing.get_origin(f.annotation) is Literal and tag in typing.get_args(f.annotation):
                return m
    return None


def _step(annotation: Any, part: Any) -> Any:
    for a in _unwrap(annotation):
        origin = typing.get_origin(a)
        if origin is list and isinstance(part, int):
            return typing.get_args(a)[0]
        if origin is dict:
            return typing.get_args(a)[1]
        if isinstance(a, type) and issubclass(a, BaseModel) and part in a.model_fields:
            return a.model_fields[part].annotation
    tagged = _as_model(annotation, part)  # a discriminated union's tag
    return tagged
