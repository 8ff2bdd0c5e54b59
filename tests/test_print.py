"""What people print (issue 14, items 1 and 2): the workbook's print setup, row heights and
number formats; targets compared with what can be compared; the final list with a sign-off
block and one 《高耗低效企业认定告知书》 per firm (read back with openpyxl and python-docx)."""
from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import openpyxl
import pytest
from docx import Document
from fastapi.testclient import TestClient

from api.config import Settings
from api.main import create_app
from api_helpers import bearer, build_service_db
from cli_helpers import cli
from screening.paths import default_ruleset
from screening.ruleset import load_ruleset
from screening.store import results_relation

pytestmark = pytest.mark.e2e

PLAN = {"disposition": "改造提升", "measures": "更换高效电机", "lead": "市经信局", "cooperating": [],
        "expected_land_mu": 2.5, "expected_energy_tce": 120.0, "milestones": []}


@pytest.fixture(scope="module")
def final_db(tmp_path_factory):
    return make_final_db(tmp_path_factory.mktemp("print"))


def make_final_db(root: Path) -> dict:
    """A screened sample, 12 firms confirmed (one with two hits among them), finalized; two plans,
    one of them completed."""
    db, tokens = build_service_db(root)
    admin = bearer(tokens["admin"])
    with TestClient(create_app(Settings(db=db))) as client:
        items = client.get("/api/v1/lists/2022?page_size=500", headers=admin).json()["items"]
        two = [i["uscc"] for i in items if i["rule_ids"].count(";") == 1][:1]
        chosen = two + [i["uscc"] for i in items if i["uscc"] not in two][:11]
        for uscc in chosen:
            r = client.post(f"/api/v1/enterprises/{uscc}/verifications", headers=admin,
                            json={"year": 2022, "outcome": "confirmed"})
            assert r.status_code == 201, r.text
        assert client.post("/api/v1/lists/2022/finalize", headers=admin,
                           json={"allow_unresolved": True}).status_code == 201
        for n, uscc in enumerate(chosen[:2]):
            url = f"/api/v1/enterprises/{uscc}/plan?year=2022"
            assert client.put(url, headers=admin, json=PLAN).status_code == 200
            if n == 0:
                done = client.post(f"/api/v1/enterprises/{uscc}/plan/complete?year=2022",
                                   headers={**admin, "If-Match": '"1"'})
                assert done.status_code == 200
        archive = client.get("/api/v1/lists/2022/final/export", headers=admin)
        refused = client.get("/api/v1/lists/2022/final/export", headers=bearer(tokens["township"]))
        not_final = client.get("/api/v1/lists/2021/final/export", headers=admin)
    return {"root": root, "db": db, "two_hits": two[0], "firms": len(chosen), "archive": archive,
            "refused": refused, "not_final": not_final}


def _workbook(root: Path) -> openpyxl.Workbook:
    return openpyxl.load_workbook(root / "out" / "整治企业清单_2022.xlsx")


def test_every_sheet_prints_landscape_a4_one_page_wide_with_header_and_page_numbers(final_db):
    wb = _workbook(final_db["root"])
    for ws in wb.worksheets:
        assert ws.page_setup.orientation == "landscape", ws.title
        assert str(ws.page_setup.paperSize) == "9", ws.title
        # fit to one page wide (1 is the default, which the file leaves unwritten)
        assert ws.sheet_properties.pageSetUpPr.fitToPage and (ws.page_setup.fitToWidth or 1) == 1, ws.title
        assert "&P" in ws.oddFooter.center.text and "&N" in ws.oddFooter.center.text, ws.title
        assert "2022年度" in ws.oddHeader.left.text and "北京时间" in ws.oddHeader.right.text, ws.title
    assert (wb["汇总"].page_setup.fitToHeight or 1) == 1    # the summary is one page (1: the default)
    assert wb["整治企业清单"].print_title_rows == "$1:$1"     # the header row on every page
    assert wb["整治企业清单"].page_setup.fitToHeight == 0
    # the machine's rule ids stay off the paper
    ws = wb["整治企业清单"]
    assert ws.print_area == f"'整治企业清单'!$A$1:$O${ws.max_row}"


def test_rows_are_as_tall_as_their_wrapped_text(final_db):
    wb = _workbook(final_db["root"])
    ws = wb["整治企业清单"]
    headers = [c.value for c in ws[1]]
    reasons = headers.index("认定理由（数据与标准）") + 1
    width = ws.column_dimensions[openpyxl.utils.get_column_letter(reasons)].width
    checked = 0
    for row in range(2, ws.max_row + 1):
        text = ws.cell(row, reasons).value or ""
        span = sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)
        if span > width * 1.5:  # needs at least two lines
            assert (ws.row_dimensions[row].height or 15) >= 2 * 13.5, (row, text)
            checked += 1
    assert checked > 10
    rules = wb["规则与依据"]
    assert all((rules.row_dimensions[r].height or 15) > 15 for r in range(2, rules.max_row + 1))


def test_summary_compares_targets_with_what_can_be_compared(final_db):
    ws = _workbook(final_db["root"])["汇总"]
    rs = load_ruleset(default_ruleset())
    cells = {c.value: c for row in ws.iter_rows() for c in row if c.value is not None}
    firms_row = next(c.row for v, c in cells.items() if isinstance(v, str) and v.startswith(rs.meta.targets["firms"].label))
    target, listed = ws.cell(firms_row, 2), ws.cell(firms_row, 3)
    assert target.value == rs.meta.targets["firms"].value and target.number_format == "0"
    assert isinstance(listed.value, (int, float)) and listed.number_format == "0"
    assert ws.cell(firms_row, 4).value == "—"                  # no final list yet in a run's workbook
    # land and energy: the targets are amounts to be freed; the run knows none yet
    for key in ("land_mu", "energy_tce"):
        t = rs.meta.targets[key]
        row = next(c.row for v, c in cells.items() if v == f"{t.label}（{t.unit}）")
        assert ws.cell(row, 2).value == t.value and ws.cell(row, 3).value == "—" and ws.cell(row, 4).value is None
    # the listed firms' own land and energy are shown apart, as a potential, with no ratio to a target
    assert "清单企业占地/用能（潜在腾出规模）" in cells
    assert not any(isinstance(v, str) and "清单合计/目标" in v for v in cells)


def test_export_final_writes_a_signed_off_list_and_a_notice_per_firm(final_db, tmp_path):
    out = tmp_path / "final"
    proc = cli("export-final", "--year", "2022", "--db", final_db["db"], "--out", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "告知书 12 份" in proc.stdout.replace("\n", "")   # wrapped to the terminal's width
    wb = openpyxl.load_workbook(out / "定稿清单_2022.xlsx")
    lst, summary = wb["定稿清单"], wb["汇总"]
    assert lst.max_row >= final_db["firms"] + 1
    texts = [c.value for row in lst.iter_rows() for c in row if isinstance(c.value, str)]
    assert any(t.startswith("编制单位") for t in texts) and "审核：" in texts and any(t.startswith("日期") for t in texts)
    assert lst.page_setup.orientation == "landscape" and lst.print_title_rows == "$1:$1"
    # the stages toward the firm target, and land/energy from the plans
    values = {c.value: c for row in summary.iter_rows() for c in row if c.value is not None}
    firms_row = next(c.row for v, c in values.items() if isinstance(v, str) and v.startswith("整治提升"))
    assert [summary.cell(firms_row, c).value for c in (4, 5, 6)] == [final_db["firms"], 2, 1]
    land_row = next(c.row for v, c in values.items() if v == "腾出工业用地（亩）")
    assert summary.cell(land_row, 3).value == 5.0 and summary.cell(land_row, 5).value == 2.5

    notices = sorted((out / "告知书").glob("*.docx"))
    assert len(notices) == final_db["firms"]
    merged = Document(str(out / "告知书_2022_合并打印.docx"))
    assert sum("高耗低效企业认定告知书" == p.text for p in merged.paragraphs) == final_db["firms"]


def test_a_notice_names_every_hit_with_its_numbers_and_the_objection_route(final_db, tmp_path):
    out = tmp_path / "final"
    assert cli("export-final", "--year", "2022", "--db", final_db["db"], "--out", out, cwd=tmp_path).returncode == 0
    con = __import__("duckdb").connect(str(final_db["db"]), read_only=True)
    hits = con.execute(f"SELECT rule_title, reason FROM {results_relation(con)} "
                       "WHERE uscc = ? AND status = 'hit' "
                       "AND run_id = (SELECT run_id FROM finalizations WHERE list_year = 2022)",
                       [final_db["two_hits"]]).fetchall()
    con.close()
    assert len(hits) == 2
    found = [p for p in (out / "告知书").glob("*.docx")
             if final_db["two_hits"] in "\n".join(x.text for x in Document(str(p)).paragraphs)]
    assert len(found) == 1
    text = "\n".join(p.text for p in Document(str(found[0])).paragraphs)
    for title, reason in hits:
        assert title in text and reason in text
    assert "{{" not in text and "{%" not in text
    assert "7个工作日内" in text and "仅为建议" in text and "乐清市经济和信息化局" in text


def test_a_notice_gives_each_number_in_the_unit_of_what_the_rule_measures(final_db, tmp_path):
    """The notice read “本企业数值：5.62倍（行业平均值的比例）；认定标准：6.34倍（行业平均值的比例）；
    行业平均：63.42倍（行业平均值的比例）” for a firm whose 亩均税收 was 5.62 万元/亩: the unit was the
    first parameter's that had one (规则 1's ratio), not the unit of the value.  Each rule now names the
    unit of its value (``value_unit``); every number on the line carries that unit, and a rule without
    one (grades as text, product energy use whose unit is in the reason) shows the bare figure."""
    out = tmp_path / "final"
    assert cli("export-final", "--year", "2022", "--db", final_db["db"], "--out", out, cwd=tmp_path).returncode == 0
    rs = load_ruleset(default_ruleset())
    units = {r.title: getattr(r, "value_unit", None) for r in rs.rules.values()}
    checked = graded = 0
    for path in (out / "告知书").glob("*.docx"):
        paragraphs = [p.text for p in Document(str(path)).paragraphs]
        for i, text in enumerate(paragraphs):
            if not text.startswith("本企业数值"):
                continue
            title = re.match(r"\d+\. (.+?)。", paragraphs[i - 1]).group(1)
            unit = units[title]
            figures = re.findall(r"(?:本企业数值|认定标准|行业平均)：([^；]+)；", text)
            assert len(figures) == 3 and "倍" not in text, text
            assert not re.search(r"[A-D],[A-D]", text), text  # grades as people write them: C、D
            graded += bool(re.search(r"[A-D]、[A-D]", text))
            for figure in figures:
                if re.fullmatch(r"[\d,.]+.*", figure):
                    assert figure.endswith(unit or figure[-1]) and (unit or not re.search(r"[^\d,.]", figure)), text
            checked += unit == "万元/亩"
    assert checked, "no notice of a 亩均税收 rule (万元/亩)"
    assert graded, "no notice of the grade rule"


def test_the_objection_deadline_comes_from_the_rule_set(final_db, tmp_path):
    import shutil

    rules = tmp_path / "rules"
    shutil.copytree(default_ruleset(), rules)
    path = rules / "notice.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("value: 7", "value: 15"), encoding="utf-8")
    out = tmp_path / "final"
    proc = cli("export-final", "--year", "2022", "--db", final_db["db"], "--out", out, "--rules", rules, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = "\n".join(p.text for p in Document(str(next((out / "告知书").glob("*.docx")))).paragraphs)
    assert "15个工作日内" in text
    path.write_text("template: notice_template.docx\nissuer: x\n", encoding="utf-8")
    bad = cli("export-final", "--year", "2022", "--db", final_db["db"], "--out", tmp_path / "o2", "--rules", rules,
              cwd=tmp_path)
    assert bad.returncode == 2 and "objection" in bad.stderr and "Traceback" not in bad.stderr


def test_export_final_of_a_year_not_finalized_is_one_chinese_line(final_db, tmp_path):
    proc = cli("export-final", "--year", "2021", "--db", final_db["db"], "--out", tmp_path / "o", cwd=tmp_path)
    assert proc.returncode == 2 and "尚未定稿" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_the_api_route_returns_the_same_files_as_a_zip(final_db):
    archive = final_db["archive"]
    assert archive.status_code == 200 and archive.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(archive.content)).namelist()
    assert "定稿清单_2022.xlsx" in names and "告知书_2022_合并打印.docx" in names
    assert sum(n.startswith("告知书/") for n in names) == final_db["firms"]
    assert final_db["refused"].status_code == 403
    assert final_db["not_final"].status_code == 404 and "尚未定稿" in final_db["not_final"].json()["detail"]


# --------------------------------------------------------------------------- rendered by an office suite

OFFICE_PACKAGES = ("libreoffice-calc", "libreoffice-writer", "poppler-utils")
APT_TIMEOUT_S = 900


def _office_tools() -> bool:
    return all(shutil.which(tool) for tool in ("soffice", "pdftoppm", "pdftotext", "pdfinfo"))


@pytest.fixture(scope="session")
def office():
    """LibreOffice and poppler, installed with apt-get when missing and root (as dev.py installs
    the CJK font); otherwise the rendering tests are skipped with the reason."""
    if not _office_tools():
        if os.name != "posix" or not shutil.which("apt-get") or os.geteuid() != 0:
            pytest.skip(f"未安装 LibreOffice/poppler 且无管理员权限，跳过打印渲染检查（请安装 {' '.join(OFFICE_PACKAGES)}）")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *OFFICE_PACKAGES]):
            try:
                subprocess.run(cmd, env=env, capture_output=True, check=False, timeout=APT_TIMEOUT_S)
            except (OSError, subprocess.TimeoutExpired):
                break
        if not _office_tools():
            pytest.skip(f"apt-get 未能安装 {' '.join(OFFICE_PACKAGES)}，跳过打印渲染检查")


def _pdf(source: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["soffice", f"-env:UserInstallation=file://{folder / 'profile'}", "--headless",
                    "--convert-to", "pdf", "--outdir", str(folder), str(source)],
                   capture_output=True, check=True, timeout=300)
    return folder / f"{source.stem}.pdf"


def _pages(pdf: Path) -> int:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    return int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))


def _page_text(pdf: Path, page: int) -> str:
    return subprocess.run(["pdftotext", "-f", str(page), "-l", str(page), "-layout", str(pdf), "-"],
                          capture_output=True, text=True, check=True).stdout


def test_the_workbook_and_the_notices_print_as_meant(final_db, office, tmp_path):
    book = _pdf(final_db["root"] / "out" / "整治企业清单_2022.xlsx", tmp_path / "pdf")
    pages = _pages(book)
    assert pages <= 40, pages          # was 156 pages without print setup
    first, second = _page_text(book, 1), _page_text(book, 2)
    assert "年度目标" in first and "按乡镇街道统计" in first and "年度目标" not in second   # the summary: one page
    assert f"第 1 页 共 {pages} 页" in first and "北京时间" in first
    # every page of the list repeats its header row
    assert all("统一社会信用代码" in _page_text(book, p) for p in (2, 3))
    out = tmp_path / "final"
    assert cli("export-final", "--year", "2022", "--db", final_db["db"], "--out", out, cwd=tmp_path).returncode == 0
    notices = _pdf(out / "告知书_2022_合并打印.docx", tmp_path / "pdf")
    assert _pages(notices) == final_db["firms"]          # one page per firm, none spills over
    assert "高耗低效企业认定告知书" in _page_text(notices, 1)
    png = tmp_path / "pdf" / "notice"
    subprocess.run(["pdftoppm", "-r", "40", "-png", "-f", "1", "-l", "1", str(notices), str(png)], check=True)
    assert next((tmp_path / "pdf").glob("notice*.png")).stat().st_size > 1000


def test_lint_finds_a_broken_placeholder_in_the_notice_template(tmp_path):
    import shutil

    from docx import Document as load

    rules = tmp_path / "rules"
    shutil.copytree(default_ruleset(), rules)
    assert cli("lint", "--rules", rules, cwd=tmp_path).returncode == 0
    doc = load(str(rules / "notice_template.docx"))
    doc.add_paragraph("{{ firm.name }")        # a brace lost while editing in Word
    doc.save(str(rules / "notice_template.docx"))
    proc = cli("lint", "--rules", rules, cwd=tmp_path)
    assert proc.returncode == 1 and "告知书模板" in proc.stderr, proc.stderr
