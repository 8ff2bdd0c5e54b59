"""``screening evaluate``: the 亩均效益综合评价 of one data year (contract, "Commands").

Registered in screening/cli/__init__.py with ``app.command("evaluate")(evaluate_command)``.
The console helpers of screening/cli/common.py are imported inside the function.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer


def evaluate_command(
    data: Annotated[Optional[Path], typer.Option("--data", help="数据目录（默认：随附的 sample_data/）")] = None,
    year: Annotated[Optional[int], typer.Option("--year", help="数据年度 Y（一个年度，不是清单年度），必填")] = None,
    method: Annotated[str, typer.Option(
        "--method", help="评价方法：随附方法的名称（如 huangyan-2022、yueqing-default）或 .yaml 文件路径")] = "yueqing-default",
    out: Annotated[Path, typer.Option("--out", help="输出目录")] = Path("out"),
    adjustments: Annotated[Optional[Path], typer.Option(
        "--adjustments", help="加减分表文件（可选；不给出时读数据目录中的 adjustments 表，没有则不加减分）")] = None,
    excel: Annotated[bool, typer.Option(
        "--excel/--no-excel", help="是否写出 Excel 工作簿（百万家企业时约需 100 秒，可关闭）")] = True,
) -> None:
    """计算亩均效益综合评价：每家企业在其参评群体中的指标值、单项得分、加减分、综合得分、排名、初评等级和等级（A—D，T为暂不评价）。

    参评群体、加减分项目（读数据目录中的 adjustments 加减分表，可选）、等级比例与配额都由评价方法文件规定，见 docs/evaluation.md。"""
    import polars as pl
    from rich.table import Table

    from .common import _fail, _notice, end_quickly, err_console, out_console
    from ..errors import ScreeningError
    from ..evaluation import EvaluationWriter, evaluate, load_evaluation_inputs
    from ..evaluation_method import load_method
    from ..outdir import staged
    from ..paths import sample_data_dir

    started = time.perf_counter()
    try:
        if year is None:
            raise ScreeningError("缺少 --year：请给出要评价的数据年度，例如 --year 2021")
        m = load_method(method)
        # files go to a staging folder inside OUT and move into OUT once all are written; the
        # item files are begun while the scores are still being put in order, and evaluation.csv is
        # written part by part while the populations are scored (EvaluationWriter)
        with staged(out, _notice) as staging, EvaluationWriter(staging, excel=excel, final=out) as writer:
            with err_console.status("读取与校验数据…"):
                t = time.perf_counter()
                inputs = load_evaluation_inputs(data or sample_data_dir(), year, m, adjustments, cells_ahead=True)
                load_s = round(time.perf_counter() - t, 3)
            with err_console.status("计算得分与等级…"):
                ev = evaluate(inputs, year, m, items_ready=writer.start_items, scores_ready=writer.add_scores,
                              release_inputs=True)
            adjustments_read = "adjustments" in inputs.files
            del inputs  # its validated rows were released once evaluate() had taken the firms' figures
            ev.timings = {"读取与校验": load_s, **ev.timings}
            with err_console.status("写出文件…"):
                written = writer.finish(ev)
    except ScreeningError as exc:
        _fail(exc)
        return

    table = Table(title=m.title_for(year), title_justify="left")
    for col in ("参评群体", "参评企业", "A", "B", "C", "D", "不定等级", "其中T"):
        table.add_column(col, justify="left" if col == "参评群体" else "right")
    for pop, c in ev.grade_counts().items():
        table.add_row(pop, *(str(c[k]) for k in ("evaluated", "A", "B", "C", "D", "not_graded", "T")))
    out_console.print(table)
    if m.adjustments is not None:
        adjusted = ev.scores.filter(pl.col("adjustment_detail").is_not_null()).height
        changed = ev.scores.filter(pl.col("grade") != pl.col("initial_grade")).height
        found = "" if adjustments_read else "（数据目录中没有 adjustments 加减分表）"
        out_console.print(f"加减分：{adjusted} 家企业有加减分或一票否决项目{found}；一票否决改变等级 {changed} 家")
    rejected = ev.rejected_rows()
    other = ev.inputs_info.get("other_year_rows", 0)
    out_console.print(f"拒收数据行：{rejected} 行" + (f"，原因见 {out / 'evaluation_rejects.csv'}" if rejected else "")
                      + (f"（只读取与校验 {year} 年的数据行，其他年度的 {other:,} 行未读取）" if other else ""))
    for w in ev.warnings:
        out_console.print(f"[yellow]提示：{w}[/]")
    items = "evaluation_items.csv/.parquet" if len(written["items"]) == 2 else "evaluation_items.parquet"
    book = f"亩均效益评价_{year}.xlsx、" if excel else ""
    out_console.print(f"输出目录：{out.resolve()}（evaluation.csv/.parquet、{items}、"
                      f"{book}evaluation_rejects.csv、evaluation.json）；用时 {time.perf_counter() - started:.1f} 秒")
    end_quickly()  # every file is written and closed; what remains is the result in memory
