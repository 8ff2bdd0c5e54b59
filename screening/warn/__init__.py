"""预警 (early warning): each firm's risk of being on next year's list, advisory only.

A scikit-learn model trained on the firms' own history (labels from the real screening),
backtested on the latest labelled year and compared with a naive baseline.  It never
changes a rule status.  See docs/warn.md.
"""
from .artifact import ModelSchemaError, WarnModel, load_model
from .pipeline import WarnResult, early_warning, training_rows

__all__ = ["ModelSchemaError", "WarnModel", "WarnResult", "early_warning", "load_model", "training_rows"]
