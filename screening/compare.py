"""Year over year: how two stored runs' lists differ, and why each firm moved.

For every firm on either list: entered, left or stayed, and for each rule whose status
changed, the status, value and threshold before and after (e.g. why a firm left:
its 亩均税收 rose above the line, or the line itself moved).
"""
from __future__ import annotations

from pathlib import Path

import polars as pl

from .errors import ScreeningError
from .ruleset import STATUS_ZH
from .sqlquote import literal
from .store import connect, results_relation

CHANGE_ZH = {"entered": "新进清单", "left": "退出清单", "stayed": "仍在清单"}
#: compare.xlsx: the columns a person reads, with Chinese headers
SHEET_COLUMNS = {"change_zh": "变动", "uscc": "统一社会信用代码", "name": "企业名称", "township": "乡镇街道",
                 "rules_before": "此前命中规则", "rules_after": "现命中规则", "reason": "变动原因"}

_SQL = """
WITH a AS (SELECT * FROM run_list WHERE run_id = $a),
     b AS (SELECT * FROM run_list WHERE run_id = $b),
moved AS (
    SELECT coalesce(b.uscc, a.uscc) AS uscc, coalesce(b.name, a.name) AS name,
           coalesce(b.township, a.township) AS township,
           CASE WHEN a.uscc IS NULL THEN 'entered' WHEN b.uscc IS NULL THEN 'left' ELSE 'stayed' END AS change,
           a.rule_ids AS rule_ids_before, b.rule_ids AS rule_ids_after
    FROM a FULL JOIN b USING (uscc)
),
changed_rules AS (
    SELECT ra.uscc,
           string_agg(
               ra.rule_id || '：' || ra.status || '→' || coalesce(rb.status, '无') ||
               CASE WHEN ra.value IS NOT NULL OR rb.value IS NOT NULL
                    THEN '（数值 ' || coalesce(printf('%.2f', ra.value), '—') || '→' || coalesce(printf('%.2f', rb.value), '—') ||
                         '，阈值 ' || coalesce(printf('%.2f', ra.threshold), '—') || '→' ||
                         coalesce(printf('%.2f', rb.threshold), '—') || '）'
                    ELSE '' END,
               '；' ORDER BY ra.rule_id) AS why,
           string_agg(
               coalesce(rb.rule_title, ra.rule_title, ra.rule_id) || '：由' || {status_a} || '变为' ||
               coalesce({status_b}, '无判定') ||
               CASE WHEN ra.value IS NOT NULL OR rb.value IS NOT NULL
                    THEN '（本企业数值 ' || coalesce(printf('%.2f', ra.value), '—') || '→' ||
                         coalesce(printf('%.2f', rb.value), '—') || '，认定标准 ' ||
                         coalesce(printf('%.2f', ra.threshold), '—') || '→' || coalesce(printf('%.2f', rb.threshold), '—') || '）'
                    ELSE '' END,
               '；' ORDER BY ra.rule_id) AS why_zh
    FROM {results_a} ra
    JOIN {results_b} rb USING (uscc, rule_id)
    WHERE ra.status IS DISTINCT FROM rb.status AND (ra.status = 'hit' OR rb.status = 'hit')
    GROUP BY ra.uscc
)
SELECT m.*, coalesce(c.why, CASE WHEN m.change = 'stayed' THEN '' ELSE '该企业不在另一次运行的企业名录中' END) AS why,
       {change} || '：' || coalesce(c.why_zh, CASE WHEN m.change = 'stayed' THEN '各规则判定未变'
                                           ELSE '该企业不在另一次运行的企业名录中' END) AS reason
FROM moved m LEFT JOIN changed_rules c USING (uscc)
ORDER BY m.change, m.township, m.uscc
"""


def _case(column: str, names: dict[str, str]) -> str:
    """A SQL CASE naming ``column``'s codes in Chinese (the codes themselves where unnamed)."""
    whens = " ".join(f"WHEN {literal(code)} THEN {literal(name)}" for code, name in names.items())
    return f"(CASE {column} {whens} ELSE {column} END)"


def latest_run_id(con, year: int) -> str:
    rows = con.execute("SELECT run_id FROM runs WHERE list_year = ? ORDER BY created_at DESC LIMIT 1", [year]).fetchall()
    if not rows:
        raise ScreeningError(f"数据库中没有 {year} 年度的筛选结果，请先运行 screening run --year {year}")
    return rows[0][0]


def compare_runs(db: Path, before: int | str, after: int | str) -> pl.DataFrame:
    """Compare two runs given as list years (their latest runs) or run ids.

    Returns one row per firm on either list: uscc, name, township, change (entered / left /
    stayed), rule_ids_before, rule_ids_after and ``why`` (each rule whose hit status changed,
    with value and threshold before → after)."""
    if not Path(db).exists():  # a folder: connect says so
        raise ScreeningError(f"找不到数据库文件 {db}：请先运行 screening run，或用 --db 指定保存运行记录的文件")
    con = connect(Path(db), read_only=True)
    try:
        a = latest_run_id(con, before) if isinstance(before, int) else before
        b = latest_run_id(con, after) if isinstance(after, int) else after
        sql = _SQL.format(status_a=_case("ra.status", STATUS_ZH), status_b=_case("rb.status", STATUS_ZH),
                          change=_case("m.change", CHANGE_ZH),
                          results_a=results_relation(con, "(SELECT * FROM run_results WHERE run_id = $a)"),
                          results_b=results_relation(con, "(SELECT * FROM run_results WHERE run_id = $b)"))
        return con.sql(sql, params={"a": a, "b": b}).pl()
    finally:
        con.close()


def write_workbook(table: pl.DataFrame, path: Path, titles: dict[str, str]) -> Path:
    """compare.xlsx: Chinese headers, changes and reasons; rule ids as rule titles."""
    from .export import export_excel

    def named(column: str) -> pl.Expr:
        return (pl.col(column).str.split(";").list.eval(pl.element().replace(titles)).list.join("；")
                .fill_null(""))

    frame = table.with_columns(pl.col("change").replace_strict(CHANGE_ZH, default=pl.col("change")).alias("change_zh"),
                               named("rule_ids_before").alias("rules_before"),
                               named("rule_ids_after").alias("rules_after"))
    return export_excel({"清单变动": frame.select(list(SHEET_COLUMNS))}, path, headers=SHEET_COLUMNS)
