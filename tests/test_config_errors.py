"""The YAML files people edit (rule set, notice, measures policy, warning and data-check
settings, 亩均评价 methods) are checked by pydantic; a mistake is one Chinese line naming the
file, the key as written and what was wrong, never pydantic's English ("Field required",
"Input should be …", "Extra inputs are not permitted")."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from screening import anomaly
from screening.errors import ScreeningError
from screening.paths import default_ruleset

ENGLISH = re.compile(r"Field required|Input should|Extra inputs|Value error|valid (integer|number|string)")


def _edited(src: Path, dst: Path, change) -> Path:
    data = yaml.safe_load(src.read_text(encoding="utf-8"))
    change(data)
    dst.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return dst


@pytest.fixture
def ruleset(tmp_path: Path) -> Path:
    copy = tmp_path / "rules"
    shutil.copytree(default_ruleset(), copy)
    return copy


def _message(load) -> str:
    with pytest.raises(ScreeningError) as caught:
        load()
    text = str(caught.value)
    assert not ENGLISH.search(text), text
    return text


def test_a_rule_set_mistake_is_said_in_chinese(ruleset: Path):
    from screening.ruleset import load_ruleset

    _edited(ruleset / "above_scale_low_tax_per_mu.yaml", ruleset / "above_scale_low_tax_per_mu.yaml",
            lambda d: d.pop("title"))
    text = _message(lambda: load_ruleset(ruleset))
    assert "above_scale_low_tax_per_mu.yaml" in text and "title 缺少必填项" in text, text


def test_an_unknown_key_lists_the_keys_allowed(ruleset: Path):
    from screening.ruleset import load_ruleset

    _edited(ruleset / "_ruleset.yaml", ruleset / "_ruleset.yaml", lambda d: d.update(titel="x"))
    text = _message(lambda: load_ruleset(ruleset))
    assert "titel 是不认识的键" in text and "可用的键" in text, text


def test_the_notice_and_the_measures_policy_say_their_mistakes_in_chinese(ruleset: Path):
    from screening.final import NOTICE_FILE, notice_config
    from screening.measures.policy import FILE, load_measures
    from screening.ruleset import load_ruleset

    rs = load_ruleset(ruleset)
    _edited(ruleset / NOTICE_FILE, ruleset / NOTICE_FILE, lambda d: d.update(unexpected_key=1))
    text = _message(lambda: notice_config(rs))
    assert NOTICE_FILE in text and "unexpected_key 是不认识的键" in text, text
    _edited(ruleset / FILE, ruleset / FILE, lambda d: d.update(unexpected_key=1))
    text = _message(lambda: load_measures(ruleset))
    assert FILE in text and "unexpected_key 是不认识的键" in text, text


def test_the_warning_and_data_check_settings_say_their_mistakes_in_chinese(tmp_path: Path):
    from screening.warn.config import DEFAULT_CONFIG, load_config

    bad = _edited(DEFAULT_CONFIG, tmp_path / "warn.yaml", lambda d: d.update(unexpected_key=1))
    text = _message(lambda: load_config(bad))
    assert "unexpected_key 是不认识的键" in text, text
    bad = _edited(anomaly.DEFAULT_CONFIG, tmp_path / "anomaly.yaml", lambda d: d.update(seed="abc"))
    text = _message(lambda: anomaly.load_config(bad))
    assert "seed 应为整数" in text and "abc" in text, text
