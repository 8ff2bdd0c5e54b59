"""The quarterly ledger of differential measures (台账): surcharges collected, refunds paid back and
incentives granted, per firm or per township, as county platforms keep it.

A ledger file (``measure_ledger`` in screening/schema.py: 年度, 季度, 类别, 类型, 统一社会信用代码,
企业名称, 乡镇街道, 计费量, 金额（万元; 元 in the header is converted）, 备注) is read like every input
table (screening.ingest: header synonyms, units, Excel quirks) and checked by screening.validate;
this module adds what is particular to it: the quarter written as 1, Q1, 一季度 or 第一季度, and a
row needing a firm code or a township.  Rows come back with the row number Excel shows."""
from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from ..ingest import ROW, RawTable
from ..projects import _check_applicant_codes
from ..schema import TABLES
from ..validate import REJECT_SCHEMA, ROW_REJECTED, _check_cells, _split_duplicates

TABLE = "measure_ledger"
COLUMNS = ("year", "quarter", "kind", "utility", "uscc", "name", "township", "quantity", "amount", "note")
_QUARTER = {"1": 1, "2": 2, "3": 3, "4": 4, "一": 1, "二": 2, "三": 3, "四": 4}
_QUARTER_TEXT = re.compile(r"^(?:\d{4}年?)?(?:第)?([1-4一二三四])(?:\.0)?(?:季度?)?$|^(?:\d{4})?q([1-4])$", re.IGNORECASE)


def parse_quarter(text: str | None) -> int | None:
    """1–4 from ``1``, ``1.0``, ``Q1``, ``2024Q1``, ``一季度``, ``第一季度``, ``2024年第一季度``; None otherwise."""
    if text is None:
        return None
    m = _QUARTER_TEXT.match(re.sub(r"\s", "", str(text)))
    if not m:
        return None
    return _QUARTER[m.group(1) or m.group(2)]


def read_ledger(path: Path, aliases: dict[str, str] | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The accepted rows (COLUMNS + ``row``, the row as Excel shows it) and the reject lines
    (file, row, column, reason, value, action) of one ledger file.  ``aliases``: other ways of
    writing 电/水/气 (measures.yaml ``utilities``)."""
    from . import with_utility_aliases

    raw = RawTable(TABLES[TABLE], Path(path), data_dir=Path(path).parent)
    raw.load()
    with_utility_aliases(raw, aliases)
    good, cell_rejects, _ = _check_cells(raw)
    # a code that is given must be a valid 统一社会信用代码 (the projects table's check)
    good, code_rejects = _check_applicant_codes(raw, good)
    quarter = good["quarter"].map_elements(parse_quarter, return_dtype=pl.Int64)
    good = good.with_columns(quarter.alias("_q"))
    bad_quarter = good.filter(pl.col("_q").is_null())
    no_owner = good.filter(pl.col("uscc").is_null() & pl.col("township").is_null())
    lines = [cell_rejects, code_rejects,
             _lines(raw, bad_quarter, "quarter", pl.lit("季度应为 1—4（也可写作 Q1、一季度、第一季度）"), "quarter"),
             _lines(raw, no_owner, "uscc", pl.lit("统一社会信用代码与乡镇街道至少填写一项（企业的行填代码，乡镇汇总的行填乡镇街道）"),
                    "uscc")]
    refused = pl.concat([bad_quarter[ROW], no_owner[ROW]])
    good = good.filter(~pl.col(ROW).is_in(refused.implode())).with_columns(pl.col("_q").alias("quarter")).drop("_q")
    # a firm's row is the firm's, whatever township it was written with (an empty township is filled
    # from the list later); a township's total has no code and is the township's
    firm_rows = good.filter(pl.col("uscc").is_not_null())
    firm_rows, firm_dups = _split_duplicates(raw, firm_rows, ["year", "quarter", "kind", "utility", "uscc"], None)
    town_rows, town_dups = _split_duplicates(raw, good.filter(pl.col("uscc").is_null()),
                                             ["year", "quarter", "kind", "utility", "township"], None)
    good = pl.concat([firm_rows, town_rows])
    lines += [firm_dups, town_dups]
    raw.release()
    rejects = pl.concat([l.with_columns(pl.col("row").cast(pl.Int64)) for l in lines]).sort("row", "column")
    return good.select(*COLUMNS, pl.col(ROW).cast(pl.Int64).alias("row")).sort("row"), rejects


def _lines(raw: RawTable, rows: pl.DataFrame, column: str, reason: pl.Expr, value: str) -> pl.DataFrame:
    if not rows.height:
        return pl.DataFrame(schema=REJECT_SCHEMA)
    return rows.select(pl.lit(raw.file).alias("file"), pl.col(ROW).cast(pl.Int64).alias("row"),
                       pl.lit(raw.headers.get(column, TABLES[TABLE].column(column).zh)).alias("column"),
                       reason.alias("reason"), pl.col(value).cast(pl.String).alias("value"),
                       pl.lit(ROW_REJECTED).alias("action"))
