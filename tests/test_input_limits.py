"""Bounded reading of input files (issue 10, findings 3 and 6): screening.filesafety and its use by ingestion.

A file is refused from its first bytes, in well under a second and with little memory, when it is not
what its name says or lacks the table's columns; a workbook is measured without extracting it and
refused before the reader sees it when it would inflate beyond the caps.  The hostile files are built
here (tests/xlsx_bombs.py); the real reader is replaced so that a bomb can never reach it.
"""
from __future__ import annotations

import io
import os
import time
import tracemalloc
import zipfile
from pathlib import Path

import fastexcel
import polars as pl
import pytest

import xls_bombs
import xlsx_bombs
from screening import filesafety, ingest
from screening.errors import InputError
from screening.filesafety import CLI_LIMITS, FileTooLarge, FileUnreadable, Limits
from screening.ingest import read_dir
from screening.validate import validate
from test_ingest import C1, CHINESE, TAX_EN, assert_run_refuses_in_one_line, write_enterprises

pytestmark = pytest.mark.unit

GB = 1024**3


@pytest.fixture
def no_reader(monkeypatch) -> list[str]:
    """The readers, recorded: the Excel and Parquet readers refuse to run (a refused file must never
    reach them); the CSV reader runs (enterprises.csv is read in every test), so a test asserts how
    often it was called.  Workbooks are read by fastexcel (calamine) in screening.ingest.workbook."""
    calls: list[str] = []
    real_csv = pl.read_csv

    def never(name):
        def reader(*_args, **_kwargs):
            calls.append(name)
            raise AssertionError(f"{name} was called")
        return reader

    def read_csv(*args, **kwargs):
        calls.append("read_csv")
        return real_csv(*args, **kwargs)

    monkeypatch.setattr(fastexcel, "read_excel", never("read_excel"))
    monkeypatch.setattr(pl, "read_excel", never("read_excel"))
    monkeypatch.setattr(pl, "read_parquet", never("read_parquet"))
    monkeypatch.setattr(pl, "read_csv", read_csv)
    return calls


def _refused(d: Path, needed: set[str] | None = None) -> tuple[str, float, int]:
    """(message, seconds, peak traced bytes) of loading ``d``, which must fail."""
    tracemalloc.start()
    t = time.perf_counter()
    try:
        with pytest.raises(InputError) as err:
            validate(read_dir(d, needed or set()))
        seconds = time.perf_counter() - t
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(err.value)
    assert "\n" not in message and CHINESE.search(message)
    return message, seconds, peak


# ---------------------------------------------------------------- CSV: header and kind from the first bytes

def test_2gb_sparse_nul_csv_is_refused_from_its_first_bytes(tmp_path, no_reader):
    """Finding 6: a 2 GB stats.csv of NUL bytes took 102 s and 10.6 GB before "缺少必需列"."""
    write_enterprises(tmp_path)
    with open(tmp_path / "stats.csv", "wb") as f:
        f.truncate(2 * GB)                       # sparse: instant, takes no disk
    message, seconds, peak = _refused(tmp_path)
    assert "stats.csv" in message and "不是 CSV 文本文件" in message and "二进制" in message
    assert seconds < 1.5 and peak < 8 * 1024 * 1024
    assert no_reader == ["read_csv"]             # only enterprises.csv was read


def test_csv_header_is_checked_before_the_rest_is_read(tmp_path, no_reader):
    write_enterprises(tmp_path)
    with open(tmp_path / "stats.csv", "wb") as f:
        f.write(f"uscc,year,规模,营收\n".encode() + f"{C1},2021,规上,1\n".encode() * 3000)   # > 64 KB of text
        f.truncate(2 * GB)
    message, seconds, peak = _refused(tmp_path)
    assert "stats.csv：缺少必需列 revenue（营业收入）" in message
    assert seconds < 1.5 and peak < 8 * 1024 * 1024


def test_a_first_line_longer_than_the_head_is_refused(tmp_path, no_reader):
    write_enterprises(tmp_path)
    with open(tmp_path / "tax.csv", "wb") as f:
        f.write(b"uscc" * 40_000)
        f.truncate(GB)
    message, seconds, _ = _refused(tmp_path)
    assert "tax.csv" in message and "没有找到表头行" in message and seconds < 1.5


def test_csv_with_a_good_header_and_binary_rest_is_refused_before_parsing(tmp_path, monkeypatch):
    write_enterprises(tmp_path)
    text = "uscc,year,tax_paid\n" + "".join(f"{C1},{y},1\n" for y in range(2000, 5000))  # > 64 KB, then binary
    (tmp_path / "tax.csv").write_bytes(text.encode() + b"\x00" * 100_000)
    parsed: list[int] = []
    real = pl.read_csv
    monkeypatch.setattr(pl, "read_csv", lambda *a, **k: (parsed.append(1), real(*a, **k))[1])
    message, _, _ = _refused(tmp_path)
    assert "tax.csv" in message and "NUL" in message
    assert len(parsed) == 1                      # enterprises.csv only


@pytest.mark.parametrize("name, content, words", [
    ("tax.csv", b"%PDF-1.7\n%\xe2\xe3", "看起来是PDF 文件"),
    ("tax.csv", b"\x1f\x8b\x08\x00" + b"\0" * 100, "看起来是gzip 压缩文件"),
    ("tax.xlsx", b"%PDF-1.7\n%\xe2\xe3" + b"\0" * 100, "不是有效的 Excel 工作簿"),
    ("tax.xlsx", b"<html><body><table><tr><td>uscc</td></tr></table></body></html>", "网页表格（HTML）"),
    ("tax.parquet", b"%PDF-1.7\n%\xe2\xe3", "不是有效的 Parquet 文件（文件内容看起来是PDF 文件"),
    ("tax.parquet", b"PAR1" + b"\0" * 100, "Parquet 文件不完整"),
], ids=["pdf-as-csv", "gzip-as-csv", "pdf-as-xlsx", "html-as-xlsx", "pdf-as-parquet", "truncated-parquet"])
def test_a_file_that_is_not_what_its_name_says_is_refused_at_once(tmp_path, no_reader, name, content, words):
    """Refused when its bytes are no table format at all, or lack the table's columns (a file whose
    bytes are another table format is read as what it is: issue 12, tests below)."""
    write_enterprises(tmp_path)
    (tmp_path / name).write_bytes(content)
    message, seconds, _ = _refused(tmp_path)
    assert name in message and words in message, message
    assert seconds < 1.0
    assert no_reader == ["read_csv"]


def test_a_bomb_named_csv_is_measured_as_the_workbook_it_is(tmp_path, no_reader):
    """What a file is comes from its bytes (issue 12): a workbook named .csv is read as a workbook,
    so the zip caps apply to it before the reader sees it, whatever its name."""
    write_enterprises(tmp_path)
    xlsx_bombs.shared_string_bomb(tmp_path / "land.csv")
    message, seconds, peak = _refused(tmp_path)
    assert "land.csv" in message and "压缩比" in message and "疑似压缩炸弹" in message
    assert peak < 16 * 1024 * 1024 and seconds < 2
    assert no_reader == ["read_csv"]


def test_a_csv_named_xlsx_is_read_as_csv_after_the_text_checks(tmp_path, no_reader):
    write_enterprises(tmp_path)
    (tmp_path / "tax.xlsx").write_bytes(f"uscc,year,tax_paid\n{C1},2021,1\n".encode())
    inputs = validate(read_dir(tmp_path, set()))
    assert inputs.read_rows["tax"] == 1 and "已按其实际格式读取" in inputs.files["tax"].note
    # binary in its first bytes: not text, so not read as CSV; binary after 64 KB of text: NUL bytes
    (tmp_path / "tax.xlsx").write_bytes(f"uscc,year,tax_paid\n{C1},2021,1\n".encode() + b"\0" * 100)
    message, _, _ = _refused(tmp_path)
    assert "tax.xlsx" in message and "不是有效的 Excel 工作簿" in message
    text = "uscc,year,tax_paid\n" + "".join(f"{C1},{y},1\n" for y in range(2000, 5000))
    (tmp_path / "tax.xlsx").write_bytes(text.encode() + b"\0" * 100)
    message, _, _ = _refused(tmp_path)
    assert "tax.xlsx" in message and "NUL" in message and "已按其实际格式读取" in message


def test_a_damaged_xls_named_xlsx_is_one_line(tmp_path):
    write_enterprises(tmp_path)
    (tmp_path / "tax.xlsx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600)
    message, seconds, _ = _refused(tmp_path)
    assert "tax.xlsx：不是有效的 Excel 97-2003 工作簿（文件头损坏）" in message   # its container, checked before the reader
    assert seconds < 1.0


def test_parquet_header_is_checked_from_its_footer(tmp_path, no_reader):
    write_enterprises(tmp_path)
    pl.DataFrame({"uscc": [C1], "year": [2021]}).write_parquet(tmp_path / "tax.parquet")
    message, _, _ = _refused(tmp_path)
    assert "tax.parquet：缺少必需列 tax_paid（实缴税金）" in message
    assert "read_parquet" not in no_reader


def test_parquet_declaring_too_many_rows_is_refused_before_reading(tmp_path, no_reader, monkeypatch):
    write_enterprises(tmp_path)
    pl.DataFrame({"uscc": [C1] * 3, "year": [2021] * 3, "tax_paid": [1.0] * 3}).write_parquet(tmp_path / "tax.parquet")
    monkeypatch.setattr(ingest.discovery, "MAX_PARQUET_ROWS", 2)
    message, _, _ = _refused(tmp_path)
    assert "tax.parquet" in message and "3 行" in message
    assert "read_parquet" not in no_reader


# ---------------------------------------------------------------- workbooks

def test_xlsx_bomb_as_land_xlsx_is_refused_before_the_reader(tmp_path, no_reader):
    """Finding 6: an xlsx bomb as land.xlsx peaked at 6.4 GB."""
    write_enterprises(tmp_path)
    xlsx_bombs.shared_string_bomb(tmp_path / "land.xlsx")
    message, seconds, peak = _refused(tmp_path)
    assert "land.xlsx" in message and "压缩比" in message and "疑似压缩炸弹" in message
    assert peak < 16 * 1024 * 1024 and seconds < 2
    assert "read_excel" not in no_reader


def test_sparse_sheet_as_xlsx_is_refused_before_the_reader(tmp_path, no_reader):
    write_enterprises(tmp_path)
    xlsx_bombs.sparse_sheet(tmp_path / "tax.xlsx", headers=TAX_EN)
    message, _, _ = _refused(tmp_path)
    assert "tax.xlsx" in message and "1,048,576 行 × 16,384 列" in message
    assert "read_excel" not in no_reader


def test_a_reader_panic_is_one_line(tmp_path, monkeypatch):
    """pyo3's PanicException derives from BaseException: `except Exception` let it through as a traceback."""
    write_enterprises(tmp_path)
    pl.DataFrame({"uscc": [C1], "year": [2021], "tax_paid": [1.0]}).write_excel(tmp_path / "tax.xlsx")

    def panics(*_args, **_kwargs):
        raise pl.exceptions.PanicException("called `Option::unwrap()` on a `None` value")

    monkeypatch.setattr(fastexcel, "read_excel", panics)     # the workbook reader of screening.ingest.workbook
    with pytest.raises(FileUnreadable, match=r"tax\.xlsx：无法按 Excel 读取（called"):
        validate(read_dir(tmp_path, set()))


def test_ordinary_workbooks_pass_and_are_measured(tmp_path):
    frame = pl.DataFrame({"uscc": [C1] * 300, "year": [2021] * 300, "scale": ["规上"] * 300, "revenue": [1.5] * 300})
    frame.write_excel(tmp_path / "stats.xlsx")
    facts = filesafety.check_workbook(tmp_path / "stats.xlsx", "stats.xlsx", CLI_LIMITS)
    assert facts.sheets["xl/worksheets/sheet1.xml"].rows == 301
    assert facts.sheets["xl/worksheets/sheet1.xml"].columns == 4
    write_enterprises(tmp_path)
    assert validate(read_dir(tmp_path, set())).read_rows["stats"] == 300


# ---------------------------------------------------------------- the guard itself

def _limits(**changes) -> Limits:
    return Limits(**{**CLI_LIMITS.__dict__, **changes})


def test_every_cap_of_the_zip_guard():
    check = filesafety.check_workbook
    small = xlsx_bombs.workbook(shared_bytes=3 * 1024 * 1024)             # 3 MB of 'A': ratio ~1000
    with pytest.raises(FileTooLarge, match="压缩比"):
        check(io.BytesIO(small), "a.xlsx", CLI_LIMITS)
    assert check(io.BytesIO(small), "a.xlsx", _limits(zip_ratio=2000)).inflated_bytes > 3 * 1024 * 1024
    with pytest.raises(FileTooLarge, match="共享字符串"):
        check(io.BytesIO(small), "a.xlsx", _limits(zip_ratio=2000, shared_strings_bytes=1024 * 1024))
    with pytest.raises(FileTooLarge, match="部件 xl/sharedStrings.xml 解压后"):
        check(io.BytesIO(small), "a.xlsx", _limits(zip_ratio=2000, member_bytes=2 * 1024 * 1024))
    with pytest.raises(FileTooLarge, match="解压后超过"):
        check(io.BytesIO(small), "a.xlsx", _limits(zip_ratio=2000, inflated_bytes=2 * 1024 * 1024))
    with pytest.raises(FileTooLarge, match="个部件"):
        check(io.BytesIO(xlsx_bombs.workbook(extra_members=30)), "a.xlsx", _limits(zip_members=20))
    with pytest.raises(FileUnreadable, match="损坏"):
        check(io.BytesIO(xlsx_bombs.lying_sizes()), "a.xlsx", CLI_LIMITS)
    other_zip = io.BytesIO()
    with zipfile.ZipFile(other_zip, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(FileUnreadable, match="可能是别的 zip 文件"):
        check(other_zip, "a.xlsx", CLI_LIMITS)


def test_cells_naming_a_long_shared_string_count_one_copy_each():
    """The reader's table holds a copy of a shared string for every cell that names it: 30,000 cells
    naming one 100 KB string would be 2.9 GB (10,000 took 1 GB from a 51 KB file).  A cell whose index
    cannot be read (a space, an entity) counts as the longest string; cells naming a short string pass."""
    check = filesafety.check_workbook
    with pytest.raises(FileTooLarge, match=r"工作表 xl/worksheets/sheet1\.xml 及之前各表的单元格文本读入后约 2,\d{3} MB，上限 2,048 MB"):
        check(io.BytesIO(xlsx_bombs.shared_string_copies(30_000)), "a.xlsx", CLI_LIMITS)
    for hidden in (" 0", "&#48;"):
        with pytest.raises(FileTooLarge, match=r"单元格文本读入后约 2,\d{3} MB"):
            check(io.BytesIO(xlsx_bombs.shared_string_copies(30_000, value=hidden)), "a.xlsx", CLI_LIMITS)
    assert check(io.BytesIO(xlsx_bombs.shared_string_copies(30_000, value="1")), "a.xlsx", CLI_LIMITS)
    assert check(io.BytesIO(xlsx_bombs.shared_string_copies(10_000)), "a.xlsx", CLI_LIMITS)   # 954 MB: under the CLI's cap
    with pytest.raises(FileTooLarge, match=r"约 \d{3} MB，上限 200 MB"):
        check(io.BytesIO(xlsx_bombs.shared_string_copies(10_000)), "a.xlsx", _limits(inflated_bytes=200 * 1024**2))
    # 100,000 t='s' in one start tag: read once each, not once from each of them (that was quadratic: hours)
    tag = '<row r="1"><c r="A1" t="s"' + " t='s'" * 100_000 + '><is><t>x</t></is></c></row>'
    started = time.perf_counter()
    with pytest.raises(FileTooLarge, match="单元格文本读入后约"):
        check(io.BytesIO(xlsx_bombs.workbook(sheet=xlsx_bombs.sheet_xml(tag, "A1"), shared_bytes=100_000)), "a.xlsx", CLI_LIMITS)
    assert time.perf_counter() - started < 2


@pytest.mark.parametrize("cells", [
    '<row r="1"><c r="A1"/></row><row r="900"><c r="ZZ900"/></row>',             # usual spelling
    "<row r='1'><c r='A1'/></row><row r = '900'><c s=\"1\"\tr = 'ZZ900'/></row>",   # any spelling XML allows
    '<x:row r="1"><x:c r="A1"/></x:row><x:row r="900"><x:c r="ZZ900"/></x:row>',   # a namespace prefix
], ids=["usual", "spelling", "prefix"])
def test_sheet_extent_is_read_from_cell_references(cells):
    sheet = xlsx_bombs.sheet_xml(cells, "A1")
    facts = filesafety.check_workbook(io.BytesIO(xlsx_bombs.workbook(sheet=sheet)), "a.xlsx", CLI_LIMITS)
    assert (facts.sheets["xl/worksheets/sheet1.xml"].rows, facts.sheets["xl/worksheets/sheet1.xml"].columns) == (900, 702)
    with pytest.raises(FileTooLarge, match="900 行 × 702 列"):
        filesafety.check_workbook(io.BytesIO(xlsx_bombs.workbook(sheet=sheet)), "a.xlsx", _limits(cells=600_000))


def test_cells_without_references_are_counted():
    """Rows and cells without an ``r`` are placed one after another: counted, they bound the extent too."""
    cells = "<row>" + "<c/>" * 300 + "</row>" + "<row><c/></row>" * 50
    facts = filesafety.check_workbook(io.BytesIO(xlsx_bombs.workbook(sheet=xlsx_bombs.sheet_xml(cells, "A1"))),
                                      "a.xlsx", CLI_LIMITS)
    extent = facts.sheets["xl/worksheets/sheet1.xml"]
    assert (extent.rows, extent.columns) == (51, 300)


def test_sniff():
    assert filesafety.sniff(b"") == "empty"
    assert filesafety.sniff(b"PK\x03\x04rest") == "zip"
    assert filesafety.sniff(b"PAR1....") == "parquet"
    assert filesafety.sniff("统一社会信用代码,年份\n".encode("gbk")) == "text"
    assert filesafety.sniff("uscc\n".encode("utf-16")) == "text"       # NUL bytes are normal in UTF-16
    assert filesafety.sniff(b"uscc,year\n\x00\x00") == "binary"
    assert filesafety.sniff(b"\xef\xbb\xbf<!DOCTYPE html><html>") == "html"


# ---------------------------------------------------------------- old workbooks (.xls)
# Measured before the fix on a shared 2-core machine, calamine 0.36.1 through fastexcel 0.21, a 6 GB
# address-space limit: the 5.6 KB "two-cells" file took 2.4 s and 1 GB; "declared-2^32-rows" and
# "far-columns" aborted the process (SIGABRT: a failed allocation, not an exception); "directory-loop"
# grew by 1 GB a second until it aborted; "stream-loop" (4 GB declared) took 3.8 GB; "shared-string-copies"
# (340 KB) 3.4 GB; 200,000 one-byte CONTINUE records (1.2 MB) 7 s, growing with their square.

def _cell_records(rows: int) -> bytes:
    return xls_bombs.table(TAX_EN, [[C1, 2021, 1.5]] * rows)


def _stream_loop() -> bytes:
    body = xls_bombs.stream({"税收": _cell_records(1)})
    stream = body + b"\0" * (4096 - len(body))               # 8 sectors, from sector 2: 2 → 3 → 2 …
    return xls_bombs.container(stream, chain=[3, 2] + [xls_bombs.END] * 6, size=4_000_000_000)


def _continue_run() -> bytes:
    import struct
    n = filesafety.MAX_CONTINUES + 1            # one-byte pieces of one string, each with its flag byte
    string = xls_bombs.record(0x00FC, struct.pack("<IIHB", 1, 1, 65_535, 0)) + xls_bombs.record(0x003C, b"\0A") * n
    return xls_bombs.container(xls_bombs.stream({"税收": _cell_records(1)}, globals_extra=string))


XLS_BOMBS = {
    "declared-2^32-rows": (lambda: xls_bombs.workbook(sheets={"税收": xls_bombs.record(
        0x0200, (0).to_bytes(4, "little") + (2**32 - 1).to_bytes(4, "little") + bytes([0, 0, 255, 255, 0, 0]))
        + _cell_records(1)}), "工作表 税收 的行数超过 1,048,576"),
    "two-cells": (lambda: xls_bombs.workbook(sheets={"税收": _cell_records(1) + xls_bombs.number(65535, 65535, 1.0)}),
                  "工作表 税收 的范围达到 65,536 行 × 65,536 列"),
    "small-stream-declared-rows": (lambda: xls_bombs.workbook(
        sheets={"税收": xls_bombs.dimensions(2**20, 256) + _cell_records(1)}, pad=False),       # in the mini stream
        "工作表 税收 的范围达到 1,048,576 行 × 256 列"),
    "mini-stream-loop": (lambda: xls_bombs.workbook(sheets={"税收": _cell_records(1)}, pad=False, mini_chain=[1, 0],
                                                     size=4000), "数据流 Workbook 的扇区链循环"),
    "directory-loop": (lambda: xls_bombs.workbook(sheets={"税收": _cell_records(1)}, directory_chain_loops=True),
                       "目录的扇区链循环"),
    "stream-loop": (_stream_loop, "数据流 Workbook 的扇区链循环"),
    "sector-past-the-end": (lambda: xls_bombs.workbook(sheets={"税收": _cell_records(1)}, chain=[99999] + [xls_bombs.END] * 7),
                            "指向文件之外的扇区 99999"),
    # a reserved FAT marker (here "this is a FAT sector") where the chain's next sector belongs was
    # named as "扇区 4294967293", a sector number no clerk can make sense of
    "reserved-marker-in-chain": (lambda: xls_bombs.workbook(sheets={"税收": _cell_records(1)},
                                                             chain=[xls_bombs.FATSECT] + [xls_bombs.END] * 7),
                                 "数据流 Workbook 的扇区链损坏（遇到保留标记）"),
    "continue-run": (_continue_run, "连续的 CONTINUE 记录"),
    "overlapping-sheets": (lambda: xls_bombs.container(xls_bombs.stream({"税收": _cell_records(3)}, aliases=["复本"])),
                           "工作表 复本与工作表 税收的记录位置重叠"),
    # 1,000 entries naming one sheet of 20,000 records without an EOF (102 KB): 5.4 s, each entry
    # read to the end of the stream; the same with each entry 20 records after the one before
    "sheets-at-one-position": (lambda: xls_bombs.shared_sheet(1000, 20_000), "工作表 S0与工作表 S1的记录位置重叠"),
    "sheets-in-one-run": (lambda: xls_bombs.shared_sheet(1000, 20_000, step=20), "工作表 S0与工作表 S1的记录位置重叠"),
    # 4,000 DIFAT sectors each listing FAT sector 0 127 times (2 MB): a 260 MB FAT
    "repeated-difat": (lambda: xls_bombs.repeated_difat(4000, fat_count=4001), "DIFAT 重复列出 FAT 扇区 0"),
    "shared-string-copies": (lambda: xls_bombs.workbook(
        sheets={"税收": _cell_records(1) + b"".join(xls_bombs.label_sst(2 + i, 0, 0) for i in range(30_000))},
        strings=["长" * 30_000]), "工作表 税收 及之前各表的单元格文本和公式读入后约 2,575 MB"),
}


@pytest.mark.parametrize("bomb", XLS_BOMBS.values(), ids=XLS_BOMBS.keys())
def test_hostile_xls_is_refused_before_the_reader(tmp_path, no_reader, bomb):
    """A few KB of .xls took the reader's process down or held it for minutes; each is refused from
    its container and records, in one line naming the file (and the sheet), before the reader runs."""
    build, words = bomb
    write_enterprises(tmp_path)
    (tmp_path / "tax.xls").write_bytes(build())
    message, seconds, peak = _refused(tmp_path)
    assert message.startswith("tax.xls：") and words in message, message
    assert seconds < 2 and peak < 64 * 1024 * 1024
    assert "read_excel" not in no_reader


@pytest.fixture
def records_visited(monkeypatch) -> list[int]:
    """How many BIFF records the .xls guard has walked (globals and sheets together)."""
    visited = [0]
    real = filesafety._records

    def counted(*args, **kwargs):
        for item in real(*args, **kwargs):
            visited[0] += 1
            yield item
    monkeypatch.setattr(filesafety, "_records", counted)
    return visited


@pytest.mark.parametrize("step", [0, 20, 1], ids=["one-position", "every-20-records", "every-record"])
def test_sheets_sharing_records_are_refused_in_one_walk_of_the_stream(records_visited, step):
    """Each sheet was read from its position to its EOF, and overlapping sheets refused only after
    all were read: 1,000 entries into one sheet of 20,000 records without an EOF walked 20 million
    records (5.4 s for 102 KB; 11 min at the CLI's 10,000 sheets).  Now at most one walk."""
    data = xls_bombs.shared_sheet(1000, 20_000, step=step)
    t = time.perf_counter()
    with pytest.raises(FileUnreadable, match="工作表 S0与工作表 S1的记录位置重叠"):
        filesafety.check_workbook(io.BytesIO(data), "a.xls", CLI_LIMITS)
    assert records_visited[0] <= 1000 + 20_000 + 10          # the globals, then the stream at most once
    assert time.perf_counter() - t < 2


def test_sheets_in_order_with_their_eof_pass_and_one_without_is_refused(records_visited):
    """A sheet is read up to the next one's start: one that ends there passes, one whose EOF is
    missing runs on into the next one (the reader would read it again) and is refused."""
    two = xls_bombs.stream({"A": _cell_records(2), "B": _cell_records(3)})
    facts = filesafety.check_workbook(io.BytesIO(xls_bombs.container(two)), "a.xls", CLI_LIMITS)
    assert facts.sheets == {"A": filesafety.Extent(3, 3), "B": filesafety.Extent(4, 3)}
    first_eof = two.rindex(xls_bombs.bof(0x0010)) - len(xls_bombs.EOF)            # sheet A's EOF, before B's BOF
    assert two[first_eof:first_eof + 4] == xls_bombs.EOF
    no_eof = two[:first_eof] + xls_bombs.record(0x0001) + two[first_eof + 4:]     # same length, no EOF
    with pytest.raises(FileUnreadable, match="工作表 A与工作表 B的记录位置重叠"):
        filesafety.check_workbook(io.BytesIO(xls_bombs.container(no_eof)), "a.xls", CLI_LIMITS)


def test_too_many_sheet_entries_are_refused_as_the_cap_is_passed(records_visited):
    """The entries were counted after all were listed: 600,000 of them (6 MB) cost 83 MB first."""
    data = xls_bombs.shared_sheet(5000, 1)
    with pytest.raises(FileTooLarge, match="工作簿的工作表超过 100 个（上限）"):
        filesafety.check_workbook(io.BytesIO(data), "a.xls", _limits(zip_members=100))
    assert records_visited[0] <= 100 + 5


@pytest.mark.parametrize("fat_count", [1, 4001])
def test_repeated_difat_entries_never_grow_the_fat(tmp_path, fat_count):
    """Every DIFAT entry, repeats included, added a 128-entry FAT sector: 4,000 DIFAT sectors listing
    sector 0 127 times each (2 MB) built a 260 MB FAT.  Only the first fat_count entries are taken,
    a FAT sector listed twice is refused, so the FAT holds at most fat_count × 128 entries."""
    path = tmp_path / "tax.xls"
    path.write_bytes(xls_bombs.repeated_difat(4000, fat_count=fat_count))
    assert path.stat().st_size > 2_000_000
    tracemalloc.start()
    try:
        with pytest.raises(FileUnreadable) as err:
            filesafety.check_workbook(path, "tax.xls", CLI_LIMITS)      # mapped, not copied
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(err.value)
    assert message.startswith("tax.xls：不是有效的 Excel 97-2003 工作簿") and "\n" not in message
    assert peak < 1024 * 1024 + fat_count * 128 * 4, peak


def test_an_ordinary_xls_is_measured_and_read(tmp_path):
    write_enterprises(tmp_path)
    xls_bombs.workbook(tmp_path / "tax.xls", sheets={"税收": _cell_records(300)})
    facts = filesafety.check_workbook(tmp_path / "tax.xls", "tax.xls", CLI_LIMITS)
    assert facts.sheets == {"税收": filesafety.Extent(rows=301, columns=3)}
    assert validate(read_dir(tmp_path, set())).read_rows["tax"] == 300
    real = filesafety.check_workbook(Path(__file__).parent / "fixtures" / "ingest" / "tax.xls", "tax.xls", CLI_LIMITS)
    assert set(real.sheets) == {"草稿", "税收"}          # written by Excel-compatible software


def test_every_cap_of_the_xls_guard():
    check = filesafety.check_workbook

    def refused(data: bytes, words: str, **limits) -> None:
        with pytest.raises((FileTooLarge, FileUnreadable), match=words):
            check(io.BytesIO(data), "a.xls", _limits(**limits) if limits else CLI_LIMITS)

    declared = xls_bombs.workbook(sheets={"S": xls_bombs.dimensions(65_536, 256) + xls_bombs.number(0, 0, 1.0)})
    assert check(io.BytesIO(declared), "a.xls", CLI_LIMITS).sheets["S"] == filesafety.Extent(65_536, 256)
    refused(declared, "工作表 S 的行数超过 20,000", rows=20_000)                 # the service's cap
    refused(declared, "工作表 S 的范围达到 65,536 行 × 256 列", cells=1_000_000)
    two = xls_bombs.workbook(sheets={"A": xls_bombs.dimensions(600, 1000), "B": xls_bombs.dimensions(600, 1000)})
    refused(two, "各工作表合计 1,200,000 个单元格", cells=1_000_000)             # the reader holds every sheet
    refused(two, "工作簿的工作表超过 1 个（上限）", zip_members=1)
    refused(xls_bombs.workbook(strings=["名称"] * 2000), "共享字符串（SST）有 14 KB", shared_strings_bytes=10_000)
    big = xls_bombs.workbook(sheets={"S": _cell_records(2000)})
    refused(big, "文件有 ", inflated_bytes=len(big) - 1)
    refused(big, "工作簿数据流有 ", member_bytes=50_000)
    refused(xls_bombs.workbook(sheets={"S": xls_bombs.label(0, 0, "长" * 1000) * 40}), "工作表 S 及之前各表的单元格文本和公式读入后约 235 KB",
            inflated_bytes=200_000)
    # a formula's text names other sheets: 255 characters per 7-byte token (a 2.4 MB file took the reader 255 MB)
    import struct
    token = b"\x3a" + struct.pack("<HHH", 0, 0, 0)
    rgce = token + (token + b"\x03") * 1000                # 名!A1+名!A1+…
    formula = xls_bombs.record(0x0006, struct.pack("<HHH", 0, 0, 0) + b"\0" * 14 + struct.pack("<H", len(rgce)) + rgce)
    named = xls_bombs.workbook(sheets={"名" * 255: formula}, pad=True)
    assert check(io.BytesIO(named), "a.xls", CLI_LIMITS).sheets["名" * 255] == filesafety.Extent(1, 1)
    refused(named, "单元格文本和公式读入后约 1 MB", inflated_bytes=500_000)
    # damaged containers and records
    good = xls_bombs.workbook()
    refused(good[:400], "文件不完整")
    refused(good[:30] + b"\x07\x00" + good[32:], "文件头损坏")
    spoilt = bytearray(good)
    spoilt[44:48] = (10**6).to_bytes(4, "little")
    refused(bytes(spoilt), "文件头声明的扇区数多于文件所含")
    # bytes 62-65 (half the mini FAT's start, half its count): the reader reserves 4 bytes for each
    many = bytearray(xls_bombs.workbook(sheets={"S": _cell_records(6000)}))
    many[64:68] = (400).to_bytes(4, "little")               # 400 mini FAT sectors: 26M numbers reserved
    assert len(many) > 401 * 512
    refused(bytes(many), "迷你 FAT 扇区数不合理")
    lying = xls_bombs.container(xls_bombs.stream({"S": xls_bombs.number(0, 0, 1.0)})[:-4] + b"\x0a\x00\xff\x7f")
    refused(lying, "记录长度 32767 超出数据流")
    refused(xls_bombs.container(xls_bombs.stream({"S": b""}, globals_extra=xls_bombs.record(0x002F, b"\x01\x00"))),
            "设置了打开密码")
    name = "Workbook".encode("utf-16-le")
    refused(good.replace(name, "WordDocu".encode("utf-16-le")), "没有工作簿数据流，可能是其他 Office 文件")


# ---------------------------------------------------------------- the command line

@pytest.mark.e2e
@pytest.mark.parametrize("spoil, file, words", [
    (lambda d: ((d / "land.csv").unlink(), xlsx_bombs.shared_string_bomb(d / "land.xlsx")), "land.xlsx", ["压缩比"]),
    (lambda d: os.truncate(d / "stats.csv", 2 * GB), "stats.csv", ["二进制"]),
], ids=["xlsx-bomb", "2gb-nul-csv"])
def test_cli_refuses_hostile_files_in_one_line(tmp_path, spoil, file, words):
    assert_run_refuses_in_one_line(tmp_path, spoil, file, words)
