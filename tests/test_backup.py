"""Backup, restore, verify and retention (issue 18): nothing lost, nothing half-copied, no
damaged backup used, no audit line changed unseen, no finalized or latest run pruned."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path

import duckdb
import pytest

from api.db import audit, ensure_schema
from api.deps import HANDOVER
from cli_helpers import cli
from screening import backup as bk
from screening.retention import RUN_TABLES

pytestmark = pytest.mark.e2e


def _one_line_error(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def _copy_run(con, run_id: str, new_id: str, created_at: dt.datetime) -> None:
    """A run like ``run_id`` under another id and time (a re-run), without screening again."""
    for table in RUN_TABLES:
        con.execute(f"INSERT INTO {table} SELECT * REPLACE (? AS run_id) FROM {table} WHERE run_id = ?", [new_id, run_id])
    con.execute("INSERT INTO runs SELECT * REPLACE (? AS run_id, ? AS created_at) FROM runs WHERE run_id = ?",
                [new_id, created_at, run_id])


@pytest.fixture(scope="module")
def screened(tmp_path_factory):
    """A database with one screened run of 2022 and a few audit lines."""
    tmp = tmp_path_factory.mktemp("backup")
    db = tmp / "s.duckdb"
    proc = cli("run", "--out", tmp / "out", "--db", db, "--year", "2022", cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    con = duckdb.connect(str(db))
    ensure_schema(con)
    for i in range(5):
        audit(con, HANDOVER, "test", "line", str(i), None, {"i": i, "text": "审计"})
    con.close()
    return tmp, db


@pytest.fixture
def copy(screened, tmp_path):
    """A private copy of the screened database."""
    _, db = screened
    target = tmp_path / "c.duckdb"
    shutil.copy(db, target)
    return target


def _backup(db: Path, out: Path) -> Path:
    proc = cli("backup", "--db", db, "--out", out, cwd=db.parent)
    assert proc.returncode == 0, proc.stderr
    made = [p for p in out.iterdir() if p.name.startswith(bk.PREFIX)]
    assert len(made) == 1
    return made[0]


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- backup and restore without a service

def test_backup_restores_every_row_and_is_private(copy, tmp_path):
    made = _backup(copy, tmp_path / "bk")
    manifest = json.loads((made / bk.MANIFEST).read_text(encoding="utf-8"))
    assert manifest["created_at"].endswith("+08:00") and "Asia/Shanghai" in manifest["time_zone"]
    assert manifest["duckdb_version"] == duckdb.__version__ and manifest["product_version"]
    assert manifest["audit_head"][0] == 5
    assert all((p.stat().st_mode & 0o077) == 0 for p in [made, *made.iterdir()])
    restored = tmp_path / "r.duckdb"
    proc = cli("restore", "--from", made, "--db", restored, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    a, b = duckdb.connect(str(copy), read_only=True), duckdb.connect(str(restored), read_only=True)
    try:
        for table, entry in manifest["tables"].items():
            assert bk.checksum(a, table, entry["columns"]) == bk.checksum(b, table, entry["columns"]) \
                == (entry["rows"], entry["checksum"]), table
        assert manifest["tables"]["run_results"]["rows"] > 0 and manifest["tables"]["audit_log"]["rows"] == 5
    finally:
        a.close()
        b.close()
    proc = cli("verify", "--db", restored, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "审计链完整：5 条" in proc.stdout


def test_restore_refuses_to_overwrite_without_force_and_keeps_the_old_file_with_it(copy, tmp_path):
    made = _backup(copy, tmp_path / "bk")
    existing = tmp_path / "existing.duckdb"
    shutil.copy(copy, existing)
    con = duckdb.connect(str(existing))
    con.execute("CREATE TABLE marker (x INTEGER)")  # tells the old file from the restored one
    con.close()
    before = _file_hash(existing)
    proc = cli("restore", "--from", made, "--db", existing, cwd=tmp_path)
    assert proc.returncode == 2
    assert "--force" in _one_line_error(proc)
    assert _file_hash(existing) == before
    proc = cli("restore", "--from", made, "--db", existing, "--force", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    aside = list(tmp_path.glob("existing.duckdb.before-restore-*"))
    assert [p for p in aside if not p.name.endswith(".wal")] and _file_hash(
        [p for p in aside if not p.name.endswith(".wal")][0]) == before
    con = duckdb.connect(str(existing), read_only=True)
    assert not con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = 'marker'").fetchall()
    con.close()


def _refused(made: Path, tmp_path: Path, words: str) -> None:
    target = tmp_path / "never.duckdb"
    proc = cli("restore", "--from", made, "--db", target, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert words in _one_line_error(proc)
    assert not target.exists() and not list(tmp_path.glob(".never.duckdb.restoring-*"))


def test_a_truncated_table_file_is_refused(copy, tmp_path):
    made = _backup(copy, tmp_path / "bk")
    data = made / "run_results.parquet"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    _refused(made, tmp_path, "已损坏")


def test_a_missing_table_file_or_manifest_is_refused(copy, tmp_path):
    made = _backup(copy, tmp_path / "bk")
    (made / "run_list.parquet").unlink()
    _refused(made, tmp_path, "不完整")
    (made / bk.MANIFEST).unlink()
    _refused(made, tmp_path, "不是备份目录")


def test_an_edited_manifest_is_refused(copy, tmp_path):
    made = _backup(copy, tmp_path / "bk")
    path = made / bk.MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["tables"]["run_list"]["rows"] += 1
    path.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    _refused(made, tmp_path, "校验值不符")
    # edited together with its own checksum: the rows, counted after loading, still disagree
    manifest["manifest_sha256"] = bk._manifest_digest(manifest)
    path.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    _refused(made, tmp_path, "行数或校验值与清单不符")


def test_an_edited_table_file_with_a_matching_manifest_is_refused(copy, tmp_path):
    """A table file replaced by other rows (and the manifest's file hashes fixed up): the rows'
    checksum, recomputed by DuckDB after loading, refuses it."""
    made = _backup(copy, tmp_path / "bk")
    data = made / "run_list.parquet"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * REPLACE ('篡改' AS name) FROM read_parquet('{data}')) TO '{data}.x' (FORMAT parquet)")
    con.close()
    Path(f"{data}.x").replace(data)
    path = made / bk.MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["tables"]["run_list"].update(bytes=data.stat().st_size, sha256=_file_hash(data))
    manifest["manifest_sha256"] = bk._manifest_digest(manifest)
    path.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    _refused(made, tmp_path, "行数或校验值与清单不符")


def test_a_partial_backup_is_refused(copy, tmp_path):
    made = _backup(copy, tmp_path / "bk")
    partial = made.with_name(made.name + bk.PARTIAL)
    made.rename(partial)
    _refused(partial, tmp_path, "未写完")


def test_rotation_keeps_the_newest(copy, tmp_path):
    out = tmp_path / "bk"
    for _ in range(3):
        bk.write_backup(duckdb.connect(str(copy), read_only=True), out, copy.name)
    names = sorted(p.name for p in out.iterdir())
    assert bk.rotate(out, 2) == names[:1]
    assert sorted(p.name for p in out.iterdir()) == names[1:]


# ---------------------------------------------------------------- verify: the audit chain

def _verify(db: Path):
    return cli("verify", "--db", db, cwd=db.parent)


def test_an_edited_audit_line_is_detected(copy):
    con = duckdb.connect(str(copy))
    con.execute("UPDATE audit_log SET after = '{\"i\": 99}' WHERE seq = 3")
    con.close()
    proc = _verify(copy)
    assert proc.returncode == 2
    assert "第 3 条" in proc.stderr and "被改动" in proc.stderr


def test_a_deleted_audit_line_is_detected(copy):
    con = duckdb.connect(str(copy))
    con.execute("DELETE FROM audit_log WHERE seq = 2")
    con.close()
    proc = _verify(copy)
    assert proc.returncode == 2
    assert "被删除" in proc.stderr


def test_a_rewritten_audit_line_with_a_new_hash_breaks_the_next_link(copy):
    """Recomputing the edited line's own hash does not help: the next line names the old one."""
    from screening import auditchain

    con = duckdb.connect(str(copy))
    con.execute("UPDATE audit_log SET user_name = '他人' WHERE seq = 2")
    row = dict(zip([d[0] for d in con.execute(auditchain.SELECT_SQL).description],
                   [r for r in con.execute(auditchain.SELECT_SQL).fetchall() if r[0] == 2][0]))
    con.execute("UPDATE audit_log SET row_hash = ? WHERE seq = 2", [auditchain.row_hash(row["prev_hash"], row)])
    con.close()
    proc = _verify(copy)
    assert proc.returncode == 2
    assert "第 3 条" in proc.stderr and "接不上" in proc.stderr


def test_deleting_the_newest_audit_line_is_detected_against_the_last_backup(copy, tmp_path):
    _backup(copy, tmp_path / "bk")
    assert _verify(copy).returncode == 0
    con = duckdb.connect(str(copy))
    con.execute("DELETE FROM audit_log WHERE seq = 5")
    con.close()
    proc = _verify(copy)
    assert proc.returncode == 2
    assert "链尾" in proc.stderr


def test_an_older_database_without_the_chain_says_where_the_chain_starts(tmp_path):
    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE audit_log (audit_id VARCHAR PRIMARY KEY, logged_at TIMESTAMPTZ NOT NULL, "
                "user_name VARCHAR NOT NULL, role VARCHAR NOT NULL, action VARCHAR NOT NULL, entity VARCHAR NOT NULL, "
                "entity_key VARCHAR NOT NULL, before JSON, after JSON)")
    for i in range(3):
        con.execute("INSERT INTO audit_log VALUES (?, now() - INTERVAL 1 DAY, '旧', 'admin', 'x', 'y', ?, NULL, NULL)",
                    [f"old{i}", str(i)])
    ensure_schema(con)  # the service's start on the new version: the chain's columns are added
    audit(con, HANDOVER, "test", "line", "new", None, {"new": True})
    audit(con, HANDOVER, "test", "line", "new2", None, None)
    con.close()
    proc = _verify(db)
    assert proc.returncode == 0, proc.stderr
    assert "审计链从第 4 条记录开始" in proc.stdout


def test_a_database_of_the_previous_version_lacks_only_the_new_tables_and_verifies(copy):
    """verify said 缺少服务数据表：eval_items (exit 2) of every database the previous version wrote:
    a table a later version adds is created by the service's next start, no damage.  Another
    missing table still is."""
    con = duckdb.connect(str(copy))
    ensure_schema(con)
    con.execute("DROP TABLE eval_items")
    con.close()
    proc = _verify(copy)
    assert proc.returncode == 0, proc.stderr
    assert "eval_items" in proc.stdout and "服务下次启动时自动建立" in proc.stdout
    con = duckdb.connect(str(copy))
    con.execute("DROP TABLE eval_objections")
    con.close()
    proc = _verify(copy)
    assert proc.returncode == 2 and "缺少服务数据表：eval_objections" in proc.stderr


def test_an_incomplete_run_is_detected(copy):
    con = duckdb.connect(str(copy))
    run = con.execute("SELECT run_id FROM runs").fetchall()[0][0]
    con.execute("DELETE FROM run_list WHERE rowid IN (SELECT rowid FROM run_list WHERE run_id = ? LIMIT 1)", [run])
    con.close()
    proc = _verify(copy)
    assert proc.returncode == 2
    assert "不完整" in proc.stderr and "run_list" in proc.stderr


# ---------------------------------------------------------------- retention

def test_prune_keeps_finalized_verified_and_latest_runs(copy):
    con = duckdb.connect(str(copy))
    ensure_schema(con)
    (first, created), = con.execute("SELECT run_id, created_at FROM runs").fetchall()
    finalized, verified, trial, latest = "run-final", "run-verified", "run-trial", "run-latest"
    for i, run in enumerate((finalized, verified, trial, latest)):
        _copy_run(con, first, run, created + dt.timedelta(seconds=i + 1))
    _copy_run(con, first, "run-2021", created)
    con.execute("UPDATE runs SET list_year = 2021 WHERE run_id = 'run-2021'")
    con.execute("INSERT INTO finalizations VALUES (2022, ?, 0, NULL, 'x', now())", [finalized])
    con.execute("INSERT INTO verifications VALUES ('v1', 'U', 2022, ?, 'confirmed', NULL, NULL, 'x', now())", [verified])
    con.close()
    dry = cli("runs", "prune", "--db", copy, "--keep", "1", "--dry-run", cwd=copy.parent)
    assert dry.returncode == 0, dry.stderr
    assert "将删除" in dry.stdout
    assert "（北京时间）" in dry.stdout  # when each run was stored, in the time people read
    proc = cli("runs", "prune", "--db", copy, "--keep", "1", cwd=copy.parent)
    assert proc.returncode == 0, proc.stderr
    con = duckdb.connect(str(copy), read_only=True)
    try:
        kept = {r[0] for r in con.execute("SELECT run_id FROM runs").fetchall()}
        assert kept == {finalized, verified, latest, "run-2021"}  # `first` and the trial went
        for table in RUN_TABLES:
            assert not con.execute(f"SELECT count(*) FROM {table} WHERE run_id IN (?, ?)",
                                   [first, trial]).fetchall()[0][0], table
        (after,), = con.execute("SELECT after FROM audit_log WHERE action = 'prune_runs'").fetchall()
        assert {r["run_id"] for r in json.loads(after)["removed"]} == {first, trial}
    finally:
        con.close()
    assert _verify(copy).returncode == 0
    again = cli("runs", "prune", "--db", copy, "--keep", "1", cwd=copy.parent)
    assert again.returncode == 0 and "没有可删除" in again.stdout


def test_prune_removes_the_pruned_runs_folders_and_uploads_nothing_reads_any_more(copy, tmp_path):
    """Upload folders (POST /api/v1/data) and the service's run folders stayed on the server for
    ever.  A prune removes the output folder of each run it removes and each upload folder no
    remaining run, evaluation or 措施名单 read from, once past the grace period; never a folder in
    use, a recent upload, a symbolic link or a folder of another name."""
    from screening.retention import Folders, prune, upload_folder_name

    root, runs_dir, outside = tmp_path / "data", tmp_path / "runs", tmp_path / "elsewhere"
    now = dt.datetime.now(dt.timezone.utc)
    old, recent = dt.datetime(2020, 1, 1), now.astimezone().replace(tzinfo=None) - dt.timedelta(days=1)
    names = {key: upload_folder_name(2022, made, token) for key, made, token in (
        ("stale", old, "aaaaaa"), ("recent", recent, "bbbbbb"), ("latest_run", old, "cccccc"),
        ("trial_run", old, "dddddd"), ("measures", old, "eeeeee"), ("link", old, "ffffff"))}
    for key, name in names.items():
        if key != "link":
            (root / name).mkdir(parents=True)
            (root / name / "enterprises.csv").write_text("uscc\n", encoding="utf-8")
    outside.mkdir()
    (outside / "keep.txt").write_text("x", encoding="utf-8")
    (root / names["link"]).symlink_to(outside, target_is_directory=True)
    (root / "县里的资料").mkdir()

    con = duckdb.connect(str(copy))
    ensure_schema(con)
    for name in names.values():
        _uploaded(con, name)
    (first, created), = con.execute("SELECT run_id, created_at FROM runs").fetchall()
    _copy_run(con, first, "run-trial", created + dt.timedelta(seconds=1))
    _copy_run(con, first, "run-latest", created + dt.timedelta(seconds=2))
    for run, key in (("run-trial", "trial_run"), ("run-latest", "latest_run")):
        record = {"inputs": {"enterprises": {"file": str(root / names[key] / "enterprises.csv")}}}
        con.execute("UPDATE runs SET record = ? WHERE run_id = ?", [json.dumps(record), run])
    con.execute("INSERT INTO measure_list_batches VALUES (2022, 'b', DATE '2022-12-31', ?, '{}', 'x', now())",
                [names["measures"]])
    for run in (first, "run-trial", "run-latest"):
        (runs_dir / run).mkdir(parents=True)
    folders = Folders(root, runs_dir, upload_grace_days=7)

    dry = prune(con, HANDOVER, 1, None, dry_run=True, folders=folders, now=now)
    assert sorted(dry["files"]["uploads"]) == sorted([names["stale"], names["trial_run"]])
    assert sorted(dry["files"]["run_folders"]) == sorted([first, "run-trial"])
    assert all((root / n).exists() for n in names.values()) and (runs_dir / first).exists()  # a dry run touches nothing

    done = prune(con, HANDOVER, 1, None, folders=folders, now=now)
    assert done["files"] == dry["files"] and done["not_removed"] == []
    left = {p.name for p in root.iterdir()}
    assert left == {names["recent"], names["latest_run"], names["measures"], names["link"], "县里的资料"}
    assert (outside / "keep.txt").exists()  # the link's target is not followed
    assert {p.name for p in runs_dir.iterdir()} == {"run-latest"}
    (after,), = con.execute("SELECT after FROM audit_log WHERE action = 'prune_runs'").fetchall()
    assert json.loads(after)["files"]["uploads"] == done["files"]["uploads"]
    # the grace period is a floor: --older-than 0.5 keeps the day-old upload nobody has run yet ...
    assert prune(con, HANDOVER, None, 0.5, folders=folders, now=now)["files"]["uploads"] == []
    # ... a longer --older-than raises it (nothing left that old), a shorter grace lets it go
    assert prune(con, HANDOVER, None, 30, folders=folders, now=now)["files"]["uploads"] == []
    short = Folders(root, runs_dir, upload_grace_days=0.5)
    assert prune(con, HANDOVER, None, 0.5, folders=short, now=now)["files"]["uploads"] == [names["recent"]]
    con.close()


def test_prune_removes_stale_uploads_from_the_upload_folder_and_from_the_data_root(copy, tmp_path):
    """Uploads are saved in the upload folder (beside the database) now; a prune looked only in the
    data root, so they stayed for ever.  It looks in both: the upload folder, and the data root,
    where earlier versions saved them; what a stored run, evaluation or 措施名单 names is kept."""
    from api.config import Settings
    from screening.retention import prune, upload_folder_name

    root, runs_dir, db = tmp_path / "data", tmp_path / "runs", tmp_path / "db" / "screening.duckdb"
    folders = Settings(db=db, data_root=root, runs_dir=runs_dir).folders()
    uploads = db.parent / "uploads"
    assert folders.upload_dir == uploads
    old, now = dt.datetime(2020, 1, 1), dt.datetime.now(dt.timezone.utc)
    names = {key: upload_folder_name(2022, old, f"{i:06x}") for i, key in enumerate(
        ("stale", "run", "evaluation", "measures", "earlier_stale", "earlier_run"))}
    for key, name in names.items():
        (root / name if key.startswith("earlier") else uploads / name).mkdir(parents=True)
    runs_dir.mkdir()
    con = duckdb.connect(str(copy))
    ensure_schema(con)
    for name in names.values():
        _uploaded(con, name)
    (first, created), = con.execute("SELECT run_id, created_at FROM runs").fetchall()
    _copy_run(con, first, "run-2", created + dt.timedelta(seconds=1))
    files = {"a": {"file": str(uploads / names["run"] / "enterprises.csv")},
             "b": {"file": str(root / names["earlier_run"] / "enterprises.csv")}}
    con.execute("UPDATE runs SET record = ? WHERE run_id = 'run-2'", [json.dumps({"inputs": files})])
    _evaluation_reading(con, "E2021-x-0", names["evaluation"])
    con.execute("INSERT INTO measure_list_batches VALUES (2022, 'b', DATE '2022-12-31', ?, '{}', 'x', now())",
                [names["measures"]])

    done = prune(con, HANDOVER, 1, None, folders=folders, now=now)
    assert sorted(done["files"]["uploads"]) == sorted([names["stale"], names["earlier_stale"]])
    assert done["not_removed"] == []
    assert {p.name for p in uploads.iterdir()} == {names["run"], names["evaluation"], names["measures"]}
    assert {p.name for p in root.iterdir()} == {names["earlier_run"]}
    con.close()


def test_runs_prune_on_the_command_line_looks_beside_the_database_it_is_given(copy, tmp_path):
    """``screening runs prune --db FILE`` run from another directory: the upload folder is the one beside FILE."""
    from screening.retention import upload_folder_name

    stale = upload_folder_name(2022, dt.datetime(2020, 1, 1), "abcdef")
    (copy.parent / "uploads" / stale).mkdir(parents=True)
    con = duckdb.connect(str(copy))
    ensure_schema(con)
    _uploaded(con, stale)
    con.close()
    (tmp_path / "elsewhere").mkdir()
    proc = cli("runs", "prune", "--db", copy, "--keep", "1", cwd=tmp_path / "elsewhere",
               env={"SCREENING_DATA_ROOT": str(tmp_path / "elsewhere")})
    assert proc.returncode == 0, proc.stderr
    assert not (copy.parent / "uploads" / stale).exists()


def _uploaded(con, name: str) -> None:
    """The audit line POST /api/v1/data writes for the upload folder it made."""
    audit(con, HANDOVER, "upload_data", "data", name, None, {"files": ["enterprises.csv"]})


def _evaluation_reading(con, evaluation_id: str, data_dir: str) -> None:
    """An eval_runs row whose data folder is ``data_dir`` (as the request named it)."""
    con.execute("INSERT INTO eval_runs (evaluation_id, data_year, method_id, method_version, method_sha256, method_text, "
                "inputs_sha256, data_dir, status, revision, firms, created_by, created_at) "
                "VALUES (?, 2021, 'm', '1', 's', 'm', 's', ?, 'computed', 0, 0, 'x', now())", [evaluation_id, data_dir])


def test_prune_keeps_every_folder_a_stored_path_names_and_removes_only_its_own(copy, tmp_path):
    """A hostile or unusual stored path must never cost a folder still read from, nor anything outside
    the service's folders: an evaluation naming its data folder by absolute path, through ``..`` or
    through a link in the data root; a command-line run naming its files relative to another working
    directory; a 措施名单 read from a folder inside an upload; a run whose id is ``..`` (a record
    brought in by hand: runs_dir/.. is the folder holding runs_dir); and a folder only named like an
    upload (made by hand or copied, no upload audit line).  Each of these was removed."""
    from screening.retention import Folders, prune, upload_folder_name

    box = tmp_path / "box"
    root, runs_dir = box / "data", box / "runs"
    old, now = dt.datetime(2020, 1, 1), dt.datetime.now(dt.timezone.utc)
    names = {key: upload_folder_name(2022, old, f"{i:06x}") for i, key in enumerate(
        ("absolute", "dotdot", "linked", "relative", "nested", "hand_made", "stale"))}
    for name in names.values():
        (root / name / "sub").mkdir(parents=True)
    (root / "别名").symlink_to(root / names["linked"], target_is_directory=True)
    runs_dir.mkdir()
    (box / "service.toml").write_text("x", encoding="utf-8")

    con = duckdb.connect(str(copy))
    ensure_schema(con)
    for key, name in names.items():
        if key != "hand_made":
            _uploaded(con, name)
    for i, data_dir in enumerate((str(root / names["absolute"]), f"sub/../{names['dotdot']}", "别名")):
        _evaluation_reading(con, f"E2021-x-{i}", data_dir)
    con.execute("INSERT INTO measure_list_batches VALUES (2022, 'b', DATE '2022-12-31', ?, '{}', 'x', now())",
                [f"{names['nested']}/sub"])
    (first, created), = con.execute("SELECT run_id, created_at FROM runs").fetchall()
    _copy_run(con, first, "..", created - dt.timedelta(seconds=1))
    _copy_run(con, first, "run-latest", created + dt.timedelta(seconds=1))
    record = {"inputs": {"enterprises": {"file": f"data/{names['relative']}/enterprises.csv"}}}
    con.execute("UPDATE runs SET record = ? WHERE run_id = 'run-latest'", [json.dumps(record)])

    done = prune(con, HANDOVER, 1, None, folders=Folders(root, runs_dir, upload_grace_days=7), now=now)
    assert sorted(r["run_id"] for r in done["removed"]) == sorted(["..", first])
    assert done["files"] == {"run_folders": [], "uploads": [names["stale"]]}
    assert (box / "service.toml").exists() and runs_dir.is_dir()
    assert {p.name for p in root.iterdir()} == {*names.values(), "别名"} - {names["stale"]}
    con.close()


def test_prune_older_than_spares_recent_trials_and_needs_a_limit(copy):
    con = duckdb.connect(str(copy))
    (first, created), = con.execute("SELECT run_id, created_at FROM runs").fetchall()
    _copy_run(con, first, "run-new", created + dt.timedelta(seconds=1))
    con.close()
    proc = cli("runs", "prune", "--db", copy, "--older-than", "30", cwd=copy.parent)
    assert proc.returncode == 0 and "没有可删除" in proc.stdout  # the trial was made today
    proc = cli("runs", "prune", "--db", copy, cwd=copy.parent)
    assert proc.returncode == 2
    assert "--keep" in _one_line_error(proc)


# ---------------------------------------------------------------- the chain under concurrent transactions

def _chain_report(con):
    from screening import auditchain

    cur = con.execute(auditchain.SELECT_SQL)
    names = [d[0] for d in cur.description]
    return auditchain.check([dict(zip(names, r)) for r in cur.fetchall()])


def test_a_line_waits_for_the_uncommitted_line_before_it(tmp_path):
    """Two requests: the first has written its audit line and commits a moment later; the
    second's line chains after it instead of after the same line (no fork)."""
    import threading
    import time

    con = duckdb.connect(str(tmp_path / "c.duckdb"))
    ensure_schema(con)
    first, second = con.cursor(), con.cursor()
    first.execute("BEGIN TRANSACTION")
    audit(first, HANDOVER, "first", "line", "1", None, None)
    threading.Timer(0.2, lambda: first.execute("COMMIT")).start()
    started = time.monotonic()
    audit(second, HANDOVER, "second", "line", "2", None, None)  # autocommit
    assert time.monotonic() - started >= 0.15
    report = _chain_report(con)
    assert not report.problems and report.chained == 2
    assert [r[0] for r in con.execute("SELECT action FROM audit_log ORDER BY seq").fetchall()] == ["first", "second"]
    con.close()


def test_two_lines_after_the_same_one_cannot_both_commit(tmp_path, monkeypatch):
    """A transaction that holds its line longer than the wait: the other request goes ahead,
    and the unique seq refuses the late commit (the service answers 409), so the chain never forks."""
    import api.db

    monkeypatch.setattr(api.db, "AUDIT_WAIT", 0.05)
    con = duckdb.connect(str(tmp_path / "c.duckdb"))
    ensure_schema(con)
    slow, quick = con.cursor(), con.cursor()
    slow.execute("BEGIN TRANSACTION")
    audit(slow, HANDOVER, "slow", "line", "1", None, None)
    audit(quick, HANDOVER, "quick", "line", "2", None, None)
    with pytest.raises(duckdb.TransactionException):
        slow.execute("COMMIT")
    report = _chain_report(con)
    assert not report.problems and report.chained == 1
    con.close()


def test_a_folder_the_file_system_refuses_is_named_in_chinese_and_the_rest_removed(copy, tmp_path, monkeypatch):
    """A folder prune could not remove was reported with the system's English (``Permission denied``)."""
    from screening import retention
    from screening.retention import Folders, prune, upload_folder_name

    root = tmp_path / "data"
    names = [upload_folder_name(2022, dt.datetime(2020, 1, 1), token) for token in ("aaaaaa", "bbbbbb")]
    con = duckdb.connect(str(copy))
    ensure_schema(con)
    for name in names:
        (root / name).mkdir(parents=True)
        _uploaded(con, name)
    real = shutil.rmtree

    def refuse_first(path, *args, **kwargs):
        if Path(path).name == names[0]:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(retention.shutil, "rmtree", refuse_first)
    done = prune(con, HANDOVER, 1, None, folders=Folders(root, tmp_path / "runs", 7))
    (refused,) = done["not_removed"]
    assert refused["folder"] == names[0] and "没有权限" in refused["reason"] and "Permission" not in refused["reason"]
    assert [p.name for p in root.iterdir()] == [names[0]]
    con.close()


# ---------------------------------------------------------------- the files the database refers to

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64 + "现场照片".encode("utf-8")
UPLOAD = "upload-2022-20260101T080000-abc123"


def _with_files(db: Path) -> dict[str, Path]:
    """An evidence file (its row and its file in ``<db>.evidence/``) and an upload folder (its
    audit line and its files in ``uploads/`` beside the database), as the service leaves them."""
    digest = hashlib.sha256(PNG).hexdigest()
    con = duckdb.connect(str(db))
    try:
        ensure_schema(con)
        (uscc,), = con.execute("SELECT uscc FROM run_list LIMIT 1").fetchall()
        con.execute("INSERT INTO evidence_files VALUES ('ev-1', ?, 2022, 'image/png', ?, ?, '现场.png', NULL, '乡镇', now())",
                    [uscc, len(PNG), digest])
        _uploaded(con, UPLOAD)
    finally:
        con.close()
    evidence = db.parent / f"{db.name}.evidence" / f"{digest}.png"
    evidence.parent.mkdir(mode=0o700)
    evidence.write_bytes(PNG)
    upload = db.parent / "uploads" / UPLOAD
    upload.mkdir(parents=True, mode=0o700)
    (upload / "enterprises.csv").write_text("uscc,name\n91000000000000000X,甲\n", encoding="utf-8")
    (upload / "energy.csv").write_text("uscc,year,tce\n", encoding="utf-8")
    return {"evidence": evidence, "upload": upload}


def test_a_backup_holds_the_evidence_and_upload_files_and_a_restore_puts_them_beside_the_new_database(copy, tmp_path):
    placed = _with_files(copy)
    made = _backup(copy, tmp_path / "bk")
    manifest = json.loads((made / bk.MANIFEST).read_text(encoding="utf-8"))
    evidence = f"evidence/{placed['evidence'].name}"
    uploads = [f"uploads/{UPLOAD}/energy.csv", f"uploads/{UPLOAD}/enterprises.csv"]
    assert sorted(manifest["files"]) == [evidence, *uploads] and manifest["files_skipped"] == {}
    assert manifest["files"][evidence] == {"bytes": len(PNG), "sha256": hashlib.sha256(PNG).hexdigest()}
    assert (made / bk.FILES / evidence).read_bytes() == PNG
    assert all((p.stat().st_mode & 0o077) == 0 for p in (made / bk.FILES).rglob("*"))

    restored = tmp_path / "elsewhere" / "r.duckdb"
    proc = cli("restore", "--from", made, "--db", restored, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "3 个证据与上传文件" in proc.stdout
    assert (restored.parent / "r.duckdb.evidence" / placed["evidence"].name).read_bytes() == PNG
    for name in ("enterprises.csv", "energy.csv"):
        assert (restored.parent / "uploads" / UPLOAD / name).read_bytes() == (placed["upload"] / name).read_bytes()
    verified = _verify(restored)
    assert verified.returncode == 0 and "证据文件 1 个" in verified.stdout, verified.stdout + verified.stderr
    # the service on the restored file serves the evidence, and takes the upload folder as data
    token = cli("users", "add", "--db", restored, "--name", "管理员", "--role", "admin", cwd=tmp_path)
    assert token.returncode == 0, token.stderr
    from fastapi.testclient import TestClient

    from api.config import Settings
    from api.main import create_app
    from api.routes.common import upload_folder

    settings = Settings(db=restored, runs_dir=tmp_path / "runs")
    assert upload_folder(settings, UPLOAD) == (restored.parent / "uploads" / UPLOAD).resolve()
    with TestClient(create_app(settings)) as client:
        served = client.get("/api/v1/evidence/ev-1",
                            headers={"Authorization": f"Bearer {token.stdout.strip().splitlines()[-1]}"})
        assert served.status_code == 200, served.text
        assert served.content == PNG


@pytest.mark.parametrize("damage, words", [
    ("alter", "已损坏：文件 files/evidence/"),
    ("remove", f"不完整：缺少文件 files/uploads/{UPLOAD}/energy.csv"),
    ("add", "清单未列出的文件：files/uploads/"),
])
def test_a_damaged_or_missing_file_in_a_backup_refuses_the_restore(copy, tmp_path, damage, words):
    _with_files(copy)
    made = _backup(copy, tmp_path / "bk")
    if damage == "alter":
        target = next((made / bk.FILES / "evidence").iterdir())
        target.write_bytes(target.read_bytes()[:-1] + b"!")  # same size, other content
    elif damage == "remove":
        (made / bk.FILES / "uploads" / UPLOAD / "energy.csv").unlink()
    else:
        (made / bk.FILES / "uploads" / UPLOAD / "land.csv").write_text("x", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _refused(made, elsewhere, words)
    assert not (elsewhere / "never.duckdb.evidence").exists() and not (elsewhere / "uploads").exists()


def test_a_restore_never_overwrites_a_different_file_already_in_place(copy, tmp_path):
    _with_files(copy)
    made = _backup(copy, tmp_path / "bk")
    there = tmp_path / "elsewhere" / "uploads" / UPLOAD / "enterprises.csv"
    there.parent.mkdir(parents=True)
    there.write_text("别的内容", encoding="utf-8")
    target = tmp_path / "elsewhere" / "r.duckdb"
    proc = cli("restore", "--from", made, "--db", target, cwd=tmp_path)
    assert proc.returncode == 2
    assert "已有内容不同的文件" in _one_line_error(proc)
    assert there.read_text(encoding="utf-8") == "别的内容" and not target.exists()


def test_a_link_planted_in_the_evidence_or_upload_folder_is_not_followed(copy, tmp_path):
    placed = _with_files(copy)
    secret = tmp_path / "secret.txt"
    secret.write_text("机密", encoding="utf-8")
    # the evidence file the database names is now a link out; a link sits in the upload folder too
    placed["evidence"].unlink()
    placed["evidence"].symlink_to(secret)
    (placed["upload"] / "land.csv").symlink_to(secret)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "enterprises.csv").write_text("机密", encoding="utf-8")
    linked = "upload-2022-20260102T080000-def456"
    (placed["upload"].parent / linked).symlink_to(outside)
    con = duckdb.connect(str(copy))
    _uploaded(con, linked)
    con.close()
    made = _backup(copy, tmp_path / "bk")
    manifest = json.loads((made / bk.MANIFEST).read_text(encoding="utf-8"))
    assert sorted(manifest["files"]) == [f"uploads/{UPLOAD}/energy.csv", f"uploads/{UPLOAD}/enterprises.csv"]
    assert set(manifest["files_skipped"]) == {f"evidence/{placed['evidence'].name}", f"uploads/{UPLOAD}/land.csv",
                                              f"uploads/{linked}"}
    assert not any(p.is_symlink() or b"\xe6\x9c\xba\xe5\xaf\x86" in p.read_bytes()
                   for p in (made / bk.FILES).rglob("*") if not p.is_dir())
    restored = tmp_path / "r" / "r.duckdb"
    assert cli("restore", "--from", made, "--db", restored, cwd=tmp_path).returncode == 0
    assert not (restored.parent / "r.duckdb.evidence").exists()
    assert sorted(p.name for p in (restored.parent / "uploads" / UPLOAD).iterdir()) == ["energy.csv", "enterprises.csv"]


def test_verify_finds_a_registered_evidence_file_that_is_missing_or_altered(copy, tmp_path):
    placed = _with_files(copy)
    proc = _verify(copy)
    assert proc.returncode == 0 and "证据文件 1 个" in proc.stdout, proc.stdout + proc.stderr
    placed["evidence"].write_bytes(PNG + b"!")
    proc = _verify(copy)
    assert proc.returncode == 2 and placed["evidence"].name in proc.stderr
    placed["evidence"].unlink()
    proc = _verify(copy)
    assert proc.returncode == 2 and "不在" in proc.stderr


# ---------------------------------------------------------------- the output folders of runs made by the service

@pytest.fixture(scope="module")
def served(screened, tmp_path_factory):
    """The screened database (its 2022 run made on the command line, output elsewhere) and a
    run of 2021 made through the service (POST /api/v1/runs, as the web page 数据与筛选 does),
    its files in the service's runs folder ``runs/<run_id>/``; and an admin's token."""
    from fastapi.testclient import TestClient

    from api.config import Settings
    from api.main import create_app

    _, db = screened
    tmp = tmp_path_factory.mktemp("served")
    target = tmp / "s.duckdb"
    shutil.copy(db, target)
    added = cli("users", "add", "--db", target, "--name", "管理员", "--role", "admin", cwd=tmp)
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip().splitlines()[-1]
    with TestClient(create_app(Settings(db=target, runs_dir=tmp / "runs"))) as client:
        made = client.post("/api/v1/runs", json={"year": 2021}, headers={"Authorization": f"Bearer {token}"})
    assert made.status_code == 201, made.text
    return tmp, target, made.json()["run_id"], token


@pytest.fixture
def served_copy(served, tmp_path):
    """A private copy of the served database and of its runs folder: (database, runs folder, run id, token)."""
    tmp, db, run_id, token = served
    shutil.copy(db, tmp_path / "c.duckdb")
    shutil.copytree(tmp / "runs", tmp_path / "runs", symlinks=True)
    return tmp_path / "c.duckdb", tmp_path / "runs", run_id, token


def _backup_runs(db: Path, runs: Path, out: Path, *options: str):
    """``screening backup`` with the service's runs folder set as the service has it; (backup, the run)."""
    proc = cli("backup", "--db", db, "--out", out, *options, cwd=db.parent, env={"SCREENING_RUNS_DIR": str(runs)})
    assert proc.returncode == 0, proc.stderr
    made, = [p for p in out.iterdir() if p.name.startswith(bk.PREFIX)]
    return made, proc


def _verify_runs(db: Path, runs: Path):
    return cli("verify", "--db", db, cwd=db.parent, env={"SCREENING_RUNS_DIR": str(runs)})


def _service_run(con, run_id: str, new_id: str) -> None:
    """Another stored run as the service leaves one: its rows and its audit line ``run``."""
    (created,), = con.execute("SELECT created_at FROM runs WHERE run_id = ?", [run_id]).fetchall()
    _copy_run(con, run_id, new_id, created - dt.timedelta(hours=1))
    audit(con, HANDOVER, "run", "run", new_id, None, {"run_id": new_id})


def test_a_run_made_through_the_service_is_backed_up_and_the_restored_service_serves_its_files(served_copy, tmp_path):
    db, runs, run_id, token = served_copy
    folder = runs / run_id
    names = sorted(p.name for p in folder.iterdir())
    assert "整治企业清单_2021.xlsx" in names and "results.parquet" in names and "run.json" in names
    made, proc = _backup_runs(db, runs, tmp_path / "bk")
    manifest = json.loads((made / bk.MANIFEST).read_text(encoding="utf-8"))
    assert {name: entry for name, entry in manifest["files"].items() if name.startswith("runs/")} == {
        f"runs/{run_id}/{name}": {"bytes": (folder / name).stat().st_size, "sha256": _file_hash(folder / name)}
        for name in names}
    size = sum((folder / name).stat().st_size for name in names)
    assert manifest["run_folders"] == {"included": True, "folders": 1, "bytes": size, "missing": 0}
    # the run made on the command line wrote its files elsewhere: not the service's, not missing
    assert manifest["files_skipped"] == {}
    assert f"运行输出目录 1 个（{size / 1024**2:,.1f} MB）" in proc.stdout

    # a new machine: the old runs folder is gone; the database still names the old paths
    shutil.rmtree(runs)
    restored, new_runs = tmp_path / "new" / "r.duckdb", tmp_path / "new" / "service-runs"
    proc = cli("restore", "--from", made, "--db", restored, cwd=tmp_path, env={"SCREENING_RUNS_DIR": str(new_runs)})
    assert proc.returncode == 0, proc.stderr
    assert "运行输出目录 1 个" in proc.stdout and str(new_runs) in proc.stdout
    con = duckdb.connect(str(restored), read_only=True)
    (record,), = con.execute("SELECT json_extract_string(record, '$.outputs.list[0]') FROM runs WHERE run_id = ?",
                             [run_id]).fetchall()
    con.close()
    # the recorded path is of the machine it ran on; the download route finds the files in its own runs folder
    assert Path(record).parent.name == run_id and new_runs not in Path(record).parents
    from fastapi.testclient import TestClient

    from api.config import Settings
    from api.main import create_app

    verified = _verify_runs(restored, new_runs)  # against the backup it came from
    assert verified.returncode == 0 and "运行输出目录 1 个，其文件与最近一次备份" in verified.stdout, \
        verified.stdout + verified.stderr
    with TestClient(create_app(Settings(db=restored, runs_dir=new_runs))) as client:
        for name in names:
            served = client.get(f"/api/v1/runs/{run_id}/files/{name}", headers={"Authorization": f"Bearer {token}"})
            assert served.status_code == 200, (name, served.text)
            assert hashlib.sha256(served.content).hexdigest() == manifest["files"][f"runs/{run_id}/{name}"]["sha256"]


def test_no_run_files_leaves_the_run_folders_out_and_says_so(served_copy, tmp_path):
    db, runs, run_id, _ = served_copy
    size = sum(p.stat().st_size for p in (runs / run_id).iterdir())
    made, proc = _backup_runs(db, runs, tmp_path / "bk", "--no-run-files")
    manifest = json.loads((made / bk.MANIFEST).read_text(encoding="utf-8"))
    assert not [name for name in manifest["files"] if name.startswith("runs/")] and not (made / bk.FILES / "runs").exists()
    assert manifest["run_folders"] == {"included": False, "folders": 1, "bytes": size, "missing": 0}
    assert f"运行输出目录 1 个（{size / 1024**2:,.1f} MB）按要求未备份" in proc.stdout
    new_runs = tmp_path / "new-runs"
    proc = cli("restore", "--from", made, "--db", tmp_path / "r.duckdb", cwd=tmp_path,
               env={"SCREENING_RUNS_DIR": str(new_runs)})
    assert proc.returncode == 0, proc.stderr
    assert "按要求未备份" in proc.stdout and not new_runs.exists()
    proc = _verify_runs(tmp_path / "r.duckdb", new_runs)  # not a fault: said, and verify passes
    assert proc.returncode == 0 and "1 次的输出目录不在" in proc.stdout and "未包含运行输出目录" in proc.stdout, \
        proc.stdout + proc.stderr


def test_a_tampered_run_file_fails_verify_and_the_restore_naming_it(served_copy, tmp_path):
    db, runs, run_id, _ = served_copy
    proc = _verify_runs(db, runs)  # no backup yet: nothing to compare the files with
    assert proc.returncode == 0 and "未核对运行输出文件的内容" in proc.stdout, proc.stdout + proc.stderr
    made, _ = _backup_runs(db, runs, tmp_path / "bk")
    proc = _verify_runs(db, runs)
    assert proc.returncode == 0 and f"运行输出目录 1 个，其文件与最近一次备份 {made.name} 的清单一致" in proc.stdout, \
        proc.stdout + proc.stderr
    # on the server: a file of the run's folder changed since the backup
    served = runs / run_id / "list.csv"
    served.write_bytes(served.read_bytes()[:-1] + b"!")
    proc = _verify_runs(db, runs)
    assert proc.returncode == 2 and f"runs/{run_id}/list.csv" in proc.stderr, proc.stdout + proc.stderr
    # in the backup: the restore refuses it
    target = made / bk.FILES / "runs" / run_id / "list.csv"
    target.write_bytes(target.read_bytes()[:-1] + b"!")  # same size, other content
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _refused(made, elsewhere, f"已损坏：文件 files/runs/{run_id}/list.csv 与清单中的大小或校验值不符")
    assert not (elsewhere / "runs").exists()


def test_a_link_in_a_run_folder_is_not_followed_and_a_missing_folder_is_reported(served_copy, tmp_path):
    db, runs, run_id, _ = served_copy
    secret = tmp_path / "secret.csv"
    secret.write_text("机密", encoding="utf-8")
    (runs / run_id / "secret.csv").symlink_to(secret)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "list.csv").write_text("机密", encoding="utf-8")
    linked, gone, pruned = "2021-20200101T000000-aaaaaa", "2021-20200101T000000-bbbbbb", "2021-20200101T000000-cccccc"
    con = duckdb.connect(str(db))
    _service_run(con, run_id, linked)
    _service_run(con, run_id, gone)
    audit(con, HANDOVER, "run", "run", pruned, None, {})  # its rows removed by a prune: not a stored run
    con.close()
    (runs / linked).symlink_to(outside, target_is_directory=True)
    made, proc = _backup_runs(db, runs, tmp_path / "bk")
    manifest = json.loads((made / bk.MANIFEST).read_text(encoding="utf-8"))
    assert set(manifest["files_skipped"]) == {f"runs/{run_id}/secret.csv", f"runs/{linked}", f"runs/{gone}"}
    assert "符号链接" in manifest["files_skipped"][f"runs/{linked}"]
    assert "不在" in manifest["files_skipped"][f"runs/{gone}"]
    assert manifest["run_folders"]["folders"] == 1 and manifest["run_folders"]["missing"] == 1
    assert "另有 1 个已不在服务器上" in proc.stdout and f"运行输出目录 runs/{gone} 不在备份中" in proc.stderr
    assert not any(p.is_symlink() or "机密".encode("utf-8") in p.read_bytes()
                   for p in (made / bk.FILES).rglob("*") if not p.is_dir())
    assert sorted(p.name for p in (made / bk.FILES / "runs").iterdir()) == [run_id]


def _within(seconds: float, fifo: Path, call):
    """``call()``'s outcome (its value, or the exception it raised), or None when it still waits after
    ``seconds``; a call stuck opening ``fifo`` is then let go (a writer opens and closes it)."""
    import os
    import threading

    outcome: list = []

    def target() -> None:
        try:
            outcome.append(call())
        except Exception as exc:  # noqa: BLE001 (the outcome under test)
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # the reader it waits for is there
        thread.join(seconds)
        return None
    return outcome[0]


def test_a_fifo_planted_where_a_file_is_copied_is_refused_at_once(tmp_path):
    """An evidence or upload file the database names, replaced by a named pipe: the backup says it is
    not a regular file and goes on; opening it must not wait for a writer that never comes (a
    backup, or the service's nightly one, would hang for ever)."""
    import os

    fifo = tmp_path / "evidence.png"
    os.mkfifo(fifo)
    outcome = _within(5, fifo, lambda: bk._copy(fifo, tmp_path / "copy" / "evidence.png"))
    assert isinstance(outcome, bk._NotCopied) and "不是普通文件" in str(outcome), outcome
    assert not (tmp_path / "copy").exists()
