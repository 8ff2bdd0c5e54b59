"""Every error answer is Chinese.

Our own routes write Chinese ``detail`` texts; the framework's own answers (an unknown address,
a method a route does not take, a body it cannot parse, a broken multipart form) are English.
An HTTP error whose detail holds no Chinese character is answered with the Chinese text for its
status instead, so no English fragment reaches a person, whichever layer refused the request."""
from __future__ import annotations

import re

from starlette.exceptions import HTTPException as StarletteHTTPException

_CHINESE = re.compile(r"[\u4e00-\u9fff]")

BY_STATUS = {
    400: "请求格式无效（请求内容应为 UTF-8 编码的 JSON，表单或上传文件须完整）",
    404: "找不到该地址",
    405: "该地址不支持此请求方法",
    406: "无法按所要求的格式答复",
    413: "请求内容过大",
    415: "不支持该内容类型",
    429: "请求过于频繁，请稍后再试",
    500: "服务内部错误",
}


def in_chinese(exc: StarletteHTTPException) -> StarletteHTTPException:
    """``exc`` itself when its detail is Chinese (or structured), else a copy with the Chinese text."""
    detail = exc.detail
    if not isinstance(detail, str) or _CHINESE.search(detail):
        return exc
    text = BY_STATUS.get(exc.status_code, f"请求未能完成（{exc.status_code}）")
    return StarletteHTTPException(exc.status_code, text, headers=getattr(exc, "headers", None))
