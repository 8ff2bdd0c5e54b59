"""Labels: was the firm on the list of year t+2?  Answered by the real screening, never redone here."""
from __future__ import annotations

from dataclasses import replace

import polars as pl

from ..ruleset import RuleSet
from ..screen import screen
from ..validate import FIRM_ID, Inputs


def up_to(inputs: Inputs, last_year: int) -> Inputs:
    """The inputs as they stood at the end of ``last_year``: every later row removed
    (a new object; the caller's tables are not touched)."""
    tables = {name: _up_to(frame, last_year) for name, frame in inputs.tables.items()}
    incomplete = _up_to(inputs.land_incomplete, last_year)
    return replace(inputs, tables=tables, land_incomplete=incomplete)


def _up_to(frame: pl.DataFrame, last_year: int) -> pl.DataFrame:
    """The rows up to ``last_year``; the frame itself (not a copy of a province's rows) when none is later."""
    if "year" not in frame.columns or not frame.height or (frame["year"].max() or last_year) <= last_year:
        return frame
    return frame.filter(pl.col("year") <= last_year)


def listed(inputs: Inputs, ruleset: RuleSet, list_year: int) -> pl.DataFrame:
    """(firm_id, listed) for every registered firm, from ``screen(inputs=..., year=list_year)``."""
    with screen(year=list_year, ruleset=ruleset, inputs=inputs, anomalies=False) as s:  # labels only
        codes = s.list["uscc"]
    registry = inputs.tables["enterprises"]
    return registry.select(FIRM_ID, pl.col("uscc").is_in(codes.implode()).cast(pl.Int8).alias("listed"))

