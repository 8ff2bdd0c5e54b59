"""The files of ``screening measures``: per utility a CSV (UTF-8 with BOM, formula-safe) and a
Parquet file, one Chinese workbook (a sheet per utility, the policy table with its citations and
state on the date, the rejected rows) and ``measures.json`` (what was computed, from what)."""
from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from ..csvsafe import neutralise, write_csv
from ..schema import UTILITIES
from . import HEADERS_ZH, OUTPUT_COLUMNS, MeasureLists, summary

#: the workbook's columns for a utility's list (the utility is the sheet)
SHEET_COLUMNS = tuple(c for c in OUTPUT_COLUMNS if c != "utility")
WIDTHS = {"uscc": 22, "name": 28, "township": 12, "account": 18, "note": 70, "citation": 50, "assumption": 50,
          "grade_source": 22}


def file_stem(policy, utility: str) -> str:
    return f"measures_{policy.utilities[utility].code}"


def workbook_name(year: int) -> str:
    return f"差别化措施清单_{year}.xlsx"


def write_outputs(result: MeasureLists, folder: Path) -> list[str]:
    folder = Path(folder)
    names = []
    for utility in UTILITIES:
        stem = file_stem(result.policy, utility)
        rows = result.for_utility(utility)
        write_csv(rows, folder / f"{stem}.csv")
        rows.write_parquet(folder / f"{stem}.parquet")
        names += [f"{stem}.csv", f"{stem}.parquet"]
    write_csv(result.rejects, folder / "rejects.csv")
    _workbook(result, folder / workbook_name(result.year))
    record = {**summary(result), "policy_id": result.policy.id, "policy_title": result.policy.title,
              "grade_year": result.year - 1}
    (folder / "measures.json").write_text(json.dumps(record, ensure_ascii=False, indent=2), encoding="utf-8")
    return names + ["rejects.csv", workbook_name(result.year), "measures.json"]


def _workbook(result: MeasureLists, path: Path) -> None:

    from ..excel import WORKBOOK_OPTIONS, Workbook, rejects_sheet

    policy = result.policy
    with Workbook(str(path), WORKBOOK_OPTIONS) as wb:
        bold = wb.add_format({"bold": True, "font_name": "等线", "text_wrap": True, "valign": "top",
                              "bg_color": "#DDEBF7", "border": 1})
        plain = wb.add_format({"font_name": "等线", "valign": "top", "text_wrap": True})
        number = wb.add_format({"font_name": "等线", "valign": "top", "num_format": "0.00##"})
        for utility in UTILITIES:
            rows = neutralise(result.for_utility(utility).select(SHEET_COLUMNS)).with_columns(
                pl.col("valid_from").cast(pl.String), pl.col("valid_to").cast(pl.String),
                (pl.col("refund_share") * 100).alias("refund_share"))
            sheet = wb.add_worksheet(f"{utility}（{policy.utilities[utility].unit.replace('/', '每')}）")
            headers = [HEADERS_ZH[c] + ("（%）" if c == "refund_share" else "") for c in SHEET_COLUMNS]
            sheet.write_row(0, 0, headers, bold)
            for i, row in enumerate(rows.iter_rows(), start=1):
                for j, value in enumerate(row):
                    if value is None:
                        sheet.write_blank(i, j, None, plain)
                    elif isinstance(value, (int, float)):
                        sheet.write_number(i, j, value, number)
                    else:
                        sheet.write_string(i, j, str(value), plain)
            sheet.freeze_panes(1, 2)
            for j, c in enumerate(SHEET_COLUMNS):
                sheet.set_column(j, j, WIDTHS.get(c, 11))
        basis = wb.add_worksheet("政策与依据")
        basis.write_row(0, 0, ["政策编号", "类型", "等级", "起始日期", "截止日期", "连续年数（起）", "加价标准", "单位",
                               "返还比例（%）", f"{result.on_date.isoformat()} 是否执行", "依据", "项目假设"], bold)
        stopped = {p["policy_id"]: p["state"] for p in result.not_in_force}
        i = 1
        for p in policy.policies:
            unit = policy.utilities[p.utility].unit
            state = {"not_yet": f"未施行（{p.valid_from.isoformat()} 起）", "ended": "已停止执行"}.get(stopped.get(p.id, ""), "执行")
            for s in p.steps:
                cite = policy.citation_text(p.cite) + (f"（{p.cite.note.strip()}）" if p.cite.note else "")
                basis.write_row(i, 0, [p.id, p.utility, p.grade, p.valid_from.isoformat(),
                                       p.valid_to.isoformat() if p.valid_to else "", ], plain)
                basis.write_number(i, 5, s.from_years, plain)
                basis.write_number(i, 6, s.surcharge, number)
                basis.write_string(i, 7, unit, plain)
                if p.refund:
                    basis.write_number(i, 8, p.refund.share * 100, number)
                basis.write_row(i, 9, [state, cite, p.assumption or ""], plain)
                i += 1
        start = policy.period_of(result.year)
        basis.write_string(i + 1, 0, f"{result.year} 年度措施执行期：{start[0].isoformat()} 至 {start[1].isoformat()}；"
                                     f"依据 {result.year - 1} 年度评价等级；"
                                     + policy.citation_text(policy.period.cite)
                                     + (f"（{policy.period.cite.note.strip()}）" if policy.period.cite.note else ""), plain)
        basis.set_column(0, 9, 12)
        basis.set_column(10, 11, 60)
        rejects_sheet(wb, result.rejects, bold, plain)
