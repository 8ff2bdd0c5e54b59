"""Request dependencies: a DuckDB cursor per request and the authenticated user."""
from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from typing import Annotated
from urllib.parse import urlencode

import duckdb
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from screening.handover import HANDOVER_USER

from .auth import ROLE_ZH, User, token_hash
from .readmodel import ReadModel
from .session import session_user

HANDOVER = User("handover", HANDOVER_USER, "admin", None)

_bearer = HTTPBearer(auto_error=False, description="screening users add 生成的令牌")


# The dependencies are coroutines on purpose: FastAPI runs a plain function in its thread
# pool, and a hop per dependency cost more than the record route's whole handler.  None of
# them waits on anything (a token missing from the read model is one indexed lookup).

async def get_cursor(request: Request) -> AsyncIterator[duckdb.DuckDBPyConnection]:
    # one connection per process (DuckDB allows one writer), one cursor per request
    cursor = request.app.state.con.cursor()
    try:
        yield cursor
    finally:
        cursor.close()


CursorDep = Annotated[duckdb.DuckDBPyConnection, Depends(get_cursor)]


async def get_read_model(request: Request) -> ReadModel:
    return request.app.state.read_model


ReadModelDep = Annotated[ReadModel, Depends(get_read_model)]


async def current_user(request: Request, cursor: CursorDep,
                 credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> User:
    if credentials is None or credentials.scheme.lower() != "bearer":
        # the web app's sign-in: the same user, roles and township rules (api/session.py)
        user = await session_user(request, cursor)
        if user is not None:
            return user
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "缺少令牌：请在请求头加入 Authorization: Bearer <令牌>",
                            headers={"WWW-Authenticate": "Bearer"})
    local = getattr(request.app.state, "handover_hash", None)
    if local and secrets.compare_digest(token_hash(credentials.credentials), local):
        return HANDOVER  # a local command handing its write over (see screening.handover)
    user = request.app.state.read_model.user(cursor, credentials.credentials)
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "令牌无效或已停用", headers={"WWW-Authenticate": "Bearer"})
    return user


def allow(*roles: str) -> Callable[..., User]:
    """A dependency that admits only the given roles (others get 403)."""
    async def check(user: Annotated[User, Depends(current_user)]) -> User:
        if user.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"{ROLE_ZH.get(user.role, user.role)}用户无权使用此功能")
        return user
    return check


#: each API route's query parameter names (its own and its dependencies'), found once per route
_QUERY_NAMES: dict[int, frozenset[str]] = {}


def _query_names(route) -> frozenset[str]:
    names = _QUERY_NAMES.get(id(route))
    if names is None:
        found, stack = set(), [route.dependant]
        while stack:
            dependant = stack.pop()
            found.update(field.alias for field in dependant.query_params)
            stack.extend(dependant.dependencies)
        names = _QUERY_NAMES[id(route)] = frozenset(found)
    return names


#: what chat apps and share buttons add to a link passed on (微信 from/isappinstalled, 钉钉 and
#: other apps' utm_* and spm): dropped from a page's address, never taken for a filter
SHARE_MARKS = frozenset({"from", "isappinstalled", "scene", "clicktime", "enterid", "spm", "share_token", "wxfrom",
                         "nsukey", "sharer_shareinfo", "sharer_shareinfo_first"})


def _shared_link(name: str) -> bool:
    return name in SHARE_MARKS or name.startswith("utm_")


async def known_query(request: Request) -> None:
    """A request naming a query parameter its route does not take is 422: ``?townsip=柳市镇``
    or ``?status=confirmed`` silently answered the whole list, as if the filter had been applied.
    Pages alike (their 422 is the Chinese error page): a hand-edited ``/lists/2022?townsip=…``
    showing every township would be read as that township's list."""
    route = request.scope.get("route")
    if route is None or not hasattr(route, "dependant"):
        return  # static files
    allowed = _query_names(route)
    unknown = sorted(set(request.query_params) - allowed)
    page = not request.url.path.startswith("/api/")
    if page and unknown and all(_shared_link(name) for name in unknown):
        # a page's link passed on in a chat app comes back with the app's own marks: the page, without them
        kept = [(k, v) for k, v in request.query_params.multi_items() if k in allowed]
        raise HTTPException(status.HTTP_303_SEE_OTHER, headers={
            "Location": request.url.path + (f"?{urlencode(kept)}" if kept else "")})
    if unknown:
        what = "此页面" if page else "此接口"
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"{what}不接受查询参数 {'、'.join(unknown)}；可用的查询参数："
                            f"{'、'.join(sorted(allowed)) or '无'}")
