"""预警 at province scale (issue 15): the stratified training sample, its record, the reasons
shortcut and the memory of a run.  The timings themselves are benchmarks/bench_warn.py's."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

import screening
from cli_helpers import cli
from screening.errors import InputError
from screening.paths import default_ruleset, sample_data_dir
from screening.validate import FIRM_ID, Inputs
from screening.warn import early_warning
from screening.warn.config import WarnConfig
from screening.warn.factors import NONE_FOUND, factors
from screening.warn.labels import up_to
from screening.warn.model import group_contributions, risk
from screening.warn.pipeline import FACTS, _context, _matrix
from screening.warn.report import backtest_markdown
from screening.warn.sample import STRATA, stratified

YEAR = 2022
SAMPLE = 6000  # the sample's 2017–2019 feature years hold about 16,000 training rows


@pytest.fixture(scope="module")
def inputs() -> Inputs:
    return screening.load_inputs(sample_data_dir())


@pytest.fixture(scope="module")
def sampled(inputs):
    return early_warning(inputs=inputs, year=YEAR, sample_rows=SAMPLE)


def _strata_frame(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame({
        "label": (rng.random(n) < 0.04).astype(np.int8),
        "t": rng.integers(2017, 2021, n).astype(np.int32),
        "township": rng.choice(np.array(["乐成", "柳市", "北白象", None], dtype=object), n),
        "scale": rng.choice(np.array(["规上", "规下"], dtype=object), n),
    })


@pytest.mark.unit
def test_the_sample_keeps_every_strata_share_and_follows_the_seed():
    rows = _strata_frame(20_000, 1)
    chosen = stratified(rows, 5_000, seed=7)
    assert np.all(np.diff(chosen) > 0)  # positions, in the rows' own order
    counts = rows.group_by(STRATA).len()
    kept = rows[chosen].group_by(STRATA).len().rename({"len": "kept"})
    both = counts.join(kept, on=list(STRATA), how="left", nulls_equal=True).with_columns(pl.col("kept").fill_null(0))
    expected = (both["len"] * 5_000 / 20_000).round().cast(pl.UInt32)
    assert both["kept"].cast(pl.UInt32).equals(expected)  # each stratum: round(n × size ÷ rows)
    assert abs(len(chosen) - 5_000) <= counts.height // 2
    assert rows[chosen]["label"].mean() == pytest.approx(rows["label"].mean(), abs=0.002)
    assert np.array_equal(chosen, stratified(rows, 5_000, seed=7))  # the same seed, the same rows
    assert not np.array_equal(chosen, stratified(rows, 5_000, seed=8))
    assert np.array_equal(stratified(rows, 20_000, seed=7), np.arange(20_000))  # not more rows than the size: all
    assert np.array_equal(stratified(rows, None, seed=7), np.arange(20_000))


@pytest.mark.unit
def test_cutting_nothing_copies_nothing(inputs):
    """A province's tables are not copied when the warning year's cut removes no row."""
    latest = int(inputs.tables["stats"]["year"].max())
    kept = up_to(inputs, latest)
    assert all(kept.tables[name] is frame for name, frame in inputs.tables.items())
    assert up_to(inputs, latest - 1).tables["stats"]["year"].max() == latest - 1


@pytest.mark.e2e
def test_a_sampled_run_records_its_sample_and_still_scores_everyone(sampled, inputs):
    bt, info = sampled.backtest, sampled.model.info
    for record, population in ((bt["train_sample"], sampled.training.filter(pl.col("t") < YEAR - 2)),
                               (info["trained_on"]["sample"], sampled.training)):
        assert record["sampled"] and record["strata"] == list(STRATA) and record["seed"] == info["seed"]
        assert record["population_rows"] == population.height > SAMPLE
        assert abs(record["rows"] - SAMPLE) <= 0.02 * SAMPLE
        assert record["sample_rows_setting"] == SAMPLE
        # proportional: the sample's share of listed rows is the population's
        assert record["listed"] / record["rows"] == pytest.approx(population["label"].mean(), abs=0.003)
    assert bt["rows"]["train"] == bt["train_sample"]["rows"]
    assert info["trained_on"]["rows"] == info["trained_on"]["sample"]["rows"]
    assert info["config"]["training"]["sample_rows"] == SAMPLE
    # every test row is scored in the backtest, every firm in scope in the warning list
    assert sampled.predictions.height == bt["rows"]["test"]
    ctx = _context(inputs, screening.load_ruleset(default_ruleset()), WarnConfig(**info["config"]), YEAR)
    assert sampled.warnings.height == ctx.rows(YEAR - 1).height
    assert "分层、按比例抽样" in backtest_markdown(bt)


@pytest.mark.e2e
def test_reasons_skip_only_firms_whose_risk_cannot_carry_one(sampled, inputs):
    """The warning list re-scores only firms with risk ≥ min_contribution: the reasons are those
    of re-scoring every firm."""
    model, cfg = sampled.model, WarnConfig(**sampled.model.info["config"])
    rows = _context(inputs, screening.load_ruleset(default_ruleset()), cfg, YEAR).rows(YEAR - 1)
    x = _matrix(rows, model.features)
    p = risk(model.estimator, x)
    assert (p < cfg.factors.min_contribution).sum() > 1000  # the shortcut is taken for most firms
    every = group_contributions(model.estimator, x, p, model.reference, model.groups)
    texts, keys = factors(rows.select(FACTS).iter_rows(named=True), every, YEAR - 1, cfg)
    expected = rows.select("uscc", pl.Series("factors", texts), pl.Series("factor_groups", keys))
    got = sampled.warnings.select("uscc", "factors", "factor_groups")
    assert got.sort("uscc").equals(expected.sort("uscc"))
    assert (got["factors"] == NONE_FOUND).sum() > 0 and (got["factors"] != NONE_FOUND).sum() > 100


@pytest.mark.unit
def test_a_bad_sample_size_is_one_clear_error(inputs):
    with pytest.raises(InputError, match="抽样行数须为正整数"):
        early_warning(inputs=inputs, year=YEAR, sample_rows=-5)


@pytest.mark.e2e
def test_the_command_takes_a_sample_size_and_refuses_it_with_a_saved_model(sampled, tmp_path):
    proc = cli("warn", "--sample-rows", "-1", "--out", tmp_path / "o", cwd=tmp_path)
    assert proc.returncode == 2 and "抽样行数" in proc.stderr and "Traceback" not in proc.stderr
    model_file, _ = sampled.model.save(tmp_path / "m")
    proc = cli("warn", "--model", model_file, "--sample-rows", "5000", "--out", tmp_path / "o", cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "抽样行数" in proc.stderr
    assert json.loads((tmp_path / "m" / "model.json").read_text(encoding="utf-8"))["trained_on"]["sample"]["sampled"]


@pytest.mark.unit
def test_labels_are_a_list_only_screening_of_the_two_years_each_list_reads(inputs, monkeypatch):
    """A label's screening gets the two data years its list reads and the list's rules alone (no
    rule family outside the list), and lists exactly the firms the full screening lists."""
    import importlib

    labels = importlib.import_module("screening.warn.labels")
    rs = screening.load_ruleset(default_ruleset())
    assert rs.families  # the sample rule set has families (重点用能单位): they must not be screened for a label
    seen = []
    real = labels.screen

    def spy(**kwargs):
        seen.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(labels, "screen", spy)
    for list_year in (2019, 2022):
        got = labels.listed(inputs, rs, list_year)
        call = seen[-1]
        assert call["ruleset"].families == {} and call["ruleset"].enabled == rs.enabled and rs.families
        assert call["anomalies"] is False
        for name, frame in call["inputs"].tables.items():
            if "year" in frame.columns and frame.height:
                assert set(frame["year"].unique().to_list()) <= {list_year - 2, list_year - 1}, name
        with screening.screen(year=list_year, inputs=inputs) as full:  # the real run, everything on
            expected = set(full.list["uscc"].to_list())
        registry = inputs.tables["enterprises"].select(FIRM_ID, "uscc")
        on_list = set(got.join(registry, on=FIRM_ID).filter(pl.col("listed") == 1)["uscc"].to_list())
        assert on_list == expected and len(expected) > 0 and got.height == registry.height


@pytest.mark.unit
def test_the_inputs_go_before_any_feature_row_and_the_years_are_not_copied_twice(monkeypatch):
    """Memory at province scale: the validated tables are released once the firm-year panel is
    built (before the rows of any year, the year scored included), and each year's training rows
    are made one block while they are the only copy, so that joining the years copies nothing
    (a year's rows come from the engine in many pieces; gathered into one block at the end,
    a province's training rows were held twice)."""
    import importlib

    pipeline = importlib.import_module("screening.warn.pipeline")
    read = {}
    real_validate, real_features_at = pipeline.validate, pipeline.features_at

    def validate(*args, **kwargs):
        read["inputs"] = real_validate(*args, **kwargs)
        return read["inputs"]

    stats_rows_at_features = []

    def features_at(*args, **kwargs):
        stats_rows_at_features.append(read["inputs"].tables["stats"].height)
        rows = real_features_at(*args, **kwargs)
        half = rows.height // 2  # as a province's year comes: in pieces
        return pl.concat([rows.slice(0, half), rows.slice(half)], rechunk=False)

    monkeypatch.setattr(pipeline, "validate", validate)
    monkeypatch.setattr(pipeline, "features_at", features_at)
    result = early_warning(sample_data_dir(), YEAR)
    assert stats_rows_at_features and set(stats_rows_at_features) == {0}
    years = result.training["t"].unique().len()
    assert result.training.n_chunks("all") == [years] * result.training.width  # one block per year, not re-gathered
