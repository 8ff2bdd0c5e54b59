"""数据核查提示（仅供参考）: records whose figures do not fit together are flagged with the
indicators that make them unusual; the check never changes a rule status, the list or results."""
from __future__ import annotations

import re

import dataclasses
import io
import math
import shutil

import duckdb
import numpy as np
import polars as pl
import pytest
from api_helpers import bearer, build_service_db
from fastapi.testclient import TestClient
from polars.testing import assert_frame_equal

import screening
from api.config import Settings
from api.main import create_app
from screening import anomaly
from screening.paths import sample_data_dir
from screening.store import connect

YEAR = 2022
HEADER = "数据核查提示（仅供参考）"


# ------------------------------------------------------------------ the model on hand-built figures

def _firms(n: int = 200, division: int = 38, first_id: int = 0, seed: int = 1) -> pl.DataFrame:
    """Firms whose figures fit together: every ratio varies ±20 % or so around its industry's level."""
    rng = np.random.default_rng(seed)
    noise = lambda: rng.lognormal(0.0, 0.2, n)
    revenue_prev = 1000.0 * rng.lognormal(0.0, 1.0, n)
    revenue_last = revenue_prev * 1.05 * noise()
    land = revenue_last / 300.0 * noise()
    energy_last = revenue_last * 0.05 * noise()
    electricity_last = energy_last * 0.4 * noise()
    tax_last = revenue_last * 0.06 * noise()
    return pl.DataFrame({
        "firm_id": pl.Series(range(first_id, first_id + n), dtype=pl.UInt32),
        "division": pl.Series([division] * n, dtype=pl.Int32),
        "revenue_prev": revenue_prev, "revenue_last": revenue_last,
        "value_added_prev": revenue_prev * 0.25 * noise(), "value_added_last": revenue_last * 0.25 * noise(),
        "employees_prev": pl.Series([10] * n, dtype=pl.Int64), "employees_last": pl.Series([10] * n, dtype=pl.Int64),
        "tax_prev": tax_last / 1.05 * noise(), "tax_last": tax_last,
        "land_prev": land, "land_last": land,
        "energy_prev": energy_last / 1.05 * noise(), "energy_last": energy_last,
        "electricity_prev": electricity_last / 1.05 * noise(), "electricity_last": electricity_last,
    })


NORMAL, POWER, JUMP, ZERO_TAX = 3, 7, 11, 13


@pytest.fixture(scope="module")
def hand_built() -> pl.DataFrame:
    frame = _firms()
    return frame.with_columns(
        # 100 × the electricity of its peers for the same tax: tax per kWh absurdly low
        pl.when(pl.col("firm_id") == POWER).then(pl.col("electricity_last") * 100).otherwise(pl.col("electricity_last"))
        .alias("electricity_last"),
        pl.when(pl.col("firm_id") == POWER).then(pl.col("electricity_last") * 100).otherwise(pl.col("electricity_prev"))
        .alias("electricity_prev"),
        # tax ten times last year's (revenue, power and land unchanged)
        pl.when(pl.col("firm_id") == JUMP).then(pl.col("tax_prev") * 10).when(pl.col("firm_id") == ZERO_TAX).then(0.0)
        .otherwise(pl.col("tax_last")).alias("tax_last"),
    )


@pytest.fixture(scope="module")
def scored(hand_built) -> pl.DataFrame:
    return anomaly.score(hand_built, YEAR).frame


def _row(frame: pl.DataFrame, firm_id: int) -> dict:
    return frame.filter(pl.col("firm_id") == firm_id).row(0, named=True)


def test_absurd_tax_per_electricity_is_flagged_with_that_indicator(scored):
    row = _row(scored, POWER)
    assert row["flagged"] and row["anomaly_score"] > 0.5
    assert "tax_per_electricity" in row["indicator_ids"].split(";")
    sentence = next(s for s in row["indicators"].split("；") if s.startswith("单位用电税收"))
    assert "元/千瓦时" in sentence and "同行业中位数" in sentence and sentence.endswith("明显偏低")


def test_tenfold_jump_is_flagged_as_a_change(scored):
    row = _row(scored, JUMP)
    assert row["flagged"] and row["indicator_ids"].split(";")[0] in ("tax_change", "tax_to_revenue", "tax_per_electricity")
    sentence = next(s for s in row["indicators"].split("；") if s.startswith("实缴税金"))
    assert "为上年的 10 倍" in sentence and sentence.endswith("增幅异常"), sentence
    # in plain words: from what to what, and how the firm's peers changed in the same years
    assert re.fullmatch(r"实缴税金从 2020 年的 [\d.,]+ 万元变为 2021 年的 [\d.,]+ 万元（为上年的 10 倍），"
                        r"(同行业企业|全部企业)中位数同期(基本不变|(增加|减少) [\d.]+%)，增幅异常", sentence), sentence
    assert "倍）" not in sentence.split("，", 1)[1], sentence   # no "中位数 0.908 倍" a reader cannot parse


def test_change_words():
    from screening.anomaly import change_words

    assert change_words(0.908) == "减少 9.2%" and change_words(1.25) == "增加 25%"
    assert change_words(1.001) == "基本不变" and change_words(10.0) == "为上年的 10 倍"


def test_zero_tax_with_power_and_revenue_is_flagged(scored):
    row = _row(scored, ZERO_TAX)
    assert row["flagged"] and "降为 0" in row["indicators"] and "明显偏低" in row["indicators"]


def test_a_normal_firm_is_not_flagged(scored):
    row = _row(scored, NORMAL)
    assert not row["flagged"] and row["anomaly_score"] < 0.5
    assert row["indicators"] is None and row["indicator_ids"] is None
    # the planted firms stand out well above the few ordinary firms near the cut-off
    assert set(scored.sort("anomaly_score", descending=True)["firm_id"].head(3)) == {POWER, JUMP, ZERO_TAX}
    assert scored.filter(~pl.col("firm_id").is_in([POWER, JUMP, ZERO_TAX]))["anomaly_score"].max() < 0.6
    assert scored["anomaly_score"].is_between(0, 1).all()


def test_scores_are_deterministic(hand_built, scored):
    assert anomaly.score(hand_built, YEAR).frame.equals(scored)
    shuffled = hand_built.sample(fraction=1.0, shuffle=True, seed=3)
    assert anomaly.score(shuffled, YEAR).frame.sort("firm_id").equals(scored.sort("firm_id"))


def _typical(frame: pl.DataFrame, num: str, den: str) -> float:
    """The industry's typical ratio as the check computes it: the median on the log scale."""
    return math.exp(frame.filter(pl.col(den) > 0).select((pl.col(num) / pl.col(den)).log().median()).item())


def test_sentences_print_each_ratio_in_the_unit_they_name(hand_built, scored):
    power = _row(hand_built, POWER)
    sentence = next(s for s in _row(scored, POWER)["indicators"].split("；") if s.startswith("单位用电税收"))
    # 万元 ÷ 万千瓦时 = 元/千瓦时: the ratio itself, no factor
    value = anomaly.fmt_number(power["tax_last"] / power["electricity_last"])
    typical = anomaly.fmt_number(_typical(hand_built, "tax_last", "electricity_last"))
    assert sentence == f"单位用电税收 {value} 元/千瓦时，同行业中位数 {typical} 元/千瓦时，明显偏低"
    sentence = next(s for s in _row(scored, ZERO_TAX)["indicators"].split("；") if s.startswith("税收占营业收入比重"))
    typical = anomaly.fmt_number(100 * _typical(hand_built, "tax_last", "revenue_last"))
    assert sentence == f"税收占营业收入比重 0%，同行业中位数 {typical}%，明显偏低"


def test_the_share_cap_holds_when_many_firms_tie():
    # a tenth of an industry paid no tax: all get the same z, far beyond 3.5
    frame = _firms(n=1000).with_columns(
        pl.when(pl.col("firm_id") % 10 == 0).then(0.0).otherwise(pl.col("tax_last")).alias("tax_last"))
    result = anomaly.score(frame, YEAR)
    flagged = result.frame.filter("flagged")
    assert flagged.height == result.summary["flagged"] == 30  # 3 % of 1,000, not the 100 tied
    assert result.summary["cutoff"] > anomaly.load_config().robust_z
    assert (flagged["firm_id"] % 10 == 0).all()
    shuffled = anomaly.score(frame.sample(fraction=1.0, shuffle=True, seed=5), YEAR).frame.filter("flagged")
    assert sorted(shuffled["firm_id"]) == sorted(flagged["firm_id"])


def test_a_zero_denominator_or_missing_figure_skips_only_its_indicators():
    no_power, no_stats = 5, 6
    frame = _firms().with_columns(
        pl.when(pl.col("firm_id") == no_power).then(0.0).otherwise(pl.col("electricity_last")).alias("electricity_last"),
        *(pl.when(pl.col("firm_id") == no_stats).then(None).otherwise(pl.col(c)).alias(c)
          for c in ("revenue_last", "value_added_last")))
    result = anomaly.score(frame, YEAR).frame
    row = _row(result, no_power)  # 0 kWh: tax per kWh cannot be computed; the drop to 0 is what stands out
    assert row["flagged"] and set(row["indicator_ids"].split(";")) == {"electricity_change", "electricity_per_energy"}
    assert re.search(r"用电量从 2020 年的 [\d.]+ 万千瓦时降为 0，", row["indicators"]), row["indicators"]
    row = _row(result, no_stats)  # still compared on tax, land, energy and power; no figure is made up
    assert row["anomaly_score"] is not None and not row["flagged"]


def test_z_scores_gathered_per_group_equal_the_joined_params(hand_built):
    """_robust_z looks each firm's group up once and gathers centre and spread per indicator; the
    z-scores are bit for bit those of joining the group parameters onto every firm (the way it was
    written before: that join copied three columns per indicator onto a province's million firms).
    Unknown industries (null group), a small industry (pooled), zero numerators and gaps included."""
    cfg = anomaly.load_config()
    ids = [i.id for i in cfg.indicators]
    frame = pl.concat([
        hand_built,
        _firms(n=40, division=17, first_id=300, seed=2),
        _firms(n=3, division=13, first_id=400, seed=3),
        _firms(n=50, division=0, first_id=600, seed=4).with_columns(pl.lit(None, pl.Int32).alias("division")),
    ]).with_columns(
        pl.when(pl.col("firm_id") % 7 == 0).then(0.0).otherwise(pl.col("tax_last")).alias("tax_last"),
        pl.when(pl.col("firm_id") % 11 == 0).then(None).otherwise(pl.col("land_last")).alias("land_last"))
    logs = frame.select("firm_id", pl.col("division").alias(anomaly._GROUP),
                        *(anomaly._log_ratio(i).alias(i.id) for i in cfg.indicators))
    assert (logs["tax_to_revenue"] == -math.inf).any() and logs[anomaly._GROUP].null_count()
    params = anomaly._group_params(logs, cfg)
    joined = logs.join(params, on=anomaly._GROUP, how="left", nulls_equal=True, maintain_order="left").select(
        "firm_id", anomaly._GROUP,
        *(pl.when((pl.col(k) == -math.inf) & pl.col(f"{k}#c").is_not_null())
          .then(math.log(cfg.zero_floor) / pl.col(f"{k}#s"))
          .otherwise((pl.col(k) - pl.col(f"{k}#c")) / pl.col(f"{k}#s")).alias(k) for k in ids))
    gathered = anomaly._robust_z(logs, params, ids, cfg)
    assert gathered.schema == joined.schema
    assert gathered.equals(joined, null_equal=True)
    assert gathered["tax_to_revenue"].is_infinite().sum() == 0 and gathered["land_change"].null_count()


def test_small_industry_is_compared_with_all_firms(hand_built):
    lone = _firms(n=1, division=13, first_id=500).with_columns(pl.col("tax_last") / 50)
    row = _row(anomaly.score(pl.concat([hand_built, lone]), YEAR).frame, 500)
    assert row["flagged"] and "全部企业中位数" in row["indicators"]


def test_too_few_firms_anywhere_are_not_compared():
    few = anomaly.score(_firms(n=5), YEAR)
    assert few.summary["scored"] == 0 and not few.frame["flagged"].any()


def test_invalid_settings_are_refused_in_chinese(tmp_path):
    bad = tmp_path / "anomaly.yaml"
    bad.write_text(anomaly.DEFAULT_CONFIG.read_text(encoding="utf-8").replace("robust_z:", "robust_zz:"),
                   encoding="utf-8")
    with pytest.raises(anomaly.AnomalyConfigError, match="数据核查设置 .* 无效"):
        anomaly.load_config(bad)


@pytest.mark.parametrize("value, text", [(0.0213456, "0.0213"), (3.5, "3.5"), (35.24, "35.2"), (1234.5, "1,234"),
                                         (0.0, "0"), (10.0, "10")])
def test_numbers_read_as_a_person_writes_them(value, text):
    assert anomaly.fmt_number(value) == text


# ------------------------------------------------------------------ inside a screening of the sample

@pytest.fixture(scope="module")
def sample_inputs():
    return screening.load_inputs(sample_data_dir())


def _comparable(frame: pl.DataFrame, *key: str) -> pl.DataFrame:
    return frame.drop("run_id").sort(*key)


def test_never_changes_results_or_the_list(sample_inputs):
    with screening.screen(year=YEAR, inputs=sample_inputs) as with_check, \
            screening.screen(year=YEAR, inputs=sample_inputs, anomalies=False) as without:
        assert with_check.anomalies["flagged"].any() and without.anomalies.is_empty()
        # statuses and texts exactly; numbers up to the last bits, which DuckDB's parallel sums
        # leave free from one run to the next with or without the check
        assert_frame_equal(_comparable(with_check.results, "uscc", "rule_id"),
                           _comparable(without.results, "uscc", "rule_id"), check_exact=False, rel_tol=1e-12)
        assert_frame_equal(_comparable(with_check.list, "uscc"), _comparable(without.list, "uscc"),
                           check_exact=False, rel_tol=1e-12)
        assert anomaly.STAGE in with_check.timings and anomaly.STAGE not in without.timings
        # every listed firm is scored and kept beside the flagged ones
        kept = with_check.anomalies
        assert set(with_check.list["uscc"]) <= set(kept["uscc"])
        assert kept.filter(pl.col("listed"))["anomaly_score"].null_count() == 0
        assert (kept["advisory"] == "仅供参考").all()


def test_a_listed_firm_with_a_tenfold_jump_in_power_is_flagged(sample_inputs):
    with screening.screen(year=YEAR, inputs=sample_inputs, anomalies=False) as s:
        firm = s.list.sort("uscc")["uscc"][0]
    firm_id = sample_inputs.tables["enterprises"].filter(pl.col("uscc") == firm)["firm_id"][0]
    energy = sample_inputs.tables["energy"].with_columns(
        pl.when((pl.col("firm_id") == firm_id) & (pl.col("year") == YEAR - 1))
        .then(pl.col("electricity") * 10).otherwise(pl.col("electricity")).alias("electricity"))
    changed = dataclasses.replace(sample_inputs, tables={**sample_inputs.tables, "energy": energy})
    with screening.screen(year=YEAR, inputs=changed) as s:
        row = s.anomalies.filter(pl.col("uscc") == firm).row(0, named=True)
    assert row["listed"] and row["flagged"]
    assert "electricity_change" in row["indicator_ids"].split(";")
    assert "用电量" in row["indicators"] and "增幅异常" in row["indicators"]


# ------------------------------------------------------------------ the command, the record and the export

@pytest.fixture(scope="module")
def service(tmp_path_factory):
    root = tmp_path_factory.mktemp("anomaly")
    db, tokens = build_service_db(root)
    with TestClient(create_app(Settings(db=db))) as client:
        yield client, tokens, root, db


@pytest.fixture(scope="module")
def stored(service) -> pl.DataFrame:
    _, _, root, _ = service
    raw = (root / "out" / "anomalies.csv").read_bytes()
    assert raw[:3] == b"\xef\xbb\xbf"
    return pl.read_csv(io.BytesIO(raw[3:]), schema_overrides={"industry_code": pl.String})


def test_the_run_writes_anomalies_beside_the_list(service, stored):
    _, _, root, db = service
    assert (root / "out" / "anomalies.parquet").is_file()
    assert {"uscc", "anomaly_score", "flagged", "indicators", "advisory"} <= set(stored.columns)
    assert stored["flagged"].any() and (stored["advisory"] == "仅供参考").all()
    listed = set(pl.read_parquet(root / "out" / "list.parquet")["uscc"])
    assert listed <= set(stored["uscc"])
    con = connect(db)  # the service holds the file: the same configuration shares its database
    try:
        in_db = con.sql("SELECT count(*) FROM run_anomalies").fetchall()[0][0]
    finally:
        con.close()
    assert in_db == stored.height


def _record(client, token, uscc):
    response = client.get(f"/api/v1/enterprises/{uscc}", headers=bearer(token), params={"year": YEAR})
    assert response.status_code == 200, response.text
    return response.json()


def test_the_record_shows_the_advisory_check(service, stored):
    client, tokens, _, _ = service
    flagged = stored.filter(pl.col("listed") & pl.col("flagged")).row(0, named=True)
    note = _record(client, tokens["admin"], flagged["uscc"])["anomaly"]
    assert note["flagged"] and note["advisory"] == "仅供参考" and note["year"] == YEAR
    assert note["indicators"] == flagged["indicators"]
    assert note["indicator_ids"] == flagged["indicator_ids"].split(";")
    calm = stored.filter(pl.col("listed") & ~pl.col("flagged")).row(0, named=True)
    note = _record(client, tokens["admin"], calm["uscc"])["anomaly"]
    assert not note["flagged"] and note["anomaly_score"] < 0.5 and note["indicators"] is None
    # neither listed nor flagged: the run kept no row, and says so rather than nothing
    _, _, root, _ = service
    other = sorted(set(pl.read_parquet(root / "out" / "results.parquet")["uscc"]) - set(stored["uscc"]))[0]
    note = _record(client, tokens["admin"], other)["anomaly"]
    assert note == {"year": YEAR, "run_id": note["run_id"], "anomaly_score": None, "flagged": False,
                    "indicator_ids": [], "indicators": None, "advisory": "仅供参考"}


def test_the_township_export_has_the_advisory_column(service, stored):
    client, tokens, _, _ = service
    response = client.get(f"/api/v1/lists/{YEAR}/export", headers=bearer(tokens["admin"]), params={"format": "csv"})
    assert response.status_code == 200, response.text
    frame = pl.read_csv(io.BytesIO(response.content[3:]), infer_schema=False)
    notes = dict(frame.select("统一社会信用代码", HEADER).iter_rows())
    expected = stored.filter(pl.col("listed") & pl.col("flagged"))
    assert expected.height and all(notes[u] == text for u, text in expected.select("uscc", "indicators").iter_rows())
    assert sum(v is not None for v in notes.values()) == expected.height
    xlsx = client.get(f"/api/v1/lists/{YEAR}/export", headers=bearer(tokens["admin"])).content
    sheet = pl.read_excel(io.BytesIO(xlsx), engine="calamine", infer_schema_length=0)
    assert HEADER in sheet.columns and sheet.columns[-3:] == ["核实结果", "异议原因", "备注"]


def test_an_older_database_without_the_check_still_serves(service, tmp_path):
    _, tokens, _, db = service
    old = tmp_path / "old.duckdb"
    shutil.copy(db, old)
    con = duckdb.connect(str(old))
    con.execute("DROP TABLE run_anomalies")
    firm = con.sql("SELECT uscc FROM run_list LIMIT 1").fetchall()[0][0]
    con.close()
    with TestClient(create_app(Settings(db=old, cache_runs=0))) as client:
        assert _record(client, tokens["admin"], firm)["anomaly"] is None
        response = client.get(f"/api/v1/lists/{YEAR}/export", headers=bearer(tokens["admin"]), params={"format": "csv"})
        assert response.status_code == 200, response.text
        frame = pl.read_csv(io.BytesIO(response.content[3:]), infer_schema=False)
        assert HEADER in frame.columns and frame[HEADER].null_count() == frame.height
