"""Where the bundled rule sets, SQL and sample data live.

In a source checkout (editable install) they are the top-level ``rules/``, ``sql/``
and ``sample_data/`` folders; a wheel carries copies under ``screening/_bundled/``.
"""
from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@cache
def _root() -> Path:
    checkout = _PACKAGE.parent
    if (checkout / "sql").is_dir() and (checkout / "rules").is_dir():
        return checkout
    return _PACKAGE / "_bundled"


def sql_dir() -> Path:
    return _root() / "sql"


def rules_dir() -> Path:
    return _root() / "rules"


def default_ruleset() -> Path:
    return rules_dir() / "yueqing-2022"


def sample_data_dir() -> Path:
    return _root() / "sample_data"
