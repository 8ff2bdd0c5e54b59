"""Loading a run into DuckDB (screen._load, sql/views/): the inputs are released as soon as
firm_years and firm_panel hold what the later stages read, and a firm-year's land total does not
depend on how the engine's threads split the parcels (issue 15)."""
from __future__ import annotations

import duckdb
import polars as pl
import pytest

from screening import anomaly
from screening.screen import _land_years, screen

YEAR = 2022
INPUTS = ("in_enterprises", "in_stats", "in_tax", "in_land", "in_energy", "in_evaluations", "in_land_year",
          "in_land_incomplete", "in_computed_grades", "in_product_energy")


def _registered(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    try:
        con.execute(f"SELECT 1 FROM {name} LIMIT 0")
    except duckdb.CatalogException:
        return False
    return True


def test_inputs_are_released_before_the_data_check_and_after_the_rules(monkeypatch):
    """The data check and the key energy users read firm_years, not the inputs, so a province's
    inputs are gone before those stages add their own memory; none is left after the run."""
    during: dict[str, bool] = {}
    features = anomaly.features

    def spy(engine, *args):
        during.update({name: _registered(engine.con, name) for name in INPUTS})
        return features(engine, *args)

    monkeypatch.setattr(anomaly, "features", spy)
    with screen(None, YEAR, keep_tables=False) as s:
        assert during and not any(v for k, v in during.items() if k != "in_product_energy"), during
        assert not any(_registered(s.engine.con, name) for name in INPUTS)
        assert s.engine.query("panel", "SELECT count(*) AS n FROM firm_panel", {})["n"][0] == s.enterprises
        assert s.audit.height == 0


def test_land_is_summed_in_row_order():
    """0.88 + 0.49 + 2.18 is 3.5500000000000003 in this order and 3.55 in some others: the total
    is the one of the table's row order, whatever the engine's threads would do."""
    land = pl.DataFrame({
        "firm_id": [7, 7, 7, 7, 3],
        "year": [2021, 2021, 2021, 2020, 2021],
        "area_mu": [0.88, 0.49, 2.18, 1.0, 5.0],
        "tenure": ["自有", "租赁", "租赁", "租赁", "租赁"],
    }, schema_overrides={"firm_id": pl.UInt32, "year": pl.Int32})
    got = _land_years(land, [2020, 2021]).sort("firm_id", "year")
    assert got.rows() == [(3, 2021, 5.0, 1, True), (7, 2020, 1.0, 1, True), (7, 2021, (0.88 + 0.49) + 2.18, 3, False)]
    assert got.filter(pl.col("firm_id") == 7, pl.col("year") == 2021)["land_mu"][0] == 3.5500000000000003
    swapped = _land_years(land[[1, 2, 0, 3, 4]], [2020, 2021]).filter(pl.col("firm_id") == 7, pl.col("year") == 2021)
    assert swapped["land_mu"][0] == (0.49 + 2.18) + 0.88 == 3.55


def test_land_years_as_sql_would_aggregate_them():
    """Unknown areas and tenures are skipped as SQL's sum and bool_and skip NULL; a year outside
    the run's two is left out; no parcels, no row."""
    land = pl.DataFrame({
        "firm_id": [1, 1, 2, 2, 3, 4],
        "year": [2021, 2021, 2021, 2021, 2019, 2020],
        "area_mu": [None, 2.0, None, None, 9.0, 4.0],
        "tenure": ["租赁", None, None, None, "自有", "自有"],
    }, schema_overrides={"firm_id": pl.UInt32, "year": pl.Int32, "area_mu": pl.Float64, "tenure": pl.String})
    got = _land_years(land, [2020, 2021]).sort("firm_id")
    con = duckdb.connect()
    con.register("land", land.to_arrow())
    want = con.sql("""SELECT firm_id, year, sum(area_mu) AS land_mu, count(*) AS parcels,
                      bool_and(tenure = '租赁') AS all_leased FROM land WHERE year IN (2020, 2021)
                      GROUP BY ALL ORDER BY firm_id""").pl()
    assert got.rows() == want.rows() == [(1, 2021, 2.0, 2, True), (2, 2021, None, 2, None), (4, 2020, 4.0, 1, False)]
    assert got.schema == pl.Schema({"firm_id": pl.UInt32, "year": pl.Int32, "land_mu": pl.Float64,
                                    "parcels": pl.Int64, "all_leased": pl.Boolean})
    assert _land_years(land.clear(), [2020, 2021]).schema == got.schema
