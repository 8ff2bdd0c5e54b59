"""Hand work over to a running service instead of meeting its lock on the database file.

DuckDB lets one process hold a file read-write, and ``screening serve`` holds it while it runs.
The service therefore announces itself in a file beside the database
(``<db>.service.json``: address, process id and a one-time local token, readable by the
owner only).  A command that finds the database locked reads that file and asks the service
to do the write: ``screening run`` asks the service for a staging slot, stores its run in that
file and the service imports it in one transaction (see :class:`Staging`); ``screening users``
calls the user routes.  Whoever can read the file
could open the database itself, so the token grants nothing the file system did not.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import secrets
import stat
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ScreeningError

#: the name the service's audit trail records for work handed over by a local command
HANDOVER_USER = "本机命令行"


class HandoverError(ScreeningError):
    exit_code = 1


class Refused(HandoverError):
    """The service refused what the command asked (bad input: exit 2 as without a service)."""
    exit_code = 2


def service_file(db: Path) -> Path:
    return db.parent / f"{db.name}.service.json"


def announce(db: Path, url: str) -> str:
    """Write the service file (owner-only) and return the token it holds."""
    token = secrets.token_urlsafe(32)
    path = service_file(db)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"url": url, "pid": os.getpid(), "token": token}, f)
    os.replace(tmp, path)
    return token


def withdraw(db: Path, token: str) -> None:
    """Remove the service file, unless another service has announced itself since."""
    path = service_file(db)
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("token") == token:
            path.unlink()
    except (OSError, ValueError):
        pass


#: seconds to reach the service: it listens on this machine, so a connection that is not made
#: at once will not be made (a frozen service, a firewall)
CONNECT_TIMEOUT = 5.0
#: seconds to wait for the answer of an ordinary call (a user, a staging slot): each is a few
#: small writes to the database
CALL_TIMEOUT = 30.0
#: seconds to wait for an import: a province's run (a million firms, four million result
#: rows) is copied in well under a minute on the 2-core reference machine, so five minutes
#: leave room for a busy service without making a frozen one look like work in progress
IMPORT_TIMEOUT = 300.0


@dataclass(frozen=True)
class Service:
    url: str
    token: str
    announced_in: Path
    pid: int = 0

    def call(self, method: str, route: str, body: dict[str, Any] | None = None,
             timeout: float | None = None) -> dict:
        """One request to the service: CONNECT_TIMEOUT to connect, ``timeout`` (default
        CALL_TIMEOUT) for the answer; a service that stays silent is one Chinese line."""
        timeout = CALL_TIMEOUT if timeout is None else timeout
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        address = urllib.parse.urlsplit(self.url)
        connection = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port,
                                                timeout=CONNECT_TIMEOUT)
        waited = CONNECT_TIMEOUT  # until connected, then the answer's
        try:
            connection.connect()
            waited = timeout
            connection.sock.settimeout(timeout)
            connection.request(method, address.path.rstrip("/") + route, body=data, headers={
                "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
            response = connection.getresponse()
            payload = response.read()
        except TimeoutError:
            raise HandoverError(f"数据库正被服务占用，但该服务（{self.url}，PID {self.pid}）在 {waited:g} 秒内没有响应，"
                                f"可能已停止响应；请检查或重启服务后重试") from None
        except (OSError, http.client.HTTPException) as exc:
            raise HandoverError(f"数据库正被服务占用，但无法连接该服务（{self.url}，见 {self.announced_in}）："
                                f"{exc}") from None
        finally:
            connection.close()
        if response.status >= 400:
            try:
                detail = json.loads(payload).get("detail", "")
            except (ValueError, AttributeError):
                detail = ""
            refusal = Refused if response.status in (404, 409, 422) else HandoverError
            raise refusal(f"服务（{self.url}）拒绝了请求：{response.status} {detail}".rstrip())
        try:
            return json.loads(payload or b"{}")
        except ValueError:
            raise HandoverError(f"服务（{self.url}）的回答不是 JSON，可能不是本程序的服务") from None


def find(db: Path) -> Service | None:
    """The service holding ``db``, if one announced itself and its process is alive."""
    path = service_file(db)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        url, token, pid = str(info["url"]), str(info["token"]), int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _alive(pid):
        return None
    return Service(url, token, path, pid)


def _alive(pid: int) -> bool:
    if os.name == "nt":  # signal 0 means CTRL_C_EVENT there: let the connection attempt decide
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by another user
    except OSError:
        return False
    return True


# ---------------------------------------------------------------- staging (POST /runs/staging, /runs/import)

#: the one answer to an import the service did not stage: whatever was wrong, the same words
NOT_STAGED = "只能导入服务为本次交接暂存的运行记录：暂存凭据无效、已使用或已过期，或文件不是本程序写出的运行记录"
#: seconds a staging slot stays valid (a province's run is written in well under a minute)
STAGING_TTL = 3600.0
#: slots held at once; beyond it the oldest goes (a hand-over needs one for a minute or so)
MAX_SLOTS = 64


class NotStaged(HandoverError):
    exit_code = 2

    def __init__(self) -> None:
        super().__init__(NOT_STAGED)


def staging_dir(db: Path) -> Path:
    return db.parent / f"{db.name}.staging"


def discard(path: Path) -> None:
    """Remove a staged file and its WAL."""
    for leftover in (path, path.with_name(path.name + ".wal")):
        try:
            leftover.unlink(missing_ok=True)
        except OSError:
            pass


class Staging:
    """The service's staging directory beside the database (mode 0700) and the one-time
    slots it issued.

    A local command that finds the database held asks for a slot (``POST /runs/staging``):
    a file name the service generated in its own directory and a one-time token.  It writes
    its run there and hands the token back (``POST /runs/import``); the service imports only
    the file of a token it issued, unused and unexpired, and only while that file is still a
    regular file of the service's user with one link, in that directory.  No path from a
    request ever reaches the file system, and a file is imported at most once.
    """

    def __init__(self, db: Path, ttl: float = STAGING_TTL):
        self.directory = staging_dir(Path(db).resolve())
        self.ttl = ttl
        self.directory.mkdir(mode=0o700, exist_ok=True)
        if self.directory.is_symlink() or not self.directory.is_dir():
            raise HandoverError(f"暂存目录 {self.directory} 不是目录")
        self.directory.chmod(0o700)
        for leftover in self.directory.iterdir():  # slots die with the service that issued them
            if leftover.is_file() and not leftover.is_symlink():
                discard(leftover)
        self._slots: dict[str, tuple[Path, float]] = {}
        self._lock = threading.Lock()

    def issue(self) -> tuple[Path, str]:
        token = secrets.token_urlsafe(32)
        path = self.directory / f"{secrets.token_hex(16)}.duckdb"
        with self._lock:
            now = time.monotonic()
            self._slots = {k: v for k, v in self._slots.items() if v[1] > now}
            while len(self._slots) >= MAX_SLOTS:
                discard(self._slots.pop(next(iter(self._slots)))[0])
            self._slots[_digest(token)] = (path, now + self.ttl)
        return path, token

    def redeem(self, token: str) -> Path:
        """The staged file of ``token`` (once); NotStaged for anything else."""
        with self._lock:
            slot = self._slots.pop(_digest(token), None)
        if slot is None or slot[1] < time.monotonic():
            raise NotStaged()
        path = slot[0]
        try:
            info = os.lstat(path)
        except OSError:
            raise NotStaged() from None
        owner = getattr(os, "getuid", lambda: info.st_uid)()
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1 or info.st_uid != owner:
            if not stat.S_ISDIR(info.st_mode):
                path.unlink(missing_ok=True)  # our directory entry only, never what a link points to
            raise NotStaged()
        return path


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
