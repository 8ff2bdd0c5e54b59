"""A trained warning model on disk: ``model.joblib`` (what scores) and ``model.json`` (what
people read: training-data hash, software versions, features, backtest metrics).

Loading a joblib file runs Python code from it: load only models this tool saved.
"""
from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from ..errors import ScreeningError
from .features import FEATURE_BY_NAME, groups_of

FORMAT = 1
_KEYS = {"estimator", "features", "reference", "info", "schema"}  # what a saved model holds


class ModelSchemaError(ScreeningError):
    """The data's feature columns are not the ones the saved model was trained on."""


def software() -> dict[str, str]:
    import polars
    import sklearn

    from .._version import __version__

    return {"screening": __version__, "scikit-learn": sklearn.__version__, "numpy": np.__version__,
            "polars": polars.__version__, "python": platform.python_version()}


def training_hash(features: list[str], t: np.ndarray, x: np.ndarray, y: np.ndarray) -> str:
    """sha256 of the training rows exactly as the model saw them (names, years, values, labels)."""
    h = hashlib.sha256()
    h.update("\n".join(features).encode())
    for part in (t.astype(np.int32), np.ascontiguousarray(x, dtype=np.float64), y.astype(np.int8)):
        h.update(part.tobytes())
    return h.hexdigest()


@dataclass
class WarnModel:
    estimator: Any
    features: list[str]  # the columns the estimator reads
    reference: np.ndarray  # their training medians: the "typical firm" the reasons compare with
    info: dict[str, Any]
    #: the data's feature columns at training (features plus any that held no training value)
    schema: list[str]

    @property
    def groups(self) -> dict[str, list[int]]:
        return groups_of(self.features)

    def check(self, names: list[str], source: str) -> None:
        """Refuse data whose feature columns differ from the model's (one Chinese line)."""
        missing = [n for n in self.schema if n not in names]
        extra = [n for n in names if n not in self.schema]
        if missing or extra:
            parts = []
            if missing:  # a feature exists only when its source columns hold data
                parts.append(f"数据缺少模型所需的特征列 {'、'.join(missing)}（来自数据中缺失或全空的表、列）")
            if extra:
                parts.append(f"数据多出模型未训练过的特征列 {'、'.join(extra)}")
            raise ModelSchemaError(f"模型 {source} 与数据不匹配：{'；'.join(parts)}；请不带 --model 运行，用这些数据重新训练")

    def save(self, out: Path) -> tuple[Path, Path]:
        out.mkdir(parents=True, exist_ok=True)
        model_file, info_file = out / "model.joblib", out / "model.json"
        joblib.dump({"format": FORMAT, "estimator": self.estimator, "features": self.features,
                     "reference": self.reference, "info": self.info, "schema": self.schema}, model_file)
        info_file.write_text(json.dumps(self.info, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8")
        return model_file, info_file


def load_model(path: Path) -> WarnModel:
    path = Path(path)
    if path.is_dir():
        path = path / "model.joblib"
    if not path.is_file():
        raise ScreeningError(f"模型文件不存在：{path}")
    try:
        saved = joblib.load(path)
    except Exception as exc:  # a foreign or damaged file: say so in one line
        raise ScreeningError(f"无法读取模型文件 {path}（文件损坏或不是模型文件：{type(exc).__name__}）") from None
    if not (isinstance(saved, dict) and saved.get("format") == FORMAT and _KEYS <= saved.keys()):
        raise ScreeningError(f"{path} 不是 screening warn 保存的模型文件（格式 {FORMAT}）")
    schema = list(saved["schema"])
    unknown = [n for n in schema if n not in FEATURE_BY_NAME]
    if unknown:
        raise ModelSchemaError(f"模型 {path} 含有本版本不认识的特征列 {'、'.join(unknown)}，请重新训练")
    return WarnModel(saved["estimator"], list(saved["features"]), np.asarray(saved["reference"]), saved["info"], schema)
