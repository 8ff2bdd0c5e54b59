"""The evaluation year as a workflow (issue 16, part 2): 数据确认 → 测算 → 公示 → 异议 → 复核 →
调档 → 定稿, and rule 2 reading the final grade.  Hand-computed on tests/eval_helpers.py's data:
firm i scores 110 − 10·i (亩均税收 ÷ 10 × 100), ranks i of 8, grades A A B B C C D D."""
from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import threading
from pathlib import Path

import openpyxl
import polars as pl
import pytest
import yaml
from fastapi.testclient import TestClient

from api.auth import set_password
from api.config import Settings
from api.main import create_app
from api.routes import evaluations as routes
from api_helpers import OTHER, TOWNSHIP, bearer
from cli_helpers import cli
from eval_helpers import FIRMS, METHOD_ID, add_users, write_data
from screening.store import connect
from web_helpers import NAMES, password, sign_in

pytestmark = pytest.mark.api

TODAY = dt.date(2026, 12, 1)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def service(tmp_path, monkeypatch):
    data = write_data(tmp_path)
    db = tmp_path / "s.duckdb"
    tokens = add_users(db)
    monkeypatch.setattr(routes, "today", lambda: TODAY)
    with TestClient(create_app(Settings(db=db, data_root=data, runs_dir=tmp_path / "runs"))) as client:
        yield client, {role: bearer(t) for role, t in tokens.items()}, db, data


def _create(client, h, year=2021) -> dict:
    answer = client.post("/api/v1/evaluations", json={"year": year, "method": f"{METHOD_ID}.yaml"}, headers=h["admin"])
    assert answer.status_code == 201, answer.text
    return answer.json()


def _results(client, h, eid, role="admin") -> dict[str, dict]:
    page = client.get(f"/api/v1/evaluations/{eid}/results?page_size=500", headers=h[role]).json()
    return {r["uscc"]: r for r in page["items"]}


def _publish(client, h, eid, start=TODAY, days=5) -> dict:
    answer = client.post(f"/api/v1/evaluations/{eid}/publish", json={"start": str(start), "days": days}, headers=h["admin"])
    assert answer.status_code == 201, answer.text
    return answer.json()


def _object(client, h, eid, firm, role="township", corrections=None):
    return client.post(f"/api/v1/evaluations/{eid}/firms/{firm}/objections", headers=h[role],
                       json={"reason": "用地面积有误", "evidence_ref": "不动产权证第0012345号", "stamped": True,
                             "corrections": corrections or {}})


def test_computed_scores_ranks_and_grades_are_the_hand_computed_ones(service):
    client, h, _, _ = service
    ev = _create(client, h)
    rows = _results(client, h, ev["evaluation_id"])
    assert [(round(rows[f]["score"], 6), rows[f]["rank"], rows[f]["grade"]) for f in FIRMS] == [
        (100.0, 1, "A"), (90.0, 2, "A"), (80.0, 3, "B"), (70.0, 4, "B"), (60.0, 5, "C"), (50.0, 6, "C"),
        (40.0, 7, "D"), (30.0, 8, "D")]
    assert rows[FIRMS[0]]["quantities"] == {"tax_paid": 100.0, "land_mu": 10.0}
    info = client.get(f"/api/v1/evaluations/{ev['evaluation_id']}", headers=h["admin"]).json()
    assert info["method_id"] == METHOD_ID and len(info["method_sha256"]) == 64 and len(info["inputs_sha256"]) == 64
    assert info["status"] == "computed" and info["data_year"] == 2021


def test_confirmation_corrects_the_next_computation_and_keeps_the_original(service):
    client, h, _, _ = service
    first = _create(client, h)["evaluation_id"]
    url = f"/api/v1/evaluations/{first}/firms/{FIRMS[2]}/confirmation"
    answer = client.post(url, json={"outcome": "corrected", "corrections": {"tax_paid": 95}}, headers=h["township"])
    assert answer.status_code == 201, answer.text
    assert answer.json()["originals"] == {"tax_paid": 80.0}
    # another township's firm: as if it did not exist
    other = client.post(f"/api/v1/evaluations/{first}/firms/{FIRMS[6]}/confirmation",
                        json={"outcome": "confirmed"}, headers=h["township"])
    assert other.status_code == 404
    second = _create(client, h)
    rows = _results(client, h, second["evaluation_id"])
    assert round(rows[FIRMS[2]]["score"], 6) == 95.0 and rows[FIRMS[2]]["rank"] == 2 and rows[FIRMS[1]]["rank"] == 3
    assert rows[FIRMS[2]]["corrections"] == [{"revision": 0, "quantity": "tax_paid", "original": 80.0, "corrected": 95.0,
                                              "source": "confirmation", "source_id": answer.json()["confirmation_id"],
                                              "applied": True, "reason": None}]


def test_objection_inside_the_window_is_recorded_and_after_it_refused(service, monkeypatch):
    client, h, _, _ = service
    eid = _create(client, h)["evaluation_id"]
    assert _object(client, h, eid, FIRMS[3]).status_code == 409  # not published yet
    _publish(client, h, eid, start=TODAY - dt.timedelta(days=4), days=5)  # 11-27 … 12-01: today is the last day
    inside = _object(client, h, eid, FIRMS[3])
    assert inside.status_code == 201, inside.text
    assert inside.json()["stamped"] is True and inside.json()["evidence_ref"] == "不动产权证第0012345号"
    monkeypatch.setattr(routes, "today", lambda: TODAY + dt.timedelta(days=1))
    after = _object(client, h, eid, FIRMS[2])
    assert after.status_code == 409
    assert "公示期为 2026-11-27 至 2026-12-01" in after.json()["detail"] and "已结束" in after.json()["detail"]
    listed = client.get(f"/api/v1/evaluations/{eid}/objections", headers=h["admin"]).json()
    assert [o["uscc"] for o in listed["items"]] == [FIRMS[3]]


def test_township_sees_and_objects_for_its_own_firms_only(service):
    client, h, _, _ = service
    eid = _create(client, h)["evaluation_id"]
    _publish(client, h, eid)
    own = _results(client, h, eid, "township")
    assert set(own) == set(FIRMS[:4]) and all(r["township"] == TOWNSHIP for r in own.values())
    assert _object(client, h, eid, FIRMS[5]).status_code == 404
    assert _object(client, h, eid, FIRMS[5], role="other_township").status_code == 201
    assert client.get(f"/api/v1/evaluations/{eid}/results?township={OTHER}", headers=h["township"]).status_code == 403
    mine = client.get(f"/api/v1/evaluations/{eid}/objections", headers=h["township"]).json()
    assert mine["total"] == 0  # the other township's objection is not shown
    book = openpyxl.load_workbook(io.BytesIO(client.get(
        f"/api/v1/evaluations/{eid}/publication/规下", headers=h["township"]).content))
    codes = {row[4] for row in book.active.iter_rows(min_row=5, values_only=True)}
    assert codes == set(FIRMS[:4])
    assert "2026-12-01 至 2026-12-05" in book.active["A2"].value
    by_id = client.get(f"/api/v1/evaluations/{eid}/publication/below_scale", headers=h["township"])
    assert by_id.status_code == 200  # the population's id names the same sheet as its name 规下
    unknown = client.get(f"/api/v1/evaluations/{eid}/publication/规中", headers=h["township"])
    assert unknown.status_code == 404 and "below_scale（规下）" in unknown.json()["detail"]


def _to_review(client, h, monkeypatch) -> tuple[str, str, str]:
    """Published, two objections (firm 8: land is 3.2 亩; firm 7: no correction), window closed."""
    eid = _create(client, h)["evaluation_id"]
    _publish(client, h, eid, start=TODAY, days=3)
    land = _object(client, h, eid, FIRMS[7], role="other_township", corrections={"land_mu": 3.2}).json()["objection_id"]
    other = _object(client, h, eid, FIRMS[6], role="other_township").json()["objection_id"]
    monkeypatch.setattr(routes, "today", lambda: TODAY + dt.timedelta(days=3))
    return eid, land, other


def test_review_applies_the_batch_and_recomputes_ranks(service, monkeypatch):
    client, h, _, _ = service
    eid, land, other = _to_review(client, h, monkeypatch)
    review = f"/api/v1/evaluations/{eid}/review"
    partial = client.post(review, json={"decisions": [{"objection_id": land, "decision": "accepted"}]}, headers=h["admin"])
    assert partial.status_code == 422 and "复核须一次决定全部异议" in partial.json()["detail"]
    answer = client.post(review, headers=h["admin"], json={"decisions": [
        {"objection_id": land, "decision": "accepted", "note": "土地证属实"},
        {"objection_id": other, "decision": "rejected", "note": "理由不成立"}]})
    assert answer.status_code == 201, answer.text
    summary = answer.json()
    # firm 8: 30 万元 ÷ 3.2 亩 = 9.375 → 93.75 points, rank 2 (A); firms 2–7 move down one rank
    rows = _results(client, h, eid)
    assert [(round(rows[f]["score"], 6), rows[f]["rank"], rows[f]["grade"]) for f in FIRMS] == [
        (100.0, 1, "A"), (90.0, 3, "B"), (80.0, 4, "B"), (70.0, 5, "C"), (60.0, 6, "C"), (50.0, 7, "D"),
        (40.0, 8, "D"), (93.75, 2, "A")]
    assert rows[FIRMS[7]]["published_rank"] == 8 and rows[FIRMS[7]]["corrections"][0]["original"] == 10.0
    assert summary["no_objection"] == 6 and summary["accepted"] == 1 and summary["rejected"] == 1
    assert {c["uscc"] for c in summary["changed"]} == set(FIRMS[1:]) and summary["changed_count"] == 7
    assert summary["grade_changed_count"] == 4  # firm 8 D→A, firm 2 A→B, firm 4 B→C, firm 6 C→D
    assert sum(r["no_objection"] for r in rows.values()) == 6  # silence recorded as no objection
    assert client.post(review, json={"decisions": []}, headers=h["admin"]).status_code == 409  # one batch only
    audit = client.get("/api/v1/audit?page_size=500", headers=h["admin"]).json()["items"]
    assert [a["action"] for a in audit].count("evaluation_review") == 1


def test_a_firm_traces_its_score_item_by_item_and_the_review_revision_too(service, monkeypatch):
    """The page and the API showed a firm its score and grade but not how they came about: the
    indicator's value, the 基准值, the weight and the item score.  Firm 8: 30 万元 ÷ 10 亩 = 3 万元/亩,
    ÷ 基准值 10 × 权重 100 = 30 分; after the review accepts 3.2 亩: 30 ÷ 3.2 = 9.375, 93.75 分."""
    client, h, _, _ = service
    eid, land, other = _to_review(client, h, monkeypatch)
    url = f"/api/v1/evaluations/{eid}/firms/{FIRMS[7]}"
    trace = client.get(url, headers=h["admin"]).json()
    assert trace["traced"] and trace["revision"] == 0 and trace["firm"]["rank"] == 8
    (item,) = trace["items"]
    assert (item["indicator"], item["indicator_name"], item["unit"]) == ("tax_per_mu", "亩均税收", "万元/亩")
    assert (item["numerator"], item["denominator"], item["value"], item["baseline"], item["weight"]) == (
        30.0, 10.0, 3.0, 10.0, 100.0)
    assert item["item_score"] == pytest.approx(30.0) == trace["firm"]["base_score"]
    assert item["capped"] is False and item["handling"] == "computed"
    assert client.get(url, headers=h["other_township"]).status_code == 200
    assert client.get(url, headers=h["township"]).status_code == 404  # another township's firm
    client.post(f"/api/v1/evaluations/{eid}/review", headers=h["admin"], json={"decisions": [
        {"objection_id": land, "decision": "accepted"}, {"objection_id": other, "decision": "rejected"}]})
    after = client.get(url, headers=h["admin"]).json()
    (item,) = after["items"]
    assert after["revision"] == 1 and after["firm"]["rank"] == 2 and after["firm"]["published_rank"] == 8
    assert (item["denominator"], item["value"]) == (3.2, 9.375) and item["item_score"] == pytest.approx(93.75)
    unchanged = client.get(f"/api/v1/evaluations/{eid}/firms/{FIRMS[0]}", headers=h["admin"]).json()
    assert unchanged["items"][0]["item_score"] == pytest.approx(100.0) and unchanged["revision"] == 1


def test_an_evaluation_computed_before_the_trace_names_its_item_scores(service):
    """An evaluation stored before eval_items existed has item scores only (in detail): the page
    named them by id (tax_per_mu); the names come from the evaluation's stored method."""
    client, h, db, _ = service
    eid = _create(client, h)["evaluation_id"]
    cursor = client.app.state.con.cursor()
    try:
        cursor.execute("DELETE FROM eval_items WHERE evaluation_id = ?", [eid])
        set_password(cursor, NAMES["admin"], password("admin"))
    finally:
        cursor.close()
    trace = client.get(f"/api/v1/evaluations/{eid}/firms/{FIRMS[7]}", headers=h["admin"]).json()
    assert not trace["traced"] and trace["items"] == [] and trace["indicator_names"] == {"tax_per_mu": "亩均税收"}
    sign_in(client, "admin")
    page = client.get(f"/evaluations/{eid}/firms/{FIRMS[7]}").text
    assert "亩均税收 30.0000" in page and "tax_per_mu" not in page


def test_the_firm_page_of_an_evaluation_finds_a_pasted_code(service):
    """As the firm's record page: a code pasted full-width, in lower case or with a zero-width space."""
    client, h, _, _ = service
    eid = _create(client, h)["evaluation_id"]
    cursor = client.app.state.con.cursor()
    try:
        set_password(cursor, NAMES["admin"], password("admin"))
    finally:
        cursor.close()
    sign_in(client, "admin")
    firm = FIRMS[7]
    full_width = firm.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789ABCDEFGHJKLMNPQRTUWXY"})
    for typed in (full_width, firm.lower(), firm[:9] + "\u200b" + firm[9:]):
        page = client.get(f"/evaluations/{eid}/firms/{typed}")
        assert page.status_code == 200 and firm in page.text, typed
    assert client.get(f"/evaluations/{eid}/firms/{firm[:17]}O").status_code == 404


def test_review_waits_for_the_window_to_close(service):
    client, h, _, _ = service
    eid = _create(client, h)["evaluation_id"]
    _publish(client, h, eid, start=TODAY, days=3)
    answer = client.post(f"/api/v1/evaluations/{eid}/review", json={"decisions": []}, headers=h["admin"])
    assert answer.status_code == 409 and "公示期结束后才能复核" in answer.json()["detail"]


def _reviewed(client, h, monkeypatch) -> str:
    eid, land, other = _to_review(client, h, monkeypatch)
    answer = client.post(f"/api/v1/evaluations/{eid}/review", headers=h["admin"], json={"decisions": [
        {"objection_id": land, "decision": "accepted"}, {"objection_id": other, "decision": "rejected"}]})
    assert answer.status_code == 201, answer.text
    return eid


def test_regrade_keeps_the_initial_grade_beside_the_final_one(service, monkeypatch):
    client, h, _, _ = service
    eid = _reviewed(client, h, monkeypatch)
    url = f"/api/v1/evaluations/{eid}/firms/{FIRMS[6]}/grade"
    assert client.post(url, json={"grade": "B", "reason": "", "approver": "组长"}, headers=h["admin"]).status_code == 422
    assert client.post(url, json={"grade": "B", "reason": "技改完成"}, headers=h["admin"]).status_code == 422
    answer = client.post(url, json={"grade": "B", "reason": "领导小组纪要：技改完成", "approver": "领导小组组长"},
                         headers=h["admin"])
    assert answer.status_code == 201, answer.text
    row = _results(client, h, eid)[FIRMS[6]]
    assert (row["initial_grade"], row["grade"], row["manual_grade"], row["final_grade"]) == ("D", "D", "B", "B")
    assert row["approver"] == "领导小组组长" and row["change_reason"] == "领导小组纪要：技改完成"
    assert client.post(url, json={"grade": "A", "reason": "x", "approver": "y"}, headers=h["township"]).status_code == 403


def test_finalized_is_frozen_and_reproducible(service, monkeypatch):
    client, h, _, _ = service
    eid = _reviewed(client, h, monkeypatch)
    client.post(f"/api/v1/evaluations/{eid}/firms/{FIRMS[6]}/grade", headers=h["admin"],
                json={"grade": "B", "reason": "纪要", "approver": "组长"})
    final = client.post(f"/api/v1/evaluations/{eid}/finalize", json={}, headers=h["admin"])
    assert final.status_code == 201, final.text
    assert final.json()["regraded"] == 1 and len(final.json()["final_sha256"]) == 64
    refused = [
        client.post(f"/api/v1/evaluations/{eid}/finalize", json={}, headers=h["admin"]),
        client.post(f"/api/v1/evaluations/{eid}/firms/{FIRMS[0]}/grade", headers=h["admin"],
                    json={"grade": "D", "reason": "x", "approver": "y"}),
        client.post(f"/api/v1/evaluations/{eid}/review", json={"decisions": []}, headers=h["admin"]),
        client.post(f"/api/v1/evaluations/{eid}/publish", json={}, headers=h["admin"]),
        _object(client, h, eid, FIRMS[7], role="other_township"),
    ]
    assert [r.status_code for r in refused] == [409] * 5
    assert all("定稿" in r.json()["detail"] for r in refused[:4])
    again = client.get(f"/api/v1/evaluations/{eid}/reproduce", headers=h["analyst"]).json()
    assert again["reproduced"] is True and again["recomputed_sha256"] == final.json()["final_sha256"]
    assert again["differences"] == []


def test_measure_lists_take_the_final_grades_of_a_finalized_evaluation(service, monkeypatch):
    """The data folder has no official grades; the finalized 2021 evaluation gives them.  Shipped
    policy: 电 C +0.1, D +0.3 元/kWh (first D year).  After the review firm 8 ranks 2nd and firms
    2–7 move down one: ranks 1 firm 1, 2 firm 8, 3–8 firms 2–7; A ≤ 25 %, B ≤ 50 %, C ≤ 75 %, D →
    firms 1, 8 A; 2, 3 B; 4, 5 C; 6 D; 7 D → B by 调档.  电 rows: firms 4, 5 at 0.1, firm 6 at 0.3."""
    client, h, _, _ = service
    eid = _reviewed(client, h, monkeypatch)
    client.post(f"/api/v1/evaluations/{eid}/firms/{FIRMS[6]}/grade", headers=h["admin"],
                json={"grade": "B", "reason": "纪要", "approver": "组长"})
    before = client.post("/api/v1/measures/lists", json={"year": 2022}, headers=h["admin"])
    assert before.status_code == 422  # not finalized yet: no grade for 2021 anywhere
    client.post(f"/api/v1/evaluations/{eid}/finalize", json={}, headers=h["admin"])
    made = client.post("/api/v1/measures/lists", json={"year": 2022}, headers=h["admin"])
    assert made.status_code == 201, made.text
    power = client.get("/api/v1/measures/lists/2022?utility=电&page_size=500", headers=h["admin"]).json()["items"]
    got = {r["uscc"]: (r["grade"], r["surcharge"]) for r in power}
    assert got == {FIRMS[3]: ("C", pytest.approx(0.1)), FIRMS[4]: ("C", pytest.approx(0.1)),
                   FIRMS[5]: ("D", pytest.approx(0.3))}
    assert all(eid in r["grade_source"] for r in power)


def test_rule_2_reads_the_final_grade_and_names_the_evaluation(service, monkeypatch, tmp_path):
    client, h, db, data = service
    eid = _reviewed(client, h, monkeypatch)  # firm 7: D in 2021 (computed); firm 6: C → D after the review
    client.post(f"/api/v1/evaluations/{eid}/firms/{FIRMS[6]}/grade", headers=h["admin"],
                json={"grade": "B", "reason": "纪要", "approver": "组长"})
    client.post(f"/api/v1/evaluations/{eid}/finalize", json={}, headers=h["admin"])
    settings = ["below_scale_consecutive_c_grade.grade_source=computed",
                f"below_scale_consecutive_c_grade.grade_method={data / (METHOD_ID + '.yaml')}"]
    run = client.post("/api/v1/runs", json={"year": 2022, "set": settings}, headers=h["admin"])
    assert run.status_code == 201, run.text
    results = {r["rule_id"]: r for r in client.get(f"/api/v1/enterprises/{FIRMS[6]}?year=2022",
                                                    headers=h["admin"]).json()["results"]}
    rule2 = results["below_scale_consecutive_c_grade"]
    # computed 2021 grade D (2020 D): would hit; the final grade after 调档 is B
    assert rule2["status"] == "pass", rule2
    assert eid in rule2["reason"] and "定稿" in rule2["reason"] and eid in rule2["detail"]
    firm6 = {r["rule_id"]: r for r in client.get(f"/api/v1/enterprises/{FIRMS[5]}?year=2022",
                                                 headers=h["admin"]).json()["results"]}
    hit = firm6["below_scale_consecutive_c_grade"]  # 2020 C, 2021 final D (moved down by the review)
    assert hit["status"] == "hit" and eid in hit["reason"], hit
    client.__exit__(None, None, None)  # the CLI reads the same file once the service has let it go
    out = tmp_path / "cli"
    proc = cli("run", "--data", data, "--year", "2022", "--out", out, "--db", db,
               *[a for s in settings for a in ("--set", s)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr

    rows = pl.read_parquet(out / "results.parquet").filter(pl.col("rule_id") == "below_scale_consecutive_c_grade")
    by = {r["uscc"]: r for r in rows.iter_rows(named=True)}
    assert by[FIRMS[6]]["status"] == "pass" and eid in by[FIRMS[6]]["reason"]
    assert by[FIRMS[5]]["status"] == "hit" and eid in by[FIRMS[5]]["reason"]


def test_publication_length_defaults_to_the_configured_days(service):
    client, h, _, _ = service
    eid = _create(client, h)["evaluation_id"]
    answer = client.post(f"/api/v1/evaluations/{eid}/publish", json={}, headers=h["admin"])
    assert answer.status_code == 201, answer.text
    assert (answer.json()["publication_start"], answer.json()["publication_end"]) == ("2026-12-01", "2026-12-07")
    again = _create(client, h)["evaluation_id"]  # one publication per data year
    assert client.post(f"/api/v1/evaluations/{again}/publish", json={}, headers=h["admin"]).status_code == 409


def test_an_objection_names_its_evidence_and_stamp(service):
    client, h, _, _ = service
    eid = _create(client, h)["evaluation_id"]
    _publish(client, h, eid)
    url = f"/api/v1/evaluations/{eid}/firms/{FIRMS[0]}/objections"
    assert client.post(url, json={"reason": "有误"}, headers=h["township"]).status_code == 422  # stamped is required
    assert client.post(url, json={"reason": "", "stamped": False}, headers=h["township"]).status_code == 422
    bad = client.post(url, json={"reason": "有误", "stamped": False, "corrections": {"revenue": 1}}, headers=h["township"])
    assert bad.status_code == 422 and "不是本评价方法使用的数据项" in bad.json()["detail"]
    # a yes/no is true or false, never a word read as one ("yes", "1", "on" were taken as true)
    for word in ("yes", "1", "on", 1):
        loose = client.post(url, json={"reason": "有误", "stamped": word}, headers=h["township"])
        assert loose.status_code == 422 and "true 或 false" in loose.json()["detail"], loose.text
    loose = client.post("/api/v1/runs", json={"year": 2022, "replace_final": "yes"}, headers=h["admin"])
    assert loose.status_code == 422 and "true 或 false" in loose.json()["detail"], loose.text


def test_review_with_every_objection_rejected_keeps_the_results(service, monkeypatch):
    client, h, _, _ = service
    eid, land, other = _to_review(client, h, monkeypatch)
    before = _results(client, h, eid)
    answer = client.post(f"/api/v1/evaluations/{eid}/review", headers=h["admin"], json={"decisions": [
        {"objection_id": land, "decision": "rejected"}, {"objection_id": other, "decision": "rejected"}]})
    assert answer.status_code == 201, answer.text
    assert answer.json()["changed"] == [] and answer.json()["revision"] == 1
    after = _results(client, h, eid)
    assert [(after[f]["score"], after[f]["rank"], after[f]["grade"]) for f in FIRMS] == \
        [(before[f]["score"], before[f]["rank"], before[f]["grade"]) for f in FIRMS]
    assert after[FIRMS[7]]["corrections"] == []
    trace = client.get(f"/api/v1/evaluations/{eid}/firms/{FIRMS[7]}", headers=h["admin"]).json()
    assert trace["revision"] == 1 and trace["items"][0]["item_score"] == pytest.approx(30.0)  # carried over


def test_results_are_paged_and_filtered(service):
    client, h, _, _ = service
    eid = _create(client, h)["evaluation_id"]
    url = f"/api/v1/evaluations/{eid}/results"
    first = client.get(f"{url}?page_size=3", headers=h["township"]).json()
    last = client.get(f"{url}?page_size=3&page=2", headers=h["township"]).json()
    beyond = client.get(f"{url}?page_size=3&page=5", headers=h["township"]).json()
    assert (first["total"], len(first["items"]), last["total"], len(last["items"])) == (4, 3, 4, 1)
    assert (beyond["total"], beyond["items"]) == (4, [])
    assert [i["rank"] for i in first["items"] + last["items"]] == [1, 2, 3, 4]
    graded = client.get(f"{url}?grade=D", headers=h["admin"]).json()
    assert {i["uscc"] for i in graded["items"]} == set(FIRMS[6:])
    for bad in ("grade=E", "population=规上", "township=无此镇"):
        answer = client.get(f"{url}?{bad}", headers=h["admin"])
        assert answer.status_code == 422 and "可选值" in answer.json()["detail"], bad


def test_corrections_replace_parcels_add_missing_rows_and_refuse_what_cannot_apply(tmp_path):
    """apply_corrections (pure): land becomes one corrected parcel of the firm's tenure; a missing
    tax row is added; a stats quantity of a firm without stats that year is refused with a reason;
    the inputs given are not changed; pack/unpack round-trips exactly."""
    from screening.evaluation import load_evaluation_inputs, load_method
    from screening.evaluation_workflow import (Correction, apply_corrections, inputs_sha256, original_values,
                                               pack_inputs, unpack_inputs)

    data = write_data(tmp_path)
    method = load_method(data / f"{METHOD_ID}.yaml")
    inputs = load_evaluation_inputs(data, 2021, method)
    blobs = pack_inputs(inputs)
    again = unpack_inputs(blobs)
    assert inputs_sha256(pack_inputs(again)) == inputs_sha256(blobs)
    assert all(again.tables[n].equals(inputs.tables[n]) for n in inputs.tables)
    unknown = "91330382MA2C99999" + "X"
    fixed, outcome = apply_corrections(inputs, 2021, [
        Correction(FIRMS[0], "land_mu", 4.5), Correction(FIRMS[1], "tax_paid", 1.0),
        Correction(FIRMS[2], "energy_tce", 12.0), Correction(unknown, "tax_paid", 1.0)])
    assert [o["applied"] for o in outcome] == [True, True, True, False]
    assert original_values(fixed, 2021, FIRMS[0])["land_mu"] == 4.5
    assert original_values(inputs, 2021, FIRMS[0])["land_mu"] == 10.0  # the originals are untouched
    parcel = fixed.tables["land"].join(fixed.tables["enterprises"].select("firm_id", "uscc"), on="firm_id") \
        .filter((pl.col("uscc") == FIRMS[0]) & (pl.col("year") == 2021))
    assert parcel.select("parcel_id", "area_mu", "tenure").rows() == [("更正", 4.5, "自有")]
    assert original_values(fixed, 2021, FIRMS[1])["tax_paid"] == 1.0
    assert original_values(fixed, 2021, FIRMS[2])["energy_tce"] == 12.0  # no energy row before: added
    no_stats = apply_corrections(inputs, 2019, [Correction(FIRMS[0], "revenue", 5.0)])[1][0]
    assert not no_stats["applied"] and "没有2019年统计数据" in no_stats["reason"]


def test_numbers_past_the_float_range_and_dates_past_the_calendar_are_422_never_500(service, monkeypatch):
    # Hostile or mistyped values: a 用地面积 correction of 1e-308 亩 makes 亩均税收 infinite; it was
    # stored, and the publication workbook then failed with a 500 ("NAN/INF not supported").  A
    # publication starting on 9999-12-31 overflowed the calendar (500).  Both are Chinese 422s now,
    # and nothing is stored.
    client, h, db, _ = service
    eid = _create(client, h)["evaluation_id"]
    tiny = client.post(f"/api/v1/evaluations/{eid}/firms/{FIRMS[0]}/confirmation", headers=h["township"],
                       json={"outcome": "corrected", "corrections": {"land_mu": 1e-308}})
    assert tiny.status_code == 201, tiny.text  # a positive number: the township may record what it was told
    again = client.post("/api/v1/evaluations", json={"year": 2021, "method": f"{METHOD_ID}.yaml"}, headers=h["admin"])
    assert again.status_code == 422 and "超出数值范围" in again.json()["detail"] and FIRMS[0] in again.json()["detail"]
    assert client.get("/api/v1/evaluations", headers=h["admin"]).json()["total"] == 1
    late = client.post(f"/api/v1/evaluations/{eid}/publish", json={"start": "9999-12-31", "days": 60}, headers=h["admin"])
    assert late.status_code == 422 and "公示" in late.json()["detail"], late.text
    early = client.post(f"/api/v1/evaluations/{eid}/publish", json={"start": "2021-06-01"}, headers=h["admin"])
    assert early.status_code == 422 and "2022 年至 2100 年之间公示" in early.json()["detail"], early.text
    assert client.get(f"/api/v1/evaluations/{eid}", headers=h["admin"]).json()["status"] == "computed"
    # an accepted objection whose correction leaves the range: the review is refused, nothing applied
    _publish(client, h, eid, start=TODAY, days=3)
    oid = _object(client, h, eid, FIRMS[0], corrections={"land_mu": 1e-308}).json()["objection_id"]
    monkeypatch.setattr(routes, "today", lambda: TODAY + dt.timedelta(days=3))
    review = client.post(f"/api/v1/evaluations/{eid}/review", headers=h["admin"],
                         json={"decisions": [{"objection_id": oid, "decision": "accepted"}]})
    assert review.status_code == 422 and "超出数值范围" in review.json()["detail"], review.text
    info = client.get(f"/api/v1/evaluations/{eid}", headers=h["admin"]).json()
    assert info["status"] == "published" and info["objections"]["pending"] == 1
    assert client.get(f"/api/v1/evaluations/{eid}/publication/below_scale", headers=h["admin"]).status_code == 200


def test_no_confirmation_on_a_trial_of_a_year_already_published(service):
    # A township recorded a confirmation (with corrections) on a trial 测算 of 2021 after another
    # 2021 evaluation had been published: 201, yet no later 测算 of 2021 can ever be published, so
    # the correction could reach no result.  It is a 409 naming the published evaluation now.
    client, h, _, _ = service
    trial = _create(client, h)["evaluation_id"]
    published = _create(client, h)["evaluation_id"]
    _publish(client, h, published)
    answer = client.post(f"/api/v1/evaluations/{trial}/firms/{FIRMS[0]}/confirmation", headers=h["township"],
                         json={"outcome": "corrected", "corrections": {"land_mu": 12.5}})
    assert answer.status_code == 409 and published in answer.json()["detail"], answer.text
    # another year's trial is not affected
    other_year = _create(client, h, year=2020)["evaluation_id"]
    ok = client.post(f"/api/v1/evaluations/{other_year}/firms/{FIRMS[0]}/confirmation", headers=h["township"],
                     json={"outcome": "confirmed"})
    assert ok.status_code == 201, ok.text


def test_huaian_on_the_sample_shows_t_and_the_one_vote_item_on_the_page_and_the_publication(tmp_path, monkeypatch):
    """huaian-2024 on sample_data with the sample 加减分 table (sample_data/adjustments/README.md):
    乐清市奇东电表 (91330382QADEKAMCHR) is ranked 6th, 初评 A, and a serious accident forces D; the
    publication listed it as D with no word of why, and every T firm (暂不评价) with an empty grade;
    the page's group filter offered the id ``all`` instead of 参评; a 加减分 row the method cannot use
    was told to the API caller of the 测算 only, never on the page.  Each now says what it is."""
    root = tmp_path / "root"
    shutil.copytree(ROOT / "sample_data", root / "sample")
    shutil.copy(ROOT / "sample_data" / "adjustments" / "adjustments.csv", root / "sample" / "adjustments.csv")
    with (root / "sample" / "adjustments.csv").open("a", encoding="utf-8") as f:  # an item huaian-2024 lacks
        f.write("91330382T80RCRHXNQ,2021,brand,5,市市场监管局,（合成）品牌名单\n")
    db = tmp_path / "s.duckdb"
    tokens = add_users(db)
    con = connect(db)
    set_password(con, NAMES["admin"], password("admin"))
    con.close()
    monkeypatch.setattr(routes, "today", lambda: TODAY)
    accident, new_firm = "91330382QADEKAMCHR", "91330382039148NEHM"
    with TestClient(create_app(Settings(db=db, data_root=root, runs_dir=tmp_path / "runs"))) as client:
        h = {role: bearer(t) for role, t in tokens.items()}
        made = client.post("/api/v1/evaluations", json={"year": 2021, "method": "huaian-2024", "data": "sample"},
                           headers=h["admin"])
        assert made.status_code == 201, made.text
        eid = made.json()["evaluation_id"]
        _publish(client, h, eid)
        book = openpyxl.load_workbook(io.BytesIO(client.get(f"/api/v1/evaluations/{eid}/publication/参评",
                                                            headers=h["admin"]).content)).active
        header = [c.value for c in book[4]]
        rows = {r[header.index("统一社会信用代码")]: dict(zip(header, r)) for r in book.iter_rows(min_row=5, values_only=True)}
        assert rows[accident]["等级"] == "D"
        assert "一票否决，等级定为D" in rows[accident]["加减分说明"]
        assert rows[new_firm]["等级"] == "T" and "T类" in rows[new_firm]["不定等级原因"]
        sign_in(client, "admin")
        html = client.get(f"/evaluations/{eid}?q={accident}").text
        assert "一票否决，等级定为D" in html
        assert '<option value="all">参评</option>' in html
        assert "T（暂不评价）" in client.get(f"/evaluations/{eid}?q={new_firm}").text
        # the refused 加减分 row was told only to the API caller of the 测算; the page (and GET) say it too
        said = "加减分表中 1 行不能使用"
        assert any(said in w for w in client.get(f"/api/v1/evaluations/{eid}", headers=h["township"]).json()["warnings"])
        # the rejected rows of 2021 (and of rows whose year cannot be read): an evaluation reads
        # one data year's rows only; the sample's problems in other years are not read (issue 15)
        assert said in html and "测算时拒收输入数据 5 行" in html
        # its score item by item, in the method's order, adding up to the base score; 加减分 beside
        trace = client.get(f"/api/v1/evaluations/{eid}/firms/{accident}", headers=h["admin"]).json()
        scored = [i for i in trace["items"] if i["item_score"] is not None]
        assert len(scored) >= 3 and all(i["baseline"] and i["weight"] for i in scored)
        assert sum(i["item_score"] for i in trace["items"]) == pytest.approx(trace["firm"]["base_score"])
        order = [k for k in trace["firm"]["detail"] if f"{k}_score" in trace["firm"]["detail"]]
        assert [i["indicator"] for i in trace["items"]] == order
        page = client.get(f"/evaluations/{eid}/firms/{accident}").text
        assert "一票否决" in page and scored[0]["indicator_name"] in page


def test_a_method_sets_the_publication_length_as_the_docs_say(service):
    # docs/evaluation-workflow.md: the default length is the method's when it gives one.  A method
    # file could not: ``publication_days`` was "不认识的键", so every bureau got the service's 7 days.
    # Now ``publication: {days, cite}`` is read (5 days here: 2026-12-01 to 12-05), and a length
    # outside 1..60 is a method error naming the key.
    client, h, _, data = service
    doc = yaml.safe_load((data / f"{METHOD_ID}.yaml").read_text(encoding="utf-8"))
    doc["publication"] = {"days": 5, "cite": {"source": "project_assumption", "clause": "测试"}}
    (data / f"{METHOD_ID}.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    eid = _create(client, h)["evaluation_id"]
    answer = client.post(f"/api/v1/evaluations/{eid}/publish", json={}, headers=h["admin"])
    assert (answer.json()["publication_start"], answer.json()["publication_end"]) == ("2026-12-01", "2026-12-05")
    doc["publication"]["days"] = 0
    (data / f"{METHOD_ID}.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    bad = client.post("/api/v1/evaluations", json={"year": 2021, "method": f"{METHOD_ID}.yaml"}, headers=h["admin"])
    assert bad.status_code == 422 and "publication.days" in bad.json()["detail"], bad.text


def test_two_publications_of_one_year_at_once_leave_one_published(service, monkeypatch):
    # Two admins publish two trial 测算 of 2021 at the same moment: each request checked "no other
    # 2021 evaluation is published", then wrote; both got 201 and the year had two publications
    # (and could get two 定稿).  The step is serialised now: one 201, one 409 naming the other.
    client, h, _, _ = service
    first, second = _create(client, h)["evaluation_id"], _create(client, h)["evaluation_id"]
    slow = routes.method_from_text

    def method_from_text(*args):  # the window between the check and the write, made wide
        threading.Event().wait(0.3)
        return slow(*args)

    monkeypatch.setattr(routes, "method_from_text", method_from_text)
    codes = {}

    def publish(eid):
        codes[eid] = client.post(f"/api/v1/evaluations/{eid}/publish", json={"start": str(TODAY), "days": 3},
                                 headers=h["admin"]).status_code

    threads = [threading.Thread(target=publish, args=(e,)) for e in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes.values()) == [201, 409]
    states = [i["status"] for i in client.get("/api/v1/evaluations?year=2021", headers=h["admin"]).json()["items"]]
    assert sorted(states) == ["computed", "published"]


def test_the_review_page_recomputes_off_the_event_loop(tmp_path, monkeypatch):
    """The review recomputes every score (seconds on a province): the page's async handler used to
    run it on the event loop, so the whole service stopped answering meanwhile."""
    import asyncio

    data = write_data(tmp_path)
    db = tmp_path / "s.duckdb"
    tokens = add_users(db)
    con = connect(db)
    set_password(con, "经信局", password("admin"))
    con.close()
    monkeypatch.setattr(routes, "today", lambda: TODAY)
    real, seen = routes.review, []

    def review(**kwargs):
        try:
            asyncio.get_running_loop()
            seen.append("event loop")
        except RuntimeError:
            seen.append("worker thread")
        return real(**kwargs)

    monkeypatch.setattr(routes, "review", review)
    with TestClient(create_app(Settings(db=db, data_root=data, runs_dir=tmp_path / "runs"))) as client:
        h = {role: bearer(t) for role, t in tokens.items()}
        eid, land, other = _to_review(client, h, monkeypatch)
        csrf = sign_in(client, "admin")
        page = client.post(f"/evaluations/{eid}/review", data={
            "csrf_token": csrf, "note": "批量复核", f"decision_{land}": "accepted", f"decision_{other}": "rejected"})
        assert page.status_code == 200, page.text
    assert seen == ["worker thread"]
