"""Editing a copy of the shipped rule set in tests."""
from __future__ import annotations

from pathlib import Path

import yaml


def edit_yaml(path: Path, change) -> None:
    """Load a rule-set YAML file, let ``change`` alter the mapping in place, write it back."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
