"""User management while the service runs (the `screening users` command cannot open the
database file while the service holds it)."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from ..auth import MAX_NAME, User, add_user, check_password_rules, clean_name, revoke_user, set_password
from ..db import audit, one_write
from ..deps import CursorDep, allow
from ..session import name_key
from .common import ERRORS

router = APIRouter(prefix="/api/v1/users", tags=["users"])


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"name": "柳市镇经办人", "role": "township", "township": "柳市镇"}]})
    name: str = Field(max_length=1000, description=f"用户名：不能为空，不含 / 、\\ 和控制字符，最多 {MAX_NAME} 个字符")
    role: Literal["admin", "township", "analyst", "dashboard"]
    township: str | None = Field(default=None, max_length=1000,
                                 description="township 角色必填：须为已保存运行的企业名录中的乡镇街道")
    confirm_new_township: StrictBool = Field(default=False, description="确认 township 是名录中还没有的新乡镇街道")
    password: str | None = Field(default=None, max_length=1000,
                                 description="网页登录密码（可选，至少 10 个字符；只保存 argon2 散列值）")


def create(con, actor: User, name: str, role: str, township: str | None, confirm_new_township: bool = False,
           password: str | None = None) -> tuple[dict, str]:
    """Create a user (and its web password), with its audit line by ``actor``, in one transaction;
    returns (the user as stored, its token).  ValueError in Chinese when refused.  The route, the
    用户 page and ``screening users add`` on the file all create users here."""
    with one_write(con):
        if password is not None:
            check_password_rules(password)
        token = add_user(con, name, role, township, confirm_new_township)
        if password is not None:
            set_password(con, clean_name(name), password)
        created = {"name": clean_name(name), "role": role, "township": township.strip() if township else None}
        audit(con, actor, "create_user", "user", created["name"], None, created)
    return created, token


@router.post("", status_code=status.HTTP_201_CREATED, responses={**ERRORS, 409: {"description": "用户已存在"}},
             operation_id="users-create", summary="创建用户并返回令牌（仅 admin；令牌只返回这一次）")
def create_user(body: UserIn, cursor: CursorDep, user: Annotated[User, Depends(allow("admin"))]) -> dict:
    try:
        created, token = create(cursor, user, body.name, body.role, body.township, body.confirm_new_township,
                                body.password)
    except ValueError as exc:
        code = status.HTTP_409_CONFLICT if "已存在" in str(exc) else 422
        raise HTTPException(code, str(exc)) from None
    return {**created, "token": token}


class PasswordIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"password": "新的登录密码至少10位"}]})
    password: str = Field(max_length=1000, description="新的网页登录密码（至少 10 个字符；只保存 argon2 散列值）")


#: an admin's own password is changed on 修改密码 (the current password asked), not reset here:
#: a session left open, or a token, would otherwise replace it without knowing it
OWN_PASSWORD = ("不能在这里重设自己的密码：请在“修改密码”页输入当前密码后修改；忘记时请另一位经信局管理员重设，"
                "或在服务器上运行 screening users password")


class OwnPassword(Exception):
    """An admin resetting their own password (see OWN_PASSWORD)."""


def reset(con, actor: User, name: str, password: str) -> str:
    """Set ``name``'s web password, with its audit line by ``actor``, in one transaction; returns
    the user's id.  ValueError in Chinese when refused, OwnPassword when ``actor`` is that user.
    The route, the 用户 page and ``screening users password`` on the file all reset here."""
    with one_write(con):
        user_id = set_password(con, name, password)
        if user_id == actor.user_id:
            raise OwnPassword()
        audit(con, actor, "reset_password", "user", name, None, None)
    return user_id


# ``name:path``: a user named before the name check (``a/b``) is reached as ``a%2Fb`` (as DELETE)
@router.put("/{name:path}/password", responses={**ERRORS, 403: {"description": "不是 admin，或重设的是自己的密码（请用“修改密码”）"},
                                                404: {"description": "没有该有效用户"}},
            operation_id="users-password", summary="重设用户的网页登录密码（仅 admin；该用户所有网页登录随即退出）")
def reset_password(name: str, body: PasswordIn, request: Request, cursor: CursorDep,
                   user: Annotated[User, Depends(allow("admin"))]) -> dict:
    """忘记密码时由另一位经信局管理员（或本机命令行 ``screening users password``）重设；令牌不变。
    不能重设自己的密码（请在“修改密码”页输入当前密码修改）。重设后该用户名的登录失败计数清零。"""
    try:
        user_id = reset(cursor, user, name, body.password)
    except OwnPassword:
        raise HTTPException(status.HTTP_403_FORBIDDEN, OWN_PASSWORD) from None
    except ValueError as exc:
        code = status.HTTP_404_NOT_FOUND if "没有名为" in str(exc) else 422
        raise HTTPException(code, str(exc)) from None
    request.app.state.web_sessions.drop_user(user_id)  # signed in with the old password: signed out everywhere
    request.app.state.login_throttle.clear(name_key(name))  # locked out before the reset: the new password works now
    return {"name": name, "password_set": True}


def revoke_named(con, actor: User, name: str) -> None:
    """Revoke ``name``'s token, with its audit line by ``actor``, in one transaction; ValueError in
    Chinese when there is no such active user.  The route, the 用户 page and ``screening users revoke``."""
    with one_write(con):
        if not revoke_user(con, name):
            raise ValueError(f"没有名为 {name} 的有效用户")
        audit(con, actor, "revoke_user", "user", name, None, {"revoked": True})


@router.delete("/{name:path}", responses=ERRORS, operation_id="users-revoke", summary="停用用户的令牌（仅 admin）")
def revoke(name: str, cursor: CursorDep, user: Annotated[User, Depends(allow("admin"))]) -> dict:
    try:
        revoke_named(cursor, user, name)
    except ValueError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return {"name": name, "revoked": True}
