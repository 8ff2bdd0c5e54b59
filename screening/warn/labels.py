"""Labels: was the firm on the list of year t+2?  Answered by the real screening, never redone here."""
from __future__ import annotations

import copy
from dataclasses import replace

import polars as pl

from ..ruleset import RuleSet
from ..screen import grade_method, screen
from ..validate import FIRM_ID, Inputs


def up_to(inputs: Inputs, last_year: int) -> Inputs:
    """The inputs as they stood at the end of ``last_year``: every later row removed
    (a new object; the caller's tables are not touched)."""
    return _years(inputs, None, last_year)


def _years(inputs: Inputs, first_year: int | None, last_year: int) -> Inputs:
    """The inputs of the years ``first_year``..``last_year`` (None: from the first) as a new object."""
    tables = {name: _between(frame, first_year, last_year) for name, frame in inputs.tables.items()}
    incomplete = _between(inputs.land_incomplete, first_year, last_year)
    rejected = _between(inputs.product_rejected, first_year, last_year)
    return replace(inputs, tables=tables, land_incomplete=incomplete, product_rejected=rejected)


def _between(frame: pl.DataFrame, first_year: int | None, last_year: int) -> pl.DataFrame:
    """The rows of ``first_year``..``last_year``; the frame itself (not a copy of a province's
    rows) when none is outside."""
    if "year" not in frame.columns or not frame.height:
        return frame
    low, high = frame["year"].min(), frame["year"].max()
    if (high is None or high <= last_year) and (first_year is None or low is None or low >= first_year):
        return frame
    return frame.filter(pl.col("year").is_between(first_year if first_year is not None else low, last_year))


def list_rules(ruleset: RuleSet) -> RuleSet:
    """The rule set as the labels screen with it: the list's rules alone.  The rule families
    outside the list (重点用能单位, projects) never change the list, so a label's screening
    does not judge them (a shallow copy; the caller's rule set is not touched)."""
    rules = copy.copy(ruleset)
    rules.families = {}
    return rules


def listed(inputs: Inputs, ruleset: RuleSet, list_year: int) -> pl.DataFrame:
    """(firm_id, listed) for every registered firm, from ``screen(inputs=..., year=list_year)``.

    A list-only screening: the list's rules (:func:`list_rules`), no data check
    (``anomalies=False``), and, unless rule 2 computes grades (a method may read earlier
    years), only the two data years the rules read are handed over, so the screening does not
    scan the whole history to find them.  The list is the same as ``screening run``'s.
    """
    data = inputs if grade_method(ruleset) is not None else _years(inputs, list_year - 2, list_year - 1)
    with screen(year=list_year, ruleset=list_rules(ruleset), inputs=data, anomalies=False) as s:
        codes = s.list["uscc"]
    registry = inputs.tables["enterprises"]
    return registry.select(FIRM_ID, pl.col("uscc").is_in(codes.implode()).cast(pl.Int8).alias("listed"))
