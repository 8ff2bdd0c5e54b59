"""Find each table's file in the data directory and tell what its bytes are.

File names are compared without regard to case (``energy.CSV``, ``Tax.XLSX``).  What a
file is comes from its first bytes, not its extension: web systems export an HTML table
or a CSV and name it ``.xls``.  :func:`open_table` is the one place a table file is opened
for reading (a file-safety check belongs there).
"""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError

EXTENSIONS = (".csv", ".xlsx", ".xlsm", ".xls", ".parquet")

#: what a file is, by its bytes
CSV, XLSX, XLS, HTML, PARQUET = "csv", "xlsx", "xls", "html", "parquet"
KIND_ZH = {CSV: "CSV 文本", XLSX: "Excel 工作簿（xlsx）", XLS: "Excel 97-2003 工作簿（xls）",
           HTML: "网页表格（HTML）", PARQUET: "Parquet"}
_BY_SUFFIX = {".csv": CSV, ".xlsx": XLSX, ".xlsm": XLSX, ".xls": XLS, ".parquet": PARQUET}


def find_table_file(data_dir: Path, table: str) -> Path | None:
    """``<table>.<ext>`` with the extension (and name) in any case; two files for one table
    is an error naming both."""
    found = sorted(
        p for p in data_dir.iterdir()
        if p.is_file() and p.suffix.lower() in EXTENSIONS and p.stem.lower() == table
    )
    if len(found) > 1:
        names = "、".join(p.name for p in found)
        raise InputError(f"{data_dir}：表 {table} 有多个文件（{names}），请只保留一个")
    return found[0] if found else None


def open_table(path: Path) -> bytes:
    """The bytes of a table file (the single place where a table file is opened)."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}：无法打开文件（{exc.strerror}）") from None


def sniff_kind(raw: bytes, path: Path) -> str:
    """What the file is by its first bytes; the extension decides only when bytes do not."""
    head = raw[:512]
    if head.startswith(b"PK\x03\x04"):
        return XLSX
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return XLS
    if head.startswith(b"PAR1"):
        return PARQUET
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    for marker in (b"<!doctype html", b"<html", b"<table", b"<?xml", b"<meta", b"<head"):
        if text.startswith(marker) or (marker in (b"<html", b"<table") and marker in raw[:4096].lower()):
            return HTML
    suffix_kind = _BY_SUFFIX.get(path.suffix.lower(), CSV)
    if suffix_kind in (XLSX, XLS, PARQUET) and _looks_like_text(head):
        return CSV  # e.g. a CSV named .xls
    return suffix_kind


def _looks_like_text(head: bytes) -> bool:
    if not head.strip() or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 4:  # cut in the middle of a character
            return True
    try:
        head.decode("gb18030")
        return True
    except UnicodeDecodeError:
        return False
