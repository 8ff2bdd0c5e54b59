"""Sign-in sessions of the web app: a random session id in an HttpOnly, SameSite=Strict cookie,
held in this process's memory (bounded) with a CSRF token bound to it, idle expiry, and a
throttle on failed sign-ins per user name and per client address (bounded too).

The session is the second way to authenticate (beside bearer tokens): api.deps.current_user
calls :func:`session_user`, so pages and API routes apply the same role and township rules."""
from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from fastapi import HTTPException, Request, status

from .auth import User, active_user

COOKIE = "screening_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: sessions and throttle keys held at most (the oldest are dropped first)
MAX_SESSIONS = 10_000
MAX_THROTTLE_KEYS = 10_000


@dataclass
class Session:
    user_id: str
    csrf: str
    last_seen: float
    created: float = field(default_factory=time.monotonic)


def _key(session_id: str) -> str:
    # held by hash: a dump of the process memory does not hand out live cookies
    return hashlib.sha256(session_id.encode()).hexdigest()


class Sessions:
    def __init__(self, idle_seconds: float, clock=time.monotonic) -> None:
        self.idle, self.clock = idle_seconds, clock
        self._items: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, user_id: str) -> tuple[str, Session]:
        session_id = secrets.token_urlsafe(32)
        session = Session(user_id, secrets.token_urlsafe(32), self.clock())
        with self._lock:
            self._items[_key(session_id)] = session
            while len(self._items) > MAX_SESSIONS:
                self._items.popitem(last=False)
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        key, now = _key(session_id), self.clock()
        with self._lock:
            session = self._items.get(key)
            if session is None:
                return None
            if now - session.last_seen > self.idle:
                del self._items[key]
                return None
            session.last_seen = now
            self._items.move_to_end(key)
            return session

    def drop(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._items.pop(_key(session_id), None)

    def drop_user(self, user_id: str, keep: str | None = None) -> None:
        """Sign the user out everywhere (after a password change), except the session ``keep``."""
        kept = _key(keep) if keep else None
        with self._lock:
            for key in [k for k, s in self._items.items() if s.user_id == user_id and k != kept]:
                del self._items[key]


def name_key(name: str) -> str:
    """The sign-in throttle's key for a user name (as typed, stripped)."""
    return f"name:{name.strip()}"


def address_key(client: str) -> str:
    """The sign-in throttle's key for a client address."""
    return f"addr:{client}"


class Throttle:
    """Failed sign-ins counted per key (a user name, a client address); a key with
    ``max_failures`` failures inside ``lockout`` seconds is refused until they age out."""

    def __init__(self, max_failures: int, lockout_seconds: float, clock=time.monotonic) -> None:
        self.max, self.lockout, self.clock = max_failures, lockout_seconds, clock
        self._failures: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> list[float]:
        times = [t for t in self._failures.get(key, []) if now - t < self.lockout]
        if times:
            self._failures[key] = times
        else:
            self._failures.pop(key, None)
        return times

    def wait(self, *keys: str) -> int:
        """Seconds until sign-in is allowed again for these keys (0: allowed now)."""
        now = self.clock()
        with self._lock:
            waits = [self.lockout - (now - times[-self.max]) for key in keys
                     if len(times := self._recent(key, now)) >= self.max]
        return int(max(waits, default=0)) + (1 if waits else 0)

    def fail(self, *keys: str) -> None:
        now = self.clock()
        with self._lock:
            for key in keys:
                times = self._recent(key, now)
                self._failures[key] = (times + [now])[-self.max:]
                self._failures.move_to_end(key)
            while len(self._failures) > MAX_THROTTLE_KEYS:
                self._failures.popitem(last=False)

    def clear(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)


def current_session(request: Request) -> tuple[str, Session] | None:
    sessions: Sessions | None = getattr(request.app.state, "web_sessions", None)
    session_id = request.cookies.get(COOKIE)
    session = sessions.get(session_id) if sessions is not None else None
    return None if session is None else (session_id, session)


async def session_user(request: Request, cursor) -> User | None:
    """The signed-in user of the request's session cookie, or None.  A request that changes
    anything (not GET/HEAD/OPTIONS) must carry the session's CSRF token, in the form field
    ``csrf_token`` or the header ``X-CSRF-Token``: 403 otherwise."""
    found = current_session(request)
    if found is None:
        return None
    _, session = found
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER)
        if sent is None and request.headers.get("content-type", "").startswith(
                ("application/x-www-form-urlencoded", "multipart/form-data")):
            sent = (await request.form()).get(CSRF_FIELD)  # parsed once per request (cached)
        if not isinstance(sent, str) or not secrets.compare_digest(sent, session.csrf):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "表单已过期或来源不明（缺少 CSRF 令牌），请刷新页面后重试")
    user = active_user(cursor, session.user_id)
    if user is None:  # revoked since sign-in
        request.app.state.web_sessions.drop(request.cookies.get(COOKIE))
    request.state.csrf_token = session.csrf
    return user
