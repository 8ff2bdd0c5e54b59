"""The data and the rule set before screening: ``screening synth`` (synthetic data), ``check``
(数据接收检查) and ``lint`` (the rule set)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..errors import ScreeningError
from ..terminal import pack, say
from .common import _fail, err_console, out_console


def synth(
    firms: Annotated[int, typer.Option("--firms", min=1, help="企业数")] = 6000,
    seed: Annotated[int, typer.Option("--seed", help="随机种子（相同种子生成相同数据）")] = 20220507,
    out: Annotated[Path, typer.Option("--out", help="输出目录")] = Path("synthetic_data"),
    fmt: Annotated[str, typer.Option("--format", help="mixed（样例格式）、csv 或 parquet")] = "mixed",
    first_year: Annotated[int, typer.Option("--first-year", help="起始数据年度")] = 2017,
    last_year: Annotated[int, typer.Option("--last-year", help="最后数据年度")] = 2021,
    clean: Annotated[bool, typer.Option("--clean", help="不加入故意构造的错误行")] = False,
) -> None:
    """生成可复现的乐清合成数据（用于样例、测试与性能基准）。"""
    from ..synth import generate

    if fmt not in ("mixed", "csv", "parquet"):
        _fail(ScreeningError(f"--format 只能是 mixed、csv 或 parquet，收到 {fmt!r}"))
    if first_year > last_year:
        _fail(ScreeningError("--first-year 不能晚于 --last-year"))
    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    with err_console.status("生成中…"):
        counts = generate(firms, seed, out, fmt, years=(first_year, last_year), bad_rows=not clean)
    for table, n in counts.items():
        out_console.print(f"{table}: {n} 行")
    out_console.print(f"已写入 {out.resolve()}，用时 {time.perf_counter() - t:.1f} 秒")


def check(
    data: Annotated[Path, typer.Option("--data", help="数据目录")],
    year: Annotated[Optional[int], typer.Option("--year", help="清单年度 Y：检查 Y-2 与 Y-1 年数据是否齐全")] = None,
    out: Annotated[Path, typer.Option("--out", help="check.xlsx 与 check.json 的输出目录")] = Path("."),
    rules: Annotated[Optional[Path], typer.Option("--rules", help="规则集目录（默认：rules/yueqing-2022）")] = None,
) -> None:
    """数据接收检查：逐表列出读取的文件、工作表、表头行、列对应、读取/接收/规范化/拒收行数与年度覆盖；可以筛选时退出码 0，否则 2。"""
    from ..ingest.report import check as intake_check, write_report
    from ..paths import default_ruleset
    from ..ruleset import load_ruleset
    from ..screen import needed_tables

    try:
        needed = needed_tables(load_ruleset(rules or default_ruleset()))
        report = intake_check(data, year, needed)
        written = write_report(report, out)
    except ScreeningError as exc:
        _fail(exc)
    print_intake(report)
    say(out_console, f"已写出：{'、'.join(p.name for p in written)}（目录：{out.resolve()}）")
    if not report["screenable"]:
        raise typer.Exit(2)


def print_intake(report: dict) -> None:
    """The intake report on the console: one block per table (label：value, wrapped to the
    terminal's width, never cut), then the coverage by year."""
    from ..ingest.report import COVERAGE_TABLES, TABLE_HEADERS, table_rows

    say(out_console, "数据接收检查", "bold")
    for row in table_rows(report):
        say(out_console, f"■ {row[0]}", "bold")
        if any(v != "" for v in row[1:-1]):  # else a table that could not be read: its reason is all there is
            facts = [f"{h}：{v if v != '' else '—'}" for h, v in zip(TABLE_HEADERS[1:-1], row[1:-1])]
            say(out_console, pack(facts, out_console.width))
        if row[-1]:
            say(out_console, pack(f"{TABLE_HEADERS[-1]}：{row[-1]}".split("；"), out_console.width))
    if report["coverage"]:
        cov = Table(title="年度覆盖（有数据的企业数）")
        for h in ("年度", "统计", "税收", "用地", "能耗", "评价等级"):
            cov.add_column(h, justify="right")
        for y, per in report["coverage"].items():
            cov.add_row(y, *(str(per[t]) for t in COVERAGE_TABLES))
        out_console.print(cov)
    for name, t in report["tables"].items():
        if t.get("note"):
            say(out_console, f"提示：{t['file_name']}：{t['note']}", "yellow")
        hidden = [sh["name"] for sh in t.get("sheets") or [] if sh["visible"] != "visible"]
        if hidden:
            say(out_console, f"{t['file_name']}：未读取隐藏工作表 {'、'.join(hidden)}")
    if report["screenable"]:
        say(out_console, "可以筛选", "green")
    else:
        for p in report["problems"]:
            say(err_console, f"不能筛选：{p}", "red")


def lint(
    rules: Annotated[Optional[Path], typer.Option("--rules", help="规则集目录（默认：rules/yueqing-2022）")] = None,
) -> None:
    """检查规则集：引用、参数、说明模板，以及规则 SQL 中不得出现阈值数字。"""
    from ..lint import lint_ruleset, review_warnings
    from ..paths import default_ruleset
    from ..ruleset import load_ruleset

    try:
        rs = load_ruleset(rules or default_ruleset())
    except ScreeningError as exc:
        _fail(exc)
    problems = lint_ruleset(rs)
    for w in review_warnings(rs):
        out_console.print(f"[yellow]提示：{w}[/]")
    for p in problems:
        err_console.print(f"[red]问题：[/]{p}", highlight=False)
    if problems:
        raise typer.Exit(1)
    out_console.print(f"规则集 {rs.meta.id}（版本 {rs.meta.version}）检查通过：{len(rs.meta.rules)} 条规则。")
