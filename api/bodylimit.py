"""Every request body is bounded before any handler reads it.

Routes that take files cap their own uploads more tightly (api/routes/exports.py, evidence.py);
this is the floor under all the others: a JSON or form body larger than ``body_max_bytes`` is
refused with 413 as soon as its declared length or the bytes received pass the cap, so no
request can make the service hold more than that in memory (a 300 MB JSON note once took the
service up by 0.8 GB before it answered 422).  A multipart body (a file upload) may be as large
as the largest file cap plus the form's own framing."""
from __future__ import annotations

import json
from collections.abc import Callable

from fastapi import HTTPException, status

#: the multipart framing around one file (boundaries, part headers, the other form fields)
MULTIPART_FRAMING = 64 * 1024


def body_cap(settings, content_type: bytes) -> int:
    """The largest body accepted for a request of this content type, in bytes."""
    if content_type.lower().startswith(b"multipart/"):
        return max(settings.upload_max_bytes, settings.evidence_max_bytes) + MULTIPART_FRAMING
    return settings.body_max_bytes


def too_large(cap: int) -> str:
    return f"请求内容过大（上限 {cap / 1024 / 1024:g} MB）"


class BodyLimit:
    """ASGI middleware: refuse (413, Chinese ``detail``) a body above :func:`body_cap`."""

    def __init__(self, app: Callable, settings: Callable):
        self.app = app
        self.settings = settings

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or ())
        cap = body_cap(self.settings(), headers.get(b"content-type", b""))
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > cap:
            body = json.dumps({"detail": too_large(cap)}, ensure_ascii=False).encode("utf-8")
            await send({"type": "http.response.start", "status": status.HTTP_413_CONTENT_TOO_LARGE,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return None
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:  # raised inside the handler's read: answered as a 413 by FastAPI
                    raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, too_large(cap))
            return message

        return await self.app(scope, counted, send)
