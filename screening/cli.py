"""The ``screening`` command (typer + rich).  Messages are Chinese; errors are one line."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from .cli_common import STATUS_ZH, _database, _fail, _notice, err_console, out_console, run_app
from .cli_evaluate import evaluate_command
from .cli_warn import warn_command
from .errors import InputError, ScreeningError
from .paths import folder_problem
from .terminal import pack, say

app = typer.Typer(
    help="高耗低效企业筛选引擎：读取部门数据，按规则生成《高耗低效整治企业清单》。",
    no_args_is_help=True, add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False,
)


@app.command()
def run(
    data: Annotated[Optional[Path], typer.Option("--data", help="数据目录（默认：随附的 sample_data/）")] = None,
    year: Annotated[Optional[int], typer.Option("--year", help="清单年度 Y，读取 Y-2 与 Y-1 年数据（默认：数据支持的最新年度）")] = None,
    out: Annotated[Path, typer.Option("--out", help="输出目录")] = Path("out"),
    rules: Annotated[Optional[Path], typer.Option("--rules", help="规则集目录（默认：rules/yueqing-2022）")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="临时调整参数：规则ID.参数名=值（可重复）")] = None,
    db: Annotated[Path, typer.Option("--db", help="保存运行记录的 DuckDB 文件")] = Path("screening.duckdb"),
) -> None:
    """运行筛选，写出清单、判定明细、Excel、拒收记录与 run.json，并存入数据库。"""
    from . import outputs
    from .outdir import staged
    from .screen import screen

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
            s = screen(data, year, rules, set_ or [], progress=lambda stage: progress.update(task, description=stage),
                       keep_tables=False)
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


def _summary(s, out: Path, db: Path, elapsed: float) -> None:
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
                          f"相比明显不一致，建议优先核实，见 {out / 'anomalies.csv'}")
    for w in s.warnings:
        say(out_console, f"提示：{w}", "yellow")
    say(out_console, f"输出目录：{out.resolve()}（list.csv/.parquet、results.csv/.parquet、整治企业清单_{s.list_year}.xlsx、anomalies.csv/.parquet、rejects.csv、normalised.csv、check.json/.xlsx、run.json）")
    via = f"（数据库由正在运行的服务 {s.stored_via} 占用，已交由它保存）" if s.stored_via else ""
    say(out_console, f"运行记录：{db.resolve()}{via}，运行编号 {s.run_id}；用时 {elapsed:.1f} 秒")


#: the whatif table's columns on the terminal (whatif.csv keeps its machine names)
WHATIF_HEADERS = ("参数取值", "清单企业", "新进", "退出", "用地（亩）", "能耗（吨标准煤）")


@app.command()
def whatif(
    param: Annotated[str, typer.Option("--param", help="规则ID.参数名=值1,值2,…（列表参数的多个取值用 + 连接，如 C+D）")],
    data: Annotated[Optional[Path], typer.Option("--data", help="数据目录（默认：随附的 sample_data/）")] = None,
    year: Annotated[Optional[int], typer.Option("--year", help="清单年度（默认：数据支持的最新年度）")] = None,
    out: Annotated[Path, typer.Option("--out", help="输出目录")] = Path("out"),
    rules: Annotated[Optional[Path], typer.Option("--rules", help="规则集目录（默认：rules/yueqing-2022）")] = None,
) -> None:
    """参数试算：同一参数取不同值时的清单规模、各规则命中数、清单企业用地与能耗，以及相对默认值进出清单的企业。"""
    from .csvsafe import write_csv
    from .outdir import staged
    from .whatif import whatif as run_whatif
    from .whatif import write_report

    try:
        with staged(out, _notice) as staging:
            table, moved = run_whatif(param, data, year, rules)
            write_csv(table, staging / "whatif.csv", include_bom=False)
            write_csv(moved, staging / "whatif_changes.csv", include_bom=False)
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


@app.command()
def projects(
    data: Annotated[Path, typer.Option("--data", help="数据目录（读取其中的 projects 拟建项目表）")],
    out: Annotated[Path, typer.Option("--out", help="输出目录")] = Path("out"),
    rules: Annotated[Optional[Path], typer.Option("--rules", help="规则集目录（默认：rules/yueqing-2022）")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="临时调整参数：projects.参数名=值（可重复）")] = None,
) -> None:
    """拟建项目节能审查（工作要点一、5）：逐个项目判定是否两高、能耗强度与准入标准、审查权限，给出处理建议（仅供参考）。"""
    from .outdir import staged
    from .projects import review, summary, write_outputs

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


@app.command()
def compare(
    before: Annotated[str, typer.Option("--before", help="较早的清单年度或运行编号")],
    after: Annotated[str, typer.Option("--after", help="较晚的清单年度或运行编号")],
    db: Annotated[Path, typer.Option("--db", help="保存运行记录的 DuckDB 文件")] = Path("screening.duckdb"),
    out: Annotated[Path, typer.Option("--out", help="输出目录")] = Path("out"),
) -> None:
    """比较两次运行（或两个年度最新一次运行）的清单：新进、退出、保留，以及每家企业变动的原因。"""
    from .compare import compare_runs
    from .compare import write_workbook as write_compare_workbook
    from .csvsafe import write_csv

    def rule_titles() -> dict[str, str]:
        from .paths import default_ruleset
        from .ruleset import load_ruleset

        rs = load_ruleset(default_ruleset())
        return {rid: rule.short_title for rid, rule in rs.rules.items()}
    from .outdir import staged

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


@app.command()
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
    from .synth import generate

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


@app.command()
def check(
    data: Annotated[Path, typer.Option("--data", help="数据目录")],
    year: Annotated[Optional[int], typer.Option("--year", help="清单年度 Y：检查 Y-2 与 Y-1 年数据是否齐全")] = None,
    out: Annotated[Path, typer.Option("--out", help="check.xlsx 与 check.json 的输出目录")] = Path("."),
    rules: Annotated[Optional[Path], typer.Option("--rules", help="规则集目录（默认：rules/yueqing-2022）")] = None,
) -> None:
    """数据接收检查：逐表列出读取的文件、工作表、表头行、列对应、读取/接收/规范化/拒收行数与年度覆盖；可以筛选时退出码 0，否则 2。"""
    from .ingest.report import check as intake_check, write_report
    from .paths import default_ruleset
    from .ruleset import load_ruleset
    from .screen import needed_tables

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
    from .ingest.report import COVERAGE_TABLES, TABLE_HEADERS, table_rows

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


@app.command()
def lint(
    rules: Annotated[Optional[Path], typer.Option("--rules", help="规则集目录（默认：rules/yueqing-2022）")] = None,
) -> None:
    """检查规则集：引用、参数、说明模板，以及规则 SQL 中不得出现阈值数字。"""
    from .lint import lint_ruleset, review_warnings
    from .paths import default_ruleset
    from .ruleset import load_ruleset

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


users_app = typer.Typer(help="管理服务用户与令牌。", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(users_app, name="users")


@users_app.command("add")
def users_add(
    db: Annotated[Path, typer.Option("--db", help="服务使用的 DuckDB 文件")] = Path("screening.duckdb"),
    name: Annotated[str, typer.Option("--name", help="用户名")] = ...,
    role: Annotated[str, typer.Option("--role", help="admin、township、analyst 或 dashboard")] = ...,
    township: Annotated[Optional[str], typer.Option("--township", help="township 角色所属乡镇街道（须为已保存运行的企业名录中的乡镇街道）")] = None,
    new_township: Annotated[bool, typer.Option("--new-township", help="确认 --township 是名录中还没有的新乡镇街道")] = False,
    password: Annotated[bool, typer.Option("--password", help="设置网页登录密码：在终端中输入两次（非交互时读取标准输入的第一行）")] = False,
    generate_password: Annotated[bool, typer.Option("--generate-password", help="生成网页登录密码并显示这一次")] = False,
) -> None:
    """创建用户；令牌只显示这一次（输出的最后一行），数据库中只保存其散列值。"""
    from api.auth import add_user, check_password_rules, set_password

    from .handover import Service

    secret = _password(password, generate_password)
    with _database(db) as con:
        try:
            if isinstance(con, Service):
                token = con.call("POST", "/api/v1/users", {"name": name, "role": role, "township": township,
                                                           "confirm_new_township": new_township,
                                                           **({"password": secret} if secret else {})})["token"]
            else:
                if secret:
                    check_password_rules(secret)
                token = add_user(con, name, role, township, new_township)
                if secret:
                    set_password(con, name.strip(), secret)
        except ValueError as exc:
            _fail(ScreeningError(str(exc)))
        except ScreeningError as exc:
            _fail(exc)
    if generate_password:
        err_console.print(f"网页登录密码（只显示这一次）：{secret}")
    err_console.print(f"已创建用户 {name}（{role}{'，' + township if township else ''}），令牌如下，请妥善保存：")
    print(token)


def _password(prompt: bool, generate: bool) -> str | None:
    """The web sign-in password asked for by ``users add``: typed twice at a terminal, the first
    line of standard input otherwise, or generated."""
    from api.auth import generate_password

    if prompt and generate:
        _fail(ScreeningError("--password 与 --generate-password 只能选一个"))
    if generate:
        return generate_password()
    if not prompt:
        return None
    if sys.stdin.isatty():
        first = typer.prompt("网页登录密码", hide_input=True)
        if typer.prompt("再输入一次", hide_input=True) != first:
            _fail(ScreeningError("两次输入的密码不一致"))
        return first
    return sys.stdin.readline().rstrip("\r\n")


@users_app.command("revoke")
def users_revoke(
    db: Annotated[Path, typer.Option("--db", help="服务使用的 DuckDB 文件")] = Path("screening.duckdb"),
    name: Annotated[str, typer.Option("--name", help="用户名")] = ...,
) -> None:
    """停用用户的令牌。"""
    from urllib.parse import quote

    from api.auth import revoke_user

    from .handover import Service

    with _database(db) as con:
        if isinstance(con, Service):
            try:
                con.call("DELETE", f"/api/v1/users/{quote(name, safe='')}")
            except ScreeningError as exc:
                _fail(exc)
        elif not revoke_user(con, name):
            _fail(ScreeningError(f"没有名为 {name} 的有效用户"))
    out_console.print(f"已停用用户 {name} 的令牌")


@app.command()
def serve(
    db: Annotated[Path, typer.Option("--db", help="DuckDB 文件（screening run 写入的同一个文件）")] = Path("screening.duckdb"),
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
) -> None:
    """启动服务接口（FastAPI + uvicorn），使用嵌入式 DuckDB 文件，无需另装数据库。"""
    import uvicorn

    from api.config import Settings
    from api.main import create_app
    from .handover import find
    from .store import DatabaseLocked, connect

    try:
        if db.exists():
            connect(db).close()  # a held file fails here
    except DatabaseLocked as exc:
        service = find(db)
        if service is not None:
            _fail(DatabaseLocked(f"数据库 {db} 已被另一个服务占用（PID {service.pid}，地址 {service.url}）；"
                                 f"请直接使用该服务，或先停止它再启动"))
        holder = f"（PID {exc.pid}）" if exc.pid else ""
        _fail(DatabaseLocked(f"数据库 {db} 已被另一个进程{holder}占用；请先关闭该进程再启动服务，或改用其他 --db 文件"))
    except ScreeningError as exc:
        _fail(exc)
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else (f"[{host}]" if ":" in host else host)
    settings = Settings(db=db, url=f"http://{local}:{port}")  # local commands hand their writes over here
    uvicorn.run(create_app(settings), host=host, port=port, workers=1, log_level="info")


@app.command("export-final")
def export_final(
    year: Annotated[int, typer.Option("--year", help="清单年度（须已在服务中定稿）")],
    db: Annotated[Path, typer.Option("--db", help="服务使用的 DuckDB 文件")] = Path("screening.duckdb"),
    out: Annotated[Path, typer.Option("--out", help="输出目录")] = Path("out"),
    rules: Annotated[Optional[Path], typer.Option("--rules", help="规则集目录（告知书模板与异议期限；默认：rules/yueqing-2022）")] = None,
) -> None:
    """导出定稿清单（带签章栏的 Excel）和每家企业的《高耗低效企业认定告知书》（Word，另附合并打印文件）。"""
    from .final import export_final as write_export
    from .outdir import staged
    from .paths import default_ruleset
    from .ruleset import load_ruleset
    from .store import DatabaseLocked, connect

    try:
        rs = load_ruleset(rules or default_ruleset())
        if not db.is_file():
            raise ScreeningError(f"数据库文件 {db} 不存在；请用 --db 指定服务使用的 DuckDB 文件")
        try:
            con = connect(db, read_only=True)
        except DatabaseLocked as exc:
            raise DatabaseLocked(f"{exc}；服务运行时请从服务下载（GET /api/v1/lists/{year}/final/export）") from None
        try:
            with staged(out, _notice) as staging:
                files = write_export(con, year, rs, staging)
        finally:
            con.close()
    except ScreeningError as exc:
        _fail(exc)
    from .final import NOTICE_DIR

    notices = [f for f in files if f.parent.name == NOTICE_DIR]
    merged = [f.name for f in files if f.suffix == ".docx" and f.parent.name != NOTICE_DIR]
    say(out_console, f"已写入 {out}：{files[0].name}（定稿清单）、{out / NOTICE_DIR} 中告知书 {len(notices)} 份"
                     f"、合并打印文件 {'、'.join(merged) or '无（定稿清单为空）'}")


app.command("evaluate")(evaluate_command)
app.command("warn")(warn_command)

from .cli_backup import register as register_backup_commands  # noqa: E402  (backup, restore, verify, runs prune)

register_backup_commands(app)


def main() -> None:
    """Console entry point (``screening``)."""
    run_app(app)
