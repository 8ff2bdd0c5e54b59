"""Bearer tokens and roles.  Only a SHA-256 of each token is stored; tokens are random
(256 bits), so a plain hash is enough to make a stolen database useless for logging in."""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass

import duckdb

from .db import ensure_schema

ROLES = ("admin", "township", "analyst", "dashboard")


@dataclass(frozen=True)
class User:
    user_id: str
    name: str
    role: str
    township: str | None

    def sees(self, township: str | None) -> bool:
        """A township user reaches only its own township's firms."""
        return self.role != "township" or township == self.township


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def add_user(con: duckdb.DuckDBPyConnection, name: str, role: str, township: str | None) -> str:
    """Create a user and return its token (shown once, never stored)."""
    if role not in ROLES:
        raise ValueError(f"角色应为 {'、'.join(ROLES)} 之一，收到 {role!r}")
    if role == "township" and not (township or "").strip():
        raise ValueError("township 角色必须用 --township 指定所属乡镇街道")
    if role != "township" and township:
        raise ValueError("只有 township 角色可以指定 --township")
    ensure_schema(con)
    if con.execute("SELECT 1 FROM users WHERE name = ?", [name]).fetchall():
        raise ValueError(f"用户 {name} 已存在")
    token = secrets.token_urlsafe(32)
    con.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, NULL)",
                [uuid.uuid4().hex, name, role, township.strip() if township else None, token_hash(token),
                 dt.datetime.now(dt.timezone.utc)])
    return token


def revoke_user(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    ensure_schema(con)
    rows = con.execute("UPDATE users SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL RETURNING user_id",
                       [dt.datetime.now(dt.timezone.utc), name]).fetchall()
    return bool(rows)


def find_user(con: duckdb.DuckDBPyConnection, token: str) -> User | None:
    rows = con.execute("SELECT user_id, name, role, township FROM users WHERE token_sha256 = ? AND revoked_at IS NULL",
                       [token_hash(token)]).fetchall()
    return User(*rows[0]) if rows else None
