"""Find each table's file in the data directory and tell what its bytes are.

File names are compared without regard to case (``energy.CSV``, ``Tax.XLSX``).  What a
file is comes from its first bytes, not its extension: web systems export an HTML table
or a CSV and name it ``.xls``.  :func:`open_table` is the one place a table file is opened
for reading, and nothing is read whole before it is known to be safe to read
(:mod:`screening.filesafety`, docs/limits.md): from the first 64 KB a text file must be text
(no NUL bytes, no other format's signature) in a known encoding; a workbook (an .xlsx zip, an old
.xls compound file) is measured before it is read (:func:`~screening.filesafety.check_workbook`, the
CLI's caps unless the caller gives others); a Parquet
file must carry its magic at both ends and declare at most :data:`MAX_PARQUET_ROWS` rows in its
footer.  The header is checked from the same head (CSV) or footer (Parquet) by
:mod:`.table` before the rest is read.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from .. import filesafety
from ..errors import InputError

EXTENSIONS = (".csv", ".xlsx", ".xlsm", ".xls", ".parquet")
#: read too when a table's file has them (what the bytes are decides, as for every file): WPS 表格's
#: own .et/.ett (an .xls or .xlsx inside), text saved as .txt/.tsv
ALSO_READ = (".et", ".ett", ".txt", ".tsv")
#: a workbook extension that may hold either kind of workbook (no note when it holds either)
ANY_WORKBOOK = (".et", ".ett")
#: formats a department may send that are not read: a file named for a table in one of them is an
#: error naming it (never passed over as if the table were absent)
NOT_READ = {".ods": "OpenDocument 表格（.ods）", ".xlsb": "Excel 二进制工作簿（.xlsb）", ".numbers": "Numbers 表格",
            ".xlt": "Excel 模板（.xlt）", ".xltx": "Excel 模板（.xltx）", ".xltm": "Excel 模板（.xltm）",
            ".dbf": "dBase 数据库（.dbf）", ".mdb": "Access 数据库（.mdb）", ".accdb": "Access 数据库（.accdb）",
            ".json": "JSON", ".xml": "XML", ".pdf": "PDF", ".doc": "Word 文档", ".docx": "Word 文档",
            ".wps": "WPS 文字文档", ".zip": "zip 压缩包", ".rar": "RAR 压缩包", ".7z": "7z 压缩包"}

#: what a file is, by its bytes
CSV, XLSX, XLS, HTML, PARQUET = "csv", "xlsx", "xls", "html", "parquet"
KIND_ZH = {CSV: "CSV 文本", XLSX: "Excel 工作簿（xlsx）", XLS: "Excel 97-2003 工作簿（xls）",
           HTML: "网页表格（HTML）", PARQUET: "Parquet"}
_BY_SUFFIX = {".csv": CSV, ".xlsx": XLSX, ".xlsm": XLSX, ".xls": XLS, ".parquet": PARQUET, ".et": XLS, ".ett": XLS,
              ".txt": CSV, ".tsv": CSV}


def file_names(table: str) -> str:
    """The names a table's file may have, for messages: every extension read (contract: .csv, .xlsx,
    .xls, .xlsm or .parquet, in any case)."""
    names = [f"{table}{ext}" for ext in EXTENSIONS]
    return f"{'、'.join(names[:-1])} 或 {names[-1]}"


def find_table_file(data_dir: Path, table: str) -> Path | None:
    """``<table>.<ext>`` with the extension (and name) in any case; two files for one table
    is an error naming both, and so is a table's only file in a format that is not read (``NOT_READ``)."""
    named = sorted(p for p in data_dir.iterdir() if p.is_file() and p.stem.lower() == table)
    found = [p for p in named if p.suffix.lower() in EXTENSIONS + ALSO_READ]
    if len(found) > 1:
        names = "、".join(p.name for p in found)
        raise InputError(f"{data_dir}：表 {table} 有多个文件（{names}），请只保留一个")
    if not found:
        other = next((p for p in named if p.suffix.lower() in NOT_READ), None)
        if other is not None:
            raise InputError(f"{other.name}：{NOT_READ[other.suffix.lower()]}格式不能读取，请在 Excel 或 WPS 中"
                             f"另存为 {table}.xlsx 或 {table}.csv")
    return found[0] if found else None


#: A Parquet table with more rows than this is refused from its footer, before a row is read: a
#: province's largest table (1M firms × a few years × parcels) has ~10M rows; a tiny file can
#: declare billions (run-length encoding), which the reader would allocate.
MAX_PARQUET_ROWS = 200_000_000


@dataclass
class OpenedTable:
    """A table file that passed the checks of its kind; its rows are not read yet."""

    path: Path
    kind: str           # what the bytes are (CSV, XLSX, XLS, HTML, PARQUET)
    head: bytes         # the first filesafety.HEAD_BYTES
    size: int
    head_text: str | None = None            # CSV/HTML: the head decoded (a character cut at the end tolerated)
    encoding: str | None = None             # CSV/HTML: the head's encoding
    columns: list[str] = field(default_factory=list)   # Parquet: column names from the footer
    workbook: filesafety.WorkbookFacts | None = None   # xlsx/xlsm/xls: what check_workbook measured

    @property
    def complete(self) -> bool:
        """The head is the whole file."""
        return self.size <= len(self.head)

    def read_bytes(self) -> bytes:
        try:
            return self.path.read_bytes()
        except OSError as exc:
            raise InputError(f"{self.path}：无法打开文件（{exc.strerror}）") from None

    def sha256(self) -> str:
        """The file's SHA-256, streamed (never the whole file in memory)."""
        try:
            with open(self.path, "rb") as f:
                return hashlib.file_digest(f, "sha256").hexdigest()
        except OSError as exc:
            raise InputError(f"{self.path}：无法打开文件（{exc.strerror}）") from None


def open_table(path: Path, limits: filesafety.Limits = filesafety.CLI_LIMITS) -> OpenedTable:
    """Tell what a table file is from its first bytes and refuse it, in one line, when it is
    unreadable or dangerous to read (the single place where a table file is opened).

    A file whose bytes are another format than its name says is read as what it is (the caller
    notes it); refused are: binary content or NUL bytes where text is expected, an unknown
    encoding, a workbook beyond the caps or not a workbook, a Parquet file that is incomplete or
    declares too many rows.  ``limits``: the caps on a workbook (the CLI's, or the service's for an upload)."""
    head = filesafety.read_head(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"{path}：无法打开文件（{exc.strerror}）") from None
    kind = sniff_kind(head, path)
    opened = OpenedTable(path, kind, head, size)
    found = filesafety.sniff(head)
    if kind in (CSV, HTML):
        if found == "empty":
            raise InputError(f"{path.name}：文件为空，没有表头")
        if found not in ("text", "html"):
            raise filesafety.FileUnreadable(
                f"{path.name}：不是 CSV 文本文件，文件内容看起来是{filesafety.KIND_ZH[found]}")
        decoded = filesafety.decode_head(head)
        if decoded is None:
            raise InputError(f"{path.name}：无法识别文件编码（既不是 UTF-8，也不是 GBK/GB18030）")
        opened.head_text, opened.encoding = decoded
    elif kind in (XLSX, XLS):
        opened.workbook = filesafety.check_workbook(path, path.name, limits)
    elif kind == PARQUET:
        opened.columns = _parquet_columns(opened, found)
    return opened


def _parquet_columns(opened: OpenedTable, found: str) -> list[str]:
    """A Parquet file's column names and row count from its footer; the rows are not read."""
    path = opened.path
    try:
        with open(path, "rb") as f:
            f.seek(max(0, opened.size - 4))
            tail = f.read(4)
    except OSError as exc:
        raise InputError(f"{path}：无法打开文件（{exc.strerror}）") from None
    if found != "parquet" or tail != b"PAR1" or opened.size < 12:
        seen = "Parquet 文件不完整" if found == "parquet" else f"文件内容看起来是{filesafety.KIND_ZH[found]}"
        raise filesafety.FileUnreadable(f"{path.name}：不是有效的 Parquet 文件（{seen}）")
    with filesafety.reader_errors(path.name, "无法按 Parquet 读取"):
        columns = list(pl.read_parquet_schema(path))
        rows = pl.scan_parquet(path).select(pl.len()).collect().item()
    if rows > MAX_PARQUET_ROWS:
        raise filesafety.FileTooLarge(f"{path.name}：文件过大，声明有 {rows:,} 行（上限 {MAX_PARQUET_ROWS:,}）")
    return columns


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
    if suffix_kind in (XLSX, XLS, PARQUET) and filesafety.sniff(head) == "text" and _looks_like_text(head):
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
