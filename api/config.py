"""Service settings from environment variables (prefix SCREENING_); nothing is built at import."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import os
import types
from typing import Any, Union, get_args, get_origin

import annotated_types
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from screening.errors import SettingsError
from screening.filesafety import Limits
from screening.paths import sample_data_dir
from screening.retention import Folders


_PREFIX = "SCREENING_"


class Settings(BaseSettings):
    """Every construction (the service, ``screening serve``, ``screening runs prune``) goes through
    ``__init__``: a value that cannot be used raises :class:`~screening.errors.SettingsError`, one
    Chinese line naming the variable, the value and what is allowed (the CLI: exit 2), never
    pydantic's English ``ValidationError``."""

    model_config = SettingsConfigDict(env_prefix=_PREFIX)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsError("；".join(_problem(err, values) for err in exc.errors())) from None

    db: Path = Path("screening.duckdb")
    #: where POST /api/v1/runs may read data from (default: the bundled sample)
    data_root: Path = Field(default_factory=sample_data_dir)
    #: where POST /api/v1/data saves uploaded data (default: ``uploads`` beside the database file,
    #: made 0700 on the first upload; never the data root, which may be the bundled sample or read-only)
    upload_dir: Path | None = None
    #: where runs started through the service write their output folders (default: ``runs`` beside
    #: the database file, as the uploads; not the working directory, which a service manager may
    #: set anywhere, e.g. ``/``)
    runs_dir: Path | None = None
    #: ``runs prune`` removes an upload folder (POST /api/v1/data) that no stored run, evaluation or
    #: 差别化措施 batch read from once it is this many days old (a longer ``--older-than``: that age)
    upload_grace_days: float = Field(default=7.0, ge=0)
    #: the rule set whose targets and notice template (notice.yaml) the final export uses (default: bundled)
    rules_dir: Path | None = None
    #: the address local commands reach the service at; when set (``screening serve`` does),
    #: the service announces itself beside the database so that they hand their writes over
    url: str | None = None
    #: stored runs held in memory for the record route (the newest run of the newest list
    #: years; about 0.5 GB per run of a million firms); 0 reads every record from DuckDB
    cache_runs: int = Field(default=2, ge=0, le=50)

    # Caps on an uploaded 核实表 (POST /api/v1/lists/{year}/verifications/upload); docs/limits.md says why.
    # They bound one request's memory and time, so that no user can take the service down; they are
    # not rule thresholds.
    #: the request body, read in a stream and refused as soon as it is larger (413)
    upload_max_bytes: int = Field(default=20 * 1024**2, ge=1024)
    #: all parts of the workbook together, uncompressed
    upload_max_inflated_bytes: int = Field(default=200 * 1024**2, ge=1024)
    #: one part of the workbook, uncompressed
    upload_max_member_bytes: int = Field(default=100 * 1024**2, ge=1024)
    #: xl/sharedStrings.xml, uncompressed (the reader holds every string in memory)
    upload_max_shared_strings_bytes: int = Field(default=20 * 1024**2, ge=1024)
    #: uncompressed / compressed size of one part larger than 1 MB (real workbooks: 5-15)
    upload_max_zip_ratio: float = Field(default=100.0, ge=1.0)
    #: parts in the workbook (an exported form has about ten)
    upload_max_zip_members: int = Field(default=1000, ge=10)
    #: rows of one sheet (a county's list is at most a few thousand firms)
    upload_max_rows: int = Field(default=20_000, ge=10)
    #: rows × columns of one sheet (the reader allocates that rectangle)
    upload_max_cells: int = Field(default=1_000_000, ge=100)
    #: problems listed in a 422 answer; the rest are counted
    upload_errors_listed: int = Field(default=200, ge=1)

    #: any other request body (JSON, a form): refused with 413 above this (api/bodylimit.py)
    body_max_bytes: int = Field(default=1024**2, ge=1024)

    #: one 属地核实 evidence file (photo, scanned document; api/routes/evidence.py)
    evidence_max_bytes: int = Field(default=10 * 1024**2, ge=1024)

    # The web app's sign-in (api/web, docs/web.md)
    #: mark the session cookie Secure (set when the service is reached over HTTPS)
    cookie_secure: bool = False
    #: a session unused this long is signed out
    session_idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    #: failed sign-ins per user name or per client address before sign-in is refused for a while
    login_max_failures: int = Field(default=5, ge=1, le=100)
    #: how long sign-in stays refused after too many failures (seconds)
    login_lockout_seconds: int = Field(default=300, ge=1, le=24 * 3600)

    # 亩均效益评价 (api/routes/evaluations.py, docs/evaluation-workflow.md)
    #: days a publication (公示) lasts when neither the request nor the method says (黄岩、海曙、巢湖、济宁: 2.5 to 8 days)
    evaluation_publication_days: int = Field(default=7, ge=1, le=60)

    def upload_limits(self) -> Limits:
        return Limits(
            inflated_bytes=self.upload_max_inflated_bytes, member_bytes=self.upload_max_member_bytes,
            shared_strings_bytes=self.upload_max_shared_strings_bytes, zip_ratio=self.upload_max_zip_ratio,
            zip_members=self.upload_max_zip_members, rows=self.upload_max_rows, cells=self.upload_max_cells,
        )

    def uploads(self) -> Path:
        """The folder uploads are saved in: ``upload_dir``, else ``uploads`` beside the database file."""
        return self.upload_dir if self.upload_dir is not None else Path(self.db).parent / "uploads"

    def runs(self) -> Path:
        """The folder of the service's run output folders: ``runs_dir``, else ``runs`` beside the database file."""
        return self.runs_dir if self.runs_dir is not None else Path(self.db).parent / "runs"

    def folders(self) -> Folders:
        """The folders holding files of stored runs, for ``runs prune`` (screening.retention)."""
        return Folders(self.data_root, self.runs(), self.upload_grace_days, self.uploads())


_KINDS = {int: "整数", float: "数", bool: "true 或 false（也可写 1/0、yes/no、on/off）", Path: "路径", str: "文本"}


def _problem(err: dict, given: dict[str, Any]) -> str:
    """“环境变量 SCREENING_X 的值“v”无效：应为 …” for one of pydantic's errors."""
    field = str(err["loc"][0]) if err.get("loc") else ""
    value = err.get("input")
    if field in given:                                 # given by the program (e.g. serve --db)
        where = f"设置 {field}"
    else:
        wanted = (_PREFIX + field).upper()
        where = "环境变量 " + next((k for k in os.environ if k.upper() == wanted), wanted)
    shown = str(value) if len(str(value)) <= 100 else str(value)[:100] + "…"
    allowed = _allowed(field)
    return f"{where} 的值“{shown}”无效：应为{' ' if allowed[0].isascii() else ''}{allowed}"


def _allowed(field: str) -> str:
    """What a setting accepts, from its declaration: its kind and its bounds."""
    info = Settings.model_fields.get(field)
    if info is None:
        return "有效的值"
    kind = info.annotation
    optional = get_origin(kind) in (Union, types.UnionType) and type(None) in get_args(kind)
    if optional:
        kind = next(a for a in get_args(kind) if a is not type(None))
    words = _KINDS.get(kind, "有效的值")
    low = next((m.ge for m in info.metadata if isinstance(m, annotated_types.Ge)), None)
    high = next((m.le for m in info.metadata if isinstance(m, annotated_types.Le)), None)
    if low is not None and high is not None:
        words = f"{low:g} 至 {high:g} 之间的{words}"
    elif low is not None:
        words = f"不小于 {low:g} 的{words}"
    elif high is not None:
        words = f"不大于 {high:g} 的{words}"
    return words + ("（也可不设）" if optional else "")


@lru_cache
def get_settings() -> Settings:
    return Settings()
