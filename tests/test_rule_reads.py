"""Which input tables each rule reads is the rule's own declaration (``reads:`` in its YAML, beside
its citation), not a table in the pipeline's code."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from screening.errors import RuleSetError
from screening.paths import default_ruleset
from screening.ruleset import load_ruleset
from screening.screen import needed_tables

pytestmark = pytest.mark.unit


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(default_ruleset(), target)
    return target


def _edit(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def test_shipped_rules_declare_their_tables():
    rs = load_ruleset(default_ruleset())
    assert {rid: rs.rules[rid].reads for rid in rs.enabled} == {
        "above_scale_low_tax_per_mu": ["stats", "tax", "land"],
        "below_scale_consecutive_c_grade": ["stats", "land", "evaluations"],
        "below_scale_consecutive_low_tax_per_mu": ["stats", "tax", "land"],
        "energy_limit_exceeded": ["product_energy"],
    }
    assert needed_tables(rs) == {"enterprises", "stats", "tax", "land", "evaluations", "product_energy"}


def test_the_needed_tables_follow_the_yaml(rules: Path):
    _edit(rules / "energy_limit_exceeded.yaml", lambda d: d.update(reads=["product_energy", "energy"]))
    _edit(rules / "below_scale_consecutive_c_grade.yaml", lambda d: d.update(enabled=False))
    assert needed_tables(load_ruleset(rules)) == {"enterprises", "stats", "tax", "land", "product_energy", "energy"}


@pytest.mark.parametrize(("reads", "fragment"), [(["no_such_table"], "no_such_table"), ([], "reads"), (None, "reads")])
def test_a_wrong_declaration_is_a_clear_error(rules: Path, reads, fragment):
    def change(d):
        if reads is None:
            d.pop("reads")
        else:
            d["reads"] = reads
    _edit(rules / "above_scale_low_tax_per_mu.yaml", change)
    with pytest.raises(RuleSetError, match=fragment) as err:
        load_ruleset(rules)
    assert "above_scale_low_tax_per_mu.yaml" in str(err.value)
