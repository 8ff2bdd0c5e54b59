"""差别化措施 (issue 16, item 3): hand-computed lists from a small grade history.

Policy of the tests (tests write their own measures.yaml into a copy of the rule set):
  power_d  电 D  from 2020-01-01  0.3 元/kWh, 0.4 from the 3rd consecutive D year, refund 40 %
  power_c  电 C  from 2020-01-01  0.1 元/kWh
  water_d  水 D  from 2024-07-01  1.5 元/吨   (not yet in force on 2024-01-01)
List year 2024: grades of 2023 and before; period 2024-01-01 … 2024-12-31.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
import yaml

from cli_helpers import cli
from measures_helpers import F1, F2, F3, F4, F5, F6, POLICY, write_data
from screening.errors import InputError, RuleSetError
from screening.measures import compute, history_from_evaluations, measures, merge_histories
from screening.measures.policy import load_measures

pytestmark = pytest.mark.unit


@pytest.fixture
def rules(ruleset_copy: Path) -> Path:
    (ruleset_copy / "measures.yaml").write_text(yaml.safe_dump(POLICY, allow_unicode=True), encoding="utf-8")
    return ruleset_copy


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_data(tmp_path / "data")


def _power(result) -> dict[tuple[str, str | None], dict]:
    return {(r["uscc"], r["account"]): r for r in result.for_utility("电").to_dicts()}


def test_surcharge_escalates_in_the_third_consecutive_d_year(data, rules):
    power = _power(measures(data, 2024, rules))
    assert power[(F1, "1001")]["consecutive_years"] == 3
    assert power[(F1, "1001")]["surcharge"] == pytest.approx(0.4)
    assert power[(F2, "2001")]["consecutive_years"] == 2
    assert power[(F2, "2001")]["surcharge"] == pytest.approx(0.3)
    # a year in another grade ends the run: F3's D years of 2020-21 do not count
    assert power[(F3, None)]["consecutive_years"] == 1
    assert power[(F3, None)]["surcharge"] == pytest.approx(0.3)
    assert power[(F6, None)]["surcharge"] == pytest.approx(0.1)
    assert power[(F6, None)]["consecutive_years"] == 2
    # a year earlier, F1 was in its second D year: 0.3
    earlier = _power(measures(data, 2023, rules))
    assert earlier[(F1, "1001")]["consecutive_years"] == 2
    assert earlier[(F1, "1001")]["surcharge"] == pytest.approx(0.3)


def test_refund_after_leaving_the_grade(data, rules):
    power = _power(measures(data, 2024, rules))
    row = power[(F4, "4001")]
    assert row["grade"] == "B" and row["previous_grade"] == "D"
    assert row["surcharge"] is None
    assert row["refund_share"] == pytest.approx(0.4)
    assert "返还40%" in row["note"]
    # nobody else improved out of a grade with a refund
    assert [k for k, r in power.items() if r["refund_share"] is not None] == [(F4, "4001")]
    assert (F5, None) not in power  # A: no measure, no refund


def test_policy_not_yet_in_force_on_the_date(data, rules):
    january = measures(data, 2024, rules)
    assert january.for_utility("水").height == 0
    assert {p["policy_id"]: p["state"] for p in january.not_in_force} == {"water_d": "not_yet"}
    july = measures(data, 2024, rules, on_date=dt.date(2024, 7, 1))
    water = {r["uscc"]: r for r in july.for_utility("水").to_dicts()}
    assert set(water) == {F1, F2, F3}
    assert water[F1]["surcharge"] == pytest.approx(1.5)
    assert water[F1]["account"] == "W01"
    assert water[F1]["valid_from"] == dt.date(2024, 7, 1) and water[F1]["valid_to"] == dt.date(2024, 12, 31)
    assert july.not_in_force == []


def test_firm_without_account_is_listed_with_a_note(data, rules):
    result = measures(data, 2024, rules)
    power = result.for_utility("电")
    f3 = power.filter(pl.col("uscc") == F3).to_dicts()
    assert len(f3) == 1 and f3[0]["account"] is None
    assert "未登记电户号" in f3[0]["note"]
    # two accounts: two rows, one per meter
    assert sorted(power.filter(pl.col("uscc") == F2)["account"].to_list()) == ["2001", "2002"]
    # every firm in a charged grade is on the list: F1, F2, F3 (D), F6 (C), F4 (refund)
    assert set(power["uscc"]) == {F1, F2, F3, F4, F6}


def test_accounts_rejects_name_file_row_column(data, rules):
    rejects = measures(data, 2024, rules).rejects.filter(pl.col("file") == "accounts.csv")
    lines = {(r["row"], r["column"]): r["reason"] for r in rejects.to_dicts()}
    assert set(lines) == {(5, "类型"), (6, "户号")}
    assert "A、B" not in lines[(5, "类型")] and "电" in lines[(5, "类型")]
    assert "第2行" in lines[(6, "户号")]


def test_finalized_grades_override_the_table(data, rules):
    """eval-workflow's finalized evaluations plug in as a later grade-history frame."""
    final = pl.DataFrame({"uscc": [F4], "year": [2023], "grade": ["D"], "source": ["定稿评价 ev-1"]})
    power = _power(measures(data, 2024, rules, extra_history=final))
    assert power[(F4, "4001")]["grade"] == "D"
    assert power[(F4, "4001")]["consecutive_years"] == 2
    assert power[(F4, "4001")]["surcharge"] == pytest.approx(0.3)
    assert power[(F4, "4001")]["grade_source"] == "定稿评价 ev-1"
    merged = merge_histories(history_from_evaluations(pl.DataFrame({"uscc": [F4], "year": [2023], "grade": ["B"]})),
                             final)
    assert merged.to_dicts() == [{"uscc": F4, "year": 2023, "grade": "D", "source": "定稿评价 ev-1"}]


def test_a_finalized_t_or_ungraded_firm_takes_no_grade_from_the_table(data, rules):
    """The finalized evaluation marks F6 T (暂不评价: a new firm) for 2023, so its final grade is
    empty; the official table's C for 2023 was used anyway (the empty grade was dropped before the
    finalized frame could replace it), and F6 paid a C surcharge the bureau had not decided.  The
    finalized evaluation is the last word: no 2023 grade, no list row."""
    official = {u: r for (u, _), r in _power(measures(data, 2024, rules)).items()}
    assert official[F6]["grade"] == "C"  # the table's grade when nothing was finalized
    final = pl.DataFrame({"uscc": [F6], "year": [2023], "grade": [None], "source": ["定稿评价 ev-1"]},
                         schema={"uscc": pl.String, "year": pl.Int32, "grade": pl.String, "source": pl.String})
    power = _power(measures(data, 2024, rules, extra_history=final))
    assert F6 not in {u for u, _ in power}
    merged = merge_histories(history_from_evaluations(pl.DataFrame({"uscc": [F6], "year": [2023], "grade": ["C"]})),
                             final)
    assert merged.height == 0


def test_date_outside_the_period_and_bad_policy_are_refused(data, rules):
    with pytest.raises(InputError, match="执行期"):
        measures(data, 2024, rules, on_date=dt.date(2025, 1, 1))
    bad = dict(POLICY, policies=[dict(POLICY["policies"][0], steps=[{"from_years": 3, "surcharge": 0.4}])])
    (rules / "measures.yaml").write_text(yaml.safe_dump(bad, allow_unicode=True), encoding="utf-8")
    with pytest.raises(RuleSetError, match="from_years"):
        load_measures(rules)


def test_shipped_policy_loads_with_citations_and_assumptions():
    from screening.paths import default_ruleset

    policy = load_measures(default_ruleset())
    assert {p.utility for p in policy.policies} == {"电", "水", "气"}
    for p in policy.policies:
        assert policy.citation_text(p.cite)
        assert p.assumption  # no 乐清 document yet: every number is marked as the project's assumption
    haining = policy.policy("power_d")
    assert [(s.from_years, s.surcharge) for s in haining.steps] == [(1, 0.3), (3, 0.4)]


def test_measures_sql_has_no_numbers():
    from screening.engine import sql_text
    from screening.lint import numeric_literals

    assert numeric_literals(sql_text("rules/measures.sql")) == []


def test_compute_without_accounts_keeps_every_firm(rules):
    history = history_from_evaluations(pl.DataFrame({"uscc": [F1, F1], "year": [2022, 2023], "grade": ["D", "D"]}))
    firms = pl.DataFrame({"uscc": [F1], "name": ["甲"], "township": ["柳市镇"]})
    result = compute(history, firms, None, load_measures(rules), 2024)
    assert result.for_utility("电").select("uscc", "account", "surcharge").to_dicts() == [
        {"uscc": F1, "account": None, "surcharge": 0.3}]


@pytest.mark.e2e
def test_cli_writes_the_lists_and_refuses_bad_input(data, rules, tmp_path):
    out = tmp_path / "out"
    proc = cli("measures", "--data", data, "--year", 2024, "--rules", rules, "--out", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "water_d" in proc.stdout and "尚未施行" in proc.stdout
    raw = (out / "measures_electricity.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    power = pl.read_csv(out / "measures_electricity.csv", schema_overrides={"account": pl.String})
    assert power.height == 6
    assert pl.read_parquet(out / "measures_electricity.parquet").height == 6
    import openpyxl

    wb = openpyxl.load_workbook(out / "差别化措施清单_2024.xlsx", read_only=True)
    assert wb.sheetnames == ["电（元每千瓦时）", "水（元每吨）", "气（元每立方米）", "政策与依据", "拒收记录"]
    header = next(wb["电（元每千瓦时）"].iter_rows(max_row=1, values_only=True))
    assert header[:4] == ("统一社会信用代码", "企业名称", "乡镇街道", "户号")
    wb.close()
    bad = cli("measures", "--data", data, "--year", 2024, "--rules", rules, "--out", out, "--date", "2024-13-01",
              cwd=tmp_path)
    assert bad.returncode == 2 and "不是日期" in bad.stderr and "Traceback" not in bad.stderr
    missing = cli("measures", "--data", data, "--out", out, cwd=tmp_path)
    assert missing.returncode == 2 and "--year" in missing.stderr


def test_no_refund_for_a_surcharge_never_collected(data, rules):
    """power_d starting 2024-01-01: F4's 2023 D year was never surcharged, so nothing to refund."""
    later = dict(POLICY, policies=[dict(POLICY["policies"][0], valid_from="2024-01-01")] + POLICY["policies"][1:])
    (rules / "measures.yaml").write_text(yaml.safe_dump(later, allow_unicode=True), encoding="utf-8")
    power = _power(measures(data, 2024, rules))
    assert (F4, "4001") not in power
    assert power[(F1, "1001")]["surcharge"] == pytest.approx(0.4)


def test_no_grades_for_the_year_is_refused_not_an_empty_list(data, rules):
    with pytest.raises(InputError, match="没有 2024 年度的评价等级"):
        measures(data, 2025, rules)


def test_a_message_naming_an_unknown_field_is_a_rule_set_error(data, rules):
    bad = dict(POLICY, messages={**POLICY["messages"], "surcharge": "加价{surchage:g}"})
    (rules / "measures.yaml").write_text(yaml.safe_dump(bad, allow_unicode=True), encoding="utf-8")
    with pytest.raises(RuleSetError, match="surchage"):
        measures(data, 2024, rules)


def test_outputs_are_formula_safe(rules, tmp_path):
    from screening.measures.outputs import write_outputs

    history = history_from_evaluations(pl.DataFrame({"uscc": [F1], "year": [2023], "grade": ["D"]}))
    firms = pl.DataFrame({"uscc": [F1], "name": ['=HYPERLINK("http://x","点此")'], "township": ["+柳市镇"]})
    accounts = pl.DataFrame({"uscc": [F1], "utility": ["电"], "account": ["-1001"]})
    result = compute(history, firms, accounts, load_measures(rules), 2024)
    write_outputs(result, tmp_path)
    text = (tmp_path / "measures_electricity.csv").read_text(encoding="utf-8-sig")
    assert "'=HYPERLINK" in text and "'+柳市镇" in text
    assert pl.read_parquet(tmp_path / "measures_electricity.parquet")["name"][0].startswith("=")  # machines: raw
    import openpyxl

    wb = openpyxl.load_workbook(tmp_path / "差别化措施清单_2024.xlsx")
    cell = wb["电（元每千瓦时）"]["B2"]
    assert cell.data_type == "s" and not str(cell.value).startswith("=")
