"""Which input tables each rule reads is the rule's own declaration (``reads:`` in its YAML, beside
its citation), not a table in the pipeline's code."""
from __future__ import annotations

from pathlib import Path

import pytest

from ruleset_helpers import edit_yaml
from screening.errors import RuleSetError
from screening.paths import default_ruleset
from screening.ruleset import load_ruleset
from screening.screen import needed_tables

pytestmark = pytest.mark.unit




def test_shipped_rules_declare_their_tables():
    rs = load_ruleset(default_ruleset())
    assert {rid: rs.rules[rid].reads for rid in rs.enabled} == {
        "above_scale_low_tax_per_mu": ["stats", "tax", "land"],
        "below_scale_consecutive_c_grade": ["stats", "land", "evaluations"],
        "below_scale_consecutive_low_tax_per_mu": ["stats", "tax", "land"],
        "energy_limit_exceeded": ["product_energy"],
    }
    assert needed_tables(rs) == {"enterprises", "stats", "tax", "land", "evaluations", "product_energy"}


def test_the_needed_tables_follow_the_yaml(ruleset_copy: Path):
    edit_yaml(ruleset_copy / "energy_limit_exceeded.yaml", lambda d: d.update(reads=["product_energy", "energy"]))
    edit_yaml(ruleset_copy / "below_scale_consecutive_c_grade.yaml", lambda d: d.update(enabled=False))
    assert needed_tables(load_ruleset(ruleset_copy)) == {"enterprises", "stats", "tax", "land", "product_energy", "energy"}


@pytest.mark.parametrize(("reads", "fragment"), [(["no_such_table"], "no_such_table"), ([], "reads"), (None, "reads")])
def test_a_wrong_declaration_is_a_clear_error(ruleset_copy: Path, reads, fragment):
    def change(d):
        if reads is None:
            d.pop("reads")
        else:
            d["reads"] = reads
    edit_yaml(ruleset_copy / "above_scale_low_tax_per_mu.yaml", change)
    with pytest.raises(RuleSetError, match=fragment) as err:
        load_ruleset(ruleset_copy)
    assert "above_scale_low_tax_per_mu.yaml" in str(err.value)
