"""``screening serve`` (the service) and ``screening users`` (its users and tokens)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import ScreeningError
from .common import _database, _fail, err_console, out_console


users_app = typer.Typer(help="管理服务用户与令牌。", no_args_is_help=True, rich_markup_mode=None)


@users_app.command("add")
def users_add(
    db: Annotated[Path, typer.Option("--db", help="服务使用的 DuckDB 文件")] = Path("screening.duckdb"),
    name: Annotated[str, typer.Option("--name", help="用户名")] = ...,
    role: Annotated[str, typer.Option("--role", help="admin、township、analyst 或 dashboard")] = ...,
    township: Annotated[Optional[str], typer.Option("--township", help="township 角色所属乡镇街道（须为已保存运行的企业名录中的乡镇街道）")] = None,
    new_township: Annotated[bool, typer.Option("--new-township", help="确认 --township 是名录中还没有的新乡镇街道")] = False,
    password: Annotated[bool, typer.Option("--password", help="设置网页登录密码：在终端中输入两次（非交互时读取标准输入的第一行）")] = False,
    generate_password: Annotated[bool, typer.Option("--generate-password", help="生成网页登录密码并显示这一次")] = False,
) -> None:
    """创建用户；令牌只显示这一次（输出的最后一行），数据库中只保存其散列值。"""
    from api.deps import HANDOVER
    from api.routes.users import create

    secret = _password(password, generate_password)
    # on the file: audited as 本机命令行, as the service audits what it is handed
    token = _users_write(db, lambda service: service.call(
        "POST", "/api/v1/users", {"name": name, "role": role, "township": township, "confirm_new_township": new_township,
                                  **({"password": secret} if secret else {})})["token"],
        lambda con: create(con, HANDOVER, name, role, township, new_township, secret)[1])
    _show_generated(secret if generate_password else None)
    err_console.print(f"已创建用户 {name}（{role}{'，' + township if township else ''}），令牌如下，请妥善保存：")
    print(token)


def _users_write(db: Path, via_service, directly, existing: bool = False):
    """A write of ``screening users``: ``directly(con)`` on the database file, or, when a running
    service holds it, ``via_service(service)`` (the service checks and audits as for any admin);
    a refusal (ValueError, ScreeningError) is one Chinese line.  Returns what the write returns.
    ``existing``: the write changes a user already stored, so a missing file is a mistyped
    ``--db``: refused (exit 2), not made anew and empty."""
    from api.db import ensure_schema

    from ..handover import Service

    if existing and not db.exists():
        _fail(ScreeningError(f"找不到数据库文件 {db}：请用 --db 指定服务使用的数据库文件"))
    with _database(db) as con:
        try:
            if isinstance(con, Service):
                return via_service(con)
            ensure_schema(con)  # committed before the write: its audit line reads the chain from another cursor
            return directly(con)
        except ValueError as exc:
            _fail(ScreeningError(str(exc)))
        except ScreeningError as exc:
            _fail(exc)


def _show_generated(secret: str | None) -> None:
    """A generated web password, shown this once (on stderr: stdout's last line is kept for the token)."""
    if secret:
        err_console.print(f"网页登录密码（只显示这一次）：{secret}")


def _password(prompt: bool, generate: bool) -> str | None:
    """The web sign-in password asked for by ``users add``: typed twice at a terminal, the first
    line of standard input otherwise, or generated."""
    from api.auth import generate_password

    if prompt and generate:
        _fail(ScreeningError("--password 与 --generate-password 只能选一个"))
    if generate:
        return generate_password()
    if not prompt:
        return None
    if sys.stdin.isatty():
        first = typer.prompt("网页登录密码", hide_input=True)
        if typer.prompt("再输入一次", hide_input=True) != first:
            _fail(ScreeningError("两次输入的密码不一致"))
        return first
    return sys.stdin.readline().rstrip("\r\n")


@users_app.command("password")
def users_password(
    db: Annotated[Path, typer.Option("--db", help="服务使用的 DuckDB 文件")] = Path("screening.duckdb"),
    name: Annotated[str, typer.Option("--name", help="用户名")] = ...,
    password: Annotated[bool, typer.Option("--password", help="在终端中输入两次新密码（非交互时读取标准输入的第一行）")] = False,
    generate_password: Annotated[bool, typer.Option("--generate-password", help="生成新密码并显示这一次")] = False,
) -> None:
    """重设用户的网页登录密码（忘记密码时）；令牌不变，该用户的网页登录全部退出。"""
    from urllib.parse import quote

    from api.deps import HANDOVER
    from api.routes.users import reset

    if not (password or generate_password):
        _fail(ScreeningError("请用 --password（输入新密码）或 --generate-password（生成新密码）"))
    secret = _password(password, generate_password)

    # through the service, which also signs the user out of its web sessions
    _users_write(db, lambda service: service.call("PUT", f"/api/v1/users/{quote(name, safe='')}/password",
                                                  {"password": secret}), lambda con: reset(con, HANDOVER, name, secret),
                 existing=True)
    _show_generated(secret if generate_password else None)
    out_console.print(f"已重设用户 {name} 的网页登录密码")


@users_app.command("revoke")
def users_revoke(
    db: Annotated[Path, typer.Option("--db", help="服务使用的 DuckDB 文件")] = Path("screening.duckdb"),
    name: Annotated[str, typer.Option("--name", help="用户名")] = ...,
) -> None:
    """停用用户的令牌。"""
    from urllib.parse import quote

    from api.deps import HANDOVER
    from api.routes.users import revoke_named

    _users_write(db, lambda service: service.call("DELETE", f"/api/v1/users/{quote(name, safe='')}"),
                 lambda con: revoke_named(con, HANDOVER, name), existing=True)
    out_console.print(f"已停用用户 {name} 的令牌")


def serve(
    db: Annotated[Path, typer.Option("--db", help="DuckDB 文件（screening run 写入的同一个文件）")] = Path("screening.duckdb"),
    host: Annotated[str, typer.Option("--host", help="监听地址（默认 127.0.0.1，只有本机可访问；局域网内访问用 0.0.0.0）")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="端口（1—65535）")] = 8000,
) -> None:
    """启动服务接口（FastAPI + uvicorn），使用嵌入式 DuckDB 文件，无需另装数据库。"""
    import uvicorn

    from api.config import Settings
    from api.main import create_app
    from api.serverlog import log_config, port_problem
    from ..errors import EnvironmentProblem
    from ..handover import find
    from ..store import DatabaseLocked, connect, upgrade

    try:
        if db.exists():
            con = connect(db)  # a held file fails here
            try:
                upgrade(con)  # an older layout: migrated now, so that a failure is one line, not a server's traceback
            finally:
                con.close()
    except DatabaseLocked as exc:
        service = find(db)
        if service is not None:
            _fail(DatabaseLocked(f"数据库 {db} 已被另一个服务占用（PID {service.pid}，地址 {service.url}）；"
                                 f"请直接使用该服务，或先停止它再启动"))
        holder = f"（PID {exc.pid}）" if exc.pid else ""
        _fail(DatabaseLocked(f"数据库 {db} 已被另一个进程{holder}占用；请先关闭该进程再启动服务，或改用其他 --db 文件"))
    except ScreeningError as exc:
        _fail(exc)
    problem = port_problem(host, port)
    if problem:
        _fail(EnvironmentProblem(problem))
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else (f"[{host}]" if ":" in host else host)
    settings = Settings(db=db, url=f"http://{local}:{port}")  # local commands hand their writes over here
    uvicorn.run(create_app(settings), host=host, port=port, workers=1, log_level="info", log_config=log_config())
