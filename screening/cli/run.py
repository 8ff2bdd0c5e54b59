"""``screening run``: screen the data, write the list and its files, store the run (contract, "Commands")."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import EnvironmentProblem, InputError, ScreeningError
from ..paths import folder_problem
from ..terminal import say
from .common import STATUS_ZH, _fail, _notice, end_quickly, err_console, out_console


def run(
    data: Annotated[Optional[Path], typer.Option("--data", help="数据目录（默认：随附的 sample_data/）")] = None,
    year: Annotated[Optional[int], typer.Option("--year", help="清单年度 Y，读取 Y-2 与 Y-1 年数据（默认：数据支持的最新年度）")] = None,
    out: Annotated[Path, typer.Option("--out", help="输出目录")] = Path("out"),
    rules: Annotated[Optional[Path], typer.Option("--rules", help="规则集目录（默认：rules/yueqing-2022）")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="临时调整参数：规则ID.参数名=值（可重复）")] = None,
    db: Annotated[Path, typer.Option("--db", help="保存运行记录的 DuckDB 文件")] = Path("screening.duckdb"),
) -> None:
    """运行筛选，写出清单、判定明细、Excel、拒收记录与 run.json，并存入数据库。"""
    from .. import outputs
    from ..outdir import staged
    from ..screen import screen

    started = time.perf_counter()
    problem = folder_problem(db.resolve().parent, "数据库（--db）所在目录")
    if problem:  # found before screening, not after every file has been written
        _fail(InputError(problem))
    try:
        # files go to a staging folder inside OUT and move into OUT once all are written;
        # a live progress line on a terminal; nothing in logs and pipes, where it is noise
        with staged(out, _notice) as staging, Progress(
                SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                console=err_console, transient=True, disable=not err_console.is_terminal) as progress:
            task = progress.add_task("准备", total=None)
            final = _final_grades(db, rules, set_ or [])
            s = screen(data, year, rules, set_ or [], progress=lambda stage: progress.update(task, description=stage),
                       keep_tables=False, final_grades=final)
            with s:
                progress.update(task, description="写出文件与保存运行记录")
                store_error = outputs.write_all(s, staging, db, final=out)
                s.timings["总计"] = round(time.perf_counter() - started, 3)
                outputs.write_run_json(s, staging, outputs.planned_outputs(s, out), stored=store_error is None)
        if store_error is not None:
            raise store_error  # the files are complete; only the database copy failed
        _summary(s, out, db, time.perf_counter() - started)
    except ScreeningError as exc:
        _fail(exc)
    end_quickly()  # every file and the database are written and closed; what remains is in memory


def _final_grades(db: Path, rules: Optional[Path], overrides: list[str]):
    """The final grades of the finalized evaluations stored in ``db`` (rule 2 with computed
    grades reads them; docs/evaluation-workflow.md), or None when there is no such file.

    A file held by the running service cannot be read here; that matters only when rule 2
    computes grades, and then the run stops rather than silently compute other grades."""
    from ..evaluation_workflow import finalized_grades
    from ..paths import default_ruleset
    from ..ruleset import load_ruleset
    from ..screen import grade_method
    from ..store import DatabaseLocked, connect

    if not db.exists():
        return None
    try:  # also a folder or another kind of file given as --db stops here, before screening
        con = connect(db, read_only=True)
    except DatabaseLocked as exc:
        rs = load_ruleset(rules or default_ruleset())
        rs.apply_overrides(overrides)
        if grade_method(rs) is None:
            return None
        raise EnvironmentProblem(f"规则 below_scale_consecutive_c_grade 使用计算等级，需要读取数据库中已定稿的亩均效益评价，但{exc}"
                         "（可在服务中运行筛选：网页“数据与筛选”或 POST /api/v1/runs）") from None
    try:
        return finalized_grades(con)
    finally:
        con.close()


def _summary(s, out: Path, db: Path, elapsed: float) -> None:
    from ..excel import CHECK_SHEET
    from ..outputs import workbook_name

    rs = s.ruleset
    table = Table(title=f"{rs.meta.region}{s.list_year}年度筛选结果（数据年度 {s.years[0]}—{s.years[1]}）", title_justify="left")
    table.add_column("规则")
    for status in STATUS_ZH.values():
        table.add_column(status, justify="right", no_wrap=True)
    counts = s.status_counts()
    for rid in rs.enabled:
        table.add_row(rs.rules[rid].short_title, *(str(counts[rid].get(k, 0)) for k in STATUS_ZH))
    out_console.print(table)
    say(out_console, f"清单企业：{s.list.height} 家（共筛查 {s.enterprises} 家企业）")
    rejected = s.inputs.rejected_rows
    say(out_console, f"拒收数据行：{rejected} 行" + (f"，原因见 {out / 'rejects.csv'}" if rejected else ""))
    if s.inputs.cleared_fields:
        say(out_console, f"企业名录中无法使用、按未知处理的字段：{s.inputs.cleared_fields} 个（企业保留），见 {out / 'rejects.csv'}")
    if s.inputs.normalised.height:
        say(out_console, f"读取时规范化的单元格：{s.inputs.normalised.height} 个，见 {out / 'normalised.csv'}")
    for raw in s.inputs.files.values():
        if raw.sheet is not None and len(raw.sheets) > 1:
            hidden = [sh["name"] for sh in raw.sheets if sh["visible"] != "visible"]
            say(out_console, f"{raw.path.name}：读取工作表“{raw.sheet}”" + (f"（未读取隐藏工作表：{'、'.join(hidden)}）" if hidden else ""))
        if raw.note:
            say(out_console, f"提示：{raw.path.name}：{raw.note}", "yellow")
    if s.anomaly_summary:
        say(out_console, f"数据核查提示（仅供参考，不影响判定）：{s.anomaly_summary['flagged']} 家企业的数据前后或与同行业"
                          f"相比明显不一致，建议优先核实，见工作簿 {workbook_name(s.list_year)} 的"
                          f"“{CHECK_SHEET}”表（另有 anomalies.csv）")
    for w in s.warnings:
        say(out_console, f"提示：{w}", "yellow")
    say(out_console, f"输出目录：{out.resolve()}（list.csv/.parquet、results.csv/.parquet、rules.csv/.parquet、整治企业清单_{s.list_year}.xlsx、anomalies.csv/.parquet、rejects.csv、normalised.csv、check.json/.xlsx、run.json）")
    via = f"（数据库由正在运行的服务 {s.stored_via} 占用，已交由它保存）" if s.stored_via else ""
    say(out_console, f"运行记录：{db.resolve()}{via}，运行编号 {s.run_id}；用时 {elapsed:.1f} 秒")
