"""Read the departments' files into Polars frames with canonical column names.

Formats: CSV (UTF-8 with or without BOM, GBK/GB18030, UTF-16 with BOM; comma, tab
or semicolon), Excel (first sheet) and Parquet.  Headers may be English or
Chinese.  Every frame gets ``_row``, the row number as a spreadsheet user counts
it (header = row 1), so that rejects can point at the exact line.  Values are
not interpreted here; see :mod:`screening.validate`.
"""
from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from .errors import InputError
from .schema import TABLES, Table

EXTENSIONS = (".csv", ".xlsx", ".parquet")
ROW = "_row"


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
        raise InputError(f"{path.name}：无法识别文件编码（既不是 UTF-8，也不是 GBK/GB18030），第 {exc.start} 字节处出错") from None


def _sniff_separator(text: bytes) -> str:
    first = text.split(b"\n", 1)[0]
    counts = {sep: first.count(sep.encode()) for sep in (",", "\t", ";")}
    return max(counts, key=lambda s: counts[s]) if any(counts.values()) else ","


def _read_csv(path: Path, raw: bytes) -> tuple[pl.DataFrame, str]:
    data, encoding = _decode_csv(raw, path)
    if not data.strip():
        raise InputError(f"{path.name}：文件为空，没有表头")
    try:
        frame = pl.read_csv(io.BytesIO(data), infer_schema=False, separator=_sniff_separator(data))
    except Exception as exc:  # polars raises several types for malformed CSV
        raise InputError(f"{path.name}：无法按 CSV 读取（{_first_line(exc)}）") from None
    return frame, encoding


def _read_excel(path: Path) -> pl.DataFrame:
    try:
        return pl.read_excel(path, sheet_id=1, infer_schema_length=0)
    except Exception as exc:
        raise InputError(f"{path.name}：无法按 Excel 读取第一个工作表（{_first_line(exc)}）") from None


def _read_parquet(path: Path) -> pl.DataFrame:
    try:
        return pl.read_parquet(path)
    except Exception as exc:
        raise InputError(f"{path.name}：无法按 Parquet 读取（{_first_line(exc)}）") from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _blank(column: str, dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.String:
        return pl.col(column).is_null() | (pl.col(column).str.strip_chars() == "")
    return pl.col(column).is_null()


def read_table(path: Path, table: Table) -> RawTable:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}：无法打开文件（{exc.strerror}）") from None
    encoding = None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame, encoding = _read_csv(path, raw)
    elif suffix == ".xlsx":
        frame = _read_excel(path)
    else:
        frame = _read_parquet(path)

    lookup = _header_lookup(table)
    for header in frame.columns:  # Polars renames a repeated header to NAME_duplicated_N
        m = re.fullmatch(r"(.+)_duplicated_\d+", header)
        if m and lookup.get(_normalize_header(m.group(1))):
            raise InputError(f"{path.name}：列“{m.group(1).strip()}”出现了不止一次，请删除多余的列")
    renames: dict[str, str] = {}
    headers: dict[str, str] = {}
    ignored: list[str] = []
    for header in frame.columns:
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

    frame = frame.select(renames.keys()).rename(renames)
    frame = frame.with_row_index(ROW, offset=2).with_columns(pl.col(ROW).cast(pl.Int64))
    # a blank line (or a row of empty cells) is not a record; row numbers stay as the file counts them
    empty = frame.select(pl.all_horizontal(_blank(c, frame.schema[c]) for c in renames.values()).alias("e"))["e"]
    if empty.any():
        frame = frame.filter(~empty)
    return RawTable(table, path, frame, headers, hashlib.sha256(raw).hexdigest(), encoding, ignored, frame.height)


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
