"""Read one table file into a Polars frame with canonical column names.

Formats (by the file's bytes): CSV (UTF-8 with or without BOM, GBK/GB18030, UTF-16 with
BOM; comma, tab or semicolon), Excel (xlsx/xlsm/xls: the first visible sheet whose header
matches), an HTML table, Parquet.  The header row is looked for among the first rows;
every frame gets ``_row``, the row number Excel shows, so that rejects point at the exact
line.  Cells are normalised here (:mod:`.cells`); types are checked in
:mod:`screening.validate`.
"""
from __future__ import annotations

import csv
import io
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from .. import filesafety
from ..errors import InputError
from ..paths import folder_problem
from ..schema import TABLES, YEAR_RANGE, Table
from . import workbook as wbk
from .cells import NORMALISED_SCHEMA, apply, steps
from .discovery import (ANY_WORKBOOK, CSV, HTML, KIND_ZH, PARQUET, XLS, XLSX, _BY_SUFFIX, OpenedTable,
                        find_table_file, open_table)
from .header import (SCAN_ROWS, HeaderMatch, combine_expr, describe_row, find_header, header_lookup, normalize_header,
                     normalize_header_expr)

ROW = "_row"
ERROR_SCHEMA = {ROW: pl.Int64, "column": pl.String, "error": pl.String}
FURNITURE_SCHEMA = {ROW: pl.Int64, "reason": pl.String}
#: ``uscc`` and ``year`` as written (when the table has them): a land row not read makes its firm's land unknown
RAGGED_SCHEMA = {ROW: pl.Int64, "reason": pl.String, "value": pl.String, "uscc": pl.String, "year": pl.String}
_TOTAL = r"^(合\s*计|总\s*计|小\s*计|累\s*计)[:：]?$"
_SIGN_OFF = (r"^(制表人|审核人|填表人|填报人|负责人|单位负责人|统计负责人|联系人|联系电话|制表日期|填报日期|填表日期|报出日期"
             r"|(填表|填报|编制)?说明|附注|注释|注\s*\d*|备注|数据来源)\s*[:：]")
_COLUMN_NUMBERS = r"^([甲乙丙丁戊己庚辛]|\d{1,2})$"
_REPEATED = "重复的表头行"
#: a sheet named for a year ("2021年", "2021", "2021年度"), after normalize_header
_YEAR_SHEET = re.compile(r"^(\d{4})(年度?)?(数据)?$")


@dataclass
class RawTable:
    """One input file.  Its rows are read by :meth:`load` and dropped by :meth:`release`,
    so that a province's tables pass through memory a few at a time (``validate._WORKERS``)."""

    table: Table
    path: Path
    frame: pl.DataFrame | None = None  # canonical column names + _row
    headers: dict[str, str] = field(default_factory=dict)  # canonical name -> header as written
    sha256: str = ""
    encoding: str | None = None
    ignored_headers: list[str] = field(default_factory=list)
    rows: int = 0
    data_dir: Path | None = None
    sheet: str | None = None  # the sheet read
    sheets: list[dict] = field(default_factory=list)  # every sheet: name, visible, read
    kind: str = ""  # what the file is by its bytes
    note: str | None = None  # e.g. "a CSV named .xls"
    header_row: int = 1  # as Excel shows it
    units: dict[str, dict] = field(default_factory=dict)  # canonical -> {unit, factor} (for people)
    factors: dict[str, tuple[float, float]] = field(default_factory=dict)  # value × num / den
    cell_errors: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=ERROR_SCHEMA))
    normalised: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=NORMALISED_SCHEMA))
    #: rows that are report furniture, not records (栏次, 合计, 制表人 …): _row, reason
    furniture: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=FURNITURE_SCHEMA))
    #: CSV rows with more cells than the header, not read: _row, reason, value (the cells beyond it)
    ragged: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=RAGGED_SCHEMA))
    #: read only these years' rows (e.g. an evaluation of one data year): a row whose year cell
    #: is a valid year outside them is left out right after reading (:func:`other_year_rows`)
    years: frozenset[int] | None = None
    #: rows left out because their year is another valid year (``years``)
    other_year_rows: int = 0

    @property
    def file(self) -> str:
        """The file name, with the sheet read when the workbook has more than one: ``tax.xlsx[税收]``."""
        if self.sheet is not None and len(self.sheets) > 1:
            return f"{self.path.name}[{self.sheet}]"
        return self.path.name

    def load(self) -> pl.DataFrame:
        if self.frame is None:
            loaded = read_table(self.path, self.table, self.data_dir, self.years)
            for name in ("frame", "headers", "sha256", "encoding", "ignored_headers", "rows", "sheet", "sheets",
                         "kind", "note", "header_row", "units", "factors", "cell_errors", "normalised", "furniture", "ragged",
                         "other_year_rows"):
                setattr(self, name, getattr(loaded, name))
        return self.frame

    def release(self) -> None:
        self.frame = None

    def intake(self) -> dict:
        """What was read, for run.json and the intake report."""
        return {
            "file": str(self.path), "sha256": self.sha256, "encoding": self.encoding, "format": self.kind,
            "note": self.note, "sheet": self.sheet, "sheets": self.sheets, "header_row": self.header_row,
            "columns": {c: {"header": h, **self.units.get(c, {})} for c, h in self.headers.items()},
            "ignored_columns": self.ignored_headers,
            "normalised": _counts(self.normalised),
        }


def _counts(normalised: pl.DataFrame) -> dict[str, int]:
    if not normalised.height:
        return {}
    g = normalised.group_by("kind").len().sort("kind")
    return dict(zip(g["kind"].to_list(), g["len"].to_list()))


# ---------------------------------------------------------------- CSV

def _lf_lines(data: bytes) -> bytes:
    """Line breaks as the reader takes them: in a file without any LF (an old Mac's), CR becomes LF.
    A stray CR in a file of LF or CRLF lines stays what it was (part of a cell)."""
    if b"\n" in data or b"\r" not in data:
        return data
    return data.replace(b"\r", b"\n")


def _decode_csv(raw: bytes, path: Path) -> tuple[bytes, str]:
    """Return UTF-8 bytes and the encoding that was detected."""
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:], "utf-8-sig"
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16").encode("utf-8"), "utf-16"
    if guess := filesafety.utf16_without_bom(raw):
        try:
            return raw.decode(guess).encode("utf-8"), guess
        except UnicodeDecodeError as exc:
            raise InputError(f"{path.name}：按 UTF-16（无字节顺序标记）读取时第 {exc.start} 字节处出错") from None
    try:
        raw.decode("utf-8")
        return raw, "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("gb18030").encode("utf-8"), "gb18030"
    except UnicodeDecodeError as exc:
        raise InputError(f"{path.name}：无法识别文件编码（既不是 UTF-8，也不是 GBK/GB18030），第 {exc.start} 字节处出错") from None


def _split_lines(text: str, complete: bool) -> list[str]:
    """The physical lines of ``text`` (LF, CRLF, or an old Mac's CR alone when the text has no LF:
    as :func:`_lf_lines` reads it); a last line cut by the end of the head is dropped."""
    lines = text.split("\n" if "\n" in text else "\r")
    return lines if complete else lines[:-1]


#: physical lines of a CSV's head read as records: SCAN_ROWS records, some with a line break in a cell
_RECORD_LINES = SCAN_ROWS * 4


def _csv_header(opened: OpenedTable, table: Table, lookup: dict[str, str]) -> tuple[HeaderMatch, str, list, int]:
    """The header row, the separator, the rows looked at and the physical lines above the header,
    from the file's head only (the header may sit below title, blank or unit lines:
    :func:`.header.find_header`).

    Rows are CSV records, as a spreadsheet shows them: a quoted cell may hold a line break
    (``"实缴税金⏎（元）"``, Alt+Enter in Excel), and the unit after it belongs to the header.
    An unbalanced quote in a title line would swallow the lines after it: the physical lines
    are looked at too, and the better match wins (the records' at equal score)."""
    lines = _split_lines(opened.head_text or "", opened.complete)
    whole = opened.complete and len(lines) <= _RECORD_LINES  # no record is cut by the end of ``lines``
    lines = lines[:_RECORD_LINES]
    if not any(line.strip() for line in lines):
        if opened.complete:
            raise InputError(f"{opened.path.name}：文件为空，没有表头")
        raise filesafety.FileUnreadable(
            f"{opened.path.name}：前 {filesafety.HEAD_BYTES // 1024} KB 内没有找到表头行（第一行过长或全是空行），文件可能不是 CSV")
    # a stray CR inside a line is part of a cell (as the reader takes it), never the csv module's error
    clean = [line.rstrip("\r").replace("\r", " ") for line in lines]
    best: tuple[tuple, HeaderMatch, str, list, int] | None = None
    for sep in (",", "\t", ";"):
        records, starts = _csv_records(clean, sep, whole)
        by_line = [next(csv.reader([line], delimiter=sep), []) for line in clean[:SCAN_ROWS]]
        for rows, skip, rank in ((records, starts, 1), (by_line, None, 0)):
            if not rows:
                continue
            match = find_header(rows, table, lookup)
            key = (match.ok, match.score, rank)
            if best is None or key > best[0]:
                best = (key, match, sep, rows, starts[match.row] if skip is not None else match.row)
    return best[1:]


def _csv_records(lines: list[str], sep: str, whole: bool) -> tuple[list[list[str]], list[int]]:
    """The first :data:`SCAN_ROWS` CSV records of ``lines`` (quoted cells may span lines) and the
    physical line each starts on; unless ``lines`` are the ``whole`` file, a record that ends on
    the last line may be cut there and is left out."""
    reader = csv.reader((line + "\n" for line in lines), delimiter=sep)
    records: list[list[str]] = []
    starts: list[int] = []
    start = 0
    try:
        for record in reader:
            if len(records) >= SCAN_ROWS or (reader.line_num >= len(lines) and not whole):
                break
            records.append(record)
            starts.append(start)
            start = reader.line_num
    except csv.Error:  # e.g. a field larger than the csv module's limit: the physical lines decide
        pass
    return records, starts


def _read_csv(opened: OpenedTable, skip_lines: int, sep: str, header_row: int = 0
              ) -> tuple[pl.DataFrame, str, list[tuple[int, list[str]]]]:
    """The rows from the header line on (the header was found from the head, ``skip_lines``
    physical lines down, ``header_row`` records: Excel row header_row + 1), and the rows with more cells than the header (frame index, the cells
    beyond it: :func:`_ragged_csv`); refuses NUL bytes."""
    path = opened.path
    data, encoding = _decode_csv(opened.read_bytes(), path)
    data = _lf_lines(data)
    if not data.strip():
        raise InputError(f"{path.name}：文件为空，没有表头")
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1  # the row a spreadsheet shows (a cell holding a line break aside)
        raise filesafety.FileUnreadable(f"{path.name}：第 {line} 行含有 NUL 字节（第 {nul + 1} 字节，二进制内容），"
                                        "不是 CSV 文本；请删除该字符后重新导出")
    offset = 0
    for _ in range(skip_lines):  # the header's line starts after this many newlines
        offset = data.index(b"\n", offset) + 1
    ragged: list[tuple[int, list[str]]] = []
    with filesafety.reader_errors(path.name, "无法按 CSV 读取"):
        try:
            frame = pl.read_csv(io.BytesIO(data[offset:]), has_header=False, infer_schema=False, separator=sep)
        except pl.exceptions.ComputeError as exc:
            if "more fields" not in str(exc):
                _quote_problem(data[offset:], sep, path, header_row)
                raise
            # a row with more cells than the header (an unquoted comma: "12,5", a name "甲公司,分厂")
            frame, ragged = _ragged_csv(data[offset:], sep)
    return frame, encoding, ragged


def _quote_problem(data: bytes, sep: str, path: Path, header_row: int) -> None:
    """When the reader fails on a quote, the row (as Excel shows it) whose quote is not closed, in one line."""
    reader = csv.reader(io.StringIO(data.decode("utf-8", "replace"), newline=""), delimiter=sep, strict=True)
    start = 0  # records read before the one being read
    try:
        for _ in reader:
            start += 1
    except csv.Error:
        pass
    else:
        return
    excel_row = header_row + 1 + start  # ``data`` starts with the header's record
    raise filesafety.FileUnreadable(
        f"{path.name}：第 {excel_row} 行附近的引号不成对（单元格以英文双引号开头却没有结束的双引号，或引号后还有其他字符），"
        "无法确定各单元格的边界；请检查该行后重新导出") from None


def _ragged_csv(data: bytes, sep: str) -> tuple[pl.DataFrame, list[tuple[int, list[str]]]]:
    """The rows of a CSV (the header first) as text, cut to the header's width, and the rows
    that had filled cells beyond it: (frame index, those cells).  Such a row cannot be put in
    its columns (which comma was meant?): it is rejected whole, never cut and read
    (:func:`read_table`).  Read by the csv module: only a file that has such a row comes here."""
    records = list(csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=sep))
    width = len(records[0]) if records else 0
    ragged = [(i, rec[width:]) for i, rec in enumerate(records) if len(rec) > width and any(c.strip() for c in rec[width:])]
    return _text_frame(records, width), ragged


def _text_frame(rows: list[list[str | None]], width: int) -> pl.DataFrame:
    """Rows of cell texts as a frame of ``width`` text columns (column_1 …); an empty cell is null."""
    cols = {f"column_{j + 1}": [(r[j] or None) if j < len(r) else None for r in rows] for j in range(width)}
    return pl.DataFrame(cols, schema={k: pl.String for k in cols})


# ---------------------------------------------------------------- workbooks

def _ragged_rows(path: Path, ragged: list[tuple[int, list[str]]], first_row: int,
                 body: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The rows with more cells than the header, as rejects (Excel row, reason, the cells beyond the
    header), and the body without them.  When every data row has more, the header lacks a column
    or the separator is another: the file stops, one line."""
    rows = [first_row + 1 + i for i, _ in ragged if i > 0]  # frame index i is Excel row first_row + 1 + i
    if not rows:
        raise InputError(f"{path.name}：表头行比其他行多出内容，无法对齐各列")
    cells = ["、".join(c.strip() for c in extra if c.strip()) for i, extra in ragged if i > 0]
    data_rows = body.filter(pl.any_horizontal(pl.col(c).is_not_null() for c in body.columns if c != ROW)).height
    if len(rows) >= data_rows:
        raise InputError(f"{path.name}：每一行数据都比表头多出单元格（第 {rows[0]} 行多出“{cells[0]}”），"
                         "表头可能少了列，或分隔符不对；无法对齐各列")
    found = pl.DataFrame({ROW: rows, "value": cells}, schema={ROW: pl.Int64, "value": pl.String})
    rejects = found.select(ROW, pl.format("这一行比表头多出 {} 个单元格（单元格中可能有未加引号的逗号，如“12,5”或名称中的逗号），"
                                          "无法确定各值属于哪一列，整行未读取",
                                          pl.col("value").str.count_matches("、") + 1).alias("reason"), "value")
    keys = body.select(ROW, *(pl.col(c).cast(pl.String) if c in body.columns else pl.lit(None, dtype=pl.String).alias(c)
                              for c in ("uscc", "year")))
    rejects = rejects.join(keys, on=ROW, how="left").select(list(RAGGED_SCHEMA))
    return rejects, body.filter(~pl.col(ROW).is_in(found[ROW].implode()))


def _fill_merges(frame: pl.DataFrame, merges: list[tuple[int, int, int, int]], first_col: int,
                 label: str) -> tuple[pl.DataFrame, list[tuple[int, int, str]]]:
    """Give every cell of a merged range the range's (top-left) value; returns the cells filled.

    Merged ranges never overlap (Excel refuses such a file): ranges that together cover more cells
    than the sheet has are a damaged (or hostile) file, refused before any cell is filled, so the
    work stays within the sheet's size; a range written twice counts once."""
    merges = list(dict.fromkeys(merges))
    covered = sum((min(r2, frame.height - 1) - r1 + 1) * (min(c2 - first_col, frame.width - 1) - max(c1 - first_col, 0) + 1)
                  for r1, c1, r2, c2 in merges
                  if 0 <= r1 < frame.height and r1 <= r2 and c1 <= c2 and c2 >= first_col and c1 - first_col < frame.width)
    if covered > frame.height * frame.width:
        raise filesafety.FileUnreadable(f"{label}：合并单元格区域相互重叠（共覆盖 {covered:,} 个单元格，工作表只有 "
                                        f"{frame.height * frame.width:,} 个），文件可能已损坏；请在 Excel 或 WPS 中打开并另存后再导出")
    targets: dict[int, tuple[list[int], list[str]]] = {}
    filled: list[tuple[int, int, str]] = []
    for r1, c1, r2, c2 in merges:
        if r2 < 0 or r1 >= frame.height or r1 < 0:
            continue
        r2 = min(r2, frame.height - 1)
        for c in range(c1, c2 + 1):
            j = c - first_col
            if not 0 <= j < frame.width:
                continue
            value = frame[r1, c1 - first_col] if 0 <= c1 - first_col < frame.width else None
            if value is None:
                continue
            idx, vals = targets.setdefault(j, ([], []))
            for r in range(r1, r2 + 1):
                if (r, c) != (r1, c1):
                    idx.append(r)
                    vals.append(value)
                    filled.append((r, j, value))
    if targets:
        frame = frame.with_columns(
            frame.to_series(j).scatter(idx, pl.Series(vals, dtype=pl.String)) for j, (idx, vals) in targets.items()
        )
    return frame, filled


def _read_workbook(opened: OpenedTable, table: Table, lookup: dict[str, str]):
    path = opened.path
    wb = wbk.open_workbook(opened)
    closest: tuple[HeaderMatch, list, str] | None = None
    hidden_match: str | None = None
    chosen = None
    frame = None
    also: list[str] = []  # later visible sheets whose header matches too: named, never read (contract)
    unreadable: list[str] = []  # later visible sheets the reader fails on: named, never fatal (their data is not read)
    for i, meta in enumerate(wb.sheets):
        # calamine parses a whole sheet even for a few rows: load it once, look at its head
        if chosen is not None:
            if meta.visible != "visible":
                continue  # a hidden sheet matters only when no visible one matches
            try:
                head = wbk.load_rows(wb, i, SCAN_ROWS)
            except filesafety.FileUnreadable:
                unreadable.append(meta.name)
                continue
        elif meta.visible != "visible":
            head = wbk.load_rows(wb, i, SCAN_ROWS)
        else:
            frame = wbk.load_rows(wb, i)
            head = frame.head(SCAN_ROWS)
        head, _ = _fill_merges(head, meta.merges, meta.first_col, path.name)
        rows = [list(r) for r in head.iter_rows()]
        match = find_header(rows, table, lookup)
        if meta.visible != "visible":
            if match.ok and hidden_match is None:
                hidden_match = meta.name
            continue
        if chosen is not None:
            if match.ok:
                also.append(meta.name)
            continue
        if match.ok:
            chosen = (i, meta, match, frame)
            continue
        if closest is None or match.score > closest[0].score:
            closest = (match, rows, meta.name)
    sheets = [{"name": m.name, "visible": m.visible, "read": chosen is not None and m is chosen[1],
               "header_matches": m.name in also or (chosen is not None and m is chosen[1])} for m in wb.sheets]
    if chosen is None:
        if hidden_match is not None:
            raise InputError(f"{path.name}：表头只出现在隐藏的工作表“{hidden_match}”中，隐藏的工作表不读取"
                             "（请把要用的工作表设为可见，或删除作废的工作表）")
        if closest is None:
            raise InputError(f"{path.name}：没有可见的工作表")
        match, rows, name = closest
        if match.error:
            raise InputError(f"{path.name}[{name}]：{match.error}")
        raise InputError(f"{path.name}[{name}]：缺少必需列 {'、'.join(match.missing)}"
                         f"（最接近表头的是第 {match.row + 1} 行：{describe_row(rows, match)}）"
                         + _year_sheet_hint(table, match, [name] + [m.name for m in wb.sheets if m.visible == "visible"]))
    i, meta, match, frame = chosen
    frame, filled = _fill_merges(frame, meta.merges, meta.first_col, path.name)
    errors = [(r, c - meta.first_col, e) for r, c, e in meta.errors]
    return frame, match, meta.name, sheets, filled, errors, wb.date1904, unreadable


def _year_sheet_hint(table: Table, match: HeaderMatch, names: list[str]) -> str:
    """When the 年份 column is missing and a sheet is named for a year (a sheet per year), why that
    is not enough: the year is never read from a sheet's name, and only one sheet is read."""
    year = next((c for c in table.columns if c.name == "year"), None)
    if year is None or year.label not in match.missing:
        return ""
    lo, hi = YEAR_RANGE
    for name in names:
        m = _YEAR_SHEET.match(normalize_header(name))
        if m and lo <= int(m.group(1)) <= hi:
            return (f"（工作表名“{name}”像是年份：年份不从工作表名读取，且只读取一张工作表；"
                    f"请把各年的数据放在同一张工作表中，并加一列“{year.zh}”）")
    return ""


#: a colspan/rowspan beyond this is taken as this (a page's whole width is far less; a hostile
#: ``colspan="100000000"`` must not allocate a grid of that size)
_MAX_SPAN = 1000
#: cells the spans of one HTML file may fill beyond their own (a real export's merges fill a few
#: thousand; many cells each spanning 1000 × 1000 are refused before the grid grows)
_MAX_SPANNED = 1_000_000
#: columns of one HTML table row (Excel's own limit): a short file of spanned or empty cells must not
#: make a frame of a million columns
_MAX_COLUMNS = 16_384
#: tables of one HTML file (an export page holds a few: a query form, a layout, the data); each is
#: looked at for the header
_MAX_TABLES = 1000


def _read_html(path: Path, raw: bytes) -> list[tuple[pl.DataFrame, list[tuple[int, int, str]]]]:
    """Every <table> of an HTML export (a nested one too), in the order they start, cells as text,
    each with the cells a span filled (frame row, column, value: listed as ``merged_cell``).

    A cell spanning columns or rows (``colspan``/``rowspan``) fills every cell it covers, as a
    merged range does in a workbook, so that the columns of the rows below stay where they are;
    Excel's own HTML keeps a number's full value in ``x:num`` when the text shows it rounded."""
    from html.parser import HTMLParser

    made = [0]  # cells filled by spans, over every table

    class Grid:
        def __init__(self) -> None:
            self.rows: list[list[str | None]] = []
            self.pending: dict[tuple[int, int], str] = {}  # (row, column) filled by a rowspan above
            self.filled: list[tuple[int, int, str]] = []  # every cell a span filled (not its first)

        def start_row(self) -> None:
            self.rows.append([])
            self._skip()

        def _skip(self) -> None:
            r, row = len(self.rows) - 1, self.rows[-1]
            while (r, len(row)) in self.pending:
                text = self.pending.pop((r, len(row)))
                if text:
                    self.filled.append((r, len(row), text))
                row.append(text)

        def add(self, text: str, colspan: int, rowspan: int) -> None:
            made[0] += colspan * rowspan - 1
            if made[0] > _MAX_SPANNED:
                raise filesafety.FileTooLarge(f"{path.name}：网页表格的合并单元格（colspan/rowspan）共覆盖超过 "
                                              f"{_MAX_SPANNED:,} 个单元格（上限）")
            if not self.rows:
                self.start_row()
            r, row = len(self.rows) - 1, self.rows[-1]
            if len(row) + colspan > _MAX_COLUMNS:
                raise filesafety.FileTooLarge(f"{path.name}：网页表格第 {r + 1} 行超过 {_MAX_COLUMNS:,} 列（Excel 的列数上限），"
                                              "不是部门导出的表格")
            for k in range(colspan):
                c = len(row)
                if k and text:
                    self.filled.append((r, c, text))
                row.append(text)
                for k in range(1, rowspan):
                    self.pending[(r + k, c)] = text
            self._skip()

    def rounded(text: str, number: str) -> bool:
        """Whether ``text`` shows the number ``number`` rounded ("1.5" for 1.456).  A text that is
        the same number ("0610" for 610: a code with its zeros) or no number (a date "2021/1/1" for
        44197, "50%") is what the cell shows, and is read."""
        try:
            return float(text.replace(",", "")) != float(number)
        except ValueError:
            return False

    def span(attrs: dict, name: str) -> int:
        try:
            return max(1, min(int(str(attrs.get(name) or "1").strip()), _MAX_SPAN))
        except ValueError:
            return 1

    class Cells(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.grids: list[Grid] = []
            self.open: list[Grid] = []  # the tables being read, innermost last
            self.cell: list[str] | None = None
            self.attrs: dict = {}

        def handle_starttag(self, tag, attrs):
            if tag == "table":
                self._end_cell()
                if len(self.grids) >= _MAX_TABLES:
                    raise filesafety.FileTooLarge(f"{path.name}：网页文件中的表格超过 {_MAX_TABLES:,} 个，不是部门导出的表格")
                grid = Grid()
                self.grids.append(grid)
                self.open.append(grid)
            elif not self.open:
                return
            elif tag == "tr":
                self._end_cell()
                self.open[-1].start_row()
            elif tag in ("td", "th"):
                self._end_cell()
                self.cell, self.attrs = [], dict(attrs)
            elif tag == "br" and self.cell is not None:
                self.cell.append("\n")

        def handle_endtag(self, tag):
            if tag in ("td", "th", "tr"):
                self._end_cell()
            elif tag == "table" and self.open:
                self._end_cell()
                self.open.pop()

        def _end_cell(self):
            if self.cell is None or not self.open:
                self.cell = None
                return
            text = "".join(self.cell).strip()
            number = self.attrs.get("x:num")  # Excel's HTML: the value behind a rounded text
            if number and rounded(text, number.strip()):
                text = number.strip()
            self.open[-1].add(text, span(self.attrs, "colspan"), span(self.attrs, "rowspan"))
            self.cell = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell.append(data)

    data, _ = _decode_csv(raw, path)
    parser = Cells()
    parser.feed(data.decode("utf-8"))
    parser.close()
    parser._end_cell()
    frames = []
    for grid in parser.grids:
        rows = [[None if v == "" else v for v in r] for r in grid.rows]
        if not any(any(v is not None for v in r) for r in rows):
            continue
        frames.append((_text_frame(rows, max(len(r) for r in rows)), grid.filled))
    if not frames:
        raise InputError(f"{path.name}：网页文件中没有表格")
    return frames


def _read_parquet(path: Path, columns: list[str], year: str | None = None,
                  years: frozenset[int] | set[int] | None = None) -> tuple[pl.DataFrame, int | None]:
    """The columns, and how many rows were left out as of other years, or None when none
    were (``years``: only rows whose ``year`` column is not plainly another valid year are
    decoded; they then come numbered in ``ROW`` as the file counts them, from 2)."""
    with filesafety.reader_errors(path.name, "无法按 Parquet 读取"):
        if year is None or years is None or ROW in columns:
            return pl.read_parquet(path, columns=columns), None  # memory-mapped, not a copy of its bytes
        scan = pl.scan_parquet(path).select(columns)
        other = other_year_rows(scan.collect_schema()[year], years, year)
        if other is None:
            return pl.read_parquet(path, columns=columns), None
        total = pl.scan_parquet(path).select(pl.len()).collect().item()  # from the footer
        frame = scan.with_row_index(ROW, offset=2).filter(~other).collect()
        return frame.with_columns(pl.col(ROW).cast(pl.Int64)), total - frame.height


def _furniture(body: pl.DataFrame, cols: list[str], headers: dict[str, str], top: list[list] | None = None,
               span: int = 1, keys: tuple[str, ...] = ()) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Take out report furniture: a 栏次 row ("甲 乙 1 2") right under the header (also under each
    repeat of it), the header repeated on every printed page, 合计/小计 rows and sign-off lines
    (制表人、审核人、注：…).  Vectorised over the text columns; ``headers``: column -> its header as written.
    A sign-off line holds no value in the must-fill columns ``keys`` other than its own text: a record whose
    note says "联系人：王某" or "附注：含3家" is a record.

    A header of ``span`` rows is recognised again as it was at the top (a two-row header
    combined, :func:`.header.combine_expr`); ``top``: the sheet's rows from its first down to the
    header's last, as written (cells in ``cols`` order).  The rows that stood above the header
    there (a title, a group row over the column names, a unit line), repeated just above a
    repeated header, are the page's header too (:func:`_page_tops`)."""
    text = [c for c in cols if body.schema[c] == pl.String]
    if not text or not body.height:
        return body, pl.DataFrame(schema=FURNITURE_SCHEMA)
    # candidates only: the first row, and rows whose code is not a code's 18 ASCII characters
    # ("纳税人识别号", "企业基本情况" are 18 bytes too)
    if "uscc" in text:
        code = pl.col("uscc")
        candidates = body.select((pl.int_range(pl.len()) == 0) | (
            (code.str.len_bytes() != 18) | (code.str.len_chars() != 18)).fill_null(True)).to_series()
        if not candidates.any():
            return body, pl.DataFrame(schema=FURNITURE_SCHEMA)
        sub = body.filter(candidates)
    else:
        sub = body
    total = pl.any_horizontal(pl.col(c).str.contains(_TOTAL).fill_null(False) for c in text)
    sign_off = pl.any_horizontal(pl.col(c).str.contains(_SIGN_OFF).fill_null(False) for c in text) & pl.all_horizontal(
        pl.lit(True), *(pl.col(k).is_null() | pl.col(k).str.contains(_SIGN_OFF) | (pl.col(k).str.strip_chars() == "")
                        for k in keys if k in text))
    # the header again: every filled text cell is its column's header (as headers are compared), two at least;
    # a two-row header also as the row above and this one combined (the lower row is marked)
    single = _header_again({c: pl.col(c) for c in text}, [pl.col(c).is_not_null() for c in text], headers)
    pair = pl.lit(False)
    if span == 2:
        combined = {c: combine_expr(pl.col(c).shift(1), pl.col(c)) for c in text}
        pair = _header_again(combined, [combined[c] != "" for c in text], headers) & (
            pl.col(ROW).shift(1) == pl.col(ROW) - 1).fill_null(False)
    # 栏次 ("甲 乙 1 2"): right under the header, at the top or under the header repeated on a page
    under_header = ((single | pair).shift(1) & (pl.col(ROW).shift(1) == pl.col(ROW) - 1)).fill_null(False)
    numbers = ((pl.int_range(pl.len()) == 0) | under_header) & pl.all_horizontal(
        pl.col(c).is_null() | pl.col(c).str.contains(_COLUMN_NUMBERS) for c in text) & pl.any_horizontal(
        pl.col(c).str.contains("^[甲乙]$").fill_null(False) for c in text)
    reason = (pl.when(numbers).then(pl.lit("栏次行")).when(single | pair).then(pl.lit(_REPEATED))
              .when(total).then(pl.lit("合计行"))
              .when(sign_off).then(pl.lit("表尾说明行")).otherwise(None))
    marks = sub.select(ROW, reason.alias("reason"), pair.alias("pair")).filter(pl.col("reason").is_not_null())
    # where each repeated header starts (its upper row when two rows combine)
    starts = marks.filter(pl.col("reason") == _REPEATED).select(pl.col(ROW) - pl.col("pair").cast(pl.Int64))[ROW]
    above = [[row[cols.index(c)] for c in text] for row in top[:-span]] if top else []
    page = pl.concat([starts, _page_tops(sub, text, starts, above)])
    flagged = pl.concat([pl.DataFrame({ROW: page, "reason": _REPEATED}, schema=FURNITURE_SCHEMA),
                         marks.select(ROW, "reason")]).unique(ROW, keep="first", maintain_order=True).sort(ROW)
    if not flagged.height:
        return body, pl.DataFrame(schema=FURNITURE_SCHEMA)
    return body.filter(~pl.col(ROW).is_in(flagged[ROW].implode())), flagged


def _header_again(cells: dict[str, pl.Expr], filled: list[pl.Expr], headers: dict[str, str]) -> pl.Expr:
    """Every filled cell is its column's header as written (compared as headers are), two at least."""
    same = [(normalize_header_expr(e) == normalize_header(headers[c])).fill_null(False).cast(pl.Int32)
            for c, e in cells.items() if c in headers]
    if len(same) < 2:
        return pl.lit(False)
    return (pl.sum_horizontal(same) >= 2) & (pl.sum_horizontal(same) == pl.sum_horizontal(
        f.cast(pl.Int32) for f in filled))


def _page_tops(sub: pl.DataFrame, text: list[str], starts: pl.Series, above: list[list]) -> pl.Series:
    """The rows just above each repeated header (``starts``) that repeat, in order, the last rows
    that stood above the header at the top of the sheet (``above``: a title, a group row over the
    column names, a unit line; blank rows between are passed over).  Cells are compared as
    headers are; a merged range (filled) and text written in its first cell only compare equal
    (:func:`_merged_away`).  Only the few rows whose every filled cell is text from ``above`` are
    looked at row by row."""
    above = [r for r in ([normalize_header(v) or None if v is not None else None for v in row] for row in above)
             if any(v is not None for v in r)]
    if not above or not starts.len():
        return pl.Series(ROW, [], dtype=pl.Int64)
    words = sorted({v for row in above for v in row if v is not None})
    norm = [pl.when(e != "").then(e).alias(c) for c, e in ((c, normalize_header_expr(pl.col(c))) for c in text)]
    cells = sub.select(ROW, *norm)
    filled = pl.any_horizontal(pl.col(c).is_not_null() for c in text)
    blank = set(cells.filter(~filled)[ROW].to_list())
    like = {r[0]: list(r[1:]) for r in cells.filter(
        filled & pl.all_horizontal(pl.col(c).is_null() | pl.col(c).is_in(words) for c in text)).iter_rows()}
    if not like:
        return pl.Series(ROW, [], dtype=pl.Int64)
    tops = [None] + [_merged_away(above[-n:]) for n in range(1, len(above) + 1)]
    out: list[int] = []
    for start in starts.to_list():
        got: list[int] = []
        r = start - 1
        while len(got) < len(above):
            while r in blank:
                r -= 1
            if r not in like:
                break
            got.append(r)
            r -= 1
        got.reverse()
        for n in range(len(got), 0, -1):
            block = [like[r] for r in got[-n:]]
            if block == above[-n:] or _merged_away(block) == tops[n]:
                out.extend(got[-n:])
                break
    return pl.Series(ROW, out, dtype=pl.Int64)


def _merged_away(rows: list[list]) -> list[list]:
    """Rows with every cell that repeats the cell left of it or above it emptied: a merged range
    (each cell filled with its value) and the same text written in the range's first cell only
    compare equal."""
    return [[None if v is not None and ((k and v == row[k - 1]) or (i and v == rows[i - 1][k])) else v
             for k, v in enumerate(row)] for i, row in enumerate(rows)]


def _blank_rows(body: pl.DataFrame, cols: list[str]) -> pl.Series | None:
    """The rows whose every cell is empty, or None when there are none.  The cheap tests
    (a typed cell is null) go first; text is trimmed only in the rows still in question."""
    order = sorted(cols, key=lambda c: body.schema[c] == pl.String)
    idx: pl.Series | None = None  # rows still possibly blank (None: all)
    for c in order:
        sub = body.select(c) if idx is None else body.select(pl.col(c).gather(idx))
        blank = sub.select(_blank(c, body.schema[c]).alias("b"))["b"]
        idx = blank.arg_true() if idx is None else idx.filter(blank)
        if not idx.len():
            return None
    return pl.repeat(False, body.height, eager=True).scatter(idx, True) if idx is not None else None


def _blank(column: str, dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.String:
        return pl.col(column).is_null() | (pl.col(column).str.strip_chars() == "")
    return pl.col(column).is_null()


# ---------------------------------------------------------------- one table

def read_table(path: Path, table: Table, data_dir: Path | None = None,
               years: frozenset[int] | set[int] | None = None) -> RawTable:
    """Read one file.  What it is, whether it is safe to read, and (CSV, Parquet) its header are
    checked from its first bytes or footer (:func:`.discovery.open_table`) before the rest is read.

    ``years``: keep only the rows of these years; a row whose year cell is plainly another valid
    year is left out before any cell is normalised or checked (counted in ``other_year_rows``);
    a row whose year cell is anything else (empty, out of range, ``2021年``) is kept and checked."""
    opened = open_table(path)
    # the file's SHA-256 is computed beside its reading (hashlib releases the GIL), not after
    # it; a thread of this call's own (none is left behind, e.g. across a fork)
    pool = ThreadPoolExecutor(1, thread_name_prefix="sha256")
    digest = pool.submit(opened.sha256)
    pool.shutdown(wait=False)  # the thread ends when the digest is done
    kind = opened.kind
    named = _BY_SUFFIX.get(path.suffix.lower(), CSV)
    if path.suffix.lower() in ANY_WORKBOOK and kind in (XLS, XLSX):
        named = kind  # WPS 表格's .et holds either
    note = None if kind == named else \
        f"扩展名为 {path.suffix}，但文件内容不是{KIND_ZH[named]}，而是{KIND_ZH[kind]}，已按其实际格式读取"
    lookup = header_lookup(table, data_dir)
    out = RawTable(table, path, data_dir=data_dir, kind=kind, note=note)
    filled: list[tuple[int, int, str]] = []
    errors: list[tuple[int, int, str]] = []
    ragged: list[tuple[int, list[str]]] = []  # CSV rows with more cells than the header (frame index, those cells)
    date1904 = False
    first_row = 0  # frame row index of the header (frame row i is Excel row i + 1)
    numbered = False  # the frame's rows numbered in ROW already (a Parquet file read for ``years``)
    try:
        if kind == PARQUET:
            match = find_header([opened.columns], table, lookup)  # from the footer
            # only the columns the header maps are read (the others are reported as ignored)
            year = next((opened.columns[m.index] for m in match.columns if m.canonical == "year"), None)
            # only the rows of ``years`` are decoded (the year filter goes into the Parquet reader)
            frame, skipped = _read_parquet(path, [opened.columns[m.index] for m in match.columns], year,
                                           years) if match.ok else (None, None)
            numbered = skipped is not None  # rows of other years left out, the rest numbered in ROW
            out.other_year_rows = skipped or 0
            header_in_frame = False
        elif kind == CSV:
            match, sep, rows, skip_lines = _csv_header(opened, table, lookup)
            frame = None
            if match.ok:  # else refused below, before the rest is read
                frame, out.encoding, ragged = _read_csv(opened, skip_lines, sep, match.row)
            first_row = match.row
            header_in_frame = True
        elif kind == HTML:
            # the first table whose header matches (a layout or query-condition table may come first)
            best = None
            for frame, spanned in _read_html(path, opened.read_bytes()):
                rows = [list(r) for r in frame.head(SCAN_ROWS).iter_rows()]
                match = find_header(rows, table, lookup)
                if best is None or (match.ok, match.score) > (best[1].ok, best[1].score):
                    best = (frame, match, rows, spanned)
                if match.ok:
                    break
            frame, match, rows, filled = best
            header_in_frame = True
        else:
            frame, match, out.sheet, out.sheets, filled, errors, date1904, unreadable = \
                _read_workbook(opened, table, lookup)
            header_in_frame = True
            also = [sh["name"] for sh in out.sheets if sh["header_matches"] and not sh["read"]]
            if also:  # e.g. a sheet per township: said, not merged (contract: the first matching visible sheet)
                out.note = "；".join(filter(None, [out.note, (
                    f"工作表“{'”“'.join(also)}”的表头也与本表相符，但只读取第一个相符的可见工作表“{out.sheet}”，"
                    "其余工作表的数据未读取（如需一并筛选，请把数据放在同一张工作表中）")]))
            if unreadable:  # a later sheet the reader fails on is never read anyway: said, not fatal
                out.note = "；".join(filter(None, [out.note, *(
                    f"工作表“{name}”无法读取，未检查其表头" for name in unreadable)]))
    except InputError as exc:
        if note:
            raise type(exc)(f"{exc}（{note}）") from None  # FileTooLarge/FileUnreadable stay what they are
        raise
    where = path.name + (f"[{out.sheet}]" if out.sheet and len(out.sheets) > 1 else "")
    if match.error:
        raise InputError(f"{where}：{match.error}")
    if match.missing:
        closest = f"（最接近表头的是第 {match.row + 1} 行：{describe_row(rows, match)}）" \
            if header_in_frame and match.score else ""
        raise InputError(f"{where}：缺少必需列 {'、'.join(match.missing)}{closest}" + (f"（{note}）" if note else ""))
    out.sha256 = digest.result()

    if header_in_frame:
        if kind in (XLSX, XLS, HTML):
            first_row = match.row
            body = frame.slice(first_row + match.span)
        else:  # CSV frame starts at the header line
            body = frame.slice(match.span)
        offset = first_row + 1 + match.span  # Excel row of the first data row
    else:
        body, offset = frame, 2
    # the sheet's rows down to the header's last, as written: a page's header repeated in the body is told by them
    top: list[list] = []
    if header_in_frame:
        head = rows if kind == CSV else [list(r) for r in frame.head(first_row + match.span).iter_rows()]
        top = [[r[m.index] if m.index < len(r) else None for m in match.columns] for r in head[:first_row + match.span]]
    names = opened.columns if kind == PARQUET else body.columns  # what the match's indexes count
    picked = {names[m.index]: m.canonical for m in match.columns}
    out.headers = {m.canonical: m.header for m in match.columns}
    out.ignored_headers = match.ignored
    out.units = {m.canonical: {"unit": m.unit, "factor": f"{m.factor[0]:g}/{m.factor[1]:g}"}
                 for m in match.columns if m.factor}
    out.factors = {m.canonical: m.factor for m in match.columns if m.factor}
    out.header_row = first_row + 1
    body = body.select(*([ROW] if numbered else []), *picked.keys()).rename(picked)
    if not numbered:
        body = body.select(pl.int_range(offset, offset + pl.len(), dtype=pl.Int64).alias(ROW), pl.all())
    if years is not None and "year" in body.columns and not numbered:
        other = other_year_rows(body.schema["year"], years)
        if other is not None:
            before_filter = body.height
            body = body.filter(~other)
            out.other_year_rows = before_filter - body.height

    # cell normalisation: per-column expressions, one step of every column per pass
    unit_of = {m.canonical: m.unit for m in match.columns}
    plans = {c.name: (c, steps(c, unit_of.get(c.name), date1904)) for c in table.columns
             if c.name in body.columns and body.schema[c.name] == pl.String}
    before = body
    body, kinds = apply(body, plans)
    normalised_parts = []
    for name, kind in kinds.items():
        hit = kind.is_not_null()
        if hit.any():
            normalised_parts.append(pl.DataFrame({
                "file": pl.Series([None] * int(hit.sum()), dtype=pl.String), "row": body[ROW].filter(hit),
                "column": pl.Series([out.headers[name]] * int(hit.sum()), dtype=pl.String),
                "before": before[name].filter(hit), "after": body[name].filter(hit), "kind": kind.filter(hit),
            }))
    # merged cells and error cells (workbooks): positions are frame rows/columns
    index_of = {m.index: m.canonical for m in match.columns}
    merged_rows = [(r + 1, index_of[j], v) for r, j, v in filled if j in index_of and r >= first_row + match.span]
    if merged_rows:
        normalised_parts.append(pl.DataFrame({
            "file": [None] * len(merged_rows), "row": [r for r, _, _ in merged_rows],
            "column": [out.headers[c] for _, c, _ in merged_rows], "before": [None] * len(merged_rows),
            "after": [v for _, _, v in merged_rows], "kind": ["merged_cell"] * len(merged_rows),
        }, schema=NORMALISED_SCHEMA))
    err_rows = [(r + 1, index_of[j], e) for r, j, e in errors if j in index_of and r >= first_row + match.span]
    if err_rows:
        out.cell_errors = pl.DataFrame({ROW: [r for r, _, _ in err_rows], "column": [c for _, c, _ in err_rows],
                                        "error": [e for _, _, e in err_rows]}, schema=ERROR_SCHEMA)
        # the error's text in the cell (calamine reads an error as empty), for the reject's value
        for name in {c for _, c, _ in err_rows}:
            errs = out.cell_errors.filter(pl.col("column") == name)
            text = pl.col(ROW).replace_strict(errs[ROW], errs["error"], default=None, return_dtype=pl.String)
            body = body.with_columns(pl.coalesce(text, pl.col(name).cast(pl.String)).alias(name)
                                     if body.schema[name] == pl.String else pl.col(name))

    if ragged:
        out.ragged, body = _ragged_rows(path, ragged, first_row, body)
    body, out.furniture = _furniture(body, list(picked.values()), out.headers, top, match.span,
                                     tuple(c.name for c in table.columns if c.nonnull))
    # a blank line (or a row of empty cells) is not a record; row numbers stay as the file counts them
    empty = _blank_rows(body, list(picked.values()))
    if empty is not None:
        body = body.filter(~empty)
    out.frame = body
    out.rows = body.height
    if normalised_parts and out.furniture.height:  # a cell of a row not read (a repeated header's merged cell) is not listed
        normalised_parts = [p.filter(~pl.col("row").is_in(out.furniture[ROW].implode())) for p in normalised_parts]
    out.normalised = (pl.concat(normalised_parts, how="vertical_relaxed").with_columns(pl.lit(out.file).alias("file"))
                      .select(list(NORMALISED_SCHEMA)).sort("row", "column")
                      if normalised_parts else pl.DataFrame(schema=NORMALISED_SCHEMA))
    return out


def other_year_rows(dtype: pl.DataType, years: frozenset[int] | set[int], column: str = "year") -> pl.Expr | None:
    """True for a row whose year cell (``column``) is a valid year (YEAR_RANGE) not in ``years``,
    as validation would type it without any normalisation: an integer, or the text of four
    ASCII digits.  Anything else is false (the row is read and checked as usual); None when
    the column's type is neither (every row is read)."""
    lo, hi = YEAR_RANGE
    keep = sorted(years)
    if dtype.is_integer():
        year = pl.col(column)
    elif dtype == pl.String:
        year = pl.when(pl.col(column).str.contains(r"^[0-9]{4}$")).then(pl.col(column).cast(pl.Int32, strict=False))
    else:
        return None
    return (year.is_between(lo, hi) & ~year.is_in(keep)).fill_null(False)


def read_dir(data_dir: Path, needed: set[str], optional: set[str] | frozenset[str] = frozenset()
             ) -> dict[str, RawTable]:
    """Find every table file in ``data_dir`` (read later by validation, two at a time).

    A ``needed`` table that is absent is an error.  A table read only on request
    (``Table.on_request``, e.g. ``adjustments``) is found only when ``needed`` or ``optional``
    names it."""
    problem = folder_problem(data_dir, "数据目录")
    if problem:
        raise InputError(problem)
    out: dict[str, RawTable] = {}
    for name, table in TABLES.items():
        if table.standalone:  # read by its own command (screening.projects), never by a run
            continue
        if table.on_request and name not in needed and name not in optional:
            continue
        path = find_table_file(data_dir, name)
        if path is None:
            if name in needed:
                raise InputError(f"{data_dir}：缺少表 {name}（{table.zh}），应为 {name}.csv、{name}.xlsx、"
                                 f"{name}.xls 或 {name}.parquet")
            continue
        out[name] = RawTable(table, path, data_dir=data_dir)
    return out
