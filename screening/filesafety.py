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
  largest row and column any cell reference names, the number of rows and of cells per row;
* the text the cells will hold: the reader's table keeps its own copy of a shared string for every
  cell that names it (:class:`_CellText`).

An old ``.xls`` (BIFF records in an OLE2 compound file) is measured by the same caps: its container
parsed defensively (a looping sector chain is a damaged file, never a loop), its records walked once
(each sheet's declared and named extent, all sheets together, the shared strings and the copies the
reader makes of them); see :func:`_check_xls`.

:func:`reader_errors` turns whatever a reader raises, including pyo3's ``PanicException`` (which
derives from :class:`BaseException`, not :class:`Exception`), into one clear error.

Both the CLI (:mod:`screening.ingest`) and the service's upload route use this module; the CLI with
:data:`CLI_LIMITS`, the service with limits from its settings (``api/config.py``).  See
docs/limits.md for every cap, its default and why.
"""
from __future__ import annotations

import array
import codecs
import io
import mmap
import re
import struct
import sys
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import zip_longest
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

OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MAGIC = (
    (b"PK\x03\x04", "zip"), (b"PK\x05\x06", "zip"),                   # xlsx/xlsm (an empty zip is still a zip)
    (OLE2_MAGIC, "ole2"),                                             # old .xls / .doc
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
    """Refuse a workbook that is too large or damaged, before a reader parses it: a zip (.xlsx,
    .xlsm) without extracting it, an old .xls (BIFF records in an OLE2 compound file) by walking
    its records (:func:`_check_xls`).  Which one is told by the first bytes, not the name.

    ``source`` is a path or a seekable binary file.  Raises :class:`FileTooLarge` or
    :class:`FileUnreadable`; returns what was measured."""
    if isinstance(source, Path):
        try:
            with open(source, "rb") as f:
                return _check_file(f, label, limits)
        except OSError as exc:
            raise InputError(f"{label}：无法打开文件（{exc.strerror}）") from None
    return _check_file(source, label, limits)


def _check_file(f: IO[bytes], label: str, limits: Limits) -> WorkbookFacts:
    try:
        start = f.read(len(OLE2_MAGIC))
        f.seek(0)
    except OSError as exc:
        raise InputError(f"{label}：无法读取文件（{exc.strerror}）") from None
    if start == OLE2_MAGIC:
        return _check_xls(f, label, limits)
    return _check_zip(f, label, limits)


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
        # the shared strings first: each sheet's cells are then counted with the strings they name
        text = _CellText(limits.inflated_bytes)
        members = [i for i in infos if not i.is_dir()]
        strings = [i for i in members if _is_shared_strings(i.filename)]
        measured = {info.filename: _scan_member(archive, info, label, limits, text) for info in strings}
        text.plan(sum(i.file_size for i in members if i not in strings))
        measured.update((info.filename, _scan_member(archive, info, label, limits, text))
                        for info in members if info not in strings)
        sheets = {info.filename: measured[info.filename] for info in members}
    return WorkbookFacts(len(infos), total, sheets)


def _is_shared_strings(name: str) -> bool:
    """The reader takes ``<its workbook folder>/sharedStrings.xml``; every such part is measured."""
    return name.rsplit("/", 1)[-1] == "sharedStrings.xml"


#: the rest of a start tag: at most 16 attributes (a cell has r, s, t, cm, vm, ph), so that a run of
#: ``t='s'`` inside an attribute value is not re-read from each of its occurrences (quadratic)
_ATTRIBUTES = rb"""(?:\s+[\w:.-]+\s*=\s*(?:"[^"]*"|'[^']*')){0,16}"""
_SHARED_TYPE = rb"""\bt\s*=\s*(?:"s"|'s')"""
#: a cell that names a shared string: ``t="s"``, the rest of its start tag, a formula maybe, ``<v>index</v>``
_SHARED_CELL = re.compile(_SHARED_TYPE + _ATTRIBUTES + rb"\s*>\s*(?:<(?:\w+:)?f\b" + _ATTRIBUTES
                          + rb"\s*(?:/>|>[^<]*</(?:\w+:)?f>)\s*)?<(?:\w+:)?v>([0-9]{1,18})</(?:\w+:)?v>")
_SHARED_TYPES = re.compile(_SHARED_TYPE)
_SHARED_ITEM_PREFIXED = re.compile(rb"<\w+:si([\s>/])")
#: the fewest bytes a cell naming a shared string takes: <c t="s"><v>0</v></c>
_SHARED_CELL_BYTES = 20


@dataclass
class _CellText:
    """What the reader's table holds for the cells that name shared strings: each cell its own copy
    of the string (a 51 KB workbook of 10,000 cells naming one 100 KB string took 1 GB).

    A string's size is the XML between its ``<si>`` and the next (no shorter than its text).  A cell
    whose index is read (``t="s"``, then ``<v>index</v>``) counts its string; any other cell typed
    ``t="s"`` counts the largest string."""

    cap: int
    sizes: array.array = field(default_factory=lambda: array.array("Q"))
    largest: int = 0
    total: int = 0
    exact: bool = True        # False when even every cell naming the largest string stays under the cap

    def read_strings(self, sizes: array.array) -> None:
        """One shared-strings part's string sizes (the reader takes one such part: the largest of each wins)."""
        if self.sizes:
            sizes = array.array("Q", map(max, zip_longest(self.sizes, sizes, fillvalue=0)))
        self.sizes = sizes
        self.largest = max(sizes, default=0)

    def plan(self, sheet_bytes: int) -> None:
        """Count exactly only when the parts could hold enough cells naming the largest string to pass the cap."""
        self.exact = self.largest * (sheet_bytes // _SHARED_CELL_BYTES) > self.cap

    def count(self, buf: bytes, name: str, label: str) -> None:
        if not self.exact or not self.largest:
            return
        typed = len(_SHARED_TYPES.findall(buf))
        if not typed:
            return
        sizes, n, largest = self.sizes, len(self.sizes), self.largest
        found = [int(i) for i in _SHARED_CELL.findall(buf)]
        self.total += sum(sizes[i] if i < n else largest for i in found) + (typed - len(found)) * largest
        if self.total > self.cap:
            raise _too_much_text(label, name, self.total, self.cap)


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


def _scan_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str, limits: Limits,
                 text: _CellText | None = None) -> Extent:
    """Stream one member (never more than its declared size: zipfile stops there and checks the CRC)
    and measure its extent as a sheet; raise as soon as it exceeds the caps.  ``text``: the shared
    strings' sizes are read into it from a shared-strings part, a sheet's cells are counted with it.

    Cells live only inside ``<sheetData>``: counting starts there, so other parts (themes,
    styles) are only decompressed.  Element names may carry a namespace prefix (``<x:row>``)."""
    extent = Extent()
    rows = 0            # <row> elements seen
    row_cells = 0       # cells of the row being read
    max_row_cells = 0
    carry = b""
    head = True
    in_data = False
    shared = text is not None and _is_shared_strings(info.filename)
    sizes, pending = array.array("Q"), None       # shared strings: each one's size, the one being read
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
                if shared:
                    pending = _string_sizes(buf, sizes, pending)
                if not in_data:
                    at = _SHEET_DATA.search(buf)
                    if at:
                        in_data, buf = True, buf[at.start():]
                if in_data:
                    if text is not None:
                        text.count(buf, info.filename, label)
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
    if shared:
        if pending is not None:
            sizes.append(pending)
        text.read_strings(sizes)
    return extent


def _string_sizes(buf: bytes, sizes: array.array, pending: int | None) -> int | None:
    """Append to ``sizes`` the size of each shared string that ends in ``buf`` (from its ``<si`` to the
    next); return the size so far of the one still open.  C-speed splitting; a namespace prefix
    (``<x:si>``) is dropped first."""
    if b":si" in buf:
        buf = _SHARED_ITEM_PREFIXED.sub(rb"<si\1", buf)
    parts = buf.split(b"<si")
    if pending is not None:
        pending += len(parts[0])
    if len(parts) == 1:
        return pending
    if pending is not None:
        sizes.append(pending)
    sizes.extend(map(len, parts[1:-1]))
    return len(parts[-1])


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


def _too_much_text(label: str, name: str, text: int, cap: int, what: str = "单元格文本") -> FileTooLarge:
    return _too_large(label, f"工作表 {name} 及之前各表的{what}读入后约 {_mb(text)}，"
                             f"上限 {_mb(cap)}（引用同一共享字符串的每个单元格各占一份）")


def _check_extent(name: str, extent: Extent, label: str, limits: Limits) -> None:
    if extent.rows > limits.rows:
        raise _too_large(label, f"工作表 {name} 的行数超过 {limits.rows:,}（上限）")
    if extent.cells > limits.cells:
        raise _too_large(label, f"工作表 {name} 的范围达到 {extent.rows:,} 行 × {extent.columns:,} 列，"
                                f"超过 {limits.cells:,} 个单元格（上限）")


# ---------------------------------------------------------------------------------- old workbooks (.xls)
#
# An .xls file is an OLE2 compound file: 512-byte (or 4,096-byte) sectors, a FAT that chains them,
# a directory naming each stream.  Its ``Workbook`` stream holds BIFF records: the workbook
# globals (sheet names and positions, the shared strings), then each sheet's records.  calamine
# (through fastexcel) reads every sheet of it at once, when the file is opened, and trusts it:
#
# * a sector chain that loops makes it read forever (the directory's chain: memory grows until the
#   process dies) or up to the length a stream declares (4 GB from a 6 KB file);
# * a sheet's DIMENSIONS record reserves rows × columns cells: 2^32 rows declared abort the process;
# * two cells far apart make it allocate the whole rectangle between them, as in an .xlsx;
# * every cell that names a shared string gets its own copy of the string;
# * a record followed by many CONTINUE records costs time quadratic in their number.
#
# So the container is parsed here, defensively (every sector number checked, every chain followed
# at most once), and the records are walked once, measuring what the reader would allocate.

_FREESECT, _ENDOFCHAIN, _FATSECT, _DIFSECT, _MAXREGSECT = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFC, 0xFFFFFFFA
#: the names calamine looks the BIFF stream up by, in its order
_XLS_STREAMS = ("Workbook", "Book", "WORKBOOK", "BOOK")
#: CONTINUE records after one record.  Excel fills each record (8,224 bytes), so 65,536 of them carry
#: 512 MB, the CLI's cap on shared strings; the reader's cost grows with the square of their number
#: (a 1.2 MB file of 200,000 one-byte CONTINUE records took it 7 s).
MAX_CONTINUES = 65_536
#: sector numbers the reader reserves room for from the header's bytes 62-65 (see _ole2_stream): a real
#: file has 0xFFFF (no mini FAT) or a few times 65,536 (a mini FAT of a few sectors); 16M are 64 MB
_MAX_RESERVED_SECTORS = 16 * 1024 * 1024
#: bytes the reader may hold for one character of a string (UTF-8 of a BMP character)
_CHAR_BYTES = 3
_BOF, _EOF, _CONTINUE, _BOUNDSHEET, _SST, _DIMENSIONS, _LABEL_SST, _MULRK, _FORMULA = \
    0x0809, 0x000A, 0x003C, 0x0085, 0x00FC, 0x0200, 0x00FD, 0x00BD, 0x0006
#: records that put one cell at (row, column), as their first two 16-bit fields: NUMBER, LABEL, RSTRING,
#: BOOLERR, RK, LABELSST, FORMULA (a formula's value is a cell, and its text a second rectangle)
_CELL_RECORDS = frozenset((0x0203, 0x0204, 0x00D6, 0x0205, 0x027E, _LABEL_SST, _FORMULA))
_TEXT_RECORDS = frozenset((0x0204, 0x00D6))     # LABEL, RSTRING: the text is in the record


def _not_xls(label: str, why: str) -> FileUnreadable:
    return FileUnreadable(f"{label}：不是有效的 Excel 97-2003 工作簿（{why}）")


def _check_xls(f: IO[bytes], label: str, limits: Limits) -> WorkbookFacts:
    """Measure an old .xls file before the reader sees it; raise as soon as it exceeds the caps.

    The whole file is what the reader holds in memory, so its size is capped by ``inflated_bytes``."""
    try:
        f.seek(0, 2)
        size = f.tell()
        if size > limits.inflated_bytes:
            raise _too_large(label, f"文件有 {_mb(size)}，上限 {_mb(limits.inflated_bytes)}")
        f.seek(0)
        try:                      # a file on disk is mapped, not copied into memory
            buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            buf = f.read()
            f.seek(0)
    except OSError as exc:
        raise InputError(f"{label}：无法读取文件（{exc.strerror}）") from None
    try:
        stream = _ole2_stream(buf, label)
    finally:
        if isinstance(buf, mmap.mmap):
            buf.close()
    if len(stream) > limits.member_bytes:
        raise _too_large(label, f"工作簿数据流有 {_mb(len(stream))}，上限 {_mb(limits.member_bytes)}")
    return _check_biff(stream, label, limits)


def _ole2_stream(buf: bytes, label: str) -> bytes:
    """The BIFF stream of an OLE2 compound file, every sector number and chain checked.

    A chain that loops, or a sector past the end of the file, is a damaged file (one line), never
    a loop: each chain is followed at most once through each sector."""
    if len(buf) < 512:
        raise _not_xls(label, "文件不完整")
    shift, mini_shift = struct.unpack_from("<HH", buf, 30)
    if shift not in (9, 12) or mini_shift != 6:
        raise _not_xls(label, "文件头损坏")
    size = 1 << shift
    count = max(0, (len(buf) - size + size - 1) // size)     # sectors after the header (the last may be short)
    fat_count, directory, _, _, minifat_start, minifat_count, difat_start, difat_count = \
        struct.unpack_from("<8I", buf, 44)
    if max(fat_count, minifat_count, difat_count) > count:
        raise _not_xls(label, "文件头声明的扇区数多于文件所含")
    # the reader reserves room for this many sector numbers, read from bytes 62-65 of the header
    # (half of the mini FAT's start, half of its count): 2^32 of them (16 GB) abort a smaller machine
    if struct.unpack_from("<I", buf, 62)[0] > _MAX_RESERVED_SECTORS:
        raise _not_xls(label, "文件头声明的迷你 FAT 扇区数不合理")

    def sector(i: int) -> bytes:
        return buf[size * (i + 1):size * (i + 2)]

    def check(i: int, what: str, units: int | None = None) -> None:
        # a reserved marker (0xFFFFFFFA-0xFFFFFFFF: a FAT or DIFAT sector, a free one, a chain's end)
        # where a sector number belongs is a broken chain, not a sector number to name
        if i >= _MAXREGSECT:
            raise _not_xls(label, f"{what}的扇区链损坏（遇到保留标记）")
        if i >= (count if units is None else units):
            raise _not_xls(label, f"{what}指向文件之外的扇区 {i}")

    # the FAT's own sectors: 109 in the header, the rest in a chain of DIFAT sectors (each ends with the
    # next one).  Only the first fat_count entries are taken, and the chain is followed no further than
    # they need: a repeated entry would add a whole FAT sector each time (125 times the file's size)
    difat = _u32s(buf[76:512])[:fat_count]
    seen: set[int] = set()
    i = difat_start
    while len(difat) < fat_count and i < _MAXREGSECT:
        check(i, "DIFAT 扇区链")
        if i in seen:
            raise _not_xls(label, "DIFAT 扇区链循环")
        seen.add(i)
        entries = _u32s(sector(i))
        difat.extend(entries[:min(len(entries) - 1, fat_count - len(difat))])
        i = entries[-1] if entries else _ENDOFCHAIN
    fat = array.array("I")
    listed: set[int] = set()
    for i in difat:
        if i < _DIFSECT:
            check(i, "FAT")
            if i in listed:
                raise _not_xls(label, f"DIFAT 重复列出 FAT 扇区 {i}")
            listed.add(i)
            fat.extend(_u32s(sector(i)))

    def chain(start: int, limit: int, what: str, table: array.array, units: int) -> Iterator[int]:
        """The sectors of a chain, at most ``limit`` of them (a stream stops at its length)."""
        units = min(units, len(table))
        visited = bytearray(units)
        i = start
        while i != _ENDOFCHAIN and limit > 0:
            check(i, what, units)
            if visited[i]:
                raise _not_xls(label, f"{what}的扇区链循环")
            visited[i] = 1
            limit -= 1
            yield i
            i = table[i]

    def read(start: int, length: int, what: str) -> bytes:
        out = bytearray()
        for i in chain(start, -(-length // size), what, fat, count):
            out += sector(i)
        return bytes(out[:length])

    entries = read(directory, len(buf), "目录")
    names = []
    for at in range(0, len(entries) - 127, 128):
        name = entries[at:at + 64].decode("utf-16-le", "replace").split("\0", 1)[0]
        start, length = struct.unpack_from("<IQ", entries, at + 116)
        if size == 512:
            length &= 0xFFFFFFFF                      # version 3: the high half is not part of the size
        names.append((name, start, length))
    first = {}
    for name, start, length in names:
        first.setdefault(name, (start, length))        # the reader takes the first entry of a name
    name = next((n for n in _XLS_STREAMS if n in first), None)
    if name is None:
        raise _not_xls(label, "没有工作簿数据流，可能是其他 Office 文件")
    start, length = first[name]
    if length >= 4096:
        return read(start, length, f"数据流 {name} ")
    # a small stream lives in the mini stream (the root entry's stream), in 64-byte pieces chained by the mini FAT
    if not names or minifat_count == 0:
        raise _not_xls(label, f"数据流 {name} 缺少其所在的迷你流")
    mini = read(names[0][1], names[0][2], "迷你流")
    minifat = _u32s(read(minifat_start, minifat_count * size, "迷你 FAT"))
    pieces = chain(start, -(-length // 64), f"数据流 {name} ", minifat, len(mini) // 64)
    return b"".join(mini[64 * i:64 * i + 64] for i in pieces)[:length]


def _u32s(raw: bytes) -> array.array:
    """Little-endian 32-bit numbers (a FAT, a DIFAT sector), compactly."""
    numbers = array.array("I", raw[:len(raw) // 4 * 4])
    if sys.byteorder == "big":
        numbers.byteswap()
    return numbers


def _check_biff(data: bytes, label: str, limits: Limits) -> WorkbookFacts:
    """Walk the BIFF records once: the globals (sheets, shared strings), then each sheet from its
    position to its end, as the reader would; measure what it would allocate.

    The reader reads each sheet from its position until its EOF record, so sheets whose records
    overlap would be read again for each of them (1,000 entries naming one sheet of 20,000 records
    took this walk 5 s, and the reader longer): positions are sorted and a repeated one refused
    before any sheet is read, and each sheet is read no further than the next sheet's start.  A
    sheet that reaches it without its EOF runs on into the next one and is refused there, so the
    stream is walked at most once."""
    sheets, strings, end, longest_name = _biff_globals(data, label, limits)
    # a formula's text, as the reader writes it out, per byte of its tokens: a 7-byte reference to
    # another sheet becomes that sheet's name (3 bytes a character) and a cell address, a 5-byte
    # defined name its name; every other token gives at most 16 bytes per byte
    formula_bytes = max(16, -(-(3 * longest_name + 12) // 5) + 2)
    order = sorted(sheets)
    for position, name in order:
        if position >= len(data):
            raise _not_xls(label, f"工作表 {name} 的位置超出数据流")
    # the globals without an EOF run on through the sheets: read once more, not once per sheet
    if end is not None and order and order[0][0] < end:
        raise _not_xls(label, f"工作簿全局信息与工作表 {order[0][1]}的记录位置重叠")
    for (position, first), (start, second) in zip(order, order[1:]):
        if start == position:     # the reader would read the same records again for each sheet
            raise _not_xls(label, f"工作表 {first}与工作表 {second}的记录位置重叠")
    extents: dict[str, Extent] = {}
    total_cells = 0
    text = 0
    for k, (position, name) in enumerate(order):
        limit = order[k + 1][0] if k + 1 < len(order) else len(data)
        extent, stop, sheet_text = _biff_sheet(data, position, limit, strings, formula_bytes, label)
        if k + 1 < len(order) and (stop is None or stop > limit):
            raise _not_xls(label, f"工作表 {name}与工作表 {order[k + 1][1]}的记录位置重叠")
        _check_extent(name, extent, label, limits)
        extents[name] = extent
        total_cells += extent.cells
        text += sheet_text
        if total_cells > limits.cells:     # the reader holds every sheet at once
            raise _too_large(label, f"各工作表合计 {total_cells:,} 个单元格，超过 {limits.cells:,} 个（上限）")
        if text > limits.inflated_bytes:
            raise _too_much_text(label, name, text, limits.inflated_bytes, "单元格文本和公式")
    return WorkbookFacts(len(sheets), len(data), {name: extents[name] for _, name in sheets if name in extents})


_RECORD = struct.Struct("<HH")
_RECORD_AND_CELL = struct.Struct("<HHHH")      # a record's type and length, a cell record's row and column


def _records(data: bytes, start: int, label: str, limit: int | None = None) -> Iterator[tuple[int, int, int, int, int]]:
    """(type, offset of the body, length, first two 16-bit fields of the body, or 0) of each record
    from ``start`` that starts before ``limit`` (the end of the stream unless given); a record whose
    length runs past the stream, or too long a run of CONTINUE records, is refused.  (A cell
    record's first two fields are its row and column.)"""
    at, n, run = start, len(data), 0
    last = n - 4 if limit is None else min(n, limit) - 1   # the last offset a record may start at
    both, one = _RECORD_AND_CELL.unpack_from, _RECORD.unpack_from
    while at <= last and at + 4 <= n:
        if at + 8 <= n:
            typ, length, a, b = both(data, at)
        else:
            (typ, length), a, b = one(data, at), 0, 0
        body = at + 4
        at = body + length
        if at > n:
            raise _not_xls(label, f"位置 {body - 4} 处的记录长度 {length} 超出数据流")
        if typ != _CONTINUE:
            run = 0
        else:
            run += 1
            if run > MAX_CONTINUES:
                raise _too_large(label, f"位置 {body - 4} 附近有超过 {MAX_CONTINUES:,} 个连续的 CONTINUE 记录（上限）")
        yield typ, body, length, a, b


def _biff_globals(data: bytes, label: str, limits: Limits) -> tuple[list[tuple[int, str]], list[int], int | None, int]:
    """([(position, name)] of the sheets, each shared string's bytes as read, where the globals end
    (None without their EOF record), the characters of the longest sheet or defined name)."""
    sheets: list[tuple[int, str]] = []
    strings: list[int] = []
    biff8, codepage = True, "gbk"
    end = None
    sst: list[bytes] | None = None
    longest = 32                                   # a built-in name (Print_Titles …)
    for typ, body, length, _, _ in _records(data, 0, label):
        if sst is not None:
            if typ == _CONTINUE:
                sst.append(data[body:body + length])
                continue
            strings = _sst_lengths(sst, label, limits)
            sst = None
        if typ == 0x002F and length >= 2 and struct.unpack_from("<H", data, body)[0] != 0:   # FILEPASS
            raise FileUnreadable(f"{label}：工作簿设置了打开密码（内容已加密），无法读取；请取消密码后另存再使用")
        if typ == _BOF and not sheets and length >= 2:
            biff8 = struct.unpack_from("<H", data, body)[0] == 0x0600
        elif typ == 0x0042 and length >= 2:
            codepage = f"cp{struct.unpack_from('<H', data, body)[0]}"
        elif typ == _BOUNDSHEET and length >= 6:
            if len(sheets) >= limits.zip_members:    # refused at once, before the list grows further
                raise _too_large(label, f"工作簿的工作表超过 {limits.zip_members:,} 个（上限）")
            position = struct.unpack_from("<I", data, body)[0]
            sheets.append((position, _sheet_name(data[body + 6:body + length], biff8, codepage) or f"#{len(sheets) + 1}"))
        elif typ == _SST:
            sst = [data[body:body + length]]
        elif typ == 0x0018 and length >= 4:            # Lbl: a defined name of data[3] characters
            longest = max(longest, data[body + 3])
        elif typ == _EOF:
            end = body + length
            break
    if sst is not None:
        strings = _sst_lengths(sst, label, limits)
    longest = max([longest, *(len(name) for _, name in sheets)])
    return sheets, strings, end, longest


def _sheet_name(raw: bytes, biff8: bool, codepage: str) -> str:
    if not raw:
        return ""
    cch = raw[0]
    if biff8 and len(raw) >= 2:
        if raw[1] & 1:
            return raw[2:2 + 2 * cch].decode("utf-16-le", "replace").replace("\0", "")
        return raw[2:2 + cch].decode("latin-1").replace("\0", "")
    try:
        return raw[1:1 + cch].decode(codepage, "replace").replace("\0", "")
    except LookupError:
        return raw[1:1 + cch].decode("gbk", "replace").replace("\0", "")


def _sst_lengths(parts: list[bytes], label: str, limits: Limits) -> list[int]:
    """Bytes each shared string takes in the reader's memory, read as the reader reads the SST record
    and its CONTINUE records: a string's characters may go on in the next record, which then starts
    with the flag saying whether they are one or two bytes each."""
    total = sum(map(len, parts))
    if total > limits.shared_strings_bytes:
        raise _too_large(label, f"共享字符串（SST）有 {_mb(total)}，上限 {_mb(limits.shared_strings_bytes)}")
    out: list[int] = []
    part, data, at = 0, parts[0], 8
    unpack = struct.unpack_from
    while True:
        if at >= len(data):
            part += 1
            if part >= len(parts):
                break
            data, at = parts[part], 0
            continue
        if len(data) - at < 3:
            break                                   # the reader refuses the file here
        cch, flags = unpack("<HB", data, at)
        at += 3
        runs = extra = 0
        if flags & 0x8:
            if len(data) - at < 2:
                break
            runs = unpack("<H", data, at)[0]
            at += 2
        if flags & 0x4:
            if len(data) - at < 4:
                break
            extra = unpack("<i", data, at)[0]
            at += 4
        width = 2 if flags & 0x1 else 1
        left = cch
        while left:
            here = min(left, (len(data) - at) // width)
            at += here * width
            left -= here
            if left:
                part += 1
                if part >= len(parts) or not parts[part]:
                    return out                          # the reader refuses the file here
                data = parts[part]
                width = 2 if data[0] & 1 else 1
                at = 1
        out.append(cch * _CHAR_BYTES)
        skip = runs * 4 + max(extra, 0)
        while skip:
            if at >= len(data):
                part += 1
                if part >= len(parts):
                    return out
                data, at = parts[part], 0
            step = min(skip, len(data) - at)
            at += step
            skip -= step
    return out


def _biff_sheet(data: bytes, start: int, limit: int, strings: list[int], formula_bytes: int,
                label: str) -> tuple[Extent, int | None, int]:
    """(extent, where the sheet's records end (None when no EOF record starts before ``limit``),
    bytes of its cells' and formulas' text) of the sheet at ``start``, read no further than the
    records that start before ``limit``; ``formula_bytes``: the most text one byte of a formula's
    tokens becomes.

    The extent is the larger of what its DIMENSIONS records declare (the reader reserves that many
    cells) and the largest row and column any cell names (it allocates the rectangle up to them).
    An embedded chart's records (between a further BOF and its EOF) are walked too."""
    extent = Extent()
    rows = columns = 0          # the largest row and column named by a cell, plus one
    text = 0
    depth, seen_bof = 0, False
    stop = None
    unpack = struct.unpack_from
    nstrings = len(strings)
    cell_records, text_records = _CELL_RECORDS, _TEXT_RECORDS
    for typ, body, length, row, column in _records(data, start, label, limit):
        if typ in cell_records:
            if length >= 4:
                if row >= rows:
                    rows = row + 1
                if column >= columns:
                    columns = column + 1
                if typ == _LABEL_SST:
                    if length >= 10:
                        index = unpack("<I", data, body + 6)[0]
                        if index < nstrings:
                            text += strings[index]
                elif typ in text_records:
                    text += length * _CHAR_BYTES
                elif typ == _FORMULA and length >= 22:
                    tokens = unpack("<H", data, body + 20)[0]
                    text += min(tokens, length - 22) * formula_bytes
        elif typ == _MULRK and length >= 6:
            row, first = unpack("<HH", data, body)
            last = unpack("<H", data, body + length - 2)[0]
            rows = max(rows, row + 1)
            columns = max(columns, first + 1, last + 1)
        elif typ == _DIMENSIONS and length in (10, 14):
            if length == 14:
                first_row, end_row, first_col, end_col = unpack("<IIHH", data, body)
            else:
                first_row, end_row, first_col, end_col = unpack("<HHHH", data, body)
            if first_col > 0xFF or end_col < first_col:     # as the reader does
                first_col = 0
            if end_row >= 1 and end_col >= 1:                # the reader's arithmetic wraps at 2^32
                extent.rows = max(extent.rows, (end_row - first_row) & 0xFFFFFFFF)
                extent.columns = max(extent.columns, (end_col - first_col) & 0xFFFFFFFF)
        elif typ == _BOF:
            if seen_bof:
                depth += 1
            seen_bof = True
        elif typ == _EOF:
            if depth == 0:
                stop = body + length
                break
            depth -= 1
    extent.rows = max(extent.rows, rows)
    extent.columns = max(extent.columns, columns)
    return extent, stop, text


#: BIFF error codes (BOOLERR, a FORMULA's cached result) as Excel shows them
_BIFF_ERRORS = {0x00: "#NULL!", 0x07: "#DIV/0!", 0x0F: "#VALUE!", 0x17: "#REF!", 0x1D: "#NAME?",
                0x24: "#NUM!", 0x2A: "#N/A", 0x2B: "#GETTING_DATA"}
#: cell records that hold a value (calamine's range starts at the first column holding one)
_VALUE_RECORDS = frozenset((0x0203, 0x0204, 0x00D6, 0x0205, 0x027E, _LABEL_SST, _FORMULA, _MULRK))


@dataclass
class BiffSheet:
    """What the reader does not tell about one sheet of an .xls: merged ranges (0-based r1, c1, r2, c2),
    Excel error cells (0-based row, column, error) and the first column holding a value."""

    merges: list[tuple[int, int, int, int]] = field(default_factory=list)
    errors: list[tuple[int, int, str]] = field(default_factory=list)
    first_col: int | None = None


def xls_sheet_facts(path: Path, limits: "Limits") -> tuple[dict[str, BiffSheet], bool]:
    """Per sheet name, the merged ranges, error cells and first column of an .xls file that
    :func:`check_workbook` passed, and whether it counts dates from 1904 (DATEMODE); one walk of
    its records, as :func:`_check_biff` makes."""
    label = path.name
    with open(path, "rb") as f:
        try:
            buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):
            buf = f.read()
        try:
            data = _ole2_stream(buf, label)
        finally:
            if isinstance(buf, mmap.mmap):
                buf.close()
    sheets, _, _, _ = _biff_globals(data, label, limits)
    date1904 = False
    for typ, body, length, _, _ in _records(data, 0, label):
        if typ == 0x0022 and length >= 2:            # DATEMODE
            date1904 = struct.unpack_from("<H", data, body)[0] == 1
        elif typ == _EOF:
            break
    order = sorted(sheets)
    out: dict[str, BiffSheet] = {}
    unpack = struct.unpack_from
    for k, (position, name) in enumerate(order):
        limit = order[k + 1][0] if k + 1 < len(order) else len(data)
        facts = out.setdefault(name, BiffSheet())
        depth, seen_bof = 0, False
        for typ, body, length, row, column in _records(data, position, label, limit):
            if typ == _BOF:
                depth += seen_bof
                seen_bof = True
            elif typ == _EOF:
                if depth == 0:
                    break
                depth -= 1
            elif depth:
                continue                              # an embedded chart's records
            elif typ in _VALUE_RECORDS and length >= 4:
                first = column if typ != _MULRK else unpack("<H", data, body + 2)[0]
                facts.first_col = first if facts.first_col is None else min(facts.first_col, first)
                if typ == 0x0205 and length >= 8 and data[body + 7] == 1:          # BOOLERR, an error
                    facts.errors.append((row, column, _BIFF_ERRORS.get(data[body + 6], "#VALUE!")))
                elif typ == _FORMULA and length >= 14 and data[body + 6] == 2 and data[body + 12:body + 14] == b"\xff\xff":
                    facts.errors.append((row, column, _BIFF_ERRORS.get(data[body + 8], "#VALUE!")))
            elif typ == 0x00E5 and length >= 2:             # MERGEDCELLS
                count = min(unpack("<H", data, body)[0], (length - 2) // 8)
                for i in range(count):
                    r1, r2, c1, c2 = unpack("<HHHH", data, body + 2 + 8 * i)
                    facts.merges.append((r1, c1, r2, c2))
    return out, date1904


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
