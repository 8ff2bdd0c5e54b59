"""拟建项目节能审查 (seed 一.5) and key energy users: ``screening projects`` and the Python API.

The ``projects`` table is read like every other input table (screening.ingest, screening.validate:
synonyms, units, rejects with reasons) but only by this module: a screening run never reads it.
The logic is ``sql/rules/projects.sql`` and ``sql/rules/key_energy_users.sql``; every number lives
in ``rules/<set>/projects.yaml`` and ``key_energy_users.yaml`` with its citation.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from . import reasons
from . import uscc as uscc_mod
from .engine import Engine, sql_text
from .errors import InputError
from .ingest import ROW, RawTable, file_names, find_table_file
from .paths import default_ruleset, folder_problem
from .ruleset import RuleSet, load_ruleset
from .schema import TABLES
from .validate import REJECT_SCHEMA, ROW_REJECTED, _check_cells, _split_duplicates

FAMILY = "projects"
KEY_FAMILY = "key_energy_users"
#: the contract's columns of projects.csv, in order (the contract names the first ones "at least")
OUTPUT_COLUMNS = ("project_id", "name", "uscc", "township", "industry_code", "two_high", "energy_tce", "coal_t",
                  "value_added", "intensity", "standard", "intensity_status", "authority", "suggestion", "reason",
                  "start_year", "status")
HEADERS_ZH = {
    "project_id": "项目代码", "name": "项目名称", "uscc": "统一社会信用代码", "township": "乡镇街道",
    "industry_code": "行业代码", "two_high": "是否两高", "energy_tce": "年综合能耗（吨标准煤）",
    "coal_t": "其中煤炭（吨）", "value_added": "年工业增加值（万元）", "intensity": "单位工业增加值能耗（吨标准煤/万元）",
    "standard": "能效准入标准（吨标准煤/万元）", "intensity_status": "能效判定", "authority": "审查权限",
    "suggestion": "处理建议（仅供参考）", "reason": "说明", "start_year": "计划开工年份", "status": "状态",
}
STATUS_ZH = {"hit": "高于标准", "pass": "不高于标准", "insufficient_data": "数据不足"}
AUTHORITY_ZH = {"below_review": "不单独审查", "county": "本级审查", "upper": "报上级审查"}


@dataclass
class ProjectReview:
    """One review of a projects table: a row per accepted project, and the rows rejected."""

    results: pl.DataFrame
    rejects: pl.DataFrame
    read_rows: int
    ruleset: RuleSet


#: where the register is looked for in a data directory: the directory itself, then its projects/
#: folder (the bundled sample keeps it there so that ``screening run`` on sample_data never sees it)
REGISTER_FOLDERS = (".", FAMILY)


def find_register(data_dir: Path) -> Path | None:
    """The ``projects`` table's file in ``data_dir`` or else in its ``projects/`` folder, or None."""
    for name in REGISTER_FOLDERS:
        folder = Path(data_dir) / name
        if folder.is_dir() and (path := find_table_file(folder, FAMILY)) is not None:
            return path
    return None


def read_projects(data_dir: Path) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """The accepted project rows, the reject lines and the number of rows read."""
    data_dir = Path(data_dir)
    problem = folder_problem(data_dir, "数据目录")
    if problem:
        raise InputError(problem)
    table = TABLES[FAMILY]
    path = find_register(data_dir)
    if path is None:
        raise InputError(f"{data_dir}：缺少表 {FAMILY}（{table.zh}），应为 {file_names(FAMILY)}"
                         f"（也可放在其 {FAMILY}/ 子目录中）")
    data_dir = path.parent
    raw = RawTable(table, path, data_dir=data_dir)
    raw.load()
    good, cell_rejects, _ = _check_cells(raw)
    good, code_rejects = _check_applicant_codes(raw, good)
    good, dup_rejects = _split_duplicates(raw, good, ["project_id"], None)
    rejects = pl.concat([cell_rejects, code_rejects, dup_rejects]).with_columns(pl.col("row").cast(pl.Int64))
    read_rows = raw.rows
    raw.release()
    return good.sort(ROW).drop(ROW), rejects.sort("row", "column"), read_rows


def _check_applicant_codes(raw: RawTable, good: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """An applicant's code is optional (a company still to be founded has none); one that is
    given must be a valid 统一社会信用代码 (GB 32100-2015), else the row is rejected."""
    code = pl.col("uscc").cast(pl.String).str.strip_chars().str.to_uppercase()
    good = good.with_columns(code.alias("uscc"))
    given = good.filter(pl.col("uscc").is_not_null())
    if not given.height:
        return good, pl.DataFrame(schema=REJECT_SCHEMA)
    # the same reasons as the registry's codes get (screening.uscc); a project table has a few hundred rows
    checked = given.with_columns(pl.col("uscc").map_elements(uscc_mod.problem, return_dtype=pl.String).alias("_problem"))
    bad = checked.filter(pl.col("_problem").is_not_null())
    lines = bad.select(
        pl.lit(raw.file).alias("file"), pl.col(ROW).cast(pl.Int64).alias("row"),
        pl.lit(raw.headers.get("uscc", "uscc")).alias("column"), pl.col("_problem").alias("reason"),
        pl.col("uscc").alias("value"), pl.lit(ROW_REJECTED).alias("action"))
    return good.filter(~pl.col(ROW).is_in(bad[ROW].implode())), lines


#: the columns sql/rules/projects.sql gives, which the messages of projects.yaml may name
TEMPLATE_COLUMNS = tuple(c.name for c in TABLES[FAMILY].columns) + (
    "division", "intensity", "standard", "two_high", "intensity_code", "authority", "intensity_status", "suggestion")


def template_constants(params: dict[str, Any]) -> dict[str, Any]:
    """The constants the messages of projects.yaml may name: its parameters, and how the upper
    boundary reads (达到 when included, 超过 when excluded)."""
    return {**params, "upper_text": "达到" if params["upper_boundary"] == "included" else "超过",
            "two_high_divisions": "、".join(params["two_high_divisions"])}


def _engine(rs: RuleSet) -> Engine:
    engine = Engine()
    engine.load("energy_limits", rs.energy_limits)  # the shared macros name it
    engine.execute("views/00_macros.sql", sql_text("views/00_macros.sql"), {})
    return engine


def _cites(rs: RuleSet, rule_id: str, params: tuple[str, ...]) -> str:
    rule = rs.family(rule_id)
    texts = [rs.citation_text(rule.citation, short=True)]
    for name in params:
        text = rs.citation_text(rule.parameters[name].cite, short=True)
        if text not in texts:
            texts.append(text)
    return "；".join(texts)


def review(data_dir: Path | None = None, ruleset: Path | RuleSet | None = None,
           overrides: list[str] | None = None) -> ProjectReview:
    """Review the ``projects`` table of ``data_dir`` against the seed's 一.5 (Python API)."""
    rs = ruleset if isinstance(ruleset, RuleSet) else load_ruleset(Path(ruleset) if ruleset else default_ruleset())
    rule = rs.family(FAMILY)
    if overrides:
        rs.apply_family_overrides(FAMILY, overrides)
    frame, rejects, read_rows = read_projects(Path(data_dir) if data_dir else Path("."))
    params = rs.family_params[FAMILY]
    engine = _engine(rs)
    try:
        engine.load("projects", frame)
        sql = sql_text(f"rules/{FAMILY}.sql")
        bound = {**params, "eps": rs.meta.comparison["relative_tolerance"]}
        engine.load("judged", engine.query(f"rules/{FAMILY}.sql", sql, bound))
        constants = template_constants(params)
        cols = engine.query("columns", "SELECT * FROM judged LIMIT 0", {}).columns
        columns = {c: f"j.{c}" for c in cols}

        def text(code: str) -> str:
            return reasons.compile_template(rule.messages[code].strip(), constants, columns, f"{FAMILY}.messages.{code}")

        citation = _cites(rs, FAMILY, ("two_high_divisions", "review_min_tce", "upper_min_tce"))
        reason = (
            f"(CASE WHEN j.two_high THEN {text('two_high')} ELSE {text('not_two_high')} END)"
            f" || (CASE j.intensity_code WHEN 'hit' THEN {text('hit')} WHEN 'pass' THEN {text('pass')}"
            f" ELSE {text('value_added_missing')} END)"
            f" || (CASE j.authority WHEN 'below_review' THEN {text('below_review')} WHEN 'county' THEN {text('county')}"
            f" ELSE {text('upper')} END)"
            f" || {text('suggestion')} || '依据：' || $citation || '。'"
        )
        out = engine.query("projects reasons", f"""
            SELECT project_id, name, uscc, township, industry_code, two_high, energy_tce, coal_t, value_added,
                   intensity, standard, intensity_status, authority, suggestion || '（仅供参考）' AS suggestion,
                   {reason} AS reason, start_year, status
            FROM judged j
        """, {"citation": citation})
    finally:
        engine.close()
    order = frame.select("project_id").with_row_index("_order")
    out = out.join(order, on="project_id", how="left").sort("_order").select(OUTPUT_COLUMNS)
    return ProjectReview(out, rejects, read_rows, rs)


def write_outputs(result: ProjectReview, folder: Path) -> list[str]:
    """projects.csv (UTF-8 with BOM, neutralised), projects.parquet, projects.xlsx (Chinese), rejects.csv."""
    from .csvsafe import write_csv

    folder = Path(folder)
    write_csv(result.results, folder / "projects.csv")
    result.results.write_parquet(folder / "projects.parquet")
    write_csv(result.rejects, folder / "rejects.csv")
    _workbook(result, folder / "projects.xlsx")
    return ["projects.csv", "projects.parquet", "projects.xlsx", "rejects.csv"]


def _workbook(result: ProjectReview, path: Path) -> None:

    from .csvsafe import neutralise
    from .excel import WORKBOOK_OPTIONS, Workbook, rejects_sheet

    rs = result.ruleset
    rule = rs.family(FAMILY)
    frame = neutralise(result.results.select(OUTPUT_COLUMNS).with_columns(
        pl.when(pl.col("two_high")).then(pl.lit("是")).otherwise(pl.lit("否")).alias("two_high"),
        pl.col("intensity_status").replace_strict(STATUS_ZH, default=pl.col("intensity_status")),
        pl.col("authority").replace_strict(AUTHORITY_ZH, default=pl.col("authority")),
    ))
    with Workbook(str(path), WORKBOOK_OPTIONS) as wb:
        bold = wb.add_format({"bold": True, "font_name": "等线", "text_wrap": True, "valign": "top"})
        plain = wb.add_format({"font_name": "等线", "valign": "top"})
        sheet = wb.add_worksheet("拟建项目审查")
        sheet.write_row(0, 0, [HEADERS_ZH[c] for c in OUTPUT_COLUMNS], bold)
        for i, row in enumerate(frame.iter_rows(), start=1):
            sheet.write_row(i, 0, ["" if v is None else v for v in row], plain)
        sheet.freeze_panes(1, 1)
        sheet.set_column(0, len(OUTPUT_COLUMNS) - 1, 14)
        sheet.set_column(OUTPUT_COLUMNS.index("reason"), OUTPUT_COLUMNS.index("reason"), 100)
        basis = wb.add_worksheet("规则与依据")
        basis.write_row(0, 0, ["项目", "取值", "单位", "说明", "依据"], bold)
        basis.write_row(1, 0, [rule.title, "", "", "处理建议仅供参考，由审查机关依法决定",
                               rs.citation_text(rule.citation)], plain)
        params = rs.family_params[FAMILY]
        for i, (name, param) in enumerate(rule.parameters.items(), start=2):
            value = params[name]
            shown = "、".join(value) if isinstance(value, list) else value
            note = f"（{param.cite.note.strip()}）" if param.cite.note else ""
            basis.write_row(i, 0, [name, shown, param.unit or "", param.description,
                                   rs.citation_text(param.cite) + note], plain)
        basis.set_column(0, 2, 16)
        basis.set_column(3, 4, 60)
        rejects_sheet(wb, result.rejects, bold, plain)


def key_energy_users(energy: pl.DataFrame, stats: pl.DataFrame, ruleset: Path | RuleSet | None = None,
                     overrides: list[str] | None = None) -> pl.DataFrame:
    """Firm-years at or above the key energy user threshold (rules/<set>/key_energy_users.yaml):
    ``uscc, year, energy_tce, value_added, intensity, intensity_prev, rising`` and the Chinese ``note``.

    ``energy`` has ``uscc, year, energy_tce``; ``stats`` has ``uscc, year, value_added`` (may be empty)."""
    rs = ruleset if isinstance(ruleset, RuleSet) else load_ruleset(Path(ruleset) if ruleset else default_ruleset())
    rs.family(KEY_FAMILY)
    if overrides:
        rs.apply_family_overrides(KEY_FAMILY, overrides)
    engine = _engine(rs)
    try:
        engine.load("key_energy", energy.select(pl.col("uscc").cast(pl.String), pl.col("year").cast(pl.Int32),
                                                pl.col("energy_tce").cast(pl.Float64)))
        value_added = stats["value_added"] if "value_added" in stats.columns else pl.Series([], dtype=pl.Float64)
        engine.load("key_stats", pl.DataFrame({
            "uscc": stats["uscc"].cast(pl.String) if stats.height else pl.Series([], dtype=pl.String),
            "year": stats["year"].cast(pl.Int32) if stats.height else pl.Series([], dtype=pl.Int32),
            "value_added": value_added.cast(pl.Float64)}))
        return key_energy_users_in(engine, rs)
    finally:
        engine.close()


def key_energy_users_in(engine: Engine, rs: RuleSet) -> pl.DataFrame:
    """The key energy users of the tables (or views) ``key_energy`` and ``key_stats`` of ``engine``,
    whose shared macros are loaded (a screening run's engine, or :func:`_engine`)."""
    rule = rs.family(KEY_FAMILY)
    params = rs.family_params[KEY_FAMILY]
    judged = engine.query(f"rules/{KEY_FAMILY}.sql", sql_text(f"rules/{KEY_FAMILY}.sql"),
                          {**params, "eps": rs.meta.comparison["relative_tolerance"]})
    cite = key_energy_citation(rs)

    def note(row: dict[str, Any]) -> str:
        values = {**params, **row}
        text = rule.messages["listed"].format_map(values)
        if row["rising"]:
            text += "；" + rule.messages["rising"].format_map(values)
        return f"{text}（依据：{cite}）"

    notes = [note(r) for r in judged.iter_rows(named=True)]
    return judged.with_columns(pl.Series("note", notes, dtype=pl.String)).sort("uscc", "year")


def key_energy_citation(rs: RuleSet) -> str:
    return rs.citation_text(rs.family(KEY_FAMILY).parameters["threshold_tce"].cite, short=True)


def key_energy_summary(rs: RuleSet, users: pl.DataFrame, year: int) -> dict[str, Any]:
    """What a screening run records about key energy users (run.json, the service's record and
    dashboard): the threshold with its citation, the count and the rising ones in ``year``, every row."""
    latest = users.filter(pl.col("year") == year)
    return {
        "threshold_tce": rs.family_params[KEY_FAMILY]["threshold_tce"], "citation": key_energy_citation(rs),
        "year": year, "firms": latest.height, "rising": int(latest["rising"].fill_null(False).sum()),
        "rows": users.to_dicts(),
    }


def summary(result: ProjectReview) -> dict[str, Any]:
    """Counts for the command line and the API."""
    r = result.results
    return {
        "projects": r.height, "rejected_rows": int(result.rejects["row"].n_unique()) if result.rejects.height else 0,
        "two_high": int(r["two_high"].sum()) if r.height else 0,
        "by_suggestion": {k: int(v) for k, v in r.group_by("suggestion").len().sort("suggestion").iter_rows()},
    }
