"""The one seam to DuckDB: load frames as tables, run the SQL files with bound parameters.

Frames go in and come out as Arrow (``CREATE TABLE … AS SELECT * FROM <arrow>``, ``.pl()``).
SQL files use ``$name`` parameters only; the values bound are exactly the names a file
uses, so a missing parameter is a clear error rather than a silent default.
"""
from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from .errors import RuleExecutionError
from .paths import sql_dir
from .sqlquote import identifier, literal

_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_COMMENT = re.compile(r"--[^\n]*")


def sql_text(relative: str) -> str:
    return (sql_dir() / relative).read_text(encoding="utf-8")


def param_names(sql: str) -> list[str]:
    """The ``$name`` parameters a SQL text uses (comments ignored)."""
    names = _PARAM.findall(_COMMENT.sub("", sql))
    return list(dict.fromkeys(names))


class Engine:
    """A private DuckDB workspace for one screening run.

    Standalone it is an in-memory database.  Inside the service it is a cursor of the
    service's own connection with a private in-memory catalog as its default, so a run can
    be stored into the service's database file without opening that file a second time
    (DuckDB lets one process hold a file; ``host_catalog`` names it).
    """

    def __init__(self, host: duckdb.DuckDBPyConnection | None = None):
        self.host_catalog: str | None = None
        self._workspace: str | None = None
        if host is None:
            self.con = duckdb.connect()
            self.con.execute("SET allocator_background_threads = true")
        else:
            self.con = host.cursor()
            self.host_catalog = self.con.execute("SELECT current_database()").fetchall()[0][0]
            self._workspace = f"work_{uuid.uuid4().hex[:12]}"
            self.con.execute(f"ATTACH ':memory:' AS {identifier(self._workspace)}")
            self.con.execute(f"USE {identifier(self._workspace)}")
        # result order carries no meaning (outputs that need one say ORDER BY); letting
        # DuckDB drop it makes large COPYs stream in constant memory.  SESSION: a plain SET is
        # global, and inside the service would change every other session of its database
        self.con.execute("SET SESSION preserve_insertion_order = false")

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection of its own onto this workspace, for another thread."""
        cur = self.con.cursor()
        if self._workspace is not None:
            cur.execute(f"USE {identifier(self._workspace)}")
        cur.execute("SET SESSION preserve_insertion_order = false")
        return cur

    def close(self) -> None:
        if self._workspace is not None:
            self.con.execute(f"USE {identifier(self.host_catalog)}")
            self.con.execute(f"DETACH {identifier(self._workspace)}")
            self._workspace = None
        self.con.close()

    def load(self, name: str, frame: pl.DataFrame) -> None:
        """Copy a frame into a DuckDB table (for tables queried many times)."""
        self.con.register("_incoming", _arrow(frame))
        try:
            self.con.execute(f"CREATE OR REPLACE TABLE {identifier(name)} AS SELECT * FROM _incoming")
        finally:
            self.con.unregister("_incoming")

    def attach_frame(self, name: str, frame: pl.DataFrame) -> None:
        """Expose a frame to SQL without copying it (Arrow scan; for tables read once)."""
        self.con.register(name, _arrow(frame))

    def _bind(self, label: str, sql: str, params: dict[str, Any]) -> dict[str, Any]:
        names = param_names(sql)
        missing = [n for n in names if n not in params]
        if missing:
            raise RuleExecutionError(label, sql, params, KeyError(f"缺少参数 {missing}"))
        return {n: params[n] for n in names}

    def execute(self, label: str, sql: str, params: dict[str, Any]) -> None:
        """Run statements (views, macros); ``label`` names the step in errors."""
        for statement in _split(sql):
            bound = self._bind(label, statement, params)
            try:
                self.con.execute(statement, bound or None)
            except duckdb.Error as exc:
                raise RuleExecutionError(label, statement, bound, exc) from exc

    def query(self, label: str, sql: str, params: dict[str, Any]) -> pl.DataFrame:
        bound = self._bind(label, sql, params)
        try:
            return self.con.sql(sql, params=bound or None).pl()
        except duckdb.Error as exc:
            raise RuleExecutionError(label, sql, bound, exc) from exc

    def copy_to(self, source: str, path: Path, options: str) -> None:
        """``COPY (SELECT * FROM source) TO path options`` (paths cannot be bound, so they are quoted)."""
        try:
            self.con.execute(f"COPY (SELECT * FROM {source}) TO {literal(path)} {options}")
        except duckdb.Error as exc:
            raise RuleExecutionError(f"COPY {source}", str(path), {}, exc) from exc

    def insert(self, table: str, label: str, select_sql: str, params: dict[str, Any]) -> None:
        """Append a SELECT's rows to ``table`` by column name."""
        self.execute(label, f"INSERT INTO {identifier(table)} BY NAME {select_sql}", params)


def _arrow(frame: pl.DataFrame):
    # newest compat level keeps Polars' string views, which DuckDB scans without conversion
    return frame.to_arrow(compat_level=pl.CompatLevel.newest())


def _split(sql: str) -> list[str]:
    """Split a file into statements on ';' at line ends (our SQL files keep one per block)."""
    parts = re.split(r";\s*(?:\n|$)", _COMMENT.sub("", sql))
    return [p.strip() for p in parts if p.strip()]


def read_sql_files(folder: str) -> list[tuple[str, str]]:
    return [(p.name, p.read_text(encoding="utf-8")) for p in sorted((sql_dir() / folder).glob("*.sql"))]

