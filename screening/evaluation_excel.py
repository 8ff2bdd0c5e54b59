"""亩均效益评价_<Y>.xlsx: the evaluation for people.

Sheets: one per population (规上, 规下, 租赁企业 …; 规模不明 / 未归入参评群体 when some firms
are in none), sorted by group and rank, with Chinese headers and a frozen header row; then
评价方法 (populations, indicators, weights, baselines actually used, grading and quotas,
加减分 items, who is not graded or T, citations).  Written with
xlsxwriter in constant-memory mode, one bound writer per column (the house pattern of
screening/excel.py, whose formats and helpers are reused).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from . import spreadsheet
from .evaluation_method import GRADES, NO_POPULATION, NO_SCALE, QUANTITIES, FixedBaseline, MinLandRule, Population
from .excel import WORKBOOK_OPTIONS, Workbook, _formats, _table, sheet_name

if TYPE_CHECKING:
    from .evaluation import Evaluation

_NUMBER_KINDS = ("int", "num2", "num4", "pct")

Column = tuple[str, str, int, str]  # (column, Chinese header, width, format kind)


def _scale_columns(ev: Evaluation, pop: Population | None) -> list[Column]:
    m = ev.method
    head: list[Column] = [("uscc", "统一社会信用代码", 21, "text"), ("name", "企业名称", 30, "text"),
                          ("township", "乡镇街道", 10, "text"), ("industry_code", "行业代码", 9, "text")]
    if pop is None:
        return head + [("scale", "规模", 6, "text"), ("not_graded_reason", "未参评原因", 50, "wrap")] + [
            (q, f"{zh}（{unit}）", 12, "int" if q == "employees" else "num2") for q, (zh, unit) in QUANTITIES.items()
            if q in m.quantities()]
    sm = pop
    cols: list[Column] = [("rank", "排名", 6, "int"), ("grade", "等级", 6, "text"), ("score", "综合得分", 10, "num2"),
                          head[1], head[0], *head[2:]]
    if m.adjustments is not None:
        cols += [("base_score", "加减分前得分", 10, "num2"), ("adjustment", "加减分", 8, "num2"),
                 ("initial_grade", "初评等级", 8, "text"), ("adjustment_detail", "加减分说明", 40, "wrap")]
    cols += [("grade_class", "等级类别（T为暂不评价）", 10, "text")]
    cols += [("grade_group", "排名分组", 12, "text"), ("group_size", "组内参评企业数", 10, "int"),
             ("percentile", "名次百分位", 10, "pct")]
    cols += [(i.id, f"{i.name}（{i.unit}）", 14, "num4") for i in sm.indicators]
    cols += [(f"{i.id}_score", f"{i.name}得分（满分{i.weight:g}）", 11, "num2") for i in sm.indicators]
    cols += [("not_graded_reason", "不定等级原因", 50, "wrap")]
    used = {q for i in sm.indicators for q in (i.formula.numerator, i.formula.denominator)}
    scales = set(sm.when.scale or ("规上", "规下"))
    used |= {"land_mu"} if sm.when.uses_land() or any(
        isinstance(r, MinLandRule) and r.scale in scales for r in m.scope.not_graded) else set()
    cols += [(q, f"{zh}（{unit}）", 12, "int" if q == "employees" else "num2")
             for q, (zh, unit) in QUANTITIES.items() if q in used]
    if sm.when.tenure is not None:
        cols += [("tenure", "用地权属（有自有地块为自有，全部租赁为租赁）", 12, "text"),
                 ("own_land_mu", "自有用地（亩）", 10, "num2"), ("leased_land_mu", "租赁用地（亩）", 10, "num2")]
    if sm.when.small_park is not None:
        cols += [("small_park", "小微园", 8, "text")]
    return cols


def _data_sheet(wb: Workbook, fmts: dict[str, Any], name: str, frame: pl.DataFrame,
                columns: list[Column]) -> None:
    ws = wb.add_worksheet(name)
    for c, (_, header, width, _kind) in enumerate(columns):
        ws.set_column(c, c, width)
    ws.freeze_panes(1, 4 if columns[0][0] == "rank" else 2)  # header row; rank … firm name stay in view
    ws.set_row(0, 30)
    for c, (_, header, _w, _k) in enumerate(columns):
        ws.write_string(0, c, header, fmts["header"])
    writers = [(c, ws.write_number if kind in _NUMBER_KINDS else ws.write_string, fmts[kind])
               for c, (_, _h, _w, kind) in enumerate(columns)]
    for r, row in enumerate(frame.select([c for c, *_ in columns]).iter_rows(), start=1):
        for (c, write, fmt), v in zip(writers, row):
            if v is not None:
                write(r, c, v, fmt)
    if frame.height:
        ws.autofilter(0, 0, frame.height, len(columns) - 1)


def _method_sheet(wb: Workbook, fmts: dict[str, Any], ev: Evaluation, used: set[str]) -> None:
    m = ev.method
    ws = wb.add_worksheet(sheet_name("评价方法", used))
    for c, w in enumerate((10, 22, 30, 8, 16, 36, 22, 22, 22, 60)):
        ws.set_column(c, c, w)
    ws.write_string(0, 0, m.title_for(ev.year), fmts["title"])
    info = [("评价方法", f"{m.id}（版本 {m.version}）"), ("数据年度", str(ev.year)),
            ("依据", m.citation_text(m.citation)), ("说明", " ".join(m.description.split()))]
    if m.citation.note:
        info.append(("备注", m.citation.note))
    for i, (k, v) in enumerate(info, start=2):
        ws.write_string(i, 0, k, fmts["bold"])
        ws.write_string(i, 1, v, fmts["text"])
    row = len(info) + 3
    for w in ev.warnings:
        ws.write_string(row, 0, f"提示：{w}", fmts["note"])
        row += 1
    row += 1

    counts = ev.grade_counts()
    ws.write_string(row, 0, "评价结果", fmts["bold"])
    row = _table(ws, fmts, row + 1, ["参评群体", "参评企业", *GRADES, "不定等级", "其中暂不评价（T）"],
                 [[s, c["evaluated"], *(c[g] for g in GRADES), c["not_graded"], c["T"]] for s, c in counts.items()],
                 ["text", "int", *(["int"] * len(GRADES)), "int", "int"])

    ws.write_string(row, 0, "参评群体", fmts["bold"])
    tenure_zh = {"own": "有自有用地", "tenant": "全部为租赁用地（无自有工业用地）"}
    rows = []
    for pop in m.population_list:
        w = pop.when
        conds = [f"规模：{'、'.join(w.scale)}" if w.scale else None,
                 f"用地权属：{tenure_zh[w.tenure]}" if w.tenure else None,
                 f"用地 ≥ {w.min_land_mu:g} 亩" if w.min_land_mu is not None else None,
                 f"用地 < {w.below_land_mu:g} 亩" if w.below_land_mu is not None else None,
                 ("小微园企业" if w.small_park else "非小微园企业") if w.small_park is not None else None,
                 f"行业大类：{'、'.join(f'{d:02d}' for d in w.divisions)}" if w.divisions else None]
        rows.append([pop.id, pop.name, "；".join(c for c in conds if c) or "全部参评企业",
                     m.citation_text(pop.cite) + (f"；{pop.cite.note}" if pop.cite.note else "")])
    row = _table(ws, fmts, row + 1, ["编号", "名称", "范围（按顺序取第一个符合的群体）", "依据"], rows,
                 ["text", "text", "wrap", "wrap"])

    ws.write_string(row, 0, "指标、权重与基准值", fmts["bold"])
    rows = []
    bl = {(r["population"], r["indicator"]): r for r in ev.baselines.to_dicts()}
    policy_zh = {"average_item_score": "按同规模企业该项平均得分赋分", "zero": "计0分", "not_graded": "不定等级",
                 "missing": "按缺数据处理"}
    for sm in m.population_list:
        scale = sm.name
        fn = sm.item_score
        for ind in sm.indicators:
            r = bl[(sm.id, ind.id)]
            b = ind.baseline
            cite = ind.cite
            if fn.function == "min_max":
                how = f"最小—最大法，保底{fn.floor:g}（最小 {r['reference_min']}，最大 {r['reference_max']}）"
            elif isinstance(b, FixedBaseline) and b.values is not None:
                how = f"固定除数（{ev.year}年度数据适用的数值；方法中有 {'、'.join(map(str, b.years()))} 年度）"
                cite = b.values[ev.year].cite
            elif isinstance(b, FixedBaseline):
                how = "固定除数"
            else:
                avg = "Σ分子÷Σ分母" if b.average == "ratio_of_sums" else "企业指标值的算术平均"
                how = f"{b.multiplier:g}×当年参评{scale}企业平均（{avg}，{r['reference_firms']}家）"
            cap = f"，单项不超过权重的{fn.cap:g}倍" if fn.function == "ratio" and fn.cap else ""
            formula = f"{QUANTITIES[ind.formula.numerator][0]}÷{QUANTITIES[ind.formula.denominator][0]}"
            rows.append([scale, f"{ind.name}（{ind.unit}）", formula, ind.weight, r["baseline"], how + cap,
                         policy_zh[sm.missing_policy(ind).policy], policy_zh[sm.zero_policy(ind).policy],
                         r["average_item_score"], m.citation_text(cite) + (f"；{cite.note}" if cite.note else "")])
    row = _table(ws, fmts, row + 1, ["参评群体", "指标", "公式", "权重", "基准值", "基准值说明", "缺数据", "分母为0",
                                     "参评企业该项平均得分", "依据"], rows,
                 ["text", "text", "wrap", "num2", "num4", "wrap", "wrap", "wrap", "num4", "wrap"])

    ws.write_string(row, 0, "等级划分", fmts["bold"])
    within_zh = {"scale": "本群体全体", "population": "本群体全体", "division": "本群体内同行业大类",
                 "custom": "本群体内自定义行业组"}
    rows = []
    for sm in m.population_list:
        g = sm.grading
        cumulative = g.cumulative()
        if cumulative is not None:
            cuts = "名次百分位上限：" + "，".join(f"{k} ≤ {v:.0%}" for k, v in cumulative.items())
        else:
            cuts = "分数线：" + "，".join(f"{k} ≥ {v:g}" for k, v in (g.thresholds or {}).items()) + "，其余 D"
        quota = ""
        if g.quotas is not None:
            parts = ([f"A类不超过{g.quotas.max_a_share:.0%}（向下取整）"] if g.quotas.max_a_share else []) + (
                [f"D类不少于{g.quotas.min_d_share:.0%}（向上取整）"] if g.quotas.min_d_share else [])
            quota = "；配额：" + "，".join(parts) + "，配额边界上同分的企业同等处理（见 docs/evaluation.md）"
        rows.append([sm.name, within_zh[g.within], cuts + quota,
                     f"得分保留{g.rank_decimals}位小数后比较；名次 = 1 + 得分更高的企业数，同分同名次、同享较好的等级",
                     m.citation_text(g.cite) + (f"；{g.cite.note}" if g.cite.note else "")
                     + (f"；配额：{m.citation_text(g.quotas.cite)}" if g.quotas is not None else "")])
    row = _table(ws, fmts, row + 1, ["参评群体", "排名范围", "等级划分", "并列规则", "依据"], rows,
                 ["text", "text", "wrap", "wrap", "wrap"])

    if m.adjustments is not None:
        adj = m.adjustments
        ws.write_string(row, 0, "加减分项目", fmts["bold"])
        effect_zh = {"bonus": "加分", "penalty": "扣分", "grade": "一票否决"}
        rows = []
        for it in adj.items:
            if it.effect == "grade":
                how = f"等级定为{it.grade}" if it.mode == "force" else f"等级不高于{it.grade}"
            else:
                amount = f"{it.value:g}" if it.value is not None else "按数据表分值"
                how = f"{amount}{'%（占加减分前得分）' if it.unit == 'percent' else '分'}"
                how += f"，单项不超过{it.max_points:g}分" if it.max_points is not None else ""
            rows.append([it.id, it.name, effect_zh[it.effect], how,
                         m.citation_text(it.cite) + (f"；{it.cite.note}" if it.cite.note else "")])
        caps = "；".join(([f"加分合计不超过{adj.max_bonus:g}分"] if adj.max_bonus else [])
                        + ([f"扣分合计不超过{adj.max_penalty:g}分"] if adj.max_penalty else [])) or "合计不封顶"
        rows.append(["", "合计", "", caps, m.citation_text(adj.cite) + (f"；{adj.cite.note}" if adj.cite.note else "")])
        row = _table(ws, fmts, row + 1, ["编号", "项目", "类型", "分值", "依据"], rows,
                     ["text", "text", "text", "wrap", "wrap"])

    ws.write_string(row, 0, "不定等级的企业", fmts["bold"])
    rows = [[rule.kind, "T（暂不评价）" if rule.grade_class == "T" else "不定等级", rule.reason,
             m.citation_text(rule.cite) + (f"；{rule.cite.note}" if rule.cite.note else "")]
            for rule in m.scope.not_graded]
    _table(ws, fmts, row + 1, ["类型", "类别", "说明（模板）", "依据"], rows, ["text", "text", "wrap", "wrap"])


def write_workbook(ev: Evaluation, path: Path) -> None:
    with Workbook(str(path), {**WORKBOOK_OPTIONS, "constant_memory": True}) as wb:
        fmts = _formats(wb)
        fmts["num4"] = wb.add_format({"font_name": "等线", "font_size": 10, "valign": "top", "num_format": "#,##0.0000"})
        used: set[str] = set()
        pop, scale = pl.col("population"), pl.col("scale")
        sheets = [(p.name, p, pop == p.id) for p in ev.method.population_list]
        sheets += [(NO_POPULATION, None, scale.is_not_null() & pop.is_null()), (NO_SCALE, None, scale.is_null())]
        for label, population, cond in sheets:
            part = ev.scores.filter(cond)
            if population is None and not part.height:
                continue
            columns = _scale_columns(ev, population)
            rows = spreadsheet.MAX_SHEET_ROWS  # a longer sheet continues on the next
            for n, start in enumerate(range(0, max(part.height, 1), rows)):
                name = label if n == 0 else f"{label}（续{n + 1}）"
                _data_sheet(wb, fmts, sheet_name(name, used), part.slice(start, rows), columns)
        _method_sheet(wb, fmts, ev, used)
