"""The command line's own frames in Chinese: help ("Usage:", "Options:", "Commands:", "Show this
message and exit.", "[default: …]", "[required]") and usage errors ("Invalid value for …",
"Missing option …", "No such option …").

Typer 0.29 carries its own copy of click whose texts are English literals (no gettext hook
reaches them), so the frames are translated where they leave: every command's context renders
its help through :class:`ChineseContext` (set on the whole command tree by :func:`localise`),
and :func:`error_message` words a usage error in Chinese.  The descriptions themselves are
written in Chinese in the commands."""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from typer._click import core as click_core
from typer._click import exceptions as click_exceptions

#: help frames, longest first where one contains another
HELP_TEXTS: tuple[tuple[str, str], ...] = (
    ("Show this message and exit.", "显示本帮助并退出。"),
    ("COMMAND [ARGS]...", "命令 [参数]..."),
    ("[OPTIONS]", "[选项]"),
    ("Usage: ", "用法："),
    ("Options:", "选项："),
    ("Commands:", "命令："),
    ("Arguments:", "参数："),
    ("[default: ", "[默认："),
    ("[required]", "[必填]"),
    ("[env var: ", "[环境变量："),
    # a placeholder keeps its display width (a Chinese character is two columns), so that the
    # descriptions stay aligned
    ("<int range>", "<整数>      "),
    ("<float range>", "<数字>        "),
    ("<list[str]>", "<文本>     "),
    ("<list[int]>", "<整数>     "),
    ("<path>", "<路径>"),
    ("<str>  ", "<文本> "),
    ("<int>  ", "<整数> "),
    ("<str>", "<文本>"),
    ("<int>", "<整数>"),
    ("<float>", "<数字> "),
    ("<integer>", "<整数>   "),
)
#: a number option's range, as click writes it inside the brackets after the description
RANGES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?<=[\[ ])(\S+?)<=x<=(\S+?)(?=\])"), r"取值 \1—\2"),
    (re.compile(r"(?<=[\[ ])x>=(\S+?)(?=\])"), r"不小于 \1"),
    (re.compile(r"(?<=[\[ ])x<=(\S+?)(?=\])"), r"不大于 \1"),
    (re.compile(r"(?<=[\[ ])x>(\S+?)(?=\])"), r"大于 \1"),
    (re.compile(r"(?<=[\[ ])x<(\S+?)(?=\])"), r"小于 \1"),
)


#: a bracket click opens at the end of a wrapped line ("[default:" and the value on the next line)
WRAPPED_BRACKETS = re.compile(r"\[(default|env var):(?=\n)")


def translate_help(text: str) -> str:
    for english, chinese in HELP_TEXTS:
        text = text.replace(english, chinese)
    text = WRAPPED_BRACKETS.sub(lambda m: "[默认：" if m.group(1) == "default" else "[环境变量：", text)
    for pattern, chinese in RANGES:
        text = pattern.sub(chinese, text)
    return re.sub(r"(\[[^\]\n]*?); ", r"\1；", text)


class ChineseContext(click_core.Context):
    """A context whose help and usage lines are Chinese."""

    def get_help(self) -> str:
        return translate_help(super().get_help())

    def get_usage(self) -> str:
        return translate_help(super().get_usage())


#: a command's line in its group's list: its first sentence, or the words before its first
#: "：" when the sentence is longer than this (characters)
SHORT_HELP_CHARS = 40


def short_help(text: str | None) -> str:
    """The line a group's ``--help`` shows for a command with the Chinese help ``text``.

    Click shortens a help text at a word boundary; a Chinese sentence has none, so a long one
    became "..." (``screening --help`` listed evaluate, backup and verify as "...")."""
    first = (text or "").strip().split("\n\n")[0].replace("\n", "")
    first = first.split("。")[0]
    if len(first) > SHORT_HELP_CHARS and "：" in first:
        first = first.split("：")[0]
    return first


def localise(command: Any) -> Any:
    """Give ``command`` and every command below it the Chinese context and a whole short help
    line; returns ``command``."""
    command.context_class = ChineseContext
    if not getattr(command, "short_help", None) and getattr(command, "help", None):
        command.short_help = short_help(command.help)
    for sub in (getattr(command, "commands", None) or {}).values():
        localise(sub)
    return command


#: value problems as typer/pydantic word them → Chinese; {value} is the value given
VALUE_MESSAGES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"Input should be a valid integer"), "“{value}” 不是整数"),
    (re.compile(r"Input should be a valid (?:number|float)"), "“{value}” 不是数字"),
    (re.compile(r"Input should be a valid boolean"), "“{value}” 不是是/否值"),
    (re.compile(r"Input should be greater than or equal to (\S+)"), "应不小于 {0}，给的是 “{value}”"),
    (re.compile(r"Input should be less than or equal to (\S+)"), "应不大于 {0}，给的是 “{value}”"),
    (re.compile(r"Input should be greater than (\S+)"), "应大于 {0}，给的是 “{value}”"),
    (re.compile(r"Input should be less than (\S+)"), "应小于 {0}，给的是 “{value}”"),
    (re.compile(r"'?(.*?)'? is not a valid integer"), "“{0}” 不是整数"),
    (re.compile(r"'?(.*?)'? is not a valid float"), "“{0}” 不是数字"),
    (re.compile(r"'?(.*?)'? is not one of (.*?)\.?$"), "“{0}” 不是可选值之一（可选：{1}）"),
    (re.compile(r"'?(.*?)'? is not in the range (.*?)\.?$"), "“{0}” 超出范围 {1}"),
    (re.compile(r"(?:File|Directory|Path) '(.*?)' does not exist\.?"), "路径 “{0}” 不存在"),
    (re.compile(r"(?:File|Directory|Path) '(.*?)' is a directory\.?"), "“{0}” 是目录，应为文件"),
    (re.compile(r"(?:File|Directory|Path) '(.*?)' is a file\.?"), "“{0}” 是文件，应为目录"),
)


def _given(option: str, args: Sequence[str]) -> str:
    """The value given to ``option`` on the command line (for the message), or ''."""
    names = [n for n in re.split(r"\s*/\s*", option.strip("'\"")) if n]
    for i, token in enumerate(args):
        for name in names:
            if token == name and i + 1 < len(args):
                return args[i + 1]
            if token.startswith(name + "="):
                return token[len(name) + 1:]
    return ""


def _value_message(message: str, option: str, args: Sequence[str]) -> str:
    value = _given(option, args)
    for pattern, chinese in VALUE_MESSAGES:
        found = pattern.search(message)
        if found:
            return chinese.format(*found.groups(), value=value)
    if re.search(r"[A-Za-z]{3,}", message):  # an English text we do not know: say what we can
        return f"“{value}” 无效" if value else "取值无效"
    return message


def _hint(exc: Any) -> str:
    hint = exc.param_hint if exc.param_hint is not None else (exc.param.get_error_hint() if exc.param else "")
    if isinstance(hint, (list, tuple)):
        hint = " / ".join(hint)
    return str(hint).replace("'", "").replace('"', "")


def error_message(exc: click_exceptions.ClickException, args: Sequence[str]) -> str:
    """One Chinese line for a usage error, ending with where the help is."""
    ctx = getattr(exc, "ctx", None)
    where = f"；查看帮助：{ctx.command_path} --help" if ctx is not None else ""
    if isinstance(exc, click_exceptions.MissingParameter):
        kind = {"argument": "参数", "option": "选项"}.get(getattr(exc, "param_type", None) or "", "选项")
        return f"缺少必填{kind} {_hint(exc)}{where}"
    if isinstance(exc, click_exceptions.NoSuchOption):
        maybe = f"（是否想用 {'、'.join(exc.possibilities)}？）" if exc.possibilities else ""
        return f"没有选项 {exc.option_name}{maybe}{where}"
    if isinstance(exc, click_exceptions.BadParameter):
        hint = _hint(exc)
        return f"选项 {hint} 的取值无效：{_value_message(exc.message, hint, args)}{where}"
    message = exc.format_message()
    patterns = (
        (r"No such command '(.*?)'\.?", "没有命令 “{0}”"),
        (r"Got unexpected extra argument(?:s|\(s\))? \((.*?)\)", "多余的参数：{0}"),
        (r"Option '(.*?)' requires an argument\.?", "选项 {0} 需要一个取值"),
        (r"Option '(.*?)' requires (\d+) arguments\.?", "选项 {0} 需要 {1} 个取值"),
        (r"Option '(.*?)' does not take a value\.?", "选项 {0} 不带取值"),
        (r"Missing command\.?", "缺少命令"),
    )
    for pattern, chinese in patterns:
        found = re.search(pattern, message)
        if found:
            return chinese.format(*found.groups()) + where
    if re.search(r"[A-Za-z]{3,}", message):
        return f"命令行有误{where}"
    return message + where
