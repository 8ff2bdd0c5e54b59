"""`screening run` / `screening synth` end to end, as a user runs them (contract: "Commands").

The sample run is made once per module (``sample_run``) and its files are shared by the
tests; other runs are made only where a test needs different flags.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import polars as pl
import pytest

from cli_helpers import cli

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
DEFAULT_RULES = ROOT / "rules" / "yueqing-2022"

RULE_IDS = (
    "above_scale_low_tax_per_mu",
    "below_scale_consecutive_c_grade",
    "below_scale_consecutive_low_tax_per_mu",
    "energy_limit_exceeded",
)
NUMERIC_RULES = ("above_scale_low_tax_per_mu", "below_scale_consecutive_low_tax_per_mu", "energy_limit_exceeded")
STATUSES = {"hit", "pass", "insufficient_data", "not_applicable"}
DISPOSITIONS = {"兼并重组", "整体腾退", "搬迁入园", "改造提升"}
VALID_PARAMS = (
    "above_scale_low_tax_per_mu.ratio",
    "above_scale_low_tax_per_mu.min_group_size",
    "below_scale_consecutive_c_grade.grades",
    "below_scale_consecutive_c_grade.min_land_mu",
    "below_scale_consecutive_low_tax_per_mu.threshold",
    "below_scale_consecutive_low_tax_per_mu.min_land_mu",
)
OUTPUT_FILES = ("list.csv", "list.parquet", "results.csv", "results.parquet", "rejects.csv", "run.json",
                "normalised.csv", "check.json", "check.xlsx")
SAMPLE_BAD_ROWS = 11
SAMPLE_FIRMS = 6000


# ----------------------------------------------------------------------------- helpers



def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The error is exactly one (non-blank) line on stderr, and no traceback anywhere."""
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Run:
    proc: subprocess.CompletedProcess
    out: Path
    cwd: Path
    year: int = 2022
    extra: dict = field(default_factory=dict)

    @cached_property
    def list(self) -> pl.DataFrame:
        return pl.read_parquet(self.out / "list.parquet")

    @cached_property
    def list_csv(self) -> pl.DataFrame:
        return pl.read_csv(self.out / "list.csv", infer_schema=False)

    @cached_property
    def results(self) -> pl.DataFrame:
        return pl.read_parquet(self.out / "results.parquet")

    @cached_property
    def results_csv(self) -> pl.DataFrame:
        return pl.read_csv(self.out / "results.csv", infer_schema=False)

    @cached_property
    def run_json(self) -> dict:
        return json.loads((self.out / "run.json").read_text(encoding="utf-8"))

    def hits(self, rule_id: str) -> set[str]:
        r = self.results
        return set(r.filter((pl.col("rule_id") == rule_id) & (pl.col("status") == "hit"))["uscc"].to_list())


def do_run(tmp: Path, *args: object, out: str = "out", db: str = "db.duckdb") -> Run:
    tmp.mkdir(parents=True, exist_ok=True)
    proc = cli("run", "--out", out, "--db", db, *args, cwd=tmp)
    return Run(proc, tmp / out, tmp)


def accepted_sample_usccs(rejects: pl.DataFrame) -> set[str]:
    """enterprises.csv minus the rows rejects.csv names (by spreadsheet row: header is row 1)."""
    ent = pl.read_csv(SAMPLE / "enterprises.csv", infer_schema=False, encoding="utf8")
    col = next(c for c in ent.columns if c.strip() in ("uscc", "统一社会信用代码"))
    bad_rows = {int(r) for r in rejects.filter(pl.col("file") == "enterprises.csv")["row"].to_list()}
    return {c.strip().upper() for i, c in enumerate(ent[col].to_list(), start=2) if i not in bad_rows}


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory) -> Run:
    """The one default run on the bundled sample (no --data, no --year) for this module."""
    tmp = tmp_path_factory.mktemp("sample_run")
    proc = cli("run", "--out", tmp, "--db", tmp / "db", cwd=tmp)
    return Run(proc, tmp, tmp)


@pytest.fixture(scope="module")
def ok_run(sample_run: Run) -> Run:
    assert sample_run.proc.returncode == 0, sample_run.proc.stderr
    return sample_run


# ----------------------------------------------------------------------------- 1. files

def test_run_on_sample_exits_0_and_writes_every_file(sample_run: Run):
    assert sample_run.proc.returncode == 0, sample_run.proc.stderr
    assert "Traceback" not in sample_run.proc.stderr
    for name in (*OUTPUT_FILES, "整治企业清单_2022.xlsx"):
        path = sample_run.out / name
        assert path.is_file() and path.stat().st_size > 0, name
    assert (sample_run.out / "db").is_file()


def test_list_csv_is_utf8_with_bom(ok_run: Run):
    raw = (ok_run.out / "list.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw[3:].decode("utf-8")  # strict: the whole file must be valid UTF-8
    header = text.splitlines()[0].split(",")
    assert "uscc" in header and header[0] != "\ufeff"
    assert not text.startswith("\ufeff")  # exactly one BOM
    assert "乐清" in text  # Chinese names survive


def test_run_without_any_flag_uses_sample_and_writes_to_cwd(tmp_path: Path):
    proc = cli("run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    for name in (*OUTPUT_FILES, "整治企业清单_2022.xlsx"):
        assert (out / name).is_file(), name
    assert (tmp_path / "screening.duckdb").is_file()
    record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert record["list_year"] == 2022
    assert record["data_years"] == [2020, 2021]
    files = {Path(v["file"]).resolve() for v in record["inputs"].values()}
    assert files and all(f.parent == SAMPLE.resolve() for f in files)
    assert pl.read_parquet(out / "list.parquet").height > 0


# ----------------------------------------------------------------------------- 2. list

LIST_REQUIRED = ("uscc", "name", "township", "industry_code", "scale", "rule_ids", "reasons", "tax_per_mu",
                 "land_mu", "energy_tce", "suggested_disposition")


@pytest.mark.parametrize("which", ["list", "list_csv"])
def test_list_has_contract_columns(ok_run: Run, which: str):
    frame = getattr(ok_run, which)
    missing = [c for c in LIST_REQUIRED if c not in frame.columns]
    assert not missing
    assert frame.height > 0


def test_list_csv_and_parquet_agree(ok_run: Run):
    pq, csv = ok_run.list, ok_run.list_csv
    assert pq.height == csv.height
    assert pq["uscc"].to_list() == csv["uscc"].to_list()
    assert pq["rule_ids"].to_list() == csv["rule_ids"].to_list()
    assert csv["industry_code"].str.len_chars().eq(4).all()  # codes kept as text (no lost zeros)


def test_list_one_row_per_enterprise(ok_run: Run):
    assert ok_run.list["uscc"].n_unique() == ok_run.list.height


def test_rule_ids_sorted_and_semicolon_joined(ok_run: Run):
    for value in ok_run.list["rule_ids"].to_list():
        ids = value.split(";")
        assert ids == sorted(ids), value
        assert len(set(ids)) == len(ids), value
        assert all(i in RULE_IDS for i in ids), value


def test_list_is_exactly_the_enterprises_with_a_hit(ok_run: Run):
    hits = ok_run.results.filter(pl.col("status") == "hit")
    by_firm = hits.group_by("uscc").agg(pl.col("rule_id").sort().str.join(";").alias("expected"))
    listed = ok_run.list.select("uscc", "rule_ids")
    assert set(listed["uscc"]) == set(by_firm["uscc"])
    joined = listed.join(by_firm, on="uscc", how="inner")
    assert joined.height == listed.height
    assert (joined["rule_ids"] == joined["expected"]).all()


def test_reasons_are_chinese_and_include_each_hit_reason(ok_run: Run):
    listing = ok_run.list
    assert listing["reasons"].null_count() == 0
    for text in listing["reasons"].to_list():
        assert text.strip()
        assert any("\u4e00" <= ch <= "\u9fff" for ch in text), text
    hits = ok_run.results.filter(pl.col("status") == "hit").select("uscc", "reason")
    reasons = dict(zip(listing["uscc"].to_list(), listing["reasons"].to_list()))
    for uscc, reason in hits.iter_rows():
        assert reason and reason in reasons[uscc], (uscc, reason)


def test_suggested_disposition_values(ok_run: Run):
    values = ok_run.list["suggested_disposition"].to_list()
    assert all(v in DISPOSITIONS for v in values), set(values) - DISPOSITIONS


def _land_by_firm(year: int) -> dict[str, float]:
    land = pl.read_excel(SAMPLE / "land.xlsx")
    land = land.rename({land.columns[0]: "uscc", land.columns[1]: "year"})
    area = next(c for c in land.columns if "平方米" in c)
    sums = (land.filter(pl.col("year") == year)
            .group_by("uscc").agg((pl.col(area).sum() * 3 / 2000).alias("mu"), (pl.col(area) <= 0).any().alias("bad")))
    return {u: m for u, m, bad in sums.iter_rows() if not bad}


def test_list_land_mu_is_latest_data_year(ok_run: Run):
    land = _land_by_firm(2021)
    checked = 0
    for uscc, mu in ok_run.list.select("uscc", "land_mu").iter_rows():
        if uscc in land and mu is not None:
            assert mu == pytest.approx(land[uscc], rel=1e-6, abs=1e-6), uscc
            checked += 1
    assert checked > ok_run.list.height * 0.9


def test_list_energy_tce_is_latest_data_year(ok_run: Run):
    energy = pl.read_csv(SAMPLE / "energy.csv", infer_schema=False)
    energy = energy.filter(pl.col("year").str.strip_chars() == "2021")
    tce = {u.strip().upper(): v for u, v in energy.select("uscc", "energy_tce").iter_rows()}
    checked = 0
    for uscc, value in ok_run.list.select("uscc", "energy_tce").iter_rows():
        if value is not None and uscc in tce:
            assert value == pytest.approx(float(tce[uscc]), rel=1e-9), uscc
            checked += 1
    assert checked > ok_run.list.height * 0.9


# ----------------------------------------------------------------------------- 3. results

def test_results_have_contract_columns(ok_run: Run):
    for frame in (ok_run.results, ok_run.results_csv):
        assert {"uscc", "rule_id", "status", "value", "threshold"} <= set(frame.columns)


def test_results_one_row_per_enterprise_and_rule(ok_run: Run):
    r = ok_run.results
    assert r.height == SAMPLE_FIRMS * len(RULE_IDS)
    assert r.select("uscc", "rule_id").is_unique().all()
    assert set(r["rule_id"].unique()) == set(RULE_IDS)
    per_rule = r.group_by("rule_id").agg(pl.col("uscc").n_unique().alias("firms"), pl.len().alias("n"))
    assert per_rule["firms"].to_list() == [SAMPLE_FIRMS] * len(RULE_IDS)
    assert per_rule["n"].to_list() == [SAMPLE_FIRMS] * len(RULE_IDS)


def test_results_cover_exactly_the_accepted_enterprises(ok_run: Run):
    accepted = accepted_sample_usccs(pl.read_csv(ok_run.out / "rejects.csv", infer_schema=False))
    assert len(accepted) == SAMPLE_FIRMS
    assert set(ok_run.results["uscc"].unique()) == accepted
    assert ok_run.run_json["row_counts"]["enterprises"]["accepted"] == SAMPLE_FIRMS


def test_results_statuses_are_the_four_allowed(ok_run: Run):
    assert set(ok_run.results["status"].unique()) <= STATUSES
    assert ok_run.results["status"].null_count() == 0
    # the sample exercises hit and pass for every rule
    for rid in RULE_IDS:
        statuses = set(ok_run.results.filter(pl.col("rule_id") == rid)["status"])
        assert {"hit", "pass"} <= statuses, rid


def test_numeric_rule_hits_carry_value_and_threshold(ok_run: Run):
    r = ok_run.results
    for rid in NUMERIC_RULES:
        hits = r.filter((pl.col("rule_id") == rid) & (pl.col("status") == "hit"))
        assert hits.height > 0, rid
        assert hits["value"].null_count() == 0, rid
        assert hits["threshold"].null_count() == 0, rid
        if rid == "energy_limit_exceeded":
            assert (hits["value"] > hits["threshold"]).all()
        else:
            assert (hits["value"] < hits["threshold"]).all()


def test_missing_data_is_never_hit_or_pass_without_numbers(ok_run: Run):
    r = ok_run.results
    for rid in ("above_scale_low_tax_per_mu", "below_scale_consecutive_low_tax_per_mu"):
        decided = r.filter((pl.col("rule_id") == rid) & pl.col("status").is_in(["hit", "pass"]))
        assert decided["value"].null_count() == 0, rid
        passes = decided.filter(pl.col("status") == "pass")
        assert (passes["value"] >= passes["threshold"]).all(), rid


def test_results_csv_and_parquet_agree(ok_run: Run):
    pq, csv = ok_run.results, ok_run.results_csv
    assert pq.height == csv.height
    key = ("uscc", "rule_id", "status")
    assert set(pq.select(key).iter_rows()) == set(csv.select(key).iter_rows())
    both = pq.select("uscc", "rule_id", "value").join(
        csv.select("uscc", "rule_id", pl.col("value").cast(pl.Float64).alias("value_csv")),
        on=["uscc", "rule_id"], how="inner")
    assert both.height == pq.height
    assert (both["value"].is_null() == both["value_csv"].is_null()).all()
    diff = both.drop_nulls().select(((pl.col("value") - pl.col("value_csv")).abs()
                                     / pl.col("value").abs().clip(lower_bound=1e-9)).max()).item()
    assert diff is None or diff < 1e-9


# ----------------------------------------------------------------------------- 4. rejects

@pytest.mark.parametrize("name", ["list.csv", "rules.csv", "anomalies.csv", "rejects.csv", "normalised.csv", "results.csv"])
def test_csv_files_people_open_start_with_a_bom(ok_run: Run, name: str):
    """Excel/WPS read a UTF-8 CSV without a BOM in the local code page: the Chinese reasons of
    rejects.csv (the file the summary points to) came out garbled."""
    assert (ok_run.out / name).read_bytes().startswith(b"\xef\xbb\xbf"), name


def test_rejects_csv_columns_and_sample_rows(ok_run: Run):
    text = (ok_run.out / "rejects.csv").read_text(encoding="utf-8-sig")
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines[0].split(",")[:4] == ["file", "row", "column", "reason"]
    assert len(lines) - 1 == SAMPLE_BAD_ROWS
    rejects = pl.read_csv(ok_run.out / "rejects.csv", infer_schema=False)
    assert rejects["row"].cast(pl.Int64).min() >= 2  # header is row 1
    sample_files = {p.name for p in SAMPLE.iterdir()}
    assert set(rejects["file"]) <= sample_files
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in r) for r in rejects["reason"])
    assert ok_run.run_json["rejected_rows"] == SAMPLE_BAD_ROWS


def test_rejects_csv_starts_with_the_contract_columns_in_order(ok_run: Run):
    """Contract: rejects.csv has columns file, row, column, reason, action (row_rejected or
    field_cleared); added columns (the cell's value) come after them."""
    rejects = pl.read_csv(ok_run.out / "rejects.csv", infer_schema=False)
    assert rejects.columns[:5] == ["file", "row", "column", "reason", "action"]
    assert set(rejects["action"]) <= {"row_rejected", "field_cleared"} and rejects.height


@pytest.fixture(scope="module")
def synth_dirs(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("synth")
    dirs = {}
    for label, extra in (("bad", ()), ("clean", ("--clean",))):
        d = tmp / label
        proc = cli("synth", "--firms", 200, "--seed", 1, "--out", d, "--format", "csv", *extra, cwd=tmp)
        assert proc.returncode == 0, proc.stderr
        dirs[label] = d
    return dirs


def test_rejects_csv_header_only_for_clean_data(synth_dirs, tmp_path: Path):
    run = do_run(tmp_path, "--data", synth_dirs["clean"])
    assert run.proc.returncode == 0, run.proc.stderr
    text = (run.out / "rejects.csv").read_text(encoding="utf-8-sig")
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1
    assert lines[0].split(",")[:4] == ["file", "row", "column", "reason"]
    assert run.run_json["rejected_rows"] == 0


# ----------------------------------------------------------------------------- 5. run.json

def test_run_json_ruleset_and_parameters(ok_run: Run):
    rec = ok_run.run_json
    assert rec["ruleset_id"] == "yueqing-2022"
    assert rec["ruleset_version"]
    assert rec["list_year"] == 2022
    params = rec["parameters"]
    assert params["above_scale_low_tax_per_mu"]["ratio"] == pytest.approx(0.10)
    assert params["above_scale_low_tax_per_mu"]["min_group_size"] == 5
    assert params["below_scale_consecutive_c_grade"]["grades"] in (["C", "D"], "C,D")
    assert params["below_scale_consecutive_c_grade"]["min_land_mu"] == pytest.approx(3)
    assert params["below_scale_consecutive_low_tax_per_mu"]["threshold"] == pytest.approx(10)
    assert params["below_scale_consecutive_low_tax_per_mu"]["min_land_mu"] == pytest.approx(3)
    assert not rec.get("overrides")


def test_run_json_input_hashes_match_files(ok_run: Run):
    hashes = ok_run.run_json["input_hashes"]
    data_files = sorted(p for p in SAMPLE.iterdir() if p.suffix in (".csv", ".xlsx", ".parquet"))
    assert len(hashes) == len(data_files)
    for path in data_files:
        key = next((k for k in hashes if Path(k).name == path.name or k == path.stem), None)
        assert key is not None, path.name
        assert hashes[key] == sha256(path), path.name


def test_run_json_row_counts_and_timings(ok_run: Run):
    rec = ok_run.run_json
    counts = rec["row_counts"]
    assert counts["enterprises"]["accepted"] == SAMPLE_FIRMS
    assert sum(c["rejected"] for c in counts.values()) == SAMPLE_BAD_ROWS
    for name, c in counts.items():
        assert c["read"] == c["accepted"] + c["rejected"], name
    timings = rec["timings"]
    assert timings and all(isinstance(v, (int, float)) and v >= 0 for v in timings.values())


def test_run_json_list_size_matches_list_csv(ok_run: Run):
    assert ok_run.run_json["listed"] == ok_run.list_csv.height == ok_run.list.height
    hits = ok_run.run_json["hits_per_rule"]
    for rid in RULE_IDS:
        assert hits[rid] == len(ok_run.hits(rid))


# ----------------------------------------------------------------------------- 6. Excel

FIXED_SHEETS = {"汇总", "整治企业清单", "规则与依据", "数据问题", "数据核查提示"}


@pytest.fixture(scope="module")
def workbook(ok_run: Run) -> dict[str, pl.DataFrame]:
    return pl.read_excel(ok_run.out / "整治企业清单_2022.xlsx", sheet_id=0)


def test_workbook_fixed_sheets(workbook):
    assert FIXED_SHEETS <= set(workbook)


def test_workbook_list_sheet(workbook, ok_run: Run):
    sheet = workbook["整治企业清单"]
    assert sheet.height == ok_run.list.height
    assert {"统一社会信用代码", "企业名称", "乡镇街道"} <= set(sheet.columns)
    assert not any(c in sheet.columns for c in ("uscc", "name", "township"))
    assert set(sheet["统一社会信用代码"].cast(pl.String)) == set(ok_run.list["uscc"])


def test_workbook_one_sheet_per_township(workbook, ok_run: Run):
    per_township = ok_run.list.group_by("township").len()
    townships = set(per_township["township"].to_list())
    assert set(workbook) - FIXED_SHEETS == townships
    for township, n in per_township.iter_rows():
        sheet = workbook[township]
        assert sheet.height == n, township
        assert "统一社会信用代码" in sheet.columns


def test_workbook_rules_and_problems_sheets(workbook, ok_run: Run):
    rules = workbook["规则与依据"]
    assert rules.height == len(RULE_IDS)
    assert set(rules[rules.columns[0]].to_list()) == set(RULE_IDS)
    problems = workbook["数据问题"]
    assert problems.height == SAMPLE_BAD_ROWS


def test_workbook_check_sheet_gives_the_flagged_firms_in_chinese(workbook, ok_run: Run):
    """数据核查提示: anomalies.csv's flagged firms, most unusual first, under Chinese headers (the
    summary line sends people here), with whether each is on the list; advisory only."""
    anomalies = pl.read_csv(ok_run.out / "anomalies.csv")
    flagged = anomalies.filter(pl.col("flagged"))
    sheet = workbook["数据核查提示"]
    assert flagged.height > 0
    assert sheet.height == flagged.height
    assert sheet.columns[:3] == ["序号", "统一社会信用代码", "企业名称"]
    assert not any(c.isascii() for c in sheet.columns)
    assert sheet["统一社会信用代码"].cast(pl.String).to_list() == flagged["uscc"].to_list()
    listed = set(ok_run.list["uscc"])
    assert sheet["是否在清单中"].to_list() == ["是" if u in listed else "否" for u in flagged["uscc"]]
    assert sheet["序号"].to_list() == list(range(1, flagged.height + 1))
    assert "数据核查提示" in ok_run.proc.stdout and "整治企业清单_2022.xlsx" in ok_run.proc.stdout


# ----------------------------------------------------------------------------- 7. --set

@pytest.fixture(scope="module")
def ratio_run(tmp_path_factory) -> Run:
    return do_run(tmp_path_factory.mktemp("ratio"), "--set", "above_scale_low_tax_per_mu.ratio=0.2")


def test_set_ratio_enlarges_rule_1_hits(ratio_run: Run, ok_run: Run):
    assert ratio_run.proc.returncode == 0, ratio_run.proc.stderr
    base, wider = ok_run.hits(RULE_IDS[0]), ratio_run.hits(RULE_IDS[0])
    assert base <= wider
    assert len(wider) > len(base)
    for rid in RULE_IDS[1:]:
        assert ratio_run.hits(rid) == ok_run.hits(rid), rid
    assert set(ok_run.list["uscc"]) <= set(ratio_run.list["uscc"])
    # threshold recorded on the rows is the new ratio times the industry average
    rows = ratio_run.results.filter((pl.col("rule_id") == RULE_IDS[0]) & pl.col("status").is_in(["hit", "pass"]))
    assert ((rows["threshold"] - 0.2 * rows["industry_avg"]).abs() <= 1e-9 * rows["industry_avg"].abs() + 1e-9).all()


def test_set_is_recorded_in_run_json(ratio_run: Run):
    rec = ratio_run.run_json
    assert rec["overrides"] == {"above_scale_low_tax_per_mu.ratio": pytest.approx(0.2)}
    assert rec["parameters"]["above_scale_low_tax_per_mu"]["ratio"] == pytest.approx(0.2)
    assert rec["parameters"]["above_scale_low_tax_per_mu"]["min_group_size"] == 5


def test_set_list_parameter(tmp_path: Path, ok_run: Run):
    run = do_run(tmp_path, "--set", "below_scale_consecutive_c_grade.grades=C,D")
    assert run.proc.returncode == 0, run.proc.stderr
    assert run.run_json["overrides"]["below_scale_consecutive_c_grade.grades"] in (["C", "D"], "C,D")
    assert run.hits("below_scale_consecutive_c_grade") == ok_run.hits("below_scale_consecutive_c_grade")


@pytest.mark.parametrize("assignment", [
    pytest.param("no_such_rule.ratio=0.2", id="unknown-rule"),
    pytest.param("above_scale_low_tax_per_mu.no_such_param=1", id="unknown-parameter"),
    pytest.param("energy_limit_exceeded.ratio=1", id="rule-without-parameters"),
    pytest.param("above_scale_low_tax_per_mu.ratio=abc", id="float-not-a-number"),
    pytest.param("above_scale_low_tax_per_mu.ratio=nan", id="float-nan"),
    pytest.param("above_scale_low_tax_per_mu.min_group_size=2.5", id="int-not-integer"),
    pytest.param("below_scale_consecutive_c_grade.grades=C,E", id="list-value-not-allowed"),
    pytest.param("above_scale_low_tax_per_mu.ratio", id="missing-equals"),
    pytest.param("ratio=0.2", id="missing-rule-id"),
])
def test_bad_set_exits_2_with_one_line_listing_valid_names(tmp_path: Path, assignment: str):
    proc = cli("run", "--out", "out", "--db", "db.duckdb", "--set", assignment, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    line = one_line_error(proc)
    for name in VALID_PARAMS:
        assert name in line, (name, line)


# ----------------------------------------------------------------------------- 8. --year, --rules

@pytest.fixture(scope="module")
def year_2021_run(tmp_path_factory) -> Run:
    return do_run(tmp_path_factory.mktemp("y2021"), "--year", 2021)


def test_year_2021_uses_2019_and_2020(year_2021_run: Run):
    run = year_2021_run
    assert run.proc.returncode == 0, run.proc.stderr
    assert (run.out / "整治企业清单_2021.xlsx").is_file()
    rec = run.run_json
    assert rec["list_year"] == 2021
    assert rec["data_years"] == [2019, 2020]
    assert run.results.height == SAMPLE_FIRMS * len(RULE_IDS)
    assert run.list.height > 0
    assert rec["listed"] == run.list.height
    years = set(run.results["years"].drop_nulls().unique().to_list()) if "years" in run.results.columns else set()
    assert all(set(y.split(",")) <= {"2019", "2020"} for y in years), years
    reasons = "".join(run.list["reasons"].to_list())
    assert "2021年" not in reasons and "2020年" in reasons
    assert rec["rejected_rows"] == SAMPLE_BAD_ROWS  # every row is still checked


def test_year_2021_latest_year_is_2020(year_2021_run: Run):
    land = _land_by_firm(2020)
    checked = 0
    for uscc, mu in year_2021_run.list.select("uscc", "land_mu").iter_rows():
        if uscc in land and mu is not None:
            assert mu == pytest.approx(land[uscc], rel=1e-6, abs=1e-6), uscc
            checked += 1
    assert checked > year_2021_run.list.height * 0.9


def test_rules_dir_copy_works(tmp_path: Path, ok_run: Run):
    copy = tmp_path / "my-rules"
    shutil.copytree(DEFAULT_RULES, copy)
    run = do_run(tmp_path, "--rules", copy)
    assert run.proc.returncode == 0, run.proc.stderr
    assert run.run_json["ruleset_id"] == "yueqing-2022"
    assert Path(run.run_json["ruleset"]["directory"]).resolve() == copy.resolve()
    assert set(run.list["uscc"]) == set(ok_run.list["uscc"])


@pytest.mark.parametrize("file,addition", [
    ("_ruleset.yaml", "bogus_key: 1\n"),
    ("above_scale_low_tax_per_mu.yaml", "surprise: true\n"),
])
def test_rules_dir_with_unknown_yaml_key_exits_2(tmp_path: Path, file: str, addition: str):
    copy = tmp_path / "bad-rules"
    shutil.copytree(DEFAULT_RULES, copy)
    with open(copy / file, "a", encoding="utf-8") as fh:
        fh.write("\n" + addition)
    proc = cli("run", "--out", "out", "--db", "db.duckdb", "--rules", copy, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    line = one_line_error(proc)
    assert file in line
    assert addition.split(":")[0] in line


def test_rules_dir_with_yaml_syntax_error_is_one_line(tmp_path: Path):
    copy = tmp_path / "bad-rules"
    shutil.copytree(DEFAULT_RULES, copy)
    with open(copy / "dispositions.yaml", "a", encoding="utf-8") as fh:
        fh.write("\nfoo: [1,\n")
    proc = cli("run", "--out", "out", "--db", "db.duckdb", "--rules", copy, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "dispositions.yaml" in one_line_error(proc)


def test_missing_data_dir_exits_2_one_line(tmp_path: Path):
    proc = cli("run", "--data", tmp_path / "nope", "--out", "out", "--db", "db.duckdb", cwd=tmp_path)
    assert proc.returncode == 2
    assert "nope" in one_line_error(proc)


# ----------------------------------------------------------------------------- 9. synth -> run

def test_synth_then_run_end_to_end(synth_dirs, tmp_path: Path):
    data = synth_dirs["bad"]
    assert {p.name for p in data.glob("*.csv")} >= {"enterprises.csv", "stats.csv", "tax.csv", "land.csv"}
    run = do_run(tmp_path, "--data", data)
    assert run.proc.returncode == 0, run.proc.stderr
    rec = run.run_json
    assert rec["list_year"] == 2022
    n = rec["enterprises"]
    assert n == rec["row_counts"]["enterprises"]["accepted"] > 0
    assert run.results.height == n * len(RULE_IDS)
    assert run.results.select("uscc", "rule_id").is_unique().all()
    assert rec["listed"] == run.list_csv.height
    assert rec["rejected_rows"] > 0
    assert {Path(k).name for k in rec["input_hashes"]} == {p.name for p in data.glob("*.csv")}
    for name, digest in rec["input_hashes"].items():
        assert digest == sha256(data / Path(name).name), name
    assert (run.out / "整治企业清单_2022.xlsx").is_file()
