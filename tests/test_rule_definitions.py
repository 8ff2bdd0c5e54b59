"""One definition of each rule fact: early warning asks the rules' own questions (the macros of
sql/views/00_macros.sql), so its product feature and its population agree with rules 1–4."""
from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from screening.paths import default_ruleset
from screening.ruleset import load_ruleset
from screening.screen import screen
from screening.validate import FIRM_ID
from screening.warn.features import _product_ratios, firms, in_rules_scope, scope_for

pytestmark = pytest.mark.unit

D = dt.date


def limits(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"product": pl.String, "product_name": pl.String, "standard": pl.String,
                                      "unit": pl.String, "limit": pl.Float64, "effective_from": pl.Date,
                                      "effective_to": pl.Date, "verified": pl.Boolean}, orient="row")


def energy(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={FIRM_ID: pl.UInt32, "year": pl.Int32, "product": pl.String,
                                      "unit_consumption": pl.Float64}, orient="row")


def ratios(product_energy: pl.DataFrame, table: pl.DataFrame) -> dict[tuple[int, int], float]:
    out = _product_ratios(product_energy, table)
    return {(f, y): r for f, y, r in out.select(FIRM_ID, "year", "product_ratio").iter_rows()}


def test_negative_limits_count_as_rule_4_does():
    """A converter's limit is negative (net energy recovered): −10 against −12 exceeds it (rule 4
    hits), so the warning's ratio is above 1; a copy that dropped limits ≤ 0 saw nothing."""
    table = limits([("bof", "转炉", "GB", "kgce/t", -12.0, D(2014, 1, 1), None, False)])
    got = ratios(energy([(1, 2021, "bof", -10.0), (2, 2021, "bof", -14.0)]), table)
    assert got[(1, 2021)] == pytest.approx(1 + 2 / 12)
    assert got[(2, 2021)] == pytest.approx(1 - 2 / 12)


def test_the_limit_is_the_one_rule_4_applies_in_each_year():
    table = limits([
        ("glass", "玻璃", "GB", "t", 13.5, D(2020, 11, 1), None, True),
        ("glass", "玻璃", "DB33", "t", 12.0, D(2020, 1, 1), None, True),      # stricter: applies
        ("dec31", "年末", "T", "t", 10.0, D(2021, 12, 31), None, True),       # in force on 31 December 2021
        ("ends", "到期", "T", "t", 10.0, D(2010, 1, 1), D(2020, 12, 31), True),  # last day 2020-12-31
    ])
    got = ratios(energy([(1, 2021, "glass", 13.0), (2, 2021, "dec31", 11.0), (3, 2020, "dec31", 11.0),
                         (4, 2020, "ends", 5.0), (5, 2021, "ends", 5.0)]), table)
    assert got[(1, 2021)] == pytest.approx(13 / 12)
    assert got[(2, 2021)] == pytest.approx(1.1)
    assert (3, 2020) not in got  # not yet in force on 31 December 2020
    assert got[(4, 2020)] == pytest.approx(0.5)
    assert (5, 2021) not in got


def test_the_warning_population_is_the_rules_scope():
    """On the sample, the firms early warning treats as screened by rules 1–3 for the list of
    2022 are exactly those the screening's firm_panel has in scope (with or without stats)."""
    rs = load_ruleset(default_ruleset())
    with screen(None, 2022, rs, anomalies=False) as s:
        panel = s.engine.query("panel", "SELECT firm_id, scope_code FROM firm_panel", {})
        registry = firms(s.inputs)
    screened = in_rules_scope(registry, 2022, scope_for(rs, 5))
    rules = set(panel.filter(pl.col("scope_code").is_in(["in_scope", "no_stats"]))[FIRM_ID].to_list())
    warn = set(screened.filter(pl.col("screened"))[FIRM_ID].to_list())
    assert warn == rules
    assert 0 < len(rules) < registry.height  # both kinds occur in the sample


def test_the_warning_population_at_the_scope_edges():
    """The list of 2022: 大类 13–43, founded before 2020-01-01 or unknown.  An unknown industry
    cannot be listed by rules 1–3 (insufficient_data), so it is not screened for the warning."""
    rs = load_ruleset(default_ruleset())
    registry = pl.DataFrame(
        [(1, 13, None), (2, 43, D(2019, 12, 31)), (3, 12, None), (4, 44, None), (5, None, None),
         (6, 30, D(2020, 1, 1)), (7, 30, D(1999, 5, 1))],
        schema={FIRM_ID: pl.UInt32, "division": pl.Int32, "established": pl.Date}, orient="row")
    got = dict(in_rules_scope(registry, 2022, scope_for(rs, 5)).iter_rows())
    assert got == {1: True, 2: True, 3: False, 4: False, 5: False, 6: False, 7: True}
