"""Service settings from environment variables (prefix SCREENING_); nothing is built at import."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCREENING_")

    db: Path = Path("screening.duckdb")
    max_page_size: int = 500


@lru_cache
def get_settings() -> Settings:
    return Settings()
