"""backtest.md: the backtest in Chinese, for people (backtest.json holds the same figures)."""
from __future__ import annotations

from .model import CANDIDATE_ZH, CANDIDATES
from .sample import STRATA_ZH


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.1%}"


def _num(v: float | None, digits: int = 4) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _years(years: list[int]) -> str:
    return f"{years[0]}—{years[-1]}" if len(years) > 1 else str(years[0])


def _sampled(sample: dict | None) -> str:
    """How the training rows were sampled (nothing when every row was used)."""
    if not sample or not sample["sampled"]:
        return ""
    by = "、".join(STRATA_ZH[s] for s in sample["strata"])
    return (f"（从 {sample['population_rows']} 行中按{by}分层、按比例抽样，其中列入清单 {sample['population_listed']} 行；"
            f"抽样上限 {sample['sample_rows_setting']} 行，种子 {sample['seed']}）")


def backtest_markdown(bt: dict, source: str | None = None) -> str:
    """The report; ``source`` names the saved model the figures come from, if any."""
    if not bt:
        return "# 预警模型回测报告\n\n所用模型没有保存回测结果。\n"
    ks = list(bt["baseline"]["precision_at"])
    train, test = bt["train_feature_years"], bt["test_feature_year"]
    rows = bt["rows"]
    lines = [
        f"# 预警模型回测报告（{bt['year']} 年度预警）",
        "",
        "> **仅供参考。** 预警只估计企业进入下一年度清单的可能性，不改变任何规则判定；清单仍由规则认定。",
        f"> {bt['note']}",
        "",
    ]
    if source:
        lines += [f"本报告的数字来自已保存的模型 `{source}` 训练时的回测，本次运行没有重新训练。", ""]
    lines += [
        "## 时间切分",
        "",
        f"- 训练：特征年度 {_years(train)}（标签为 {_years([y + 2 for y in train])} 年度清单），"
        f"{rows['train']} 行，其中列入清单 {rows['train_listed']} 行{_sampled(bt.get('train_sample'))}；",
        f"- 测试：特征年度 {test} → {bt['test_list_year']} 年度清单，{rows['test']} 家企业，"
        f"其中列入清单 {rows['test_listed']} 家（基准率 {_pct(bt['test_base_rate'])}）；",
        "- 每行特征只来自该企业当年及以前的数据和同年同行业企业的数据；标签由真实的规则筛选得出。",
        "",
        "## 结果",
        "",
        "| 模型 | AUC | " + " | ".join(f"前 {k} 名精确率" for k in ks) + " | Brier 分数 | 对数损失 |",
        "|---|---:|" + "---:|" * len(ks) + "---:|---:|",
    ]
    for name in CANDIDATES:
        m = bt["candidates"][name]
        mark = "（选用）" if name == bt["chosen"] else ""
        lines.append(f"| {CANDIDATE_ZH[name]}{mark} | {_num(m['auc'])} | "
                     + " | ".join(_pct(m["precision_at"][k]) for k in ks)
                     + f" | {_num(m['brier'], 5)} | {_num(m['log_loss'], 5)} |")
    base = bt["baseline"]
    lines.append(f"| {base['name']} | {_num(base['auc'])} | " + " | ".join(_pct(base["precision_at"][k]) for k in ks)
                 + " | — | — |")
    gain = bt["improvement_over_baseline"]
    lines += [
        "",
        f"常数预测（人人取基准率）的 Brier 分数为 {_num(bt['brier_constant'], 5)}，可作比较。",
        "",
        f"**选用：{bt['chosen_zh']}。** {bt['selection_reason']}。",
        "",
        f"**相对朴素基线：** AUC 提高 {gain['auc']:+.4f}；"
        + "；".join(f"前 {k} 名精确率提高 {gain['precision_at'][k] * 100:+.1f} 个百分点" for k in ks) + "。",
        "",
        "## 校准（选用模型的可靠性表）",
        "",
        "按预测风险从低到高分成等量的组；校准良好时，每组的平均预测风险接近实际列入比例。",
        "",
        "| 组 | 企业数 | 平均预测风险 | 实际列入比例 | 列入清单 |",
        "|---:|---:|---:|---:|---:|",
    ]
    for b in bt["candidates"][bt["chosen"]]["reliability"]:
        lines.append(f"| {b['bin']} | {b['firms']} | {_pct(b['mean_risk'])} | {_pct(b['observed_rate'])} "
                     f"| {b['listed']} |")
    lines += [
        "",
        "## 各组特征的重要性",
        "",
        "测试年度上把一组特征在企业之间随机打乱后 AUC 的平均下降（置换重要性，固定随机种子）"
        + (f"，在按是否列入清单分层抽取的 {bt['importance_rows']} 家测试企业上计算（AUC、精确率仍用全部测试企业）。"
           if bt.get("importance_rows", bt["rows"]["test"]) < bt["rows"]["test"] else "。"),
        "",
        "| 特征组 | AUC 下降 |",
        "|---|---:|",
    ]
    for group, drop in bt["group_importance"].items():
        lines.append(f"| {bt['group_names'][group]} | {drop:.4f} |")
    lines += [
        "",
        "## 怎样读这些数字",
        "",
        "- AUC：随机取一家列入清单的企业和一家未列入的企业，模型给前者更高风险的概率（0.5 为随机猜测）。",
        "- 前 k 名精确率：风险最高的 k 家企业中，实际列入清单的比例。",
        "- Brier 分数：预测风险与实际结果（0 或 1）之差的平方的平均，越小越好。",
        "- 标签年度的清单要读取特征年度本身的数据（清单 t+2 读取 t 与 t+1 年），所以特征与标签有一年重叠，这是预警的本意：",
        "  用今年的数据估计后年的清单。",
        "",
    ]
    return "\n".join(lines)
