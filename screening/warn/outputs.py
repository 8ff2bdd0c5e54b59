"""The files of a warning run, and its rows for the service's database."""
from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import polars as pl

from ..csvsafe import write_csv
from .pipeline import WarnResult
from .report import backtest_markdown

FILES = ("warnings.csv", "warnings.parquet", "backtest.json", "backtest.md", "model.joblib", "model.json",
         "warn_run.json")


def write_outputs(result: WarnResult, out: Path) -> list[Path]:
    """warnings.csv (UTF-8 with BOM) and .parquet, backtest.json/.md, model.joblib/.json, and
    warn_run.json (the run record: stage timings, firms scored, the training sample)."""
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    write_csv(result.warnings, out / "warnings.csv")  # for people: neutralised (screening.csvsafe)
    result.warnings.write_parquet(out / "warnings.parquet")
    source = str(result.model_file) if result.model_file else None
    backtest = {**result.backtest, "source_model": source} if source else result.backtest
    (out / "backtest.json").write_text(json.dumps(backtest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    (out / "backtest.md").write_text(backtest_markdown(result.backtest, source), encoding="utf-8")
    result.model.save(out)
    (out / "warn_run.json").write_text(json.dumps(
        run_record(result, {**result.timings, "写出文件": round(time.perf_counter() - started, 3)}),
        ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return [out / name for name in FILES]


def run_record(result: WarnResult, timings: dict[str, float]) -> dict:
    """What one warning run did: years, firms scored, the training sample (when it trained) and
    the seconds per stage."""
    trained = result.model.info.get("trained_on", {})
    return {
        "year": result.year, "data_year": result.data_year, "target_list_year": result.target_list_year,
        "created_at": result.created_at.isoformat(timespec="seconds"),
        "model_file": str(result.model_file) if result.model_file else None,
        "firms_scored": result.warnings.height,
        "rejected_rows": result.rejected_rows,
        "training_rows": result.training.height if result.training is not None else None,
        "training_sample": trained.get("sample") if result.training is not None else None,
        "backtest_sample": result.backtest.get("train_sample") if result.training is not None else None,
        "timings_s": timings,
    }


def warn_id(result: WarnResult) -> str:
    return f"warn-{result.year}-{result.created_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def store_tables(result: WarnResult, wid: str) -> dict[str, pl.DataFrame]:
    """``warn_runs`` (one row) and ``warn_results`` (one row per firm) for screening.store.save_tables."""
    info = result.model.info
    runs = pl.DataFrame({
        "warn_id": [wid],
        "created_at": [result.created_at],
        "year": [result.year],
        "data_year": [result.data_year],
        "target_list_year": [result.target_list_year],
        "model": [info["model"]],
        "model_zh": [info["model_zh"]],
        "model_file": [str(result.model_file) if result.model_file else None],
        "training_data_sha256": [info["trained_on"]["training_data_sha256"]],
        "software": [json.dumps(info["software"], ensure_ascii=False)],
        "firms": [result.warnings.height],
        "metrics": [json.dumps(result.backtest, ensure_ascii=False)],
    }, schema_overrides={"year": pl.Int32, "data_year": pl.Int32, "target_list_year": pl.Int32,
                         "model_file": pl.String, "firms": pl.Int32})
    results = result.warnings.select(
        pl.lit(wid).alias("warn_id"), "year", "uscc", "name", "township", "industry_code", "scale",
        "risk", "rank", "factors", "factor_groups",
    )
    return {"warn_runs": runs, "warn_results": results}
