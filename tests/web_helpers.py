"""The service database of api_helpers with a web sign-in password for each user, and a
signed-in TestClient session."""
from __future__ import annotations

import re
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
