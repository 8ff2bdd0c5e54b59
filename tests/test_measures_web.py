"""The 差别化措施 page (/measures/{year}): the lists and the ledger for people who work in a
browser, over the API's own route functions (tests/test_measures_api.py holds the numbers).
Data: tests/measures_helpers.py moved back two years, list year 2022 (as test_measures_api)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from api.main import create_app
from measures_helpers import F1, F2, F3, write_data
from test_measures_api import GOOD, _ledger
from test_web_browser import browser  # noqa: F401  (the Chromium fixture)
from web_helpers import build_web_db, csrf_of, sign_in

pytestmark = pytest.mark.api

YEAR = 2022


@pytest.fixture
def web(tmp_path):
    db, _, _ = build_web_db(tmp_path)
    data_root = tmp_path / "data_root"
    write_data(data_root / "m", shift=-2)
    with TestClient(create_app(Settings(db=db, data_root=data_root))) as client:
        yield client


def _post(client, url: str, data: dict, files=None):
    csrf = csrf_of(client.get(f"/measures/{YEAR}").text)
    return client.post(url, data={"csrf_token": csrf, **data}, files=files)


def test_an_admin_generates_the_lists_and_uploads_the_ledger_from_the_page(web, tmp_path):
    sign_in(web, "admin")
    assert web.get("/measures", follow_redirects=False).headers["location"] == f"/measures/{YEAR}"
    empty = web.get(f"/measures/{YEAR}")
    assert empty.status_code == 200 and "还没有差别化措施名单" in empty.text and 'id="measures-form"' in empty.text
    unconfirmed = _post(web, f"/measures/{YEAR}/compute", {"data": "m"})
    assert unconfirmed.status_code == 422 and "确认生成" in unconfirmed.text
    outside = _post(web, f"/measures/{YEAR}/compute", {"data": "../..", "confirm": "1"})
    assert outside.status_code == 422 and "数据根目录" in outside.text
    made = _post(web, f"/measures/{YEAR}/compute", {"data": "m", "confirm": "1"})
    assert made.status_code == 200 and f"已生成 {YEAR} 年度名单：电 4 家" in made.text
    assert F1 in made.text and F3 in made.text and "未登记" in made.text
    assert web.get(f"/measures/{YEAR}?utility=气").text.count("没有名单行") == 1
    # a ledger with a bad row: nothing stored, the row named as Excel shows it
    bad = _ledger(tmp_path / "bad.xlsx", GOOD + [[2022, "第五季度", "加价收取", "电", F2, "企业2", "柳市镇", 1, 10]])
    refused = _post(web, f"/measures/{YEAR}/ledger", {}, {"file": ("台账.xlsx", bad.read_bytes())})
    assert refused.status_code == 422 and "第 7 行" in refused.text and "整份文件未保存" in refused.text
    good = _ledger(tmp_path / "good.xlsx", GOOD)
    stored = _post(web, f"/measures/{YEAR}/ledger", {}, {"file": ("台账.xlsx", good.read_bytes())})
    assert stored.status_code == 200 and "已保存台账 4 行" in stored.text
    # 第 1 季度 电 加价收取: 40000 + 15000 + 6000 元 = 6.1 万元; 第 2 季度 奖励 100000 元 = 10 万元
    assert "6.1000" in stored.text and "10.0000" in stored.text and "第 2 季度" in stored.text
    again = _post(web, f"/measures/{YEAR}/ledger", {}, {"file": ("台账.xlsx", good.read_bytes())})
    assert "替换了此前同季度的 4 行" in again.text


def test_a_township_sees_its_own_firms_and_no_forms(web):
    sign_in(web, "admin")
    _post(web, f"/measures/{YEAR}/compute", {"data": "m", "confirm": "1"})
    sign_in(web, "township")
    page = web.get(f"/measures/{YEAR}").text
    assert F1 in page and F2 in page and F3 not in page
    assert 'id="measures-form"' not in page and 'id="ledger-form"' not in page
    assert web.post(f"/measures/{YEAR}/compute", data={"confirm": "1"}).status_code == 403
    sign_in(web, "analyst")
    assert F3 in web.get(f"/measures/{YEAR}").text
    assert web.get(f"/measures/{YEAR}?utility=煤").status_code == 422
    assert web.get("/measures/99999").status_code == 404


@pytest.mark.browser
def test_the_measures_page_in_a_browser(browser, tmp_path):  # noqa: F811  (browser: the fixture)
    """Generate the lists and upload the ledger through the page's own forms in Chromium."""
    from web_helpers import served

    from test_web_browser import Session

    db, _, _ = build_web_db(tmp_path)
    data_root = tmp_path / "data_root"
    write_data(data_root / "m", shift=-2)
    good = _ledger(tmp_path / "台账.xlsx", GOOD)
    with served(create_app(Settings(db=db, data_root=data_root))) as base:
        admin = Session(browser, {"base": base}, "admin")
        try:
            admin.page.click("nav >> text=差别化措施")
            admin.page.wait_for_load_state()
            assert "还没有差别化措施名单" in admin.page.inner_text("main")
            admin.page.fill("#measures-form input[name=data]", "m")
            admin.page.check("#measures-form input[name=confirm]")
            admin.page.click("#measures-form button[type=submit]")
            admin.page.wait_for_load_state()
            assert "已生成 2022 年度名单" in admin.page.inner_text("main")
            assert admin.page.locator("#measure-lists tbody tr").count() >= 5
            admin.page.set_input_files("#ledger-form input[name=file]", str(good))
            admin.page.click("#ledger-form button[type=submit]")
            admin.page.wait_for_load_state()
            assert "已保存台账 4 行" in admin.page.inner_text("#upload-result")
            assert "6.1000" in admin.page.inner_text("#ledger-totals")
            admin.shot("measures")
            assert not [e for e in admin.errors if "Content Security Policy" in e or "Refused" in e], admin.errors
        finally:
            admin.close()


def test_the_stored_batch_names_its_data_folder_under_the_root_in_full(web):
    """measure_list_batches.data held only the folder's last name (``inner`` for ``outer/inner``):
    runs prune, which keeps every upload folder a batch read from, could not tell which one it was."""
    write_data(Path(web.app.state.settings.data_root) / "outer" / "inner", shift=-2)
    sign_in(web, "admin")
    made = _post(web, f"/measures/{YEAR}/compute", {"data": "outer/./inner", "confirm": "1"})
    assert made.status_code == 200, made.text
    cursor = web.app.state.con.cursor()
    assert cursor.execute("SELECT data FROM measure_list_batches WHERE list_year = ?", [YEAR]).fetchall() == [
        ("outer/inner",)]
    cursor.close()


def test_a_ledger_too_large_is_refused_as_a_ledger_not_as_a_verification_sheet(tmp_path):
    """The ledger's upload borrowed the 核实表's streaming cap and its refusal: a large ledger was told
    “请上传从本系统导出并填写的核实表（.xlsx）”, on the page and by the API alike."""
    from api_helpers import bearer

    db, tokens, _ = build_web_db(tmp_path)
    with TestClient(create_app(Settings(db=db, data_root=tmp_path, upload_max_bytes=64 * 1024))) as client:
        big = {"file": ("台账.csv", b"x" * (128 * 1024))}
        csrf = sign_in(client, "admin")
        page = client.post(f"/measures/{YEAR}/ledger", data={"csrf_token": csrf}, files=big)
        api = client.post("/api/v1/measures/ledger/upload", files=big, headers=bearer(tokens["admin"]))
    assert page.status_code == api.status_code == 413
    for text in (page.text, api.json()["detail"]):
        assert "台账文件过大" in text and "按季度" in text and "核实表" not in text


def test_the_year_links_offer_only_years_the_page_shows(web):
    """The links to the year before and after ran past 2000 and 2100 into 404 pages; the redirect from
    /measures went to a stored year the page refuses.  Every link and the redirect stay in range."""
    sign_in(web, "analyst")
    for year, links in ((2000, [2001]), (YEAR, [YEAR - 1, YEAR + 1]), (2100, [2099])):
        page = web.get(f"/measures/{year}")
        assert page.status_code == 200
        offered = [int(y) for y in re.findall(r'href="/measures/(\d+)"', page.text)]
        assert offered == links
        assert all(web.get(f"/measures/{y}").status_code == 200 for y in offered)
    assert web.get("/measures/1999").status_code == 404 and web.get("/measures/2101").status_code == 404
    web.app.state.con.execute("INSERT INTO measure_list_batches VALUES (2150, 'b', DATE '2150-01-01', 'm', '{}', 'x', now())")
    assert web.get("/measures", follow_redirects=False).headers["location"] == "/measures/2100"
