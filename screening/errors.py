"""Errors that end a run with a clear, one-line Chinese message (exit code 2)."""
from __future__ import annotations


class ScreeningError(Exception):
    """Base class: the message is shown to the user as is, without a traceback."""

    exit_code = 2


class InputError(ScreeningError):
    """An input file cannot be used at all (unreadable, missing, lacks a required column)."""


class RuleSetError(ScreeningError):
    """The rule set or a --set override is invalid."""


class AuditError(ScreeningError):
    """The post-run audit found (enterprise, rule) pairs without exactly one status."""

    exit_code = 3


class RuleExecutionError(ScreeningError):
    """A rule's SQL failed; carries the SQL and parameters for diagnosis."""

    exit_code = 3

    def __init__(self, rule_id: str, sql: str, params: dict, cause: Exception):
        self.rule_id, self.sql, self.params, self.cause = rule_id, sql, params, cause
        super().__init__(f"规则 {rule_id} 的 SQL 执行失败：{cause}\n参数：{params}\nSQL：\n{sql}")
