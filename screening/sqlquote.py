"""The one way a name or a path that is not a literal of our own code enters SQL text.

Values are bound as parameters (``?``, ``$name``); what cannot be bound -- a table, column,
catalog or type name, and the file path of ATTACH, COPY or read_parquet -- goes through
:func:`identifier` or :func:`literal`.  Both quote (an identifier in double quotes, a
literal in single quotes, the quote character doubled inside), so no name can end the
statement; neither accepts a NUL character, and an identifier is never empty.  Where the names come from
outside (a staged file), they are also whitelisted: see screening.store.STORED_TABLES.
"""
from __future__ import annotations

from pathlib import Path

#: DuckDB's own limit on a name's length is far above this; no name of ours comes near it
MAX_IDENTIFIER = 255


def identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier (table, column, catalog, type)."""
    if not isinstance(name, str) or not name or len(name) > MAX_IDENTIFIER or "\x00" in name:
        raise ValueError(f"not usable as a SQL identifier: {name!r}")
    return '"' + name.replace('"', '""') + '"'


def literal(text: str | Path) -> str:
    """``text`` as a SQL string literal (for paths and fixed text that cannot be bound)."""
    value = str(text)
    if "\x00" in value:
        raise ValueError("a SQL string literal cannot hold a NUL character")
    return "'" + value.replace("'", "''") + "'"
