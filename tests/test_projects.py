"""拟建项目节能审查 (screening projects) and key energy users: surfaces and the key-user SQL.

The review's boundaries are golden cases (tests/rules/yueqing-2022/test_projects.yaml)."""
from __future__ import annotations

import sys
from pathlib import Path

import polars as pl
import pytest
from openpyxl import load_workbook

sys.path.insert(0, str(Path(__file__).parent))

from cli_helpers import cli  # noqa: E402

from screening import lint  # noqa: E402
from screening.paths import default_ruleset  # noqa: E402
from screening.projects import OUTPUT_COLUMNS, key_energy_users, review  # noqa: E402
from screening.ruleset import load_ruleset  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
SAMPLE_PROJECTS = SAMPLE / "projects"
CONTRACT_COLUMNS = ["project_id", "two_high", "intensity", "standard", "intensity_status", "authority",
                    "suggestion", "reason"]


def run_cli(*args):
    return cli(*args, cwd=Path(__file__).resolve().parents[1])


def _write(folder: Path, text: str, name: str = "projects.csv", encoding: str = "utf-8") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding=encoding)
    return folder


# ---------------------------------------------------------------- command line

def test_projects_command_writes_contract_files(tmp_path):
    out = tmp_path / "out"
    res = run_cli("projects", "--data", SAMPLE_PROJECTS, "--out", out)
    assert res.returncode == 0, res.stderr
    raw = (out / "projects.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM for Excel/WPS
    csv = pl.read_csv(out / "projects.csv", infer_schema=False)
    assert [c for c in csv.columns if c in CONTRACT_COLUMNS] == CONTRACT_COLUMNS
    assert list(csv.columns) == list(OUTPUT_COLUMNS)
    assert set(csv["two_high"]) <= {"true", "false"}
    assert set(csv["authority"]) <= {"below_review", "county", "upper"}
    assert set(csv["intensity_status"]) <= {"hit", "pass", "insufficient_data"}
    assert all(s.endswith("（仅供参考）") for s in csv["suggestion"])
    parquet = pl.read_parquet(out / "projects.parquet")
    assert parquet.height == csv.height and parquet.schema["two_high"] == pl.Boolean
    wb = load_workbook(out / "projects.xlsx", read_only=True)
    assert wb.sheetnames == ["拟建项目审查", "规则与依据", "拒收记录"]
    header = next(wb["拟建项目审查"].iter_rows(max_row=1, values_only=True))
    assert header[0] == "项目代码" and "处理建议（仅供参考）" in header
    assert "拟建项目" in res.stdout and "已写入" in res.stdout


def test_projects_command_on_the_bundled_data_directory_finds_the_register(tmp_path):
    """The contract's input directory holds the projects table; the bundled sample keeps it in
    sample_data/projects/ (so that ``screening run`` never sees it): ``--data sample_data`` must find
    it there, as the API's data root does, and review the same projects."""
    res = run_cli("projects", "--data", SAMPLE, "--out", tmp_path / "whole")
    assert res.returncode == 0, res.stderr
    res = run_cli("projects", "--data", SAMPLE_PROJECTS, "--out", tmp_path / "folder")
    assert res.returncode == 0, res.stderr
    for name in ("projects.csv", "rejects.csv"):
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "folder" / name).read_bytes(), name
    assert review(SAMPLE).results.equals(review(SAMPLE_PROJECTS).results)
    # a register in the directory itself wins over the folder
    here = _write(tmp_path / "d", "项目代码,项目名称,乡镇街道,行业代码,年综合能耗,年工业增加值\nP1,甲,柳市镇,3823,10,100\n")
    _write(here / "projects", "项目代码,项目名称,乡镇街道,行业代码,年综合能耗,年工业增加值\nP2,乙,柳市镇,3823,10,100\n")
    assert review(here).results["project_id"].to_list() == ["P1"]


def test_sample_projects_cover_every_outcome():
    result = review(SAMPLE_PROJECTS)
    r = result.results
    assert r.height >= 25
    assert set(r["authority"]) == {"below_review", "county", "upper"}
    assert set(r["intensity_status"]) == {"hit", "pass", "insufficient_data"}
    assert {s.removesuffix("（仅供参考）") for s in r["suggestion"]} == {"不予受理", "受理并开展节能审查", "报上级审查", "登记备案"}
    assert result.rejects.height >= 1  # the sample carries a bad row on purpose, rejected with a reason


def test_projects_command_bad_input_is_one_line_exit_2(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = run_cli("projects", "--data", str(empty), "--out", str(tmp_path / "o1"))
    assert res.returncode == 2 and "缺少表 projects（拟建项目）" in res.stderr and "Traceback" not in res.stderr
    assert "projects.xlsm" in res.stderr  # every extension the contract reads is named
    data = _write(tmp_path / "d", "项目代码,项目名称,乡镇街道,年综合能耗,年工业增加值\nP1,甲,柳市镇,10,100\n")
    res = run_cli("projects", "--data", str(data), "--out", str(tmp_path / "o2"))
    assert res.returncode == 2 and "行业代码" in res.stderr and "Traceback" not in res.stderr
    good = _write(tmp_path / "g", "项目代码,项目名称,乡镇街道,行业代码,年综合能耗,年工业增加值\nP1,甲,柳市镇,3823,10,100\n")
    for bad in ("projects.nope=1", "projects.standard_wenzhou=abc", "above_scale_low_tax_per_mu.ratio=0.5"):
        res = run_cli("projects", "--data", str(good), "--out", str(tmp_path / "o3"), "--set", bad)
        assert res.returncode == 2 and "--set" in res.stderr, (bad, res.stderr)
    assert not (tmp_path / "o3").exists()  # a failed command leaves no empty OUT behind


def test_projects_read_like_every_table_chinese_headers_units_gbk(tmp_path):
    # a GBK export, headers with units: 万吨标准煤 → tce, 亿元 → 万元
    text = ("投资项目代码,项目名称,建设地点,国民经济行业代码,年综合能源消费量（万吨标准煤）,达产年工业增加值（亿元）\n"
            "2022-330382-26-01,化工项目,乐清经济开发区,2614,0.3,0.5\n")
    data = _write(tmp_path / "d", text, encoding="gbk")
    result = review(data)
    row = result.results.row(0, named=True)
    assert row["energy_tce"] == pytest.approx(3000) and row["value_added"] == pytest.approx(5000)
    assert row["intensity"] == pytest.approx(0.6) and row["intensity_status"] == "hit" and row["two_high"]
    assert row["authority"] == "county"


def test_csv_is_neutralised(tmp_path):
    data = _write(tmp_path / "d", "项目代码,项目名称,乡镇街道,行业代码,年综合能耗,年工业增加值\n"
                                  "P1,=HYPERLINK(\"x\"),柳市镇,3823,10,100\n")
    out = tmp_path / "out"
    assert run_cli("projects", "--data", str(data), "--out", str(out)).returncode == 0
    csv = pl.read_csv(out / "projects.csv", infer_schema=False)
    assert not csv["name"][0].startswith("=")


def test_screening_run_never_reads_projects(tmp_path):
    """A broken projects file in a run's data folder changes nothing: only `screening projects` reads it."""
    from screening.ingest import read_dir

    data = tmp_path / "d"
    data.mkdir()
    for p in SAMPLE.iterdir():
        if p.is_file() and not p.name.startswith("projects"):
            (data / p.name).write_bytes(p.read_bytes())
    (data / "projects.csv").write_text("not,a,projects,table\n", encoding="utf-8")
    assert "projects" not in read_dir(data, {"enterprises"})


# ---------------------------------------------------------------- lint

def test_lint_checks_family_sql_for_numbers(monkeypatch):
    rs = load_ruleset(default_ruleset())
    assert lint.lint_ruleset(rs) == []
    real = lint.sql_text
    monkeypatch.setattr(lint, "sql_text", lambda rel: real(rel).replace("$standard_wenzhou", "0.49")
                        if rel == "rules/projects.sql" else real(rel))
    problems = lint.lint_ruleset(rs)
    assert any("projects.sql" in p and "0.49" in p for p in problems)
    assert any("standard_wenzhou" in p for p in problems)  # the parameter is now unused


def test_lint_checks_project_message_templates():
    rs = load_ruleset(default_ruleset())
    rs.families["projects"].messages["hit"] = "强度{intensty:.4f}"  # a typo in a field name
    assert any("projects.messages.hit" in p and "intensty" in p for p in lint.lint_ruleset(rs))


# ---------------------------------------------------------------- key energy users

def _energy(rows):
    return pl.DataFrame(rows, schema={"uscc": pl.String, "year": pl.Int32, "energy_tce": pl.Float64}, orient="row")


def _stats(rows):
    return pl.DataFrame(rows, schema={"uscc": pl.String, "year": pl.Int32, "value_added": pl.Float64}, orient="row")


def test_key_energy_users_threshold_is_inclusive_and_trend_is_year_on_year():
    # threshold 5000 tce (及以上 includes 5000).
    # A: 2020 5000 / 10000 = 0.5; 2021 6000 / 10000 = 0.6 → rising.  B: 4999.99 → not a key user.
    # C: 2020 8000 / 10000 = 0.8; 2021 7000 / 10000 = 0.7 → falling.  D: 2021 6000, no stats → intensity unknown.
    # E: 2019 6000/10000 = 0.6; 2021 9000/10000 = 0.9: 2020 missing → no previous year, not “rising”.
    energy = _energy([("A", 2020, 5000), ("A", 2021, 6000), ("B", 2021, 4999.99), ("C", 2020, 8000),
                      ("C", 2021, 7000), ("D", 2021, 6000), ("E", 2019, 6000), ("E", 2021, 9000)])
    stats = _stats([("A", 2020, 10000), ("A", 2021, 10000), ("B", 2021, 10000), ("C", 2020, 10000),
                    ("C", 2021, 10000), ("E", 2019, 10000), ("E", 2021, 10000)])
    users = key_energy_users(energy, stats)
    got = {(r["uscc"], r["year"]): r for r in users.iter_rows(named=True)}
    assert sorted(got) == [("A", 2020), ("A", 2021), ("C", 2020), ("C", 2021), ("D", 2021), ("E", 2019), ("E", 2021)]
    a = got[("A", 2021)]
    assert a["intensity"] == pytest.approx(0.6) and a["intensity_prev"] == pytest.approx(0.5) and a["rising"] is True
    assert "由0.5000升至0.6000吨标准煤/万元" in a["note"] and "重点用能单位节能管理办法" in a["note"]
    assert got[("A", 2020)]["rising"] is None  # no earlier year
    assert got[("C", 2021)]["rising"] is False and "升至" not in got[("C", 2021)]["note"]
    assert got[("D", 2021)]["intensity"] is None and got[("D", 2021)]["rising"] is None
    assert got[("E", 2021)]["intensity_prev"] is None and got[("E", 2021)]["rising"] is None
    assert "2021年综合能耗6000.00吨标准煤，达到重点用能单位门槛5000吨标准煤" in a["note"]


def test_key_energy_users_threshold_parameter():
    energy = _energy([("A", 2021, 1000), ("B", 2021, 999.99)])
    users = key_energy_users(energy, _stats([]), overrides=["key_energy_users.threshold_tce=1000"])
    assert users["uscc"].to_list() == ["A"]


# ---------------------------------------------------------------- GET /api/v1/projects

@pytest.fixture(scope="module")
def service(tmp_path_factory):
    from fastapi.testclient import TestClient

    from api.auth import add_user
    from api.config import Settings
    from api.main import create_app
    from screening.store import connect

    root = tmp_path_factory.mktemp("projects_api")
    db = root / "s.duckdb"
    con = connect(db)
    tokens = {role: add_user(con, role, role, None) for role in ("admin", "analyst", "dashboard")}
    tokens["township"] = add_user(con, "柳市", "township", "柳市镇", confirm_new_township=True)
    con.close()
    data_root = root / "data"
    (data_root / "other").mkdir(parents=True)
    (data_root / "projects").mkdir()
    (data_root / "projects" / "projects.xlsx").write_bytes((SAMPLE_PROJECTS / "projects.xlsx").read_bytes())
    _write(data_root / "other", "项目代码,项目名称,乡镇街道,行业代码,年综合能耗,年工业增加值\nP1,甲,柳市镇,3011,2500,5000\n")
    with TestClient(create_app(Settings(db=db, data_root=data_root))) as client:
        yield client, tokens


def _get(client, token, query=""):
    return client.get(f"/api/v1/projects{query}", headers={"Authorization": f"Bearer {token}"})


def test_api_projects_matches_the_command(service):
    client, tokens = service
    res = _get(client, tokens["analyst"], "?page_size=500")
    assert res.status_code == 200, res.text
    body = res.json()
    expected = review(SAMPLE_PROJECTS).results
    assert body["total"] == expected.height == len(body["items"])
    assert [i["project_id"] for i in body["items"]] == expected["project_id"].to_list()
    first = body["items"][0]
    assert set(CONTRACT_COLUMNS) <= set(first)
    assert body["rejected_rows"] == 1 and "不能为负数" in body["rejects"][0]["reason"]
    page = _get(client, tokens["admin"], "?page=2&page_size=10").json()
    assert [i["project_id"] for i in page["items"]] == expected["project_id"].to_list()[10:20]
    refused = _get(client, tokens["admin"], "?suggestion=不予受理").json()
    assert refused["total"] >= 1 and all(i["suggestion"].startswith("不予受理") for i in refused["items"])
    other = _get(client, tokens["admin"], "?data=other").json()
    assert other["items"][0]["intensity_status"] == "hit" and other["items"][0]["two_high"] is True


def test_api_projects_refuses_bad_requests_in_chinese(service):
    client, tokens = service
    for query in ("?page_size=501", "?page=0", "?data=../..", "?data=/etc", "?suggestion=批准"):
        res = _get(client, tokens["admin"], query)
        assert res.status_code == 422, (query, res.status_code)
        assert any("\u4e00" <= ch <= "\u9fff" for ch in str(res.json()["detail"])), query
    res = _get(client, tokens["admin"], "?data=nowhere")
    assert res.status_code == 422 and "数据目录不存在" in res.json()["detail"]
    for role in ("township", "dashboard"):
        assert _get(client, tokens[role]).status_code == 403
    assert client.get("/api/v1/projects").status_code == 401


# ---------------------------------------------------------------- key energy users in the record and dashboard

@pytest.fixture(scope="module")
def screened(tmp_path_factory):
    import json

    from fastapi.testclient import TestClient

    from api.config import Settings
    from api.main import create_app
    from api_helpers import build_service_db

    root = tmp_path_factory.mktemp("key_users")
    db, tokens = build_service_db(root)
    record = json.loads((root / "out" / "run.json").read_text(encoding="utf-8"))
    with TestClient(create_app(Settings(db=db))) as client:
        yield client, tokens, record


def test_run_records_key_energy_users_and_list_is_unchanged(screened):
    _, _, record = screened
    assert record["listed"] == 223  # key energy users are advisory: the list is the same
    key = record["key_energy_users"]
    assert key["threshold_tce"] == 5000 and "重点用能单位节能管理办法" in key["citation"] and key["year"] == 2021
    latest = [r for r in key["rows"] if r["year"] == 2021]
    assert key["firms"] == len(latest) > 0 and all(r["energy_tce"] >= 5000 for r in key["rows"])
    assert key["rising"] == sum(1 for r in latest if r["rising"])
    for r in latest:  # hand check of the trend from the recorded figures
        if r["intensity"] is not None and r["intensity_prev"] is not None:
            assert r["rising"] == (r["intensity"] > r["intensity_prev"] * (1 + 1e-9))


def test_record_and_dashboard_show_key_energy_users(screened):
    client, tokens, record = screened
    key = record["key_energy_users"]
    rising = next(r for r in key["rows"] if r["year"] == 2021 and r["rising"])
    headers = {"Authorization": f"Bearer {tokens['admin']}"}
    body = client.get(f"/api/v1/enterprises/{rising['uscc']}?year=2022", headers=headers).json()
    user = body["key_energy_user"]
    assert user["rising"] is True and user["threshold_tce"] == 5000 and "升至" in user["note"]
    assert [y["year"] for y in user["years"]][-1] == 2021
    listed = client.get("/api/v1/lists/2022?page_size=500", headers=headers).json()["items"]
    keys = {r["uscc"] for r in key["rows"]}
    other = next(i["uscc"] for i in listed if i["uscc"] not in keys)
    assert client.get(f"/api/v1/enterprises/{other}?year=2022", headers=headers).json()["key_energy_user"] is None
    dash = client.get("/api/v1/dashboard/2022", headers=headers).json()["key_energy_users"]
    assert dash == {k: v for k, v in key.items() if k != "rows"}


def test_python_api_exports():
    import screening

    assert {"review_projects", "key_energy_users"} <= set(screening.__all__)
    result = screening.review_projects(SAMPLE_PROJECTS, overrides=["projects.upper_boundary=excluded"])
    row = result.results.filter(pl.col("energy_tce") == 5000).row(0, named=True)
    assert row["authority"] == "county"  # exactly 5000 stays with the county when the boundary is excluded
    assert review(SAMPLE_PROJECTS).results.filter(pl.col("energy_tce") == 5000)["authority"].to_list() == ["upper"]
