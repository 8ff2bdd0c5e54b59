"""Where the bundled rule sets, SQL and sample data live.

In a source checkout (editable install) they are the top-level ``rules/``, ``sql/``
and ``sample_data/`` folders; a wheel carries copies under ``screening/_bundled/``.
"""
from __future__ import annotations

from collections.abc import Sequence
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


#: the longest path text taken from a request or a parameter
MAX_PATH_TEXT = 1024


def confined(given: str, roots: Sequence[Path]) -> Path | None:
    """``given`` resolved (links followed), when it lies in one of ``roots`` (or is one);
    None for anything else: empty, too long, a NUL or other control character, ``..`` or a
    link leading out.  A relative path is taken from each root in turn.  This is the one
    check every path from a request (or a parameter the service reads) passes before any
    other file-system call; it says nothing about whether the file exists."""
    if not isinstance(given, str) or not given.strip() or len(given) > MAX_PATH_TEXT \
            or any(ord(c) < 32 for c in given):
        return None
    for root in roots:
        try:
            base = Path(root).resolve()
            candidate = (base / given).resolve()
        except (OSError, ValueError, RuntimeError):
            return None
        if candidate == base or base in candidate.parents:
            return candidate
    return None


def folder_problem(path: Path, what: str) -> str | None:
    """Why ``path`` cannot be used as the folder ``what`` (e.g. 数据目录), in Chinese; None when it can.

    A file given where a folder is wanted is named as such, not as missing."""
    if path.is_dir():
        return None
    if path.exists():
        return f"{what}应为文件夹，但 {path} 是一个文件"
    return f"{what}不存在：{path}"
