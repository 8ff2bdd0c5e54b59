"""``factors``: the main reasons for a firm's risk, as Chinese sentences with its numbers.

The model says which feature groups raise the firm's risk most (see
:func:`screening.warn.model.group_contributions`); this module says each group in words,
from the firm's own figures.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .config import WarnConfig

NONE_FOUND = "未发现突出的风险因素"

Row = dict[str, Any]


def _ok(*values: Any) -> bool:
    return all(v is not None and not (isinstance(v, float) and math.isnan(v)) for v in values)


def _percent(share: float) -> float:
    """``share`` × 100 without the binary noise that would move a ceil or floor (3/100 → 3, not 3.0000000000000004)."""
    return round(share * 100, 9)


def _peers(r: Row, compared_by_industry: str) -> str:
    """Whom a share or an average is over: the firm's 2-digit industry, or all firms scored
    that year when the industry has too few (see ``min_peers`` in config.yaml)."""
    if not r[compared_by_industry]:
        return "全部企业"
    return f"同行业（{r['division']}大类）"


def _per_mu_level(r: Row, t: int, prefix: str, label: str,
                  otherwise: Callable[[float], str | None]) -> str | None:
    """"{t}年{label} X 万元/亩", then where the firm stands when in the bottom half of the firms
    it is compared with ("处于…后 N%", N = the share at or below it, rounded up), else
    ``otherwise(X)``.  ``prefix`` names the columns: tax_per_mu, tax_pct_industry, ..."""
    value, pct = r[f"{prefix}_per_mu"], r[f"{prefix}_pct_industry"]
    if not _ok(value):
        return None
    text = f"{t}年{label} {value:.1f} 万元/亩"
    if _ok(pct) and pct <= 0.5:
        extra = f"处于{_peers(r, f'{prefix}_by_industry')}后 {max(1, math.ceil(_percent(pct)))}%"
    else:
        extra = otherwise(value)
    return f"{text}，{extra}" if extra else text


def _tax_level(r: Row, t: int) -> str | None:
    avg = r["industry_tax_per_mu"]

    def versus_average(tpm: float) -> str | None:
        return f"为{_peers(r, 'tax_by_industry')}平均水平的 {tpm / avg:.0%}" if _ok(avg) and avg > 0 else None

    return _per_mu_level(r, t, "tax", "亩均税收", versus_average)


def _tax_trend(r: Row, t: int) -> str | None:
    now, prev, prev2 = r["tax_per_mu"], r["tax_per_mu_p1"], r["tax_per_mu_p2"]
    if not _ok(now, prev):
        return None
    if _ok(prev2) and now < prev < prev2:
        return f"亩均税收连续两年下降 {1 - now / prev2:.0%}（{t - 2}年 {prev2:.1f} → {t}年 {now:.1f} 万元/亩）"
    if now < prev:
        return f"亩均税收较上年下降 {1 - now / prev:.0%}（{prev:.1f} → {now:.1f} 万元/亩）"
    path = " → ".join(f"{v:.1f}" for v in (prev2, prev, now) if _ok(v))
    return f"亩均税收近年为 {path} 万元/亩"


def _value_added(r: Row, t: int) -> str | None:
    prev = r["va_per_mu_p1"]

    def fall(va: float) -> str | None:
        return f"较上年下降 {1 - va / prev:.0%}" if _ok(prev) and prev > 0 and va < prev else None

    return _per_mu_level(r, t, "va", "亩均增加值", fall)


def _energy(r: Row, t: int) -> str | None:
    ep, pct, below = r["energy_per_revenue"], r["energy_pct_industry"], r["energy_below_industry"]
    parts = []
    if _ok(ep):
        text = f"单位营业收入能耗 {ep:.3f} 吨标准煤/万元"
        if _ok(pct, below) and pct >= 0.5:  # the upper half: say how many it exceeds
            text += f"，高于{_peers(r, 'energy_by_industry')}中 {math.floor(_percent(below))}% 的企业"
        parts.append(text)
    tax, elec = r["tax_paid"], r["electricity"]
    if _ok(tax, elec) and elec > 0:
        parts.append(f"单位电耗税收 {tax / elec:.2f} 元/千瓦时")  # 万元 ÷ 万千瓦时
    return "，".join(parts) or None


def _product(r: Row, t: int) -> str | None:
    ratio = r["product_ratio"]
    if not _ok(ratio):
        return None
    if ratio > 1:
        return f"{t}年产品单耗超过限额 {ratio - 1:.0%}"
    return f"{t}年产品单耗达到限额的 {ratio:.0%}"


def _grades(r: Row, t: int) -> str | None:
    seen = [(t - k, r[g]) for k, g in ((2, "grade_p2"), (1, "grade_p1"), (0, "grade")) if _ok(r[g])]
    if not seen:
        return f"{t}年没有亩均效益评价等级"
    return "近年评价等级：" + "、".join(f"{y}年 {g}" for y, g in seen)


def _scale(r: Row, t: int) -> str | None:
    scale, prev, rev, rev1 = r["scale"], r["scale_p1"], r["revenue"], r["revenue_p1"]
    if _ok(scale, prev) and scale != prev:
        return f"{t}年由{prev}转为{scale}"
    if _ok(rev, rev1) and rev1 > 0 and rev < rev1:
        return f"营业收入较上年下降 {1 - rev / rev1:.0%}（{rev1:.0f} → {rev:.0f} 万元）"
    if _ok(scale, rev):
        return f"{t}年为{scale}企业，营业收入 {rev:.0f} 万元"
    return None


def _land(r: Row, t: int) -> str | None:
    land, prev, leased = r["land_mu"], r["land_mu_p1"], r["leased_share"]
    if not _ok(land):
        return None
    if _ok(prev) and prev > 0 and land != prev:
        change = land / prev - 1
        word = "增加" if change > 0 else "减少"
        return f"用地 {land:.1f} 亩，较上年{word} {abs(change):.0%}"
    text = f"用地 {land:.1f} 亩"
    return f"{text}（租赁占 {leased:.0%}）" if _ok(leased) and leased > 0 else text


def _gaps(r: Row, t: int) -> str | None:
    missing = [name for name, col in (("税收", "tax_paid"), ("用地", "land_mu")) if not _ok(r[col])]
    return f"{t}年缺少{'、'.join(missing)}数据" if missing else None


def _firm(r: Row, t: int) -> str | None:
    year = r["established_year"]
    return f"成立于{year}年（{t - year}年）" if _ok(year) else None


SENTENCES: dict[str, Callable[[Row, int], str | None]] = {
    "tax_level": _tax_level, "tax_trend": _tax_trend, "value_added": _value_added, "energy": _energy,
    "product_energy": _product, "grades": _grades, "scale": _scale, "land": _land, "data_gaps": _gaps,
    "firm": _firm,
}


def factors(rows: Iterable[Row], contributions: dict[str, np.ndarray], t: int,
            cfg: WarnConfig) -> tuple[list[str], list[str]]:
    """Per firm (``rows`` in the order of the contributions): the reasons joined by '；' and
    the groups they come from joined by ';'."""
    names = list(contributions)
    matrix = np.column_stack([contributions[g] for g in names]) if names else None
    # per firm, the groups from the largest contribution down; ties in the fixed group order
    order = np.argsort(-matrix, axis=1, kind="stable") if names else None
    texts, keys = [], []
    for i, row in enumerate(rows):  # an iterator: a county's rows need not all be dicts at once
        chosen, used = [], []
        for j in order[i] if names else ():
            if matrix[i, j] < cfg.factors.min_contribution or len(chosen) >= cfg.factors.max_factors:
                break
            sentence = SENTENCES[names[j]](row, t)
            if sentence:
                chosen.append(sentence)
                used.append(names[j])
        texts.append("；".join(chosen) or NONE_FOUND)
        keys.append(";".join(used))
    return texts, keys
