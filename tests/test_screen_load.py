"""Loading a run into DuckDB (screen._load, sql/views/): the inputs are released as soon as
firm_years and firm_panel hold what the later stages read, and a firm-year's land total does not
depend on how the engine's threads split the parcels (issue 15)."""
from __future__ import annotations

import duckdb
import polars as pl
import pytest

import screening
from screening import anomaly
from screening.engine import Engine
from screening.errors import AuditError
from screening.paths import sample_data_dir
from screening.screen import CHECK_ONLY_FIGURES, _land_years, screen

YEAR = 2022
INPUTS = ("in_enterprises", "in_stats", "in_tax", "in_land", "in_energy", "in_evaluations", "in_land_year",
          "in_land_incomplete", "in_computed_grades", "in_product_energy", "in_product_energy_rejected")
#: what rule 4 reads directly: registered until the rules have run
RULE_INPUTS = ["in_product_energy", "in_product_energy_rejected"]


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
        assert during and not any(v for k, v in during.items() if k not in RULE_INPUTS), during
        assert not any(_registered(s.engine.con, name) for name in INPUTS)
        assert s.engine.query("panel", "SELECT count(*) AS n FROM firm_panel", {})["n"][0] == s.enterprises
        assert s.audit.height == 0


@pytest.fixture(scope="module")
def sample_inputs():
    return screening.load_inputs(sample_data_dir())


def _copy(inputs):
    return screening.validate.Inputs(dict(inputs.tables), inputs.rejects, land_incomplete=inputs.land_incomplete,
                                     product_rejected=inputs.product_rejected)


DATA_TABLES = ("stats", "tax", "land", "energy", "evaluations")


def test_each_input_is_released_before_firm_years_is_built(sample_inputs, monkeypatch):
    """A run that does not keep its tables lets go of each input table as soon as its figures are
    taken: when DuckDB builds firm_years, the data tables are gone from Polars and none of them is
    registered in DuckDB (a province's inputs and firm_years are never all held at once)."""
    seen: dict[str, object] = {}
    execute = Engine.execute

    def spy(self, label, sql, params):
        if label == "views/10_firm_year.sql":
            seen["heights"] = {name: inputs.tables[name].height for name in DATA_TABLES}
            seen["registered"] = [name for name in INPUTS if _registered(self.con, name)]
        return execute(self, label, sql, params)

    inputs = _copy(sample_inputs)
    assert all(inputs.tables[name].height for name in DATA_TABLES)
    monkeypatch.setattr(Engine, "execute", spy)
    with screen(inputs=inputs, year=YEAR, keep_tables=False) as s:
        assert s.audit.height == 0
    assert seen["heights"] == dict.fromkeys(DATA_TABLES, 0)
    assert seen["registered"] == RULE_INPUTS


def test_the_check_figures_go_once_the_data_check_has_run(monkeypatch):
    """Revenue, value added, electricity, the energy of Y-2 and held_* are read only by the data
    check and the key energy users: firm_years holds them until those have run, not through the
    rules and the outputs."""
    seen: list[str] = []
    features = anomaly.features

    def spy(engine, *args):
        seen.extend(engine.query("columns", "SELECT * FROM firm_years LIMIT 0", {}).columns)
        return features(engine, *args)

    monkeypatch.setattr(anomaly, "features", spy)
    with screen(None, YEAR, keep_tables=False) as s:
        after = s.engine.query("columns", "SELECT * FROM firm_years LIMIT 0", {}).columns
        assert s.audit.height == 0 and s.anomalies.height
    assert set(CHECK_ONLY_FIGURES) <= set(seen)
    assert not set(CHECK_ONLY_FIGURES) & set(after)


def test_a_run_that_keeps_its_tables_leaves_them_whole(sample_inputs):
    inputs = _copy(sample_inputs)
    with screen(inputs=inputs, year=YEAR, keep_tables=True):
        pass
    assert {n: f.height for n, f in inputs.tables.items()} == {n: f.height for n, f in sample_inputs.tables.items()}


def _panel_by_code(inputs) -> tuple[pl.DataFrame, pl.DataFrame]:
    with screen(inputs=inputs, year=YEAR) as s:
        years = s.engine.query("firm_years", "SELECT * EXCLUDE (firm_id) FROM firm_years ORDER BY uscc", {})
        results = s.engine.query("results", "SELECT p.uscc, r.* EXCLUDE (firm_id) FROM results r "
                                 "JOIN firm_panel p USING (firm_id) ORDER BY p.uscc, r.rule_id", {})
    return years, results


def test_firm_years_do_not_depend_on_how_the_registry_is_numbered(sample_inputs):
    """Validation numbers the registry 0, 1, 2, …; inputs numbered otherwise (stored, corrected or
    made by hand: here with gaps, the registry's rows in the reverse order) give the same firm_years
    and results, and a row naming no registered firm is left out, as a join with the registry would.
    (The numbers keep their order: rule 1 adds its industry's figures in firm_id order.)"""
    n = sample_inputs.tables["enterprises"].height
    renumber = (pl.col("firm_id") * 2 + 5).cast(pl.UInt32)
    tables = {name: frame.with_columns(renumber) for name, frame in sample_inputs.tables.items()}
    tables["enterprises"] = tables["enterprises"].reverse()
    stray = tables["stats"].head(1).with_columns(pl.lit(2, pl.UInt32).alias("firm_id"))  # no firm has id 2
    tables["stats"] = pl.concat([stray, tables["stats"]])
    other = screening.validate.Inputs(tables, sample_inputs.rejects,
                                      land_incomplete=sample_inputs.land_incomplete.with_columns(renumber),
                                      product_rejected=sample_inputs.product_rejected.with_columns(renumber))
    want_years, want_results = _panel_by_code(_copy(sample_inputs))
    got_years, got_results = _panel_by_code(other)
    assert want_years.height == n and want_results.height
    assert got_years.equals(want_years, null_equal=True)
    assert got_results.equals(want_results, null_equal=True)


def test_a_firm_with_two_rows_in_one_year_is_refused(sample_inputs):
    """Validation keeps one row per firm and year; should two reach a run, it stops with the audit's
    error rather than keep one of them silently."""
    inputs = _copy(sample_inputs)
    tax = inputs.tables["tax"]
    inputs.tables["tax"] = pl.concat([tax, tax.filter(pl.col("year") == YEAR - 1).head(1)])
    with pytest.raises(AuditError, match="tax"):
        screen(inputs=inputs, year=YEAR)


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
