"""``screening projects``: 拟建项目节能审查 (工作要点一、5)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..errors import ScreeningError
from .common import _fail, _notice, out_console


def projects(
    data: Annotated[Path, typer.Option("--data", help="数据目录（读取其中的 projects 拟建项目表）")],
    out: Annotated[Path, typer.Option("--out", help="输出目录")] = Path("out"),
    rules: Annotated[Optional[Path], typer.Option("--rules", help="规则集目录（默认：rules/yueqing-2022）")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="临时调整参数：projects.参数名=值（可重复）")] = None,
) -> None:
    """拟建项目节能审查（工作要点一、5）：逐个项目判定是否两高、能耗强度与准入标准、审查权限，给出处理建议（仅供参考）。"""
    from ..outdir import staged
    from ..projects import review, summary, write_outputs

    try:
        with staged(out, _notice) as staging:
            result = review(data, rules, set_ or [])
            names = write_outputs(result, staging)
    except ScreeningError as exc:
        _fail(exc)
        return
    counts = summary(result)
    out_console.print(f"拟建项目 {counts['projects']} 个，其中两高项目 {counts['two_high']} 个；"
                      f"拒收 {counts['rejected_rows']} 行（见 rejects.csv）", soft_wrap=True)
    view = Table(title="处理建议（仅供参考）", title_justify="left")
    view.add_column("建议")
    view.add_column("项目数", justify="right")
    for name, n in counts["by_suggestion"].items():
        view.add_row(name, str(n))
    out_console.print(view)
    out_console.print(f"已写入 {out}：{'、'.join(names)}", soft_wrap=True)
