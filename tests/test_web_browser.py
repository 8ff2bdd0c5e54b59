"""The web app in a real browser (issue 13): the OS's Chromium driven by Playwright.

Chromium comes from the OS packages (``python3 dev.py setup``/``test`` installs it when missing,
as root on Debian); where it cannot be installed these tests are skipped with the reason.  One
browser for the module; one context per user.  The server listens on 127.0.0.1 only.  Each main
page is saved as a screenshot under tests/screenshots/ (git-ignored) to be looked at."""
from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import httpx
import pytest

from api.config import Settings
from api.main import create_app
from api_helpers import OTHER, TOWNSHIP, bearer
from web_helpers import NAMES, XSS, build_web_db, password, served

pytestmark = [pytest.mark.api, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"  # = dev.py CHROMIUM
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = Path(__file__).parent / "screenshots"
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}

if not Path(CHROMIUM).exists():
    pytest.skip(f"浏览器测试已跳过：未找到 {CHROMIUM}（python3 dev.py setup 以 root 在 Debian 上会安装 chromium）",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="浏览器测试已跳过：未安装 playwright（pip install -e .[test]）")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db, tokens, xss_firm = build_web_db(tmp_path_factory.mktemp("browser"))
    with served(create_app(Settings(db=db))) as base, httpx.Client(base_url=base, timeout=30) as api:
        firms = api.get(f"/api/v1/lists/2022?township={TOWNSHIP}&page_size=500",
                        headers=bearer(tokens["admin"])).json()["items"]
        others = api.get(f"/api/v1/lists/2022?township={OTHER}&page_size=1", headers=bearer(tokens["admin"])).json()["items"]
        yield {"base": base, "tokens": tokens, "api": api, "xss": xss_firm,
               "firms": [f["uscc"] for f in firms if f["uscc"] != xss_firm], "other": others[0]["uscc"]}


@pytest.fixture(scope="module")
def browser():
    SHOTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


class Session:
    """A browser context signed in as one role; collects console errors (CSP violations)."""

    def __init__(self, browser, server, role: str | None, **options):
        self.context = browser.new_context(base_url=server["base"], locale="zh-CN", **options)
        self.context.set_default_timeout(10_000)
        # offline: nothing but the service itself may be reached
        self.context.route(re.compile(r"^(?!http://127\.0\.0\.1:).*"), lambda route: route.abort())
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        if role:
            self.page.goto("/login")
            self.page.fill("input[name=name]", NAMES[role])
            self.page.fill("input[name=password]", password(role))
            self.page.click("button[type=submit]")
            self.page.wait_for_load_state()

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def session(browser, server):
    opened: list[Session] = []

    def open_(role: str | None, **options) -> Session:
        opened.append(Session(browser, server, role, **options))
        return opened[-1]
    yield open_
    for s in opened:
        s.close()
    for s in opened:
        assert not [e for e in s.errors if "Content Security Policy" in e or "Refused" in e], s.errors


def test_each_role_signs_in_and_sees_only_its_pages(session, server):
    expected = {"admin": ("/workbench/2022", {"工作台", "清单", "大屏", "亩均评价", "差别化措施", "数据与筛选", "拟建项目", "用户", "审计", "备份"}),
                "township": ("/lists/2022", {"清单", "亩均评价", "差别化措施"}),
                "analyst": ("/workbench/2022", {"工作台", "清单", "大屏", "亩均评价", "差别化措施", "数据与筛选", "拟建项目"}),
                "dashboard": ("/screen/2022", {"大屏"})}
    for role, (landing, menu) in expected.items():
        s = session(role)
        assert s.page.url.endswith(landing), (role, s.page.url)
        assert set(s.page.locator("header nav a").all_inner_texts()) == menu, role
        s.shot(f"home-{role}")
        for path, allowed in (("/users", {"admin"}), ("/lists/2022", {"admin", "township", "analyst"}),
                              ("/screen/2022", {"admin", "analyst", "dashboard"})):
            answer = s.page.goto(path)
            assert (answer.status == 200) == (role in allowed), (role, path, answer.status)
        if role == "township":
            s.page.goto("/lists/2022")
            townships = set(s.page.locator("#list tbody tr td:nth-child(3)").all_inner_texts())
            assert townships == {TOWNSHIP}
        s.close()


def test_projects_filter_and_the_backup_button(session, server):
    analyst = session("analyst")
    analyst.page.click("header nav >> text=拟建项目")
    api = server["api"].get("/api/v1/projects?page_size=50", headers=bearer(server["tokens"]["analyst"])).json()
    assert analyst.page.locator("#projects tbody tr").count() == len(api["items"]) > 0
    # on a 1280-wide screen the whole table shows: the long unit headers once kept their columns
    # wide and pushed 处理建议 and 说明 off to the right, behind a sideways scroll
    assert analyst.page.viewport_size["width"] == 1280
    wide, box = analyst.page.evaluate("() => { const s = document.querySelector('#projects').parentElement;"
                                      " return [s.scrollWidth, s.clientWidth]; }")
    assert wide <= box, (wide, box)
    analyst.page.select_option("select[name=suggestion]", "报上级审查")
    analyst.page.click("form.filters button[type=submit]")
    analyst.page.wait_for_load_state()
    shown = analyst.page.locator("#projects tbody tr td:nth-child(10)").all_inner_texts()
    assert shown and all(text.startswith("报上级审查") and "仅供参考" in text for text in shown)
    analyst.shot("projects")
    admin = session("admin")
    admin.page.click("header nav >> text=备份")
    admin.page.check("input[name=confirm]")
    admin.page.click("#backup-form button[type=submit]")
    admin.page.wait_for_load_state()
    name = admin.page.locator("#backup-name").inner_text()
    assert name.startswith("screening-backup-") and "北京时间" in admin.page.locator("#backup-done").inner_text()
    assert admin.page.locator("#backup-tables tbody tr").count() > 5
    assert server["api"].get("/api/v1/health").json()["last_backup_age_hours"] is not None
    admin.shot("backups")


def test_signed_out_pages_go_to_sign_in(session):
    s = session(None)
    s.page.goto("/lists/2022")
    assert s.page.url.endswith("/login")
    s.page.fill("input[name=name]", NAMES["admin"])
    s.page.fill("input[name=password]", "wrong-password")
    s.page.click("button[type=submit]")
    assert "用户名或密码不正确" in s.page.inner_text("main")
    s.shot("login-failed")


def test_a_township_confirms_one_firm_and_disputes_another(session, server):
    s = session("township")
    first, second = server["firms"][:2]
    s.page.goto(f"/firms/{first}?year=2022")
    s.page.click("#confirm-form button[type=submit]")
    assert "已记录：确认" in s.page.inner_text("main")
    s.page.goto(f"/firms/{second}?year=2022")
    s.page.select_option("#dispute-form select[name=reason]", "企业已关停或迁出")
    s.page.fill("#dispute-form textarea[name=note]", "2022年3月已停产，现场核实")
    s.page.click("#dispute-form button[type=submit]")
    assert "已记录：异议" in s.page.inner_text("main")
    # the indicators over the years are drawn (ECharts, SVG): one point per year held
    sync_api.expect(s.page.locator("#indicator-chart svg")).to_have_count(1)
    years = s.page.locator(".record section:nth-of-type(3) table.grid tbody tr").count()
    assert years >= 1 and s.page.locator("#indicator-chart svg path").count() > years
    s.shot("record-township")
    api = server["api"]
    head = bearer(server["tokens"]["admin"])
    assert api.get(f"/api/v1/enterprises/{first}?year=2022", headers=head).json()["verifications"][-1]["outcome"] == "confirmed"
    disputed = api.get(f"/api/v1/enterprises/{second}?year=2022", headers=head).json()["verifications"][-1]
    assert (disputed["outcome"], disputed["reason"], disputed["created_by"]) == ("disputed", "企业已关停或迁出", NAMES["township"])
    # the list's filters apply in place (htmx, under the page's CSP) and the address follows them
    s.page.goto("/lists/2022")
    s.page.select_option("form.filters select[name=verification]", "disputed")
    sync_api.expect(s.page.locator("#total")).to_have_text("1")
    assert second in s.page.inner_text("#list") and "verification=disputed" in s.page.url


def test_another_townships_firm_url_is_404(session, server):
    s = session("township")
    answer = s.page.goto(f"/firms/{server['other']}?year=2022")
    assert answer.status == 404 and "未找到该企业" in s.page.inner_text("main")
    assert OTHER not in s.page.content()


def test_an_xss_payload_in_a_firm_name_is_text(session, server):
    s = session("admin")
    dialogs: list[str] = []
    s.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    s.page.goto(f"/firms/{server['xss']}?year=2022")
    assert XSS in s.page.inner_text("h1")
    s.page.goto(f"/lists/2022?q={server['xss']}")
    assert XSS in s.page.inner_text("#list")
    assert dialogs == []


def test_docs_and_redoc_render_offline(session):
    s = session(None)
    s.page.goto("/docs")
    s.page.wait_for_selector(".swagger-ui .info .title")
    assert "高耗低效企业筛选服务" in s.page.inner_text(".swagger-ui .info .title")
    assert s.page.locator(".opblock").count() > 10
    s.shot("docs")
    s.page.goto("/redoc")
    s.page.wait_for_selector("h1")
    assert "高耗低效企业筛选服务" in s.page.inner_text("h1")


def test_the_verification_form_works_on_a_phone(session, server, tmp_path):
    s = session("township", **PHONE)
    firm = server["firms"][2]
    s.page.goto(f"/firms/{firm}?year=2022")
    form = s.page.locator("#dispute-form")
    form.scroll_into_view_if_needed()
    box = form.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box  # no sideways scrolling to reach it
    assert s.page.evaluate("document.documentElement.scrollWidth") <= 392
    button = form.locator("button[type=submit]").bounding_box()
    assert button["height"] >= 36  # a thumb can hit it
    form.locator("select[name=reason]").select_option("数据有误")
    form.locator("textarea[name=note]").fill("用地面积应为 12.5 亩")
    s.shot("record-phone-before")
    with s.page.expect_navigation():
        form.locator("button[type=submit]").tap()
    assert "已记录：异议" in s.page.inner_text("main")
    # an evidence photo taken on site: uploaded from the phone and shown on the firm's page
    photo = tmp_path / "现场照片.png"
    from PIL import Image
    Image.new("RGB", (320, 200), (200, 80, 40)).save(photo)
    s.page.set_input_files("#evidence-form input[type=file]", str(photo))
    s.page.fill("#evidence-form input[name=note]", "厂房现状")
    with s.page.expect_navigation():
        s.page.locator("#evidence-form button[type=submit]").tap()
    assert "证据文件已上传" in s.page.inner_text("main")
    image = s.page.locator("figure.evidence img").first
    image.scroll_into_view_if_needed()
    sync_api.expect(image).to_be_visible()
    sync_api.expect(image).to_have_js_property("naturalWidth", 320)  # the file itself arrived and decoded
    s.shot("record-phone")


def test_the_dashboard_shows_the_api_totals(session, server):
    s = session("dashboard")
    s.page.goto("/screen/2022")
    sync_api.expect(s.page.locator("#updated")).not_to_have_text("—")  # drawn from the API's answer
    api = server["api"].get("/api/v1/dashboard/2022", headers=bearer(server["tokens"]["dashboard"])).json()
    shown = {k: int(s.page.inner_text(f"#kpi-{k}")) for k in ("listed", "final", "confirmed", "disputed", "pending")}
    assert shown == {"listed": api["listed"], "final": api["final"], **api["verification"]}
    assert s.page.locator("#chart-township svg, #chart-township canvas").count() >= 1
    assert "详情" not in s.page.inner_text("main") and "/firms/" not in s.page.content()  # aggregates only
    s.shot("screen")


def test_a_sheet_with_a_bad_row_shows_the_row(session, server, tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    sheet = server["api"].get("/api/v1/lists/2022/export?format=xlsx", headers=bearer(server["tokens"]["township"]))
    book = openpyxl.load_workbook(io.BytesIO(sheet.content))
    ws = book.worksheets[0]
    header = [c.value for c in ws[1]]
    ws.cell(row=3, column=header.index("核实结果") + 1, value="也许")
    path = tmp_path / "核实表.xlsx"
    book.save(path)
    s = session("township")
    s.page.goto("/lists/2022/sheet")
    s.page.set_input_files("input[type=file]", str(path))
    s.page.click("form.card button[type=submit]")
    errors = s.page.inner_text("#row-errors")
    assert "第 3 行" in errors and "也许" in errors
    s.shot("sheet-errors")


def test_admin_decides_finalizes_and_a_stale_plan_edit_keeps_its_text(session, server):
    """Last in the module: finalizing freezes the year for the tests above."""
    disputed = server["firms"][1]
    confirmed = server["firms"][0]
    town = bearer(server["tokens"]["township"])  # the township's part, also when this test runs alone
    for firm, outcome in ((confirmed, "confirmed"), (disputed, "disputed")):
        answer = server["api"].post(f"/api/v1/enterprises/{firm}/verifications", headers=town,
                                    json={"year": 2022, "outcome": outcome, "reason": "其他" if outcome == "disputed" else None})
        assert answer.status_code == 201, answer.text
    admin = session("admin")
    admin.page.goto(f"/firms/{disputed}?year=2022")
    admin.page.check("#decide-form input[value=rejected]")
    admin.page.click("#decide-form button[type=submit]")
    assert "已记录异议处理结果" in admin.page.inner_text("main")
    admin.page.goto("/lists/2022/finalization")
    admin.shot("finalization")
    admin.page.check("#finalize-form input[name=allow_unresolved]")
    admin.page.click("#finalize-form button[type=submit]")
    assert "已定稿" in admin.page.inner_text("main")
    # the signed-off list and the notices come from the page (with the service running, the command
    # line's export-final refuses and sends people to the web; the page once had no way to them)
    admin.page.goto("/lists/2022/finalization")
    with admin.page.expect_download() as download:
        admin.page.click("#final-export a")
    names = zipfile.ZipFile(download.value.path()).namelist()
    assert "定稿清单_2022.xlsx" in names and any(n.startswith("告知书/") and n.endswith(".docx") for n in names)
    # two admins open the same plan; the second saves after the first
    admin.page.goto(f"/firms/{confirmed}/plan?year=2022")
    admin.page.fill("#plan-form textarea[name=measures]", "更换高效电机")
    admin.page.fill("#plan-form input[name=lead]", "市经信局")
    admin.page.click("#plan-form button[type=submit]")
    assert "方案已保存" in admin.page.inner_text("main")
    first, second = session("admin"), session("admin")
    for s in (first, second):
        s.page.goto(f"/firms/{confirmed}/plan?year=2022")
    first.page.fill("#plan-form textarea[name=measures]", "第一位的修改")
    first.page.click("#plan-form button[type=submit]")
    assert "方案已保存" in first.page.inner_text("main")
    second.page.fill("#plan-form textarea[name=measures]", "第二位写了很长的一段措施")
    second.page.click("#plan-form button[type=submit]")
    main = second.page.inner_text("main")
    assert "已被他人修改" in main and "第一位的修改" in main  # the current version is shown
    assert second.page.input_value("#plan-form textarea[name=measures]") == "第二位写了很长的一段措施"  # nothing lost
    second.shot("plan-conflict")
    second.page.click("#plan-form button[type=submit]")  # saved again: now based on the version it saw
    assert "方案已保存" in second.page.inner_text("main")
    admin.page.goto(f"/firms/{confirmed}?year=2022")
    admin.shot("record-admin")
    # printed for the enterprise (A4): the record without the menu and the forms
    admin.page.emulate_media(media="print")
    assert not admin.page.locator("header.top").is_visible()
    assert not admin.page.locator("form.noprint, .noprint").first.is_visible()
    assert admin.page.locator("h1").is_visible() and "第二位写了很长的一段措施" in admin.page.inner_text("main")
    admin.shot("record-print")


def test_the_list_reads_on_a_phone_a_firm_a_line_or_two(session, server):
    """On a phone the list table was squeezed into the screen's width: a firm name broke every four
    characters and each row stood about seven lines high (36 firms: 6,500 px).  The table keeps a
    readable width and scrolls sideways inside its box; the page itself does not."""
    s = session("township", **PHONE)
    s.page.goto("/lists/2022")
    rows = s.page.locator("#list table.grid tbody tr")
    heights = [rows.nth(i).bounding_box()["height"] for i in range(min(rows.count(), 10))]
    line = s.page.evaluate("parseFloat(getComputedStyle(document.body).lineHeight) || 24")
    assert max(heights) <= 3.2 * line, (heights, line)
    assert s.page.evaluate("document.documentElement.scrollWidth") <= 392
    s.shot("list-phone")


def test_an_admin_resets_a_forgotten_password_on_the_users_page(session, server):
    """用户页: create a user, then 重设密码 on its row; the new password is shown once and signs in."""
    s = session("admin")
    s.page.goto("/users")
    s.page.fill("#user-form input[name=name]", "浏览器重设")
    s.page.select_option("#user-form select[name=role]", "analyst")
    s.page.click("#user-form button[type=submit]")
    row = s.page.locator("tr", has_text="浏览器重设")
    row.get_by_role("button", name="重设密码").click()
    s.page.wait_for_load_state()
    notice = s.page.locator("p.notice", has_text="已重设用户 浏览器重设")
    assert notice.is_visible()
    secret = s.page.locator("#reset-password").inner_text()
    s.shot("users-reset-password")
    other = session(None)
    other.page.goto("/login")
    other.page.fill("input[name=name]", "浏览器重设")
    other.page.fill("input[name=password]", secret)
    other.page.click("button[type=submit]")
    other.page.wait_for_load_state()
    assert other.page.url.endswith("/workbench/2022"), other.page.url


def test_pages_load_without_a_console_error(session, server):
    """Nothing a page asks for is missing: the browser's own request for an icon once answered
    404 (a console error on every page); the pages name /static/favicon.svg."""
    s = session("admin")
    for path in ("/login", "/workbench/2022", "/lists/2022", "/users"):
        s.page.goto(path)
        s.page.wait_for_load_state("networkidle")
    assert s.errors == [], s.errors
    icon = server["api"].get("/static/favicon.svg")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
