"""The advisory data check scores the firms (anomaly.score, Polars) on a thread of its own beside
the rules, the audit and the list (screen._Scoring, issue 15): the run's decisions, its stages
and its errors are those of the check run in line, and no thread outlives screen()."""
from __future__ import annotations

import threading

import pytest

import screening
from screening import anomaly
from screening.engine import Engine
from screening.anomaly import AnomalyConfigError
from screening.errors import RuleExecutionError
from screening.paths import sample_data_dir
from screening.screen import screen

YEAR = 2022
THREAD = "screening-data-check"
STAGES = ["加载规则集", "装载数据", anomaly.STAGE, "执行规则", "审计", "生成说明与清单"]


@pytest.fixture(scope="module")
def sample_inputs():
    return screening.load_inputs(sample_data_dir())


def _check_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD]


def test_the_rules_run_while_the_check_scores(sample_inputs, monkeypatch):
    """The check scores on another thread while the rules insert their results (in line, the
    rules would only start once the scoring had returned: the wait below would time out)."""
    rules_started = threading.Event()
    seen: dict[str, object] = {}
    score, insert = anomaly.score, Engine.insert

    def slow_score(frame, list_year, *args):
        seen["thread"] = threading.current_thread().name
        seen["rules_ran_meanwhile"] = rules_started.wait(timeout=10)
        return score(frame, list_year, *args)

    def spy_insert(self, table, label, select_sql, params):
        rules_started.set()
        return insert(self, table, label, select_sql, params)

    monkeypatch.setattr(anomaly, "score", slow_score)
    monkeypatch.setattr(Engine, "insert", spy_insert)
    with screen(inputs=sample_inputs, year=YEAR) as s:
        assert s.audit.height == 0 and s.anomalies.height and s.anomaly_summary["scored"]
        assert s.key_energy is not None and s.key_energy["firms"] >= 0
    assert seen == {"thread": THREAD, "rules_ran_meanwhile": True}
    assert not _check_threads()


def test_stages_and_timings_keep_their_order(sample_inputs):
    stages: list[str] = []
    with screen(inputs=sample_inputs, year=YEAR, progress=stages.append) as s:
        assert list(s.timings) == STAGES
        assert s.timings[anomaly.STAGE] > 0
    assert stages == STAGES
    with screen(inputs=sample_inputs, year=YEAR, anomalies=False) as s:
        assert list(s.timings) == [x for x in STAGES if x != anomaly.STAGE]
        assert s.key_energy is not None  # the key energy users are not part of the advisory check


def test_an_error_of_the_check_is_raised_as_it_was_and_no_thread_is_left(sample_inputs, monkeypatch):
    def broken(frame, list_year, *args):
        raise AnomalyConfigError("数据核查设置引用了不存在的字段：x")

    monkeypatch.setattr(anomaly, "score", broken)
    with pytest.raises(AnomalyConfigError, match="^数据核查设置引用了不存在的字段：x$"):
        screen(inputs=sample_inputs, year=YEAR)
    assert not _check_threads()


def test_a_failing_query_of_the_check_is_raised_with_its_sql(sample_inputs, monkeypatch):
    """An engine error while the check reads its figures is the same RuleExecutionError as before."""
    def broken(engine):
        return engine.query("anomaly/features.sql", "SELECT no_such_column FROM firm_years", {})

    monkeypatch.setattr(anomaly, "features", broken)
    with pytest.raises(RuleExecutionError, match="^规则 anomaly/features.sql 的 SQL 执行失败") as err:
        screen(inputs=sample_inputs, year=YEAR)
    assert "no_such_column" in str(err.value)
    assert not _check_threads()


def test_a_failing_rule_waits_for_the_check_and_closes_the_engine_after_it(sample_inputs, monkeypatch):
    """A rule's error is raised as before; the scoring's thread has ended before screen() closes
    the engine and returns."""
    events: list[str] = []
    score, close = anomaly.score, Engine.close

    def slow_score(frame, list_year, *args):
        threading.Event().wait(0.3)  # still scoring when the rule fails
        out = score(frame, list_year, *args)
        events.append("scored")
        return out

    def failing_insert(self, table, label, select_sql, params):
        raise RuleExecutionError(label, select_sql, params, ValueError("坏了"))

    def spy_close(self):
        events.append("close")
        return close(self)

    monkeypatch.setattr(anomaly, "score", slow_score)
    monkeypatch.setattr(Engine, "insert", failing_insert)
    monkeypatch.setattr(Engine, "close", spy_close)
    with pytest.raises(RuleExecutionError, match="坏了"):
        screen(inputs=sample_inputs, year=YEAR)
    assert not _check_threads()
    assert events == ["scored", "close"]


def test_when_both_fail_the_check_error_comes_first_as_in_line(sample_inputs, monkeypatch):
    """In line the check ran, and failed, before the rules: its error is the one raised."""
    def broken(frame, list_year, *args):
        raise AnomalyConfigError("数据核查设置无效")

    def failing_insert(self, table, label, select_sql, params):
        raise RuleExecutionError(label, select_sql, params, ValueError("坏了"))

    monkeypatch.setattr(anomaly, "score", broken)
    monkeypatch.setattr(Engine, "insert", failing_insert)
    with pytest.raises(AnomalyConfigError, match="^数据核查设置无效$") as err:
        screen(inputs=sample_inputs, year=YEAR)
    assert err.value.__context__ is None  # not chained to the rule's error
    assert not _check_threads()


def test_an_interrupt_of_the_run_is_not_replaced_and_leaves_no_thread(sample_inputs, monkeypatch):
    def interrupted(self, table, label, select_sql, params):
        raise KeyboardInterrupt

    monkeypatch.setattr(Engine, "insert", interrupted)
    with pytest.raises(KeyboardInterrupt):
        screen(inputs=sample_inputs, year=YEAR)
    assert not _check_threads()
