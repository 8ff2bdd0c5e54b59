"""A township's list as Excel/CSV, and the filled-in Excel form uploaded back (all rows or none)."""
from __future__ import annotations

import io
import tracemalloc
import zipfile
from urllib.parse import quote

import polars as pl
import pytest
import xlsxwriter
from fastapi.testclient import TestClient

from api.config import Settings
from api.main import create_app
from api.routes import exports
from api.routes.exports import XLSX_TYPE
from api_helpers import OTHER, TOWNSHIP, bearer, build_service_db
import xlsx_bombs

pytestmark = pytest.mark.api

EXPORT = "/api/v1/lists/2022/export"
UPLOAD = "/api/v1/lists/2022/verifications/upload"
USCC, OUTCOME, REASON, NOTE = "统一社会信用代码", "核实结果", "异议原因", "备注"


def _app(db):
    return create_app(Settings(db=db))


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    db, tokens = build_service_db(tmp_path_factory.mktemp("exports"))
    with TestClient(_app(db)) as client:
        yield client, tokens


def _usccs(client, token, **params) -> list[str]:
    body = client.get("/api/v1/lists/2022", headers=bearer(token), params={"page_size": 500, **params}).json()
    assert body["total"] == len(body["items"])
    return [i["uscc"] for i in body["items"]]


def _csv(response) -> pl.DataFrame:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.content[:3] == b"\xef\xbb\xbf"
    return pl.read_csv(io.BytesIO(response.content[3:]), infer_schema=False)


def _form(client, token, **params) -> bytes:
    response = client.get(EXPORT, headers=bearer(token), params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    return response.content


def _rows(xlsx: bytes) -> pl.DataFrame:
    """The form's first sheet; the DataFrame row i is the spreadsheet row i + 2 (header = row 1)."""
    return pl.read_excel(io.BytesIO(xlsx), engine="calamine", infer_schema_length=0, drop_empty_rows=False)


def _fill(xlsx: bytes, edits: dict[int, dict[str, str]]) -> bytes:
    """Fill cells by (spreadsheet row, header), as a township does in Excel before uploading."""
    try:
        import openpyxl
    except ImportError:   # rebuild the sheet with the same headers and rows instead
        frame = _rows(xlsx)
        out = io.BytesIO()
        with xlsxwriter.Workbook(out, {"in_memory": True}) as wb:
            ws = wb.add_worksheet(TOWNSHIP)
            ws.write_row(0, 0, frame.columns)
            for r, row in enumerate(frame.iter_rows(named=True), start=2):
                row = {**row, **edits.get(r, {})}
                for c, name in enumerate(frame.columns):
                    if row[name] is not None:
                        ws.write_string(r - 1, c, row[name])
        return out.getvalue()
    wb = openpyxl.load_workbook(io.BytesIO(xlsx))
    ws = wb.worksheets[0]
    column = {cell.value: cell.column for cell in ws[1]}
    for r, values in edits.items():
        for header, value in values.items():
            ws.cell(row=r, column=column[header], value=value)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _upload(client, token, content: bytes, name: str = "核实表.xlsx"):
    return client.post(UPLOAD, headers=bearer(token), files={"file": (name, content, XLSX_TYPE)})


def _verifications(client, tokens, uscc: str) -> list[dict]:
    record = client.get(f"/api/v1/enterprises/{uscc}?year=2022", headers=bearer(tokens["admin"]))
    assert record.status_code == 200, record.text
    return record.json()["verifications"]


def _audit_total(client, tokens) -> int:
    return client.get("/api/v1/audit", headers=bearer(tokens["admin"])).json()["total"]


# ------------------------------------------------------------------------------------------- export

def test_township_csv_has_only_its_own_firms(service):
    client, tokens = service
    response = client.get(EXPORT, headers=bearer(tokens["township"]), params={"format": "csv"})
    frame = _csv(response)
    mine = _usccs(client, tokens["township"])
    assert frame[USCC].to_list() == mine                        # same firms and order as GET /lists/{year}
    assert set(frame["乡镇街道"]) == {TOWNSHIP}
    assert {"企业名称", "命中规则", "认定理由（数据与标准）", "核实状态"} <= set(frame.columns)
    assert set(frame["核实状态"]) <= {"待核实", "确认", "异议"}
    assert frame["序号"].to_list() == [str(i) for i in range(1, len(mine) + 1)]
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;") and 'filename="list_2022.csv"' in disposition
    assert f"filename*=UTF-8''{quote('2022年度整治企业清单_' + TOWNSHIP + '.csv')}" in disposition

    # a township never gets another township's list
    other = client.get(EXPORT, headers=bearer(tokens["township"]), params={"format": "csv", "township": OTHER})
    assert other.status_code == 403
    own = client.get(EXPORT, headers=bearer(tokens["township"]), params={"format": "csv", "township": TOWNSHIP})
    assert _csv(own)[USCC].to_list() == mine


def test_township_xlsx_is_a_form_with_a_drop_down(service):
    client, tokens = service
    xlsx = _form(client, tokens["township"])
    frame = _rows(xlsx)
    mine = _usccs(client, tokens["township"])
    assert frame[USCC].to_list() == mine and set(frame["乡镇街道"]) == {TOWNSHIP}
    assert frame.columns[-3:] == [OUTCOME, REASON, NOTE]
    assert all(frame[c].null_count() == frame.height for c in (OUTCOME, REASON, NOTE))   # left for the township
    assert "核实状态" in frame.columns

    with zipfile.ZipFile(io.BytesIO(xlsx)) as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode("utf-8")
        names = z.read("xl/workbook.xml").decode("utf-8")
    assert '<dataValidation type="list"' in sheet and "<formula1>\"确认,异议\"</formula1>" in sheet
    outcome_col = chr(ord("A") + frame.columns.index(OUTCOME))
    assert f'sqref="{outcome_col}2:{outcome_col}{len(mine) + 1}"' in sheet   # every firm's row, not the header
    assert 'ySplit="1"' in sheet and 'state="frozen"' in sheet                # the header stays in view
    assert f'name="{TOWNSHIP}"' in names and 'name="填写说明"' in names
    assert "filename*=UTF-8''" in client.get(EXPORT, headers=bearer(tokens["township"])).headers["content-disposition"]


def test_the_township_form_prints_and_its_instructions_speak_to_people(service):
    """A township prints the form to fill in on site: it printed portrait, four columns to a page, 22
    pages for 36 firms, no header on later pages; and its instructions told a clerk to
    “POST /api/v1/lists/2022/verifications/upload”.  Now the sheet prints like the run's workbook
    (landscape A4, one page wide, header row on every page, title and page numbers) and the
    instructions name the page to upload it on."""
    import openpyxl
    client, tokens = service
    book = openpyxl.load_workbook(io.BytesIO(_form(client, tokens["township"])))
    form = book[TOWNSHIP]
    setup = form.page_setup
    assert setup.orientation == "landscape" and setup.paperSize == 9
    # two pages wide (the form has twice the list's columns), across then down, the firm on every page
    assert form.sheet_properties.pageSetUpPr.fitToPage and setup.fitToWidth == 2 and setup.fitToHeight == 0
    assert setup.pageOrder == "overThenDown" and form.print_title_cols == "$A:$C"
    assert form.print_title_rows == "$1:$1" and "第 &P 页 共 &N 页" in form.oddFooter.center.text
    assert "属地核实表" in form.oddHeader.left.text
    headers = [c.value for c in form[1]]
    assert "规则编号" not in headers and "命中规则" in headers   # no program codes on the people's form
    assert not any("above_scale" in str(c.value) for row in form.iter_rows(min_row=2) for c in row)
    notes = "\n".join(str(c.value) for row in book["填写说明"].iter_rows() for c in row if c.value)
    assert "核实表下载与上传" in notes and "/api/" not in notes and "POST" not in notes


def test_admin_and_analyst_export_all_or_one_township(service):
    client, tokens = service
    everyone = _usccs(client, tokens["admin"])
    all_rows = _csv(client.get(EXPORT, headers=bearer(tokens["admin"]), params={"format": "csv"}))
    assert all_rows[USCC].to_list() == everyone and all_rows["乡镇街道"].n_unique() > 2
    theirs = _csv(client.get(EXPORT, headers=bearer(tokens["admin"]), params={"format": "csv", "township": OTHER}))
    assert set(theirs["乡镇街道"]) == {OTHER} and theirs[USCC].to_list() == _usccs(client, tokens["admin"], township=OTHER)

    analyst = _rows(_form(client, tokens["analyst"], township=OTHER))
    assert set(analyst["乡镇街道"]) == {OTHER}
    assert _rows(_form(client, tokens["admin"])).height == len(everyone)

    assert client.get(EXPORT, headers=bearer(tokens["dashboard"])).status_code == 403
    assert client.get(EXPORT, headers=bearer(tokens["revoked"])).status_code == 401
    assert client.get(EXPORT).status_code == 401
    assert client.get(EXPORT, headers=bearer(tokens["admin"]), params={"format": "pdf"}).status_code == 422
    missing = client.get(EXPORT, headers=bearer(tokens["admin"]), params={"township": "不存在镇"})
    # a township the run does not know is a bad value (issue 10): 422 naming the valid ones
    assert missing.status_code == 422 and "不存在镇" in missing.json()["detail"] and OTHER in missing.json()["detail"]
    assert client.get("/api/v1/lists/1999/export", headers=bearer(tokens["admin"])).status_code == 404


# ------------------------------------------------------------------------------------------- upload

def test_round_trip_download_fill_upload(service):
    client, tokens = service
    xlsx = _form(client, tokens["township"])
    firms = _rows(xlsx)[USCC].to_list()
    a, b, c = firms[0], firms[1], firms[2]          # spreadsheet rows 2, 3, 4
    filled = _fill(xlsx, {2: {OUTCOME: "确认"}, 3: {OUTCOME: "确认", NOTE: "已实地查看"},
                          4: {OUTCOME: "异议", REASON: "企业已关停", NOTE: "2022年3月停产"}})
    audit_before = _audit_total(client, tokens)

    response = _upload(client, tokens["township"], filled)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["stored"], body["unchanged"], body["skipped"]) == (3, 0, len(firms) - 3)
    assert body["message"] == f"新保存 3 条核实结果；{len(firms) - 3} 行未填写核实结果，已跳过"

    got = {u: _verifications(client, tokens, u) for u in (a, b, c)}
    assert [(v["outcome"], v["reason"], v["note"], v["created_by"]) for v in got[a]] == [("confirmed", None, None, "柳市")]
    assert [(v["outcome"], v["note"]) for v in got[b]] == [("confirmed", "已实地查看")]
    assert [(v["outcome"], v["reason"], v["note"]) for v in got[c]] == [("disputed", "企业已关停", "2022年3月停产")]
    own = client.get(f"/api/v1/enterprises/{c}?year=2022", headers=bearer(tokens["township"])).json()
    assert own["verifications"][0]["outcome"] == "disputed"

    # the same audit trail as POST /enterprises/{uscc}/verifications, with the file row
    assert _audit_total(client, tokens) == audit_before + 3
    trail = client.get("/api/v1/audit?page_size=500", headers=bearer(tokens["admin"])).json()["items"]
    lines = {t["entity_key"]: t for t in trail if t["action"] == "verify"}
    assert lines[f"2022/{c}"]["after"]["upload"] == {"file": "核实表.xlsx", "row": 4}
    assert lines[f"2022/{a}"]["user_name"] == "柳市" and lines[f"2022/{a}"]["role"] == "township"

    # the next export shows the new status
    status = dict(_csv(client.get(EXPORT, headers=bearer(tokens["township"]), params={"format": "csv"}))
                  .select(USCC, "核实状态").iter_rows())
    assert (status[a], status[b], status[c]) == ("确认", "确认", "异议")


def test_bad_rows_are_all_reported_and_nothing_is_stored(service):
    client, tokens = service
    xlsx = _form(client, tokens["township"])
    firms = _rows(xlsx)[USCC].to_list()
    other_firm = _usccs(client, tokens["admin"], township=OTHER)[0]
    good = firms[10]                                 # spreadsheet row 12
    edits = {
        12: {OUTCOME: "confirmed"},                  # fine (the English value is accepted)
        13: {USCC: "91330382UNKNOWN00X", OUTCOME: "确认"},
        14: {OUTCOME: "异议"},                        # no reason
        15: {USCC: other_firm, OUTCOME: "确认"},       # another township's firm
        16: {OUTCOME: "也许"},
        17: {USCC: good, OUTCOME: "确认"},             # the same firm as row 12
        18: {OUTCOME: "确认"},                        # fine
    }
    audit_before = _audit_total(client, tokens)
    response = _upload(client, tokens["township"], _fill(xlsx, edits))
    assert response.status_code == 422, response.text
    body = response.json()
    assert "整份文件未保存" in body["detail"]
    errors = {(e["row"], e["column"]): e for e in body["errors"]}
    assert set(errors) == {(13, USCC), (14, REASON), (15, USCC), (16, OUTCOME), (17, USCC)}
    assert "不在" in errors[(13, USCC)]["reason"] and errors[(13, USCC)]["value"] == "91330382UNKNOWN00X"
    assert errors[(15, USCC)]["reason"] == errors[(13, USCC)]["reason"]   # looks like an unknown firm
    assert "必须填写异议原因" in errors[(14, REASON)]["reason"]
    assert "也许" in errors[(16, OUTCOME)]["reason"]
    assert "第 12 行" in errors[(17, USCC)]["reason"]

    # nothing from that file, not even its good rows
    assert _audit_total(client, tokens) == audit_before
    for row in (12, 14, 16, 18):                     # the file's own firms (rows 13, 15, 17 were replaced)
        assert _verifications(client, tokens, firms[row - 2]) == []

    # corrected, the same file goes in whole
    fixed = {12: edits[12], 14: {OUTCOME: "异议", REASON: "数据有误"}, 18: edits[18]}
    response = _upload(client, tokens["township"], _fill(xlsx, fixed))
    assert response.status_code == 201 and response.json()["stored"] == 3
    assert [v["outcome"] for v in _verifications(client, tokens, good)] == ["confirmed"]


def test_row_numbers_are_the_spreadsheets_and_blank_rows_are_ignored(service):
    """A title row above the header and blank rows between the firms do not shift the row numbers."""
    client, tokens = service
    firms = _usccs(client, tokens["township"])
    out = io.BytesIO()
    with xlsxwriter.Workbook(out, {"in_memory": True}) as wb:
        ws = wb.add_worksheet("自己做的表")
        ws.write_string(0, 0, "柳市镇核实情况")
        ws.write_row(1, 1, [USCC, "企业名称", OUTCOME, REASON])     # header in row 2, from column B
        ws.write_row(2, 1, [firms[20], "甲", "确认"])
        ws.write_row(5, 1, [firms[21], "乙", "不确定"])            # row 6, after two blank rows
        ws.write_row(6, 1, [firms[22], "丙"])                     # no outcome: skipped
    response = _upload(client, tokens["township"], out.getvalue())
    assert response.status_code == 422
    assert [(e["row"], e["column"]) for e in response.json()["errors"]] == [(6, OUTCOME)]


def test_other_township_and_other_roles_cannot_upload(service):
    client, tokens = service
    xlsx = _form(client, tokens["township"])
    filled = _fill(xlsx, {30: {OUTCOME: "确认"}, 31: {OUTCOME: "异议", REASON: "已迁出"}})
    response = _upload(client, tokens["other_township"], filled)
    assert response.status_code == 422
    assert {(e["row"], e["column"]) for e in response.json()["errors"]} == {(30, USCC), (31, USCC)}
    assert OTHER in response.json()["errors"][0]["reason"]
    for role in ("analyst", "dashboard"):
        assert _upload(client, tokens[role], filled).status_code == 403
    assert client.post(UPLOAD, files={"file": ("x.xlsx", filled)}).status_code == 401
    firms = _rows(xlsx)[USCC].to_list()
    assert _verifications(client, tokens, firms[28]) == [] and _verifications(client, tokens, firms[29]) == []

    # the bureau may upload any township's rows
    response = _upload(client, tokens["admin"], filled)
    assert response.status_code == 201 and response.json()["stored"] == 2
    assert _verifications(client, tokens, firms[29])[0]["created_by"] == "经信局"


def test_not_a_workbook_or_not_the_form(service):
    client, tokens = service
    township = tokens["township"]
    csv = "统一社会信用代码,核实结果\n91330382032J5CX5DW,确认\n".encode("utf-8-sig")
    for content in (csv, b"", b"PK\x03\x04 not really a zip"):
        response = _upload(client, township, content)
        assert response.status_code == 422
        assert "不是有效的 Excel 工作簿" in response.json()["detail"] and "errors" not in response.json()

    no_outcome = io.BytesIO()
    pl.DataFrame({USCC: ["91330382032J5CX5DW"], "企业名称": ["甲"]}).write_excel(no_outcome, worksheet="表")
    response = _upload(client, township, no_outcome.getvalue())
    assert response.status_code == 422
    assert "核实结果" in response.json()["detail"] and "export?format=xlsx" in response.json()["detail"]

    assert client.post(UPLOAD, headers=bearer(township)).status_code == 422          # no file at all
    assert _upload(client, township, b"x").status_code == 422


def test_upload_after_finalization_is_409(tmp_path_factory):
    db, tokens = build_service_db(tmp_path_factory.mktemp("exports_final"))
    with TestClient(_app(db)) as client:
        xlsx = _form(client, tokens["township"])
        filled = _fill(xlsx, {2: {OUTCOME: "确认"}})
        done = client.post("/api/v1/lists/2022/finalize", headers=bearer(tokens["admin"]),
                           json={"allow_unresolved": True})
        assert done.status_code == 201, done.text
        response = _upload(client, tokens["township"], filled)
        assert response.status_code == 409 and "已定稿" in response.json()["detail"]
        assert _verifications(client, tokens, _rows(xlsx)[USCC][0]) == []
        # the export still works after finalization (the list with its verification status)
        assert _form(client, tokens["township"])


# ------------------------------------------------------------------------- upload limits (issue 10: 3, 8, 9)

def _limited(client, monkeypatch, **caps) -> None:
    """The running service with some upload caps changed (the route reads its settings per request)."""
    for name, value in caps.items():
        monkeypatch.setattr(client.app.state.settings, name, value)


@pytest.fixture
def reader_calls(monkeypatch) -> list[int]:
    """Replaces the xlsx reader: a test that sends a bomb must never reach it (the real one would take
    gigabytes, or abort the process on a failed allocation)."""
    calls: list[int] = []

    def never(*_args, **_kwargs):
        calls.append(1)
        raise AssertionError("the workbook reached the reader")

    monkeypatch.setattr(exports.pl, "read_excel", never)
    return calls


def test_xlsx_bombs_are_refused_before_the_reader(service, reader_calls):
    """Finding 3: a 206 KB workbook whose shared string inflates to 200 MB took the service to 4.5 GB."""
    client, tokens = service
    bomb = xlsx_bombs.shared_string_bomb()
    assert len(bomb) < 300 * 1024
    tracemalloc.start()
    try:
        response = _upload(client, tokens["township"], bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 413, response.text
    assert "解压后 200 MB" in response.json()["detail"] and "上传的文件" in response.json()["detail"]
    assert peak < 24 * 1024 * 1024          # streamed through a small buffer, never inflated whole

    headers = [USCC, OUTCOME, REASON]
    for content, words in ((xlsx_bombs.sparse_sheet(headers=headers, far_row=1000), "1,000 行 × 16,384 列"),
                           (xlsx_bombs.sparse_sheet(headers=headers), "行数超过 20,000"),
                           (xlsx_bombs.bogus_dimension(), "行数超过 20,000"),
                           (xlsx_bombs.workbook(shared_bytes=30 * 1024 * 1024), "共享字符串"),
                           (xlsx_bombs.shared_string_copies(3000, 100_000, headers=headers), "单元格文本读入后约")):
        response = _upload(client, tokens["township"], content)
        assert response.status_code == 413, response.text
        assert words in response.json()["detail"]
    # a member that inflates beyond the size it declares is damaged, not trusted
    response = _upload(client, tokens["township"], xlsx_bombs.lying_sizes())
    assert response.status_code == 422 and "损坏" in response.json()["detail"]
    assert reader_calls == []


def test_sheet_rows_and_members_are_capped_before_the_reader(service, monkeypatch, reader_calls):
    client, tokens = service
    _limited(client, monkeypatch, upload_max_rows=100, upload_max_zip_members=50)
    rows = "".join(f'<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>x</t></is></c></row>' for r in range(2, 152))
    sheet = xlsx_bombs.sheet_xml(xlsx_bombs.header_cells([USCC, OUTCOME, REASON]) + rows, "A1")
    response = _upload(client, tokens["township"], xlsx_bombs.workbook(sheet=sheet))
    assert response.status_code == 413 and "行数超过 100" in response.json()["detail"]
    response = _upload(client, tokens["township"], xlsx_bombs.workbook(extra_members=60))
    assert response.status_code == 413 and "部件" in response.json()["detail"]
    assert reader_calls == []


def test_a_reader_panic_is_422_not_500(service, monkeypatch):
    """Finding 8: a panic inside the xlsx reader (pyo3's PanicException is a BaseException) gave a 500."""
    client, tokens = service

    def panics(*_args, **_kwargs):
        raise pl.exceptions.PanicException("index out of bounds")

    monkeypatch.setattr(exports.pl, "read_excel", panics)
    response = _upload(client, tokens["township"], _form(client, tokens["township"]))
    assert response.status_code == 422, response.text
    assert "无法按 Excel 工作簿读取" in response.json()["detail"] and "index out of bounds" in response.json()["detail"]


def test_request_body_is_capped_while_it_streams(service, monkeypatch):
    client, tokens = service
    _limited(client, monkeypatch, upload_max_bytes=64 * 1024)
    form = _form(client, tokens["township"])
    big = form + b"\0" * (100 * 1024)
    response = _upload(client, tokens["township"], big)                 # Content-Length above the cap
    assert response.status_code == 413 and "过大（上限 0.0625 MB）" in response.json()["detail"]

    boundary = "b0undary"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.xlsx"\r\n'
            f"Content-Type: {exports.XLSX_TYPE}\r\n\r\n").encode()
    sent: list[int] = []

    def chunked():                                                      # no Content-Length: counted as it arrives
        yield head
        for _ in range(1000):
            sent.append(1)
            yield b"\0" * 16 * 1024
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post(UPLOAD, headers={**bearer(tokens["township"]),
                                            "Content-Type": f"multipart/form-data; boundary={boundary}"},
                           content=chunked())
    assert response.status_code == 413 and "过大" in response.json()["detail"]
    assert _upload(client, tokens["township"], _fill(form, {})).status_code == 201   # a real form still fits


def test_more_filled_rows_than_listed_firms_is_refused_in_one_line(service):
    """Finding 8: a 100k-row sheet answered with a 10 MB error list."""
    client, tokens = service
    firm = _usccs(client, tokens["township"])[0]
    before = _verifications(client, tokens, firm)
    out = io.BytesIO()
    with xlsxwriter.Workbook(out, {"in_memory": True}) as wb:
        ws = wb.add_worksheet()
        ws.write_row(0, 0, [USCC, OUTCOME, REASON])
        for r in range(1, 5001):
            ws.write_row(r, 0, [firm, "也许"])
    response = _upload(client, tokens["township"], out.getvalue())
    assert response.status_code == 422
    assert len(response.content) < 2000
    detail = response.json()["detail"]
    assert "5,000 行" in detail and "家企业" in detail and "未保存" in detail
    assert _verifications(client, tokens, firm) == before


def test_listed_errors_are_capped_and_the_rest_counted(service, monkeypatch):
    client, tokens = service
    _limited(client, monkeypatch, upload_errors_listed=3)
    xlsx = _form(client, tokens["township"])
    response = _upload(client, tokens["township"], _fill(xlsx, {r: {OUTCOME: "也许"} for r in range(24, 29)}))
    assert response.status_code == 422
    body = response.json()
    assert len(body["errors"]) == 3 and body["errors_total"] == 5 and body["errors_omitted"] == 2
    assert [e["row"] for e in body["errors"]] == [24, 25, 26]
    assert "共 5 处问题" in body["detail"] and "另有 2 处未列出" in body["detail"]


def test_the_same_sheet_uploaded_twice_stores_nothing_new(service):
    """Finding 9: re-uploading a filled sheet stored every row again."""
    client, tokens = service
    xlsx = _form(client, tokens["township"])
    firms = _rows(xlsx)[USCC].to_list()
    edits = {5: {OUTCOME: "确认"}, 6: {OUTCOME: "异议", REASON: "已搬迁", NOTE: "2021年底"}, 7: {OUTCOME: "确认"}}
    filled = _fill(xlsx, edits)
    first = _upload(client, tokens["township"], filled)
    assert first.status_code == 201 and (first.json()["stored"], first.json()["unchanged"]) == (3, 0)
    audit_before = _audit_total(client, tokens)

    again = _upload(client, tokens["township"], filled)
    assert again.status_code == 201, again.text
    body = again.json()
    assert (body["stored"], body["unchanged"]) == (0, 3)
    assert body["message"].startswith("新保存 0 条核实结果；3 行与该企业最近一次核实结果相同，未重复保存")
    assert _audit_total(client, tokens) == audit_before
    assert [len(_verifications(client, tokens, firms[r - 2])) for r in edits] == [1, 1, 1]

    # a changed note is a new verification; the unchanged rows still are not
    changed = _upload(client, tokens["township"], _fill(xlsx, {**edits, 7: {OUTCOME: "确认", NOTE: "复核无误"}}))
    assert (changed.json()["stored"], changed.json()["unchanged"]) == (1, 2)
    assert [v["note"] for v in _verifications(client, tokens, firms[5])] in (["复核无误", None], [None, "复核无误"])
