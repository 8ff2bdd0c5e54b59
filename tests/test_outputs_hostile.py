"""Issue 10, finding 4: names, townships and reasons that a spreadsheet would run as formulas.

The bundled sample with hostile text put in (firm names ``=HYPERLINK(…)`` and ``-3.5abc``,
a township ``+1``, an unreadable number ``=1+1``, a dispute reason ``@SUM(A1)``) goes through
``screening run``, ``compare``, ``evaluate`` and the township export: every CSV meant for
people holds the text behind a leading ``'``, a real negative number stays a number, Parquet
keeps the text as read, and every xlsx cell is a string, never a formula.
"""
from __future__ import annotations

import csv
import io
import re
import shutil
from pathlib import Path

import openpyxl
import polars as pl
import pytest
from fastapi.testclient import TestClient

from api.auth import add_user
from api.config import Settings
from api.main import create_app
from api_helpers import TOWNSHIP, bearer
from cli_helpers import cli
from screening.csvsafe import PLAIN_NUMBER
from screening.store import connect

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
LINK = '=HYPERLINK("http://x","点此")'
NAME_NUMBERISH = "-3.5abc"
TOWN = "+1"
REASON = "@SUM(A1)"
BAD_NUMBER = "=1+1"
FORMULA_START = re.compile(r"[=+\-@\t\r]")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    """sample_data with hostile text, screened into out/ and db.duckdb."""
    tmp = tmp_path_factory.mktemp("hostile")
    data = tmp / "data"
    shutil.copytree(ROOT / "sample_data", data)
    path = data / "enterprises.csv"
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    for i, row in enumerate(rows[1:]):  # 企业名称 and 乡镇街道 are the 2nd and 3rd columns
        row[1] = (LINK, NAME_NUMBERISH, row[1])[i % 3]
        if i % 7 == 3 and row[2] != TOWNSHIP:
            row[2] = TOWN
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        csv.writer(f).writerows(rows)
    energy = data / "energy.csv"
    lines = energy.read_text(encoding="utf-8").splitlines()
    first = lines[1].split(",")
    lines[1] = ",".join([*first[:3], f'"{BAD_NUMBER}"'])   # electricity: not a number
    energy.write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = cli("run", "--data", data, "--out", tmp / "out", "--db", tmp / "db.duckdb", cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    return tmp


def _cells(path: Path) -> list[str]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return [cell for row in list(csv.reader(f))[1:] for cell in row]


def _assert_neutralised(path: Path) -> list[str]:
    """No cell starts like a formula unless it is a plain number; returns the cells."""
    cells = _cells(path)
    risky = [c for c in cells if FORMULA_START.match(c) and not re.fullmatch(PLAIN_NUMBER, c)]
    assert risky == [], f"{path.name}: {risky[:5]}"
    return cells


def test_every_csv_of_a_run_is_neutralised(hostile: Path):
    out = hostile / "out"
    names = sorted(p.name for p in out.glob("*.csv"))
    assert {"list.csv", "results.csv", "rejects.csv", "anomalies.csv"} <= set(names)
    cells = {name: _assert_neutralised(out / name) for name in names}
    assert "'" + LINK in cells["list.csv"]
    assert "'" + NAME_NUMBERISH in cells["list.csv"]
    assert "'" + TOWN in cells["list.csv"]
    assert "'" + BAD_NUMBER in cells["rejects.csv"]
    assert "-452.65" in cells["rejects.csv"]      # a real negative number stays a number
    assert "'" + LINK in cells["anomalies.csv"]


def test_parquet_keeps_the_text_as_read(hostile: Path):
    listing = pl.read_parquet(hostile / "out" / "list.parquet")
    assert LINK in listing["name"].to_list() and TOWN in listing["township"].to_list()


def _formula_free(book: Path | io.BytesIO, expected: set[str]) -> None:
    """Every cell holding hostile text is a string cell (openpyxl: data_type 's'), never 'f'."""
    wb = openpyxl.load_workbook(book, read_only=True)
    found = set()
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (ws.title, cell.coordinate, cell.value)
                if cell.value in expected:
                    assert cell.data_type == "s"
                    found.add(cell.value)
    assert found == expected


def test_list_workbook_cells_are_strings(hostile: Path):
    _formula_free(hostile / "out" / "整治企业清单_2022.xlsx", {LINK, NAME_NUMBERISH, TOWN, BAD_NUMBER})


def test_compare_csv_is_neutralised(hostile: Path):
    proc = cli("compare", "--before", "2022", "--after", "2022", "--db", hostile / "db.duckdb",
               "--out", hostile / "cmp", cwd=hostile)
    assert proc.returncode == 0, proc.stderr
    assert "'" + LINK in _assert_neutralised(hostile / "cmp" / "compare.csv")


def test_evaluation_csv_and_workbook(hostile: Path):
    proc = cli("evaluate", "--data", hostile / "data", "--year", "2021", "--out", hostile / "ev", cwd=hostile)
    assert proc.returncode == 0, proc.stderr
    for name in ("evaluation.csv", "evaluation_items.csv", "evaluation_rejects.csv"):
        _assert_neutralised(hostile / "ev" / name)
    assert "'" + LINK in _cells(hostile / "ev" / "evaluation.csv")
    _formula_free(hostile / "ev" / "亩均效益评价_2021.xlsx", {LINK, NAME_NUMBERISH, TOWN})


def test_township_export_csv_and_form(hostile: Path):
    db = hostile / "db.duckdb"
    con = connect(db)
    admin, township = add_user(con, "局", "admin", None), add_user(con, "柳市", "township", TOWNSHIP)
    con.close()
    with TestClient(create_app(Settings(db=db))) as client:
        items = client.get("/api/v1/lists/2022", headers=bearer(township), params={"page_size": 500}).json()["items"]
        firm = next(i["uscc"] for i in items if i["name"] == LINK)
        posted = client.post(f"/api/v1/enterprises/{firm}/verifications", headers=bearer(township),
                             json={"year": 2022, "outcome": "disputed", "reason": REASON})
        assert posted.status_code == 201, posted.text
        for token in (township, admin):
            response = client.get("/api/v1/lists/2022/export", headers=bearer(token), params={"format": "csv"})
            assert response.status_code == 200, response.text
            path = hostile / "export.csv"
            path.write_bytes(response.content)
            cells = _assert_neutralised(path)
            assert {"'" + LINK, "'" + REASON} <= set(cells)
        form = client.get("/api/v1/lists/2022/export", headers=bearer(admin), params={"format": "xlsx"})
        assert form.status_code == 200
        _formula_free(io.BytesIO(form.content), {LINK, NAME_NUMBERISH, TOWN, REASON})
