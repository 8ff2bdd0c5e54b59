"""整治企业清单_<Y>.xlsx: the workbook the bureau reads, prints and sends to townships.

Sheets: 汇总 (targets, counts by rule and township), 整治企业清单 (the full list), one
sheet per 乡镇街道, 规则与依据 (parameters and citations) and 数据问题 (rejected rows).
Written with xlsxwriter in constant-memory mode, row by row with one bound writer per column.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import xlsxwriter

from .ruleset import LIMIT_RULE, unverified_limits_note

if TYPE_CHECKING:
    from .screen import Screening

# (column, Chinese header, width, format key)
LIST_COLUMNS: tuple[tuple[str, str, int, str], ...] = (
    ("list_no", "序号", 6, "int"),
    ("uscc", "统一社会信用代码", 21, "text"),
    ("name", "企业名称", 30, "text"),
    ("township", "乡镇街道", 10, "text"),
    ("industry_code", "行业代码", 9, "text"),
    ("industry_name", "行业名称", 22, "text"),
    ("scale", "规模", 6, "text"),
    ("rule_titles", "命中规则", 28, "wrap"),
    ("reasons", "认定理由（数据与标准）", 70, "wrap"),
    ("tax_per_mu", "亩均税收（万元/亩，最近一年）", 14, "num2"),
    ("land_mu", "用地面积（亩，最近一年）", 12, "num2"),
    ("energy_tce", "综合能耗（吨标准煤，最近一年）", 14, "num2"),
    ("suggested_disposition", "建议处置方式（仅供参考）", 14, "text"),
    ("disposition_lead", "建议牵头单位", 12, "text"),
    ("disposition_cooperating", "建议配合单位", 22, "wrap"),
    ("rule_ids", "规则编号", 30, "wrap"),
)
_SHEET_BAD = re.compile(r"[\[\]:*?/\\]")
#: every workbook we write: a text cell stays text, whatever it starts with (``=…`` is never a
#: formula, ``http://…`` never a link, ``001`` never a number); cells are also written with
#: ``write_string``/``write_number``, never the guessing ``write``
WORKBOOK_OPTIONS: dict[str, Any] = {"strings_to_numbers": False, "strings_to_formulas": False,
                                    "strings_to_urls": False}


def _formats(wb: xlsxwriter.Workbook) -> dict[str, Any]:
    base = {"font_name": "等线", "font_size": 10, "valign": "top"}
    return {
        "title": wb.add_format({**base, "bold": True, "font_size": 14}),
        "note": wb.add_format({**base, "font_color": "#595959", "italic": True}),
        "header": wb.add_format({**base, "bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True,
                                 "valign": "vcenter", "align": "center"}),
        "text": wb.add_format(base),
        "wrap": wb.add_format({**base, "text_wrap": True}),
        "int": wb.add_format({**base, "num_format": "0"}),
        "num2": wb.add_format({**base, "num_format": "#,##0.00"}),
        "pct": wb.add_format({**base, "num_format": "0.0%"}),
        "bold": wb.add_format({**base, "bold": True}),
    }


def _cell(ws: Any, row: int, col: int, value: Any, fmt: Any) -> None:
    if value is None:
        return
    if isinstance(value, str):
        ws.write_string(row, col, value, fmt)
    else:
        ws.write_number(row, col, value, fmt)


def _table(ws: Any, fmts: dict[str, Any], top: int, headers: list[str], rows: list[list[Any]],
           kinds: list[str]) -> int:
    for c, h in enumerate(headers):
        ws.write_string(top, c, h, fmts["header"])
    for r, row in enumerate(rows, start=top + 1):
        for c, (v, k) in enumerate(zip(row, kinds)):
            _cell(ws, r, c, v, fmts[k])
    return top + len(rows) + 2


def _list_sheet(wb: xlsxwriter.Workbook, fmts: dict[str, Any], name: str, frame: pl.DataFrame,
                columns: tuple[tuple[str, str, int, str], ...] = LIST_COLUMNS) -> None:
    ws = wb.add_worksheet(name)
    for c, (_, header, width, _kind) in enumerate(columns):
        ws.set_column(c, c, width)
        ws.write_string(0, c, header, fmts["header"])
    ws.set_row(0, 30)
    ws.freeze_panes(1, 3)
    # one bound writer per column, chosen once: the row loop is the hot path of a large list
    writers = [(c, ws.write_number if kind in ("int", "num2") else ws.write_string, fmts[kind])
               for c, (_, _h, _w, kind) in enumerate(columns)]
    for r, row in enumerate(frame.select([c for c, *_ in columns]).iter_rows(), start=1):
        for (c, write, fmt), v in zip(writers, row):
            if v is not None:  # an empty cell needs no record at all
                write(r, c, v, fmt)
    if frame.height:
        ws.autofilter(0, 0, frame.height, len(columns) - 1)


#: the advisory data check (screening.anomaly) beside a flagged firm; never part of the decision
ANOMALY_COLUMN = ("anomaly_note", "数据核查提示（仅供参考）", 40, "wrap")
#: a township's own sheet: the township and the machine rule ids add nothing there
TOWNSHIP_COLUMNS = (*(c for c in LIST_COLUMNS if c[0] not in ("township", "rule_ids")), ANOMALY_COLUMN)


def sheet_name(name: str | None, used: set[str]) -> str:
    base = _SHEET_BAD.sub("_", name or "未填乡镇").strip("'")[:31] or "未填乡镇"
    candidate, n = base, 2
    while candidate.lower() in used:
        suffix = f"_{n}"
        candidate, n = base[: 31 - len(suffix)] + suffix, n + 1
    used.add(candidate.lower())
    return candidate


def _people_list(s: "Screening") -> pl.DataFrame:
    titles = {rid: s.ruleset.rules[rid].short_title for rid in s.ruleset.enabled}
    notes = s.anomalies.filter("flagged").select("uscc", pl.col("indicators").alias("anomaly_note"))
    return s.list.join(notes, on="uscc", how="left", maintain_order="left").with_columns(
        pl.int_range(1, pl.len() + 1).alias("list_no"),
        pl.col("rule_ids").str.split(";").list.eval(pl.element().replace(titles)).list.join("；").alias("rule_titles"),
    )


def _summary(wb: xlsxwriter.Workbook, fmts: dict[str, Any], s: "Screening") -> None:
    ws = wb.add_worksheet("汇总")
    ws.set_column(0, 0, 34)
    ws.set_column(1, 8, 14)
    y_prev, y_last = s.years
    rs = s.ruleset
    ws.write_string(0, 0, f"{rs.meta.region}{s.list_year}年度高耗低效整治企业清单（大数据筛选结果）", fmts["title"])
    info = [
        ("筛选年度", str(s.list_year)), ("使用数据年度", f"{y_prev}—{y_last}年"),
        ("规则集", f"{rs.meta.title}（{rs.meta.id}，版本 {rs.meta.version}）"),
        ("运行编号", s.run_id), ("生成时间", s.started_at.strftime("%Y-%m-%d %H:%M:%S")),
        ("参数调整", "；".join(f"{k}={v}" for k, v in rs.overrides.items()) or "无（使用规则集默认值）"),
    ]
    for i, (k, v) in enumerate(info, start=2):
        ws.write_string(i, 0, k, fmts["bold"])
        ws.write_string(i, 1, v, fmts["text"])
    ws.write_string(9, 0, "说明：本清单为大数据筛选结果，须经乡镇街道属地核实后定稿；建议处置方式仅供参考，以“一企一策”为准。", fmts["note"])

    listing = s.list
    sums = {"firms": float(listing.height), "land_mu": listing["land_mu"].sum() or 0.0,
            "energy_tce": listing["energy_tce"].sum() or 0.0}
    target_rows = []
    for key, target in rs.meta.targets.items():
        actual = float(sums[key])
        target_rows.append([f"{target.label}（{target.unit}）", target.value, actual,
                            actual / target.value if target.value else None])
    row = _table(ws, fmts, 11, ["年度目标", "目标值", "清单企业合计（最近一年）", "清单合计/目标"],
                 target_rows, ["text", "num2", "num2", "pct"])

    status_counts = s.status_counts()
    hits = s.hits_per_rule()
    rule_rows = [[rs.rules[rid].title, hits[rid], status_counts[rid].get("pass", 0),
                  status_counts[rid].get("insufficient_data", 0), status_counts[rid].get("not_applicable", 0),
                  rs.rules[rid].lead_department] for rid in rs.enabled]
    row = _table(ws, fmts, row, ["规则", "命中", "未命中", "数据不足", "不适用", "牵头单位"], rule_rows,
                 ["wrap", "int", "int", "int", "int", "text"])

    by_township = _township_counts(s)
    ws.write_string(row, 0, "按乡镇街道统计", fmts["bold"])
    headers = ["乡镇街道", "清单企业数", *(rs.rules[rid].short_title for rid in rs.enabled), "用地（亩）", "综合能耗（吨标准煤）"]
    _table(ws, fmts, row + 1, headers, [list(r) for r in by_township.iter_rows()],
           ["text", "int", *(["int"] * len(rs.enabled)), "num2", "num2"])


def _township_counts(s: "Screening") -> pl.DataFrame:
    listing = s.list
    return (
        listing.group_by(pl.col("township").fill_null("未填乡镇"))
        .agg(
            pl.len().alias("listed"),
            *(pl.col("rule_ids").str.split(";").list.contains(rid).sum().alias(rid) for rid in s.ruleset.enabled),
            pl.col("land_mu").sum(), pl.col("energy_tce").sum(),
        )
        .sort("listed", "township", descending=[True, False])
    )


def _rules_sheet(wb: xlsxwriter.Workbook, fmts: dict[str, Any], s: "Screening") -> None:
    ws = wb.add_worksheet("规则与依据")
    for c, w in enumerate((34, 40, 20, 50, 60, 40)):
        ws.set_column(c, c, w)
    rows = []
    rs = s.ruleset
    for rid in rs.enabled:
        rule = rs.rules[rid]
        params = "；".join(
            f"{n}={'/'.join(v) if isinstance(v, list) else v}{(' ' + rule.parameters[n].unit) if rule.parameters[n].unit else ''}"
            for n, v in rs.params[rid].items()
        )
        note = (rule.citation.note or "").strip()
        if rid == LIMIT_RULE and s.unverified_limit_hits:
            note = "；".join(filter(None, [unverified_limits_note(rs, s.unverified_limit_hits), note]))
        rows.append([rid, rule.title, params or "—", rs.citation_text(rule.citation), rule.citation.quote or "", note])
    _table(ws, fmts, 0, ["规则编号", "规则", "参数（本次取值）", "依据", "原文", "说明"], rows,
           ["text", "wrap", "wrap", "wrap", "wrap", "wrap"])
    ws.freeze_panes(1, 1)


def _rejects_sheet(wb: xlsxwriter.Workbook, fmts: dict[str, Any], rejects: pl.DataFrame) -> None:
    ws = wb.add_worksheet("数据问题")
    for c, w in enumerate((18, 8, 18, 50, 24, 16)):
        ws.set_column(c, c, w)
    action = {"row_rejected": "整行未采用", "field_cleared": "该字段按未知处理"}
    action_zh = (pl.col("action").replace_strict(action, default=pl.col("action")) if "action" in rejects.columns
                 else pl.lit("整行未采用")).alias("action")
    rows = [list(r) for r in rejects.select("file", "row", "column", "reason", "value", action_zh).iter_rows()]
    _table(ws, fmts, 0, ["文件", "行号", "列", "原因", "原值", "处理"], rows, ["text", "int", "text", "wrap", "text", "text"])
    ws.freeze_panes(1, 0)


def write_workbook(s: "Screening", path: Path) -> None:
    people = _people_list(s)
    # constant_memory: rows go to disk as they are written, so a province's list costs no memory
    with xlsxwriter.Workbook(str(path), {**WORKBOOK_OPTIONS, "constant_memory": True}) as wb:
        fmts = _formats(wb)
        _summary(wb, fmts, s)
        used = {"汇总", "整治企业清单", "规则与依据", "数据问题"}
        _list_sheet(wb, fmts, "整治企业清单", people)
        for (township,), part in people.group_by("township", maintain_order=True):
            _list_sheet(wb, fmts, sheet_name(township, used),
                        part.with_columns(pl.int_range(1, pl.len() + 1).alias("list_no")), TOWNSHIP_COLUMNS)
        _rules_sheet(wb, fmts, s)
        _rejects_sheet(wb, fmts, s.inputs.rejects)
