"""Tables for reports: Polars frames as one Excel workbook, a sheet each, with Chinese headers.

The sheets are laid out like the list workbook (screening/excel.py: the same formats,
header row, column widths, frozen header and filter), so a notebook's table and the
official list look alike when they reach the bureau.

    screening.export_excel({"行业对标": bench}, "out/对标.xlsx", headers={"firms": "企业数"})
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import polars as pl

from . import clock
from .excel import LIST_COLUMNS, WORKBOOK_OPTIONS, Workbook, _formats, _list_sheet, sheet_name

#: Chinese headers for the columns the engine's tables share; ``headers=`` adds or overrides
HEADERS: dict[str, str] = {
    **{column: header for column, header, *_ in LIST_COLUMNS},
    "list_year": "清单年度",
    "year": "年度",
    "value": "取值",
    "param": "参数",
    "listed": "清单企业数",
    "entered": "新进清单企业数",
    "left": "退出清单企业数",
    "change": "变动",
    "rule_id": "规则编号",
    "status": "判定结果",
    "threshold": "阈值",
    "reason": "说明",
    "firms": "企业数",
    "division": "行业大类",
    "industry_group_name": "行业",
    "tax_paid": "实缴税金（万元）",
    "value_added": "工业增加值（万元）",
    "value_added_per_mu": "亩均增加值（万元/亩）",
}

_INTEGER = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)


def _width(header: str, frame: pl.DataFrame, column: str) -> int:
    """A column width in Excel units: a Chinese character counts twice, capped at 60."""
    def span(text: str) -> int:
        return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)

    longest = max((span(str(v)) for v in frame[column].head(200).to_list() if v is not None), default=0)
    return min(max(span(header), longest, 6) + 2, 60)


def _sheet_frame(frame: pl.DataFrame) -> tuple[pl.DataFrame, list[tuple[str, str]]]:
    """Numbers stay numbers; dates, booleans and lists become text as a person would write them."""
    kinds, cast = [], []
    for column, dtype in frame.schema.items():
        if dtype in _INTEGER:
            kinds.append((column, "int"))
            cast.append(pl.col(column).cast(pl.Float64))
        elif dtype.is_numeric():  # Excel has no NaN: such a cell stays empty
            kinds.append((column, "num2"))
            cast.append(pl.col(column).cast(pl.Float64).fill_nan(None))
        elif dtype == pl.Boolean:
            kinds.append((column, "text"))
            cast.append(pl.col(column).replace_strict({True: "是", False: "否"}, return_dtype=pl.String))
        elif dtype == pl.Datetime:
            kinds.append((column, "text"))
            moment = pl.col(column)
            if getattr(dtype, "time_zone", None):  # a time with its zone is shown in China time, labelled
                moment = moment.dt.convert_time_zone(clock.zone_name())
                cast.append(moment.dt.to_string("%Y-%m-%d %H:%M:%S") + f"（{clock.label()}）")
            else:
                cast.append(moment.dt.to_string("%Y-%m-%d %H:%M:%S"))
        elif isinstance(dtype, pl.List):
            kinds.append((column, "wrap"))
            cast.append(pl.col(column).cast(pl.List(pl.String)).list.join("；"))
        else:
            kinds.append((column, "text"))
            cast.append(pl.col(column).cast(pl.String))
    return frame.select(cast), kinds


def export_excel(frames: Mapping[str, pl.DataFrame], path: str | Path,
                 headers: Mapping[str, str] | None = None) -> Path:
    """Write each frame to a sheet (sheet name → frame, in order) of the workbook at ``path``.

    Column headers are Chinese: ``headers`` first, then :data:`HEADERS`, else the column name."""
    names = {**HEADERS, **(headers or {})}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    with Workbook(str(path), WORKBOOK_OPTIONS) as wb:
        fmts = _formats(wb)
        for sheet, frame in frames.items():
            data, kinds = _sheet_frame(frame)
            columns = tuple((c, names.get(c, c), _width(names.get(c, c), data, c), kind) for c, kind in kinds)
            _list_sheet(wb, fmts, sheet_name(sheet, used), data, columns)
    return path
