"""差别化措施 (issue 16, item 3): the lists each utility acts on, from the grade history.

Python API:

- :func:`history_from_evaluations` — the official grades of the ``evaluations`` table as a grade
  history frame ``(uscc, year, grade, source)``;
- :func:`merge_histories` — several histories into one grade per firm and year, a later frame
  overriding an earlier one (the service's finalized evaluations go last: see docs/measures.md);
- :func:`compute` — the lists from a grade history, the registry, the ``accounts`` table and the
  policy table (``rules/<set>/measures.yaml``) for list year ``year`` on a date;
- :func:`measures` — all of it from a data directory (``screening measures``).

The logic is ``sql/rules/measures.sql``; every number is in ``measures.yaml`` with its citation.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from .. import reasons
from ..engine import Engine, sql_text
from ..errors import InputError
from ..ingest import ROW, RawTable, find_table_file, read_dir
from ..paths import default_ruleset
from ..schema import TABLES, UTILITIES
from ..validate import FIRM_ID, REJECT_SCHEMA, ROW_REJECTED, _attach_firm_id, _check_cells, _split_duplicates, validate
from .policy import MeasuresFile, load_measures

HISTORY_SCHEMA = {"uscc": pl.String, "year": pl.Int32, "grade": pl.String, "source": pl.String}
#: the grade source of the ``evaluations`` input table
OFFICIAL_SOURCE = "评价结果表（evaluations）"
OUTPUT_COLUMNS = ("utility", "uscc", "name", "township", "account", "grade", "grade_year", "consecutive_years",
                  "surcharge", "unit", "refund_share", "previous_grade", "valid_from", "valid_to", "policy_id",
                  "grade_source", "note", "citation", "assumption")
HEADERS_ZH = {
    "utility": "类型", "uscc": "统一社会信用代码", "name": "企业名称", "township": "乡镇街道", "account": "户号",
    "grade": "评价等级", "grade_year": "评价年度", "consecutive_years": "连续处于该等级年数", "surcharge": "加价标准",
    "unit": "单位", "refund_share": "返还比例", "previous_grade": "上一年度等级", "valid_from": "执行起始日",
    "valid_to": "执行截止日", "policy_id": "政策编号", "grade_source": "等级来源", "note": "说明",
    "citation": "依据", "assumption": "项目假设",
}


@dataclass
class MeasureLists:
    """The lists of one list year on one date: ``rows`` (every utility, OUTPUT_COLUMNS) and what
    was decided on the way."""

    rows: pl.DataFrame
    policy: MeasuresFile
    year: int
    on_date: dt.date
    #: policies of the table not in force on ``on_date`` (id, utility, grade, valid_from, valid_to, state)
    not_in_force: list[dict[str, Any]] = field(default_factory=list)
    rejects: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=REJECT_SCHEMA))

    def for_utility(self, utility: str) -> pl.DataFrame:
        return self.rows.filter(pl.col("utility") == utility)


# ---------------------------------------------------------------- grade history

def history_from_evaluations(evaluations: pl.DataFrame, source: str = OFFICIAL_SOURCE) -> pl.DataFrame:
    """``(uscc, year, grade, source)`` from a frame with ``uscc, year, grade`` (the evaluations table)."""
    return evaluations.select(pl.col("uscc").cast(pl.String), pl.col("year").cast(pl.Int32),
                              pl.col("grade").cast(pl.String), pl.lit(source, dtype=pl.String).alias("source"))


def history_from_finalized(final: pl.DataFrame) -> pl.DataFrame:
    """``(uscc, year, grade, source)`` from the final grades of the service's finalized (定稿)
    evaluations (``screening.evaluation_workflow.finalized_grades``: uscc, year, grade,
    evaluation_id, …); the source names the evaluation, so each list row says where its grade came from."""
    return final.select(pl.col("uscc").cast(pl.String), pl.col("year").cast(pl.Int32), pl.col("grade").cast(pl.String),
                        pl.concat_str(pl.lit("已定稿的亩均效益评价 "), pl.col("evaluation_id")).alias("source"))


def merge_histories(*frames: pl.DataFrame) -> pl.DataFrame:
    """One grade per (uscc, year): a later frame's grade replaces an earlier frame's for the same
    firm and year.  Pass the official table first and the service's finalized evaluations after it
    (``merge_histories(official, finalized)``): a finalized evaluation is the bureau's last word."""
    parts = []
    for rank, frame in enumerate(frames):
        missing = set(HISTORY_SCHEMA) - set(frame.columns)
        if missing:
            raise InputError(f"等级历史缺少列 {sorted(missing)}（应有 uscc、year、grade、source）")
        parts.append(frame.select([pl.col(c).cast(t) for c, t in HISTORY_SCHEMA.items()])
                     .with_columns(pl.lit(rank).alias("_rank")))
    if not parts:
        return pl.DataFrame(schema=HISTORY_SCHEMA)
    merged = pl.concat(parts).filter(pl.col("uscc").is_not_null() & pl.col("year").is_not_null())
    # a later frame's row without a grade (a finalized evaluation's T 暂不评价 or 不定等级) still
    # replaces the earlier frame's grade of that firm and year: it is dropped only after the merge
    return (merged.sort("_rank").unique(["uscc", "year"], keep="last", maintain_order=True)
            .filter(pl.col("grade").is_not_null()).drop("_rank").sort("uscc", "year"))


# ---------------------------------------------------------------- the lists

def compute(history: pl.DataFrame, enterprises: pl.DataFrame, accounts: pl.DataFrame | None,
            policy: MeasuresFile, year: int, on_date: dt.date | None = None) -> MeasureLists:
    """The lists of list year ``year`` (grades of ``year - 1`` and the years before) on ``on_date``
    (default: the first day of the year's period, ``period`` in measures.yaml).

    ``history``: ``(uscc, year, grade, source)``, one row per firm and year (see :func:`merge_histories`);
    ``enterprises``: ``uscc, name, township``; ``accounts``: ``uscc, utility, account`` or None.
    A firm without an account for a utility is listed with the account empty and a note."""
    start, end = policy.period_of(year)
    on_date = on_date or start
    if not start <= on_date <= end:
        raise InputError(f"日期 {on_date.isoformat()} 不在 {year} 年度措施的执行期（{start.isoformat()} 至 "
                         f"{end.isoformat()}，见 measures.yaml 的 period）内")
    grade_year = year - 1
    history = merge_histories(history)
    years = sorted(history["year"].unique().to_list())
    if grade_year not in years:
        # no grade for the year the measures follow: an empty list would read as "nobody to charge"
        raise InputError(f"等级历史中没有 {grade_year} 年度的评价等级，无法生成 {year} 年度的差别化措施名单"
                         f"（已有年度：{'、'.join(map(str, years)) or '无'}）")
    accounts = accounts if accounts is not None else pl.DataFrame(schema={"uscc": pl.String, "utility": pl.String,
                                                                         "account": pl.String})
    engine = Engine()
    try:
        engine.load("history", history)
        engine.load("policy_steps", policy.steps_frame())
        judged = engine.query("rules/measures.sql", sql_text("rules/measures.sql"),
                              {"grade_year": grade_year, "on_date": on_date,
                               "previous_date": policy.period_of(year - 1)[0]})
    finally:
        engine.close()
    firms = enterprises.select(pl.col("uscc").cast(pl.String), pl.col("name").cast(pl.String),
                               pl.col("township").cast(pl.String))
    rows = (judged.join(firms, on="uscc", how="left")
            .join(accounts.select(pl.col("uscc").cast(pl.String), pl.col("utility").cast(pl.String),
                                  pl.col("account").cast(pl.String)), on=["uscc", "utility"], how="left"))
    rows = _present(rows, policy, grade_year, on_date, end)
    not_in_force = [
        {"policy_id": p.id, "utility": p.utility, "grade": p.grade, "valid_from": p.valid_from.isoformat(),
         "valid_to": p.valid_to.isoformat() if p.valid_to else None,
         "state": "not_yet" if p.valid_from > on_date else "ended"}
        for p in policy.policies if not (p.valid_from <= on_date and (p.valid_to is None or p.valid_to >= on_date))]
    return MeasureLists(rows, policy, year, on_date, not_in_force)


#: the fields a message of measures.yaml may name (columns of the list; constants: grade_year, previous_year)
MESSAGE_FIELDS = ("utility", "uscc", "name", "township", "account", "grade", "consecutive_years", "surcharge",
                  "unit", "provider", "refund_share", "previous_grade")


def message_sql(policy: MeasuresFile, grade_year: int, alias: str = "l") -> dict[str, str]:
    """Each message of measures.yaml as a SQL expression over the list's columns (screening.reasons:
    a field the list has not, or a format not supported, is a RuleSetError naming the message)."""
    constants = {"grade_year": grade_year, "previous_year": grade_year - 1}
    columns = {name: f"{alias}.{name}" for name in MESSAGE_FIELDS}
    return {code: reasons.compile_template(text.strip(), constants, columns, f"measures.yaml messages.{code}")
            for code, text in policy.messages.items()}


def _present(judged: pl.DataFrame, policy: MeasuresFile, grade_year: int, on_date: dt.date,
             period_end: dt.date) -> pl.DataFrame:
    """Units, dates, the Chinese note, the citation and the assumptions of each row (presentation:
    the rule is sql/rules/measures.sql)."""
    info = pl.DataFrame([{"policy_id": p.id, "citation": policy.citation_text(p.cite),
                          "refund_citation": policy.citation_text(p.refund.cite) if p.refund else None,
                          "assumption": f"{p.id}：{p.assumption}" if p.assumption else None}
                         for p in policy.policies],
                        schema={"policy_id": pl.String, "citation": pl.String, "refund_citation": pl.String,
                                "assumption": pl.String})
    units = pl.DataFrame([{"utility": u, "unit": x.unit, "provider": x.provider} for u, x in policy.utilities.items()])
    text = message_sql(policy, grade_year)
    engine = Engine()
    try:
        engine.load("judged", judged)
        engine.load("policy_info", info)
        engine.load("utility_info", units)
        out = engine.query("measures list", f"""
            WITH l AS (
                SELECT j.*, u.unit, u.provider FROM judged j JOIN utility_info u USING (utility)
            )
            SELECT l.utility, l.uscc, l.name, l.township, l.account, l.grade, $grade_year AS grade_year,
                   l.consecutive_years, l.surcharge, l.unit, l.refund_share,
                   CASE WHEN l.refund_policy_id IS NOT NULL THEN l.previous_grade END AS previous_grade,
                   $on_date AS valid_from, least($period_end, coalesce(l.policy_to, $period_end)) AS valid_to,
                   coalesce(l.policy_id, l.refund_policy_id) AS policy_id, l.grade_source,
                   concat_ws('；',
                       CASE WHEN l.policy_id IS NOT NULL THEN {text["surcharge"]} END,
                       CASE WHEN l.refund_policy_id IS NOT NULL THEN {text["refund"]} END,
                       CASE WHEN l.account IS NULL THEN {text["no_account"]} END) AS note,
                   nullif(concat_ws('；', c.citation,
                       CASE WHEN r.refund_citation IS DISTINCT FROM c.citation THEN r.refund_citation END), '') AS citation,
                   nullif(concat_ws('；', c.assumption,
                       CASE WHEN r.policy_id IS DISTINCT FROM c.policy_id THEN r.assumption END), '') AS assumption,
                   array_position(['电', '水', '气'], l.utility) AS _u
            FROM l
            LEFT JOIN policy_info c ON c.policy_id = l.policy_id
            LEFT JOIN policy_info r ON r.policy_id = l.refund_policy_id
            ORDER BY _u, l.township NULLS LAST, l.uscc, l.account NULLS LAST
        """, {"grade_year": grade_year, "on_date": on_date, "period_end": period_end})
    finally:
        engine.close()
    return out.drop("_u").with_columns(pl.col("grade_year").cast(pl.Int32),
                                       pl.col("consecutive_years").cast(pl.Int64)).select(OUTPUT_COLUMNS)


# ---------------------------------------------------------------- from a data directory

def with_utility_aliases(raw: RawTable, aliases: dict[str, str] | None) -> None:
    """The ``utility`` cells of a loaded table written another way (电力, 自来水 …) read as 电/水/气."""
    frame = raw.frame
    if aliases and "utility" in frame.columns and frame.schema["utility"] == pl.String:
        raw.frame = frame.with_columns(pl.col("utility").replace(aliases))


def read_accounts(data_dir: Path, registry: pl.DataFrame,
                  aliases: dict[str, str] | None = None) -> tuple[pl.DataFrame | None, pl.DataFrame]:
    """The optional ``accounts`` table (``uscc, utility, account``) and its reject lines; None when
    the directory has no accounts file.  ``registry``: the validated enterprises (``uscc, firm_id``).
    An account number given to two firms for the same utility keeps the first row."""
    path = find_table_file(Path(data_dir), "accounts")
    if path is None:
        return None, pl.DataFrame(schema=REJECT_SCHEMA)
    raw = RawTable(TABLES["accounts"], path, data_dir=Path(data_dir))
    raw.load()
    with_utility_aliases(raw, aliases)
    good, cell_rejects, _ = _check_cells(raw)
    good, unknown = _attach_firm_id(raw, good, registry.select("uscc", FIRM_ID), pl.Series("uscc", [], pl.String))
    good, dups = _split_duplicates(raw, good, [FIRM_ID, "utility", "account"], registry.select("uscc", FIRM_ID))
    good, shared = _shared_accounts(raw, good)
    rejects = pl.concat([cell_rejects, unknown, dups, shared]).with_columns(pl.col("row").cast(pl.Int64))
    raw.release()
    codes = registry.select("uscc", FIRM_ID)
    frame = good.join(codes, on=FIRM_ID, how="left").select("uscc", "utility", "account")
    return frame, rejects.sort("row", "column")


def _shared_accounts(raw: RawTable, good: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A (utility, account) already given to another firm on an earlier row: the later row is refused
    (one meter cannot carry two firms' surcharges)."""
    firsts = good.sort(ROW).unique(["utility", "account"], keep="first", maintain_order=True).select(
        "utility", "account", pl.col(FIRM_ID).alias("_owner"), pl.col(ROW).alias("_first"))
    joined = good.join(firsts, on=["utility", "account"], how="left")
    bad = joined.filter(pl.col(FIRM_ID) != pl.col("_owner"))
    lines = bad.select(
        pl.lit(raw.file).alias("file"), pl.col(ROW).cast(pl.Int64).alias("row"),
        pl.lit(raw.headers.get("account", "account")).alias("column"),
        pl.format("该户号已在第{}行登记给另一家企业，一个户号只能属于一家企业", "_first").alias("reason"),
        pl.col("account").alias("value"), pl.lit(ROW_REJECTED).alias("action"))
    return good.filter(~pl.col(ROW).is_in(bad[ROW].implode())), lines


def measures(data_dir: Path, year: int, rules: Path | None = None, on_date: dt.date | None = None,
             extra_history: pl.DataFrame | None = None) -> MeasureLists:
    """``screening measures``: read ``enterprises``, ``evaluations`` and (optional) ``accounts`` of
    ``data_dir`` and compute the lists (Python API).  ``extra_history`` — e.g. the final grades of
    the service's finalized evaluations, ``(uscc, year, grade, source)`` — overrides the table's
    grades for the firms and years it holds."""
    policy = load_measures(Path(rules) if rules else default_ruleset())
    files = read_dir(Path(data_dir), {"enterprises", "evaluations"})
    inputs = validate({k: v for k, v in files.items() if k in ("enterprises", "evaluations")})
    registry = inputs.tables["enterprises"]
    history = history_from_evaluations(inputs.frame("evaluations"))
    if extra_history is not None:
        history = merge_histories(history, extra_history)
    accounts, account_rejects = read_accounts(Path(data_dir), registry, policy.utility_aliases())
    result = compute(history, inputs.frame("enterprises"), accounts, policy, year, on_date)
    result.rejects = pl.concat([inputs.rejects.select(list(REJECT_SCHEMA)), account_rejects]).sort("file", "row", "column")
    return result


def summary(result: MeasureLists) -> dict[str, Any]:
    """Counts per utility for the command line, the API and the dashboard."""
    per = {}
    for utility in UTILITIES:
        rows = result.for_utility(utility)
        per[utility] = {"rows": rows.height, "firms": rows["uscc"].n_unique(),
                        "surcharged": rows.filter(pl.col("surcharge").fill_null(0) > 0)["uscc"].n_unique(),
                        "refunds": rows.filter(pl.col("refund_share").is_not_null())["uscc"].n_unique(),
                        "no_account": rows.filter(pl.col("account").is_null())["uscc"].n_unique()}
    return {"year": result.year, "date": result.on_date.isoformat(), "by_utility": per,
            "not_in_force": result.not_in_force,
            "rejected_rows": result.rejects.filter(pl.col("action") == ROW_REJECTED).select("file", "row").unique().height}
