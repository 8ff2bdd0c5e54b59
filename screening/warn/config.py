"""The early-warning settings (``config.yaml`` beside this module): typed, typos refused."""
from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..config_errors import describe
from ..errors import ScreeningError

DEFAULT_CONFIG = Path(__file__).with_name("config.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureSettings(_Strict):
    min_peers: int = Field(ge=1)


class CalibrationSettings(_Strict):
    method: str = Field(pattern="^(sigmoid|isotonic)$")
    folds: int = Field(ge=2)


class LogisticSettings(_Strict):
    C: float = Field(gt=0)
    max_iter: int = Field(ge=1)


class BoostingSettings(_Strict):
    learning_rate: float = Field(gt=0)
    max_iter: int = Field(ge=1)
    max_leaf_nodes: int = Field(ge=2)
    min_samples_leaf: int = Field(ge=1)
    l2_regularization: float = Field(ge=0)


class Candidates(_Strict):
    logistic: LogisticSettings
    gradient_boosting: BoostingSettings


class SelectionSettings(_Strict):
    metric: str = Field(pattern="^(auc|brier)$")
    prefer_simpler_within: float = Field(ge=0)


class BacktestSettings(_Strict):
    top_k: list[int] = Field(min_length=1)
    bins: int = Field(ge=2)
    permutation_repeats: int = Field(ge=1)
    #: test rows the permutation importance shuffles (a stratified sample above it); None: all.
    #: Optional so that a model saved before the setting existed still loads.
    importance_rows: int | None = Field(default=None, ge=1)


class TrainingSettings(_Strict):
    #: training rows a model is fitted on; above it a stratified sample (screening.warn.sample); None: all
    sample_rows: int | None = Field(ge=1)


class FactorSettings(_Strict):
    max_factors: int = Field(ge=1)
    min_contribution: float = Field(ge=0)


class WarnConfig(_Strict):
    seed: int
    threads: int = Field(ge=1)
    features: FeatureSettings
    calibration: CalibrationSettings
    candidates: Candidates
    selection: SelectionSettings
    backtest: BacktestSettings
    factors: FactorSettings
    #: None only in models saved before sampling existed (they trained on every row)
    training: TrainingSettings | None = None

    def with_sample_rows(self, rows: int | None) -> "WarnConfig":
        """These settings with another training sample size (None: fit on every row)."""
        return self.model_copy(update={"training": TrainingSettings(sample_rows=rows)})


def load_config(path: Path | None = None) -> WarnConfig:
    path = Path(path) if path else DEFAULT_CONFIG
    raw = None
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return WarnConfig.model_validate(raw)
    except FileNotFoundError:
        raise ScreeningError(f"预警配置文件不存在：{path}") from None
    except ValidationError as exc:
        raise ScreeningError(f"预警配置文件 {path} 无效：{describe(exc, raw, WarnConfig)}") from None
