"""The 大屏 (dashboard page) shows the 差别化措施 block: the lists' counts per utility and the
ledger's amounts per quarter, the same numbers as GET /api/v1/dashboard/{year} (Chromium via
Playwright; the server and browser fixtures of tests/test_web_browser.py, a server of its own).
The screenshot goes to tests/screenshots/screen-measures.png to be looked at."""
from __future__ import annotations

import pytest
import xlsxwriter

from api_helpers import bearer
from test_web_browser import browser, server, session, sync_api  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.api, pytest.mark.browser]


def test_the_dashboard_shows_the_measures_block(session, server, tmp_path):  # noqa: F811
    api, admin = server["api"], bearer(server["tokens"]["admin"])
    made = api.post("/api/v1/measures/lists", json={"year": 2022}, headers=admin)
    assert made.status_code == 201, made.text
    path = tmp_path / "台账.xlsx"
    with xlsxwriter.Workbook(str(path)) as wb:
        ws = wb.add_worksheet()
        ws.write_row(0, 0, ["年度", "季度", "类别", "类型", "乡镇街道", "金额（元）"])
        for i, row in enumerate([[2022, 1, "加价收取", "电", "柳市镇", 120000], [2022, 2, "加价收取", "电", "柳市镇", 80000],
                                 [2022, 2, "加价返还", "电", "柳市镇", 30000], [2022, 3, "奖励", "", "乐成街道", 50000]], 1):
            ws.write_row(i, 0, row)
    stored = api.post("/api/v1/measures/ledger/upload", headers=admin,
                      files={"file": ("台账.xlsx", path.read_bytes())})
    assert stored.status_code == 201, stored.text
    s = session("dashboard")
    s.page.goto("/screen/2022")
    sync_api.expect(s.page.locator("#updated")).not_to_have_text("—")
    want = api.get("/api/v1/dashboard/2022", headers=bearer(server["tokens"]["dashboard"])).json()["measures"]
    for utility, counts in want["lists"]["by_utility"].items():
        for key in ("firms", "surcharged", "refunds", "no_account"):
            assert s.page.inner_text(f'[data-m="{utility}.{key}"]') == str(counts[key]), (utility, key)
    assert want["ledger"]["totals"] == {"加价收取": 20.0, "加价返还": 3.0, "奖励": 5.0}
    assert s.page.inner_text('[data-t="加价收取"]') == "20.00"
    assert s.page.locator("#chart-measures svg, #chart-measures canvas").count() >= 1
    s.page.locator("#measures").scroll_into_view_if_needed()
    s.shot("screen-measures")
