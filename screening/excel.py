"""整治企业清单_<Y>.xlsx: the workbook the bureau reads, prints and sends to townships.

Sheets: 汇总 (targets, counts by rule and township), 整治企业清单 (the full list), one
sheet per 乡镇街道, 规则与依据 (parameters and citations), 数据问题 (rejected rows) and
数据核查提示 (the advisory data check's flagged firms, most unusual first).
Written with xlsxwriter in constant-memory mode; the list sheets' rows all at once
(screening.excel_rows), their cells made once for the full list and every township's sheet.
"""
from __future__ import annotations

import os
import re
import threading
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import xlsxwriter
import xlsxwriter.workbook

from . import clock, spreadsheet
from .csvsafe import neutralise
from .excel_rows import Column, cells, row_heights, write_cells
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
    ("reasons", "认定理由（数据与标准）", 56, "wrap"),
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


def rejects_sheet(wb: xlsxwriter.Workbook, rejects: pl.DataFrame, header_format: Any, cell_format: Any) -> None:
    """A 拒收记录 sheet: each rejected row's file, row (as Excel shows it), column, reason and value."""
    sheet = wb.add_worksheet("拒收记录")
    sheet.write_row(0, 0, ["文件", "行号", "列", "原因", "值"], header_format)
    sheet.set_column(0, 4, 20)
    for i, row in enumerate(neutralise(rejects).select("file", "row", "column", "reason", "value").iter_rows(),
                            start=1):
        sheet.write_row(i, 0, ["" if v is None else v for v in row], cell_format)


#: bytes per read when a sheet's rows are copied into it (TextWorksheet)
_COPY_CHUNK = 1 << 20


class TextWorksheet(xlsxwriter.worksheet.Worksheet):
    """A worksheet whose text cells show exactly the text written.

    xlsxwriter copies a string that starts with ``<r>`` and ends with ``</r>`` into the file as
    raw rich-text XML (its own ``write_rich_string`` relies on that), so a firm name or a reason
    written that way would show other text, or break the workbook.  Such a string is written as a
    rich string of plain fragments, which xlsxwriter escapes."""

    def _write_string(self, row: int, col: int, string: str, cell_format: Any = None) -> int:
        if string.startswith("<r>") and string.endswith("</r>"):
            # three plain fragments: xlsxwriter wants more than two
            args = ("<", "r>", string[3:]) + ((cell_format,) if cell_format is not None else ())
            return self.write_rich_string(row, col, *args)
        return super()._write_string(row, col, string, cell_format)

    def _write_optimized_sheet_data(self) -> None:
        """A constant-memory sheet's rows (their temporary file) copied into the sheet's XML as
        bytes.  xlsxwriter copies them as text, 64 K characters at a time: decoding and encoding
        a province's list sheets (80 MB) costs about 0.2 CPU s.  The bytes are the ones that
        copy gives: its read translates newlines (\\r\\n and \\r become \\n) and its write leaves
        \\n alone where that is the line separator (elsewhere xlsxwriter's copy is kept)."""
        if self.dim_rowmin is None or os.linesep != "\n":
            super()._write_optimized_sheet_data()
            return
        self._xml_start_tag("sheetData")
        self.row_data_fh.flush()
        self.fh.flush()  # the bytes go after the text written so far
        with open(self.row_data_filename, "rb") as rows:
            while chunk := rows.read(_COPY_CHUNK):
                if b"\r" in chunk:  # rare (a raw \r is only in a rich string)
                    while chunk.endswith(b"\r") and (more := rows.read(1)):
                        chunk += more  # a \r\n split over two chunks is one newline
                    chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
                self.fh.buffer.write(chunk)
        self.row_data_fh.close()
        os.unlink(self.row_data_filename)
        self._xml_end_tag("sheetData")


#: zlib level of the zip file a workbook is (xlsxwriter leaves zlib's default, 6): a province's
#: list workbook at 3 is 10.1 MB instead of 8.6 MB and costs about 0.5 CPU s less (levels 1-3
#: are zlib's fast strategy; 1 gives 11.7 MB for no further gain; docs/run-performance.md)
ZIP_LEVEL = 3
_storing = threading.local()


class _ZipFile(zipfile.ZipFile):
    """The zip file xlsxwriter stores a workbook in (it has no option for the level): at
    ZIP_LEVEL while one of ours is stored in this thread, as xlsxwriter asks for any other."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if getattr(_storing, "ours", False):
            kwargs.setdefault("compresslevel", ZIP_LEVEL)
        super().__init__(*args, **kwargs)


xlsxwriter.workbook.ZipFile = _ZipFile


class Workbook(xlsxwriter.Workbook):
    """Every workbook the project writes: open it with WORKBOOK_OPTIONS (text stays text) and
    TextWorksheet sheets (text shows as written), stored at ZIP_LEVEL."""

    worksheet_class = TextWorksheet

    def _store_workbook(self) -> None:
        _storing.ours = True
        try:
            super()._store_workbook()
        finally:
            _storing.ours = False


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
        "na": wb.add_format({**base, "align": "center", "font_color": "#7F7F7F"}),  # a value not known yet
    }


def _cell(ws: Any, row: int, col: int, value: Any, fmt: Any) -> None:
    if value is None:
        return
    if isinstance(value, str):
        ws.write_string(row, col, value, fmt)
    else:
        ws.write_number(row, col, value, fmt)


#: a figure not known yet (before the final list, before any plan)
NOT_YET = "—"
#: points per line of 10 pt text (等线 and its stand-ins in WPS/LibreOffice), and a row's padding
LINE_POINTS, ROW_PADDING, MIN_ROW = 13.5, 3.0, 15.0


def text_span(text: str) -> int:
    """Display width in Excel column units: a Chinese character counts twice (UTF-8: 3 bytes → 2)."""
    return (len(text.encode("utf-8")) + len(text)) // 2


def wrapped_lines(text: str, width: float) -> int:
    """Lines a wrapped cell of ``width`` column units needs for ``text`` (line breaks kept)."""
    usable = max(width - 1.5, 1.0)
    return sum(max(1, -(-text_span(part) // int(usable))) for part in text.split("\n"))


def wrapped_lines_expr(column: str, width: float) -> pl.Expr:
    """:func:`wrapped_lines` of every cell of a text column at once (0 for a null or empty cell)."""
    per_line = int(max(width - 1.5, 1.0))
    span = (pl.element().str.len_bytes() + pl.element().str.len_chars()) // 2
    lines = pl.col(column).str.split("\n").list.eval(pl.max_horizontal(pl.lit(1), (span + per_line - 1) // per_line))
    return pl.when(pl.col(column).fill_null("") != "").then(lines.list.sum()).otherwise(0)


def row_height(values: list[Any], widths: list[float], wrap: list[bool], floor: float = MIN_ROW) -> float | None:
    """The height (points) that shows every wrapped cell of a row whole; None when one line fits."""
    lines = max((wrapped_lines(v, w) for v, w, k in zip(values, widths, wrap) if k and isinstance(v, str) and v),
                default=1)
    return None if lines <= 1 else max(floor, lines * LINE_POINTS + ROW_PADDING)


def _table(ws: Any, fmts: dict[str, Any], top: int, headers: list[str], rows: list[list[Any]],
           kinds: list[str] | list[list[str]], widths: list[float] | None = None) -> int:
    """A header row and its rows; ``kinds`` per column, or per row and column (a count row next to
    an amount row); with ``widths`` each row is as tall as its wrapped text needs."""
    for c, h in enumerate(headers):
        ws.write_string(top, c, h, fmts["header"])
    header_h = row_height(headers, widths, [True] * len(headers)) if widths else None
    if header_h:
        ws.set_row(top, header_h)
    for r, row in enumerate(rows, start=top + 1):
        row_kinds = kinds[r - top - 1] if kinds and isinstance(kinds[0], list) else kinds
        if widths:
            height = row_height(row, widths, [k == "wrap" for k in row_kinds])
            if height:
                ws.set_row(r, height)
        for c, (v, k) in enumerate(zip(row, row_kinds)):
            _cell(ws, r, c, v, fmts["na" if v == NOT_YET else k])
    return top + len(rows) + 2


def print_setup(ws: Any, title: str, right: str, *, header_rows: int | None = 0, one_page: bool = False,
                print_area: tuple[int, int] | None = None) -> None:
    """Landscape A4, one page wide (whole sheet on one page with ``one_page``), the header row on
    every page, the title left and run facts right in the page header, 第 N 页 共 M 页 below."""
    ws.set_landscape()
    ws.set_paper(9)  # A4
    ws.set_margins(left=0.4, right=0.4, top=0.75, bottom=0.6)
    ws.fit_to_pages(1, 1 if one_page else 0)
    if header_rows is not None:
        ws.repeat_rows(header_rows)
    if print_area is not None:  # (last row, last column) printed
        ws.print_area(0, 0, *print_area)
    def esc(text: str) -> str:
        return text.replace("&", "&&")
    ws.set_header(f'&L&"等线,加粗"&11{esc(title)}&R&9{esc(right)}')
    ws.set_footer("&C&9第 &P 页 共 &N 页")


def _page_facts(s: "Screening") -> tuple[str, str]:
    rs = s.ruleset
    return (f"{rs.meta.region}{s.list_year}年度高耗低效整治企业清单",
            f"规则集 {rs.meta.id} 版本 {rs.meta.version}　生成时间 {clock.stamp(s.started_at)}")


def _list_sheet(wb: xlsxwriter.Workbook, fmts: dict[str, Any], name: str, frame: pl.DataFrame,
                columns: tuple[tuple[str, str, int, str], ...] = LIST_COLUMNS,
                page: tuple[str, str] | None = None, made: pl.DataFrame | None = None) -> Any:
    """The list as a sheet; with ``page`` (title, run facts) also set up for print: the machine's
    rule ids (the last column of the full list) are left off the paper.  ``made``: the frame's
    cells already made (:func:`_made_cells`), as the list workbook makes them once for all its sheets."""
    ws = wb.add_worksheet(name)
    widths = [float(width) for _, _h, width, _k in columns]
    for c, (_, header, width, _kind) in enumerate(columns):
        ws.set_column(c, c, width)
    ws.set_row(0, max(30.0, row_height([h for _, h, *_ in columns], widths, [True] * len(columns)) or 0))
    for c, (_, header, _width, _kind) in enumerate(columns):
        ws.write_string(0, c, header, fmts["header"])
    ws.freeze_panes(1, 3)
    if ws.constant_memory:  # all rows at once (screening.excel_rows): a province's list in a second
        if made is None:
            made = _made_cells(frame, fmts, columns)
        write_cells(ws, made, _row_spec(columns, fmts), 1, row_heights(made["_lines"], _lines_height))
    else:
        wrapped = [(c, widths[c]) for c, (_, _h, _w, kind) in enumerate(columns) if kind == "wrap"]
        _list_rows(ws, fmts, frame, columns, wrapped)
    if frame.height:
        ws.autofilter(0, 0, frame.height, len(columns) - 1)
    if page is not None:
        printed = (max(frame.height, 1), len(columns) - 2) if columns[-1][0] == "rule_ids" else None
        print_setup(ws, *page, print_area=printed)
    return ws


def _row_spec(columns: tuple[tuple[str, str, int, str], ...], fmts: dict[str, Any]) -> list[Column]:
    return [(name, "number" if kind in ("int", "num2") else "text", fmts[kind]) for name, _h, _w, kind in columns]


def _lines(columns: tuple[tuple[str, str, int, str], ...]) -> pl.Expr:
    """A row's line count in a sheet of ``columns``: its longest wrapped cell (excel.row_height)."""
    return pl.max_horizontal(pl.lit(1), *(wrapped_lines_expr(name, float(width))
                                          for name, _h, width, kind in columns if kind == "wrap"))


def _lines_height(lines: int) -> float:
    return lines * LINE_POINTS + ROW_PADDING


def _made_cells(frame: pl.DataFrame, fmts: dict[str, Any],
                columns: tuple[tuple[str, str, int, str], ...]) -> pl.DataFrame:
    """The cells of ``columns`` (excel_rows.cells) and each row's line count (``_lines``), from
    the texts as given."""
    return cells(frame, _row_spec(columns, fmts)).with_columns(frame.select(_lines(columns).alias("_lines")))


def _list_rows(ws: Any, fmts: dict[str, Any], frame: pl.DataFrame, columns: tuple[tuple[str, str, int, str], ...],
               wrapped: list[tuple[int, float]]) -> None:
    """The list's rows one by one (a workbook kept in memory: shared strings)."""
    # one bound writer per column, chosen once: the row loop is the hot path of a large list
    writers = [(c, ws.write_number if kind in ("int", "num2") else ws.write_string, fmts[kind])
               for c, (_, _h, _w, kind) in enumerate(columns)]
    for r, row in enumerate(frame.select([c for c, *_ in columns]).iter_rows(), start=1):
        # a row as tall as its longest wrapped cell (WPS and LibreOffice do not grow rows themselves);
        # set before the row's cells: constant-memory mode writes a row out once the next begins
        lines = max((wrapped_lines(row[c], w) for c, w in wrapped if row[c]), default=1)
        if lines > 1:
            ws.set_row(r, lines * LINE_POINTS + ROW_PADDING)
        for (c, write, fmt), v in zip(writers, row):
            if v is not None:  # an empty cell needs no record at all
                write(r, c, v, fmt)


#: the advisory data check (screening.anomaly) beside a flagged firm; never part of the decision
ANOMALY_COLUMN = ("anomaly_note", "数据核查提示（仅供参考）", 40, "wrap")
#: 数据核查提示: the firms the advisory data check flagged (anomalies.csv, for people: Chinese headers)
CHECK_COLUMNS: tuple[tuple[str, str, int, str], ...] = (
    ("list_no", "序号", 6, "int"),
    ("uscc", "统一社会信用代码", 21, "text"),
    ("name", "企业名称", 30, "text"),
    ("township", "乡镇街道", 10, "text"),
    ("industry_code", "行业代码", 9, "text"),
    ("listed_zh", "是否在清单中", 8, "text"),
    ("anomaly_score", "异常程度（0—1，越大越异常）", 12, "num2"),
    ("indicators", "与往年或同行业明显不一致之处（仅供参考，不影响判定）", 70, "wrap"),
)
CHECK_SHEET = "数据核查提示"
#: a township's own sheet: the township and the machine rule ids add nothing there
TOWNSHIP_COLUMNS = (*(c for c in LIST_COLUMNS if c[0] not in ("township", "rule_ids")), ANOMALY_COLUMN)


#: what people read for a firm whose township is unknown (registry cell empty or cleared);
#: list.csv/parquet keep the township empty (null) for machines
UNKNOWN_TOWNSHIP = "未知乡镇"


def township_for_people() -> pl.Expr:
    """``township``, with an unknown one (null, empty or blank) named :data:`UNKNOWN_TOWNSHIP`."""
    return (pl.when(pl.col("township").str.strip_chars().fill_null("") == "").then(pl.lit(UNKNOWN_TOWNSHIP))
            .otherwise(pl.col("township")).alias("township"))


def sheet_name(name: str | None, used: set[str]) -> str:
    base = _SHEET_BAD.sub("_", name or UNKNOWN_TOWNSHIP).strip("'")[:31] or UNKNOWN_TOWNSHIP
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
        township_for_people(),
        pl.int_range(1, pl.len() + 1).alias("list_no"),
        pl.col("rule_ids").str.split(";").list.eval(pl.element().replace(titles)).list.join("；").alias("rule_titles"),
    )


#: what has been achieved toward the year's targets; a key absent (or None) is not known yet:
#: a run knows only its list, the service adds the final list and the plans (screening.final)
PROGRESS_KEYS = ("listed", "final", "plans", "completed", "expected_land_mu", "expected_energy_tce",
                 "freed_land_mu", "freed_energy_tce", "listed_land_mu", "listed_energy_tce",
                 "final_land_mu", "final_energy_tce")
SUMMARY_WIDTHS = (30.0, 12.0, 12.0, 12.0, 12.0, 12.0, 12.0, 12.0, 12.0)


def _ratio(value: float | None, target: float) -> float | None:
    return value / target if value is not None and target else None


def _shown(value: Any) -> Any:
    return NOT_YET if value is None else value


def target_tables(ws: Any, fmts: dict[str, Any], row: int, targets: Mapping[str, Any],
                  progress: Mapping[str, float | None]) -> int:
    """The year's targets against what can be compared with them (issue 14): firms through the
    stages of the year; land and energy that plans expect to free and that completed plans freed.
    The listed firms' own land and energy are shown apart, as the scale that could be freed."""
    get = progress.get
    widths = list(SUMMARY_WIDTHS)
    firms = targets.get("firms")
    if firms is not None:
        ws.write_string(row, 0, "年度目标：整治企业数", fmts["bold"])
        row = _table(ws, fmts, row + 1, ["年度目标", "目标值", "筛选清单", "定稿清单", "已制定方案", "已完成整治", "完成/目标"],
                     [[f"{firms.label}（{firms.unit}）", firms.value, _shown(get("listed")), _shown(get("final")),
                       _shown(get("plans")), _shown(get("completed")),
                       _ratio(get("completed"), firms.value)]],
                     [["wrap", "int", "int", "int", "int", "int", "pct"]], widths)
    freed = [(key, targets[key]) for key in ("land_mu", "energy_tce") if key in targets]
    if freed:
        ws.write_string(row, 0, "年度目标：腾出用地与用能", fmts["bold"])
        rows = [[f"{t.label}（{t.unit}）", t.value, _shown(get(f"expected_{key}")),
                 _ratio(get(f"expected_{key}"), t.value), _shown(get(f"freed_{key}")),
                 _ratio(get(f"freed_{key}"), t.value)] for key, t in freed]
        row = _table(ws, fmts, row + 1, ["年度目标", "目标值", "方案预计腾出", "预计/目标", "已完成方案腾出", "完成/目标"],
                     rows, [["wrap", "num2", "num2", "pct", "num2", "pct"]] * len(rows), widths)
    ws.write_string(row, 0, "清单企业占地/用能（潜在腾出规模）", fmts["bold"])
    rows = [["用地面积（亩，最近一年）", _shown(get("listed_land_mu")), _shown(get("final_land_mu"))],
            ["综合能耗（吨标准煤，最近一年）", _shown(get("listed_energy_tce")), _shown(get("final_energy_tce"))]]
    row = _table(ws, fmts, row + 1, ["项目", "筛选清单企业合计", "定稿清单企业合计"], rows,
                 ["wrap", "num2", "num2"], widths)
    ws.write_string(row - 1, 0, "注：清单企业的全部用地与用能，是整治可能腾出的上限，不是目标完成量；完成量以一企一策方案登记的为准。"
                    f"“{NOT_YET}”表示尚未定稿或尚无方案。", fmts["note"])
    return row + 1


def _summary(wb: xlsxwriter.Workbook, fmts: dict[str, Any], s: "Screening", note: str | None = None) -> None:
    """The 汇总 sheet; ``note``: a line under the run's facts (the list split over sheets)."""
    ws = wb.add_worksheet("汇总")
    for c, w in enumerate(SUMMARY_WIDTHS):
        ws.set_column(c, c, w)
    y_prev, y_last = s.years
    rs = s.ruleset
    ws.write_string(0, 0, f"{rs.meta.region}{s.list_year}年度高耗低效整治企业清单（大数据筛选结果）", fmts["title"])
    info = [
        ("筛选年度", f"{s.list_year}年度"), ("使用数据年度", f"{y_prev}—{y_last}年"),
        ("规则集", f"{rs.meta.title}（{rs.meta.id}，版本 {rs.meta.version}）"),
        ("运行编号", s.run_id), ("生成时间", clock.stamp(s.started_at, seconds=True)),
        ("参数调整", "；".join(f"{k}={v}" for k, v in rs.overrides.items()) or "无（使用规则集默认值）"),
    ]
    for i, (k, v) in enumerate(info, start=2):
        ws.write_string(i, 0, k, fmts["bold"])
        ws.write_string(i, 1, v, fmts["text"])
    ws.write_string(9, 0, "说明：本清单为大数据筛选结果，须经乡镇街道属地核实后定稿；建议处置方式仅供参考，以“一企一策”为准。", fmts["note"])
    if note:
        ws.write_string(10, 0, note, fmts["note"])

    listing = s.list
    row = target_tables(ws, fmts, 11, rs.meta.targets, {
        "listed": listing.height, "listed_land_mu": listing["land_mu"].sum() or 0.0,
        "listed_energy_tce": listing["energy_tce"].sum() or 0.0})

    status_counts = s.status_counts()
    hits = s.hits_per_rule()
    rule_rows = [[rs.rules[rid].title, hits[rid], status_counts[rid].get("pass", 0),
                  status_counts[rid].get("insufficient_data", 0), status_counts[rid].get("not_applicable", 0),
                  rs.rules[rid].lead_department] for rid in rs.enabled]
    ws.write_string(row, 0, "按规则统计（企业数）", fmts["bold"])
    row = _table(ws, fmts, row + 1, ["规则", "命中", "未命中", "数据不足", "不适用", "牵头单位"], rule_rows,
                 ["wrap", "int", "int", "int", "int", "wrap"], list(SUMMARY_WIDTHS))

    by_township = _township_counts(s)
    ws.write_string(row, 0, "按乡镇街道统计", fmts["bold"])
    headers = ["乡镇街道", "清单企业数", *(rs.rules[rid].short_title for rid in rs.enabled), "用地（亩）", "综合能耗（吨标准煤）"]
    _table(ws, fmts, row + 1, headers, [list(r) for r in by_township.iter_rows()],
           ["text", "int", *(["int"] * len(rs.enabled)), "num2", "num2"], list(SUMMARY_WIDTHS))
    print_setup(ws, *_page_facts(s), header_rows=None, one_page=True)


def _township_counts(s: "Screening") -> pl.DataFrame:
    return (
        s.list.with_columns(township_for_people()).group_by("township")
        .agg(
            pl.len().alias("listed"),
            *(pl.col("rule_ids").str.split(";").list.contains(rid).sum().alias(rid) for rid in s.ruleset.enabled),
            pl.col("land_mu").sum(), pl.col("energy_tce").sum(),
        )
        .sort("listed", "township", descending=[True, False])
    )


RULES_WIDTHS = (22.0, 30.0, 24.0, 40.0, 50.0, 40.0)


def _rules_sheet(wb: xlsxwriter.Workbook, fmts: dict[str, Any], s: "Screening") -> None:
    ws = wb.add_worksheet("规则与依据")
    for c, w in enumerate(RULES_WIDTHS):
        ws.set_column(c, c, w)
    rows = []
    rs = s.ruleset
    notes = rs.rule_notes(s.list_year)
    for rid in rs.enabled:
        rule = rs.rules[rid]
        params = "；".join(
            f"{n}={'/'.join(v) if isinstance(v, list) else v}{(' ' + rule.parameters[n].unit) if rule.parameters[n].unit else ''}"
            for n, v in rs.params[rid].items()
        )
        note = notes[rid]
        if rid == LIMIT_RULE and s.unverified_limit_hits:
            note = "；".join(filter(None, [unverified_limits_note(rs, s.unverified_limit_hits), note]))
        rows.append([rid, rule.title, params or "—", rs.citation_text(rule.citation), rule.citation.quote or "", note])
    _table(ws, fmts, 0, ["规则编号", "规则", "参数（本次取值）", "依据", "原文", "说明"], rows,
           ["wrap", "wrap", "wrap", "wrap", "wrap", "wrap"], list(RULES_WIDTHS))
    ws.freeze_panes(1, 1)
    print_setup(ws, *_page_facts(s))


def _rejects_sheet(wb: xlsxwriter.Workbook, fmts: dict[str, Any], rejects: pl.DataFrame,
                   page: tuple[str, str]) -> None:
    ws = wb.add_worksheet("数据问题")
    widths = (18.0, 8.0, 18.0, 56.0, 26.0, 16.0)
    for c, w in enumerate(widths):
        ws.set_column(c, c, w)
    action = {"row_rejected": "整行未采用", "field_cleared": "该字段按未知处理"}
    action_zh = (pl.col("action").replace_strict(action, default=pl.col("action")) if "action" in rejects.columns
                 else pl.lit("整行未采用")).alias("action")
    rows = [list(r) for r in rejects.select("file", "row", "column", "reason", "value", action_zh).iter_rows()]
    _table(ws, fmts, 0, ["文件", "行号", "列", "原因", "原值", "处理"], rows, ["text", "int", "text", "wrap", "wrap", "text"],
           list(widths))
    ws.freeze_panes(1, 0)
    print_setup(ws, *page)


def _check_sheet(wb: xlsxwriter.Workbook, fmts: dict[str, Any], anomalies: pl.DataFrame,
                 page: tuple[str, str], used: set[str]) -> None:
    """数据核查提示: every flagged firm, most unusual first (as anomaly.assemble orders them), so that
    a person reads anomalies.csv's content with Chinese headers; advisory, it changes no status."""
    flagged = anomalies.filter(pl.col("flagged")) if "flagged" in anomalies.columns else anomalies.clear()
    frame = flagged.select(
        pl.int_range(1, pl.len() + 1).alias("list_no"), "uscc", "name",
        township_for_people(), "industry_code",
        pl.when(pl.col("listed")).then(pl.lit("是")).otherwise(pl.lit("否")).alias("listed_zh"),
        "anomaly_score", "indicators")
    # the name was kept from the township sheets (``used``); it is this sheet's own now
    _list_sheets(wb, fmts, CHECK_SHEET, frame, CHECK_COLUMNS, (f"{page[0]}　数据核查提示（仅供参考）", page[1]),
                 used - {CHECK_SHEET})


def _parts(frame: pl.DataFrame) -> list[pl.DataFrame]:
    """The frame in slices a sheet can hold (one slice when it fits; screening.spreadsheet)."""
    rows = spreadsheet.MAX_SHEET_ROWS
    return [frame.slice(i, rows) for i in range(0, max(frame.height, 1), rows)]


def _list_sheets(wb: xlsxwriter.Workbook, fmts: dict[str, Any], name: str, frame: pl.DataFrame,
                 columns: tuple[tuple[str, str, int, str], ...], page: tuple[str, str], used: set[str],
                 made: pl.DataFrame | None = None) -> list[str]:
    """The list as one sheet, or over Excel's row limit as sheets ``名称（i／k）`` that say so
    in their names and page headers; returns the sheet names.  ``made``: the frame's cells
    when already made (:func:`_made_cells`)."""
    parts = _parts(frame)
    if len(parts) == 1:
        names = [sheet_name(name, used)]
        _list_sheet(wb, fmts, names[0], frame, columns, page=page, made=made)
        return names
    names = []
    made_parts: list[pl.DataFrame | None] = _parts(made) if made is not None else [None] * len(parts)
    for i, (part, part_made) in enumerate(zip(parts, made_parts), start=1):
        names.append(sheet_name(f"{name}（{i}／{len(parts)}）", used))
        _list_sheet(wb, fmts, names[-1], part, columns,
                    page=(f"{page[0]}（第 {i} 部分，共 {len(parts)} 部分）", page[1]), made=part_made)
    return names


def split_note(rows: int, names: list[str]) -> str:
    return (f"注：清单共 {rows:,} 行，超过 Excel 单个工作表的上限（1,048,576 行，含表头），分为 {len(names)} 个工作表："
            + "、".join(names) + "；序号连续。")


def write_workbook(s: "Screening", path: Path) -> None:
    people = _people_list(s)
    # constant_memory: rows go to disk as they are written, so a province's list costs no memory
    with Workbook(str(path), {**WORKBOOK_OPTIONS, "constant_memory": True}) as wb:
        fmts = _formats(wb)
        parts = len(_parts(people))
        _summary(wb, fmts, s, split_note(people.height, [f"整治企业清单（{i}／{parts}）" for i in range(1, parts + 1)])
                 if parts > 1 else None)
        used = {"汇总", "规则与依据", "数据问题", CHECK_SHEET}
        title, facts = _page_facts(s)
        full, by_township = _list_cells(people, fmts)
        _list_sheets(wb, fmts, "整治企业清单", people, LIST_COLUMNS, (title, facts), used, full)
        # the same groups in the same order (a township's cells are gathered when its sheet is written)
        for ((township,), part), (_, made) in zip(people.group_by("township", maintain_order=True), by_township,
                                                  strict=True):
            _list_sheets(wb, fmts, township, part.with_columns(pl.int_range(1, pl.len() + 1).alias("list_no")),
                         TOWNSHIP_COLUMNS, (f"{title}（{township}）", facts), used, made)
        _rules_sheet(wb, fmts, s)
        _rejects_sheet(wb, fmts, s.inputs.rejects, (title, facts))
        _check_sheet(wb, fmts, s.anomalies, (title, facts), used)


def _list_cells(people: pl.DataFrame, fmts: dict[str, Any]) -> tuple[pl.DataFrame, Iterable[tuple[Any, pl.DataFrame]]]:
    """The cells (:func:`_made_cells`) of the full list's sheet, and of each township's sheet
    grouped as ``people.group_by("township", maintain_order=True)`` groups, made at once for the
    whole list: a township's sheet shows the same cells as the full list, with its own 序号 (1, 2,
    … in the township) and line counts (its columns differ).  Making them sheet by sheet escaped
    every text twice and cost a Polars pass per column and sheet."""
    frame = people.with_columns(pl.int_range(1, pl.len() + 1).over("township").alias("township_no"))
    columns = (*LIST_COLUMNS, ANOMALY_COLUMN, ("township_no", "序号", 6, "int"))
    made = cells(frame, _row_spec(columns, fmts)).with_columns(
        frame.select(_lines(LIST_COLUMNS).alias("_lines"), _lines(TOWNSHIP_COLUMNS).alias("_township_lines"),
                     pl.col("township").alias("_township")))
    township = made.select(*(pl.col("township_no" if name == "list_no" else name).alias(name)
                             for name, *_ in TOWNSHIP_COLUMNS),
                           pl.col("_township_lines").alias("_lines"), "_township")
    return (made.select(*(name for name, *_ in LIST_COLUMNS), "_lines"),
            township.group_by("_township", maintain_order=True))
