"""A listed firm whose township is unknown (issue 12, item 5): list.csv keeps the township empty
for machines; the workbook lists the firm under 未知乡镇 — its own sheet, the full list and the
summary's per-township rows — never under an empty name and never dropped."""
from __future__ import annotations

import shutil
from pathlib import Path

import openpyxl
import polars as pl
import pytest

from cli_helpers import cli

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
UNKNOWN = "未知乡镇"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("unknown_township")
    data = root / "data"
    shutil.copytree(ROOT / "sample_data", data, ignore=shutil.ignore_patterns("README.md"))
    registry = data / "enterprises.csv"
    lines = registry.read_text(encoding="utf-8-sig").splitlines()
    for i in range(1, len(lines), 7):  # every 7th firm: township empty or blank
        cells = lines[i].split(",")
        cells[2] = "" if i % 2 else "  "
        lines[i] = ",".join(cells)
    registry.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    out = root / "out"
    proc = cli("run", "--data", data, "--out", out, "--db", root / "s.duckdb", cwd=root)
    assert proc.returncode == 0, proc.stderr
    return out


def test_list_csv_keeps_the_unknown_township_empty(run):
    listed = pl.read_csv(run / "list.csv", infer_schema=False)
    unknown = listed.filter(pl.col("township").is_null())
    assert unknown.height > 0
    assert UNKNOWN not in listed["township"].to_list()


def test_workbook_lists_them_under_unknown_township(run):
    listed = pl.read_csv(run / "list.csv", infer_schema=False)
    unknown = set(listed.filter(pl.col("township").is_null())["uscc"])
    book = pl.read_excel(run / "整治企业清单_2022.xlsx", sheet_id=0, infer_schema_length=0)
    assert set(book[UNKNOWN]["统一社会信用代码"]) == unknown
    full = book["整治企业清单"]
    assert full.height == listed.height
    assert set(full.filter(pl.col("乡镇街道") == UNKNOWN)["统一社会信用代码"]) == unknown
    assert full["乡镇街道"].null_count() == 0
    # every listed firm is on exactly one township sheet
    fixed = {"汇总", "整治企业清单", "规则与依据", "数据问题", "数据核查提示"}
    assert sum(frame.height for name, frame in book.items() if name not in fixed) == listed.height
    assert not [name for name in book if name.startswith("未填")]


def test_summary_counts_unknown_township(run):
    listed = pl.read_csv(run / "list.csv", infer_schema=False)
    ws = openpyxl.load_workbook(run / "整治企业清单_2022.xlsx", read_only=True)["汇总"]
    rows = [r for r in ws.iter_rows(values_only=True)]
    start = next(i for i, r in enumerate(rows) if r[0] == "按乡镇街道统计")
    by_township = {r[0]: r[1] for r in rows[start + 2:] if r[0] is not None and isinstance(r[1], (int, float))}
    assert by_township[UNKNOWN] == listed["township"].null_count()
    assert None not in by_township and "" not in by_township
    assert sum(by_township.values()) == listed.height


def test_every_unknown_form_is_named_unknown_township():
    from screening.excel import UNKNOWN_TOWNSHIP, township_for_people

    frame = pl.DataFrame({"township": [None, "", "  ", "\u3000", "柳市镇"]})
    assert frame.select(township_for_people())["township"].to_list() == [UNKNOWN_TOWNSHIP] * 4 + ["柳市镇"]
