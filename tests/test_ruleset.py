"""Rule set loading, validation errors, --set overrides and the project's lint rules."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from cli_helpers import cli
from ruleset_helpers import edit_yaml
from screening.errors import RuleSetError
from screening.lint import _TEMPLATE_COLUMNS, lint_ruleset, numeric_literals, review_warnings
from screening.paths import default_ruleset
from screening.ruleset import RULE_IDS, load_ruleset

pytestmark = pytest.mark.unit




def test_shipped_ruleset_loads_with_contract_defaults():
    rs = load_ruleset(default_ruleset())
    assert rs.meta.id == "yueqing-2022"
    assert rs.enabled == list(RULE_IDS)
    assert rs.params["above_scale_low_tax_per_mu"] == {"ratio": 0.10, "min_group_size": 5}
    assert rs.params["below_scale_consecutive_c_grade"] == {
        "grades": ["C", "D"], "min_land_mu": 3.0, "grade_source": "official", "grade_method": "yueqing-default"}
    assert rs.params["below_scale_consecutive_low_tax_per_mu"] == {"threshold": 10.0, "min_land_mu": 3.0}
    assert rs.params["energy_limit_exceeded"] == {}
    assert {k: v.value for k, v in rs.meta.targets.items()} == {"firms": 150, "land_mu": 300, "energy_tce": 5000}


def test_every_rule_cites_the_seed_document_clause():
    rs = load_ruleset(default_ruleset())
    for rid in rs.enabled:
        cite = rs.rules[rid].citation
        assert cite.source == "seed2022" and cite.clause == "一、1" and cite.quote
        assert "2022年工作要点" in rs.citation_text(cite)
        assert "2022-05-07" in rs.citation_text(cite)


def test_shipped_ruleset_passes_lint():
    assert lint_ruleset(load_ruleset(default_ruleset())) == []


def test_lint_finds_a_threshold_buried_in_sql():
    assert numeric_literals("SELECT x < 10 AND y > 0.5 -- 99 in a comment\n FROM t") == ["10", "0.5"]
    assert numeric_literals("SELECT printf('%.2f', x), x = 1, $p2, col_3, 'a 12 b' FROM t WHERE y > 0") == []


def test_lint_finds_unused_and_undeclared_parameters(ruleset_copy: Path):
    edit_yaml(ruleset_copy / "above_scale_low_tax_per_mu.yaml",
          lambda d: d["parameters"].update(spare={**d["parameters"]["ratio"], "value": 1.0}))
    problems = lint_ruleset(load_ruleset(ruleset_copy))
    assert any("spare" in p and "未在 SQL 中使用" in p for p in problems)


def test_a_citation_note_naming_an_unknown_field_stops_loading_the_rule_set(ruleset_copy: Path, tmp_path: Path):
    """A rule's citation note is shown in the workbook's 规则与依据 with the run's years and
    parameters filled in; a field it cannot fill stops the rule set from loading (lint, run:
    one line, exit 2), before a run is screened or stored (the workbook is written beside the
    database copy: failing there left a stored run without its output folder)."""
    edit_yaml(ruleset_copy / "energy_limit_exceeded.yaml",
              lambda d: d["citation"].update(note="限额取{year_last}年12月31日{limit_day}有效的限定值"))
    with pytest.raises(RuleSetError, match=r"energy_limit_exceeded.yaml citation.note.*\{limit_day\}"):
        load_ruleset(ruleset_copy)
    db = tmp_path / "s.duckdb"
    proc = cli("run", "--rules", ruleset_copy, "--out", tmp_path / "out", "--db", db, cwd=tmp_path)
    assert proc.returncode == 2 and "{limit_day}" in proc.stderr and "Traceback" not in proc.stderr
    assert not db.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("field, key", [("scope", "manufacturing_division_min"), ("scope", "new_firm_window_years"),
                                        ("comparison", "relative_tolerance")])
def test_a_rule_set_without_a_scope_number_is_refused_when_loaded(ruleset_copy: Path, tmp_path: Path, field, key):
    """Every screening reads the scope numbers and the comparison tolerance; a rule set lacking
    one loaded (lint passed it) and the run failed with “内部错误：KeyError”; since the notes are
    filled at loading, lint failed so too.  Now one Chinese line naming it, exit 2."""
    edit_yaml(ruleset_copy / "_ruleset.yaml", lambda d: d[field].pop(key))
    with pytest.raises(RuleSetError, match=f"_ruleset.yaml：{field} 缺少 {key}"):
        load_ruleset(ruleset_copy)
    proc = cli("lint", "--rules", ruleset_copy, cwd=tmp_path)
    assert proc.returncode == 2 and f"{field} 缺少 {key}" in proc.stderr and "KeyError" not in proc.stderr, proc.stderr

def test_a_number_format_on_a_text_parameter_is_a_rule_set_problem(ruleset_copy: Path, tmp_path: Path):
    """``{grade_source:.2f}`` (a choice, “official”): the citation note stopped loading and lint
    with “内部错误：ValueError”, a message template stopped lint so; now one Chinese line naming it."""
    rid = "below_scale_consecutive_c_grade"
    edit_yaml(ruleset_copy / f"{rid}.yaml", lambda d: d["citation"].update(note="等级来源 {grade_source:.2f}"))
    with pytest.raises(RuleSetError, match=r"citation.note：模板字段 \{grade_source:.2f\} 的格式只用于数字"):
        load_ruleset(ruleset_copy)
    proc = cli("lint", "--rules", ruleset_copy, cwd=tmp_path)
    assert proc.returncode == 2 and "格式只用于数字" in proc.stderr and "内部错误" not in proc.stderr, proc.stderr
    edit_yaml(ruleset_copy / f"{rid}.yaml", lambda d: (d["citation"].update(note=None),
                                                        d["messages"].update(hit=d["messages"]["hit"] + "{grade_source:%}")))
    problems = lint_ruleset(load_ruleset(ruleset_copy))
    assert any(f"{rid}.messages.hit：模板字段 {{grade_source:%}} 的格式只用于数字" in p for p in problems), problems

def test_lint_template_columns_exist_in_the_panel():
    from screening.screen import screen

    with screen(None, 2022) as s:
        panel = set(s.engine.query("cols", "SELECT * FROM firm_panel LIMIT 0", {}).columns)
    from screening.screen import _RESULT_COLUMNS, DERIVED_COLUMNS

    result_cols = set(_RESULT_COLUMNS) | set(DERIVED_COLUMNS)
    assert set(_TEMPLATE_COLUMNS) <= panel | result_cols


def test_review_warning_after_a_year():
    rs = load_ruleset(default_ruleset())
    reviewed = rs.meta.last_reviewed
    assert review_warnings(rs, reviewed) == []
    assert review_warnings(rs, reviewed + dt.timedelta(days=400))


@pytest.mark.parametrize(
    ("file", "change", "fragment"),
    [
        ("above_scale_low_tax_per_mu.yaml", lambda d: d.update(relative_margin_error=1), "relative_margin_error"),
        ("above_scale_low_tax_per_mu.yaml", lambda d: d.update(id="other"), "应与文件名"),
        ("above_scale_low_tax_per_mu.yaml", lambda d: d["citation"].update(source="nowhere"), "nowhere"),
        ("above_scale_low_tax_per_mu.yaml", lambda d: d["parameters"]["ratio"].update(value="abc"), "ratio"),
        ("above_scale_low_tax_per_mu.yaml", lambda d: d["messages"].pop("hit"), "hit"),
        ("_ruleset.yaml", lambda d: d["rules"].append("no_such_rule"), "no_such_rule"),
        ("_ruleset.yaml", lambda d: d["sources"]["seed2022"].update(published="2022-13-40"), "published"),
        ("dispositions.yaml", lambda d: d["entries"][0].update(disposition="关停"), "disposition"),
        ("below_scale_consecutive_c_grade.yaml", lambda d: d["parameters"]["grades"].update(value=["X"]), "X"),
    ],
)
def test_invalid_ruleset_is_a_clear_error(ruleset_copy: Path, file, change, fragment):
    edit_yaml(ruleset_copy / file, change)
    with pytest.raises(RuleSetError) as err:
        load_ruleset(ruleset_copy)
    assert fragment in str(err.value)
    assert file in str(err.value)


def test_energy_limits_with_a_bad_row_name_the_row(ruleset_copy: Path):
    path = ruleset_copy / "energy_limits.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.append("x,产品,GB 1-2020,kgce/t,abc,2020-01-01,,否,")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(RuleSetError) as err:
        load_ruleset(ruleset_copy)
    assert f"第 {len(lines)} 行" in str(err.value)


def test_missing_ruleset_dir_and_file(tmp_path: Path, ruleset_copy: Path):
    with pytest.raises(RuleSetError, match="不存在"):
        load_ruleset(tmp_path / "none")
    (ruleset_copy / "dispositions.yaml").unlink()
    with pytest.raises(RuleSetError, match="dispositions.yaml"):
        load_ruleset(ruleset_copy)


def test_overrides_are_typed_and_recorded():
    rs = load_ruleset(default_ruleset())
    rs.apply_overrides([
        "above_scale_low_tax_per_mu.ratio=0.9",
        "above_scale_low_tax_per_mu.min_group_size=3",
        "below_scale_consecutive_c_grade.grades=d, c",
        "below_scale_consecutive_low_tax_per_mu.threshold=12.5",
    ])
    assert rs.params["above_scale_low_tax_per_mu"] == {"ratio": 0.9, "min_group_size": 3}
    assert rs.params["below_scale_consecutive_c_grade"]["grades"] == ["D", "C"]
    assert rs.overrides["below_scale_consecutive_low_tax_per_mu.threshold"] == 12.5


@pytest.mark.parametrize(
    ("item", "fragment"),
    [
        ("no_rule.ratio=1", "未知规则"),
        ("above_scale_low_tax_per_mu.ratoi=1", "没有参数 ratoi"),
        ("above_scale_low_tax_per_mu.ratio=abc", "'abc' 无效：不是数字（应为数字）"),
        ("above_scale_low_tax_per_mu.min_group_size=2.5", "应为整数"),
        ("below_scale_consecutive_c_grade.grades=E", "不在允许值"),
        ("above_scale_low_tax_per_mu.ratio", "格式应为"),
    ],
)
def test_bad_override_lists_the_valid_names(item, fragment):
    rs = load_ruleset(default_ruleset())
    with pytest.raises(RuleSetError) as err:
        rs.apply_overrides([item])
    message = str(err.value)
    assert fragment in message
    assert "above_scale_low_tax_per_mu.ratio" in message and "below_scale_consecutive_low_tax_per_mu.min_land_mu" in message


@pytest.mark.parametrize("value", ["-1", "1.5", "1e308", "-1e308"])
def test_a_parameter_outside_its_range_is_refused(value):
    """``ratio=1e308`` overflowed the threshold to infinity and turned every hit into a pass."""
    rs = load_ruleset(default_ruleset())
    with pytest.raises(RuleSetError) as err:
        rs.apply_overrides([f"above_scale_low_tax_per_mu.ratio={value}"])
    assert "超出合理范围" in str(err.value) and "不大于 1" in str(err.value)


def test_a_huge_set_value_is_not_echoed_whole():
    rs = load_ruleset(default_ruleset())
    with pytest.raises(RuleSetError) as err:
        rs.apply_overrides(["above_scale_low_tax_per_mu.ratio=" + "9" * 100_000])
    assert len(str(err.value)) < 2_000
