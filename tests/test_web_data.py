"""数据与筛选 (issue 13, item 2): uploading a year's files into the upload folder (beside the
database, never the data root) with the intake report, running a screening on them, and
downloading each run's outputs."""
from __future__ import annotations

import html
import os
import re
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

import xlsx_bombs
from api.config import Settings
from api.main import create_app
from api.routes.common import DATA_FOLDER_REFUSED
from screening.paths import sample_data_dir
from web_helpers import build_web_db, sign_in

pytestmark = pytest.mark.api

SUBSET = ("enterprises.csv", "stats.csv", "tax.csv", "land.xlsx")
FOLDER = re.compile(r"^upload-2022-\d{8}T\d{6}-[0-9a-f]{6}$")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("webdata")
    (root / "db").mkdir()
    db, _, _ = build_web_db(root / "db")
    (root / "data").mkdir()
    settings = Settings(db=db, data_root=root / "data", runs_dir=root / "runs")
    with TestClient(create_app(settings)) as client:
        yield client, db.parent / "uploads", root / "runs"


def _names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _files(*names: str) -> list[tuple[str, tuple[str, bytes]]]:
    return [("files", (name, (sample_data_dir() / name).read_bytes())) for name in names]


def _upload(client, csrf, files, year="2022"):
    return client.post("/runs/data", data={"csrf_token": csrf, "year": year}, files=files)


def test_an_admin_uploads_files_and_sees_the_intake_report(site):
    client, uploads, _ = site
    csrf = sign_in(client, "admin")
    page = _upload(client, csrf, _files(*SUBSET))
    assert page.status_code == 200, page.text
    assert "数据接收检查" in page.text
    folder = re.search(r"数据接收检查：(\S+)</h2>", page.text).group(1)
    assert FOLDER.match(folder)
    saved = uploads / folder
    assert sorted(p.name for p in saved.iterdir()) == sorted(SUBSET)
    assert {oct(p.stat().st_mode & 0o777) for p in saved.iterdir()} == {"0o600"}
    intake = page.text[page.text.index('id="intake-tables"'):page.text.index('id="intake-columns"')]
    for table in ("企业名录（enterprises）", "（stats）", "（tax）", "（land）", "stats.csv", "land.xlsx"):
        assert table in intake, table
    assert "缺少表" in page.text  # energy and the others were not uploaded: the report says so
    assert 'id="intake-coverage"' in page.text and "用此数据运行筛选" in page.text
    assert f'name="data" value="{folder}"' in page.text


@pytest.mark.parametrize(("name", "content", "words"), [
    ("企业.csv", b"a,b\n", "不是可接收的数据表文件"),
    ("enterprises.txt", b"a,b\n", "不是可接收的数据表文件"),
    ("projects.csv", b"a,b\n", "不是可接收的数据表文件"),
    ("../enterprises.csv", b"a,b\n", "含有路径"),
    ("sub/enterprises.csv", b"a,b\n", "含有路径"),
    ("..\\enterprises.csv", b"a,b\n", "含有路径"),
    ("evaluations.xlsx", xlsx_bombs.shared_string_bomb(), "未保存任何文件"),
    ("land.xlsx", xlsx_bombs.sparse_sheet(headers=("统一社会信用代码",)), "未保存任何文件"),
    ("stats.csv", b"\x00\x01binary", "未保存任何文件"),
])
def test_a_bad_file_is_refused_and_nothing_is_written(site, name, content, words):
    client, uploads, _ = site
    csrf = sign_in(client, "admin")
    before = _names(uploads)
    answer = _upload(client, csrf, [*_files("enterprises.csv"), ("files", (name, content))])
    assert answer.status_code in (413, 422), answer.text
    assert words in answer.text and 'role="alert"' in answer.text
    assert _names(uploads) == before


def test_two_files_for_one_table_or_no_year_are_refused(site):
    client, uploads, _ = site
    csrf = sign_in(client, "admin")
    before = _names(uploads)
    two = _upload(client, csrf, [*_files("enterprises.csv"), ("files", ("Enterprises.CSV", b"a\n"))])
    assert two.status_code == 422 and "有多个文件" in two.text
    no_year = _upload(client, csrf, _files("enterprises.csv"), year="")
    assert no_year.status_code == 422 and "清单年度" in no_year.text
    assert _names(uploads) == before


@pytest.mark.parametrize("role", ["township", "analyst", "dashboard"])
def test_only_the_admin_uploads(site, role):
    client, uploads, _ = site
    csrf = sign_in(client, role)
    before = _names(uploads)
    assert _upload(client, csrf, _files("enterprises.csv")).status_code == 403
    assert _names(uploads) == before


def test_a_run_on_uploaded_data_and_its_downloads(site):
    client, uploads, runs_dir = site
    csrf = sign_in(client, "admin")
    names = sorted(p.name for p in sample_data_dir().iterdir() if p.is_file() and p.suffix != ".md")
    page = _upload(client, csrf, _files(*names))
    assert page.status_code == 200 and "可以筛选" in page.text, page.text
    folder = re.search(r'name="data" value="([^"]+)"', page.text).group(1)
    done = client.post("/runs", data={"csrf_token": csrf, "year": "2022", "data": folder, "confirm": "1"})
    assert done.status_code == 200 and "筛选完成" in done.text, done.text
    run_id = re.search(r"筛选完成：(\S+)（", done.text).group(1)
    outputs = sorted(p.name for p in (runs_dir / run_id).iterdir())
    assert "list.csv" in outputs
    listing = client.get("/runs").text
    link = f"/api/v1/runs/{run_id}/files/list.csv"
    assert f'href="{link}"' in listing
    got = client.get(link)
    assert got.status_code == 200 and got.content == (runs_dir / run_id / "list.csv").read_bytes()
    workbook = next(n for n in outputs if n.startswith("整治企业清单_"))
    assert quote(workbook) in listing
    got = client.get(f"/api/v1/runs/{run_id}/files/{quote(workbook)}")
    assert got.status_code == 200
    assert f"filename*=UTF-8''{quote(workbook, safe='')}" in got.headers["content-disposition"]
    got.headers["content-disposition"].encode("latin-1")  # the header itself is plain ASCII
    for bad in ("..%2F..%2Fetc%2Fpasswd", "..", "%2E%2E", "no-such.csv", quote("../" + run_id + "/list.csv", safe="")):
        assert client.get(f"/api/v1/runs/{run_id}/files/{bad}").status_code == 404, bad
    assert client.get(f"/api/v1/runs/2022-20990101T000000-000000/files/list.csv").status_code == 404
    assert client.get(f"/api/v1/runs/..%2F{run_id}/files/list.csv").status_code in (404, 422)
    # the file sent is the one opened, never a link swapped in after the folder was listed
    import api.routes.runs as runs_route

    listed = runs_route.output_files
    secret = runs_dir.parent / "secret.txt"
    secret.write_text("not for download", encoding="utf-8")
    (runs_dir / run_id / "swapped.csv").symlink_to(secret)
    try:
        runs_route.output_files = lambda settings, run: listed(settings, run) + ["swapped.csv"]
        assert client.get(f"/api/v1/runs/{run_id}/files/swapped.csv").status_code == 404
        assert client.get(link).content == (runs_dir / run_id / "list.csv").read_bytes()
    finally:
        runs_route.output_files = listed
        (runs_dir / run_id / "swapped.csv").unlink()
    # a run folder that is a link (to another run's, or any, folder) is not served
    linked = "2022-20990101T000000-00beef"
    (runs_dir / linked).symlink_to(runs_dir / run_id, target_is_directory=True)
    try:
        assert client.get(f"/api/v1/runs/{linked}/files/list.csv").status_code == 404
    finally:
        (runs_dir / linked).unlink()
    for role in ("township", "dashboard"):
        sign_in(client, role)
        assert client.get(link).status_code == 403
    sign_in(client, "analyst")
    assert client.get(link).status_code == 200
    assert os.path.isdir(uploads / folder)


def test_a_file_over_the_cap_or_a_full_disk_leaves_nothing(site, monkeypatch):
    client, uploads, _ = site
    csrf = sign_in(client, "admin")
    before = _names(uploads)
    settings = client.app.state.settings
    cap = (sample_data_dir() / "enterprises.csv").stat().st_size + 10
    client.app.state.settings = settings.model_copy(update={"upload_max_bytes": cap})
    try:
        big = _upload(client, csrf, [*_files("enterprises.csv"), ("files", ("stats.csv", b"a,b\n" * cap))])
    finally:
        client.app.state.settings = settings
    assert big.status_code == 413 and "文件过大" in big.text and "stats.csv" in big.text

    def full(*_args):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr("api.routes.data.open_table", full)
    answer = _upload(client, csrf, _files("enterprises.csv"))
    assert answer.status_code == 503 and "未保存任何文件" in answer.text
    assert _names(uploads) == before


def test_an_upload_lands_beside_the_database_never_in_the_data_root_or_the_sample(site, tmp_path, monkeypatch):
    """Uploads were saved under the data root, by default the bundled sample_data/: in the checkout or
    the installed package (read-only there), and in Docker outside the /db volume, so lost with the
    container.  They go to the upload folder now: ``uploads`` beside the database (0700), or
    SCREENING_UPLOAD_DIR."""
    client, uploads, _ = site
    settings = client.app.state.settings
    assert uploads == settings.db.parent / "uploads"
    sample = sample_data_dir()
    sample_before = sorted(p.name for p in sample.iterdir())
    csrf = sign_in(client, "admin")
    client.app.state.settings = settings.model_copy(update={"data_root": sample})  # the default data root
    try:
        page = _upload(client, csrf, _files("enterprises.csv"))
    finally:
        client.app.state.settings = settings
    assert page.status_code == 200, page.text
    folder = re.search(r'name="data" value="([^"]+)"', page.text).group(1)
    assert (uploads / folder / "enterprises.csv").is_file()
    assert oct(uploads.stat().st_mode & 0o777) == "0o700"
    assert sorted(p.name for p in sample.iterdir()) == sample_before
    assert not any(p.name.startswith("upload-") for p in settings.data_root.iterdir())
    assert "已保存到上传目录" in page.text
    monkeypatch.setenv("SCREENING_UPLOAD_DIR", str(tmp_path / "elsewhere"))
    assert Settings(db=settings.db).uploads() == tmp_path / "elsewhere"
    assert Settings(db=settings.db).folders().upload_dir == tmp_path / "elsewhere"  # runs prune looks there


def test_a_data_folder_is_one_in_the_data_root_or_an_upload_and_nothing_else(site, tmp_path):
    """What a request may name as its data (runs, evaluations, 措施名单, projects): a folder in the data
    root (an upload made by an earlier version there too), or an upload folder in the upload folder;
    a way out of either is 422 with one message."""
    from types import SimpleNamespace

    from fastapi import HTTPException

    from api.routes.common import data_folder, data_name

    data_root, uploads = tmp_path / "data", tmp_path / "db" / "uploads"
    new, old = "upload-2022-20260101T080000-0a1b2c", "upload-2021-20250101T080000-0d0e0f"
    for folder in (uploads / new, uploads / "县里的资料", data_root / old, data_root / "m", tmp_path / "secret"):
        folder.mkdir(parents=True)
    (uploads / "upload-2022-20260101T080000-ffffff").symlink_to(tmp_path / "secret", target_is_directory=True)
    settings = Settings(db=tmp_path / "db" / "s.duckdb", data_root=data_root)
    request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(settings=settings)))
    for name, where in ((new, uploads / new), (str(uploads / new), uploads / new), ("m", data_root / "m"),
                        (old, data_root / old), (str(data_root / old), data_root / old), (None, data_root)):
        assert data_folder(request, name) == (data_root, where), name
        assert data_folder(request, data_name(settings, where))[1] == where  # a stored record finds it again
    # a link named like an upload leads nowhere outside: it is taken as (a missing) folder of the data root
    assert data_folder(request, "upload-2022-20260101T080000-ffffff")[1].parent == data_root
    # (a relative name is taken from the data root: ``<upload>/..`` is the data root itself)
    for name in ("..", "../db/uploads/" + new, f"{new}/../..", f"{new}/../../db/uploads/县里的资料", str(uploads),
                 str(uploads / "县里的资料"), str(tmp_path / "secret"), str(uploads / new / ".." / ".." / ".."), "/etc"):
        with pytest.raises(HTTPException) as refused:
            data_folder(request, name)
        assert refused.value.status_code == 422 and refused.value.detail == DATA_FOLDER_REFUSED, name


def test_a_way_out_of_both_folders_is_refused_when_running(site):
    client, uploads, _ = site
    csrf = sign_in(client, "admin")
    for name in ("../db", "/etc", str(uploads), str(uploads / ".." / "runs")):
        answer = client.post("/runs", data={"csrf_token": csrf, "year": "2022", "data": name, "confirm": "1"})
        assert answer.status_code == 422 and html.escape(DATA_FOLDER_REFUSED) in answer.text, name


def test_a_fifo_swapped_into_a_run_folder_is_not_opened_for_ever(tmp_path):
    """The download route opens the file it checked (no link followed); a named pipe swapped in
    after the listing is refused at once, not waited on until a writer comes (a worker of the
    service would hang)."""
    import os
    import threading

    import api.routes.runs as runs_route

    os.mkfifo(tmp_path / "list.csv")
    outcome: list = []
    thread = threading.Thread(target=lambda: outcome.append(runs_route._open_run_file(tmp_path, "list.csv")),
                              daemon=True)
    thread.start()
    thread.join(5)
    if thread.is_alive():  # let it go, then fail
        os.close(os.open(tmp_path / "list.csv", os.O_WRONLY | os.O_NONBLOCK))
        thread.join(5)
        pytest.fail("opening a named pipe waited for a writer")
    assert outcome == [None]
