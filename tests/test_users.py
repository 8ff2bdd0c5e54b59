"""User names and townships (issue 10, finding 7): one check for the API and `screening users add`.

A name is stripped, not blank, without ``/``, ``\\`` or control characters and bounded, so every
user can be revoked by name; a township user's township is one a stored run knows, or the
admin confirms it is new (``柳市`` is refused with a hint: ``柳市镇``)."""
from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.auth import add_user
from api.config import Settings
from api.main import create_app
from api_helpers import bearer
from cli_helpers import cli
from screening import store

pytestmark = pytest.mark.api

KNOWN = ("柳市镇", "乐成街道", "北白象镇")
BAD_NAMES = ["a/b", "  ", "", "a\\b", "a\x00b", "a\tb", "a\nb", "a\u200bb", "x" * 65, "/"]


def _registry(db: Path) -> str:
    """A database whose stored run knows three townships, with an admin; returns its token."""
    con = store.connect(db)
    try:
        store._create(con, "main", "run_enterprises")
        for i, township in enumerate(KNOWN):
            con.execute("INSERT INTO run_enterprises (run_id, uscc, township) VALUES ('2022-x', ?, ?)",
                        [f"U{i}", township])
        return add_user(con, "局管理员", "admin", None)
    finally:
        con.close()


@pytest.fixture()
def service(tmp_path):
    db = tmp_path / "u.duckdb"
    admin = _registry(db)
    with TestClient(create_app(Settings(db=db, runs_dir=tmp_path / "runs"))) as client:
        yield client, bearer(admin)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_unusable_names_are_422(service, name):
    client, admin = service
    answer = client.post("/api/v1/users", headers=admin, json={"name": name, "role": "analyst"})
    assert answer.status_code == 422, answer.text
    assert "用户名" in answer.json()["detail"] or "请求内容无效" in answer.json()["detail"]


def test_names_are_stored_stripped_and_can_be_revoked(service):
    client, admin = service
    created = client.post("/api/v1/users", headers=admin, json={"name": "  分析员 ", "role": "analyst"})
    assert created.status_code == 201 and created.json()["name"] == "分析员"
    token = created.json()["token"]
    assert client.get("/api/v1/audit", headers=bearer(token)).status_code == 403  # a working analyst token
    assert client.delete("/api/v1/users/分析员", headers=admin).status_code == 200
    assert client.get("/api/v1/audit", headers=bearer(token)).status_code == 401


def test_an_unknown_township_is_422_with_near_matches(service):
    client, admin = service
    answer = client.post("/api/v1/users", headers=admin, json={"name": "柳市", "role": "township", "township": "柳市"})
    assert answer.status_code == 422
    assert "柳市镇" in answer.json()["detail"] and "confirm_new_township" in answer.json()["detail"]
    known = client.post("/api/v1/users", headers=admin, json={"name": "柳市", "role": "township", "township": "柳市镇"})
    assert known.status_code == 201 and known.json()["township"] == "柳市镇"


def test_a_new_township_needs_the_admins_confirmation(service):
    client, admin = service
    body = {"name": "新区", "role": "township", "township": "经济开发区"}
    assert client.post("/api/v1/users", headers=admin, json=body).status_code == 422
    confirmed = client.post("/api/v1/users", headers=admin, json={**body, "confirm_new_township": True})
    assert confirmed.status_code == 201 and confirmed.json()["township"] == "经济开发区"


def test_the_command_line_applies_the_same_checks(tmp_path):
    db = tmp_path / "u.duckdb"
    _registry(db)
    slash = cli("users", "add", "--db", db, "--name", "a/b", "--role", "analyst", cwd=tmp_path)
    assert slash.returncode == 2 and "不能包含 /" in slash.stderr and "Traceback" not in slash.stderr
    blank = cli("users", "add", "--db", db, "--name", "  ", "--role", "analyst", cwd=tmp_path)
    assert blank.returncode == 2 and "用户名不能为空" in blank.stderr
    near = cli("users", "add", "--db", db, "--name", "柳市", "--role", "township", "--township", "柳市", cwd=tmp_path)
    assert near.returncode == 2 and "柳市镇" in near.stderr and "--new-township" in near.stderr
    new = cli("users", "add", "--db", db, "--name", "柳市", "--role", "township", "--township", "柳市",
              "--new-township", cwd=tmp_path)
    assert new.returncode == 0, new.stderr


def _named_before_the_check(client, name: str) -> None:
    """A user stored by a version that did not yet check names (straight into the table)."""
    con = client.app.state.con.cursor()
    try:
        con.execute("INSERT INTO users VALUES ('legacy', ?, 'analyst', NULL, 'h', now(), NULL)", [name])
    finally:
        con.close()

def test_a_user_named_before_the_check_can_still_be_revoked(service):
    """A database from before the check may hold ``a/b``: DELETE /users/a%2Fb reaches it."""
    client, admin = service
    _named_before_the_check(client, "a/b")
    assert client.delete("/api/v1/users/a%2Fb", headers=admin).status_code == 200
    assert client.delete("/api/v1/users/a%2Fb", headers=admin).status_code == 404


def test_the_command_line_resets_a_forgotten_password(tmp_path):
    """`screening users password`: a new password (typed, or generated and shown once), checked as
    at creation; the old one stops working; one audit line by 本机命令行, in the same transaction."""
    from api.auth import check_password

    db = tmp_path / "u.duckdb"
    made = cli("users", "add", "--db", db, "--name", "局长", "--role", "admin", "--generate-password", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    old = made.stderr.split("（只显示这一次）：")[1].split()[0]
    neither = cli("users", "password", "--db", db, "--name", "局长", cwd=tmp_path)
    assert neither.returncode == 2 and "--generate-password" in neither.stderr
    short = cli("users", "password", "--db", db, "--name", "局长", "--password", cwd=tmp_path, input="short\n")
    assert short.returncode == 2 and "至少" in short.stderr and "Traceback" not in short.stderr
    nobody = cli("users", "password", "--db", db, "--name", "无此人", "--generate-password", cwd=tmp_path)
    assert nobody.returncode == 2 and "没有名为 无此人 的有效用户" in nobody.stderr
    typed = cli("users", "password", "--db", db, "--name", "局长", "--password", cwd=tmp_path, input="新的口令abcdefgh\n")
    assert typed.returncode == 0 and "已重设用户 局长" in typed.stdout, typed.stderr
    con = store.connect(db)
    try:
        assert check_password(con, "局长", old) is None and check_password(con, "局长", "新的口令abcdefgh") is not None
        log = con.execute("SELECT user_name, action, entity_key, after FROM audit_log WHERE action = 'reset_password'").fetchall()
    finally:
        con.close()
    assert log == [("本机命令行", "reset_password", "局长", None)]


def test_a_user_named_before_the_check_can_have_a_password_reset(service):
    """As DELETE: PUT /users/a%2Fb/password reaches ``a/b`` (it answered 405, and the command
    handing the reset over to the service said “该地址不支持此请求方法”, exit 1)."""
    client, admin = service
    _named_before_the_check(client, "a/b")
    done = client.put("/api/v1/users/a%2Fb/password", headers=admin, json={"password": "新的口令abcdefgh"})
    assert done.status_code == 200 and done.json()["name"] == "a/b", done.text
    missing = client.put("/api/v1/users/a%2Fc/password", headers=admin, json={"password": "新的口令abcdefgh"})
    assert missing.status_code == 404 and "a/c" in missing.json()["detail"]


def test_an_admin_does_not_reset_their_own_password(service):
    """Resetting asks for no current password: an admin's own is changed on 修改密码 (which asks
    for it), else a session left open or a token replaces it unknown; another admin, or
    `screening users password` on the server, resets it when forgotten."""
    from api.auth import check_password

    client, admin = service
    con = client.app.state.con.cursor()
    try:
        from api.auth import set_password
        set_password(con, "局管理员", "原来的口令abcdefg")
    finally:
        con.close()
    own = client.put("/api/v1/users/局管理员/password", headers=admin, json={"password": "新的口令abcdefgh"})
    assert own.status_code == 403 and "修改密码" in own.json()["detail"], own.text
    other = client.post("/api/v1/users", headers=admin, json={"name": "另一位", "role": "admin"}).json()["token"]
    assert client.put("/api/v1/users/局管理员/password", headers=bearer(other),
                      json={"password": "新的口令abcdefgh"}).status_code == 200
    con = client.app.state.con.cursor()
    try:
        assert check_password(con, "局管理员", "新的口令abcdefgh") is not None
        log = con.execute("SELECT user_name FROM audit_log WHERE action = 'reset_password'").fetchall()
    finally:
        con.close()
    assert log == [("另一位",)]  # the refused one left no line


@pytest.mark.parametrize("write", ["create", "password", "revoke"])
def test_a_user_change_is_not_kept_without_its_audit_line(service, monkeypatch, write):
    """A user created, a password reset or a token revoked, and the audit line failing: nothing
    is kept (the change was committed on its own, so it stood without its line)."""
    from api.auth import check_password, find_user
    from api.routes import users

    client, admin = service
    made = client.post("/api/v1/users", headers=admin, json={"name": "经办人", "role": "analyst",
                                                              "password": "原来的口令abcdefg"}).json()["token"]

    def fails(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(users, "audit", fails)
    failing = TestClient(client.app, raise_server_exceptions=False)
    answer = {"create": lambda: failing.post("/api/v1/users", headers=admin, json={"name": "新人", "role": "analyst"}),
              "password": lambda: failing.put("/api/v1/users/经办人/password", headers=admin,
                                              json={"password": "新的口令abcdefgh"}),
              "revoke": lambda: failing.delete("/api/v1/users/经办人", headers=admin)}[write]()
    assert answer.status_code >= 500
    con = client.app.state.con.cursor()
    try:
        assert not con.execute("SELECT 1 FROM users WHERE name = '新人'").fetchall()
        assert check_password(con, "经办人", "原来的口令abcdefg") is not None
        assert find_user(con, made) is not None
    finally:
        con.close()


@pytest.mark.parametrize("command", [("password", "--generate-password"), ("revoke",)])
def test_changing_a_user_of_a_missing_database_makes_no_file(tmp_path, command):
    """``users password/revoke --db`` naming no file (a typo): one line, exit 2; it made an empty
    database there and said 没有名为 … 的有效用户."""
    db = tmp_path / "typo.duckdb"
    proc = cli("users", command[0], "--db", db, "--name", "局长", *command[1:], cwd=tmp_path)
    assert proc.returncode == 2 and "找不到数据库文件" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not db.exists() and not list(tmp_path.iterdir())


def test_users_added_and_revoked_on_the_file_are_audited(tmp_path):
    """With no service holding the file, `users add` and `users revoke` write the same audit lines
    as the service does (operator 本机命令行), each with its change in one transaction."""
    db = tmp_path / "u.duckdb"
    assert cli("users", "add", "--db", db, "--name", "新来的", "--role", "analyst", cwd=tmp_path).returncode == 0
    assert cli("users", "revoke", "--db", db, "--name", "新来的", cwd=tmp_path).returncode == 0
    con = store.connect(db)
    try:
        log = con.execute("SELECT user_name, action, entity_key, CAST(after AS VARCHAR) FROM audit_log ORDER BY seq").fetchall()
    finally:
        con.close()
    assert [row[:3] for row in log] == [("本机命令行", "create_user", "新来的"), ("本机命令行", "revoke_user", "新来的")]
    assert '"role": "analyst"' in log[0][3] and '"revoked": true' in log[1][3]


def test_a_township_user_can_be_added_to_a_fresh_database(tmp_path):
    """Contract: ``screening users add --db FILE --name NAME --role township --township T`` creates the
    user and prints its token on the last line — also before the first run, when no stored run
    names any township to check T against (once one does, an unknown T needs --new-township)."""
    db = tmp_path / "fresh.duckdb"
    proc = cli("users", "add", "--db", db, "--name", "柳市", "--role", "township", "--township", "柳市镇",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    token = proc.stdout.strip().splitlines()[-1]
    assert len(token) >= 32 and " " not in token
    with TestClient(create_app(Settings(db=db, runs_dir=tmp_path / "runs"))) as client:
        answer = client.get("/api/v1/lists/2022", headers=bearer(token))
    assert answer.status_code == 404  # a valid token (not 401): no screening of 2022 yet
