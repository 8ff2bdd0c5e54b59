"""Read the departments' files into Polars frames with canonical column names.

Formats: CSV (UTF-8 with or without BOM, GBK/GB18030, UTF-16 with BOM; comma, tab
or semicolon), Excel (first sheet) and Parquet.  Headers may be English or
Chinese.  Every frame gets ``_row``, the row number as a spreadsheet user counts
it (header = row 1), so that rejects can point at the exact line.  Values are
not interpreted here; see :mod:`screening.validate`.

Nothing is read whole before it is known to be what its name says and to have the
table's columns: a CSV's header is checked from its first 64 KB, a Parquet file's from
its footer, and a workbook is measured by :mod:`screening.filesafety` before the reader
sees it (a file that would inflate beyond :data:`~screening.filesafety.CLI_LIMITS` is
refused).  A refusal is one Chinese line naming the file (exit 2).
"""
from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from . import filesafety
from .errors import InputError
from .schema import TABLES, Table

EXTENSIONS = (".csv", ".xlsx", ".parquet")
ROW = "_row"
#: A Parquet table with more rows than this is refused from its footer, before a row is read: a
#: province's largest table (1M firms × a few years × parcels) has ~10M rows; a tiny file can
#: declare billions (run-length encoding), which the reader would allocate.
MAX_PARQUET_ROWS = 200_000_000


@dataclass
class RawTable:
    """One input file.  Its rows are read by :meth:`load` and dropped by :meth:`release`,
    so that a province's tables pass through memory one at a time."""

    table: Table
    path: Path
    frame: pl.DataFrame | None = None  # canonical column names + _row
    headers: dict[str, str] = field(default_factory=dict)  # canonical name -> header as written
    sha256: str = ""
    encoding: str | None = None
    ignored_headers: list[str] = field(default_factory=list)
    rows: int = 0

    @property
    def file(self) -> str:
        return self.path.name

    def load(self) -> pl.DataFrame:
        if self.frame is None:
            loaded = read_table(self.path, self.table)
            self.frame, self.headers, self.sha256 = loaded.frame, loaded.headers, loaded.sha256
            self.encoding, self.ignored_headers, self.rows = loaded.encoding, loaded.ignored_headers, loaded.rows
        return self.frame

    def release(self) -> None:
        self.frame = None


def find_table_file(data_dir: Path, table: str) -> Path | None:
    found = [data_dir / f"{table}{ext}" for ext in EXTENSIONS if (data_dir / f"{table}{ext}").is_file()]
    if len(found) > 1:
        names = "、".join(p.name for p in found)
        raise InputError(f"{data_dir}：表 {table} 有多个文件（{names}），请只保留一个")
    return found[0] if found else None


def _normalize_header(h: str) -> str:
    h = h.replace("\ufeff", "").strip().lower()
    h = h.replace("（", "(").replace("）", ")")
    return re.sub(r"\s+", "", h)


def _header_lookup(table: Table) -> dict[str, str]:
    lookup: dict[str, str] = {}
    for col in table.columns:
        for h in (col.name, col.zh, *col.aliases):
            lookup[_normalize_header(h)] = col.name
    return lookup


def _decode_csv(raw: bytes, path: Path) -> tuple[bytes, str]:
    """Return UTF-8 bytes and the encoding that was detected."""
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:], "utf-8-sig"
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16").encode("utf-8"), "utf-16"
    try:
        raw.decode("utf-8")
        return raw, "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("gb18030").encode("utf-8"), "gb18030"
    except UnicodeDecodeError as exc:
        raise _undecodable(path, exc.start) from None


def _undecodable(path: Path, at: int | None = None) -> InputError:
    where = f"，第 {at} 字节处出错" if at is not None else ""
    return InputError(f"{path.name}：无法识别文件编码（既不是 UTF-8，也不是 GBK/GB18030）{where}")


def _sniff_separator(text: bytes) -> str:
    first = text.split(b"\n", 1)[0]
    counts = {sep: first.count(sep.encode()) for sep in (",", "\t", ";")}
    return max(counts, key=lambda s: counts[s]) if any(counts.values()) else ","


def _csv_head_header(path: Path, head: bytes, size: int) -> list[str]:
    """The header row of a CSV, from its first bytes only (``head``; ``size`` is the file's size).

    Refuses, in one line, a file that is not text (NUL bytes, another format's signature), whose
    encoding is unknown, or whose first line is longer than the head."""
    kind = filesafety.sniff(head)
    if kind == "empty":
        raise InputError(f"{path.name}：文件为空，没有表头")
    if kind != "text":
        raise filesafety.FileUnreadable(f"{path.name}：不是 CSV 文本文件，文件内容看起来是{filesafety.KIND_ZH[kind]}")
    decoded = filesafety.decode_head(head)
    if decoded is None:
        raise _undecodable(path)
    text, _encoding = decoded
    complete = size <= len(head)
    lines = text.split("\n")
    if not complete:
        lines = lines[:-1]                       # the last line may be cut
    header = next((line for line in lines if line.strip()), None)   # leading blank lines are skipped, as the reader does
    if header is None:
        if complete:
            raise InputError(f"{path.name}：文件为空，没有表头")
        raise filesafety.FileUnreadable(
            f"{path.name}：前 {filesafety.HEAD_BYTES // 1024} KB 内没有找到表头行（第一行过长或全是空行），文件可能不是 CSV")
    header = header.rstrip("\r")
    return next(csv.reader([header], delimiter=_sniff_separator(header.encode("utf-8"))), [])


def _read_csv(path: Path, raw: bytes) -> tuple[pl.DataFrame, str]:
    data, encoding = _decode_csv(raw, path)
    if not data.strip():
        raise InputError(f"{path.name}：文件为空，没有表头")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise filesafety.FileUnreadable(f"{path.name}：第 {nul + 1} 字节起含有 NUL 字节（二进制内容），不是 CSV 文本")
    with filesafety.reader_errors(path.name, "无法按 CSV 读取"):
        frame = pl.read_csv(io.BytesIO(data), infer_schema=False, separator=_sniff_separator(data))
    return frame, encoding


def _read_excel(path: Path) -> pl.DataFrame:
    with filesafety.reader_errors(path.name, "无法按 Excel 读取第一个工作表"):
        return pl.read_excel(path, sheet_id=1, infer_schema_length=0)


def _parquet_header(path: Path, head: bytes) -> list[str]:
    """A Parquet file's column names and row count from its footer; the rows are not read."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - 4))
        tail = f.read(4)
    if not head.startswith(b"PAR1") or tail != b"PAR1" or size < 12:
        kind = filesafety.sniff(head)
        seen = "Parquet 文件不完整" if kind == "parquet" else f"文件内容看起来是{filesafety.KIND_ZH[kind]}"
        raise filesafety.FileUnreadable(f"{path.name}：不是有效的 Parquet 文件（{seen}）")
    with filesafety.reader_errors(path.name, "无法按 Parquet 读取"):
        columns = list(pl.read_parquet_schema(path))
        rows = pl.scan_parquet(path).select(pl.len()).collect().item()
    if rows > MAX_PARQUET_ROWS:
        raise filesafety.FileTooLarge(f"{path.name}：文件过大，声明有 {rows:,} 行（上限 {MAX_PARQUET_ROWS:,}）")
    return columns


def _read_parquet(path: Path) -> pl.DataFrame:
    with filesafety.reader_errors(path.name, "无法按 Parquet 读取"):
        return pl.read_parquet(path)


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _blank(column: str, dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.String:
        return pl.col(column).is_null() | (pl.col(column).str.strip_chars() == "")
    return pl.col(column).is_null()


def _map_headers(columns: list[str], table: Table, path: Path) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """(renames to canonical names, canonical name -> header as written, ignored headers) of a header row.

    Raises when a column repeats or a required column is missing; the same check runs on a file's
    first bytes (before it is read) and on the frame the reader made."""
    lookup = _header_lookup(table)
    seen: set[str] = set()
    for header in columns:  # Polars renames a repeated header to NAME_duplicated_N
        m = re.fullmatch(r"(.+)_duplicated_\d+", header)
        name = m.group(1) if m else header
        if lookup.get(_normalize_header(name)) and (m or _normalize_header(name) in seen):
            raise InputError(f"{path.name}：列“{name.strip()}”出现了不止一次，请删除多余的列")
        seen.add(_normalize_header(name))
    renames: dict[str, str] = {}
    headers: dict[str, str] = {}
    ignored: list[str] = []
    for header in columns:
        canonical = lookup.get(_normalize_header(header))
        if canonical is None:
            ignored.append(header)
            continue
        if canonical in headers:
            raise InputError(f"{path.name}：列“{headers[canonical]}”和“{header}”都对应 {canonical}，请删除其中一列")
        renames[header] = canonical
        headers[canonical] = header.strip()

    missing = [c.label for c in table.columns if c.required and c.name not in headers]
    for group in table.one_of:
        if not any(name in headers for name in group):
            missing.append(" 或 ".join(table.column(n).label for n in group))
    if missing:
        raise InputError(f"{path.name}：缺少必需列 {'、'.join(missing)}")
    return renames, headers, ignored


def read_table(path: Path, table: Table) -> RawTable:
    """Read one file.  What it is and its header are checked from its first bytes (a workbook is
    measured whole, without extracting it) before the reader parses the rest."""
    head = filesafety.read_head(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"{path}：无法打开文件（{exc.strerror}）") from None
    encoding = None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        _map_headers(_csv_head_header(path, head, size), table, path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise InputError(f"{path}：无法打开文件（{exc.strerror}）") from None
        frame, encoding = _read_csv(path, raw)
        sha256 = hashlib.sha256(raw).hexdigest()
        del raw
    elif suffix == ".xlsx":
        filesafety.require_kind(head, "zip", path.name, "Excel 工作簿（.xlsx）")
        filesafety.check_workbook(path, path.name, filesafety.CLI_LIMITS)
        frame, sha256 = _read_excel(path), _file_sha256(path)
    else:
        _map_headers(_parquet_header(path, head), table, path)
        frame, sha256 = _read_parquet(path), _file_sha256(path)

    renames, headers, ignored = _map_headers(frame.columns, table, path)
    frame = frame.select(renames.keys()).rename(renames)
    frame = frame.with_row_index(ROW, offset=2).with_columns(pl.col(ROW).cast(pl.Int64))
    # a blank line (or a row of empty cells) is not a record; row numbers stay as the file counts them
    empty = frame.select(pl.all_horizontal(_blank(c, frame.schema[c]) for c in renames.values()).alias("e"))["e"]
    if empty.any():
        frame = frame.filter(~empty)
    return RawTable(table, path, frame, headers, sha256, encoding, ignored, frame.height)


def read_dir(data_dir: Path, needed: set[str]) -> dict[str, RawTable]:
    """Find every table file in ``data_dir`` (read later, one at a time, by validation).

    A ``needed`` table that is absent is an error."""
    if not data_dir.is_dir():
        raise InputError(f"数据目录不存在：{data_dir}")
    out: dict[str, RawTable] = {}
    for name, table in TABLES.items():
        path = find_table_file(data_dir, name)
        if path is None:
            if name in needed:
                raise InputError(f"{data_dir}：缺少表 {name}（{table.zh}），应为 {name}.csv、{name}.xlsx 或 {name}.parquet")
            continue
        out[name] = RawTable(table, path)
    return out
