"""Runs kept in the DuckDB database (`screening run --db`), contract: "Commands" → `screening run`."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest

from cli_helpers import cli
from screening.store import results_relation

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
RULE_IDS = (
    "above_scale_low_tax_per_mu",
    "below_scale_consecutive_c_grade",
    "below_scale_consecutive_low_tax_per_mu",
    "energy_limit_exceeded",
)
SAMPLE_FIRMS = 6000
SAMPLE_BAD_ROWS = 11




def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two runs into one database: the default 2022 list, then 2021 with an override."""
    tmp = tmp_path_factory.mktemp("store")
    db = tmp / "runs.duckdb"
    first = cli("run", "--out", "a", "--db", db, cwd=tmp)
    assert first.returncode == 0, first.stderr
    second = cli("run", "--out", "b", "--db", db, "--year", 2021,
                 "--set", "above_scale_low_tax_per_mu.ratio=0.2", cwd=tmp)
    assert second.returncode == 0, second.stderr
    records = [read_json(tmp / "a" / "run.json"), read_json(tmp / "b" / "run.json")]
    con = duckdb.connect(str(db), read_only=True)
    yield {"con": con, "tmp": tmp, "records": records, "outs": [tmp / "a", tmp / "b"]}
    con.close()


def q(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


def test_store_has_the_contract_tables(two_runs):
    tables = {r[0] for r in q(two_runs["con"], "SHOW TABLES")}
    assert {"runs", "run_results", "run_list", "run_rejects", "run_enterprises"} <= tables


def test_both_runs_kept(two_runs):
    con, records = two_runs["con"], two_runs["records"]
    ids = [r["run_id"] for r in records]
    assert ids[0] != ids[1]
    assert sorted(r[0] for r in q(con, "SELECT run_id FROM runs")) == sorted(ids)
    assert sorted(r[0] for r in q(con, "SELECT DISTINCT run_id FROM run_results")) == sorted(ids)
    assert sorted(r[0] for r in q(con, "SELECT DISTINCT run_id FROM run_list")) == sorted(ids)


def test_runs_row_metadata(two_runs):
    con, records = two_runs["con"], two_runs["records"]
    for rec, year, ratio in zip(records, (2022, 2021), (0.1, 0.2)):
        row = con.sql("SELECT list_year, ruleset_id, ruleset_version, parameters::VARCHAR, overrides::VARCHAR, "
                      "input_hashes::VARCHAR, listed, enterprises, rejected_rows FROM runs WHERE run_id = $id",
                      params={"id": rec["run_id"]}).fetchall()
        assert len(row) == 1
        list_year, rs_id, rs_version, params, overrides, hashes, listed, enterprises, rejected = row[0]
        assert list_year == year
        assert rs_id == rec["ruleset_id"] == "yueqing-2022"
        assert rs_version == rec["ruleset_version"]
        params = json.loads(params)
        assert set(params) == set(RULE_IDS)
        assert params["above_scale_low_tax_per_mu"]["ratio"] == pytest.approx(ratio)
        assert json.loads(overrides) == rec["overrides"]
        hashes = json.loads(hashes)
        data_files = [p for p in SAMPLE.iterdir() if p.suffix in (".csv", ".xlsx")]
        assert sorted(hashes.values()) == sorted(sha256(p) for p in data_files)
        assert listed == rec["listed"]
        assert enterprises == SAMPLE_FIRMS
        assert rejected == SAMPLE_BAD_ROWS


def test_run_results_two_full_sets(two_runs):
    con, records, outs = two_runs["con"], two_runs["records"], two_runs["outs"]
    assert q(con, "SELECT count(*) FROM run_results")[0][0] == 2 * SAMPLE_FIRMS * len(RULE_IDS)
    for rec, out in zip(records, outs):
        stored = con.sql(f"SELECT uscc, rule_id, status FROM {results_relation(con)} WHERE run_id = $id",
                         params={"id": rec["run_id"]}).pl()
        assert stored.height == SAMPLE_FIRMS * len(RULE_IDS)
        assert stored.select("uscc", "rule_id").is_unique().all()
        on_disk = pl.read_parquet(out / "results.parquet").select("uscc", "rule_id", "status")
        assert set(stored.iter_rows()) == set(on_disk.iter_rows())


def test_run_list_per_run(two_runs):
    con, records, outs = two_runs["con"], two_runs["records"], two_runs["outs"]
    for rec, out in zip(records, outs):
        stored = con.sql("SELECT uscc, rule_ids FROM run_list WHERE run_id = $id", params={"id": rec["run_id"]}).pl()
        listed = pl.read_csv(out / "list.csv", infer_schema=False).select("uscc", "rule_ids")
        assert stored.height == listed.height == rec["listed"]
        assert set(stored.iter_rows()) == set(listed.iter_rows())


def test_run_enterprises_one_row_per_enterprise_per_run(two_runs):
    con, records = two_runs["con"], two_runs["records"]
    rows = q(con, "SELECT run_id, count(*), count(DISTINCT uscc) FROM run_enterprises GROUP BY run_id")
    assert sorted(rows) == sorted((r["run_id"], SAMPLE_FIRMS, SAMPLE_FIRMS) for r in records)


def test_run_rejects_per_run(two_runs):
    con, records = two_runs["con"], two_runs["records"]
    rows = q(con, "SELECT run_id, count(*) FROM run_rejects GROUP BY run_id")
    assert sorted(rows) == sorted((r["run_id"], SAMPLE_BAD_ROWS) for r in records)
    columns = {r[0] for r in q(con, "DESCRIBE run_rejects")}
    assert {"file", "row", "column", "reason"} <= columns


def test_a_database_from_before_the_action_column_gets_it(tmp_path):
    """run_rejects gained ``action`` (issue 12): a database created before keeps working, the column
    added at the end, so that the table is again exactly STORED_TABLES (quoted through sqlquote)."""
    from screening.store import STORED_TABLES

    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    con.execute('CREATE TABLE run_rejects (file VARCHAR, "row" BIGINT, "column" VARCHAR, reason VARCHAR, '
                'value VARCHAR, run_id VARCHAR)')
    con.execute("INSERT INTO run_rejects VALUES ('tax.csv', 2, 'tax_paid', '旧的', NULL, 'old-run')")
    con.close()
    done = cli("run", "--out", "a", "--db", db, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    con = duckdb.connect(str(db), read_only=True)
    try:
        columns = tuple((name, kind) for name, kind, *_ in q(con, "DESCRIBE run_rejects"))
        assert columns == STORED_TABLES["run_rejects"]
        assert q(con, "SELECT count(*) FROM run_rejects WHERE run_id = 'old-run' AND action IS NULL") == [(1,)]
        assert q(con, "SELECT count(*) FROM run_rejects WHERE run_id <> 'old-run' AND action IS NOT NULL") \
            == [(SAMPLE_BAD_ROWS,)]
    finally:
        con.close()


# ----------------------------------------------------------------------------- 11. locked database

LIST_OUTPUTS = ("list.csv", "list.parquet", "results.csv", "results.parquet", "rejects.csv", "整治企业清单_2022.xlsx")

HOLDER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("CREATE TABLE IF NOT EXISTS held (x INTEGER)")
print("ready", flush=True)
time.sleep(120)
"""


@pytest.fixture(scope="module")
def locked_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("locked")
    db = tmp / "busy.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        proc = cli("run", "--out", "out", "--db", db, cwd=tmp)
    finally:
        holder.kill()
        holder.wait(timeout=30)
        holder.stdout.close()
    return {"proc": proc, "out": tmp / "out", "db": db}


def test_locked_db_fails_with_one_chinese_line(locked_run):
    proc = locked_run["proc"]
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "占用" in lines[0]
    assert "busy.duckdb" in lines[0]


def test_locked_db_still_writes_the_list_files(locked_run):
    for name in LIST_OUTPUTS:
        assert (locked_run["out"] / name).is_file(), name


def test_locked_db_still_writes_run_json(locked_run):
    assert (locked_run["out"] / "run.json").is_file()


def test_locked_db_stores_nothing(locked_run):
    con = duckdb.connect(str(locked_run["db"]), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
        if "runs" in tables:
            assert con.execute("SELECT count(*) FROM runs").fetchall()[0][0] == 0
    finally:
        con.close()


def test_stored_tables_are_exactly_what_an_import_accepts(two_runs):
    """save_run writes exactly STORED_TABLES, so a staged run passes the import's exact check
    (issue 10, finding 2); a column added to a writer must be added there too."""
    from screening.store import STAGED_KINDS, check_staged

    con = two_runs["con"]
    catalog = q(con, "SELECT current_database()")[0][0]
    assert set(check_staged(con, catalog)) == STAGED_KINDS["run"] - {"schema_info"}



def test_a_run_inside_the_service_leaves_the_services_settings_alone(tmp_path):
    """POST /runs screens on a cursor of the service's own connection (host=) and stores the run
    there (write_all with db None): the settings the run needs (preserve_insertion_order off for
    its work, on while it copies into the database) are its own sessions', never those of the
    service's other sessions (a plain SET is global: every later request would inherit it)."""
    from screening.outputs import write_all
    from screening.screen import screen

    host = duckdb.connect(str(tmp_path / "svc.duckdb"))
    reader = host.cursor()  # another request's session, open before the run
    setting = "SELECT current_setting('preserve_insertion_order')"
    try:
        with screen(None, 2022, keep_tables=False, host=host) as s:
            assert write_all(s, tmp_path / "out", None) is None
        for session in (reader, host, host.cursor()):
            assert session.sql(setting).fetchall() == [(True,)]
        assert host.sql("SELECT count(*) FROM run_rules").fetchall() == [(len(RULE_IDS),)]
    finally:
        host.close()
