"""Bounded reading: refuse a file that is too big, or not what its name says, before a reader parses it.

The readers (calamine through polars/fastexcel, pyarrow, polars' CSV parser) trust what a file
declares.  A 200 KB workbook whose one shared string inflates to 200 MB, or whose two cells sit at
``A1`` and ``XFD1048576`` (calamine then allocates the whole 17-billion-cell rectangle), takes the
process down: an allocation failure in Rust aborts it, it cannot be caught.  So every workbook is
inspected here first, with :mod:`zipfile` and without extracting anything:

* the zip's end record: number of members and size of the central directory, before
  :class:`zipfile.ZipFile` builds its member list;
* the central directory: member count, each member's declared size, all members' total, each
  member's compression ratio, ``xl/sharedStrings.xml``'s size;
* every member streamed once through a small buffer (CRC checked, so a member cannot inflate
  beyond the size it declares), counting each sheet's extent: the ``<dimension>`` it claims, the
  largest row and column any cell reference names, the number of rows and of cells per row.

:func:`reader_errors` turns whatever a reader raises, including pyo3's ``PanicException`` (which
derives from :class:`BaseException`, not :class:`Exception`), into one clear error.

Both the CLI (:mod:`screening.ingest`) and the service's upload route use this module; the CLI with
:data:`CLI_LIMITS`, the service with limits from its settings (``api/config.py``).  See
docs/limits.md for every cap, its default and why.
"""
from __future__ import annotations

import codecs
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from operator import methodcaller
from pathlib import Path
from typing import IO

from .errors import InputError


class FileTooLarge(InputError):
    """The file, or what it inflates to, exceeds a cap (the service answers 413)."""


class FileUnreadable(InputError):
    """The file is not what its name says, or is damaged (the service answers 422)."""


@dataclass(frozen=True)
class Limits:
    """Caps on one input file.  These bound the work and memory of reading; they are not rule thresholds."""

    inflated_bytes: int          # all members of a workbook together, uncompressed
    member_bytes: int            # one member, uncompressed
    shared_strings_bytes: int    # xl/sharedStrings.xml, uncompressed (calamine holds every string in memory)
    zip_ratio: float             # uncompressed / compressed size of one member larger than RATIO_FLOOR
    zip_members: int             # members in the zip
    rows: int                    # rows of one sheet
    cells: int                   # rows × columns of one sheet (calamine allocates that rectangle)


#: The CLI's caps.  A workbook has at most 1,048,576 rows (Excel's own limit); 50 million cells is a
#: full-height sheet of ~48 columns, about 1.2 GB of calamine's cells, far above a province's
#: department export and below what a 16 GB office PC can hold; the byte caps follow from that
#: (a cell is ~30 bytes of XML).  Real workbooks compress 5-15 times; deflate's maximum is ~1,000.
CLI_LIMITS = Limits(
    inflated_bytes=2 * 1024**3,
    member_bytes=2 * 1024**3,
    shared_strings_bytes=512 * 1024**2,
    zip_ratio=100.0,
    zip_members=10_000,
    rows=1_048_576,
    cells=50_000_000,
)

#: A member smaller than this is not ratio-checked: small parts (styles, a sheet of one repeated row)
#: compress far better than data does, and cannot inflate to much anyway.
RATIO_FLOOR = 1024 * 1024
#: Bytes of the central directory allowed per member (46 fixed bytes + a name + extra fields).
_DIRECTORY_BYTES_PER_MEMBER = 1024
#: How much of a file is read to tell what it is.
HEAD_BYTES = 64 * 1024
_CHUNK = 1024 * 1024
SHARED_STRINGS = "xl/sharedStrings.xml"

_MAGIC = (
    (b"PK\x03\x04", "zip"), (b"PK\x05\x06", "zip"),                   # xlsx/xlsm (an empty zip is still a zip)
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "ole2"),                   # old .xls / .doc
    (b"PAR1", "parquet"), (b"%PDF", "pdf"), (b"\x1f\x8b", "gzip"),
    (b"7z\xbc\xaf\x27\x1c", "7z"), (b"Rar!", "rar"),
    (b"\x89PNG", "image"), (b"\xff\xd8\xff", "image"),
)
KIND_ZH = {
    "zip": "zip 压缩包（如 .xlsx 工作簿）", "ole2": "旧版 Office 文件（如 .xls）", "parquet": "Parquet 文件",
    "pdf": "PDF 文件", "gzip": "gzip 压缩文件", "7z": "7z 压缩文件", "rar": "RAR 压缩文件", "image": "图片",
    "html": "网页（HTML）", "binary": "二进制文件（含 NUL 字节）", "text": "文本文件", "empty": "空文件",
}


# ---------------------------------------------------------------------------------- what a file is

def read_head(path: Path, size: int = HEAD_BYTES) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError as exc:
        raise InputError(f"{path}：无法打开文件（{exc.strerror}）") from None


def utf16_without_bom(head: bytes) -> str | None:
    """"utf-16-le" or "utf-16-be" when the first bytes are UTF-16 text written without a byte order
    mark (some systems' "Unicode" export): the codes, digits and separators of a table put a NUL in
    one byte of each pair and almost never in the other; binary content has NULs anywhere."""
    sample = head[:4096]
    sample = sample[:len(sample) - len(sample) % 2]
    if len(sample) < 16 or b"\x00" not in sample:
        return None
    pairs = len(sample) // 2
    even, odd = sample[0::2].count(0) / pairs, sample[1::2].count(0) / pairs
    if odd >= 0.2 and even <= 0.01:
        return "utf-16-le"
    if even >= 0.2 and odd <= 0.01:
        return "utf-16-be"
    return None


def sniff(head: bytes) -> str:
    """What the first bytes say a file is: a key of :data:`KIND_ZH`."""
    if not head:
        return "empty"
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or utf16_without_bom(head):
        return "text"                                   # UTF-16: NUL bytes are normal there
    if b"\x00" in head:
        return "binary"
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:512].lower()
    if start.startswith((b"<!doctype html", b"<html", b"<table")):
        return "html"
    return "text"


def require_kind(head: bytes, expected: str, label: str, what: str) -> None:
    """Refuse a file whose first bytes are not ``expected`` (a :func:`sniff` kind); ``what`` names the
    expected format for people, e.g. "Excel 工作簿（.xlsx）"."""
    found = sniff(head)
    if found != expected:
        raise FileUnreadable(f"{label}：不是{what}，文件内容看起来是{KIND_ZH[found]}")


# ---------------------------------------------------------------------------------- readers

@contextmanager
def reader_errors(label: str, failure: str) -> Iterator[None]:
    """Whatever a reader raises becomes :class:`FileUnreadable` "label：failure（its first line）".

    pyo3 turns a Rust panic into ``PanicException``, a :class:`BaseException`; it is caught here too.
    Interrupts and exits pass through."""
    try:
        yield
    except InputError:
        raise
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # noqa: BLE001 -- PanicException derives from BaseException
        raise FileUnreadable(f"{label}：{failure}（{first_line(exc)}）") from None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


# ---------------------------------------------------------------------------------- workbooks

@dataclass
class Extent:
    """How large one member would be as a sheet, as calamine would see it."""

    rows: int = 0
    columns: int = 0

    @property
    def cells(self) -> int:
        return self.rows * self.columns


@dataclass
class WorkbookFacts:
    members: int
    inflated_bytes: int
    sheets: dict[str, Extent]


def check_workbook(source: Path | IO[bytes], label: str, limits: Limits) -> WorkbookFacts:
    """Refuse a workbook (a zip: .xlsx, .xlsm) that is too large or damaged, without extracting it.

    ``source`` is a path or a seekable binary file.  Raises :class:`FileTooLarge` or
    :class:`FileUnreadable`; returns what was measured."""
    if isinstance(source, Path):
        try:
            with open(source, "rb") as f:
                return _check_zip(f, label, limits)
        except OSError as exc:
            raise InputError(f"{label}：无法打开文件（{exc.strerror}）") from None
    return _check_zip(source, label, limits)


def _not_workbook(label: str, why: str) -> FileUnreadable:
    return FileUnreadable(f"{label}：不是有效的 Excel 工作簿（{why}）")


def _too_large(label: str, what: str) -> FileTooLarge:
    return FileTooLarge(f"{label}：文件过大，{what}；请只保留需要的工作表和行列后重新保存")


def _mb(n: float) -> str:
    return f"{n / 1024 / 1024:,.0f} MB" if n >= 1024 * 1024 else f"{n / 1024:,.0f} KB"


def _check_zip(f: IO[bytes], label: str, limits: Limits) -> WorkbookFacts:
    entries, directory = _end_record(f, label)
    if entries > limits.zip_members or directory > limits.zip_members * _DIRECTORY_BYTES_PER_MEMBER:
        raise _too_large(label, f"压缩包内有 {entries:,} 个部件（上限 {limits.zip_members:,}）")
    try:
        archive = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise _not_workbook(label, f"zip 目录损坏：{first_line(exc)}") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > limits.zip_members:
            raise _too_large(label, f"压缩包内有 {len(infos):,} 个部件（上限 {limits.zip_members:,}）")
        names = {i.filename for i in infos}
        if "[Content_Types].xml" not in names or not any(n.startswith("xl/") for n in names):
            raise _not_workbook(label, "压缩包里没有 Excel 工作簿的内容，可能是别的 zip 文件")
        total = 0
        for info in infos:
            _check_member(info, label, limits)
            total += info.file_size
            if total > limits.inflated_bytes:
                raise _too_large(label, f"解压后超过 {_mb(limits.inflated_bytes)}（上限）")
        sheets = {info.filename: _scan_member(archive, info, label, limits) for info in infos if not info.is_dir()}
    return WorkbookFacts(len(infos), total, sheets)


def _check_member(info: zipfile.ZipInfo, label: str, limits: Limits) -> None:
    size = info.file_size
    if info.filename == SHARED_STRINGS and size > limits.shared_strings_bytes:
        raise _too_large(label, f"共享字符串（{SHARED_STRINGS}）解压后 {_mb(size)}，上限 {_mb(limits.shared_strings_bytes)}")
    if size > limits.member_bytes:
        raise _too_large(label, f"部件 {info.filename} 解压后 {_mb(size)}，上限 {_mb(limits.member_bytes)}")
    if size > RATIO_FLOOR and size > limits.zip_ratio * max(info.compress_size, 1):
        raise _too_large(label, f"部件 {info.filename} 的压缩比为 {size / max(info.compress_size, 1):,.0f} 倍"
                                f"（上限 {limits.zip_ratio:g} 倍），疑似压缩炸弹")


def _end_record(f: IO[bytes], label: str) -> tuple[int, int]:
    """(members, central directory bytes) from the zip's end record, read from the file's tail."""
    try:
        f.seek(0, 2)
        size = f.tell()
        tail_start = max(0, size - (22 + 65535))
        f.seek(tail_start)
        tail = f.read()
        f.seek(0)
    except OSError as exc:
        raise InputError(f"{label}：无法读取文件（{exc.strerror}）") from None
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise _not_workbook(label, "不是 zip 格式，或文件不完整")
    _sig, _disk, _disk_cd, _here, entries, directory, _offset, _comment = struct.unpack("<4s4H2LH", tail[at:at + 22])
    if entries == 0xFFFF or directory == 0xFFFFFFFF:           # zip64: the real counts are in its own record
        locator = at - 20
        record = locator - 56
        if record < 0 or tail[locator:locator + 4] != b"PK\x06\x07" or tail[record:record + 4] != b"PK\x06\x06":
            raise _not_workbook(label, "zip64 目录记录损坏")
        entries, directory = struct.unpack("<QQ", tail[record + 32:record + 48])
    return entries, directory


# A cell or row reference: r="B12", r='B12', r = "12" (any quoting and spacing XML allows).
_REF = re.compile(rb'r\s*=\s*["\']([A-Z]{0,3})([0-9]{1,7})["\']')
_DIMENSION = re.compile(rb'<dimension\s+ref\s*=\s*["\']\$?([A-Z]{1,3})\$?([0-9]{1,7})(?::\$?([A-Z]{1,3})\$?([0-9]{1,7}))?')
_CELL_TAGS = (b"<c ", b"<c>", b"<c/>", b"<c\t", b"<c\n", b"<c\r", b":c ", b":c>", b":c/>", b":c\t", b":c\n", b":c\r")
_ROW_REF = re.compile(rb'r="[A-Z]{0,3}([0-9]{1,7})"')
_WIDE_COLUMN_REF = re.compile(rb'r="([A-Z]{2,3})[0-9]{1,7}"')
_NARROW_COLUMN_REF = re.compile(rb'r="([A-Z])[0-9]{1,7}"')
_SHEET_DATA = re.compile(rb"[<:]sheetData[\s>/]")
_ROW_TAG = b"<row"


def _column_number(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ch - 64
    return n


def _scan_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str, limits: Limits) -> Extent:
    """Stream one member (never more than its declared size: zipfile stops there and checks the CRC)
    and measure its extent as a sheet; raise as soon as it exceeds the caps.

    Cells live only inside ``<sheetData>``: counting starts there, so other parts (themes,
    styles) are only decompressed.  Element names may carry a namespace prefix (``<x:row>``)."""
    extent = Extent()
    rows = 0            # <row> elements seen
    row_cells = 0       # cells of the row being read
    max_row_cells = 0
    carry = b""
    head = True
    in_data = False
    try:
        with archive.open(info) as member:
            while True:
                chunk = member.read(_CHUNK)
                buf = carry + chunk
                if chunk:
                    cut = buf.rfind(b">") + 1              # a tag never straddles the cut
                    if cut == 0 and len(buf) < 8 * _CHUNK:
                        carry = buf
                        continue
                    cut = cut or len(buf)
                    buf, carry = buf[:cut], buf[cut:]
                if head:
                    dim = _DIMENSION.search(buf, 0, HEAD_BYTES)
                    if dim:
                        c1, r1, c2, r2 = dim.groups()
                        extent.rows = int(r2 or r1) - int(r1) + 1
                        extent.columns = _column_number(c2 or c1) - _column_number(c1) + 1
                    head = False
                if not in_data:
                    at = _SHEET_DATA.search(buf)
                    if at:
                        in_data, buf = True, buf[at.start():]
                if in_data:
                    ref_rows, ref_columns = _largest_reference(buf, limits.cells)
                    extent.rows = max(extent.rows, ref_rows)
                    extent.columns = max(extent.columns, ref_columns)
                    if b":row" in buf:                      # <x:row ...>
                        buf = buf.replace(b":row", b"<row")
                    parts = buf.split(_ROW_TAG)
                    counts = _cell_counts(buf, parts)
                    row_cells += counts[0]
                    if len(parts) > 1:
                        max_row_cells = max(max_row_cells, row_cells, *counts[1:-1])
                        row_cells = counts[-1]
                        rows += len(parts) - 1
                    extent.rows = max(extent.rows, rows)
                    extent.columns = max(extent.columns, max_row_cells, row_cells)
                _check_extent(info.filename, extent, label, limits)
                if not chunk:
                    break
    except zipfile.BadZipFile as exc:
        raise _not_workbook(label, f"部件 {info.filename} 损坏：{first_line(exc)}") from None
    except NotImplementedError as exc:
        raise _not_workbook(label, f"部件 {info.filename} 的压缩方式不受支持：{first_line(exc)}") from None
    except (OSError, EOFError, ValueError, RuntimeError, zlib.error) as exc:
        raise _not_workbook(label, f"部件 {info.filename} 无法解压：{first_line(exc)}") from None
    return extent


def _largest_reference(buf: bytes, cells: int) -> tuple[int, int]:
    """(largest row, largest column) named by a reference ``r="B12"`` (or ``r="12"`` on a row) in ``buf``.

    The usual spelling ``r="…"`` is read with a literal-prefix pattern and C-speed maxima; any other
    spelling XML allows (``r = '…'``) falls back to the general pattern."""
    if buf.count(b"r=") != buf.count(b'r="') or any(v in buf for v in (b"r =", b"r\t", b"r\n", b"r\r")):
        refs = _REF.findall(buf)
        if not refs:
            return 0, 0
        letters, digits = zip(*refs)
        return (int(max(map(methodcaller("rjust", 7), digits))),
                _column_number(max(map(methodcaller("rjust", 3), letters)).strip()))
    digits = _ROW_REF.findall(buf)
    if not digits:
        return 0, 0
    # right-justified, the largest number sorts last (a space sorts before 0 and A)
    row = int(max(map(methodcaller("rjust", 7), digits)))
    wide = _WIDE_COLUMN_REF.findall(buf)          # two or three letters: rare in department files
    if wide:
        return row, _column_number(max(map(methodcaller("rjust", 3), wide)).strip())
    if row * 26 <= cells:
        return row, 0           # one-letter columns cannot push the sheet over the cap; counted cells say how many
    return row, _column_number(max(_NARROW_COLUMN_REF.findall(buf), default=b""))


def _cell_counts(buf: bytes, parts: list[bytes]) -> list[int]:
    """Cells in each part (a part is one row's XML): C-speed counting of the usual ``<c `` tag,
    every spelling XML allows when another one occurs."""
    if buf.count(b"<c") == buf.count(b"<c ") and b":c" not in buf:
        return list(map(methodcaller("count", b"<c "), parts))
    return [sum(p.count(t) for t in _CELL_TAGS) for p in parts]


def _check_extent(name: str, extent: Extent, label: str, limits: Limits) -> None:
    if extent.rows > limits.rows:
        raise _too_large(label, f"工作表 {name} 的行数超过 {limits.rows:,}（上限）")
    if extent.cells > limits.cells:
        raise _too_large(label, f"工作表 {name} 的范围达到 {extent.rows:,} 行 × {extent.columns:,} 列，"
                                f"超过 {limits.cells:,} 个单元格（上限）")


# ---------------------------------------------------------------------------------- text

def decode_head(head: bytes) -> tuple[str, str] | None:
    """(text, encoding) of a file's first bytes, a character cut at the end tolerated; None when
    neither UTF-8 nor GB18030 (with a BOM: UTF-8 or UTF-16) decodes them."""
    if head.startswith(b"\xef\xbb\xbf"):
        candidates = [("utf-8-sig", head)]
    elif head.startswith((b"\xff\xfe", b"\xfe\xff")):
        candidates = [("utf-16", head)]
    elif guess := utf16_without_bom(head):
        candidates = [(guess, head)]
    else:
        candidates = [("utf-8", head), ("gb18030", head)]
    for encoding, raw in candidates:
        try:
            return codecs.getincrementaldecoder(encoding)().decode(raw, final=False), encoding
        except UnicodeDecodeError:
            continue
    return None
