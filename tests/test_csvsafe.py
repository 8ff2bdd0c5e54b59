"""Issue 10, finding 4 (CSV formula injection): the one rule of screening.csvsafe, its Polars
and DuckDB forms, and that every CSV writer of the project goes through it."""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from screening import csvsafe

ROOT = Path(__file__).resolve().parents[1]

HOSTILE = {
    '=HYPERLINK("http://x","点此")': '\'=HYPERLINK("http://x","点此")',
    "+1": "'+1",
    "@SUM(A1)": "'@SUM(A1)",
    "-3.5abc": "'-3.5abc",
    "-": "'-",
    "\t=1+1": "'\t=1+1",
    "\r=1+1": "'\r=1+1",
    "=1+1": "'=1+1",
}
KEPT = ["-3.5", "-12", "-1e-05", "-.5", "3.5", "乐清市某某有限公司", "柳市镇", "a=b", "", "'=already"]


def test_text_starting_like_a_formula_gets_a_leading_apostrophe():
    frame = pl.DataFrame({"name": [*HOSTILE, *KEPT, None]})
    got = csvsafe.neutralise(frame)["name"].to_list()
    assert got == [*HOSTILE.values(), *KEPT, None]


def test_numeric_columns_are_untouched_and_stay_numbers():
    frame = pl.DataFrame({"value": [-3.5, 2.0], "n": [-1, 2], "text": ["-3.5", "-x"]})
    out = csvsafe.neutralise(frame)
    assert out.schema == frame.schema
    assert out["value"].to_list() == [-3.5, 2.0] and out["n"].to_list() == [-1, 2]
    assert out["text"].to_list() == ["-3.5", "'-x"]
    text = csvsafe.csv_bytes(frame).decode("utf-8-sig")
    assert list(csv.reader(io.StringIO(text))) == [["value", "n", "text"], ["-3.5", "-1", "-3.5"], ["2.0", "2", "'-x"]]


def test_categorical_columns_are_neutralised_too():
    frame = pl.DataFrame({"township": ["+1", "柳市镇"]}, schema={"township": pl.Categorical})
    assert csvsafe.neutralise(frame)["township"].to_list() == ["'+1", "柳市镇"]


_CON = duckdb.connect()
_CON.execute(csvsafe.sql_macro())


def _sql(values: list[str | None]) -> list[str | None]:
    frame = pl.DataFrame({"v": values}, schema={"v": pl.String})  # noqa: F841 (read by DuckDB)
    return _CON.sql(f"SELECT * FROM {csvsafe.safe_select('frame', {'v': 'VARCHAR'})}").pl()["v"].to_list()


def test_duckdb_macro_is_the_same_rule():
    values = [*HOSTILE, *KEPT, None]
    assert _sql(values) == csvsafe.neutralise(pl.DataFrame({"v": values}))["v"].to_list()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from("=+-@\t\r0123456789.eE'a 点"), max_size=8), min_size=1, max_size=20))
def test_duckdb_and_polars_agree_on_any_text(values):
    assert _sql(values) == csvsafe.neutralise(pl.DataFrame({"v": values}, schema={"v": pl.String}))["v"].to_list()


@settings(deadline=None)
@given(st.text(max_size=12))
def test_no_output_cell_starts_like_a_formula(value):
    out = csvsafe.neutralise(pl.DataFrame({"v": [value]}))["v"][0]
    assert not re.match(r"[=+\-@\t\r]", out) or re.fullmatch(csvsafe.PLAIN_NUMBER, out)


# ------------------------------------------------------------------ every writer goes through it

#: files allowed to write CSV directly: the rule itself, and the synthetic *department* files
#: (input data for tests and benchmarks, not a report for people)
RAW_CSV_ALLOWED = {"screening/csvsafe.py", "screening/synth.py"}


def _sources() -> list[Path]:
    return [p for folder in ("screening", "api") for p in (ROOT / folder).rglob("*.py")]


def test_every_csv_for_people_is_written_through_csvsafe():
    """A frame's own write_csv, Python's csv writer, or a DuckDB COPY to CSV that does not
    select through csvsafe.safe_select: each would write a raw cell."""
    offenders = []
    for path in _sources():
        where, text = str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")
        if where in RAW_CSV_ALLOWED:
            continue
        if re.search(r"(?<!csvsafe)\.write_csv\(|csv\.writer\(|csv\.DictWriter\(", text):
            offenders.append(where)
        if re.search(r"FORMAT\s+csv", text, re.IGNORECASE) and "csvsafe.safe_select(" not in text:
            offenders.append(where)
    assert offenders == [], f"CSV written without screening.csvsafe in {offenders}"


def test_every_workbook_keeps_text_as_text():
    """xlsxwriter's write() turns '=…' into a formula: cells go through write_string/write_number
    and every Workbook is opened with strings_to_formulas off."""
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        where = str(path.relative_to(ROOT))
        assert not re.search(r"\b(ws|sheet|worksheet)\.write\(", text), where
        for call in re.finditer(r"(?<!class )\bWorkbook\((.*)", text):
            assert "WORKBOOK_OPTIONS" in call.group(1) or "strings_to_formulas" in call.group(1), where
        # screening.excel.Workbook: its sheets show a '<r>…</r>' text as written (xlsxwriter's own
        # class copies it into the file as rich-text XML)
        if where != "screening/excel.py":
            assert not re.search(r"xlsxwriter\.Workbook\(|from xlsxwriter import Workbook", text), where


def test_text_shaped_like_rich_text_xml_shows_as_written(tmp_path):
    """A firm name or reason '<r><t>x</t></r>' used to show as 'x' (and a malformed one broke the file)."""
    import warnings

    import openpyxl

    from screening.excel import WORKBOOK_OPTIONS, Workbook

    texts = ["<r><t>x</t></r>", "<r>未闭合</r>", "<r></r>", "<r>"]
    for constant_memory in (False, True):
        path = tmp_path / f"rich-{constant_memory}.xlsx"
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # xlsxwriter warns and writes nothing when it refuses a cell
            with Workbook(str(path), {**WORKBOOK_OPTIONS, "constant_memory": constant_memory}) as wb:
                ws = wb.add_worksheet()
                bold = wb.add_format({"bold": True})
                for row, text in enumerate(texts):
                    ws.write_string(row, 0, text)
                    ws.write_string(row, 1, text, bold)
        sheet = openpyxl.load_workbook(path).active
        assert [sheet.cell(r + 1, 1).value for r in range(len(texts))] == texts
        assert [sheet.cell(r + 1, 2).value for r in range(len(texts))] == texts
        assert sheet.cell(1, 2).font.b


def test_batch_size_changes_how_the_csv_is_formatted_not_its_bytes(tmp_path):
    """Issue 15: evaluation.csv / evaluation_items.csv are formatted in large batches (on all
    cores); a file whose risky, quoted, multi-line and numeric cells straddle the batch
    boundaries is byte-for-byte the file written with Polars' default batches."""
    n = 5000
    texts = ["=cmd()", "柳市镇", "a,b", 'say "hi"', "two\nlines", "-3.5", "@x", None, "'x"]
    frame = pl.DataFrame({
        "text": [texts[i % len(texts)] for i in range(n)],
        "cat": pl.Series([texts[(i * 7) % len(texts)] for i in range(n)], dtype=pl.Categorical),
        "x": [i / 7 if i % 11 else None for i in range(n)],
        "k": list(range(n)),
    })
    default = csvsafe.write_csv(frame, tmp_path / "default.csv").read_bytes()
    for batch in (1, 7, 1000, 65536):
        assert csvsafe.write_csv(frame, tmp_path / f"b{batch}.csv", batch_size=batch).read_bytes() == default
    risky = sum((texts[i % len(texts)] == "=cmd()") + (texts[(i * 7) % len(texts)] == "=cmd()") for i in range(n))
    assert default.count(b"'=cmd()") == risky and b"'-3.5" not in default


def test_the_cheap_pass_finds_every_formula_character_in_text_and_categories():
    """The first pass that decides which columns need neutralising (one anchored regular
    expression per cell, issue 15) sees each formula character at the start only."""
    for c in csvsafe.FORMULA_CHARS:
        for dtype in (pl.String, pl.Categorical):
            assert csvsafe._may_start_formula(pl.Series(["柳市镇", None, f"{c}x"], dtype=dtype))
            assert not csvsafe._may_start_formula(pl.Series(["柳市镇", None, f"x{c}", f"\n{c}"], dtype=dtype))


def test_file_writers_keep_clean_categories_and_write_the_same_text(tmp_path):
    """Issue 15: a CSV writer no longer turns millions of clean category cells into strings
    first (evaluation_items.csv: 3.4 M rows × 6 categorical columns); the file is unchanged."""
    texts = ["柳市镇", "a,b", 'say "hi"', "two\nlines", "", None, "'x"]
    frame = pl.DataFrame({
        "clean": pl.Series(texts, dtype=pl.Categorical),
        "fixed": pl.Series([None, "规上", "规下", "规上", None, "规下", "规上"], dtype=pl.Enum(["规上", "规下"])),
        "risky": pl.Series([*texts[:-1], "=1+1"], dtype=pl.Categorical),
        "n": [-1.5, 2.0, None, 3.0, 4.0, 5.0, 6.0],
    })
    kept = csvsafe.neutralise(frame, as_text=False)
    assert kept.schema["clean"] == pl.Categorical and kept.schema["fixed"] == pl.Enum(["规上", "规下"])
    assert kept["risky"].to_list() == [*texts[:-1], "'=1+1"]
    assert csvsafe.neutralise(frame).schema["clean"] == pl.String  # the default: every text column as text
    path = csvsafe.write_csv(frame, tmp_path / "f.csv")
    all_text = b"\xef\xbb\xbf" + csvsafe.neutralise(frame).write_csv().encode("utf-8")
    assert path.read_bytes() == all_text == csvsafe.csv_bytes(frame)


def test_duckdb_macro_stays_a_projection_not_a_join():
    """Issue 15: the first character used to be tested with an IN list, which DuckDB plans as a
    MARK join against a constant table, one per text column (about 0.25 CPU s each on a
    province's 4 M result rows); the comparisons must stay a plain projection."""
    frame = pl.DataFrame({"a": ["=1", "x"], "b": ["-2", "@y"]})  # noqa: F841 (read by DuckDB)
    select = csvsafe.safe_select("frame", {"a": "VARCHAR", "b": "VARCHAR"})
    plan = _CON.sql(f"EXPLAIN SELECT * FROM {select}").fetchall()[0][1]
    assert "JOIN" not in plan.upper(), plan
    assert _CON.sql(f"SELECT * FROM {select}").fetchall() == [("'=1", "-2"), ("x", "'@y")]
