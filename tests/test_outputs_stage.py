"""Issue 15, the output stage of ``screening run`` (docs/run-performance.md): the engine's results
table goes once results.parquet holds the rows (every later reader reads the file), and the
workbooks are zipped at excel.ZIP_LEVEL (xlsxwriter offers no option for it)."""
from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import duckdb
import polars as pl
import pytest

from screening import excel
from screening.outputs import write_all
from screening.screen import screen, with_rule_texts
from screening.store import results_relation


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stage")
    s = screen(None, 2022, keep_tables=False)
    try:
        # before write_all; as every reader gives them, with each rule's title and citation
        expected = with_rule_texts(s.engine.query("results", "SELECT * FROM results_out", {}), s.ruleset)
        assert write_all(s, tmp / "out", tmp / "db.duckdb") is None
        tables = set(s.engine.query("tables", "SELECT table_name FROM duckdb_tables()", {})["table_name"])
        yield {"s": s, "out": tmp / "out", "db": tmp / "db.duckdb", "expected": expected, "tables": tables,
               "results": s.results, "hits": s.hits_per_rule()}
    finally:
        s.close()


def test_results_table_released_once_the_parquet_holds_it(written):
    # about 480 MB of a province's run while results.csv, the database copy and Excel are written
    assert "results" not in written["tables"]
    assert "firm_years" in written["tables"]  # the rest of the engine stays


def test_every_reader_after_the_release_has_all_rows(written):
    key = ["uscc", "rule_id"]
    expected = written["expected"].sort(key)
    assert written["results"].sort(key).equals(expected, null_equal=True)  # Screening.results: the file
    assert sum(written["hits"].values()) == expected.filter(pl.col("status") == "hit").height
    csv = pl.read_csv(written["out"] / "results.csv", infer_schema=False)
    assert csv.height == expected.height and csv.select(key).sort(key).equals(expected.select(key))
    con = duckdb.connect(str(written["db"]), read_only=True)
    try:
        stored = con.sql(f"SELECT * FROM {results_relation(con)}").pl()
    finally:
        con.close()
    assert stored.sort(key).equals(expected.select(stored.columns).sort(key), null_equal=True)


def test_list_workbook_is_zipped_at_the_project_level(written):
    path = written["out"] / "整治企业清单_2022.xlsx"
    with zipfile.ZipFile(path) as archive:
        sheets = [i for i in archive.infolist() if i.filename.startswith("xl/worksheets/") and i.file_size > 4096]
        assert sheets
        for info in sheets:
            assert info.compress_type == zipfile.ZIP_DEFLATED
            # raw deflate is deterministic for one zlib: the stored size is that of ZIP_LEVEL
            data = archive.read(info)
            packer = zlib.compressobj(excel.ZIP_LEVEL, zlib.DEFLATED, -15)
            assert info.compress_size == len(packer.compress(data) + packer.flush()), info.filename


def test_other_zip_files_keep_their_level(tmp_path: Path):
    """The level is the project's workbooks' only: xlsxwriter's zip class is shared by the process."""
    import xlsxwriter.workbook

    data = ("一行文字 " * 4000).encode()
    with xlsxwriter.workbook.ZipFile(tmp_path / "a.zip", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.txt", data)
    with zipfile.ZipFile(tmp_path / "a.zip") as archive:
        info = archive.getinfo("a.txt")
    packer = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    assert info.compress_size == len(packer.compress(data) + packer.flush())
