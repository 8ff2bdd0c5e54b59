"""The post-run audit (sql/audit/statuses.sql): silent on a normal screen, names each kind of damage.

One screening of the bundled sample is shared by the module; every test damages the
engine's ``results`` table inside a transaction and rolls it back afterwards.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import duckdb
import polars as pl
import pytest

from screening.engine import sql_text
from screening.screen import Screening, screen

pytestmark = pytest.mark.sql

R1, R2, R3, R4 = (
    "above_scale_low_tax_per_mu",
    "below_scale_consecutive_c_grade",
    "below_scale_consecutive_low_tax_per_mu",
    "energy_limit_exceeded",
)


@pytest.fixture(scope="module")
def s() -> Iterator[Screening]:
    with screen(None, 2022) as screening:
        yield screening


def audit(s: Screening) -> pl.DataFrame:
    """Exactly as screen() runs it."""
    return s.engine.query("audit/statuses.sql", sql_text("audit/statuses.sql"), {"rule_ids": s.ruleset.enabled})


def problems(s: Screening) -> set[tuple[int | None, str, str]]:
    return {(f, str(r), p) for f, r, p in audit(s).select("firm_id", "rule_id", "problem").iter_rows()}


@contextmanager
def tampering(s: Screening) -> Iterator[duckdb.DuckDBPyConnection]:
    con = s.engine.con
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    finally:
        con.execute("ROLLBACK")
    assert audit(s).height == 0, "rollback did not restore the results"


def one(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None):
    return con.execute(sql, params or []).fetchall()[0][0]


def a_firm(con, rule_id: str, status: str | None = None) -> int:
    where = "rule_id = ?" + (" AND status = ?" if status else "")
    return one(con, f"SELECT min(firm_id) FROM results WHERE {where}", [rule_id] + ([status] if status else []))


def test_normal_screen_passes_the_audit(s: Screening):
    assert s.audit.height == 0
    result = audit(s)
    assert result.height == 0
    assert {"firm_id", "rule_id", "problem"} <= set(result.columns)


def test_results_table_is_complete_before_tampering(s: Screening):
    con = s.engine.con
    assert one(con, "SELECT count(*) FROM results") == one(con, "SELECT count(*) FROM firm_panel") * 4


def test_missing_row(s: Screening):
    with tampering(s) as con:
        firm = a_firm(con, R3)
        con.execute("DELETE FROM results WHERE firm_id = ? AND rule_id = ?", [firm, R3])
        assert problems(s) == {(firm, R3, "missing")}


def test_whole_rule_missing(s: Screening):
    with tampering(s) as con:
        n = one(con, "SELECT count(*) FROM firm_panel")
        con.execute("DELETE FROM results WHERE rule_id = ?", [R4])
        found = audit(s)
        assert found.height == n
        assert set(found["problem"]) == {"missing"}
        assert set(found["rule_id"].cast(pl.String)) == {R4}


def test_duplicate_row(s: Screening):
    with tampering(s) as con:
        firm = a_firm(con, R1, "pass")
        con.execute("INSERT INTO results SELECT * FROM results WHERE firm_id = ? AND rule_id = ?", [firm, R1])
        assert problems(s) == {(firm, R1, "duplicate")}


def test_duplicate_with_a_different_status(s: Screening):
    with tampering(s) as con:
        firm = a_firm(con, R2, "pass")
        con.execute("INSERT INTO results SELECT * REPLACE ('hit' AS status) FROM results "
                    "WHERE firm_id = ? AND rule_id = ?", [firm, R2])
        assert problems(s) == {(firm, R2, "duplicate")}


def test_invalid_status(s: Screening):
    with tampering(s) as con:
        firm = a_firm(con, R2)
        con.execute("UPDATE results SET status = NULL WHERE firm_id = ? AND rule_id = ?", [firm, R2])
        assert problems(s) == {(firm, R2, "invalid_status")}


def test_unexpected_row_for_unknown_enterprise(s: Screening):
    with tampering(s) as con:
        stranger = one(con, "SELECT max(firm_id) FROM firm_panel") + 1000
        template = a_firm(con, R1, "pass")
        con.execute("INSERT INTO results SELECT * REPLACE (?::UINTEGER AS firm_id) FROM results "
                    "WHERE firm_id = ? AND rule_id = ?", [stranger, template, R1])
        assert problems(s) == {(stranger, R1, "unexpected")}


def test_row_without_an_enterprise(s: Screening):
    """A rule row naming no firm (a NULL firm_id, e.g. from an outer join in a rule's SQL) would
    vanish from every output (they join the panel): the audit names it."""
    with tampering(s) as con:
        template = a_firm(con, R1, "pass")
        con.execute("INSERT INTO results SELECT * REPLACE (NULL::UINTEGER AS firm_id) FROM results "
                    "WHERE firm_id = ? AND rule_id = ?", [template, R1])
        assert problems(s) == {(None, R1, "unexpected")}


def test_row_without_a_rule(s: Screening):
    with tampering(s) as con:
        firm = a_firm(con, R1, "pass")
        con.execute("INSERT INTO results SELECT * REPLACE (NULL AS rule_id) FROM results "
                    "WHERE firm_id = ? AND rule_id = ?", [firm, R1])
        assert problems(s) == {(firm, "None", "unexpected")}


def test_row_moved_to_another_enterprise(s: Screening):
    """Counts per rule stay right (n = enterprises), yet one firm is missing and one doubled."""
    with tampering(s) as con:
        a = a_firm(con, R1)
        b = one(con, "SELECT min(firm_id) FROM results WHERE rule_id = ? AND firm_id > ?", [R1, a])
        con.execute("UPDATE results SET firm_id = ? WHERE firm_id = ? AND rule_id = ?", [b, a, R1])
        assert problems(s) == {(a, R1, "missing"), (b, R1, "duplicate")}


def test_row_moved_to_another_rule(s: Screening):
    with tampering(s) as con:
        firm = a_firm(con, R1)
        con.execute("UPDATE results SET rule_id = ? WHERE firm_id = ? AND rule_id = ?", [R3, firm, R1])
        assert problems(s) == {(firm, R1, "missing"), (firm, R3, "duplicate")}


@pytest.mark.parametrize("rule_id", [R1, R3, R4])
@pytest.mark.parametrize("column", ["value", "threshold"])
def test_hit_without_evidence(s: Screening, rule_id: str, column: str):
    with tampering(s) as con:
        firm = a_firm(con, rule_id, "hit")
        assert firm is not None
        con.execute(f"UPDATE results SET {column} = NULL WHERE firm_id = ? AND rule_id = ?", [firm, rule_id])
        assert problems(s) == {(firm, rule_id, "hit_without_evidence")}


def test_grade_rule_hits_need_no_numbers(s: Screening):
    """Rule 2 judges grades (text), so its hits carry no value/threshold and that is fine."""
    con = s.engine.con
    assert one(con, "SELECT count(*) FROM results WHERE rule_id = ? AND status = 'hit'", [R2]) > 0
    assert one(con, "SELECT count(*) FROM results WHERE rule_id = ? AND status = 'hit' AND value IS NULL", [R2]) > 0
    assert audit(s).height == 0


@pytest.mark.parametrize("rule_id", [R1, R3, R4])
@pytest.mark.parametrize("column", ["value", "threshold"])
def test_pass_without_evidence(s: Screening, rule_id: str, column: str):
    """A numeric pass must show the figure and the threshold it was compared with: a pass
    with no value is how a missing figure read as "not below" would look."""
    with tampering(s) as con:
        firm = a_firm(con, rule_id, "pass")
        assert firm is not None
        con.execute(f"UPDATE results SET {column} = NULL WHERE firm_id = ? AND rule_id = ?", [firm, rule_id])
        assert problems(s) == {(firm, rule_id, "pass_without_evidence")}


@pytest.mark.parametrize("status", ["hit", "pass"])
@pytest.mark.parametrize("column", ["value_prev_text", "value_last_text"])
def test_grade_rule_judgement_without_grades(s: Screening, status: str, column: str):
    with tampering(s) as con:
        firm = a_firm(con, R2, status)
        con.execute(f"UPDATE results SET {column} = NULL WHERE firm_id = ? AND rule_id = ?", [firm, R2])
        assert problems(s) == {(firm, R2, f"{status}_without_evidence")}


@pytest.mark.parametrize("rule_id, code", [(R1, "tax_missing"), (R1, "land_missing"), (R3, "tax_missing"),
                                           (R3, "land_missing"), (R2, "grade_missing"), (R2, "land_missing")])
def test_missing_data_without_its_years(s: Screening, rule_id: str, code: str):
    """insufficient_data for a missing figure names the years it is missing in."""
    with tampering(s) as con:
        firm = one(con, "SELECT min(firm_id) FROM results WHERE rule_id = ? AND reason_code = ?", [rule_id, code])
        if firm is None:  # the sample has no such row: make one from any row of the rule
            firm = a_firm(con, rule_id, "pass")
            con.execute("UPDATE results SET status = 'insufficient_data', reason_code = ?, value = NULL, "
                        "threshold = NULL, detail = '2021' WHERE firm_id = ? AND rule_id = ?", [code, firm, rule_id])
            assert audit(s).height == 0
        con.execute("UPDATE results SET detail = NULL WHERE firm_id = ? AND rule_id = ?", [firm, rule_id])
        assert problems(s) == {(firm, rule_id, "missing_data_without_years")}


def test_every_judgement_of_the_sample_carries_its_evidence(s: Screening):
    """The real run: every hit and pass has its evidence, every missing figure its years."""
    con = s.engine.con
    assert one(con, "SELECT count(*) FROM results WHERE status = 'pass' AND rule_id <> ?", [R2]) > 0
    assert one(con, "SELECT count(*) FROM results WHERE status = 'insufficient_data' AND detail IS NOT NULL") > 0
    assert audit(s).height == 0


def test_several_problems_reported_together(s: Screening):
    with tampering(s) as con:
        gone = a_firm(con, R3)
        doubled = a_firm(con, R4)
        bare = a_firm(con, R1, "hit")
        con.execute("DELETE FROM results WHERE firm_id = ? AND rule_id = ?", [gone, R3])
        con.execute("INSERT INTO results SELECT * FROM results WHERE firm_id = ? AND rule_id = ?", [doubled, R4])
        con.execute("UPDATE results SET value = NULL WHERE firm_id = ? AND rule_id = ?", [bare, R1])
        assert problems(s) == {(gone, R3, "missing"), (doubled, R4, "duplicate"),
                               (bare, R1, "hit_without_evidence")}
