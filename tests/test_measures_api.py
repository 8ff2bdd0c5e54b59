"""差别化措施 in the service: stored lists per utility, the quarterly ledger imported from Excel,
township scoping and the dashboard's ``measures`` block (hand-computed).

Data: tests/measures_helpers.py with the grades moved back two years (2019–2021), list year 2022
(the sample run's year, so the dashboard answers).  Shipped policy (rules/yueqing-2022/measures.yaml):
电 D 0.3, 0.4 from the 3rd consecutive D year; 电 C 0.1; 水 D 1.0, C 0.5; 气 from 2024 (not in force).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import xlsxwriter
from fastapi.testclient import TestClient

from api.config import Settings
from api.main import create_app
import xls_bombs
from api_helpers import bearer, build_service_db
from measures_helpers import F1, F2, F3, F4, F6, write_data

pytestmark = pytest.mark.api

YEAR = 2022


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    root = tmp_path_factory.mktemp("measures_api")
    db, tokens = build_service_db(root)
    data_root = root / "data_root"
    write_data(data_root / "m", shift=-2)
    with TestClient(create_app(Settings(db=db, data_root=data_root))) as client:
        made = client.post("/api/v1/measures/lists", json={"year": YEAR, "data": "m"}, headers=bearer(tokens["admin"]))
        assert made.status_code == 201, made.text
        yield client, tokens, made.json()


def _ledger(path: Path, rows: list[list]) -> Path:
    """A ledger workbook as a platform exports it: a title row, the header on row 2, rows from 3."""
    with xlsxwriter.Workbook(str(path)) as wb:
        ws = wb.add_worksheet("台账")
        ws.merge_range(0, 0, 0, 8, "2022年度差别化措施台账")
        ws.write_row(1, 0, ["年度", "季度", "类别", "类型", "统一社会信用代码", "企业名称", "乡镇街道", "计费电量", "金额（元）"])
        for i, row in enumerate(rows, start=2):
            ws.write_row(i, 0, row)
    return path


GOOD = [
    [2022, 1, "加价收取", "电", F1, "企业1", "柳市镇", 100000, 40000],  # 4 万元
    [2022, "一季度", "加价收取", "电", F2, "企业2", "", 50000, 15000],  # township from the list: 柳市镇
    [2022, "Q1", "加价收取", "电力", F3, "企业3", "乐成街道", 20000, 6000],  # 电力: an alias of 电
    [2022, "第二季度", "奖励", "", "", "", "乐成街道", "", 100000],  # a township's incentive: 10 万元
]


def test_lists_per_utility_from_the_grade_history(service):
    client, tokens, made = service
    assert made["by_utility"]["电"] == {"rows": 5, "firms": 4, "surcharged": 4, "refunds": 0, "no_account": 2}
    power = client.get(f"/api/v1/measures/lists/{YEAR}?utility=电", headers=bearer(tokens["analyst"])).json()
    by = {(r["uscc"], r["account"]): r for r in power["items"]}
    assert by[(F1, "1001")]["surcharge"] == pytest.approx(0.4) and by[(F1, "1001")]["consecutive_years"] == 3
    assert by[(F2, "2001")]["surcharge"] == pytest.approx(0.3)
    assert by[(F3, None)]["surcharge"] == pytest.approx(0.3) and "未登记电户号" in by[(F3, None)]["note"]
    assert by[(F6, None)]["surcharge"] == pytest.approx(0.1)
    assert F4 not in {u for u, _ in by}  # D→B, but the D policy was not yet in force in 2021: no refund
    gas = client.get(f"/api/v1/measures/lists/{YEAR}?utility=气", headers=bearer(tokens["admin"])).json()
    assert gas["total"] == 0


def test_a_township_sees_only_its_own_firms(service):
    client, tokens, _ = service
    mine = client.get(f"/api/v1/measures/lists/{YEAR}", headers=bearer(tokens["township"])).json()
    assert {r["township"] for r in mine["items"]} == {"柳市镇"}
    assert {r["uscc"] for r in mine["items"]} == {F1, F2}
    other = client.get(f"/api/v1/measures/lists/{YEAR}", headers=bearer(tokens["other_township"])).json()
    assert {r["uscc"] for r in other["items"]} == {F3}
    assert client.get(f"/api/v1/measures/lists/{YEAR}", headers=bearer(tokens["dashboard"])).status_code == 403
    assert client.get("/api/v1/measures/lists/2030", headers=bearer(tokens["admin"])).status_code == 404


def test_ledger_with_a_bad_row_is_refused_with_the_excel_row(service, tmp_path):
    client, tokens, _ = service
    bad = GOOD + [[2022, "第五季度", "加价收取", "电", F6, "企业6", "虹桥镇", 1, 10],  # Excel row 7
                  [2022, 2, "加价收取", "电", F1, "企业1", "乐成街道", 1, 10]]  # row 8: F1 is 柳市镇's
    path = _ledger(tmp_path / "台账.xlsx", bad)
    answer = client.post("/api/v1/measures/ledger/upload", headers=bearer(tokens["admin"]),
                         files={"file": ("台账.xlsx", path.read_bytes())})
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert [(e["row"], e["column"]) for e in body["errors"]] == [(7, "季度"), (8, "乡镇街道")]
    assert "柳市镇" in body["errors"][1]["reason"]
    assert "整份文件未保存" in body["detail"]
    stored = client.get(f"/api/v1/measures/ledger/{YEAR}", headers=bearer(tokens["admin"])).json()
    assert stored["items"] == []
    # a file that is not a workbook at all: one Chinese line, never a 500
    junk = client.post("/api/v1/measures/ledger/upload", headers=bearer(tokens["admin"]),
                       files={"file": ("台账.xlsx", b"\x00\x01not a workbook")})
    assert junk.status_code in (413, 422) and junk.json()["detail"]
    # a file of another type: the message names every type a ledger is read from (not just two)
    other = client.post("/api/v1/measures/ledger/upload", headers=bearer(tokens["admin"]),
                        files={"file": ("台账.txt", b"a,b\n1,2\n")})
    assert other.status_code == 422
    assert all(suffix in other.json()["detail"] for suffix in (".xlsx", ".xls", ".csv", ".parquet")), other.text


def test_a_firm_row_twice_in_a_quarter_is_a_duplicate_with_or_without_its_township(service, tmp_path):
    """GOOD's row 4 is F2, 一季度, 加价收取, 电 with the township left empty; the same firm, quarter,
    kind and utility written again with its township (row 7) is the same record, not a second one."""
    client, tokens, _ = service
    twice = GOOD + [[2022, 1, "加价收取", "电", F2, "企业2", "柳市镇", 50000, 15000]]  # Excel row 7
    path = _ledger(tmp_path / "台账.xlsx", twice)
    answer = client.post("/api/v1/measures/ledger/upload", headers=bearer(tokens["admin"]),
                         files={"file": ("台账.xlsx", path.read_bytes())})
    assert answer.status_code == 422, answer.text
    errors = answer.json()["errors"]
    assert [e["row"] for e in errors] == [7] and "第4行" in errors[0]["reason"]


def test_ledger_import_scoping_dashboard_and_replacement(service, tmp_path):
    client, tokens, _ = service
    path = _ledger(tmp_path / "台账.xlsx", GOOD)
    answer = client.post("/api/v1/measures/ledger/upload", headers=bearer(tokens["admin"]),
                         files={"file": ("台账.xlsx", path.read_bytes())})
    assert answer.status_code == 201, answer.text
    assert answer.json()["stored"] == 4
    admin = client.get(f"/api/v1/measures/ledger/{YEAR}", headers=bearer(tokens["admin"])).json()
    amounts = {(r["uscc"], r["kind"]): r["amount"] for r in admin["items"]}
    assert amounts[(F1, "加价收取")] == pytest.approx(4.0)  # 40000 元 -> 万元
    assert amounts[(None, "奖励")] == pytest.approx(10.0)
    town = client.get(f"/api/v1/measures/ledger/{YEAR}", headers=bearer(tokens["township"])).json()
    assert {r["uscc"] for r in town["items"]} == {F1, F2}  # F2's township came from the measure list
    assert sum(t["amount_wan_yuan"] for t in town["totals"]) == pytest.approx(5.5)
    dash = client.get(f"/api/v1/dashboard/{YEAR}", headers=bearer(tokens["dashboard"])).json()["measures"]
    assert dash["ledger"]["by_quarter"][0] == {"quarter": 1, "加价收取": pytest.approx(6.1), "加价返还": 0, "奖励": 0}
    assert dash["ledger"]["by_quarter"][1]["奖励"] == pytest.approx(10.0)
    assert dash["lists"]["by_utility"]["电"]["surcharged"] == 4
    # the platform re-exports Q1 with one row: Q1 is replaced, Q2 stays
    again = _ledger(tmp_path / "q1.xlsx", [[2022, 1, "加价收取", "电", F1, "企业1", "柳市镇", 100000, 50000]])
    redo = client.post("/api/v1/measures/ledger/upload", headers=bearer(tokens["admin"]),
                       files={"file": ("q1.xlsx", again.read_bytes())})
    assert redo.status_code == 201 and redo.json()["replaced"] == 3
    dash = client.get(f"/api/v1/dashboard/{YEAR}", headers=bearer(tokens["admin"])).json()["measures"]
    assert dash["ledger"]["totals"] == {"加价收取": pytest.approx(5.0), "加价返还": 0, "奖励": pytest.approx(10.0)}
    log = client.get("/api/v1/audit", headers=bearer(tokens["admin"])).json()
    items = log["items"] if isinstance(log, dict) else log
    assert {"measures_compute", "measures_ledger_import"} <= {i["action"] for i in items}


def test_compute_refuses_a_folder_outside_the_data_root(service):
    client, tokens, _ = service
    answer = client.post("/api/v1/measures/lists", json={"year": YEAR, "data": "../.."}, headers=bearer(tokens["admin"]))
    assert answer.status_code == 422 and "数据根目录" in answer.json()["detail"]
    answer = client.post("/api/v1/measures/lists", json={"year": YEAR, "data": "m", "date": "2023-05-01"},
                         headers=bearer(tokens["admin"]))
    assert answer.status_code == 422 and "执行期" in answer.json()["detail"]


def test_accounts_upload_with_the_data_and_feed_the_lists(service, tmp_path):
    """accounts.csv goes up with the other tables (POST /data) and POST /measures/lists reads it."""
    client, tokens, _ = service
    folder = write_data(tmp_path / "up", shift=-2)
    files = [("files", (p.name, p.read_bytes())) for p in sorted(folder.iterdir())]
    up = client.post("/api/v1/data", data={"year": str(YEAR)}, files=files, headers=bearer(tokens["admin"]))
    assert up.status_code == 201, up.text
    assert "accounts.csv" in up.json()["files"]
    settings = client.app.state.settings
    assert (settings.uploads() / up.json()["data"]).is_dir() and not (settings.data_root / up.json()["data"]).exists()
    made = client.post("/api/v1/measures/lists", json={"year": YEAR, "data": up.json()["data"]},
                       headers=bearer(tokens["admin"]))
    assert made.status_code == 201, made.text
    # the batch names the upload as a request does, so that runs prune keeps it
    stored = client.app.state.con.cursor().execute(
        "SELECT data FROM measure_list_batches WHERE batch_id = ?", [made.json()["batch_id"]]).fetchall()
    assert stored == [(up.json()["data"],)]
    power = client.get(f"/api/v1/measures/lists/{YEAR}?utility=电", headers=bearer(tokens["admin"])).json()
    assert {(r["uscc"], r["account"]) for r in power["items"]} >= {(F1, "1001"), (F2, "2001"), (F2, "2002")}


def test_a_ledger_row_under_a_township_nobody_knows_is_refused_with_the_nearest(service, tmp_path):
    """A township's total written as 柳市 (for 柳市镇) or a made-up 乌托邦镇 was stored: no township
    user saw it, and the dashboard counted it under a name nobody has.  The row is refused now
    (422, nothing stored), naming the township it probably means."""
    client, tokens, _ = service
    before = client.get(f"/api/v1/measures/ledger/{YEAR}", headers=bearer(tokens["admin"])).json()["items"]
    path = _ledger(tmp_path / "台账.xlsx", GOOD + [[2022, 3, "奖励", "", "", "", "柳市", "", 20000],  # Excel row 7
                                                  [2022, 3, "奖励", "", "", "", "乌托邦镇", "", 20000]])  # row 8
    answer = client.post("/api/v1/measures/ledger/upload", headers=bearer(tokens["admin"]),
                         files={"file": ("台账.xlsx", path.read_bytes())})
    assert answer.status_code == 422, answer.text
    errors = {e["row"]: e for e in answer.json()["errors"]}
    assert sorted(errors) == [7, 8] and {e["column"] for e in errors.values()} == {"乡镇街道"}
    assert "是否指：柳市镇" in errors[7]["reason"] and "乌托邦镇" in errors[8]["reason"]
    assert client.get(f"/api/v1/measures/ledger/{YEAR}", headers=bearer(tokens["admin"])).json()["items"] == before


def test_ledger_amounts_whose_total_leaves_the_range_of_numbers_are_refused(service, tmp_path):
    """Two rows of 1.7e308 万元 (a unit or typing error): each is a number, their total is not; the
    year's totals and the dashboard showed null, as if nothing had been collected.  Refused, 422."""
    client, tokens, _ = service
    before = client.get(f"/api/v1/measures/ledger/{YEAR}", headers=bearer(tokens["admin"])).json()["items"]
    path = tmp_path / "台账.xlsx"
    with xlsxwriter.Workbook(str(path)) as wb:
        ws = wb.add_worksheet("台账")
        ws.write_row(0, 0, ["年度", "季度", "类别", "类型", "统一社会信用代码", "企业名称", "乡镇街道", "金额"])
        ws.write_row(1, 0, [2022, 4, "加价收取", "电", F1, "企业1", "柳市镇", 1.7e308])
        ws.write_row(2, 0, [2022, 4, "加价收取", "电", F2, "企业2", "柳市镇", 1.7e308])
    answer = client.post("/api/v1/measures/ledger/upload", headers=bearer(tokens["admin"]),
                         files={"file": ("台账.xlsx", path.read_bytes())})
    assert answer.status_code == 422 and "超出数值范围" in answer.json()["detail"], answer.text
    assert client.get(f"/api/v1/measures/ledger/{YEAR}", headers=bearer(tokens["admin"])).json()["items"] == before


def test_an_old_xls_ledger_is_measured_with_the_service_caps(service):
    """An .xls ledger was read unmeasured: a sheet declaring 65,536 rows (within the CLI's caps, above the
    service's 20,000) or a looping sector chain reached the reader.  Now 413 / 422, one line naming the
    file and the sheet; a good .xls ledger is read."""
    client, tokens, _ = service
    header = ["年度", "季度", "类别", "类型", "统一社会信用代码", "企业名称", "乡镇街道", "金额"]
    good = xls_bombs.table(header, [[2022, 3, "加价收取", "电", F1, "企业1", "柳市镇", 10000]])

    def upload(data: bytes):
        return client.post("/api/v1/measures/ledger/upload", headers=bearer(tokens["admin"]),
                           files={"file": ("台账.xls", data)})

    tall = upload(xls_bombs.workbook(sheets={"台账": xls_bombs.dimensions(65_536, 8) + good}))
    assert tall.status_code == 413, tall.text
    assert tall.json()["detail"].startswith("台账.xls：文件过大，工作表 台账 的行数超过 20,000（上限）")
    loop = upload(xls_bombs.workbook(sheets={"台账": good}, directory_chain_loops=True))
    assert loop.status_code == 422 and loop.json()["detail"] == "台账.xls：不是有效的 Excel 97-2003 工作簿（目录的扇区链循环）"
    stored = upload(xls_bombs.workbook(sheets={"台账": good}))
    assert stored.status_code == 201, stored.text
