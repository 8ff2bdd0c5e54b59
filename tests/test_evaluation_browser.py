"""The evaluation workflow's pages in a real browser (the OS's Chromium via Playwright, as
tests/test_web_browser.py): 测算 → 公示 → a township's objection → 复核 → 调档 → 定稿 → 复现, with
a screenshot of each step under tests/screenshots/ (git-ignored).  Data: tests/eval_helpers.py."""
from __future__ import annotations

import datetime as dt

import pytest

from api.auth import set_password
from api.config import Settings
from api.main import create_app
from api.routes import evaluations as routes
from eval_helpers import FIRMS, METHOD_ID, add_users, write_data
from screening.store import connect
from test_web_browser import Session, browser  # noqa: F401  (browser: the fixture)
from web_helpers import NAMES, password, served

pytestmark = [pytest.mark.api, pytest.mark.browser]

TODAY = dt.date(2026, 12, 1)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval-browser")
    data = write_data(root)
    db = root / "s.duckdb"
    tokens = add_users(db)
    con = connect(db)
    for role in tokens:
        set_password(con, NAMES[role], password(role))
    con.close()
    with served(create_app(Settings(db=db, data_root=data, runs_dir=root / "runs"))) as base:
        yield {"base": base}


def _cells(page, firm: str) -> list[str]:
    return page.locator(f"#results tbody tr:has-text('{firm}') td").all_inner_texts()


def test_the_evaluation_year_from_computation_to_final(browser, server, monkeypatch):
    monkeypatch.setattr(routes, "today", lambda: TODAY)
    sessions = []
    try:
        admin = Session(browser, server, "admin")
        town = Session(browser, server, "other_township")
        sessions += [admin, town]
        # 测算
        admin.page.goto("/evaluations")
        admin.page.fill("#evaluate-form input[name=year]", "2021")
        admin.page.fill("#evaluate-form input[name=method]", f"{METHOD_ID}.yaml")
        admin.page.click("#evaluate-form button[type=submit]")
        admin.page.wait_for_load_state()
        url = admin.page.url
        assert "/evaluations/E2021-" in url
        assert _cells(admin.page, FIRMS[7])[1].startswith("8")
        admin.shot("evaluation-computed")
        # 公示
        admin.page.fill("#publish-form input[name=start]", TODAY.isoformat())
        admin.page.fill("#publish-form input[name=days]", "3")
        admin.page.click("#publish-form button[type=submit]")
        assert "已公示" in admin.page.inner_text("main") and "2026-12-01 至 2026-12-03" in admin.page.inner_text("#steps")
        # a township's objection, with the corrected land area (its own firm; others' are not shown)
        town.page.goto(url)
        assert town.page.locator("#results tbody tr").count() == 4
        town.page.fill("#object-form input[name=uscc]", FIRMS[7])
        town.page.fill("#object-form textarea[name=reason]", "用地面积有误，实为3.2亩")
        town.page.fill("#object-form input[name=evidence_ref]", "不动产权证第0012345号")
        town.page.check("#object-form input[name=stamped]")
        town.page.select_option("#object-form select[name=quantity]", "land_mu")
        town.page.fill("#object-form input[name=value]", "3.2")
        town.page.click("#object-form button[type=submit]")
        assert "已登记异议" in town.page.inner_text("main")
        assert "不动产权证第0012345号" in town.page.inner_text("#objections")
        town.shot("evaluation-objection-township")
        # after the window: 复核 in one batch; firm 8 moves from rank 8 to rank 2 (93.75 points)
        monkeypatch.setattr(routes, "today", lambda: TODAY + dt.timedelta(days=3))
        town.page.goto(url)
        assert town.page.locator("#object-form").count() == 0
        admin.page.goto(url)
        admin.page.select_option("#review-form select", "accepted")
        admin.page.click("#review-form button[type=submit]")
        assert "复核完成" in admin.page.inner_text("main")
        row = _cells(admin.page, FIRMS[7])
        assert row[1].startswith("2") and "公示 8" in row[1] and row[5] == "93.75" and "10.00 → 3.20" in row[11]
        admin.shot("evaluation-reviewed")
        # the firm sees how its score came about: 30 万元 ÷ 3.20 亩 = 9.375, ÷ 基准值 10 × 权重 100 = 93.75 分
        town.page.goto(url)
        town.page.click(f"#results a[href$='/firms/{FIRMS[7]}']")
        town.page.wait_for_load_state()
        item = town.page.locator("#items tbody tr").first.locator("td").all_inner_texts()
        assert "亩均税收" in item[0] and "30.0000 ÷ 3.2000" in item[1] and item[2:6] == [
            "9.3750", "10.0000", "100.00", "93.7500"], item
        assert "93.7500" in town.page.inner_text("#items tfoot") and "公示时 8" in town.page.inner_text("#firm-grade")
        town.shot("evaluation-firm-trace")
        # 调档 and 定稿
        admin.page.fill("#grade-form input[name=uscc]", FIRMS[6])
        admin.page.select_option("#grade-form select[name=grade]", "C")
        admin.page.fill("#grade-form textarea[name=reason]", "领导小组会议纪要：技改完成")
        admin.page.fill("#grade-form input[name=approver]", "领导小组组长")
        admin.page.click("#grade-form button[type=submit]")
        row = _cells(admin.page, FIRMS[6])
        assert (row[6], row[7], row[9]) == ("D", "D", "C") and "领导小组组长" in row[8]
        admin.page.click("#eval-finalize-form button[type=submit]")
        assert "确认定稿" in admin.page.inner_text(".error")
        admin.page.check("#eval-finalize-form input[name=confirm]")
        admin.page.click("#eval-finalize-form button[type=submit]")
        assert "已定稿" in admin.page.inner_text("main") and admin.page.locator("#grade-form").count() == 0
        admin.page.click("#reproduce-link")
        assert "已复现" in admin.page.inner_text("#reproduced")
        admin.shot("evaluation-finalized")
    finally:
        for s in sessions:
            s.close()
    for s in sessions:
        assert not [e for e in s.errors if "Content Security Policy" in e or "Refused" in e], s.errors
