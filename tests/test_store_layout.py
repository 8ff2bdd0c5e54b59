"""Issue 15: a run's rule titles and citations are stored once per rule (run_rules), not on each
of its run_results rows, and every reader joins them back.  A database the previous version
wrote (schema 1: the two texts on every run_results row, no run_rules) reads the same, read-only
as it is, and is migrated by the first writer (a run, the service's start, a restore)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest
from fastapi.testclient import TestClient

from api.auth import add_user
from api.config import Settings
from api.main import create_app
from api_helpers import bearer
from cli_helpers import cli
from screening import backup as bk
from screening.compare import compare_runs
from screening.store import LEGACY_TABLES, RESULT_COLUMNS, STORED_TABLES, connect, results_relation, rules_relation

pytestmark = pytest.mark.e2e

#: run_results as schema 1 (the version before issue 15's database slimming) wrote it
SCHEMA_1_RESULTS = (
    ("list_year", "INTEGER"), ("uscc", "VARCHAR"), ("rule_id", "VARCHAR"), ("rule_title", "VARCHAR"),
    ("status", "VARCHAR"), ("value", "DOUBLE"), ("threshold", "DOUBLE"), ("industry_avg", "DOUBLE"),
    ("industry_group", "VARCHAR"), ("industry_group_name", "VARCHAR"), ("group_firms", "BIGINT"),
    ("value_prev", "DOUBLE"), ("value_last", "DOUBLE"), ("value_text", "VARCHAR"), ("threshold_text", "VARCHAR"),
    ("years", "VARCHAR"), ("value_prev_text", "VARCHAR"), ("value_last_text", "VARCHAR"), ("source", "VARCHAR"),
    ("reason_code", "VARCHAR"), ("reason", "VARCHAR"), ("detail", "VARCHAR"), ("citation", "VARCHAR"),
    ("run_id", "VARCHAR"))
RULES = 4


def to_schema_1(db: Path) -> None:
    """Rewrite ``db`` as the previous version left it: run_results with both texts on every row
    (its per-firm index as the service made it), no run_rules, schema_version 1."""
    listed = ", ".join(f"k.{c}" if c in ("rule_title", "citation") else f"r.{c}" for c, _ in SCHEMA_1_RESULTS)
    con = duckdb.connect(str(db))
    try:
        con.execute(f"CREATE TABLE v1 AS SELECT {listed} FROM run_results r JOIN run_rules k USING (run_id, rule_id)")
        con.execute("DROP INDEX IF EXISTS run_results_uscc")
        con.execute("DROP TABLE run_results")
        con.execute("ALTER TABLE v1 RENAME TO run_results")
        con.execute("DROP TABLE run_rules")
        con.execute("CREATE INDEX run_results_uscc ON run_results (uscc)")
        con.execute("UPDATE schema_info SET value = '1' WHERE key = 'schema_version'")
        assert tuple((n, t) for n, t, *_ in con.execute("DESCRIBE run_results").fetchall()) == SCHEMA_1_RESULTS
    finally:
        con.close()


@pytest.fixture(scope="module")
def dbs(tmp_path_factory) -> dict[str, Path]:
    """The sample's 2021 and 2022 runs in one database (``new``), and the same file in schema 1 (``old``)."""
    tmp = tmp_path_factory.mktemp("layout")
    new = tmp / "new.duckdb"
    for year in (2021, 2022):
        proc = cli("run", "--out", f"out{year}", "--db", new, "--year", year, cwd=tmp)
        assert proc.returncode == 0, proc.stderr
    old = tmp / "old.duckdb"
    shutil.copy(new, old)
    to_schema_1(old)
    return {"new": new, "old": old, "tmp": tmp}


def _copy(db: Path, to: Path) -> Path:
    shutil.copy(db, to)
    return to


def _results(db: Path) -> pl.DataFrame:
    con = connect(db, read_only=True)
    try:
        return con.sql(f"SELECT * FROM {results_relation(con)} ORDER BY run_id, uscc, rule_id").pl()
    finally:
        con.close()


def _rules(db: Path) -> list[tuple]:
    con = connect(db, read_only=True)
    try:
        return con.execute(f"SELECT * FROM {rules_relation(con)} ORDER BY run_id, rule_id").fetchall()
    finally:
        con.close()


def _describe(con, table: str) -> tuple:
    return tuple((n, t) for n, t, *_ in con.execute(f"DESCRIBE {table}").fetchall())


def test_the_rule_texts_are_stored_once_per_rule_of_a_run(dbs):
    con = connect(dbs["new"], read_only=True)
    try:
        assert _describe(con, "run_results") == STORED_TABLES["run_results"]
        assert not {"rule_title", "citation"} & {c for c, _ in STORED_TABLES["run_results"]}
        runs = con.execute("SELECT run_id, count(*), count(DISTINCT rule_id) FROM run_rules GROUP BY run_id").fetchall()
        assert len(runs) == 2 and all(n == distinct == RULES for _, n, distinct in runs)
        assert con.execute("SELECT value FROM schema_info WHERE key = 'schema_version'").fetchall() == [("2",)]
    finally:
        con.close()
    # the texts are the ones rules.csv and rules.parquet give (results.parquet does not repeat them)
    run = json.loads((dbs["tmp"] / "out2022" / "run.json").read_text(encoding="utf-8"))["run_id"]
    stored = sorted((r, t, c) for run_id, r, t, c in _rules(dbs["new"]) if run_id == run)
    assert stored == sorted(pl.read_csv(dbs["tmp"] / "out2022" / "rules.csv").rows())
    assert stored == sorted(pl.read_parquet(dbs["tmp"] / "out2022" / "rules.parquet").rows())


def test_legacy_layout_is_schema_1():
    assert LEGACY_TABLES["run_results"] == RESULT_COLUMNS == SCHEMA_1_RESULTS


def test_an_unmigrated_old_database_reads_the_same_read_only(dbs):
    new, old = _results(dbs["new"]), _results(dbs["old"])
    assert new.columns == [c for c, _ in SCHEMA_1_RESULTS]
    assert new.height == old.height > 0 and new.equals(old)
    assert new.filter(pl.col("rule_title").is_null() | pl.col("citation").is_null()).is_empty()
    assert _rules(dbs["new"]) == _rules(dbs["old"])
    con = connect(dbs["old"], read_only=True)  # nothing was migrated by reading
    try:
        assert _describe(con, "run_results") == SCHEMA_1_RESULTS
    finally:
        con.close()
    # compare opens the file read-only; its reasons name the rules by title
    before, after = compare_runs(dbs["new"], 2021, 2022), compare_runs(dbs["old"], 2021, 2022)
    assert before.equals(after) and before["reason"].str.contains("：由").any()


def test_a_run_written_into_an_old_database_migrates_it(dbs, tmp_path):
    db = _copy(dbs["old"], tmp_path / "old.duckdb")
    proc = cli("run", "--out", "again", "--db", db, "--year", 2022, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    con = connect(db, read_only=True)
    try:
        assert _describe(con, "run_results") == STORED_TABLES["run_results"]
        assert _describe(con, "run_rules") == STORED_TABLES["run_rules"]
        assert con.execute("SELECT value FROM schema_info WHERE key = 'schema_version'").fetchall() == [("2",)]
        assert con.execute("SELECT count(*) FROM run_rules").fetchall() == [(3 * RULES,)]
        assert con.execute("SELECT expressions FROM duckdb_indexes() WHERE table_name = 'run_results' "
                           "AND index_name = 'run_results_uscc'").fetchall() == [("[uscc]",)]
        runs = [r for r, in con.execute("SELECT run_id FROM runs ORDER BY created_at").fetchall()]
    finally:
        con.close()
    migrated = _results(db)
    assert migrated.filter(pl.col("run_id").is_in(runs[:2])).equals(_results(dbs["new"]))
    assert migrated.filter(pl.col("run_id") == runs[2]).drop("run_id").equals(
        migrated.filter(pl.col("run_id") == runs[1]).drop("run_id"))


def _service_answers(db: Path) -> dict[str, object]:
    """What the service answers about a listed firm of 2022 (the rules with their titles and
    citations), and the list export that names each firm's hit rules by title."""
    con = connect(db)
    try:
        token = add_user(con, "经信局", "admin", None)
        firm = con.execute("SELECT uscc FROM run_list l JOIN runs USING (run_id) WHERE runs.list_year = 2022 "
                           "ORDER BY hit_count DESC, uscc LIMIT 1").fetchall()[0][0]
    finally:
        con.close()
    with TestClient(create_app(Settings(db=db))) as client:
        record = client.get(f"/api/v1/enterprises/{firm}?year=2022", headers=bearer(token))
        export = client.get("/api/v1/lists/2022/export?format=csv", headers=bearer(token))
    assert record.status_code == 200 and export.status_code == 200
    return {"record": record.json(), "export": export.content}


def test_the_service_migrates_an_old_database_and_answers_the_same(dbs, tmp_path):
    new = _service_answers(_copy(dbs["new"], tmp_path / "new.duckdb"))
    old = _service_answers(_copy(dbs["old"], tmp_path / "old.duckdb"))
    assert new == old
    hits = [r for r in new["record"]["results"] if r["status"] == "hit"]
    assert hits and all(r["rule_title"] and r["citation"] for r in hits)
    assert "；".join(r["rule_title"] for r in hits).encode() in new["export"]
    con = connect(tmp_path / "old.duckdb", read_only=True)
    try:
        assert _describe(con, "run_results") == STORED_TABLES["run_results"]
    finally:
        con.close()


def _backed_up_and_restored(db, tmp_path):
    """Back ``db`` up (it must verify clean), restore the backup, and check the restored file
    has the current run_results layout and verifies clean; returns the restored file."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert not bk.verify_database(con, db).problems
        made = bk.write_backup(con, tmp_path / "bk", db.name)
    finally:
        con.close()
    restored = tmp_path / "restored.duckdb"
    bk.restore(made.path, restored)
    con = connect(restored, read_only=True)
    try:
        assert _describe(con, "run_results") == STORED_TABLES["run_results"]
        assert not bk.verify_database(con, restored).problems
    finally:
        con.close()
    return restored


def test_a_backup_of_an_old_database_restores_migrated(dbs, tmp_path):
    restored = _backed_up_and_restored(dbs["old"], tmp_path)
    assert _results(restored).equals(_results(dbs["new"]))


def test_verify_counts_each_runs_rules(dbs, tmp_path):
    db = _copy(dbs["new"], tmp_path / "new.duckdb")
    con = duckdb.connect(str(db))
    try:
        assert not bk.verify_database(con, db).problems
        con.execute("DELETE FROM run_rules WHERE rule_id = 'energy_limit_exceeded' AND run_id = "
                    "(SELECT run_id FROM runs WHERE list_year = 2022)")
        problems = bk.verify_database(con, db).problems
    finally:
        con.close()
    assert len(problems) == 1 and "run_rules 有 3 行" in problems[0]


def old_version_writes_into(db: Path) -> str:
    """What the previous version's ``screening run --db`` does to a schema-2 file (it knows no
    run_rules): its _copy adds the two text columns it misses to run_results, at the end, and
    appends a run whose result rows carry them (here: a copy of the 2022 run under a new id).  Returns
    the new run's id."""
    run = "2022-old-version-writer"
    con = duckdb.connect(str(db))
    try:
        con.execute("ALTER TABLE run_results ADD COLUMN rule_title VARCHAR")
        con.execute("ALTER TABLE run_results ADD COLUMN citation VARCHAR")
        last = con.execute("SELECT run_id FROM runs WHERE list_year = 2022").fetchall()[0][0]
        con.execute("INSERT INTO runs SELECT * REPLACE (? AS run_id, created_at + INTERVAL 1 HOUR AS created_at) FROM runs "
                    "WHERE run_id = ?", [run, last])
        con.execute("INSERT INTO run_results BY NAME SELECT r.* EXCLUDE (run_id, rule_title, citation), "
                    "? AS run_id, k.rule_title, k.citation FROM run_results r JOIN run_rules k USING (run_id, rule_id) "
                    "WHERE run_id = ?", [run, last])
        for table in ("run_list", "run_rejects", "run_enterprises", "run_anomalies"):
            con.execute(f"INSERT INTO {table} SELECT * REPLACE (? AS run_id) FROM {table} WHERE run_id = ?", [run, last])
    finally:
        con.close()
    return run


def test_a_file_the_previous_version_wrote_into_after_migration_reads_the_same(dbs, tmp_path):
    """A schema-2 file that an older installation then ran into (both texts back on run_results,
    empty on every row written since the migration, and run_rules kept) reads every run with
    its titles and citations, once per row; the next writer migrates it without doubling a run."""
    db = _copy(dbs["new"], tmp_path / "mixed.duckdb")
    before = _results(db)
    run = old_version_writes_into(db)
    expected = pl.concat([before, before.filter(pl.col("list_year") == 2022).with_columns(pl.lit(run).alias("run_id"))])
    expected = expected.sort("run_id", "uscc", "rule_id")

    def check() -> None:
        read = _results(db)
        assert read.columns == [c for c, _ in RESULT_COLUMNS]
        assert read.filter(pl.col("rule_title").is_null() | pl.col("citation").is_null()).is_empty()
        assert read.equals(expected)
        rules = _rules(db)
        assert len(rules) == len({(r[0], r[1]) for r in rules}) == 3 * RULES and all(r[2] and r[3] for r in rules)

    check()  # read-only, as it is
    con = connect(db)
    try:
        from api.db import ensure_schema
        ensure_schema(con)  # the service's start migrates it
        assert _describe(con, "run_results") == STORED_TABLES["run_results"]
    finally:
        con.close()
    check()


def test_a_backup_of_a_file_the_previous_version_wrote_into_restores_migrated(dbs, tmp_path):
    """The same file (see the test above): verify finds nothing wrong with its runs, and its
    backup restores, migrated, reading the same."""
    db = _copy(dbs["new"], tmp_path / "mixed.duckdb")
    old_version_writes_into(db)
    expected = _results(db)
    restored = _backed_up_and_restored(db, tmp_path)
    con = connect(restored, read_only=True)
    try:
        assert con.execute("SELECT count(*), count(DISTINCT (run_id, rule_id)) FROM run_rules").fetchall() == [
            (3 * RULES, 3 * RULES)]
    finally:
        con.close()
    assert _results(restored).equals(expected)
