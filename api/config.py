"""Service settings from environment variables (prefix SCREENING_); nothing is built at import."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from screening.paths import sample_data_dir


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCREENING_")

    db: Path = Path("screening.duckdb")
    #: where POST /api/v1/runs may read data from (default: the bundled sample)
    data_root: Path = Field(default_factory=sample_data_dir)
    #: where runs started through the service write their files
    runs_dir: Path = Path("runs")
    #: the address local commands reach the service at; when set (``screening serve`` does),
    #: the service announces itself beside the database so that they hand their writes over
    url: str | None = None
    #: stored runs held in memory for the record route (the newest run of the newest list
    #: years; about 0.5 GB per run of a million firms); 0 reads every record from DuckDB
    cache_runs: int = Field(default=2, ge=0, le=50)


@lru_cache
def get_settings() -> Settings:
    return Settings()
