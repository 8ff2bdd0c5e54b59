"""Bearer tokens and roles.  Only a SHA-256 of each token is stored; tokens are random
(256 bits), so a plain hash is enough to make a stolen database useless for logging in."""
from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import secrets
import unicodedata
import uuid
from dataclasses import dataclass

import duckdb

from screening.sqlquote import identifier

from .db import ensure_schema, table_exists

ROLES = ("admin", "township", "analyst", "dashboard")
#: what a person reads for each role (web pages, the API's Chinese messages)
ROLE_ZH = {"admin": "经信局", "township": "乡镇街道", "analyst": "分析", "dashboard": "大屏"}


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


#: the longest user or township name
MAX_NAME = 64
#: where the townships a township user may belong to are known from: every stored run
TOWNSHIP_SOURCES = ("run_enterprises", "warn_results")


def clean_name(value: str | None, what: str = "用户名") -> str:
    """``value`` stripped, when it is a usable name: not blank, at most MAX_NAME characters,
    without ``/`` or ``\\`` (a name must be addressable as DELETE /users/{name}) and without
    control or invisible format characters.  The one check of user and township names, for
    the API and the command line alike; ValueError with a Chinese message otherwise."""
    text = (value or "").strip()
    if not text:
        raise ValueError(f"{what}不能为空")
    if len(text) > MAX_NAME:
        raise ValueError(f"{what}最多 {MAX_NAME} 个字符")
    if "/" in text or "\\" in text:
        raise ValueError(f"{what}不能包含 / 或 \\")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in text):
        raise ValueError(f"{what}不能包含控制字符或不可见字符")
    return text


def known_townships(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The townships of the firms in the stored runs (screening and warning runs)."""
    sources = [t for t in TOWNSHIP_SOURCES if table_exists(con, t)]
    if not sources:
        return []
    union = " UNION ".join(f"SELECT DISTINCT township FROM {identifier(t)}" for t in sources)
    return sorted(r[0] for r in con.execute(f"SELECT township FROM ({union}) WHERE township IS NOT NULL").fetchall())


def nearest_townships(township: str, known: list[str]) -> list[str]:
    """Up to three known townships a mistyped one may mean (``柳市`` → ``柳市镇``)."""
    near = [t for t in known if township in t or t in township]
    near += [t for t in difflib.get_close_matches(township, known, n=3, cutoff=0.5) if t not in near]
    return near[:3]


def check_township(con: duckdb.DuckDBPyConnection, township: str, confirm_new: bool) -> str:
    """``township`` when a stored run knows it, or the admin confirmed it as new, or no stored run
    names any township yet (a fresh database: nothing to check against, and the contract's
    ``users add --township T`` must work before the first run); else a ValueError naming the
    nearest known ones (``柳市`` → ``柳市镇``)."""
    township = clean_name(township, "乡镇街道")
    known = known_townships(con)
    if confirm_new or township in known or not known:
        return township
    near = nearest_townships(township, known)
    hint = f"是否指：{'、'.join(near)}？" if near else ""
    raise ValueError(f"乡镇街道 {township} 不在已保存运行的企业名录中；{hint}"
                     f"如确为新的乡镇街道，请加 --new-township（接口：confirm_new_township: true）")


def add_user(con: duckdb.DuckDBPyConnection, name: str, role: str, township: str | None,
             confirm_new_township: bool = False) -> str:
    """Create a user and return its token (shown once, never stored).  The name and the
    township are checked here, for the API and the command line alike."""
    name = clean_name(name)
    if role not in ROLES:
        raise ValueError(f"角色应为 {'、'.join(ROLES)} 之一，收到 {role!r}")
    if role == "township" and not (township or "").strip():
        raise ValueError("township 角色必须用 --township 指定所属乡镇街道")
    if role != "township" and township:
        raise ValueError("只有 township 角色可以指定 --township")
    ensure_schema(con)
    if role == "township":
        township = check_township(con, township, confirm_new_township)
    if con.execute("SELECT 1 FROM users WHERE name = ?", [name]).fetchall():
        raise ValueError(f"用户 {name} 已存在")
    token = secrets.token_urlsafe(32)
    con.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, NULL)",
                [uuid.uuid4().hex, name, role, township, token_hash(token), dt.datetime.now(dt.timezone.utc)])
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


# Passwords for the web app's sign-in (api/web).  Only an argon2id hash is stored, in its own
# table beside users; bearer tokens stay for API clients.

#: the shortest password accepted
MIN_PASSWORD = 10
MAX_PASSWORD = 256


def _hasher():
    from argon2 import PasswordHasher
    return PasswordHasher()


def check_password_rules(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"密码至少 {MIN_PASSWORD} 个字符")
    if len(password) > MAX_PASSWORD:
        raise ValueError(f"密码最多 {MAX_PASSWORD} 个字符")
    if password.strip() != password or any(unicodedata.category(c) in ("Cc", "Cf") for c in password):
        raise ValueError("密码不能以空格开头或结尾，不能包含控制字符")
    return password


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def set_password(con: duckdb.DuckDBPyConnection, name: str, password: str) -> str:
    """Set the password of an active user; returns the user's id (ValueError in Chinese when the
    user or the password is not usable)."""
    ensure_schema(con)
    password = check_password_rules(password)
    rows = con.execute("SELECT user_id FROM users WHERE name = ? AND revoked_at IS NULL", [name]).fetchall()
    if not rows:
        raise ValueError(f"没有名为 {name} 的有效用户")
    con.execute("INSERT OR REPLACE INTO user_passwords VALUES (?, ?, ?)",
                [rows[0][0], _hasher().hash(password), dt.datetime.now(dt.timezone.utc)])
    return rows[0][0]


_DUMMY_HASH: list[str] = []


def check_password(con: duckdb.DuckDBPyConnection, name: str, password: str) -> User | None:
    """The active user with this name and password, else None.  An unknown name costs the same
    hashing time as a wrong password, so that timing does not reveal which names exist."""
    from argon2.exceptions import InvalidHashError, VerificationError

    rows = con.execute("""SELECT u.user_id, u.name, u.role, u.township, p.password_argon2
                          FROM users u JOIN user_passwords p USING (user_id)
                          WHERE u.name = ? AND u.revoked_at IS NULL""", [name]).fetchall()
    hasher = _hasher()
    if not rows:
        if not _DUMMY_HASH:
            _DUMMY_HASH.append(hasher.hash(secrets.token_urlsafe(16)))
        try:
            hasher.verify(_DUMMY_HASH[0], password)
        except VerificationError:
            pass
        return None
    try:
        hasher.verify(rows[0][4], password)
    except (VerificationError, InvalidHashError):
        return None
    return User(*rows[0][:4])


def active_user(con: duckdb.DuckDBPyConnection, user_id: str) -> User | None:
    rows = con.execute("SELECT user_id, name, role, township FROM users WHERE user_id = ? AND revoked_at IS NULL",
                       [user_id]).fetchall()
    return User(*rows[0]) if rows else None
