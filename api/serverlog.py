"""The service's own log lines in Chinese: uvicorn's start, address and stop messages, and
its refusal of a port another program holds, as the person who started the service reads them.

uvicorn logs them through its logger ``uvicorn.error`` with fixed format strings; the filter
swaps a known format string for its Chinese one (the arguments stay) and passes every other
line as it is.  ``tests/test_serverlog.py`` checks that each string is still uvicorn's."""
from __future__ import annotations

import copy
import logging
from typing import Any

#: uvicorn's format string -> the Chinese line (same %-arguments, same order)
MESSAGES_ZH: dict[str, str] = {
    "Started server process [%d]": "服务进程已启动（进程号 %d）",
    "Waiting for application startup.": "正在启动……",
    "Application startup complete.": "启动完成",
    "Uvicorn running on %s://%s:%d (Press CTRL+C to quit)": "服务地址：%s://%s:%d（按 Ctrl+C 停止服务）",
    "Uvicorn running on %s://[%s]:%d (Press CTRL+C to quit)": "服务地址：%s://[%s]:%d（按 Ctrl+C 停止服务）",
    "Shutting down": "正在停止服务……",
    "Waiting for connections to close. (CTRL+C to force quit)": "等待连接关闭（再按 Ctrl+C 立即退出）",
    "Waiting for background tasks to complete. (CTRL+C to force quit)": "等待后台任务完成（再按 Ctrl+C 立即退出）",
    "Waiting for application shutdown.": "正在停止……",
    "Application shutdown complete.": "已停止",
    "Finished server process [%d]": "服务进程已退出（进程号 %d）",
    "Application startup failed. Exiting.": "启动失败，服务已退出",
}


class ChineseServerLog(logging.Filter):
    """Rewrites uvicorn's known lines into Chinese; never drops a line."""

    def filter(self, record: logging.LogRecord) -> bool:
        zh = MESSAGES_ZH.get(record.msg) if isinstance(record.msg, str) else None
        if zh is not None:
            record.msg = zh
            record.__dict__.pop("color_message", None)  # uvicorn's coloured copy of the English line
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration with :class:`ChineseServerLog` on its ``uvicorn.error`` logger."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["chinese"] = {"()": ChineseServerLog}
    config["loggers"].setdefault("uvicorn.error", {})["filters"] = ["chinese"]
    return config


def port_problem(host: str, port: int) -> str | None:
    """Why the service could not listen on ``host:port`` (in use, not an address of this machine,
    not allowed), in Chinese; None when it can.  Checked before the service starts, so that the
    person who starts it reads one line of what to do rather than uvicorn's English error."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError, OverflowError):
        return f"无法在 {host} 上启动服务：这不是本机可用的地址（--host）"
    # the server listens on each address the host names, skipping one of a family this machine
    # has not enabled (asyncio's create_server does: EADDRNOTAVAIL), so the probe does the same
    problems = [_bind_problem(family, kind, proto, address, host, port)
                for family, kind, proto, _, address in infos]
    unavailable = [p for p in problems if p is not None and p[0] == errno.EADDRNOTAVAIL]
    refused = [p for p in problems if p is not None and p[0] != errno.EADDRNOTAVAIL]
    if refused:
        return refused[0][1]
    if unavailable and len(unavailable) == len(problems):
        return unavailable[0][1]
    return None


def _bind_problem(family: int, kind: int, proto: int, address: tuple, host: str,
                  port: int) -> tuple[int | None, str] | None:
    """(errno, Chinese reason) when a socket cannot be bound to ``address``; None when it can."""
    import errno
    import os
    import socket

    with socket.socket(family, kind, proto) as probe:
        if os.name != "nt":  # as uvicorn binds; on Windows the option would let a held port be bound
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                reason = (f"端口 {port} 已被其他程序占用，服务未启动：请先停止占用该端口的程序"
                          f"（例如另一个 screening serve），或用 --port 指定其他端口")
            elif exc.errno in (errno.EACCES, errno.EPERM):
                reason = f"没有权限使用端口 {port}（1024 以下的端口需要管理员权限），服务未启动：请用 --port 指定 1024 以上的端口"
            elif exc.errno == errno.EADDRNOTAVAIL:
                reason = f"无法在 {host} 上启动服务：这不是本机的地址（--host）"
            else:
                reason = f"无法在 {host}:{port} 上启动服务：{exc.strerror or exc}"
            return exc.errno, reason
    return None
