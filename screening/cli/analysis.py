"""``screening whatif`` (参数试算) and ``screening compare`` (two runs' lists side by side)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..errors import ScreeningError
from ..terminal import say
from .common import _fail, _notice, err_console, out_console


#: the whatif table's columns on the terminal (whatif.csv keeps its machine names)
WHATIF_HEADERS = ("参数取值", "清单企业", "新进", "退出", "用地（亩）", "能耗（吨标准煤）")


def whatif(
    param: Annotated[str, typer.Option("--param", help="规则ID.参数名=值1,值2,…（列表参数的多个取值用 + 连接，如 C+D）")],
    data: Annotated[Optional[Path], typer.Option("--data", help="数据目录（默认：随附的 sample_data/）")] = None,
    year: Annotated[Optional[int], typer.Option("--year", help="清单年度（默认：数据支持的最新年度）")] = None,
    out: Annotated[Path, typer.Option("--out", help="输出目录")] = Path("out"),
    rules: Annotated[Optional[Path], typer.Option("--rules", help="规则集目录（默认：rules/yueqing-2022）")] = None,
) -> None:
    """参数试算：同一参数取不同值时的清单规模、各规则命中数、清单企业用地与能耗，以及相对默认值进出清单的企业。"""
    from ..csvsafe import write_csv
    from ..outdir import staged
    from ..whatif import whatif as run_whatif
    from ..whatif import write_report

    try:
        with staged(out, _notice) as staging:
            table, moved = run_whatif(param, data, year, rules)
            write_csv(table, staging / "whatif.csv")
            write_csv(moved, staging / "whatif_changes.csv")
            written, chart_problem = write_report(table, moved, staging, rules)
    except ScreeningError as exc:
        _fail(exc)
    view = Table(title=f"参数试算：{table['param'][0]}（{table['list_year'][0]} 年度；用地、能耗为清单企业合计）",
                 title_justify="left")
    for column in WHATIF_HEADERS:
        view.add_column(column, justify="right", no_wrap=True)
    for row in table.iter_rows(named=True):
        view.add_row(row["value"], str(row["listed"]), str(row["entered"]), str(row["left"]),
                     f"{row['land_mu']:.1f}", f"{row['energy_tce']:.1f}")
    out_console.print(view)
    names = ["whatif.csv", "whatif_changes.csv", *(p.name for p in written)]
    say(out_console, f"已写入 {out}：{'、'.join(names)}")
    if chart_problem:  # the tables are complete; only the chart needs a Chinese font
        err_console.print(f"提示：未生成图表。{chart_problem}", highlight=False, soft_wrap=True)


def compare(
    before: Annotated[str, typer.Option("--before", help="较早的清单年度或运行编号")],
    after: Annotated[str, typer.Option("--after", help="较晚的清单年度或运行编号")],
    db: Annotated[Path, typer.Option("--db", help="保存运行记录的 DuckDB 文件")] = Path("screening.duckdb"),
    out: Annotated[Path, typer.Option("--out", help="输出目录")] = Path("out"),
) -> None:
    """比较两次运行（或两个年度最新一次运行）的清单：新进、退出、保留，以及每家企业变动的原因。"""
    from ..compare import compare_runs
    from ..compare import write_workbook as write_compare_workbook
    from ..csvsafe import write_csv

    def rule_titles() -> dict[str, str]:
        from ..paths import default_ruleset
        from ..ruleset import load_ruleset

        rs = load_ruleset(default_ruleset())
        return {rid: rule.short_title for rid, rule in rs.rules.items()}
    from ..outdir import staged

    def run_or_year(text: str) -> int | str:
        return int(text) if text.isdigit() and len(text) == 4 else text

    try:
        with staged(out, _notice) as staging:
            table = compare_runs(db, run_or_year(before), run_or_year(after))
            write_csv(table, staging / "compare.csv")
            write_compare_workbook(table, staging / "compare.xlsx", rule_titles())
    except ScreeningError as exc:
        _fail(exc)
    counts = dict(table.group_by("change").len().iter_rows())
    say(out_console, f"新进 {counts.get('entered', 0)} 家，退出 {counts.get('left', 0)} 家，保留 {counts.get('stayed', 0)} 家；"
                     f"明细见 {out / 'compare.xlsx'}（表格）与 {out / 'compare.csv'}")
