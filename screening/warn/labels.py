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
    tables = {name: frame.filter(pl.col("year") <= last_year) if "year" in frame.columns else frame
              for name, frame in inputs.tables.items()}
    incomplete = inputs.land_incomplete.filter(pl.col("year") <= last_year)
    return replace(inputs, tables=tables, land_incomplete=incomplete)


def listed(inputs: Inputs, ruleset: RuleSet, list_year: int) -> pl.DataFrame:
    """(firm_id, listed) for every registered firm, from ``screen(inputs=..., year=list_year)``."""
    with screen(year=list_year, ruleset=ruleset, inputs=inputs, anomalies=False) as s:  # labels only
        codes = s.list["uscc"]
    registry = inputs.tables["enterprises"]
    return registry.select(FIRM_ID, pl.col("uscc").is_in(codes.implode()).cast(pl.Int8).alias("listed"))

