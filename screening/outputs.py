"""Write a screening's files into OUT (contract, "screening run").

CSV files are for people (Excel/WPS) and are written through screening.csvsafe, which
neutralises text a spreadsheet would run as a formula; Parquet files are for machines and
hold the values as read (docs/outputs.md)."""
from __future__ import annotations

import json
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl

from . import csvsafe
from ._version import __version__
from .anomaly import ADVISORY
from .errors import RuleExecutionError, ScreeningError, environment_error
from .excel import write_workbook
from .sqlquote import literal

if TYPE_CHECKING:
    from .screen import Screening

LIST_FILE_COLUMNS = (
    "list_year", "uscc", "name", "township", "industry_code", "industry_name", "scale", "rule_ids", "hit_count",
    "reasons", "tax_per_mu", "land_mu", "energy_tce", "tax_per_mu_prev", "land_prev", "suggested_disposition",
    "disposition_lead", "disposition_cooperating", "disposition_basis", "run_id",
)


def workbook_name(list_year: int) -> str:
    return f"整治企业清单_{list_year}.xlsx"


def write_list(s: "Screening", out: Path) -> list[Path]:
    frame = s.list.select(LIST_FILE_COLUMNS)
    csvsafe.write_csv(frame, out / "list.csv")
    frame.write_parquet(out / "list.parquet")
    return [out / "list.csv", out / "list.parquet"]


#: zstd at level 1: about 0.2 CPU s less than DuckDB's default level on a province's 4 M rows, and
#: the file no larger.  Row groups of 61,440 rows (half DuckDB's default): each of the COPY's
#: threads buffers one while it renders the reasons, and this COPY is where a province's run
#: peaked; with them the whole run's peak went from 1,517-1,611 to 1,418-1,435 MB, the time and
#: the database copy (which reads this file) unchanged (docs/run-performance.md).
RESULTS_PARQUET_OPTIONS = "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, ROW_GROUP_SIZE 61440)"


def write_results_parquet(s: "Screening", out: Path) -> Path:
    # reasons are rendered once, while streaming into Parquet; the CSV and the database copy read that file
    parquet = out / "results.parquet"
    _copy(s, "results_out", parquet, RESULTS_PARQUET_OPTIONS)
    s.results_file = parquet
    return parquet


#: rejects.csv: the contract's columns in the contract's order (a reader by position finds them
#: first); the cell's value as written follows
REJECT_COLUMNS = ("file", "row", "column", "reason", "action")

#: results.csv, for people: the contract's columns, the reason and the years it speaks of.
#: The full evidence (rule title, industry average and group, the two years' values, detail,
#: citation) is in results.parquet and the database (docs/outputs.md); the rules' titles and
#: citations once per rule in rules.csv.
RESULTS_CSV_COLUMNS = ("uscc", "rule_id", "status", "value", "threshold", "reason_code", "reason", "years")


def write_results_csv(s: "Screening", out: Path) -> Path:
    """Streamed by DuckDB (millions of rows), text neutralised by the csvsafe macro on the way,
    with a BOM (through the header, see csvsafe.safe_select) like the other CSV files for people."""
    csv = out / "results.csv"
    source = f"read_parquet({literal(s.results_file)})" if s.results_file else "results_out"
    columns = s.engine.query("results.csv columns", f"DESCRIBE SELECT * FROM {source}", {})
    types = dict(zip(columns["column_name"], columns["column_type"]))
    s.engine.execute("csv_safe macro", csvsafe.sql_macro(), {})
    _copy(s, csvsafe.safe_select(source, {name: types[name] for name in RESULTS_CSV_COLUMNS}, bom=True), csv,
          "(FORMAT csv, HEADER)")
    return csv


def write_rules(s: "Screening", out: Path) -> list[Path]:
    """rules.csv and rules.parquet: each enabled rule once, with its title and citation as
    results.parquet and the database give them (the slim results.csv names the rule only)."""
    from .screen import rule_info

    frame = rule_info(s.ruleset)
    csvsafe.write_csv(frame, out / "rules.csv")
    frame.write_parquet(out / "rules.parquet")
    return [out / "rules.csv", out / "rules.parquet"]


def _copy(s: "Screening", source: str, path: Path, options: str) -> None:
    """A DuckDB COPY into a file; a file-system failure is one line naming the file (exit 1 or 2)."""
    try:
        s.engine.copy_to(source, path, options)
    except RuleExecutionError as exc:
        problem = environment_error(exc.cause, path)
        if problem is None:
            raise
        raise problem from None


def write_rejects(s: "Screening", out: Path) -> list[Path]:
    """rejects.csv (the contract's file, row, column, reason, action in its order, then the cell's
    value) and normalised.csv (every cell
    changed in reading: file, row, column, before, after, kind), both through :mod:`.csvsafe`,
    with a BOM: the reasons are Chinese and people open them in Excel/WPS, which read a
    UTF-8 file without one as the local code page."""
    csvsafe.write_csv(s.inputs.rejects.select(*REJECT_COLUMNS, "value"),
                      out / "rejects.csv")
    csvsafe.write_csv(s.inputs.normalised, out / "normalised.csv")
    return [out / "rejects.csv", out / "normalised.csv"]


def write_check(s: "Screening", out: Path) -> list[Path]:
    """The intake report (数据接收检查) of the run's inputs: check.json and check.xlsx."""
    from .ingest.report import write_report

    return write_report(s.intake, out)


def write_anomalies(s: "Screening", out: Path) -> list[Path]:
    """数据核查提示（仅供参考）: the flagged and the listed firms, most unusual first."""
    csvsafe.write_csv(s.anomalies, out / "anomalies.csv")
    s.anomalies.write_parquet(out / "anomalies.parquet")
    return [out / "anomalies.csv", out / "anomalies.parquet"]


def write_excel(s: "Screening", out: Path) -> list[Path]:
    path = out / workbook_name(s.list_year)
    write_workbook(s, path)
    return [path]


def planned_outputs(s: "Screening", out: Path) -> dict[str, list[str]]:
    names = {"list": ["list.csv", "list.parquet"], "results": ["results.csv", "results.parquet"],
             "rules": ["rules.csv", "rules.parquet"],
             "excel": [workbook_name(s.list_year)], "rejects": ["rejects.csv", "normalised.csv"], "run": ["run.json"],
             "check": ["check.json", "check.xlsx"],
             "anomalies": ["anomalies.csv", "anomalies.parquet"]}
    return {k: [str(out / n) for n in v] for k, v in names.items()}


def run_record(s: "Screening", outputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything run.json records; also stored with the run in the database."""
    y_prev, y_last = s.years
    return {
        "run_id": s.run_id,
        "created_at": s.started_at.isoformat(timespec="seconds"),
        "list_year": s.list_year,
        "data_years": [y_prev, y_last],
        "ruleset_id": s.ruleset.meta.id,
        "ruleset_version": s.ruleset.meta.version,
        "parameters": s.ruleset.params,
        "overrides": s.ruleset.overrides,
        "targets": {k: v.value for k, v in s.ruleset.meta.targets.items()},
        "input_hashes": {raw.file: raw.sha256 for raw in s.inputs.files.values()},
        "ruleset": s.ruleset.describe(),
        "inputs": {name: raw.intake() for name, raw in s.inputs.files.items()},
        "row_counts": s.inputs.row_counts(),
        "rejected_rows": s.inputs.rejected_rows,
        "cleared_fields": s.inputs.cleared_fields,
        "normalised": s.inputs.normalised_counts(),
        "check": s.intake,  # the intake report, as check.json (GET /api/v1/runs/{run_id}/check)
        "enterprises": s.enterprises,
        "listed": s.list.height,
        "hits_per_rule": s.hits_per_rule(),
        "anomalies": {**s.anomaly_summary, "rows": s.anomalies.height, "advisory": ADVISORY},
        # 重点用能单位 (rules/<set>/key_energy_users.yaml): advisory, never a status or the list
        "key_energy_users": s.key_energy,
        "status_counts": s.status_counts(),
        "audit": {"passed": s.audit.height == 0, "problems": s.audit.height},
        "warnings": s.warnings,
        "timings_s": s.timings,
        "timings": s.timings,
        "outputs": outputs or {},
        "software": {"screening": __version__, "polars": pl.__version__, "duckdb": duckdb.__version__,
                     "python": platform.python_version()},
    }


def write_run_json(s: "Screening", out: Path, outputs: dict[str, Any], stored: bool = True) -> Path:
    path = out / "run.json"
    record = {**run_record(s, outputs), "stored_in_database": stored, "stored_via_service": s.stored_via}
    path.write_text(json.dumps(record, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    return path


def write_all(s: "Screening", out: Path, db: Path | None, final: Path | None = None) -> ScreeningError | None:
    """results.parquet first, on all cores; then Excel (pure Python) and the database copy in
    threads beside results.csv (both copies read the Parquet file).

    Returns the database error, if any, so that the caller still writes run.json.
    ``db`` None: the run's engine lives in the service, whose database receives the run.
    ``final``: where the files will be once moved out of ``out``, a staging folder
    (screening.outdir); the stored record names them there."""
    out.mkdir(parents=True, exist_ok=True)
    s.status_counts(), s.enterprises  # computed once here, read by all threads
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        s.timings["写出 list"] = _timed_write(write_list, s, out)
        s.timings["写出 rejects"] = _timed_write(write_rejects, s, out)
        s.timings["写出 anomalies"] = _timed_write(write_anomalies, s, out)
        s.timings["写出 check"] = _timed_write(write_check, s, out)
        s.timings["写出 rules"] = _timed_write(write_rules, s, out)
        t1 = time.perf_counter()
        # a province's peak memory: the engine's tables and the COPY's row groups; Excel waits
        # (its tables and sheets would add about 100 MB here, and the COPY keeps both cores busy)
        write_results_parquet(s, out)  # the database copy and results.csv read this file
        release_results(s)
        record = run_record(s, planned_outputs(s, final or out))
        saved = pool.submit(_timed_write, lambda s_, out_: _save(s_, db, record, out_), s, out)
        excel = pool.submit(_timed_write, write_excel, s, out)
        write_results_csv(s, out)
        s.timings["写出 results"] = round(time.perf_counter() - t1, 3)
        store_error = None
        try:
            s.timings["保存到数据库"] = saved.result()
        except ScreeningError as exc:
            store_error = exc
        s.timings["写出 Excel"] = excel.result()
    s.timings["写出合计"] = round(time.perf_counter() - t0, 3)
    return store_error


def release_results(s: "Screening") -> None:
    """Drop the engine's results table once results.parquet holds them (about 480 MB of a
    province's run): every later reader (results.csv, the database copy, ``Screening.results``)
    reads the file, and the counts are computed (``status_counts``) before."""
    if s.results_file is not None:
        s.engine.execute("release results", "DROP TABLE IF EXISTS results", {})


def _save(s: "Screening", db: Path | None, record: dict[str, Any], out: Path) -> None:
    from . import store

    s.stored_via = store.save_run(s, db, record)


def _timed_write(write, s: "Screening", out: Path) -> float:
    t = time.perf_counter()
    write(s, out)
    return round(time.perf_counter() - t, 3)
