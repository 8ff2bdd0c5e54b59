"""The intake report (数据接收检查): what was read from each file, before anyone screens.

Per table: file, sheet, header row, column mapping (header as written → field, unit
conversion), rows read / accepted / normalised / rejected with the top reasons, and
coverage by year (firms with stats, tax, land, energy, grades).  ``screening check``
prints it and writes ``check.json`` and ``check.xlsx``; ``screening run`` writes the same.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from ..errors import InputError
from ..schema import TABLES

if TYPE_CHECKING:
    from ..validate import Inputs

TOP_REASONS = 5
COVERAGE_TABLES = ("stats", "tax", "land", "energy", "evaluations")


def report_from_inputs(inputs: "Inputs", errors: dict[str, str] | None = None, year: int | None = None,
                       needed: set[str] | None = None) -> dict[str, Any]:
    """The report of validated inputs; ``errors``: tables whose file could not be read."""
    errors = errors or {}
    counts = inputs.row_counts()
    tables: dict[str, Any] = {}
    for name, raw in inputs.files.items():
        if name in errors:
            continue
        rej = inputs.rejects.filter(pl.col("file") == raw.file)
        # by column too: "不是有效的数字" alone does not say where to look
        top = (rej.group_by("column", "reason").agg(pl.col("row").n_unique().alias("rows"))
               .sort("rows", "column", "reason", descending=[True, False, False]).head(TOP_REASONS)) if rej.height else rej
        tables[name] = {
            "table_zh": TABLES[name].zh, **raw.intake(), "file_name": raw.file,
            "rows": {"read": counts[name]["read"], "accepted": counts[name]["accepted"],
                     "normalised": raw.normalised.height, "rejected": counts[name]["rejected"],
                     "fields_cleared": rej.filter(pl.col("action") == "field_cleared").height if rej.height else 0},
            "top_reasons": [{"column": c, "reason": r, "rows": n} for c, r, n in top.select("column", "reason", "rows").iter_rows()]
            if rej.height else [],
        }
    for name, message in errors.items():
        tables[name] = {"table_zh": TABLES[name].zh, "error": message}
    years = sorted({y for per in inputs.coverage.values() for y in per})
    coverage = {y: {t: inputs.coverage.get(t, {}).get(y, 0) for t in COVERAGE_TABLES} for y in years}
    problems = [f"{name}：{msg}" for name, msg in errors.items() if needed is None or name in needed]
    registry = inputs.accepted_rows.get("enterprises", 0)
    if "enterprises" not in errors and registry == 0:
        problems.append("企业名录中没有可用的企业")
    if year is not None:
        for y in (year - 2, year - 1):
            if not coverage.get(y, {}).get("stats"):
                problems.append(f"{y} 年没有统计数据（{year} 年清单需要 {year - 2}、{year - 1} 年数据）")
    return {"year": year, "screenable": not problems, "problems": problems, "tables": tables,
            "coverage": {str(y): v for y, v in coverage.items()}, "enterprises": registry}


def check(data_dir: Path, year: int | None = None, needed: set[str] | None = None) -> dict[str, Any]:
    """Read and validate ``data_dir`` as a run would; a file that cannot be read is reported, not raised."""
    from ..validate import validate
    from .table import read_dir

    files = read_dir(data_dir, set())
    missing = [n for n in (needed or set()) if n not in files]
    errors: dict[str, str] = {}
    for name, raw in list(files.items()):
        try:
            raw.load()
        except InputError as exc:
            errors[name] = str(exc)
    ok = {n: r for n, r in files.items() if n not in errors}
    if "enterprises" in errors:
        ok = {}
    inputs = validate(ok)
    report = report_from_inputs(inputs, errors, year, needed)
    for name in missing:
        report["tables"][name] = {"table_zh": TABLES[name].zh, "error": f"缺少表 {name}（{TABLES[name].zh}）"}
        report["problems"].append(f"缺少表 {name}（{TABLES[name].zh}）")
        report["screenable"] = False
    return report


# ---------------------------------------------------------------- writing

def write_json(report: dict[str, Any], out: Path) -> Path:
    path = out / "check.json"
    path.write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def table_rows(report: dict[str, Any]) -> list[list[Any]]:
    """One line per table for people (the printed table and the first sheet of check.xlsx)."""
    rows = []
    for name, t in report["tables"].items():
        if "error" in t:
            rows.append([f"{t['table_zh']}（{name}）", "", "", "", "", "", "", "", t["error"]])
            continue
        r = t["rows"]
        reasons = "；".join(f"{_with_column(x)}（{x['rows']} 行）" for x in t["top_reasons"])
        rows.append([f"{t['table_zh']}（{name}）", Path(t["file"]).name, t["sheet"] or "", t["header_row"],
                     r["read"], r["accepted"], r["normalised"], r["rejected"] + r["fields_cleared"], reasons])
    return rows


def _with_column(reason: dict[str, Any]) -> str:
    """A top reason as people read it: the column (as the file names it) first, unless the
    reason already names it (“用地面积(平方米)必须大于0”)."""
    column, text = reason.get("column") or "", reason["reason"]
    return text if not column or column in text else f"{column}：{text}"


TABLE_HEADERS = ["数据表", "文件", "工作表", "表头行", "读取行数", "接收行数", "规范化单元格", "拒收/清空", "主要原因"]


def write_xlsx(report: dict[str, Any], out: Path) -> Path:

    from ..excel import WORKBOOK_OPTIONS, Workbook

    path = out / "check.xlsx"
    wb = Workbook(path, WORKBOOK_OPTIONS)  # a header as written ("=…") stays text
    bold = wb.add_format({"bold": True})
    ws = wb.add_worksheet("接收检查")
    ws.write_string(0, 0, "可以筛选" if report["screenable"] else "不能筛选：" + "；".join(report["problems"]), bold)
    ws.write_row(2, 0, TABLE_HEADERS, bold)
    for i, row in enumerate(table_rows(report)):
        ws.write_row(3 + i, 0, row)
    ws.set_column(0, 0, 18)
    ws.set_column(8, 8, 60)
    cm = wb.add_worksheet("列对应")
    cm.write_row(0, 0, ["数据表", "文件中的表头", "字段", "单位", "换算系数"], bold)
    i = 1
    for name, t in report["tables"].items():
        for field_name, c in (t.get("columns") or {}).items():
            cm.write_row(i, 0, [name, c["header"], field_name, c.get("unit") or "", c.get("factor") or ""])
            i += 1
    for name, t in report["tables"].items():
        for header in t.get("ignored_columns") or []:
            cm.write_row(i, 0, [name, header, "（未使用）", "", ""])
            i += 1
    cv = wb.add_worksheet("年度覆盖")
    cv.write_row(0, 0, ["年度", "统计数据企业数", "税收数据企业数", "用地数据企业数", "能耗数据企业数", "评价等级企业数"], bold)
    for i, (y, per) in enumerate(report["coverage"].items(), 1):
        cv.write_row(i, 0, [int(y), *(per[t] for t in COVERAGE_TABLES)])
    wb.close()
    return path


def write_report(report: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    return [write_json(report, out), write_xlsx(report, out)]
