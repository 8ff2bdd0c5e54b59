"""``screening serve`` speaks Chinese: uvicorn's start/stop lines are rewritten (api/serverlog.py),
and a port it cannot listen on is one Chinese line before uvicorn starts (exit 1)."""
from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import uvicorn

from api.serverlog import MESSAGES_ZH, ChineseServerLog, log_config, port_problem
from cli_helpers import cli


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_translated_line_is_one_uvicorn_logs():
    # an upgraded uvicorn that rewords a line would leave it in English: this says which
    source = "".join(p.read_text(encoding="utf-8") for p in Path(uvicorn.__file__).parent.rglob("*.py"))
    literal = {m: m.replace("%s://%s:%d", "{addr_format}").replace("%s://[%s]:%d", "{addr_format}") for m in MESSAGES_ZH}
    missing = [m for m, text in literal.items() if text not in source and m not in source]
    assert not missing, missing
    for english, chinese in MESSAGES_ZH.items():
        assert re.findall(r"%[a-z]", english) == re.findall(r"%[a-z]", chinese), english  # same arguments
        assert re.search(r"[\u4e00-\u9fff]", chinese) and not re.search(r"[A-Za-z]{4,}", chinese.replace("Ctrl", ""))


def test_the_filter_rewrites_known_lines_and_passes_the_others():
    known = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, "Started server process [%d]", (42,), None)
    known.color_message = "Started server process [\x1b[36m%d\x1b[0m]"
    other = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, "something else %s", ("x",), None)
    f = ChineseServerLog()
    assert f.filter(known) and f.filter(other)
    assert known.getMessage() == "服务进程已启动（进程号 42）" and not hasattr(known, "color_message")
    assert other.getMessage() == "something else x"
    assert log_config()["loggers"]["uvicorn.error"]["filters"] == ["chinese"]


def test_a_port_in_use_is_named_before_the_service_starts(tmp_path):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        assert "已被其他程序占用" in port_problem("127.0.0.1", port)
        proc = cli("serve", "--db", tmp_path / "s.duckdb", "--port", port, cwd=tmp_path, timeout=60)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"端口 {port} 已被其他程序占用" in lines[0] and "--port" in lines[0], proc.stderr
    assert port_problem("127.0.0.1", _free_port()) is None
    assert "不是本机" in port_problem("203.0.113.9", _free_port())  # TEST-NET-3: never this machine's
    assert "不是本机可用的地址" in port_problem("no such host.invalid", _free_port())


def test_the_service_says_where_it_listens_in_chinese(tmp_path):
    port = _free_port()
    script = Path(sys.executable).parent / "screening"
    env = {**os.environ, "SCREENING_RUNS_DIR": str(tmp_path / "runs")}
    server = subprocess.Popen([str(script), "serve", "--db", str(tmp_path / "s.duckdb"), "--port", str(port)],
                              cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=2).read()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("service did not start")
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert f"服务地址：http://127.0.0.1:{port}（按 Ctrl+C 停止服务）" in err, err
    assert "启动完成" in err and "服务进程已退出" in err, err
    for english in ("Uvicorn running", "Started server process", "Application startup complete"):
        assert english not in err, err


def test_every_address_the_host_names_is_probed(monkeypatch):
    """localhost may name 127.0.0.1 and ::1: the server listens on both, so a port held on the
    second is found too; an address of a family the machine has not enabled is skipped, as
    asyncio skips it."""
    import errno

    from api import serverlog

    infos = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 8000)),
             (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", 8000, 0, 0))]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: infos)
    held = {("::1", 8000, 0, 0): errno.EADDRINUSE}
    monkeypatch.setattr(serverlog, "_bind_problem", lambda f, k, p, address, host, port: (
        (held[address], "held") if address in held else None))
    assert serverlog.port_problem("localhost", 8000) == "held"
    held = {("::1", 8000, 0, 0): errno.EADDRNOTAVAIL}
    monkeypatch.setattr(serverlog, "_bind_problem", lambda f, k, p, address, host, port: (
        (held[address], "unavailable") if address in held else None))
    assert serverlog.port_problem("localhost", 8000) is None
