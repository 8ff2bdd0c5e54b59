"""Stratified training samples for a large history (a city's or the province's firms).

Above ``training.sample_rows`` training rows the models learn from a proportional,
stratified sample: every stratum (label × feature year × township × scale) keeps the same
share of its rows, so the sample's base rate, years, townships and scales are those of all
rows and the calibrated risk still reads as a probability.  Rows are drawn with the
configured seed: the same data and settings give the same sample.  Everyone is still
scored; only the fitting sees fewer rows.
"""
from __future__ import annotations

import numpy as np
import polars as pl

#: what a training sample is stratified by (columns of the training rows)
STRATA = ("label", "t", "township", "scale")
STRATA_ZH = {"label": "是否列入清单", "t": "特征年度", "township": "乡镇街道", "scale": "规模"}


def stratified(rows: pl.DataFrame, size: int | None, seed: int, strata: tuple[str, ...] = STRATA) -> np.ndarray:
    """Positions (ascending) of a proportional stratified sample of about ``size`` rows of
    ``rows``; all positions when ``size`` is None or ``rows`` has no more rows than that.

    Each stratum keeps round(n × size ÷ rows) of its n rows, chosen by a seeded random
    order (a missing township or scale is a stratum of its own).
    """
    n = rows.height
    if size is None or n <= size:
        return np.arange(n)
    order = np.random.default_rng(seed).random(n)
    keep = (
        rows.select(strata)
        .with_columns(pl.Series("_u", order))
        .select(pl.col("_u").rank("ordinal").over(strata)
                <= (pl.len().over(strata) * (size / n)).round())
        .to_series()
    )
    return np.flatnonzero(keep.to_numpy())


def describe(population: pl.DataFrame, chosen: np.ndarray, size: int | None, seed: int,
             strata: tuple[str, ...] = STRATA) -> dict:
    """What the run record says about a sample: sizes, listed rows before and after, the strata."""
    sampled = len(chosen) < population.height
    labels = population["label"].to_numpy()
    return {
        "sampled": sampled,
        "sample_rows_setting": size,
        "population_rows": population.height,
        "population_listed": int(labels.sum()),
        "rows": int(len(chosen)),
        "listed": int(labels[chosen].sum()),
        "strata": list(strata) if sampled else [],
        "seed": seed if sampled else None,
    }
