"""``screening warn``: 预警, each firm's risk of the list of Y+1 from the data up to Y-1 (contract,
"Commands").  Advisory only: it reads the data and writes its own files and tables, never a
rule status.

Registered in screening/cli/__init__.py with ``app.command("warn")(warn_command)``; the console
helpers of screening/cli/common.py are imported inside the function.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer


def warn_command(
    data: Annotated[Optional[Path], typer.Option("--data", help="数据目录（默认：随附的 sample_data/）")] = None,
    year: Annotated[Optional[int], typer.Option(
        "--year", help="预警年度 Y：用截至 Y-1 年的数据估计进入 Y+1 年度清单的可能性（默认：数据支持的最新年度）")] = None,
    out: Annotated[Path, typer.Option("--out", help="输出目录")] = Path("out"),
    db: Annotated[Optional[Path], typer.Option("--db", help="把预警结果存入此 DuckDB 文件（默认不存）")] = None,
    model: Annotated[Optional[Path], typer.Option(
        "--model", help="用已保存的模型（model.joblib）评分，不重新训练；数据的特征列须与模型一致")] = None,
    rules: Annotated[Optional[Path], typer.Option(
        "--rules", help="生成训练标签的规则集目录（默认：rules/yueqing-2022）")] = None,
    sample_rows: Annotated[Optional[int], typer.Option(
        "--sample-rows", help="训练行多于此数时按标签、年度、乡镇街道、规模分层抽样训练（0：不抽样；"
                              "默认：预警配置的 training.sample_rows）；所有企业照常评分")] = None,
) -> None:
    """预警（仅供参考）：估计每家企业进入下一年度清单的可能性，给出主要原因、回测报告和模型。不改变任何规则判定。"""
    from .common import _fail, _notice, err_console
    from ..errors import ScreeningError
    from ..outdir import staged
    from ..warn import early_warning
    from ..warn.outputs import store_tables, warn_id, write_outputs

    started = time.perf_counter()
    try:
        # files go to a staging folder inside OUT and move into OUT once all are written;
        # a live stage line on a terminal (rich); nothing in logs and pipes
        with staged(out, _notice) as staging, err_console.status("准备…") as status:
            result = early_warning(data, year, ruleset=rules, model=model, progress=status.update,
                                   sample_rows=sample_rows)
            status.update("写出文件")
            write_outputs(result, staging)
            stored = None
            if db is not None:
                from ..store import save_tables

                status.update("存入数据库")
                stored = warn_id(result)
                service = save_tables(db, store_tables(result, stored))
                if service:
                    stored += f"（已交由运行中的服务 {service} 写入）"
    except ScreeningError as exc:
        _fail(exc)
        return
    _summary(result, out, db, stored, time.perf_counter() - started)


def _summary(result, out: Path, db: Optional[Path], stored: Optional[str], elapsed: float) -> None:
    from rich.table import Table

    from .common import out_console
    from rich.cells import cell_len

    from ..terminal import say, wrap
    from ..warn.model import CANDIDATE_ZH, CANDIDATES
    from ..warn.sample import STRATA_ZH

    bt = result.backtest
    if bt:
        ks = list(bt["baseline"]["precision_at"])
        title = (f"回测：特征年度 {bt['test_feature_year']} → {bt['test_list_year']} 年度清单"
                 f"（{bt['rows']['test']} 家，列入 {bt['rows']['test_listed']} 家）")
        table = Table(title=title, title_justify="left")
        numbers = ("AUC", *(f"前{k}名精确率" for k in ks), "Brier")
        widths = [max(cell_len(col), 7) for col in numbers]
        model_width = max(12, out_console.width - sum(widths) - 3 * (len(numbers) + 1) - 1)
        table.add_column("模型", width=model_width, no_wrap=True)
        for col, width in zip(numbers, widths):
            table.add_column(col, justify="right", width=width, no_wrap=True)
        for name in CANDIDATES:
            m = bt["candidates"][name]
            label = CANDIDATE_ZH[name] + ("（选用）" if name == bt["chosen"] else "")
            table.add_row(wrap(label, model_width), f"{m['auc']:.4f}", *(f"{m['precision_at'][k]:.1%}" for k in ks),
                          f"{m['brier']:.5f}")
        base = bt["baseline"]
        table.add_row(wrap("朴素基线（仅当年亩均税收排名）", model_width), f"{base['auc']:.4f}",
                      *(f"{base['precision_at'][k]:.1%}" for k in ks), "—")
        out_console.print(table)
        gain = bt["improvement_over_baseline"]
        say(out_console, f"选用{bt['chosen_zh']}：{bt['selection_reason']}。相对基线 AUC {gain['auc']:+.4f}，"
                          + "，".join(f"前{k}名精确率 {gain['precision_at'][k] * 100:+.1f} 个百分点" for k in ks) + "。")
    final = result.model.info["trained_on"].get("sample") if result.training is not None else None
    if final and final["sampled"]:
        say(out_console, f"训练行较多，按{'、'.join(STRATA_ZH[s] for s in final['strata'])}分层抽样训练："
                          f"最终模型用 {final['rows']} 行（共 {final['population_rows']} 行），"
                          f"回测用 {bt['train_sample']['rows']} 行（共 {bt['train_sample']['population_rows']} 行）；"
                          "所有企业照常评分。")
    top = Table(title=f"{result.target_list_year} 年度清单风险最高的企业（数据截至 {result.data_year} 年，仅供参考）",
                title_justify="left")
    # widths fixed here and text wrapped by screening.terminal, so that 80 columns hold the table
    # and no number or reason is cut (Rich would fold or elide Chinese text mid-number)
    fixed = {"排名": 4, "企业名称": 16, "乡镇街道": 8, "风险": 6}
    reason_width = max(16, out_console.width - sum(fixed.values()) - 3 * (len(fixed) + 1) - 1)
    for col, width in (*fixed.items(), ("首要原因（全部原因见 warnings.csv）" if reason_width >= 36 else "首要原因", reason_width)):
        top.add_column(col, justify="right" if col in ("排名", "风险") else "left", width=width, no_wrap=True)
    for row in result.warnings.head(10).iter_rows(named=True):
        top.add_row(str(row["rank"]), wrap(row["name"] or row["uscc"], fixed["企业名称"]),
                    wrap(row["township"] or "", fixed["乡镇街道"]), f"{row['risk']:.1%}",
                    wrap(row["factors"].split("；")[0], reason_width))
    out_console.print(top)
    w = result.warnings
    say(out_console, f"评分企业：{w.height} 家；风险 ≥ 50% 的 {w.filter(w['risk'] >= 0.5).height} 家，"
                      f"预计列入 {w['risk'].sum():.0f} 家（风险之和）。预警仅供参考，不改变任何规则判定。")
    rejected = result.rejected_rows
    if rejected:
        say(out_console, f"拒收数据行：{rejected} 行（与 screening run 相同的校验；明细可用 screening run 查看）")
    say(out_console, f"输出目录：{out.resolve()}（warnings.csv/.parquet、backtest.json/.md、model.joblib/.json）")
    if db is not None:
        say(out_console, f"已存入 {db.resolve()}，预警编号 {stored}")
    out_console.print(f"用时 {elapsed:.1f} 秒")
