"""证据文件: photos and scanned stamped documents that back a 属地核实 (verification or dispute).

Images (JPEG, PNG) or PDF, checked by their content (never by name or declared type), at most
``evidence_max_bytes``; stored beside the database (``<db>.evidence/``, owner only) under their
SHA-256, listed in the firm's record and in the audit, and served only to users who may see the
firm (another township's file answers 404 like a missing one)."""
from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile, status
from fastapi.responses import Response
from pydantic import AfterValidator, BeforeValidator

from screening import filesafety

from ..auth import User
from ..db import audit, records
from ..deps import CursorDep, allow
from ..schemas import no_control_chars, no_format_chars
from .common import ERRORS, UsccPath, run_for_year
from .enterprises import _profile  # the firm must be one the user may see (404 otherwise)

router = APIRouter(prefix="/api/v1", tags=["evidence"])

#: accepted contents: the first bytes → (media type, file suffix)
KINDS = ((b"\xff\xd8\xff", "image/jpeg", ".jpg"), (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
         (b"%PDF-", "application/pdf", ".pdf"))
_NOT_FOUND = "未找到该证据文件"


def evidence_dir(db: Path) -> Path:
    return db.parent / f"{db.name}.evidence"


def _kind(head: bytes) -> tuple[str, str]:
    for magic, media, suffix in KINDS:
        if head.startswith(magic):
            return media, suffix
    found = filesafety.KIND_ZH[filesafety.sniff(head)]
    raise HTTPException(415, f"证据文件只接受 JPEG、PNG 图片或 PDF；上传的文件内容看起来是{found}")


@router.post("/enterprises/{uscc}/evidence", status_code=status.HTTP_201_CREATED, operation_id="evidence-upload",
             responses={**ERRORS, 413: {"description": "文件过大"}, 415: {"description": "不是 JPEG、PNG 或 PDF"}},
             summary="上传属地核实的证据文件（照片、盖章扫描件：JPEG、PNG 或 PDF）")
def upload_evidence(
    request: Request,
    uscc: UsccPath,
    cursor: CursorDep,
    user: Annotated[User, Depends(allow("admin", "township"))],
    year: Annotated[int, Query(ge=2000, le=2100, description="清单年度")],
    file: Annotated[UploadFile, File(description="JPEG、PNG 图片或 PDF")],
    note: Annotated[str | None, Form(max_length=500, description="说明"), AfterValidator(no_control_chars),
                    BeforeValidator(no_format_chars)] = None,
) -> dict:
    settings = request.app.state.settings
    run = run_for_year(cursor, year)
    code = _profile(cursor, run, uscc.strip().upper(), user)["uscc"]
    cap = settings.evidence_max_bytes
    data = file.file.read(cap + 1)
    if len(data) > cap:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"证据文件过大（上限 {cap / 1024 / 1024:g} MB）")
    if not data:
        raise HTTPException(422, "证据文件是空的")
    media, suffix = _kind(data[:16])
    digest = hashlib.sha256(data).hexdigest()
    folder = evidence_dir(settings.db.resolve())
    folder.mkdir(mode=0o700, exist_ok=True)
    target = folder / f"{digest}{suffix}"
    if not target.exists():  # the same content is stored once
        partial = folder / f".{uuid.uuid4().hex}.part"
        partial.write_bytes(data)
        partial.replace(target)
    name = (file.filename or "").replace("\\", "/").rsplit("/", 1)[-1][:200] or None
    row = {"evidence_id": uuid.uuid4().hex, "uscc": code, "year": year, "media_type": media, "size_bytes": len(data),
           "sha256": digest, "original_name": name, "note": (note or "").strip() or None, "created_by": user.name,
           "created_at": dt.datetime.now(dt.timezone.utc)}
    cursor.execute("BEGIN TRANSACTION")
    cursor.execute("INSERT INTO evidence_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [row["evidence_id"], code, year, media, len(data), digest, name, row["note"], user.name,
                    row["created_at"]])
    audit(cursor, user, "evidence", "enterprise", f"{year}/{code}", None, row)
    cursor.execute("COMMIT")
    return row


@router.get("/evidence/{evidence_id}", response_class=Response, operation_id="evidence-get",
            responses={**ERRORS, 200: {"content": {m: {} for _, m, _ in KINDS}}},
            summary="下载证据文件（只对可查看该企业的用户）")
def get_evidence(request: Request, evidence_id: str, cursor: CursorDep,
                 user: Annotated[User, Depends(allow("admin", "analyst", "township"))]) -> Response:
    rows = records(cursor, "SELECT * FROM evidence_files WHERE evidence_id = ?", [evidence_id[:64]])
    if not rows:
        raise HTTPException(status.HTTP_404_NOT_FOUND, _NOT_FOUND)
    row = rows[0]
    try:
        _profile(cursor, run_for_year(cursor, row["list_year"]), row["uscc"], user)
    except HTTPException:
        raise HTTPException(status.HTTP_404_NOT_FOUND, _NOT_FOUND) from None
    suffix = next(s for _, m, s in KINDS if m == row["media_type"])
    path = evidence_dir(request.app.state.settings.db.resolve()) / f"{row['sha256']}{suffix}"
    try:
        data = path.read_bytes()
    except OSError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "证据文件已不在服务器上") from None
    if hashlib.sha256(data).hexdigest() != row["sha256"]:
        raise HTTPException(status.HTTP_409_CONFLICT, "证据文件与登记的散列值不符（文件被改动过）")
    disposition = "inline" if row["media_type"].startswith("image/") else "attachment"
    return Response(data, media_type=row["media_type"], headers={
        "Content-Disposition": f"{disposition}; filename=evidence-{evidence_id[:64]}{suffix}",
        "Cache-Control": "private, no-store"})
