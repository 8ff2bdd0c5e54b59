"""The service database of api_helpers with a web sign-in password for each user, a
signed-in TestClient session, and the app served on 127.0.0.1 for the browser tests."""
from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient

from api.auth import set_password
from api_helpers import build_service_db
from screening.store import connect

#: user name of each role (api_helpers.build_service_db)
NAMES = {"admin": "经信局", "township": "柳市", "other_township": "乐成", "analyst": "分析", "dashboard": "看板"}
XSS = "<script>alert(1)</script>=HYPERLINK(\"http://x\")"


def password(role: str) -> str:
    return f"口令-{role}-0123456789"


def build_web_db(root: Path) -> tuple[Path, dict[str, str], str]:
    """(database, bearer tokens, the code of a listed firm of 柳市镇 renamed to an XSS payload)."""
    db, tokens = build_service_db(root)
    con = connect(db)
    for role, name in NAMES.items():
        set_password(con, name, password(role))
    firm = con.execute("SELECT uscc FROM run_list WHERE township = '柳市镇' ORDER BY uscc DESC LIMIT 1").fetchall()[0][0]
    for table in ("run_list", "run_enterprises"):
        con.execute(f"UPDATE {table} SET name = ? WHERE uscc = ?", [XSS, firm])
    con.close()
    return db, tokens, firm


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_in(client: TestClient, role: str) -> str:
    """Sign ``client`` in as the role's user; returns the session's CSRF token."""
    client.cookies.clear()
    token = csrf_of(client.get("/login").text)
    answer = client.post("/login", data={"name": NAMES[role], "password": password(role), "csrf_token": token},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return csrf_of(client.get("/account").text)


@contextmanager
def served(app) -> Iterator[str]:
    """``app`` served by uvicorn in a thread on 127.0.0.1 (a free port, never another address);
    yields its base URL and stops the server on exit."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=lambda: asyncio.run(srv.serve(sockets=[sock])), daemon=True)
    thread.start()
    try:
        for _ in range(300):
            if srv.started:
                break
            threading.Event().wait(0.05)
        assert srv.started, "服务未能启动"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
        sock.close()
