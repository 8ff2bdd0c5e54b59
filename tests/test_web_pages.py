"""The web app over HTTP (issue 13): page routes × roles, sign-in, CSRF, throttling, sessions,
escaping and the offline documentation pages.  The browser flows are in test_web_browser.py."""
from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
from html.parser import HTMLParser

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from api.config import Settings
from api.main import create_app
from api.session import Sessions, Throttle, address_key
from api_helpers import bearer
from cli_helpers import _command
from web_helpers import NAMES, build_web_db, csrf_of, password, sign_in

pytestmark = pytest.mark.api

ADMIN, ANALYST, TOWN, DASH = "admin", "analyst", "township", "dashboard"
EVERY = {ADMIN, ANALYST, TOWN, DASH}
LIST = {ADMIN, ANALYST, TOWN}

#: who may use each page route ((method, path) → roles): the same roles as the API route it shows
PAGES = {
    ("GET", "/"): EVERY,
    ("GET", "/account"): EVERY,
    ("POST", "/account"): EVERY,
    ("GET", "/lists"): LIST,
    ("GET", "/lists/{year}"): LIST,
    ("GET", "/firms/{uscc}"): LIST,
    ("POST", "/firms/{uscc}/verify"): {ADMIN, TOWN},
    ("POST", "/firms/{uscc}/decide"): {ADMIN},
    ("POST", "/firms/{uscc}/evidence"): {ADMIN, TOWN},
    ("GET", "/lists/{year}/sheet"): {ADMIN, TOWN},
    ("POST", "/lists/{year}/sheet"): {ADMIN, TOWN},
    ("GET", "/lists/{year}/finalization"): {ADMIN, ANALYST},
    ("POST", "/lists/{year}/finalize"): {ADMIN},
    ("GET", "/firms/{uscc}/plan"): LIST,
    ("POST", "/firms/{uscc}/plan"): {ADMIN},
    ("POST", "/firms/{uscc}/plan/progress"): {ADMIN, TOWN},
    ("GET", "/workbench"): {ADMIN, ANALYST},
    ("GET", "/workbench/{year}"): {ADMIN, ANALYST},
    ("GET", "/screen"): {ADMIN, ANALYST, DASH},
    ("GET", "/screen/{year}"): {ADMIN, ANALYST, DASH},
    ("GET", "/runs"): {ADMIN, ANALYST},
    ("POST", "/runs"): {ADMIN},
    ("POST", "/runs/data"): {ADMIN},
    ("GET", "/users"): {ADMIN},
    ("POST", "/users"): {ADMIN},
    ("POST", "/users/revoke"): {ADMIN},
    ("POST", "/users/password"): {ADMIN},
    ("GET", "/audit"): {ADMIN},
    ("GET", "/projects"): {ADMIN, ANALYST},
    ("GET", "/backups"): {ADMIN},
    ("POST", "/backups"): {ADMIN},
    ("GET", "/measures"): LIST,
    ("GET", "/measures/{year}"): LIST,
    ("POST", "/measures/{year}/compute"): {ADMIN},
    ("POST", "/measures/{year}/ledger"): {ADMIN},
    ("GET", "/evaluations"): LIST,
    ("POST", "/evaluations"): {ADMIN},
    ("GET", "/evaluations/{evaluation_id}"): LIST,
    ("GET", "/evaluations/{evaluation_id}/firms/{uscc}"): LIST,
    ("POST", "/evaluations/{evaluation_id}/publish"): {ADMIN},
    ("POST", "/evaluations/{evaluation_id}/confirm"): {ADMIN, TOWN},
    ("POST", "/evaluations/{evaluation_id}/object"): {ADMIN, TOWN},
    ("POST", "/evaluations/{evaluation_id}/review"): {ADMIN},
    ("POST", "/evaluations/{evaluation_id}/grade"): {ADMIN},
    ("POST", "/evaluations/{evaluation_id}/finalize"): {ADMIN},
}
#: open to everyone: sign-in and the offline API documentation; sign-out needs a session
PUBLIC = {("GET", "/login"), ("POST", "/login"), ("GET", "/docs"), ("GET", "/redoc"), ("POST", "/logout")}


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    db, tokens, firm = build_web_db(tmp_path_factory.mktemp("web"))
    with TestClient(create_app(Settings(db=db))) as client:
        yield client, tokens, firm


def _page_routes(app) -> set[tuple[str, str]]:
    """The page router's routes and the app's own routes left out of the API schema (/docs, /redoc)."""
    from api.web import pages
    routes = [*pages.router.routes, *(r for r in app.routes if isinstance(r, APIRoute) and not r.include_in_schema)]
    return {(method, route.path) for route in routes for method in route.methods if method != "HEAD"}


def _call(client: TestClient, method: str, path: str, firm: str, csrf: str):
    url = path.replace("{year}", "2022").replace("{uscc}", firm).replace("{evaluation_id}", "E2021-20260101T080000-0a1b2c")
    if "/plan" in url:
        url += "?year=2022"
    if method == "GET":
        return client.get(url, follow_redirects=False)
    # a form the route must refuse (or, for the sheet, no file): the matrix changes nothing
    return client.post(url, data={"csrf_token": csrf, "name": "无此用户"}, follow_redirects=False)


def test_every_page_route_is_in_the_matrix(web):
    client, _, _ = web
    assert _page_routes(client.app) == set(PAGES) | PUBLIC


@pytest.mark.parametrize("role", [ADMIN, ANALYST, TOWN, DASH])
def test_each_role_on_each_page(web, role):
    client, _, firm = web
    csrf = sign_in(client, role)
    wrong = []
    for (method, path), roles in PAGES.items():
        answer = _call(client, method, path, firm, csrf)
        admitted = role in roles
        if (admitted and answer.status_code in (401, 403)) or (not admitted and answer.status_code != 403) \
                or answer.status_code >= 500 or (answer.status_code == 303 and answer.headers["location"] == "/login"):
            wrong.append((method, path, answer.status_code))
        if "text/html" in answer.headers.get("content-type", ""):
            _no_inline_script(answer.text, path)
    assert not wrong, f"{role}: {wrong}"


def test_without_a_session_every_page_goes_to_sign_in(web):
    client, _, firm = web
    client.cookies.clear()
    codes = {(m, p): _call(client, m, p, firm, "x") for m, p in PAGES}
    assert {(a.status_code, a.headers.get("location")) for a in codes.values()} == {(303, "/login")}


def test_the_matrix_changed_nothing(web):
    client, tokens, _ = web
    # the users made for the test on the file (本机命令行) are audited; nothing the matrix called is
    actions = {i["action"] for i in client.get("/api/v1/audit?page_size=500", headers=bearer(tokens["admin"])).json()["items"]
               if i["user_name"] != "本机命令行"}
    assert actions <= {"login", "password_change_failed"}, actions


def _no_inline_script(html: str, where: str) -> None:
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag or 'type="application/json"' in tag, f"{where}: inline script {tag}"


def test_security_headers_on_pages_and_api(web):
    client, tokens, _ = web
    for answer in (client.get("/login"), client.get("/api/v1/health"), client.get("/docs")):
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
        assert answer.headers["x-content-type-options"] == "nosniff"


def test_the_session_cookie_is_httponly_and_strict(tmp_path_factory, web):
    client, _, _ = web
    token = csrf_of(client.get("/login").text)
    answer = client.post("/login", data={"name": NAMES[ADMIN], "password": password(ADMIN), "csrf_token": token},
                         follow_redirects=False)
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
    assert "screening_session" not in answer.headers["location"]  # never in a URL


def test_secure_cookie_when_configured(web):
    client, _, _ = web
    client.app.state.settings.cookie_secure = True
    try:
        token = csrf_of(client.get("/login").text)
        answer = client.post("/login", data={"name": NAMES[ADMIN], "password": password(ADMIN), "csrf_token": token},
                             follow_redirects=False)
        assert "; secure" in answer.headers["set-cookie"].lower()
    finally:
        client.app.state.settings.cookie_secure = False


def test_forms_without_the_csrf_token_are_refused(web):
    client, tokens, firm = web
    sign_in(client, TOWN)
    form = {"year": "2022", "outcome": "confirmed"}
    for sent in (form, {**form, "csrf_token": "forged"}):
        answer = client.post(f"/firms/{firm}/verify", data=sent, follow_redirects=False)
        assert answer.status_code == 403 and "CSRF" in answer.text
    # the API's own routes with the session cookie need the token too (header X-CSRF-Token)
    answer = client.post(f"/api/v1/enterprises/{firm}/verifications", json={"year": 2022, "outcome": "confirmed"})
    assert answer.status_code == 403
    record = client.get(f"/api/v1/enterprises/{firm}?year=2022", headers=bearer(tokens["township"])).json()
    assert record["verifications"] == []
    # sign-in itself: the login form's token must match its cookie
    client.cookies.clear()
    answer = client.post("/login", data={"name": NAMES[TOWN], "password": password(TOWN), "csrf_token": "x"},
                         follow_redirects=False)
    assert answer.status_code == 403 and "screening_session" not in answer.headers.get("set-cookie", "")


def test_sign_in_is_throttled_per_name_and_per_address(tmp_path_factory, web):
    client, tokens, _ = web
    client.app.state.login_throttle = Throttle(3, 300)
    try:
        def attempt(name: str, secret: str) -> int:
            client.cookies.clear()
            token = csrf_of(client.get("/login").text)
            return client.post("/login", data={"name": name, "password": secret, "csrf_token": token},
                               follow_redirects=False).status_code
        assert [attempt(NAMES[ANALYST], "wrong-password") for _ in range(3)] == [401, 401, 401]
        assert attempt(NAMES[ANALYST], password(ANALYST)) == 429  # locked, even with the right password
        client.app.state.login_throttle = Throttle(3, 300)
        assert [attempt(f"无此人{i}", "wrong-password") for i in range(3)] == [401, 401, 401]
        assert attempt(NAMES[DASH], password(DASH)) == 429  # this address is locked for every name
    finally:
        client.app.state.login_throttle = Throttle(5, 300)
    log = client.get("/api/v1/audit?page_size=500", headers=bearer(tokens["admin"])).json()["items"]
    failed = [i for i in log if i["action"] == "login_failed"]
    assert {i["entity_key"] for i in failed} >= {NAMES[ANALYST], "无此人0"}
    assert any(i["action"] == "login" for i in log)


def test_throttle_memory_is_bounded_and_failures_age_out():
    now = [0.0]
    throttle = Throttle(2, 10, clock=lambda: now[0])
    throttle.fail("a"), throttle.fail("a")
    assert throttle.wait("a") > 0 and throttle.wait("b") == 0
    now[0] = 11
    assert throttle.wait("a") == 0
    from api import session
    for i in range(session.MAX_THROTTLE_KEYS + 10):
        throttle.fail(f"k{i}")
    assert len(throttle._failures) <= session.MAX_THROTTLE_KEYS


def test_idle_sessions_expire():
    now = [0.0]
    sessions = Sessions(60, clock=lambda: now[0])
    sid, _ = sessions.create("u")
    now[0] = 59
    assert sessions.get(sid) is not None  # used: the idle time starts again
    now[0] = 118
    assert sessions.get(sid) is not None
    now[0] = 179
    assert sessions.get(sid) is None


def test_sign_out_ends_the_session(web):
    client, _, _ = web
    csrf = sign_in(client, ANALYST)
    cookie = client.cookies.get("screening_session")
    assert client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    client.cookies.set("screening_session", cookie)
    assert client.get("/lists/2022", follow_redirects=False).headers["location"] == "/login"


def test_changing_the_password(web):
    client, _, _ = web
    other = TestClient(client.app)
    sign_in(other, DASH)
    csrf = sign_in(client, DASH)
    answer = client.post("/account", data={"csrf_token": csrf, "current": "wrong", "new": "x" * 12, "again": "x" * 12})
    assert answer.status_code == 422 and "当前密码不正确" in answer.text
    new = "新的口令-abcdefgh"
    answer = client.post("/account", data={"csrf_token": csrf, "current": password(DASH), "new": new, "again": new})
    assert answer.status_code == 200 and "密码已修改" in answer.text
    assert client.get("/screen/2022").status_code == 200  # this session stays
    assert other.get("/screen/2022", follow_redirects=False).headers["location"] == "/login"  # others end
    client.cookies.clear()
    token = csrf_of(client.get("/login").text)
    assert client.post("/login", data={"name": NAMES[DASH], "password": password(DASH), "csrf_token": token},
                       follow_redirects=False).status_code == 401
    token = csrf_of(client.get("/login").text)
    assert client.post("/login", data={"name": NAMES[DASH], "password": new, "csrf_token": token},
                       follow_redirects=False).status_code == 303
    # back to the usual password for the other tests
    csrf = csrf_of(client.get("/account").text)
    client.post("/account", data={"csrf_token": csrf, "current": new, "new": password(DASH), "again": password(DASH)})


def test_a_password_change_is_not_kept_without_its_audit_line(web, monkeypatch):
    """修改密码 with the audit line failing: the old password still signs in (the new one was
    committed on its own, without its line)."""
    from api.auth import check_password
    from api.web import pages

    client, _, _ = web
    signed_in = TestClient(client.app, raise_server_exceptions=False)
    csrf = sign_in(signed_in, DASH)

    def fails(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pages, "audit", fails)
    new = "新的口令-abcdefgh"
    answer = signed_in.post("/account", data={"csrf_token": csrf, "current": password(DASH), "new": new, "again": new})
    assert answer.status_code >= 500
    con = client.app.state.con.cursor()
    try:
        assert check_password(con, NAMES[DASH], password(DASH)) is not None
        assert check_password(con, NAMES[DASH], new) is None
    finally:
        con.close()

def test_the_pages_links_to_api_downloads_work_with_the_session(web):
    client, _, _ = web
    sign_in(client, TOWN)
    link = re.search(r'href="(/api/v1/lists/2022/export[^"]*)"', client.get("/lists/2022/sheet").text).group(1)
    sheet = client.get(link.replace("&amp;", "&"))
    assert sheet.status_code == 200 and sheet.content[:2] == b"PK"
    assert client.get("/api/v1/dashboard/2022").status_code == 403  # the API's roles, with the session too


def test_the_list_page_filters_as_the_api_does(web):
    client, tokens, _ = web
    sign_in(client, ANALYST)
    html = client.get("/lists/2022").text
    titles = dict(re.findall(r'<option value="([a-z_]+)"[^>]*>([^<]+)</option>', html))
    assert titles["above_scale_low_tax_per_mu"].startswith("规上工业企业")  # offered by its Chinese title
    for query in ("rule=below_scale_consecutive_c_grade", "industry=38&sort=tax_per_mu", "township=乐成街道&q=电气"):
        page = client.get(f"/lists/2022?{query}").text
        api = client.get(f"/api/v1/lists/2022?{query}&page_size=50", headers=bearer(tokens["analyst"])).json()
        assert re.search(r'<strong id="total">(\d+)</strong>', page).group(1) == str(api["total"]), query
        assert re.findall(r'href="/firms/([0-9A-Z]+)\?year=2022"', page) == [i["uscc"] for i in api["items"]], query


def test_a_firm_name_is_shown_as_text(web):
    client, _, firm = web
    sign_in(client, ADMIN)
    for url in (f"/firms/{firm}?year=2022", f"/lists/2022?q={firm}"):
        html = client.get(url).text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html, url


def test_the_record_lists_grades_and_years_as_people_write_them(web):
    """Rule 2's grades ("C,D" in the data: Y-2, Y-1) read "C、D" on the record page, like its years."""
    client, tokens, _ = web
    listed = client.get("/api/v1/lists/2022", params={"rule": "below_scale_consecutive_c_grade", "page_size": 5},
                        headers=bearer(tokens["admin"])).json()["items"]
    assert listed
    sign_in(client, ADMIN)
    for item in listed:
        html = client.get(f"/firms/{item['uscc']}?year=2022").text
        assert re.search(r'data-label="指标值" class="num">[A-D]、[A-D]</td>', html), item["uscc"]
        assert not re.search(r'class="num">[A-D],[A-D]<', html)


def test_another_townships_firm_is_not_found(web):
    client, _, firm = web
    sign_in(client, "other_township")
    theirs = client.get(f"/firms/{firm}?year=2022")
    missing = client.get("/firms/91330000000000000X?year=2022")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.text == missing.text  # nothing tells a firm elsewhere from no firm
    listed = client.get("/lists/2022?q=" + firm).text
    assert f"/firms/{firm}" not in listed and '<strong id="total">0</strong>' in listed


def test_docs_are_served_offline(web):
    client, _, _ = web
    for path in ("/docs", "/redoc"):
        html = client.get(path).text
        assert not re.search(r"(src|href)=\"https?:", html), html
        for asset in re.findall(r"(?:src|href)=\"(/static/[^\"]+)\"", html):
            assert client.get(asset).status_code == 200, asset
    assert client.get("/openapi.json").status_code == 200


def test_users_add_with_a_password(tmp_path, web):
    client, _, _ = web
    db = tmp_path / "u.duckdb"
    base = [*_command(), "users", "add", "--db", str(db)]
    proc = subprocess.run([*base, "--name", "新管理员", "--role", "admin", "--password"], input="一个足够长的口令abc\n",
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    short = subprocess.run([*base, "--name", "短口令", "--role", "admin", "--password"], input="short\n",
                           capture_output=True, text=True, timeout=120)
    assert short.returncode == 2 and "至少" in short.stderr
    generated = subprocess.run([*base, "--name", "生成", "--role", "analyst", "--generate-password"],
                               capture_output=True, text=True, timeout=120)
    assert generated.returncode == 0 and "网页登录密码" in generated.stderr
    secret = re.search(r"网页登录密码（只显示这一次）：(\S+)", generated.stderr).group(1)
    from api.auth import check_password
    from screening.store import connect
    con = connect(db)
    try:
        assert check_password(con, "新管理员", "一个足够长的口令abc") is not None
        assert check_password(con, "生成", secret) is not None
        assert check_password(con, "短口令", "short") is None
    finally:
        con.close()


def test_an_admin_creates_a_user_with_a_password_on_the_page(web):
    client, _, _ = web
    csrf = sign_in(client, ADMIN)
    html = client.post("/users", data={"csrf_token": csrf, "name": "新分析员", "role": "analyst"}).text
    secret = re.search(r'id="new-password">([^<]+)<', html).group(1)
    client.cookies.clear()
    token = csrf_of(client.get("/login").text)
    answer = client.post("/login", data={"name": "新分析员", "password": secret, "csrf_token": token}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/workbench"



def test_an_admin_resets_a_password_on_the_users_page(web):
    """用户页 “重设密码”: a new password generated and shown once, the old one refused, the user's
    sessions ended; not offered for the admin's own row (修改密码 is for that) nor for a revoked user."""
    client, _, _ = web
    admin = TestClient(client.app)
    csrf = sign_in(admin, ADMIN)
    html = admin.post("/users", data={"csrf_token": csrf, "name": "将重设", "role": "analyst"}).text
    old = re.search(r'id="new-password">([^<]+)<', html).group(1)
    token = csrf_of(client.get("/login").text)
    assert client.post("/login", data={"name": "将重设", "password": old, "csrf_token": token},
                       follow_redirects=False).status_code == 303
    page = admin.get("/users").text
    assert page.count('action="/users/password"') == page.count('action="/users/revoke"') >= 1
    assert f'name="name" value="{NAMES[ADMIN]}"><button type="submit" class="link">重设密码' not in page
    html = admin.post("/users/password", data={"csrf_token": csrf, "name": "将重设"}).text
    new = re.search(r'id="reset-password">([^<]+)<', html).group(1)
    assert new != old and "已全部退出" in html
    assert client.get("/lists/2022", follow_redirects=False).headers["location"] == "/login"
    for secret, code in ((old, 401), (new, 303)):
        token = csrf_of(client.get("/login").text)
        assert client.post("/login", data={"name": "将重设", "password": secret, "csrf_token": token},
                           follow_redirects=False).status_code == code
    missing = admin.post("/users/password", data={"csrf_token": csrf, "name": "无此用户"})
    assert missing.status_code == 404 and 'role="alert"' in missing.text
    assert admin.post("/users/password", data={"name": "将重设"}).status_code == 403  # no CSRF token
    # the admin's own row offers no button, and the route refuses it too (修改密码 asks for the current one)
    own = admin.post("/users/password", data={"csrf_token": csrf, "name": NAMES[ADMIN]})
    assert own.status_code == 403 and "修改密码" in own.text and 'id="reset-password"' not in own.text
    assert admin.get("/users", follow_redirects=False).status_code == 200  # still signed in


def test_a_reset_lifts_the_sign_in_lockout_of_that_name(web):
    """A user locked out by failed sign-ins (SCREENING_LOGIN_MAX_FAILURES) signs in with the
    password an admin has just reset, without waiting out the lockout."""
    client, tokens, _ = web
    head = bearer(tokens["admin"])
    assert client.post("/api/v1/users", headers=head,
                       json={"name": "被锁定", "role": "analyst", "password": "原来的口令abcdefg"}).status_code == 201
    locked = TestClient(client.app)
    throttle = client.app.state.login_throttle
    address = address_key("testclient")  # the test client's address, also counted by earlier tests: only the name is locked here
    throttle.clear(address)
    for _ in range(throttle.max):
        token = csrf_of(locked.get("/login").text)
        failed = locked.post("/login", data={"name": "被锁定", "password": "错的口令xxxxxxxx", "csrf_token": token})
        assert failed.status_code == 401
    throttle.clear(address)
    token = csrf_of(locked.get("/login").text)
    assert locked.post("/login", data={"name": "被锁定", "password": "原来的口令abcdefg", "csrf_token": token},
                       follow_redirects=False).status_code == 429
    assert client.put("/api/v1/users/被锁定/password", headers=head, json={"password": "新的口令abcdefgh"}).status_code == 200
    token = csrf_of(locked.get("/login").text)
    assert locked.post("/login", data={"name": "被锁定", "password": "新的口令abcdefgh", "csrf_token": token},
                       follow_redirects=False).status_code == 303


def test_a_revoked_user_is_signed_out(web):
    client, _, _ = web
    admin = TestClient(client.app)
    csrf = sign_in(admin, ADMIN)
    html = admin.post("/users", data={"csrf_token": csrf, "name": "将停用", "role": "analyst"}).text
    secret = re.search(r'id="new-password">([^<]+)<', html).group(1)
    client.cookies.clear()
    token = csrf_of(client.get("/login").text)
    assert client.post("/login", data={"name": "将停用", "password": secret, "csrf_token": token},
                       follow_redirects=False).status_code == 303
    assert client.get("/lists/2022").status_code == 200
    admin.post("/users/revoke", data={"csrf_token": csrf, "name": "将停用"})
    assert client.get("/lists/2022", follow_redirects=False).headers["location"] == "/login"


def test_the_users_api_sets_a_password(web):
    client, tokens, _ = web
    head = bearer(tokens["admin"])
    short = client.post("/api/v1/users", headers=head, json={"name": "短", "role": "analyst", "password": "short"})
    assert short.status_code == 422 and "至少" in short.json()["detail"]
    assert client.post("/api/v1/users", headers=head, json={"name": "短", "role": "analyst"}).status_code == 201  # not created before
    made = client.post("/api/v1/users", headers=head, json={"name": "接口建的", "role": "analyst", "password": "一个足够长的口令xyz"})
    assert made.status_code == 201 and "password" not in made.json()
    client.cookies.clear()
    token = csrf_of(client.get("/login").text)
    assert client.post("/login", data={"name": "接口建的", "password": "一个足够长的口令xyz", "csrf_token": token},
                       follow_redirects=False).status_code == 303
    log = client.get("/api/v1/audit?page_size=500", headers=head).json()["items"]
    created = [i for i in log if i["action"] == "create_user" and i["entity_key"] == "接口建的"]
    assert created and "口令" not in str(created)



def test_an_admin_resets_a_forgotten_password_and_the_user_is_signed_out_everywhere(web):
    """PUT /api/v1/users/{name}/password (admin; also `screening users password`): the old password
    no longer signs in, the new one does, the user's web sessions end, the token stays; audited
    without the password."""
    client, tokens, _ = web
    head = bearer(tokens["admin"])
    assert client.post("/api/v1/users", headers=head,
                       json={"name": "忘了密码", "role": "analyst", "password": "原来的口令abcdefg"}).status_code == 201
    signed_in = TestClient(client.app)
    token = csrf_of(signed_in.get("/login").text)
    assert signed_in.post("/login", data={"name": "忘了密码", "password": "原来的口令abcdefg", "csrf_token": token},
                          follow_redirects=False).status_code == 303
    assert signed_in.get("/screen/2022").status_code == 200
    for name, body, code in (("忘了密码", {"password": "short"}, 422), ("无此用户", {"password": "新的口令abcdefgh"}, 404),
                             ("忘了密码", {"password": "新的口令abcdefgh", "extra": 1}, 422)):
        assert client.put(f"/api/v1/users/{name}/password", headers=head, json=body).status_code == code, name
    assert signed_in.get("/screen/2022").status_code == 200  # nothing changed yet
    done = client.put("/api/v1/users/忘了密码/password", headers=head, json={"password": "新的口令abcdefgh"})
    assert done.status_code == 200 and done.json() == {"name": "忘了密码", "password_set": True}
    assert signed_in.get("/screen/2022", follow_redirects=False).headers["location"] == "/login"
    for secret, code in (("原来的口令abcdefg", 401), ("新的口令abcdefgh", 303)):
        token = csrf_of(signed_in.get("/login").text)
        assert signed_in.post("/login", data={"name": "忘了密码", "password": secret, "csrf_token": token},
                              follow_redirects=False).status_code == code, secret
    log = client.get("/api/v1/audit?page_size=500", headers=head).json()["items"]
    reset = [i for i in log if i["action"] == "reset_password" and i["entity_key"] == "忘了密码"]
    assert len(reset) == 1 and "口令" not in str(reset)

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d\x00\x00\x00\x00IEND\xaeB`\x82")


def test_evidence_files(web, tmp_path):
    client, tokens, firm = web
    town = bearer(tokens["township"])
    url = f"/api/v1/enterprises/{firm}/evidence?year=2022"
    made = client.post(url, headers=town, files={"file": ("现场.png", PNG, "image/jpeg")}, data={"note": "厂房已空置"})
    assert made.status_code == 201, made.text
    row = made.json()
    assert (row["media_type"], row["size_bytes"], row["original_name"]) == ("image/png", len(PNG), "现场.png")
    # refused by content, whatever the name or the declared type
    fake = client.post(url, headers=town, files={"file": ("photo.jpg", b"<html><script>alert(1)</script>", "image/jpeg")})
    assert fake.status_code == 415 and "HTML" in fake.json()["detail"]
    client.app.state.settings.evidence_max_bytes = 1024
    try:
        big = client.post(url, headers=town, files={"file": ("big.png", PNG + b"\x00" * 2000, "image/png")})
        assert big.status_code == 413
    finally:
        client.app.state.settings.evidence_max_bytes = 10 * 1024**2
    # another township's firm: 404 for the upload and for the file, like a missing one
    other = bearer(tokens["other_township"])
    assert client.post(url, headers=other, files={"file": ("x.png", PNG, "image/png")}).status_code == 404
    assert client.get(f"/api/v1/evidence/{row['evidence_id']}", headers=other).json() == \
        client.get("/api/v1/evidence/no-such-file", headers=other).json()
    served = client.get(f"/api/v1/evidence/{row['evidence_id']}", headers=bearer(tokens["analyst"]))
    assert served.status_code == 200 and served.content == PNG and served.headers["content-type"] == "image/png"
    record = client.get(f"/api/v1/enterprises/{firm}?year=2022", headers=town).json()
    assert [e["evidence_id"] for e in record["evidence"]] == [row["evidence_id"]]
    log = client.get("/api/v1/audit?page_size=500", headers=bearer(tokens["admin"])).json()["items"]
    assert any(i["action"] == "evidence" and i["after"]["sha256"] == row["sha256"] for i in log)
    stored = next((client.app.state.settings.db.parent / f"{client.app.state.settings.db.name}.evidence").iterdir())
    assert stored.read_bytes() == PNG and stored.stat().st_mode & 0o077 == 0
    assert stored.parent.stat().st_mode & 0o077 == 0


def test_the_projects_page_shows_the_apis_rows(web):
    client, tokens, _ = web
    sign_in(client, ANALYST)
    head = bearer(tokens["analyst"])
    everything = client.get("/api/v1/projects?page_size=500", headers=head).json()
    suggestions = {i["suggestion"].removesuffix("（仅供参考）") for i in everything["items"]}
    assert len(suggestions) > 1  # the filter below selects something different each time
    for query in ("", *(f"suggestion={s}" for s in sorted(suggestions))):
        html = client.get(f"/projects?{query}")
        api = client.get(f"/api/v1/projects?{query}&page_size=50", headers=head).json()
        assert html.status_code == 200, html.text
        assert re.search(r'<strong id="total">(\d+)</strong>', html.text).group(1) == str(api["total"]), query
        rows = re.findall(r'<tr data-project="([^"]+)">(.*?)</tr>', html.text, re.S)
        assert [p for p, _ in rows] == [i["project_id"] for i in api["items"]], query
        for (_, cells), item in zip(rows, api["items"]):
            assert item["suggestion"] in cells and "仅供参考" in item["suggestion"]
            assert item["reason"].replace("<", "&lt;").replace(">", "&gt;") in cells.replace("&#39;", "'")
    dash = client.get("/api/v1/dashboard/2022", headers=head).json()["key_energy_users"]
    assert f"重点用能单位 <strong>{dash['firms']}</strong> 家" in client.get("/projects").text
    bad = client.get("/projects?suggestion=全部受理")
    assert bad.status_code == 422 and "suggestion" in bad.text
    assert ">拟建项目</a>" in bad.text  # in the menu of admin and analyst
    sign_in(client, TOWN)
    assert ">拟建项目</a>" not in client.get("/lists/2022").text


def test_an_admin_backs_up_on_the_page(web):
    client, tokens, _ = web
    csrf = sign_in(client, ADMIN)
    db = client.app.state.settings.db
    backups = db.parent / f"{db.name}.backups"
    before = {p.name for p in backups.iterdir()} if backups.exists() else set()
    page = client.get("/backups")
    assert page.status_code == 200 and 'id="backup-form"' in page.text and ">备份</a>" in page.text
    refused = client.post("/backups", data={"csrf_token": csrf})
    assert refused.status_code == 422 and "确认备份" in refused.text
    assert client.post("/backups", data={"confirm": "1"}).status_code == 403  # no CSRF token: nothing written
    assert ({p.name for p in backups.iterdir()} if backups.exists() else set()) == before
    done = client.post("/backups", data={"csrf_token": csrf, "confirm": "1"})
    assert done.status_code == 200, done.text
    name = re.search(r'id="backup-name">([^<]+)<', done.text).group(1)
    assert (backups / name / "manifest.json").is_file()
    manifest = json.loads((backups / name / "manifest.json").read_text(encoding="utf-8"))
    shown = dict(re.findall(r'<tr><td class="mono">([^<]+)</td><td class="num">([\d,]+)</td></tr>', done.text))
    assert shown == {t: f"{e['rows']:,}" for t, e in manifest["tables"].items()}
    # the evidence and upload files it holds, counted; the run output folders, counted with their size
    data_files = sum(1 for name in manifest["files"] if not name.startswith("runs/"))
    runs = manifest["run_folders"]
    assert f'id="backup-files">证据文件与上传数据：{data_files:,} 个文件；运行输出目录 {runs["folders"]} 个（' in done.text
    created = dt.datetime.fromisoformat(manifest["created_at"]).astimezone(dt.timezone(dt.timedelta(hours=8)))
    assert f"{created:%Y-%m-%d %H:%M:%S}（北京时间）" in done.text
    # the run output folders can be left out (a province's run writes hundreds of MB): counted, and said
    light = client.post("/backups", data={"csrf_token": csrf, "confirm": "1", "no_run_files": "1"})
    assert light.status_code == 200, light.text
    name = re.search(r'id="backup-name">([^<]+)<', light.text).group(1)
    manifest = json.loads((backups / name / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["run_folders"]["included"] is False and "按要求未备份" in light.text
    age = client.get("/api/v1/health").json()["last_backup_age_hours"]
    page = client.get("/backups").text
    assert age is not None and "距最近一次备份" in page
    # written for the 经信局's staff: no API routes or field names on the page (it once said
    # “与 GET /api/v1/health 的 last_backup_age_hours 相同”, “与 POST /api/v1/backups 相同”)
    main = page[page.index("<main"):]
    assert "/api/" not in main and "last_backup_age_hours" not in main
    log = client.get("/api/v1/audit?page_size=500", headers=bearer(tokens["admin"])).json()["items"]
    assert any(i["action"] == "backup" and i["entity_key"] == name for i in log)


def test_an_admin_runs_a_screening_on_the_page(web):
    """Last: the new run becomes the year's list."""
    client, tokens, _ = web
    csrf = sign_in(client, ADMIN)
    refused = client.post("/runs", data={"csrf_token": csrf, "year": "2022"})
    assert refused.status_code == 422 and "确认运行筛选" in refused.text
    bad = client.post("/runs", data={"csrf_token": csrf, "year": "2022", "confirm": "1", "overrides": "无此参数=1"})
    assert bad.status_code == 422
    done = client.post("/runs", data={"csrf_token": csrf, "year": "2022", "confirm": "1"})
    assert done.status_code == 200 and "筛选完成" in done.text, done.text
    run_id = re.search(r"筛选完成：(\S+)（", done.text).group(1)
    assert client.get("/api/v1/lists/2022?page_size=1", headers=bearer(tokens["admin"])).json()["run_id"] == run_id
    assert "该年度清单" in client.get("/runs").text


@pytest.mark.parametrize(("url", "unknown"), [("/lists/2022?townsip=乐成街道", "townsip"),
                                            ("/lists/2022?page=1&foo=1", "foo"), ("/runs?x=1", "x"), ("/?a=b", "a")])
def test_a_page_refuses_a_query_parameter_it_does_not_take(web, url, unknown):
    """/lists/2022?townsip=… once showed every township, read as that township's list: a page,
    like the API, names the parameter it does not take (a Chinese error page, 422)."""
    client = web[0]
    sign_in(client, "admin")
    r = client.get(url, follow_redirects=False)
    assert r.status_code == 422 and "text/html" in r.headers["content-type"], r.text[:300]
    assert "此页面不接受查询参数" in r.text and unknown in r.text
    assert client.get(url.split("?")[0]).status_code == 200


@pytest.mark.parametrize(("url", "named"), [("/lists/2022?page=abc", "page"), ("/lists/abc", "year"),
                                            ("/audit?page=1.5", "page")])
def test_a_page_given_a_value_of_the_wrong_type_answers_the_chinese_error_page(web, url, named):
    """/lists/2022?page=abc showed the browser raw JSON ({"detail": …}) while ?foo=1 showed the error
    page: every refusal of a page is the page, with the menu and what was wrong; the API keeps JSON."""
    client, tokens, _ = web
    sign_in(client, "admin")
    r = client.get(url)
    assert r.status_code == 422 and "text/html" in r.headers["content-type"], r.text[:300]
    assert "网址或表单中的内容无效" in r.text and named in r.text and 'href="/account"' in r.text
    api = client.get("/api/v1/lists/2022?page=abc", headers=bearer(tokens["admin"]))
    assert api.status_code == 422 and api.json()["errors"][0]["field"] == "page"


def test_a_page_link_passed_on_in_a_chat_app_opens_without_the_apps_marks(web):
    """微信 adds ?from=singlemessage&isappinstalled=0 to a link passed on: the page answered 422.
    Such marks (and utm_*) are dropped by a redirect that keeps the page's own parameters; a
    parameter that is neither stays a 422."""
    client = web[0]
    sign_in(client, "admin")
    r = client.get("/lists/2022?township=乐成街道&from=singlemessage&isappinstalled=0&utm_source=x",
                   follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/lists/2022?township=%E4%B9%90%E6%88%90%E8%A1%97%E9%81%93"
    assert client.get("/runs?from=timeline", follow_redirects=False).headers["location"] == "/runs"
    assert client.get("/lists/2022?from=x&foo=1").status_code == 422
    assert client.get("/api/v1/health?from=singlemessage").status_code == 422  # the API keeps its rule


def test_no_link_on_a_year_page_leads_to_a_missing_page(web):
    """The 差别化措施 page linked to 1999 from 2000 and to 2101 from 2100 (404).  Every page that shows a
    year (list, finalization, sheet, workbench, dashboard, evaluations, 差别化措施 at both ends of its
    range, a firm's record) is followed link by link: no link with a year in it answers 404."""
    client, _, firm = web
    sign_in(client, ADMIN)
    pages = ["/lists/2022", "/lists/2022/finalization", "/lists/2022/sheet", "/workbench/2022", "/screen/2022",
             "/evaluations", "/measures/2000", "/measures/2022", "/measures/2100", f"/firms/{firm}?year=2022",
             client.get("/measures", follow_redirects=False).headers["location"]]
    missing = []
    for page in pages:
        answer = client.get(page)
        assert answer.status_code == 200, page
        for link in set(re.findall(r'href="(/[^"#]*)"', answer.text)):
            link = link.replace("&amp;", "&")
            if re.search(r"/\d{4}(/|\?|$)|year=\d{4}", link) and client.get(link, follow_redirects=False).status_code == 404:
                missing.append((page, link))
    assert not missing


class _Tables(HTMLParser):
    """Each table of a page: its last header row's texts and its first body row's (class, text) cells."""

    def __init__(self):
        super().__init__()
        self.tables: list[dict] = []
        self.row: list | None = None
        self.cell: list | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append({"head": [], "first": None})
        elif tag == "tr" and self.tables:
            self.row = []
        elif tag in ("th", "td") and self.row is not None:
            self.cell = [tag, dict(attrs).get("class") or "", ""]

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self.cell is not None:
            self.row.append(self.cell)
            self.cell = None
        elif tag == "tr" and self.row:
            table = self.tables[-1]
            if all(c[0] == "th" for c in self.row):
                table["head"] = [c[2].strip() for c in self.row]
            elif table["first"] is None:
                table["first"] = [(c[1], c[2].strip()) for c in self.row]
            self.row = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell[2] += data


#: words that name a measured quantity (not a count of firms): its column header says the unit
MEASURES = ("税收", "用地", "面积", "能耗", "能效", "标准煤")


def test_a_column_of_measured_numbers_names_its_unit(web):
    """The record's 亩均税收 and the projects page's 能效准入标准 were numbers without a unit;
    the list's 命中规则 was a bare count beside a header naming rules."""
    client, _, firm = web
    sign_in(client, ADMIN)
    bare = []
    for url in ("/lists/2022", f"/firms/{firm}?year=2022", "/projects", "/workbench/2022"):
        parser = _Tables()
        parser.feed(client.get(url).text)
        for table in parser.tables:
            for header, (kind, _) in zip(table["head"], table["first"] or []):
                if "num" in kind.split() and any(w in header for w in MEASURES) and "（" not in header:
                    bare.append((url, header))
    assert bare == []
    listed = client.get("/lists/2022").text
    assert "<th>命中规则（条）</th>" in listed


def test_the_targets_are_set_against_what_can_meet_them_on_the_screen_and_workbench(web):
    """The 大屏 said “用地（亩）：清单 2,185.70 / 目标 300.00”: the listed firms' whole land and energy set
    against the targets for land and energy to be freed, as if the year's target were met seven times
    over before a single plan.  As in the workbook's 汇总 (issue 14), the land and energy targets are
    set against what the plans expect to free and the completed plans freed; the listed firms' land and
    energy are shown apart as the scale that could be freed, and the firm target through its stages."""
    client, tokens, _ = web
    d = client.get("/api/v1/dashboard/2022", headers=bearer(tokens[ADMIN])).json()
    assert d["targets"]["land_mu"]["completed"] == 0 and d["targets"]["firms"]["completed"] == 0
    sign_in(client, ADMIN)
    for page in ("/screen/2022", "/workbench/2022"):
        html = client.get(page).text
        rows = dict(re.findall(r'<tr data-target="(\w+)">(.*?)</tr>', html, re.S))
        assert set(rows) == {"firms", "land_mu", "energy_tce"}, page
        for key, listed in (("land_mu", d["targets"]["land_mu"]["listed"]), ("energy_tce", d["targets"]["energy_tce"]["listed"])):
            shown = f"{listed:,.2f}"
            assert shown not in rows[key] and "方案预计腾出 0.00" in rows[key] and "已完成腾出 0.00" in rows[key], (page, rows[key])
            potential = re.search(r'id="targets-potential">(.*?)</p>', html, re.S).group(1)
            assert shown in potential and "潜在腾出规模" in potential and "不是目标完成量" in potential
        assert f"筛选清单 {d['listed']}" in rows["firms"] and "已完成整治 0" in rows["firms"], page


def test_the_runs_page_names_the_input_tables_as_people_know_them(web):
    """数据与筛选 listed a run's input files as “enterprises: f53114f98c48…”, “product_energy: …”:
    the program's table names.  Each is now named in Chinese (企业名录, 产品单耗 …, from the schema);
    the upload note keeps the file name to use beside its Chinese name."""
    from screening.schema import TABLES
    client, _, _ = web
    sign_in(client, ADMIN)
    html = client.get("/runs").text
    names = re.findall(r'(?:<td class="small">|<br>)([^<>：]+)：<span class="mono">', html)
    assert names and all(n.strip() in {t.zh for t in TABLES.values()} for n in names), names
    assert f"enterprises（{TABLES['enterprises'].zh}）" in html


def test_the_audit_page_reads_in_chinese_and_every_action_has_a_name():
    """审计 showed “admin · login · session 经信局”, “backup · database …”: the role, action and object as
    the program stores them.  They are shown in Chinese, and every action the code audits (each
    literal passed to api.db.audit, and import_run / import_warnings) has a Chinese name, so a new
    action without one fails here."""
    from pathlib import Path

    from api.web.templating import ACTIONS, ENTITIES, ENV, ROLES
    root = Path(__file__).resolve().parent.parent
    source = "\n".join(p.read_text(encoding="utf-8") for d in ("api", "screening") for p in (root / d).rglob("*.py"))
    actions = set(re.findall(r'\baudit\(\s*\w+,\s*\w+,\s*"(\w+)",\s*"(\w+)"', source))
    actions |= {(a, "plan") for a in re.findall(r'"(put_plan|complete_plan)"', source)}
    actions |= {("import_run", "run"), ("import_warnings", "warnings")}
    assert len(actions) > 20
    assert not [a for a, _ in actions if a not in ACTIONS] and not [e for _, e in actions if e not in ENTITIES]
    line = {"logged_at": dt.datetime(2022, 5, 7, 9, 0), "user_name": "经信局", "role": "admin", "action": "backup",
            "entity": "database", "entity_key": "screening-backup-1", "after": None}
    html = ENV.get_template("audit.html").render(data={"total": 1, "items": [line]}, page=1, pages=1,
                                                 user=None, title="审计记录", request=None, csrf_token="")
    row = re.search(r"<tbody><tr>(.*?)</tr>", html, re.S).group(1)
    assert f"<td>{ROLES['admin']}</td><td>{ACTIONS['backup']}</td><td>{ENTITIES['database']} screening-backup-1</td>" in row
