"""Issue 15: a run's rule titles and citations are stored once per rule (run_rules), not on each
of its run_results rows, and run_results names its firm by its number in the run (run_enterprises.firm),
not by uscc; every reader joins them back.  A database an older version wrote (schema 1: the two
texts and uscc on every run_results row, no run_rules; schema 2: uscc on every row) reads the same,
read-only as it is, and is migrated by the first writer (a run, the service's start, a restore)."""
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
from screening.store import (LEGACY_TABLES, RESULT_COLUMNS, STORED_TABLES, connect, legacy_layout, results_relation,
                             rules_relation)

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


#: run_results as schema 2 wrote it: uscc on every row, no rule texts
SCHEMA_2_RESULTS = tuple(c for c in SCHEMA_1_RESULTS if c[0] not in ("rule_title", "citation"))


def to_schema_2(db: Path) -> None:
    """Rewrite ``db`` as schema 2 left it: run_results with each firm's uscc instead of its number
    (its per-firm index on uscc, as the service made it), run_enterprises without the number,
    schema_version 2."""
    listed = ", ".join("e.uscc" if c == "uscc" else f"r.{c}" for c, _ in SCHEMA_2_RESULTS)
    con = duckdb.connect(str(db))
    try:
        con.execute(f"CREATE TABLE v2 AS SELECT {listed} FROM run_results r "
                    "JOIN run_enterprises e ON e.run_id = r.run_id AND e.firm = r.firm")
        for index in ("run_results_firm", "run_enterprises_uscc"):
            con.execute(f"DROP INDEX IF EXISTS {index}")
        con.execute("DROP TABLE run_results")
        con.execute("ALTER TABLE v2 RENAME TO run_results")
        con.execute("ALTER TABLE run_enterprises DROP COLUMN firm")
        con.execute("CREATE INDEX run_results_uscc ON run_results (uscc)")
        con.execute("CREATE INDEX run_enterprises_uscc ON run_enterprises (uscc)")
        con.execute("UPDATE schema_info SET value = '2' WHERE key = 'schema_version'")
        assert tuple((n, t) for n, t, *_ in con.execute("DESCRIBE run_results").fetchall()) == SCHEMA_2_RESULTS
    finally:
        con.close()


def to_schema_1(db: Path) -> None:
    """Rewrite ``db`` as schema 1 left it: as schema 2, and run_results with both texts on every row
    (its per-firm index as the service made it), no run_rules, schema_version 1."""
    to_schema_2(db)
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
    """The sample's 2021 and 2022 runs in one database (``new``), and the same file in schema 1
    (``old``) and in schema 2 (``v2``)."""
    tmp = tmp_path_factory.mktemp("layout")
    new = tmp / "new.duckdb"
    for year in (2021, 2022):
        proc = cli("run", "--out", f"out{year}", "--db", new, "--year", year, cwd=tmp)
        assert proc.returncode == 0, proc.stderr
    old, v2 = tmp / "old.duckdb", tmp / "v2.duckdb"
    shutil.copy(new, old)
    to_schema_1(old)
    shutil.copy(new, v2)
    to_schema_2(v2)
    return {"new": new, "old": old, "v2": v2, "tmp": tmp}


#: the older layouts every test of a migration runs on
OLDER = ("old", "v2")


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
        assert not {"rule_title", "citation", "uscc"} & {c for c, _ in STORED_TABLES["run_results"]}
        runs = con.execute("SELECT run_id, count(*), count(DISTINCT rule_id) FROM run_rules GROUP BY run_id").fetchall()
        assert len(runs) == 2 and all(n == distinct == RULES for _, n, distinct in runs)
        assert con.execute("SELECT value FROM schema_info WHERE key = 'schema_version'").fetchall() == [("3",)]
    finally:
        con.close()
    # the texts are the ones rules.csv and rules.parquet give (results.parquet does not repeat them)
    run = json.loads((dbs["tmp"] / "out2022" / "run.json").read_text(encoding="utf-8"))["run_id"]
    stored = sorted((r, t, c) for run_id, r, t, c in _rules(dbs["new"]) if run_id == run)
    assert stored == sorted(pl.read_csv(dbs["tmp"] / "out2022" / "rules.csv").rows())
    assert stored == sorted(pl.read_parquet(dbs["tmp"] / "out2022" / "rules.parquet").rows())


def test_the_firm_is_stored_by_its_number_in_the_run(dbs):
    """run_results names each firm by run_enterprises.firm (one number per firm of the run, the
    engine's registry order); read back, every row has its uscc as results.parquet gives it."""
    con = connect(dbs["new"], read_only=True)
    try:
        assert _describe(con, "run_enterprises") == STORED_TABLES["run_enterprises"]
        assert con.execute("SELECT count(*) FROM run_enterprises GROUP BY run_id HAVING count(DISTINCT firm) <> count(*) "
                           "OR count(DISTINCT uscc) <> count(*) OR count(firm) <> count(*)").fetchall() == []
        assert con.execute("SELECT count(*) FROM run_results r ANTI JOIN run_enterprises e "
                           "ON e.run_id = r.run_id AND e.firm = r.firm").fetchall() == [(0,)]
    finally:
        con.close()
    run = json.loads((dbs["tmp"] / "out2022" / "run.json").read_text(encoding="utf-8"))["run_id"]
    stored = _results(dbs["new"]).filter(pl.col("run_id") == run).drop("rule_title", "citation")
    on_disk = pl.read_parquet(dbs["tmp"] / "out2022" / "results.parquet").sort("run_id", "uscc", "rule_id")
    assert stored.height > 0 and stored.equals(on_disk.select(stored.columns))


def test_legacy_layouts_are_schema_1_and_2():
    assert LEGACY_TABLES["run_results"] == (RESULT_COLUMNS, SCHEMA_2_RESULTS) and RESULT_COLUMNS == SCHEMA_1_RESULTS
    assert LEGACY_TABLES["run_enterprises"] == (tuple(c for c in STORED_TABLES["run_enterprises"] if c[0] != "firm"),)
    assert legacy_layout("run_results", SCHEMA_1_RESULTS) and legacy_layout("run_results", SCHEMA_2_RESULTS)
    # the current layout with the columns an older version adds to it
    assert legacy_layout("run_results", STORED_TABLES["run_results"] + (("uscc", "VARCHAR"),))
    assert not legacy_layout("run_results", STORED_TABLES["run_results"])
    assert not legacy_layout("run_results", STORED_TABLES["run_results"] + (("other", "VARCHAR"),))
    assert not legacy_layout("run_results", SCHEMA_2_RESULTS[1:])


@pytest.mark.parametrize("older", OLDER)
def test_an_unmigrated_old_database_reads_the_same_read_only(dbs, older):
    new, old = _results(dbs["new"]), _results(dbs[older])
    assert new.columns == [c for c, _ in SCHEMA_1_RESULTS]
    assert new.height == old.height > 0 and new.equals(old)
    assert new.filter(pl.col("rule_title").is_null() | pl.col("citation").is_null() | pl.col("uscc").is_null()).is_empty()
    assert _rules(dbs["new"]) == _rules(dbs[older])
    con = connect(dbs[older], read_only=True)  # nothing was migrated by reading
    try:
        assert _describe(con, "run_results") == (SCHEMA_1_RESULTS if older == "old" else SCHEMA_2_RESULTS)
    finally:
        con.close()
    # compare opens the file read-only; its reasons name the rules by title
    before, after = compare_runs(dbs["new"], 2021, 2022), compare_runs(dbs[older], 2021, 2022)
    assert before.equals(after) and before["reason"].str.contains("：由").any()


def _current_layout(con) -> None:
    for table in ("run_results", "run_rules", "run_enterprises"):
        assert _describe(con, table) == STORED_TABLES[table]
    assert con.execute("SELECT value FROM schema_info WHERE key = 'schema_version'").fetchall() == [("3",)]


@pytest.mark.parametrize("older", OLDER)
def test_a_run_written_into_an_old_database_migrates_it(dbs, tmp_path, older):
    db = _copy(dbs[older], tmp_path / "old.duckdb")
    proc = cli("run", "--out", "again", "--db", db, "--year", 2022, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    con = connect(db, read_only=True)
    try:
        _current_layout(con)
        assert con.execute("SELECT count(*) FROM run_rules").fetchall() == [(3 * RULES,)]
        # the per-firm index, on the firm number now
        assert con.execute("SELECT index_name, expressions FROM duckdb_indexes() WHERE table_name = 'run_results'"
                           ).fetchall() == [("run_results_firm", "[firm]")]
        assert con.execute("SELECT expressions FROM duckdb_indexes() WHERE table_name = 'run_enterprises'"
                           ).fetchall() == [("[uscc]",)]
        runs = [r for r, in con.execute("SELECT run_id FROM runs ORDER BY created_at").fetchall()]
    finally:
        con.close()
    migrated = _results(db)
    assert migrated.filter(pl.col("run_id").is_in(runs[:2])).equals(_results(dbs["new"]))
    assert migrated.filter(pl.col("run_id") == runs[2]).drop("run_id").equals(
        migrated.filter(pl.col("run_id") == runs[1]).drop("run_id"))


def _damaged_v2(dbs, tmp_path, sql: str) -> Path:
    """A copy of the schema-2 file with ``sql`` run on it."""
    db = _copy(dbs["v2"], tmp_path / "v2.duckdb")
    con = duckdb.connect(str(db))
    try:
        con.execute(sql)
    finally:
        con.close()
    return db


def test_a_firm_of_the_results_missing_from_its_runs_enterprises_stops_the_migration(dbs, tmp_path):
    """Every version stored a run's results and its enterprises from the same firms; a file where
    they disagree is not migrated (a result row would lose its firm) and stays as it was."""
    db = _damaged_v2(dbs, tmp_path, "DELETE FROM run_enterprises WHERE uscc = (SELECT min(uscc) FROM run_enterprises)")
    proc = cli("run", "--out", "again", "--db", db, "--year", 2022, cwd=tmp_path)
    assert proc.returncode == 1
    assert "无法升级到本版本的结构" in proc.stderr and "run_enterprises" in proc.stderr and "Traceback" not in proc.stderr
    con = connect(db, read_only=True)
    try:
        assert _describe(con, "run_results") == SCHEMA_2_RESULTS
        assert con.execute("SELECT count(*) FROM runs").fetchall() == [(2,)]
    finally:
        con.close()


def test_run_results_without_run_enterprises_stops_the_migration_with_one_line(dbs, tmp_path):
    """A file whose run_results has no run_enterprises beside it cannot be given firm numbers:
    `screening run` and `screening serve` say so in one Chinese line (exit 1) and leave it as it was."""
    db = _damaged_v2(dbs, tmp_path, "DROP TABLE run_enterprises")
    for args in (("run", "--out", "again", "--year", 2022), ("serve", "--port", 8765)):
        proc = cli(*args, "--db", db, cwd=tmp_path, timeout=60)
        assert proc.returncode == 1, (args, proc.stderr)
        assert "无法升级到本版本的结构" in proc.stderr and "Traceback" not in proc.stderr
    con = connect(db, read_only=True)
    try:
        assert _describe(con, "run_results") == SCHEMA_2_RESULTS
    finally:
        con.close()


def test_serve_migrates_before_it_starts(dbs, tmp_path):
    """`screening serve` brings an older file to the current layout before the server starts (the
    check that the file is free opens it anyway): a migration that cannot be done is one line."""
    db = _damaged_v2(dbs, tmp_path, "DELETE FROM run_enterprises WHERE uscc = (SELECT min(uscc) FROM run_enterprises)")
    proc = cli("serve", "--db", db, "--port", 8766, cwd=tmp_path, timeout=60)
    assert proc.returncode == 1 and "run_enterprises" in proc.stderr and "Traceback" not in proc.stderr


def _service_answers(db: Path) -> dict[str, object]:
    """What the service answers about a listed firm of 2022 (the rules with their titles and
    citations, the firm's profile), and the list export that names each firm's hit rules by title."""
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


@pytest.mark.parametrize("older", OLDER)
def test_the_service_migrates_an_old_database_and_answers_the_same(dbs, tmp_path, older):
    new = _service_answers(_copy(dbs["new"], tmp_path / "new.duckdb"))
    old = _service_answers(_copy(dbs[older], tmp_path / "old.duckdb"))
    assert new == old
    hits = [r for r in new["record"]["results"] if r["status"] == "hit"]
    assert hits and all(r["rule_title"] and r["citation"] for r in hits)
    assert "firm" not in new["record"] and all("firm" not in r for r in new["record"]["results"])
    assert "；".join(r["rule_title"] for r in hits).encode() in new["export"]
    con = connect(tmp_path / "old.duckdb", read_only=True)
    try:
        _current_layout(con)
    finally:
        con.close()


def test_a_firms_results_are_read_by_its_number(dbs, tmp_path):
    """The enterprise record of a run the service has not loaded into memory yet is read by the
    firm's number (api.db.firm_results): the firm's rows of results_relation, in rule order."""
    from api.db import firm_results

    db = _copy(dbs["new"], tmp_path / "new.duckdb")
    con = connect(db, read_only=True)
    try:
        run, firm = con.execute("SELECT run_id, uscc FROM run_list l JOIN runs USING (run_id) WHERE runs.list_year = 2022 "
                                "ORDER BY hit_count DESC, uscc LIMIT 1").fetchall()[0]
        read = firm_results(con, firm, run)
        assert firm_results(con, "9" * 18, run) == []
        expected = con.execute(f"SELECT * FROM {results_relation(con)} WHERE uscc = ? AND run_id = ? ORDER BY rule_id",
                               [firm, run]).fetchall()
    finally:
        con.close()
    assert [tuple(r.values()) for r in read] == expected and len(read) == RULES
    assert list(read[0]) == [c for c, _ in RESULT_COLUMNS]


def _backed_up_and_restored(db, tmp_path):
    """Back ``db`` up (it must verify clean), restore the backup, and check the restored file
    has the current layout and verifies clean; returns the restored file."""
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
        _current_layout(con)
        assert not bk.verify_database(con, restored).problems
    finally:
        con.close()
    return restored


@pytest.mark.parametrize("older", OLDER)
def test_a_backup_of_an_old_database_restores_migrated(dbs, tmp_path, older):
    restored = _backed_up_and_restored(dbs[older], tmp_path)
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



def test_verify_reports_a_rule_named_twice_in_a_runs_rules(dbs, tmp_path):
    """run_rules has no key: a rule named twice (and another missing, so that the count still
    matches the run record) would repeat that rule's result rows wherever results are read with
    their texts; verify names the run and the rule."""
    db = _copy(dbs["new"], tmp_path / "twice.duckdb")
    con = duckdb.connect(str(db))
    try:
        run = con.execute("SELECT run_id FROM runs WHERE list_year = 2022").fetchall()[0][0]
        con.execute("UPDATE run_rules SET rule_id = 'above_scale_low_tax_per_mu' "
                    "WHERE run_id = ? AND rule_id = 'energy_limit_exceeded'", [run])
        problems = bk.verify_database(con, db).problems
    finally:
        con.close()
    assert problems == [f"运行 {run} 的规则表（run_rules）中规则 above_scale_low_tax_per_mu 出现不止一次"]

def old_version_writes_into(db: Path, version: int) -> str:
    """What an older version's ``screening run --db`` does to a current file: its _copy adds the
    columns it misses at the end (schema 2: run_results.uscc; schema 1 also the two texts, and it
    knows no run_rules), and appends a run (here: a copy of the 2022 run under a new id) whose
    rows name the firm by uscc and leave run_enterprises.firm empty.  Returns the new run's id."""
    run = f"2022-old-version-{version}-writer"
    added = ["uscc"] + (["rule_title", "citation"] if version == 1 else [])
    con = duckdb.connect(str(db))
    try:
        for column in added:
            con.execute(f"ALTER TABLE run_results ADD COLUMN {column} VARCHAR")
        last = con.execute("SELECT run_id FROM runs WHERE list_year = 2022").fetchall()[0][0]
        con.execute("INSERT INTO runs SELECT * REPLACE (? AS run_id, created_at + INTERVAL 1 HOUR AS created_at) FROM runs "
                    "WHERE run_id = ?", [run, last])
        texts = ", k.rule_title, k.citation" if version == 1 else ""
        con.execute(f"INSERT INTO run_results BY NAME SELECT r.* EXCLUDE (run_id, firm, {', '.join(added)}), "
                    f"? AS run_id, e.uscc{texts} FROM run_results r JOIN run_rules k USING (run_id, rule_id) "
                    "JOIN run_enterprises e ON e.run_id = r.run_id AND e.firm = r.firm WHERE r.run_id = ?", [run, last])
        if version == 2:
            con.execute("INSERT INTO run_rules SELECT * REPLACE (? AS run_id) FROM run_rules WHERE run_id = ?", [run, last])
        con.execute("INSERT INTO run_enterprises SELECT * REPLACE (? AS run_id, NULL AS firm) FROM run_enterprises "
                    "WHERE run_id = ?", [run, last])
        for table in ("run_list", "run_rejects", "run_anomalies"):
            con.execute(f"INSERT INTO {table} SELECT * REPLACE (? AS run_id) FROM {table} WHERE run_id = ?", [run, last])
    finally:
        con.close()
    return run


@pytest.mark.parametrize("version", (1, 2))
def test_a_file_an_older_version_wrote_into_after_migration_reads_the_same(dbs, tmp_path, version):
    """A current file that an older installation then ran into (uscc, and for schema 1 both texts,
    back on run_results, empty on every row written since the migration; run_rules kept) reads
    every run with its firms, titles and citations, once per row; the next writer migrates it
    without doubling a run."""
    db = _copy(dbs["new"], tmp_path / "mixed.duckdb")
    before = _results(db)
    run = old_version_writes_into(db, version)
    expected = pl.concat([before, before.filter(pl.col("list_year") == 2022).with_columns(pl.lit(run).alias("run_id"))])
    expected = expected.sort("run_id", "uscc", "rule_id")

    def check() -> None:
        read = _results(db)
        assert read.columns == [c for c, _ in RESULT_COLUMNS]
        assert read.filter(pl.col("rule_title").is_null() | pl.col("citation").is_null()
                           | pl.col("uscc").is_null()).is_empty()
        assert read.equals(expected)
        rules = _rules(db)
        assert len(rules) == len({(r[0], r[1]) for r in rules}) == 3 * RULES and all(r[2] and r[3] for r in rules)

    check()  # read-only, as it is
    con = connect(db)
    try:
        from api.db import ensure_schema
        ensure_schema(con)  # the service's start migrates it
        _current_layout(con)
        assert con.execute("SELECT count(*) FROM run_enterprises WHERE firm IS NULL").fetchall() == [(0,)]
    finally:
        con.close()
    check()


@pytest.mark.parametrize("version", (1, 2))
def test_a_backup_of_a_file_an_older_version_wrote_into_restores_migrated(dbs, tmp_path, version):
    """The same file (see the test above): verify finds nothing wrong with its runs, and its
    backup restores, migrated, reading the same."""
    db = _copy(dbs["new"], tmp_path / "mixed.duckdb")
    old_version_writes_into(db, version)
    expected = _results(db)
    restored = _backed_up_and_restored(db, tmp_path)
    con = connect(restored, read_only=True)
    try:
        assert con.execute("SELECT count(*), count(DISTINCT (run_id, rule_id)) FROM run_rules").fetchall() == [
            (3 * RULES, 3 * RULES)]
    finally:
        con.close()
    assert _results(restored).equals(expected)


@pytest.mark.parametrize("older", OLDER)
def test_verify_reports_an_old_layout_as_a_fact_not_a_problem(dbs, older):
    con = duckdb.connect(str(dbs[older]), read_only=True)
    try:
        report = bk.verify_database(con, dbs[older])
    finally:
        con.close()
    assert not report.problems
    said = [f for f in report.facts if "旧版本的结构" in f]
    assert any("run_results" in f and "统一社会信用代码" in f for f in said)
    assert any("run_enterprises" in f and "firm" in f for f in said)


@pytest.mark.parametrize("layout", ("v2", "mixed"))
def test_verify_reports_a_missing_run_rules_unless_the_results_carry_the_texts(dbs, tmp_path, layout):
    """Only run_results that carries the rule texts (schema 1) can do without run_rules; a file of
    schema 2, or one a schema-2 version wrote into after migration, that lacks it is reported as
    missing the table, not an internal error."""
    db = _copy(dbs["v2" if layout == "v2" else "new"], tmp_path / "no_rules.duckdb")
    if layout == "mixed":
        old_version_writes_into(db, 2)
    con = duckdb.connect(str(db))
    try:
        con.execute("DROP TABLE run_rules")
        report = bk.verify_database(con, db)
    finally:
        con.close()
    assert [p for p in report.problems if "缺少表" in p and "run_rules" in p]


def test_verify_reports_result_rows_whose_firm_number_is_no_firm_of_their_run(dbs, tmp_path):
    """A result row names its firm only by the run's firm number: one that no firm of its run holds
    is read without its uscc (the record and the list export lose it), so verify reports it; the
    rows an older version added since migration (firm empty, their own uscc) are not a problem."""
    db = _copy(dbs["new"], tmp_path / "renumbered.duckdb")
    old_version_writes_into(db, 2)
    con = duckdb.connect(str(db))
    try:
        assert not bk.verify_database(con, db).problems
        run = con.execute("SELECT run_id FROM runs WHERE list_year = 2021").fetchall()[0][0]
        con.execute("UPDATE run_enterprises SET firm = firm + 1000000 WHERE run_id = ? AND firm = 0", [run])
        problems = bk.verify_database(con, db).problems
    finally:
        con.close()
    assert problems == [f"运行 {run} 有 {RULES} 行判定结果的企业编号（firm）不在该次运行的企业表（run_enterprises）中"]


def test_verify_reports_a_column_added_since_as_a_fact(dbs, tmp_path):
    """run_rejects of a file from before its ``action`` column: the next save adds it at the end
    (store._copy), so verify says so and finds no problem; a column missing elsewhere is one."""
    db = _copy(dbs["new"], tmp_path / "new.duckdb")
    con = duckdb.connect(str(db))
    try:
        con.execute("ALTER TABLE run_rejects DROP COLUMN action")
        report = bk.verify_database(con, db)
        assert not report.problems and any("run_rejects" in f and "action" in f for f in report.facts)
        con.execute("ALTER TABLE run_list DROP COLUMN township")
        assert bk.verify_database(con, db).problems == ["表 run_list 的列与本版本不符"]
    finally:
        con.close()


@pytest.mark.parametrize("table, column", [("run_rules", "citation"), ("run_anomalies", "advisory")])
def test_verify_reports_a_last_column_no_version_lacked_as_a_problem(dbs, tmp_path, table, column):
    """Only a column that was added to a run table after a version had written it
    (store.ADDED_COLUMNS: run_rejects.action) is a fact when it is missing at the end; any other
    last column missing (every stored run's rule citations, the anomalies' advisory) is data the
    file has lost: a problem, not "the next save adds it"."""
    db = _copy(dbs["new"], tmp_path / "new.duckdb")
    con = duckdb.connect(str(db))
    try:
        for (index,) in con.execute("SELECT index_name FROM duckdb_indexes() WHERE table_name = ?", [table]).fetchall():
            con.execute(f"DROP INDEX {index}")
        assert _describe(con, table)[-1][0] == column
        con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        report = bk.verify_database(con, db)
    finally:
        con.close()
    assert f"表 {table} 的列与本版本不符" in report.problems
    assert not any(table in fact and column in fact for fact in report.facts)


def _without_firm_numbers(dbs, tmp_path) -> Path:
    """A copy of the current file whose run_enterprises lost its firm numbers (column dropped)
    while run_results still names each firm by its number: no version writes this, a damaged
    file or a hand edit does."""
    db = _copy(dbs["new"], tmp_path / "damaged.duckdb")
    con = duckdb.connect(str(db))
    try:
        for (index,) in con.execute("SELECT index_name FROM duckdb_indexes() WHERE table_name = 'run_enterprises'"
                                    ).fetchall():
            con.execute(f"DROP INDEX {index}")
        con.execute("ALTER TABLE run_enterprises DROP COLUMN firm")
    finally:
        con.close()
    return db


def test_verify_reports_results_numbered_against_enterprises_without_numbers(dbs, tmp_path):
    """verify says in one line that the result rows cannot be read back to their firms, instead of
    failing with an internal error on the missing column."""
    db = _without_firm_numbers(dbs, tmp_path)
    con = duckdb.connect(str(db))
    try:
        report = bk.verify_database(con, db)
    finally:
        con.close()
    assert any("run_enterprises" in p and "firm" in p for p in report.problems), report


def test_results_already_numbered_are_not_pointed_at_other_firms_by_a_migration(dbs, tmp_path):
    """Numbering the enterprises of such a file anew (in uscc order) would silently point every
    result row at another firm: a run into it stops with one Chinese line (exit 1) and the file
    stays as it was."""
    db = _without_firm_numbers(dbs, tmp_path)
    proc = cli("run", "--out", "again", "--db", db, "--year", 2022, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "无法升级到本版本的结构" in proc.stderr and "Traceback" not in proc.stderr
    con = connect(db, read_only=True)
    try:
        assert "firm" not in {c for c, _ in _describe(con, "run_enterprises")}
        assert con.execute("SELECT count(*) FROM runs").fetchall() == [(2,)]
    finally:
        con.close()


@pytest.mark.parametrize("table", ["run_results", "run_list", "run_rejects"])
def test_verify_reports_a_run_table_without_run_ids_instead_of_failing(dbs, tmp_path, table):
    """A run table that lost its run_id column cannot be counted run by run: verify reports its
    layout and that the runs could not be checked, and ends with its report (no internal error)."""
    db = _copy(dbs["new"], tmp_path / "new.duckdb")
    con = duckdb.connect(str(db))
    try:
        for (index,) in con.execute("SELECT index_name FROM duckdb_indexes() WHERE table_name = ?", [table]).fetchall():
            con.execute(f"DROP INDEX {index}")
        con.execute(f"ALTER TABLE {table} DROP COLUMN run_id")
        report = bk.verify_database(con, db)
    finally:
        con.close()
    assert f"表 {table} 的列与本版本不符" in report.problems
    assert any("无法逐次核对" in p for p in report.problems), report
