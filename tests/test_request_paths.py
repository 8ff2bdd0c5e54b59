"""Paths that come with a request (issue 10, findings 5 and 8): a method file named by a
``--set`` parameter resolves only to shipped methods or files inside the rule set or the data
root, with one answer for every refusal; the data directory is checked (NUL, length, ``..``)
before any file-system call, so nothing answers 500 or tells what the host holds."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.auth import add_user
from api.config import Settings
from api.main import create_app
from api.routes.common import DATA_FOLDER_REFUSED
from api_helpers import bearer
from screening.errors import RuleSetError
from screening.evaluation_method import load_method, methods_dir, resolve_method_path
from screening.paths import confined
from screening.store import connect

pytestmark = pytest.mark.api

COMPUTED = "below_scale_consecutive_c_grade.grade_source=computed"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("paths")
    (tmp / "data").mkdir()
    db = tmp / "p.duckdb"
    con = connect(db)
    admin = add_user(con, "局管理员", "admin", None)
    con.close()
    settings = Settings(db=db, runs_dir=tmp / "runs", data_root=tmp / "data")
    with TestClient(create_app(settings)) as client:
        yield client, bearer(admin), tmp


def _run(client, headers, **body):
    return client.post("/api/v1/runs", headers=headers, json={"year": 2022, **body})


def test_every_refused_method_path_gets_the_same_answer(service):
    client, headers, tmp = service
    (tmp / "outside.yaml").write_text("id: outside\n", encoding="utf-8")  # a file, but not in the roots
    probes = ["/etc/passwd", "/etc/hostname", "/nonexistent/x.yaml", "/etc", "/etc/", "../../../../etc/passwd",
              "../outside.yaml", str(tmp / "outside.yaml"), "data/../../outside.yaml", "no-such-method",
              "a\x00b.yaml", "x" * 5000 + ".yaml"]
    answers = {probe: _run(client, headers, set=[COMPUTED, f"below_scale_consecutive_c_grade.grade_method={probe}"])
               for probe in probes}
    assert {a.status_code for a in answers.values()} == {422}, {p: a.text for p, a in answers.items()}
    details = {a.json()["detail"] for a in answers.values()}
    assert len(details) == 1, details
    assert "passwd" not in details.pop()


def test_a_shipped_method_name_is_still_accepted(service):
    client, headers, _ = service
    answer = _run(client, headers, set=[COMPUTED, "below_scale_consecutive_c_grade.grade_method=huangyan-2022"])
    assert answer.status_code == 422
    assert "评价方法无效" not in answer.json()["detail"]  # it got as far as the (empty) data root


@pytest.mark.parametrize("data", ["\x00", "a\x00b", "../", "../../etc", "/etc", "x" * 150 + "\x00", "\n"])
def test_a_data_directory_outside_the_root_or_with_a_nul_is_422(service, data):
    client, headers, _ = service
    answer = _run(client, headers, data=data)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"] == DATA_FOLDER_REFUSED


def test_method_files_resolve_inside_the_given_roots_only(tmp_path):
    inside = tmp_path / "root"
    inside.mkdir()
    shutil.copy(methods_dir() / "huangyan-2022.yaml", inside / "huangyan-2022.yaml")
    (inside / "link.yaml").symlink_to("/etc/passwd")
    assert load_method("huangyan-2022.yaml", within=[inside]).id == "huangyan-2022"
    assert resolve_method_path(str(inside / "huangyan-2022.yaml"), within=[inside]) == inside / "huangyan-2022.yaml"
    assert resolve_method_path("yueqing-default", within=[inside]) == methods_dir() / "yueqing-default.yaml"
    for refused in ("link.yaml", "/etc/passwd", "../root/../x.yaml", str(methods_dir() / "huangyan-2022.yaml")):
        with pytest.raises(RuleSetError, match="评价方法无效"):
            resolve_method_path(refused, within=[inside])


def test_the_command_line_may_still_name_any_local_method_file(tmp_path):
    shutil.copy(methods_dir() / "huangyan-2022.yaml", tmp_path / "huangyan-2022.yaml")
    assert load_method(str(tmp_path / "huangyan-2022.yaml")).id == "huangyan-2022"


@pytest.mark.parametrize("given", ["", " ", "\x00", "a\x00", "a\nb", "../x", "/etc", "x" * 2000, "a/../../b"])
def test_confined_refuses_without_touching_the_file_system(tmp_path, given):
    assert confined(given, [tmp_path]) is None


def test_confined_keeps_paths_inside(tmp_path):
    assert confined("a/b", [tmp_path]) == tmp_path.resolve() / "a" / "b"
    assert confined(".", [tmp_path]) == tmp_path.resolve()
    assert confined(str(tmp_path / "c"), [tmp_path / "other", tmp_path]) == tmp_path.resolve() / "c"
