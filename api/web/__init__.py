"""The web app served by the service itself (docs/web.md): Jinja2 pages over the same route
functions, roles and township rules as the API, static assets vendored under static/ (no CDN),
a Content-Security-Policy without inline script, and /docs and /redoc that work offline."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import in_chinese
from ..session import Sessions, Throttle
from . import pages
from .templating import render

HERE = Path(__file__).parent
STATIC = HERE / "static"

#: no inline script anywhere (Swagger UI's start is a static file); inline styles are allowed
#: for the chart and documentation libraries, which set element styles
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; "
       "base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    """Adds the security headers to every response (pages, static files, API answers)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (name, value) for name, value in SECURITY_HEADERS if name not in names]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _is_page(request: Request) -> bool:
    path = request.url.path
    return not (path.startswith("/api/") or path == "/openapi.json" or path.startswith("/static/"))


def install(app: FastAPI, validation_message: Callable[[dict], str]) -> None:
    """Add the web app to the service (called by api.main.create_app, which hands over its
    Chinese wording of validation errors, so that forms say what the API says)."""
    settings = app.state.settings
    app.state.validation_message = validation_message
    app.state.web_sessions = Sessions(settings.session_idle_minutes * 60)
    app.state.login_throttle = Throttle(settings.login_max_failures, settings.login_lockout_seconds)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(pages.router, include_in_schema=False)  # pages are not API operations
    app.add_middleware(SecurityHeaders)

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        return render(request, "docs.html", user=None, title="接口文档（Swagger UI）")

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        return render(request, "redoc.html", user=None, title="接口文档（ReDoc）")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        exc = in_chinese(exc)  # the framework's own refusals are English (api/errors.py)
        if not _is_page(request):
            return await http_exception_handler(request, exc)
        if exc.status_code == 401:
            return RedirectResponse("/login", status_code=303)
        if exc.status_code == 303 and exc.headers and "Location" in exc.headers:  # api.deps.known_query
            return RedirectResponse(exc.headers["Location"], status_code=303)
        return error_page(request, exc.status_code, exc.detail if exc.status_code != 500 else "服务内部错误")


def error_page(request: Request, status_code: int, detail: str) -> Response | None:
    """The Chinese error page for a request of a page (None for the API, which answers JSON):
    also for the refusals api.main answers itself (a value of the wrong type in the address or a
    form, two writes at once), which a browser otherwise showed as raw JSON."""
    if not _is_page(request):
        return None
    user = getattr(request.state, "web_user", None)
    return render(request, "error.html", status_code=status_code, user=user, title="出错了", status=status_code,
                  detail=detail)
