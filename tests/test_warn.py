"""预警 (screening warn): time split, determinism, schema check, risk range, results untouched,
the backtest against the naive baseline, the command, and the service route.

One training run through the command and one in the process (they must agree to the last
digit); everything else reuses them or the cheap scoring path with the saved model.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import joblib
import polars as pl
import pytest
import yaml
from fastapi.testclient import TestClient
from polars.testing import assert_frame_equal

import screening
from api.auth import add_user
from api.config import Settings
from api.main import create_app
from api_helpers import OTHER, TOWNSHIP, bearer
from cli_helpers import cli
from screening.errors import InputError
from screening.paths import default_ruleset, sample_data_dir
from screening.store import connect
from screening.validate import FIRM_ID, Inputs
from screening.warn import ModelSchemaError, early_warning, load_model, training_rows
from screening.warn.artifact import training_hash
from screening.warn.config import load_config
from screening.errors import ScreeningError
from screening.warn.factors import _energy, _tax_level, _tax_trend
from screening.warn.features import (_by_group, _share, available_features, features_at, firm_years, firms,
                                     scope_for, sources_present)
from screening.warn.labels import listed, up_to

YEAR = 2022  # data 2017–2021: risk of the 2023 list


def _table_hashes(inputs: Inputs) -> dict[str, str]:
    return {name: hashlib.sha256(frame.write_ipc(None).getvalue()).hexdigest() for name, frame in inputs.tables.items()}


def _results(inputs: Inputs) -> pl.DataFrame:
    with screening.screen(year=YEAR, inputs=inputs) as s:
        return s.results.drop("run_id").sort("uscc", "rule_id")


@pytest.fixture(scope="module")
def inputs() -> Inputs:
    return screening.load_inputs(sample_data_dir())


@pytest.fixture(scope="module")
def ruleset():
    return screening.load_ruleset(default_ruleset())


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory) -> Path:
    """``screening warn`` on the sample, stored in a fresh database."""
    root = tmp_path_factory.mktemp("warn")
    proc = cli("warn", "--out", root / "out", "--db", root / "w.duckdb", cwd=root, timeout=900)
    assert proc.returncode == 0, proc.stderr
    (root / "stdout.txt").write_text(proc.stdout, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def trained(inputs):
    """The same training in this process, with the rule results and input tables around it."""
    before = (_results(inputs), _table_hashes(inputs))
    result = early_warning(inputs=inputs, year=YEAR)
    after = (_results(inputs), _table_hashes(inputs))
    return result, before, after


# ---------------------------------------------------------------- time split (no leakage)

def _perturb_after(inputs: Inputs, year: int) -> Inputs:
    """Every value of every year after ``year`` changed, some rows dropped, parcels rejected."""
    late = pl.col("year") > year

    def later(col: str, value: pl.Expr) -> pl.Expr:
        return pl.when(late).then(value).otherwise(pl.col(col)).alias(col)

    c = pl.col
    flipped_scale = pl.when(c("scale") == "规上").then(pl.lit("规下")).otherwise(pl.lit("规上"))
    flipped_grade = pl.when(c("grade").is_in(["A", "B"])).then(pl.lit("D")).otherwise(pl.lit("A"))
    changes = {
        "stats": [later("revenue", c("revenue") * 3 + 1), later("value_added", c("value_added") * 0.1),
                  later("scale", flipped_scale)],
        "tax": [later("tax_paid", c("tax_paid") * 5 + 1)],
        "land": [later("area_mu", c("area_mu") * 0.3)],
        "energy": [later("energy_tce", c("energy_tce") * 7), later("electricity", c("electricity") * 0.2)],
        "evaluations": [later("grade", flipped_grade)],
        "product_energy": [later("unit_consumption", c("unit_consumption") * 2)],
    }
    tables = dict(inputs.tables)
    for name, exprs in changes.items():
        tables[name] = tables[name].with_columns(exprs)
    tables["tax"] = tables["tax"].filter(~(late & (pl.col(FIRM_ID) % 10 == 0)))  # later rows missing too
    extra = tables["land"].filter(late & (pl.col(FIRM_ID) % 7 == 0)).select(FIRM_ID, "year").unique()
    incomplete = pl.concat([inputs.land_incomplete, extra]).unique().sort(FIRM_ID, "year")
    return replace(inputs, tables=tables, land_incomplete=incomplete)


@pytest.mark.unit
def test_features_for_year_t_ignore_every_later_year(inputs, ruleset):
    t = 2019
    scope = scope_for(ruleset, load_config().features.min_peers)
    names = available_features(sources_present(inputs))

    def rows(data: Inputs) -> pl.DataFrame:
        return features_at(firm_years(data, ruleset.energy_limits), firms(data), t, scope, names)

    original, perturbed = rows(inputs), rows(_perturb_after(inputs, t))
    assert perturbed.equals(original)
    x = [r.select(names).to_numpy() for r in (original, perturbed)]
    ts, ys = original["t"].to_numpy(), original[FIRM_ID].to_numpy()
    assert training_hash(names, ts, x[0], ys) == training_hash(names, ts, x[1], ys)  # byte-identical values
    # the perturbation is real: the same features one year later do change
    later = [features_at(firm_years(d, ruleset.energy_limits), firms(d), t + 1, scope, names)
             for d in (inputs, _perturb_after(inputs, t))]
    assert not later[0].equals(later[1])


@pytest.mark.unit
def test_labels_for_t_read_only_years_up_to_t_plus_1(inputs, ruleset):
    t = 2018
    assert listed(_perturb_after(inputs, t + 1), ruleset, t + 2).equals(listed(inputs, ruleset, t + 2))


@pytest.mark.unit
def test_training_rows_for_year_y_ignore_data_of_y_and_later(inputs, ruleset):
    y = 2021  # data 2017–2021 holds one year (2021) the 2021 warning must not see
    rows = training_rows(inputs, ruleset, y)
    assert sorted(rows["t"].unique().to_list()) == [2017, 2018, 2019]  # t ≤ Y-2: list t+2 ≤ Y
    assert rows.equals(training_rows(_perturb_after(inputs, y - 1), ruleset, y))
    assert rows.equals(training_rows(up_to(inputs, y - 1), ruleset, y))
    assert rows["label"].null_count() == 0 and 0 < rows["label"].mean() < 0.2


@pytest.mark.unit
def test_too_few_years_is_one_clear_error(inputs):
    with pytest.raises(InputError, match="数据年份不足：2019 年度预警需要 2016—2018 年"):
        early_warning(inputs=up_to(inputs, 2018), year=2019)  # two years: 2017–2018


@pytest.mark.unit
def test_scored_firms_are_those_the_rules_could_list(inputs, ruleset):
    t = 2019  # the list of 2021 screens firms founded before 2019 (the two-year window)
    scope = scope_for(ruleset, load_config().features.min_peers)
    panel, registry = firm_years(inputs, ruleset.energy_limits), firms(inputs)
    rows = features_at(panel, registry, t, scope, available_features(sources_present(inputs)))
    active = panel.filter((pl.col("year") == t) & pl.col("active")).join(registry, on=FIRM_ID)
    rule_4_only = pl.col("product_ratio").is_null()
    new = active.filter(pl.col("established_year") >= t)
    assert new.filter(rule_4_only).height > 0  # the sample has firms the window leaves out
    assert not rows.filter(rule_4_only & (pl.col("established_year") >= t)).height
    assert rows.filter(pl.col("established_year") == t - 1).height > 0  # founded just in time: scored
    assert not rows.filter(rule_4_only & ~pl.col("division").is_between(13, 43)).height
    assert rows[FIRM_ID].is_in(active[FIRM_ID].implode()).all()  # only firms with data in year t
    on_list = listed(inputs, ruleset, t + 2).filter(pl.col("listed") == 1)
    assert on_list.height and on_list[FIRM_ID].is_in(rows[FIRM_ID].implode()).all()  # no listed firm left out


# ---------------------------------------------------------------- the command and its files

@pytest.mark.e2e
def test_command_writes_warnings_backtest_and_model(cli_run):
    out = cli_run / "out"
    for name in ("warnings.csv", "warnings.parquet", "backtest.json", "backtest.md", "model.joblib", "model.json"):
        assert (out / name).is_file(), name
    assert (out / "warnings.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    csv = pl.read_csv(out / "warnings.csv", schema_overrides={"industry_code": pl.String})
    assert {"uscc", "risk", "factors", "name", "township", "industry_code", "rank"} <= set(csv.columns)
    w = pl.read_parquet(out / "warnings.parquet")
    assert w.height == csv.height > 5000 and w["uscc"].n_unique() == w.height
    assert w["risk"].is_between(0.0, 1.0).all()
    assert w["rank"].to_list() == list(range(1, w.height + 1))
    assert w["risk"].to_list() == sorted(w["risk"].to_list(), reverse=True)
    assert (w["year"] == YEAR).all() and (w["target_list_year"] == YEAR + 1).all()
    top = w.head(50)
    assert top["factors"].str.contains("亩均税收").sum() >= 25
    assert top["factors"].str.contains(r"\d").all()
    info = json.loads((out / "model.json").read_text(encoding="utf-8"))
    assert len(info["trained_on"]["training_data_sha256"]) == 64
    assert info["trained_on"]["feature_years"] == [2017, 2018, 2019, 2020]
    assert {"screening", "scikit-learn"} <= set(info["software"])
    assert info["features"] == load_model(out / "model.joblib").features
    stdout = (cli_run / "stdout.txt").read_text(encoding="utf-8")
    assert "仅供参考" in stdout and "朴素基线" in stdout


@pytest.mark.e2e
def test_model_beats_the_naive_baseline_on_the_backtest(cli_run):
    bt = json.loads((cli_run / "out" / "backtest.json").read_text(encoding="utf-8"))
    split = (bt["train_feature_years"], bt["test_feature_year"], bt["test_list_year"])
    assert split == ([2017, 2018, 2019], 2020, 2022)
    model, base = bt["candidates"][bt["chosen"]], bt["baseline"]
    report = (f"model {bt['chosen']}: AUC {model['auc']}, P@50 {model['precision_at']['50']}, "
              f"P@150 {model['precision_at']['150']}; baseline: AUC {base['auc']}, P@50 {base['precision_at']['50']}, "
              f"P@150 {base['precision_at']['150']}")
    print(report)
    assert model["auc"] > base["auc"] + 0.02, report
    assert model["precision_at"]["50"] > base["precision_at"]["50"], report
    assert model["precision_at"]["150"] > base["precision_at"]["150"], report
    assert model["brier"] < bt["brier_constant"], report  # better calibrated than the base rate alone
    assert sum(b["firms"] for b in model["reliability"]) == bt["rows"]["test"]
    assert bt["improvement_over_baseline"]["auc"] == pytest.approx(model["auc"] - base["auc"], abs=1e-4)
    assert bt["selection_reason"] and bt["chosen"] in ("logistic", "gradient_boosting")


@pytest.mark.e2e
def test_same_seed_same_risk_in_another_process(cli_run, trained):
    result, _, _ = trained
    saved = pl.read_parquet(cli_run / "out" / "warnings.parquet")
    assert isinstance(result.warnings, pl.DataFrame) and result.warnings.equals(saved)
    info = json.loads((cli_run / "out" / "model.json").read_text(encoding="utf-8"))
    assert result.model.info["trained_on"]["training_data_sha256"] == info["trained_on"]["training_data_sha256"]
    assert result.backtest == json.loads((cli_run / "out" / "backtest.json").read_text(encoding="utf-8"))
    assert result.training is not None and result.training["t"].max() == YEAR - 2
    assert result.predictions.height == result.backtest["rows"]["test"]
    assert result.predictions["label"].sum() == result.backtest["rows"]["test_listed"]


@pytest.mark.e2e
def test_warning_never_alters_rule_results_or_inputs(trained, cli_run):
    _, (results_before, tables_before), (results_after, tables_after) = trained
    # statuses, values and reasons identical; group averages only to DuckDB's parallel-sum rounding
    assert_frame_equal(results_after, results_before, rel_tol=1e-12, abs_tol=0.0)
    assert results_after["status"].equals(results_before["status"])
    assert tables_after == tables_before
    con = connect(cli_run / "w.duckdb")
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    finally:
        con.close()
    assert tables == {"warn_runs", "warn_results"}  # no run, result or status table is written


@pytest.mark.e2e
def test_saved_model_scores_new_data_the_same(cli_run, inputs):
    again = screening.early_warning(inputs=inputs, year=YEAR, model=cli_run / "out" / "model.joblib")
    assert again.training is None
    assert again.warnings.equals(pl.read_parquet(cli_run / "out" / "warnings.parquet"))


@pytest.mark.e2e
def test_saved_model_keeps_its_settings_and_rule_set(cli_run, inputs, tmp_path):
    """Scoring with a saved model ignores a changed config file (the model's own settings
    apply), and refuses another rule set, whose lists the model never learnt."""

    edited = load_config().model_dump()
    edited["features"]["min_peers"] += 50  # would change the peer percentiles if it applied
    config_file = tmp_path / "edited.yaml"
    config_file.write_text(yaml.safe_dump(edited, allow_unicode=True), encoding="utf-8")
    model_file = cli_run / "out" / "model.joblib"
    again = screening.early_warning(inputs=inputs, year=YEAR, model=model_file, config=config_file)
    assert again.warnings.equals(pl.read_parquet(cli_run / "out" / "warnings.parquet"))
    other = tmp_path / "rules"
    shutil.copytree(default_ruleset(), other)
    meta = other / "_ruleset.yaml"
    text = meta.read_text(encoding="utf-8")
    meta.write_text(text.replace("version: \"2022.1.0\"", "version: \"2022.9.9\"", 1), encoding="utf-8")
    with pytest.raises(ModelSchemaError, match="规则集"):
        screening.early_warning(inputs=inputs, year=YEAR, model=model_file, ruleset=other)


@pytest.mark.e2e
def test_schema_mismatch_is_refused_with_the_columns_named(cli_run, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for f in sample_data_dir().iterdir():
        if f.name.startswith(("enterprises", "stats", "tax", "land", "energy", "product_energy")):
            shutil.copy(f, data / f.name)  # no evaluations: the grade features cannot be computed
    model_file = cli_run / "out" / "model.joblib"
    proc = cli("warn", "--data", data, "--model", model_file, "--out", tmp_path / "o", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "缺少" in lines[0] and "grade_level" in lines[0] and "low_grades_3y" in lines[0]
    model = load_model(model_file)
    with pytest.raises(ModelSchemaError, match="多出.*surplus"):
        model.check([*model.features, "surplus"], "model.joblib")


@pytest.mark.unit
def test_a_foreign_or_damaged_model_file_is_refused(tmp_path):
    joblib.dump({"format": 1, "features": []}, tmp_path / "partial.joblib")  # right format, no model inside
    (tmp_path / "damaged.joblib").write_bytes(b"not a model")
    with pytest.raises(ScreeningError, match="不是 screening warn 保存的模型文件"):
        load_model(tmp_path / "partial.joblib")
    with pytest.raises(ScreeningError, match="文件损坏或不是模型文件"):
        load_model(tmp_path / "damaged.joblib")


@pytest.mark.unit
def test_reason_sentences_carry_the_numbers():
    row = {"tax_per_mu": 5.5, "tax_per_mu_p1": 8.0, "tax_per_mu_p2": 10.0}
    assert _tax_trend(row, 2021).startswith("亩均税收连续两年下降 45%（2019年 10.0 → 2021年 5.5")
    assert _tax_trend({**row, "tax_per_mu_p2": None}, 2021).startswith("亩均税收较上年下降 31%")


@pytest.mark.unit
def test_peer_shares_count_ties_and_small_industries_use_all_firms():
    # 大类 30: five firms, three tied at 0; 大类 31: two firms, fewer than min_peers
    frame = pl.DataFrame({"division": [30] * 5 + [31] * 2, "v": [0.0, 0.0, 0.0, 5.0, 10.0, 1.0, 20.0]})
    out = frame.select(_share("v", "division", 5).alias("at_or_below"),
                       _share("v", "division", 5, strictly_below=True).alias("below"),
                       _by_group("v", "division", 5).alias("by_industry"))
    assert out["by_industry"].to_list() == [True] * 5 + [False] * 2
    assert out["at_or_below"].to_list() == pytest.approx([0.6, 0.6, 0.6, 0.8, 1.0, 4 / 7, 1.0])
    assert out["below"].to_list() == pytest.approx([0, 0, 0, 0.6, 0.8, 3 / 7, 6 / 7])


@pytest.mark.unit
def test_reason_sentences_name_whom_the_firm_is_compared_with():
    row = {"division": 43, "tax_per_mu": 4.2, "tax_pct_industry": 3 / 100, "tax_by_industry": True,
           "industry_tax_per_mu": 20.0, "energy_per_revenue": 0.05, "energy_pct_industry": 1.0,
           "energy_below_industry": 29 / 100, "energy_by_industry": True, "tax_paid": 10.0, "electricity": 20.0}
    assert _tax_level(row, 2021) == "2021年亩均税收 4.2 万元/亩，处于同行业（43大类）后 3%"
    assert _tax_level({**row, "tax_by_industry": False}, 2021) == "2021年亩均税收 4.2 万元/亩，处于全部企业后 3%"
    assert _tax_level({**row, "tax_pct_industry": 0.9}, 2021).endswith("为同行业（43大类）平均水平的 21%")
    assert _energy(row, 2021) == ("单位营业收入能耗 0.050 吨标准煤/万元，高于同行业（43大类）中 29% 的企业，"
                                  "单位电耗税收 0.50 元/千瓦时")


# ---------------------------------------------------------------- the service

@pytest.fixture(scope="module")
def service(cli_run):
    db = cli_run / "w.duckdb"
    con = connect(db)
    tokens = {role: add_user(con, role, role, TOWNSHIP if role == "township" else None)
              for role in ("admin", "analyst", "township", "dashboard")}
    con.close()
    with TestClient(create_app(Settings(db=db))) as client:
        yield client, tokens


@pytest.mark.api
@pytest.mark.parametrize(("role", "code"), [("admin", 200), ("analyst", 200), ("township", 200), ("dashboard", 403)])
def test_warnings_route_roles(service, role, code):
    client, tokens = service
    assert client.get(f"/api/v1/warnings/{YEAR}", headers=bearer(tokens[role])).status_code == code


@pytest.mark.api
def test_warnings_route_pages_filters_and_isolates_townships(service, cli_run):
    client, tokens = service
    h = bearer(tokens["admin"])
    assert client.get(f"/api/v1/warnings/{YEAR}").status_code == 401
    assert client.get(f"/api/v1/warnings/{YEAR - 1}", headers=h).status_code == 404
    assert client.get(f"/api/v1/warnings/{YEAR}?limit=501", headers=h).status_code == 422
    first = client.get(f"/api/v1/warnings/{YEAR}?limit=100", headers=h).json()
    pages = [client.get(f"/api/v1/warnings/{YEAR}?limit=50&offset={o}", headers=h).json()["items"] for o in (0, 50)]
    assert [i["uscc"] for p in pages for i in p] == [i["uscc"] for i in first["items"]]
    saved = pl.read_parquet(cli_run / "out" / "warnings.parquet")
    assert first["total"] == saved.height and first["items"][0]["uscc"] == saved["uscc"][0]
    assert [i["risk"] for i in first["items"]] == sorted((i["risk"] for i in first["items"]), reverse=True)
    assert first["target_list_year"] == YEAR + 1 and "仅供参考" in first["advisory"]
    assert first["backtest"]["auc"] > first["backtest"]["baseline_auc"]
    own = client.get(f"/api/v1/warnings/{YEAR}?limit=500", headers=bearer(tokens["township"])).json()
    assert own["total"] == saved.filter(pl.col("township") == TOWNSHIP).height > 0
    assert {i["township"] for i in own["items"]} == {TOWNSHIP}
    other = client.get(f"/api/v1/warnings/{YEAR}?township={OTHER}", headers=bearer(tokens["township"]))
    assert other.status_code == 403  # asking for another township is refused, as on every list route
    filtered = client.get(f"/api/v1/warnings/{YEAR}?township={OTHER}", headers=h).json()
    assert filtered["total"] == saved.filter(pl.col("township") == OTHER).height > 0


@pytest.mark.api
def test_a_township_sees_ranks_among_its_own_firms_never_county_ranks(service, cli_run):
    """Issue 10, finding 10: the county rank told a township where its firms stand among every
    other township's; a township's ranks are counted among its own firms."""
    client, tokens = service
    saved = pl.read_parquet(cli_run / "out" / "warnings.parquet")
    mine = saved.filter(pl.col("township") == TOWNSHIP).sort(["risk", "uscc"], descending=[True, False])
    assert mine["rank"].to_list() != list(range(1, mine.height + 1))  # county ranks would tell
    pages = [client.get(f"/api/v1/warnings/{YEAR}?limit=50&offset={o}", headers=bearer(tokens["township"])).json()
             for o in range(0, mine.height, 50)]
    items = [i for p in pages for i in p["items"]]
    assert [i["uscc"] for i in items] == mine["uscc"].to_list()
    assert [i["rank"] for i in items] == list(range(1, mine.height + 1))
    assert {p["rank_scope"] for p in pages} == {"township"}
    county = client.get(f"/api/v1/warnings/{YEAR}?township={TOWNSHIP}&limit=500", headers=bearer(tokens["admin"])).json()
    assert county["rank_scope"] == "county" and [i["rank"] for i in county["items"]] == mine["rank"].to_list()[:500]
    unknown = client.get(f"/api/v1/warnings/{YEAR}?township=柳市", headers=bearer(tokens["admin"]))
    assert unknown.status_code == 422 and TOWNSHIP in unknown.json()["detail"]


@pytest.mark.api
def test_the_record_carries_the_firms_warning_without_a_rank(service, cli_run):
    """Issue 13: the 一企一策 record shows the early-warning risk, marked 仅供参考 (no county rank)."""
    from api.routes.warnings import firm_warning

    client, _tokens = service
    saved = pl.read_parquet(cli_run / "out" / "warnings.parquet")
    first = saved.row(0, named=True)
    cursor = client.app.state.con.cursor()
    try:
        found = firm_warning(cursor, first["uscc"], YEAR)
        assert found["risk"] == pytest.approx(first["risk"]) and found["factors"] == first["factors"]
        assert "rank" not in found and "仅供参考" in found["advisory"] and found["target_list_year"] == YEAR + 1
        assert firm_warning(cursor, "91330381145618741G", YEAR) is None
        assert firm_warning(cursor, first["uscc"], YEAR - 1) is None
    finally:
        cursor.close()
