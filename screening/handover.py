"""Hand work over to a running service instead of meeting its lock on the database file.

DuckDB lets one process hold a file read-write, and ``screening serve`` holds it while it runs.
The service therefore announces itself in a file beside the database
(``<db>.service.json``: address, process id and a one-time local token, readable by the
owner only).  A command that finds the database locked reads that file and asks the service
to do the write: ``screening run`` stores its run in a staging file and the service imports
it in one transaction; ``screening users`` calls the user routes.  Whoever can read the file
could open the database itself, so the token grants nothing the file system did not.
"""
from __future__ import annotations

import json
import os
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ScreeningError

#: the name the service's audit trail records for work handed over by a local command
HANDOVER_USER = "本机命令行"


class HandoverError(ScreeningError):
    exit_code = 1


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


@dataclass(frozen=True)
class Service:
    url: str
    token: str
    announced_in: Path

    def call(self, method: str, route: str, body: dict[str, Any] | None = None, timeout: float = 3600) -> dict:
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(self.url.rstrip("/") + route, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read()).get("detail", "")
            except ValueError:
                detail = ""
            raise HandoverError(f"服务（{self.url}）拒绝了请求：{exc.code} {detail}".rstrip()) from None
        except (urllib.error.URLError, OSError) as exc:
            raise HandoverError(f"数据库正被服务占用，但无法连接该服务（{self.url}，见 {self.announced_in}）："
                                f"{getattr(exc, 'reason', exc)}") from None


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
    return Service(url, token, path)


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
