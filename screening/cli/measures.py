"""``screening measures``: the differential measures each utility acts on (issue 16, item 3).

Registered in screening/cli/__init__.py; the console helpers of screening/cli/common.py are
imported inside the function."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Optional

import typer


def measures_command(
    data: Annotated[Optional[Path], typer.Option(
        "--data", help="数据目录（读取 enterprises 企业名录、evaluations 亩均效益评价，及可选的 accounts 用能户号）；"
                       "默认：随附的 sample_data/")] = None,
    year: Annotated[Optional[int], typer.Option(
        "--year", help="措施年度 Y：依据 Y-1 年度及以前的评价等级，列出 Y 年度执行的加价与返还，必填")] = None,
    out: Annotated[Path, typer.Option("--out", help="输出目录")] = Path("out"),
    rules: Annotated[Optional[Path], typer.Option(
        "--rules", help="规则集目录，读取其中的 measures.yaml 政策表（默认：rules/yueqing-2022）")] = None,
    date: Annotated[Optional[str], typer.Option(
        "--date", help="按哪一天执行中的政策列出（YYYY-MM-DD，须在该年度执行期内；默认：执行期第一天）")] = None,
) -> None:
    """差别化措施清单：按亩均效益评价等级和连续年数，给供电、供水、供气单位各一份执行名单（含户号、加价标准、起止日期、依据）。"""
    from rich.table import Table

    from ..errors import InputError, ScreeningError
    from ..measures import measures, summary
    from ..measures.outputs import write_outputs
    from ..outdir import staged
    from ..paths import sample_data_dir
    from .common import _fail, _notice, out_console

    try:
        if year is None:
            raise InputError("缺少 --year：请给出措施年度，例如 --year 2024（依据 2023 年度及以前的评价等级）")
        if not 2000 <= year <= 2100:
            raise InputError(f"--year {year} 无效：应在 2000 至 2100 之间")
        on_date = None
        if date is not None:
            try:
                on_date = dt.date.fromisoformat(date.strip())
            except ValueError:
                raise InputError(f"--date “{date[:40]}” 不是日期：应写作 YYYY-MM-DD，如 {year}-07-01") from None
        with staged(out, _notice) as staging:
            result = measures(data or sample_data_dir(), year, rules, on_date)
            names = write_outputs(result, staging)
    except ScreeningError as exc:
        _fail(exc)
        return
    counts = summary(result)
    view = Table(title=f"{year} 年度差别化措施（{result.on_date.isoformat()} 执行中的政策；依据 {year - 1} 年度评价等级）",
                 title_justify="left")
    for col in ("类型", "名单行数", "加价企业", "返还企业", "未登记户号"):
        view.add_column(col, justify="left" if col == "类型" else "right")
    for utility, c in counts["by_utility"].items():
        view.add_row(utility, str(c["rows"]), str(c["surcharged"]), str(c["refunds"]), str(c["no_account"]))
    out_console.print(view)
    for p in counts["not_in_force"]:
        if p["state"] == "not_yet":
            out_console.print(f"政策 {p['policy_id']}（{p['utility']} {p['grade']}类）{p['valid_from']} 起施行，"
                              f"{result.on_date.isoformat()} 尚未施行，未列入名单", soft_wrap=True)
    out_console.print(f"拒收 {counts['rejected_rows']} 行（见 rejects.csv）", soft_wrap=True)
    out_console.print(f"已写入 {out}：{'、'.join(names)}", soft_wrap=True)
