"""The two candidate models (scikit-learn pipelines), each calibrated to a probability.

Both are wrapped in ``CalibratedClassifierCV(ensemble=False)``: the calibrator learns from
out-of-fold predictions and one model is fitted on all training rows, so there is a single
model to explain.  Every random step takes the configured seed.
"""
from __future__ import annotations

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from .config import WarnConfig

#: candidate ids, the simpler (more explainable) one first
CANDIDATES = ("logistic", "gradient_boosting")
CANDIDATE_ZH = {"logistic": "校准的逻辑回归", "gradient_boosting": "梯度提升树（HistGradientBoosting）"}


def build(name: str, cfg: WarnConfig) -> CalibratedClassifierCV:
    if name == "logistic":
        p = cfg.candidates.logistic
        base = Pipeline([
            ("impute", SimpleImputer(strategy="median", add_indicator=True)),
            ("scale", StandardScaler()),
            ("model", LogisticRegression(C=p.C, max_iter=p.max_iter)),
        ])
    elif name == "gradient_boosting":
        p = cfg.candidates.gradient_boosting
        base = Pipeline([("model", HistGradientBoostingClassifier(
            learning_rate=p.learning_rate, max_iter=p.max_iter, max_leaf_nodes=p.max_leaf_nodes,
            min_samples_leaf=p.min_samples_leaf, l2_regularization=p.l2_regularization,
            early_stopping=False, random_state=cfg.seed))])
    else:  # pragma: no cover - names come from CANDIDATES
        raise ValueError(name)
    folds = StratifiedKFold(n_splits=cfg.calibration.folds, shuffle=True, random_state=cfg.seed)
    return CalibratedClassifierCV(base, method=cfg.calibration.method, cv=folds, ensemble=False)


def fit(name: str, cfg: WarnConfig, x: np.ndarray, y: np.ndarray) -> CalibratedClassifierCV:
    return build(name, cfg).fit(x, y)


def risk(model: CalibratedClassifierCV, x: np.ndarray) -> np.ndarray:
    """Calibrated probability of being listed, 0–1."""
    if not len(x):
        return np.zeros(0)
    return np.clip(model.predict_proba(x)[:, 1], 0.0, 1.0)


def group_contributions(model: CalibratedClassifierCV, x: np.ndarray, base: np.ndarray, reference: np.ndarray,
                        groups: dict[str, list[int]]) -> dict[str, np.ndarray]:
    """Per feature group: how much lower each firm's risk (``base``, from ``x``) would be were
    the group's features those of the typical firm (the training medians).  Model-agnostic
    and deterministic."""
    out: dict[str, np.ndarray] = {}
    for group, columns in groups.items():
        typical = x.copy()
        typical[:, columns] = reference[columns]
        out[group] = base - risk(model, typical)
    return out
