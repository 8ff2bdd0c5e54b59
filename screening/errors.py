"""Errors that end a command with a clear, one-line Chinese message (exit code 2 for bad
input, 1 for the environment, 3 for a failed audit or rule)."""
from __future__ import annotations

import errno
import os
import re
from pathlib import Path


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


class SettingsError(ScreeningError):
    """An environment variable (``SCREENING_…``) holds a value that cannot be used: one line naming
    the variable, the value and what is allowed (exit 2)."""


class EnvironmentProblem(ScreeningError):
    """The machine, not the input: no permission, disk full, read-only file system (exit 1)."""

    exit_code = 1


class PathError(ScreeningError):
    """A path given on the command line cannot be used as given (exit 2): a file where a
    directory is needed, a directory where a file is needed, a missing path."""


# errno → (bad input?, Chinese sentence with {path}); anything else is the environment's
_PATH_PROBLEMS: dict[int, tuple[bool, str]] = {
    errno.EEXIST: (True, "{path} 已存在且不是目录，请换一个目录（可以是尚不存在的目录）"),
    errno.ENOTDIR: (True, "路径 {path} 无法使用：{part} 是文件，不是目录"),
    errno.EISDIR: (True, "{path} 是目录，这里需要一个文件"),
    errno.ENOENT: (True, "找不到 {path}"),
    errno.ENAMETOOLONG: (True, "路径过长：{path}"),
    errno.EACCES: (False, "没有权限读写 {path}：请检查该目录的权限，或换一个可写的目录"),
    errno.EPERM: (False, "操作系统不允许读写 {path}：请检查该目录的权限，或换一个可写的目录"),
    errno.ENOSPC: (False, "磁盘空间不足，无法写入 {path}：请清理磁盘或换一个目录"),
    errno.EROFS: (False, "{path} 位于只读的文件系统上，无法写入：请换一个可写的目录"),
}
if hasattr(errno, "EDQUOT"):
    _PATH_PROBLEMS[errno.EDQUOT] = (False, "磁盘配额已用完，无法写入 {path}：请清理磁盘或换一个目录")

# the number Rust (Polars) and DuckDB put into their messages instead of an errno attribute
_ERRNO_IN_TEXT = re.compile(r"os error (\d+)|\"errno\":\s*\"?(\d+)")
_PATH_IN_TEXT = re.compile(r"\\?\"((?:/|[A-Za-z]:\\)[^\"\\]+)\\?\"|: ((?:/|[A-Za-z]:\\)[^\n]+)$")


def _file_part(path: Path) -> Path:
    """The first component of ``path`` that exists and is not a directory (for ENOTDIR)."""
    for part in [*reversed(path.parents), path]:
        if part.exists() and not part.is_dir():
            return part
    return path


def from_os_error(exc: OSError, path: Path | str | None = None) -> ScreeningError:
    """One Chinese line for an operating-system error, naming the path; exit 2 when the path
    given cannot be used as given, 1 when the machine refuses (permission, disk full)."""
    number = exc.errno
    text = exc.strerror or str(exc)
    if number is None:
        found = _ERRNO_IN_TEXT.search(str(exc))
        number = int(found.group(1) or found.group(2)) if found else None
    where = exc.filename or path
    if where is None:
        found = _PATH_IN_TEXT.search(str(exc))
        where = (found.group(1) or found.group(2)) if found else None
    bad_input, template = _PATH_PROBLEMS.get(number, (False, "文件操作失败：{path}（{text}）"))
    shown = str(where) if where is not None else "输出文件"
    message = template.format(path=shown, text=text,
                              part=_file_part(Path(where)) if where is not None else shown)
    return (PathError if bad_input else EnvironmentProblem)(message)


def _chain(exc: BaseException):
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [e.__cause__, e.__context__, *(a for a in e.args if isinstance(a, BaseException))]


def environment_error(exc: BaseException, path: Path | str | None = None) -> ScreeningError | None:
    """The one-line error for a failure caused by the file system, wherever it was raised
    (an OSError, or a writer's error wrapping one: xlsxwriter, Polars, DuckDB); else None.
    ``path``: the file or directory being written, named when the error does not say."""
    chain = list(_chain(exc))
    for e in chain:
        if isinstance(e, OSError):
            return from_os_error(e, path)
    for e in chain:
        found = _ERRNO_IN_TEXT.search(str(e))
        number = int(found.group(1) or found.group(2)) if found else _errno_named_in(str(e))
        if number is not None:
            return from_os_error(OSError(number, str(e)), path)
    return None


def _errno_named_in(text: str) -> int | None:
    """DuckDB names the system's message without its number ("…: Permission denied")."""
    return next((n for n in _PATH_PROBLEMS if os.strerror(n) in text), None)
