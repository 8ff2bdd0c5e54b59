"""A screened sample database with one user per role, for the service tests."""
from __future__ import annotations

from pathlib import Path

from api.auth import add_user, revoke_user
from cli_helpers import cli
from screening.store import connect

TOWNSHIP = "柳市镇"
OTHER = "乐成街道"


def build_service_db(root: Path) -> tuple[Path, dict[str, str]]:
    db = root / "s.duckdb"
    proc = cli("run", "--out", root / "out", "--db", db, cwd=root)
    assert proc.returncode == 0, proc.stderr
    proc = cli("users", "add", "--db", db, "--name", "经信局", "--role", "admin", cwd=root)
    assert proc.returncode == 0, proc.stderr
    tokens = {"admin": proc.stdout.strip().splitlines()[-1]}
    con = connect(db)
    tokens["township"] = add_user(con, "柳市", "township", TOWNSHIP)
    tokens["other_township"] = add_user(con, "乐成", "township", OTHER)
    tokens["analyst"] = add_user(con, "分析", "analyst", None)
    tokens["dashboard"] = add_user(con, "看板", "dashboard", None)
    tokens["revoked"] = add_user(con, "离职", "admin", None)
    revoke_user(con, "离职")
    con.close()
    return db, tokens


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
