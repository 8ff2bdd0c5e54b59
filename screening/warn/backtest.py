"""Backtest metrics: AUC, precision at the top k, calibration, and the naive baseline."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from .config import WarnConfig
from .model import CANDIDATE_ZH, CANDIDATES, risk

BASELINE_ZH = "朴素基线：仅按当年亩均税收排名（越低风险越高）"


def ranking(score: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Row order from the highest score down; ties by id, so the order is deterministic."""
    return np.lexsort((ids, -score))


def precision_at(y: np.ndarray, score: np.ndarray, ids: np.ndarray, k: int,
                 order: np.ndarray | None = None) -> float:
    """``order``: :func:`ranking` of ``score`` when already known (a province's test year is sorted once)."""
    top = (ranking(score, ids) if order is None else order)[:k]
    return float(y[top].mean()) if len(top) else float("nan")


def reliability(y: np.ndarray, p: np.ndarray, ids: np.ndarray, bins: int,
                order: np.ndarray | None = None) -> list[dict]:
    """Equal-count bins of predicted risk (lowest first): firms, mean predicted, observed rate."""
    order = (ranking(p, ids) if order is None else order)[::-1]
    out = []
    for i, part in enumerate(np.array_split(order, bins)):
        if len(part):
            out.append({"bin": i + 1, "firms": int(len(part)), "mean_risk": round(float(p[part].mean()), 4),
                        "observed_rate": round(float(y[part].mean()), 4), "listed": int(y[part].sum())})
    return out


def scores(y: np.ndarray, score: np.ndarray, ids: np.ndarray, cfg: WarnConfig, probability: bool) -> dict:
    order = ranking(score, ids)
    out = {
        "auc": round(float(roc_auc_score(y, score)), 4),
        "precision_at": {str(k): round(precision_at(y, score, ids, k, order), 4) for k in cfg.backtest.top_k},
    }
    if probability:
        out["brier"] = round(float(brier_score_loss(y, score)), 5)
        out["log_loss"] = round(float(log_loss(y, np.clip(score, 1e-12, 1 - 1e-12), labels=[0, 1])), 5)
        out["reliability"] = reliability(y, score, ids, cfg.backtest.bins, order)
    return out


def baseline(tax_per_mu: np.ndarray) -> np.ndarray:
    """This year's 亩均税收 rank alone: the lowest value scores 1; a missing value sits in the middle."""
    known = ~np.isnan(tax_per_mu)
    score = np.full(len(tax_per_mu), 0.5)
    if known.any():
        values = tax_per_mu[known]
        order = values.argsort(kind="stable")
        ranks = np.empty(len(values))
        ranks[order] = np.arange(1, len(values) + 1)
        score[known] = 1.0 - ranks / len(values)
    return score


def select(metrics: dict[str, dict], cfg: WarnConfig) -> tuple[str, str]:
    """The candidate the backtest picks, and why (Chinese)."""
    sel = cfg.selection
    if sel.metric == "auc":
        value = {n: metrics[n]["auc"] for n in CANDIDATES}
        best = max(CANDIDATES, key=lambda n: (value[n], n == "logistic"))
        close = value["logistic"] >= value[best] - sel.prefer_simpler_within
    else:
        value = {n: metrics[n]["brier"] for n in CANDIDATES}
        best = min(CANDIDATES, key=lambda n: (value[n], n != "logistic"))
        close = value["logistic"] <= value[best] + sel.prefer_simpler_within
    label = "AUC" if sel.metric == "auc" else "Brier 分数"
    other = {"logistic": "gradient_boosting", "gradient_boosting": "logistic"}
    if best != "logistic" and close:
        return "logistic", (f"两者回测 {label} 相差不超过 {sel.prefer_simpler_within}（逻辑回归 {value['logistic']}，"
                            f"梯度提升树 {value[best]}），按配置选更易解释的逻辑回归")
    return best, (f"{CANDIDATE_ZH[best]}的回测 {label} 为 {value[best]}，优于{CANDIDATE_ZH[other[best]]}的 "
                  f"{value[other[best]]}" + ("（差距超过配置的容差）" if best != "logistic" else ""))


def group_importance(model, x: np.ndarray, y: np.ndarray, groups: dict[str, list[int]],
                     repeats: int, seed: int) -> dict[str, float]:
    """Permutation importance per feature group: the mean AUC drop when the group's columns
    are shuffled together across firms (seeded)."""
    rng = np.random.default_rng(seed)
    base = roc_auc_score(y, risk(model, x))
    out = {}
    for group, columns in groups.items():
        drops = []
        for _ in range(repeats):
            shuffled = x.copy()
            shuffled[:, columns] = x[rng.permutation(len(x))][:, columns]
            drops.append(base - roc_auc_score(y, risk(model, shuffled)))
        out[group] = round(float(np.mean(drops)), 4)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))
