"""The screening pipeline: validated inputs + rule set -> results, list and evidence.

One code path serves the CLI, the tests and (later) the Python API and the service.
"""
from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterator

import duckdb
import numpy as np
import polars as pl

from . import anomaly, reasons
from .engine import Engine, read_sql_files, sql_text
from .errors import AuditError, InputError
from .ingest import read_dir
from .paths import default_ruleset, sample_data_dir
from .ruleset import LIMIT_RULE, STATUSES, RuleSet, load_ruleset, unverified_limits_note
from .sqlquote import identifier, literal
from .validate import Inputs, validate

DATA_YEAR_TABLES = ("stats", "tax", "land", "evaluations", "energy", "product_energy")
REFERENCE_DIVISIONS = Path(__file__).parent / "reference" / "gbt4754_2017_divisions.csv"

Progress = Callable[[str], None]


@dataclass
class Screening:
    """One screening run.  Results stay in the run's DuckDB engine until asked for.

    Use as a context manager (or call :meth:`close`) to release the engine.
    """

    run_id: str
    list_year: int
    ruleset: RuleSet
    inputs: Inputs
    engine: Engine
    list: pl.DataFrame
    audit: pl.DataFrame
    started_at: dt.datetime
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    _results: pl.DataFrame | None = None
    #: set once results.parquet is written; later readers use the file (the engine's results table
    #: is dropped then: screening.outputs.release_results)
    results_file: Path | None = None
    #: the running service that stored the run for us, when it held the database file
    stored_via: str | None = None
    #: 数据核查提示（仅供参考）: the flagged and the listed firms (screening.anomaly); advisory,
    #: never an input to a rule, a status, the list or results
    anomalies: pl.DataFrame = field(default_factory=anomaly.empty_output)
    anomaly_summary: dict[str, Any] = field(default_factory=dict)
    #: rule-4 hits resting on a limit not marked verified in energy_limits.csv (reason code hit_unverified)
    unverified_limit_hits: int = 0
    #: 重点用能单位 of the data years (screening.projects.key_energy_summary); None when the rule set has none
    key_energy: dict[str, Any] | None = None

    def __enter__(self) -> "Screening":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.close()

    @property
    def years(self) -> tuple[int, int]:
        return self.list_year - 2, self.list_year - 1

    @property
    def results(self) -> pl.DataFrame:
        """One row per (enterprise, rule), with evidence and the Chinese reason, and each rule's
        title and citation (results.parquet has them once per rule, in rules.parquet)."""
        if self._results is None:
            self._results = with_rule_texts(
                pl.read_parquet(self.results_file) if self.results_file
                else self.engine.query("results", "SELECT * FROM results_out", {}), self.ruleset)
        return self._results

    @cached_property
    def enterprises(self) -> int:
        return int(self.engine.cursor().sql("SELECT count(*) FROM firm_panel").fetchall()[0][0])

    @cached_property
    def _status_rows(self) -> list[tuple[str, str, int]]:
        # a cursor of its own: the Excel writer asks from another thread
        return self.engine.cursor().sql("SELECT rule_id, status, count(*) FROM results GROUP BY ALL").fetchall()

    def status_counts(self) -> dict[str, dict[str, int]]:
        rows = self._status_rows
        out: dict[str, dict[str, int]] = {rid: {} for rid in self.ruleset.enabled}
        for rid, status, n in rows:
            out[rid][status] = n
        return out

    @cached_property
    def intake(self) -> dict[str, Any]:
        """The intake report (数据接收检查) of the run's inputs: check.json, and the stored record's ``check``."""
        from .ingest.report import report_from_inputs

        return report_from_inputs(self.inputs, year=self.list_year)

    def hits_per_rule(self) -> dict[str, int]:
        return {rid: c.get("hit", 0) for rid, c in self.status_counts().items()}


@contextmanager
def _timed(timings: dict[str, float], stage: str, progress: Progress | None) -> Iterator[None]:
    if progress:
        progress(stage)
    start = time.perf_counter()
    yield
    timings[stage] = round(time.perf_counter() - start, 3)


GRADE_RULE = "below_scale_consecutive_c_grade"


def grade_method(ruleset: RuleSet):
    """The evaluation method rule 2 computes grades with, or None when it uses official grades only."""
    if GRADE_RULE not in ruleset.enabled or ruleset.params[GRADE_RULE]["grade_source"] == "official":
        return None
    from .evaluation_method import load_method

    return load_method(ruleset.params[GRADE_RULE]["grade_method"], ruleset.file_roots)


def needed_tables(ruleset: RuleSet) -> set[str]:
    tables = {"enterprises", *(t for rid in ruleset.enabled for t in ruleset.rules[rid].reads)}
    method = grade_method(ruleset)
    return tables | method.needed_tables() if method else tables


def default_list_year(inputs: Inputs) -> int:
    """The latest list year the data supports: one after the latest data year present."""
    years = [inputs.tables[t]["year"].max() for t in ("stats", "tax", "land") if inputs.tables[t].height]
    years = [y for y in years if y is not None]
    if not years:
        raise InputError("无法确定筛选年度：stats、tax、land 中没有任何有效年份，请用 --year 指定")
    return int(max(years)) + 1


def held_years(inputs: Inputs, tables: set[str] | tuple[str, ...]) -> list[int]:
    """The data years present in any of ``tables`` (as validated, before a run keeps only its two)."""
    years: set[int] = set()
    for name in tables:
        frame = inputs.tables.get(name)
        if name in inputs.data_years:
            years.update(inputs.data_years[name])
        elif frame is not None and "year" in frame.columns:
            years.update(frame["year"].drop_nulls().unique().to_list())
    return sorted(int(y) for y in years)


def _span(years: list[int]) -> str:
    """2017、2019—2021 (runs of consecutive years joined)."""
    runs: list[list[int]] = []
    for y in years:
        if runs and y == runs[-1][-1] + 1:
            runs[-1].append(y)
        else:
            runs.append([y])
    return "、".join(f"{r[0]}" if len(r) == 1 else f"{r[0]}—{r[-1]}" for r in runs)


def check_list_year(inputs: Inputs, list_year: int, tables: set[str]) -> list[str]:
    """Refuse (InputError: exit 2, HTTP 422) a list year whose latest data year ``Y-1`` is not
    in the data the rules read: every rule reads ``Y-1`` (scale, land, product energy), so such
    a run would list nobody, silently.  ``Y-2`` missing alone is a warning (returned): the
    rules that compare two years are then 数据不足, the others still judge."""
    year_tables = sorted(t for t in tables if t in DATA_YEAR_TABLES)
    held = held_years(inputs, year_tables)
    y_prev, y_last = list_year - 2, list_year - 1
    if y_last in held:
        return [] if y_prev in held else [f"数据中没有 {y_prev} 年的数据：需要 {y_prev} 与 {y_last} 两年数据的判定均为“数据不足”"]
    where = "、".join(year_tables)
    if not held:
        raise InputError(f"无法筛选 {list_year} 年度清单：数据（{where}）中没有任何年度的数据")
    raise InputError(f"无法筛选 {list_year} 年度清单：需要 {y_prev} 与 {y_last} 年的数据，但数据（{where}）中只有 "
                     f"{_span(held)} 年的数据；可筛选的清单年度为 {_span([y + 1 for y in held])}"
                     f"（两个数据年度齐全的为 {_span([y + 2 for y in held if y + 1 in held]) or '无'}）")


def screen(
    data_dir: Path | None = None,
    year: int | None = None,
    ruleset: RuleSet | Path | None = None,
    overrides: list[str] | None = None,
    inputs: Inputs | None = None,
    progress: Progress | None = None,
    keep_tables: bool = True,
    host: "duckdb.DuckDBPyConnection | None" = None,
    anomalies: bool = True,
    confine: tuple[Path, ...] | None = None,
    final_grades: pl.DataFrame | None = None,
) -> Screening:
    """Screen one list year.  Give ``data_dir`` (files) or already validated ``inputs``.

    ``keep_tables=False`` drops the validated Polars tables once the engine holds them
    (the command line does, to keep a province's run small in memory).  ``host``: the
    service's connection, when the service runs a screening itself (see Engine).
    ``anomalies=False`` skips the advisory data check (:mod:`screening.anomaly`).
    ``confine``: the directories besides the rule set that a parameter may name files in
    (the service passes its data root; see RuleSet.confine); None: any local file.
    ``final_grades``: the grades of finalized (定稿) evaluations (screening.evaluation_workflow.
    finalized_grades): rule 2's computed grade of a year with one is its final grade.
    """
    started = dt.datetime.now().astimezone()
    timings: dict[str, float] = {}
    with _timed(timings, "加载规则集", progress):
        rs = ruleset if isinstance(ruleset, RuleSet) else load_ruleset(Path(ruleset) if ruleset else default_ruleset())
        if confine is not None:
            rs.confine(*confine)
        if overrides:
            rs.apply_overrides(overrides)
    needed = needed_tables(rs)
    if inputs is None:
        with _timed(timings, "读取与校验", progress):
            # a run that will not hand its tables back keeps only the two years the rules read
            keep = {year - 2, year - 1} if year is not None and not keep_tables else None
            files = read_dir(Path(data_dir) if data_dir else sample_data_dir(), needed)
            inputs = validate(files, keep_years=keep)
    list_year = year if year is not None else default_list_year(inputs)
    warnings: list[str] = check_list_year(inputs, list_year, needed)
    if list_year != rs.meta.designed_for_list_year:
        warnings.append(f"规则集 {rs.meta.id} 按 {rs.meta.designed_for_list_year} 年度制定，本次筛选年度为 {list_year}")
    for t in DATA_YEAR_TABLES:
        frame = inputs.tables[t]
        if t in needed and frame.height and not frame.filter(pl.col("year") == list_year - 1).height:
            warnings.append(f"{t} 中没有 {list_year - 1} 年的数据")

    run_id = f"{list_year}-{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    engine = Engine(host)
    scoring: _Scoring | None = None
    try:
        with _timed(timings, "装载数据", progress):
            _load(engine, inputs, rs, list_year, final_grades, keep_tables)
            base = _base_params(rs, list_year)
            for name, sql in read_sql_files("views"):
                engine.execute(f"views/{name}", sql, base)
            # firm_years (and its view firm_panel) now holds everything read from the inputs but
            # product energy (the rules, the data check, the key energy users): the rest goes
            # before the later stages add their own
            engine.con.unregister("in_firm_figures")
            if not keep_tables:
                inputs.release_tables()
        with _timed(timings, anomaly.STAGE, progress) if anomalies else nullcontext():
            figures = anomaly.features(engine) if anomalies else None  # advisory only
            key_energy = _key_energy(engine, rs, list_year)
            # the figures only the data check and the key energy users read go before the results come
            engine.execute("firm_years: check figures", "".join(
                f"ALTER TABLE firm_years DROP COLUMN {c};\n" for c in CHECK_ONLY_FIGURES), {})
            # the scoring (Polars) runs on a thread of its own beside the rules, the audit and the list
            scoring = _Scoring(figures, list_year) if figures is not None else None
            del figures
        with _timed(timings, "执行规则", progress):
            engine.execute("results", _enum_types(rs) + RESULTS_DDL, {})
            for rid in rs.enabled:
                if scoring is not None:
                    scoring.raise_if_failed()
                rule_sql = sql_text(f"rules/{rid}.sql")
                engine.insert("results", rid, _with_status(rule_sql), {**base, **rs.sql_params(rid)})
            for name in ("in_product_energy", "in_product_energy_rejected"):  # the inputs the rules read directly
                engine.con.unregister(name)
        if scoring is not None:
            scoring.raise_if_failed()
        with _timed(timings, "审计", progress):
            audit = engine.query("audit/statuses.sql", sql_text("audit/statuses.sql"), {"rule_ids": rs.enabled})
            if audit.height:
                sample = audit.head(5).to_dicts()
                raise AuditError(f"审计失败：{audit.height} 个（企业，规则）组合的状态不唯一或缺失，例如 {sample}")
            unverified = _unverified_limit_hits(engine, rs)
            if unverified:
                warnings.append(unverified_limits_note(rs, unverified))
        with _timed(timings, "生成说明与清单", progress):
            _results_view(engine, rs, list_year, run_id)
            listing = _list_frame(engine, rs, list_year).with_columns(pl.lit(run_id).alias("run_id"))
        scored = scoring.result() if scoring is not None else None
        flags = anomaly.empty_output()
        if scored is not None:  # the listed firms are known now; counted in the check's own stage
            start = time.perf_counter()
            flags = anomaly.assemble(engine, scored, listing, run_id, list_year)
            timings[anomaly.STAGE] = round(timings[anomaly.STAGE] + scoring.seconds + time.perf_counter() - start, 3)
    except BaseException as exc:
        # the scoring's thread ends first.  An error of its own is the one raised: in line, the
        # scoring ran (and failed) before the rules, the audit and the list
        first = scoring.stop() if scoring is not None else None
        engine.close()
        if first is None or first is exc or not isinstance(exc, Exception):
            raise
    else:
        first = None
    if first is not None:
        raise first  # outside the handler: not chained to the error the check came before
    return Screening(run_id, list_year, rs, inputs, engine, listing, audit, started, timings, warnings,
                     anomalies=flags, anomaly_summary=scored.summary if scored is not None else {},
                     unverified_limit_hits=unverified, key_energy=key_energy)


class _Scoring:
    """The data check's scoring (``anomaly.score``, Polars) on a thread of its own, started once
    its figures are read and run beside the rules, the audit and the list, none of which reads
    it; ``anomaly.assemble`` (it needs the list) stays with the caller.

    Polars releases the GIL in its kernels, and DuckDB while it runs a query, so on two cores
    the two fill each other's idle time.  Its error is kept and raised in the caller's thread:
    the same exception as when the scoring ran in line.
    """

    def __init__(self, figures: pl.DataFrame, list_year: int) -> None:
        self.seconds = 0.0
        self._scored: anomaly.Scored | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(figures, list_year), name="screening-data-check")
        self._thread.start()

    def _run(self, figures: pl.DataFrame, list_year: int) -> None:
        start = time.perf_counter()
        try:
            self._scored = anomaly.score(figures, list_year)
        except BaseException as exc:  # raised in the caller's thread (raise_if_failed, result, stop)
            self._error = exc
        finally:
            self.seconds = time.perf_counter() - start

    def raise_if_failed(self) -> None:
        """Raise the scoring's error now if it has already failed: the run stops, as it did in line."""
        if self._error is not None and not self._thread.is_alive():
            raise self._error

    def result(self) -> anomaly.Scored:
        """Wait for the scoring; raise its error."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._scored  # type: ignore[return-value]

    def stop(self) -> BaseException | None:
        """Wait for the thread (the run failed elsewhere); return its own error, if it had one."""
        self._thread.join()
        return self._error if isinstance(self._error, Exception) else None


def _unverified_limit_hits(engine: Engine, rs: RuleSet) -> int:
    if LIMIT_RULE not in rs.enabled:
        return 0
    return int(engine.query("unverified limit hits", "SELECT count(*) AS n FROM results "
                            "WHERE reason_code::VARCHAR = 'hit_unverified'", {})["n"][0])


RESULTS_DDL = """
CREATE OR REPLACE TABLE results (
    firm_id UINTEGER, rule_id rule_id_t, status status_t, reason_code reason_code_t,
    value DOUBLE, threshold DOUBLE, industry_avg DOUBLE, industry_group VARCHAR,
    industry_group_name VARCHAR, group_firms BIGINT, value_prev DOUBLE, value_last DOUBLE,
    value_text VARCHAR, threshold_text VARCHAR, detail VARCHAR, years VARCHAR,
    value_prev_text VARCHAR, value_last_text VARCHAR, source VARCHAR
)
"""


def _enum_types(rs: RuleSet) -> str:
    """Closed vocabularies as DuckDB ENUMs: one byte a row instead of a string in a
    province's millions of result rows.  A rule's reason codes are its message keys."""
    codes = sorted({*rs.meta.scope_messages, *(c for rid in rs.enabled for c in rs.rules[rid].messages)})

    def enum(name: str, values: list[str]) -> str:
        return f"CREATE TYPE {identifier(name)} AS ENUM ({', '.join(literal(v) for v in values)});\n"

    return enum("rule_id_t", rs.enabled) + enum("status_t", list(STATUSES)) + enum("reason_code_t", codes)


def _with_status(rule_sql: str) -> str:
    """Derive the status from the reason code; a not_applicable row carries no numbers."""
    blank = ", ".join(
        f"CASE WHEN status = 'not_applicable' THEN NULL ELSE {c} END AS {c}"
        for c in ("value", "threshold", "industry_avg", "industry_group", "industry_group_name", "group_firms",
                  "value_prev", "value_last")
    )
    # the status once a row, not once for each column it blanks
    return f"SELECT * REPLACE ({blank}) FROM (SELECT *, status_for(reason_code) AS status FROM ({rule_sql}))"


#: what firm_years takes from each table of a data year: column -> (firm_years name, years), where
#: the years are "prev" (Y-2) and/or "last" (Y-1) and the name gets the suffix _prev or _last
_YEAR_FIGURES: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "stats": {"scale": ("scale", ("prev", "last")), "revenue": ("revenue", ("prev", "last")),
              "value_added": ("value_added", ("prev", "last"))},
    "tax": {"tax_paid": ("tax", ("prev", "last"))},
    "land_year": {"land_mu": ("land_mu", ("prev", "last")), "parcels": ("parcels", ("last",)),
                  "all_leased": ("all_leased", ("last",))},
    "land_incomplete": {},
    "energy": {"energy_tce": ("energy", ("prev", "last")), "electricity": ("electricity", ("prev", "last"))},
    "evaluations": {"grade": ("grade", ("prev", "last"))},
    "computed_grades": {"grade": ("computed_grade", ("prev", "last")), "basis": ("computed_basis", ("prev", "last"))},
}
#: the columns of firm_years that only the data check (sql/anomaly/features.sql) and the key energy
#: users (_key_energy) read: dropped once they have run
CHECK_ONLY_FIGURES = ("held_prev", "held_last", "revenue_prev", "revenue_last", "value_added_prev",
                      "value_added_last", "electricity_prev", "electricity_last", "energy_prev")
#: the registry's columns firm_years keeps
_REGISTRY_COLUMNS = ("firm_id", "uscc", "name", "township", "industry_code", "established")


def _load(engine: Engine, inputs: Inputs, rs: RuleSet, list_year: int, final_grades: pl.DataFrame | None = None,
          keep_tables: bool = True) -> None:
    """Hand the run's two data years to DuckDB: ``in_firm_figures`` (one row per registered
    enterprise, in the registry's order, with every figure firm_years reads; see
    :func:`_firm_figures`), ``in_product_energy`` and ``in_product_energy_rejected`` (rule 4
    reads their rows: the accepted ones and the (firm_id, year, product) of the rejected ones).

    When the caller does not keep the tables, each input table is released as soon as its
    figures are taken, so a province's inputs and firm_years are never all held at once.
    """
    years = [list_year - 2, list_year - 1]
    grades = _computed_grades(inputs, rs, years, final_grades)  # reads the inputs: before any is released
    engine.attach_frame("in_firm_figures", _firm_figures(inputs, years, grades, keep_tables))
    engine.attach_frame("in_product_energy", inputs.tables["product_energy"])
    engine.attach_frame("in_product_energy_rejected", inputs.product_rejected)
    engine.load("energy_limits", rs.energy_limits)
    engine.load("ref_divisions", pl.read_csv(REFERENCE_DIVISIONS, schema_overrides={"division": pl.Int32}))


def _firm_figures(inputs: Inputs, years: list[int], computed_grades: pl.DataFrame,
                  keep_tables: bool = True) -> pl.DataFrame:
    """The registry's columns with each firm's figures of ``years`` (Y-2, Y-1) beside them
    (``_YEAR_FIGURES``), ``incomplete_prev``/``_last`` (a rejected parcel row: land unknown) and
    ``held_prev``/``_last`` (a row in some table of that year).

    Every table has at most one row per (firm_id, year), so each year's rows are placed by the
    position of their firm in the registry: no join.  A row of a firm not in the registry is
    left out, as a join with the registry would.  ``keep_tables=False``: each input table is
    released (``inputs.tables`` keeps it empty) once its figures are taken."""
    registry = inputs.tables["enterprises"]
    at = _RegistryPositions(registry["firm_id"])
    columns: dict[str, pl.Series] = {}
    held = {"prev": np.zeros(registry.height, dtype=bool), "last": np.zeros(registry.height, dtype=bool)}
    for table, figures in _YEAR_FIGURES.items():
        if table == "land_year":
            frame = _land_years(inputs.tables["land"], years)
        elif table == "land_incomplete":
            frame = inputs.land_incomplete
        elif table == "computed_grades":
            frame = computed_grades
        else:
            frame = inputs.tables[table]
        for when, year in zip(("prev", "last"), years):
            rows, present = at.rows_of(frame, year, table)
            held[when] |= present
            if table == "land_incomplete":
                columns[f"incomplete_{when}"] = pl.Series(present)
            for column, (name, whens) in figures.items():
                if when in whens:
                    columns[f"{name}_{when}"] = frame[column].gather(rows)
        if not keep_tables and table in inputs.tables:
            inputs.tables[table] = frame.clear()
        if table == "land_year" and not keep_tables:
            inputs.tables["land"] = inputs.tables["land"].clear()
        del frame
    columns.update({f"held_{when}": pl.Series(flags) for when, flags in held.items()})
    return registry.select(_REGISTRY_COLUMNS).with_columns(pl.Series(k, v) for k, v in columns.items())


class _RegistryPositions:
    """Where each firm_id stands in the registry (validation numbers the registry 0, 1, 2, …,
    so a firm_id usually is its position; any other numbering is looked up)."""

    def __init__(self, firm_ids: pl.Series) -> None:
        ids = firm_ids.to_numpy().astype(np.int64)
        self.size = len(ids)
        self._positional = bool((ids == np.arange(self.size)).all())
        self._order = None if self._positional else np.argsort(ids, kind="stable")
        self._sorted = None if self._positional else ids[self._order]

    def of(self, firm_ids: pl.Series) -> np.ndarray:
        """The registry position of each firm_id, -1 for one not in the registry (or null)."""
        ids = firm_ids.cast(pl.Int64).fill_null(-1).to_numpy()
        if self._positional:
            return np.where(ids < self.size, ids, -1)
        if not self.size:
            return np.full(len(ids), -1, dtype=np.int64)
        found = np.minimum(np.searchsorted(self._sorted, ids), self.size - 1)
        return np.where(self._sorted[found] == ids, self._order[found], -1)

    def rows_of(self, frame: pl.DataFrame, year: int, table: str) -> tuple[pl.Series, np.ndarray]:
        """For each registry position, the row of ``frame`` holding that firm in ``year`` (null
        where there is none; a Series to gather with), and whether there is one."""
        rows = np.flatnonzero((frame["year"] == year).fill_null(False).to_numpy())
        pos = self.of(frame["firm_id"].gather(rows))
        known = pos >= 0
        rows, pos = rows[known], pos[known]
        row_at = np.full(self.size, -1, dtype=np.int64)
        row_at[pos] = rows
        present = row_at >= 0
        if int(present.sum()) != len(pos):
            raise AuditError(f"审计失败：{table} 中有企业在 {year} 年有多行数据（每家企业每年应只有一行）")
        index = pl.Series(np.where(present, row_at, 0), dtype=pl.UInt32)
        return pl.select(pl.when(pl.lit(pl.Series(present))).then(pl.lit(index))).to_series(), present


def _land_years(land: pl.DataFrame, years: list[int]) -> pl.DataFrame:
    """Each firm-year's parcels (of ``years``, consecutive): land_mu (the sum of the known areas),
    parcels and all_leased (every parcel of known tenure 租赁).

    numpy's bincount adds a firm-year's areas one after another in the table's row order, so the
    total never depends on how DuckDB's threads would split the rows (three or more floats added
    in another order may differ in the last bit, and the rules divide by this total)."""
    schema = {"firm_id": pl.UInt32, "year": pl.Int32, "land_mu": pl.Float64, "parcels": pl.Int64,
              "all_leased": pl.Boolean}
    rows = land.filter(pl.col("year").is_between(years[0], years[-1]))
    if not rows.height:
        return pl.DataFrame(schema=schema)
    span = years[-1] - years[0] + 1
    at = (rows["firm_id"].cast(pl.Int64) * span + (rows["year"] - years[0])).to_numpy()
    size = int(at.max()) + 1

    def count(flags: pl.Series) -> np.ndarray:
        return np.bincount(at, weights=flags.fill_null(False).cast(pl.Float64).to_numpy(), minlength=size)

    area, tenure = rows["area_mu"], rows["tenure"]
    total = np.bincount(at, weights=area.fill_null(0.0).to_numpy(), minlength=size)
    parcels = np.bincount(at, minlength=size)
    held = np.flatnonzero(parcels)
    known_area, known_tenure, leased = (count(area.is_not_null())[held], count(tenure.is_not_null())[held],
                                        count(tenure == "租赁")[held])
    return pl.DataFrame({
        "firm_id": (held // span).astype(np.uint32),
        "year": (years[0] + held % span).astype(np.int32),
        "land_mu": total[held], "parcels": parcels[held].astype(np.int64),
        "_known_area": known_area, "_known_tenure": known_tenure, "_leased": leased,
    }).select(
        "firm_id", "year",
        pl.when(pl.col("_known_area") > 0).then("land_mu").alias("land_mu"), "parcels",
        pl.when(pl.col("_known_tenure") > 0).then(pl.col("_leased") == pl.col("_known_tenure")).alias("all_leased"),
    ).cast(schema)


def _computed_grades(inputs: Inputs, rs: RuleSet, years: list[int],
                     final_grades: pl.DataFrame | None = None) -> pl.DataFrame:
    """Grades the engine computes itself for rule 2 (grade_source computed / official_else_computed).

    A data year with a finalized (定稿) evaluation in ``final_grades`` takes its final grades
    (最终等级, after 复核 and 调档), with a ``basis`` naming the evaluation and its 定稿 date;
    the other years are computed under the rule's grade_method (``basis`` null)."""
    schema = {"firm_id": pl.UInt32, "year": pl.Int32, "grade": pl.String, "basis": pl.String}
    method = grade_method(rs)
    if method is None:
        return pl.DataFrame(schema=schema)
    from .evaluation import evaluation_grades
    from .evaluation_workflow import final_grades_frame

    final = final_grades_frame(final_grades, inputs, years)
    final_years = set() if final_grades is None else set(final_grades["year"].to_list())
    computed_years = [y for y in years if y not in final_years]
    computed = evaluation_grades(inputs, computed_years, method).select(
        "firm_id", "year", "grade", pl.lit(None, dtype=pl.String).alias("basis")) if computed_years else None
    frames = [f for f in (computed, final) if f is not None]
    return pl.concat([f.cast(schema) for f in frames]) if frames else pl.DataFrame(schema=schema)


def _key_energy(engine: Engine, rs: RuleSet, list_year: int) -> dict[str, Any] | None:
    """重点用能单位 of the run's data years (advisory: never a status, the list or results)."""
    from .projects import KEY_FAMILY, key_energy_summary, key_energy_users_in

    if KEY_FAMILY not in rs.families:
        return None
    # the run's two data years, from firm_years (the inputs are gone); a firm-year without the
    # figure is left out, as key_energy_users.sql keeps only known energy and joins value added
    engine.execute("key energy views", f"""
        CREATE OR REPLACE VIEW key_energy AS
            SELECT * FROM (
                SELECT uscc, {int(list_year - 2)}::INTEGER AS year, energy_prev AS energy_tce FROM firm_years
                UNION ALL
                SELECT uscc, {int(list_year - 1)}::INTEGER AS year, energy_last AS energy_tce FROM firm_years
            ) WHERE energy_tce IS NOT NULL;
        CREATE OR REPLACE VIEW key_stats AS
            SELECT * FROM (
                SELECT uscc, {int(list_year - 2)}::INTEGER AS year, value_added_prev AS value_added FROM firm_years
                UNION ALL
                SELECT uscc, {int(list_year - 1)}::INTEGER AS year, value_added_last AS value_added FROM firm_years
            ) WHERE value_added IS NOT NULL;
    """, {})
    users = key_energy_users_in(engine, rs)
    engine.execute("drop key energy views", "DROP VIEW key_energy;\nDROP VIEW key_stats;", {})
    return key_energy_summary(rs, users, list_year - 1)


def _base_params(rs: RuleSet, list_year: int) -> dict[str, Any]:
    return {**rs.scope_params(list_year), "eps": rs.meta.comparison["relative_tolerance"]}


_RESULT_COLUMNS = (
    "value", "threshold", "industry_avg", "industry_group", "industry_group_name", "group_firms",
    "value_prev", "value_last", "value_text", "threshold_text", "detail", "years",
    "value_prev_text", "value_last_text", "source",
)


#: template fields computed from the result columns: ``detail_note`` is the evidence's detail as a
#: sentence, or nothing (rule 2 names the finalized evaluation its grades came from)
DERIVED_COLUMNS = {"detail_note": "coalesce(r.detail || '。', '')"}


def rule_info(rs: RuleSet) -> pl.DataFrame:
    """Each enabled rule once: its title and short citation (rules.csv/.parquet, the database's
    run_rules), joined to the result rows where a person reads them (:func:`with_rule_texts`)."""
    return pl.DataFrame({
        "rule_id": rs.enabled,
        "rule_title": [rs.rules[rid].title for rid in rs.enabled],
        "citation": [rs.citation_text(rs.rules[rid].citation, short=True) for rid in rs.enabled],
    })


def with_rule_texts(results: pl.DataFrame, rs: RuleSet) -> pl.DataFrame:
    """Result rows with their rule's title and citation joined from :func:`rule_info`, in the
    column order every reader of a run's results sees (store.RESULT_COLUMNS)."""
    from .store import RESULT_COLUMNS

    return results.join(rule_info(rs), on="rule_id", how="left", maintain_order="left").select(
        [name for name, _ in RESULT_COLUMNS])


def _results_view(engine: Engine, rs: RuleSet, list_year: int, run_id: str) -> None:
    """results_out: the contract's results layout with the Chinese reason of every row.

    A view, not a table: the reasons of a province's millions of rows are rendered while
    they stream into a file or the database, never all held in memory at once.  The rule's
    title and citation, the same on every row of a rule, are not repeated on its rows: they
    are in rule_info, once per rule (rules.parquet, run_rules; issue 15).
    """
    engine.load("rule_info", rule_info(rs))
    panel_cols = engine.query("panel columns", "SELECT * FROM firm_panel LIMIT 0", {}).columns
    columns = {c: f"p.{c}" for c in panel_cols}
    columns.update({c: f"r.{c}" for c in _RESULT_COLUMNS})
    columns.update(DERIVED_COLUMNS)
    messages = {rid: {**rs.meta.scope_messages, **rs.rules[rid].messages} for rid in rs.enabled}
    case = reasons.case_expression(messages, rs.template_constants(list_year), columns, "r.rule_id", "r.reason_code")
    engine.execute("results_explained", f"""
        CREATE OR REPLACE VIEW results_explained AS
        SELECT r.firm_id, {int(list_year)} AS list_year, p.uscc, r.rule_id::VARCHAR AS rule_id,
               r.status::VARCHAR AS status, r.value, r.threshold, r.industry_avg, r.industry_group,
               r.industry_group_name, r.group_firms, r.value_prev, r.value_last, r.value_text, r.threshold_text,
               r.years, r.value_prev_text, r.value_last_text, r.source, r.reason_code::VARCHAR AS reason_code,
               {case} AS reason, r.detail, {literal(run_id)} AS run_id
        FROM results r
        JOIN firm_panel p USING (firm_id)
    """, {})
    engine.execute("results_out", "CREATE OR REPLACE VIEW results_out AS SELECT * EXCLUDE (firm_id) FROM results_explained", {})


def _list_frame(engine: Engine, rs: RuleSet, list_year: int) -> pl.DataFrame:
    frame = engine.query("outputs/list.sql", sql_text("outputs/list.sql"), {"rule_order": rs.enabled})
    entries = rs.dispositions.entries
    index: pl.Expr = pl.lit(None, dtype=pl.Int32)
    for i, entry in reversed(list(enumerate(entries))):
        index = pl.when(_condition(entry.when)).then(pl.lit(i, dtype=pl.Int32)).otherwise(index)
    pick = pl.col("_entry")
    return frame.with_columns(index.alias("_entry")).select(
        pl.lit(list_year, dtype=pl.Int32).alias("list_year"),
        "uscc", "name", "township", "industry_code", "industry_name", "scale", "rule_ids", "hit_count", "reasons",
        "tax_per_mu", "land_mu", "energy_tce", "tax_per_mu_prev", "land_prev",
        pick.replace_strict(range(len(entries)), [e.disposition for e in entries], default=None,
                            return_dtype=pl.String).alias("suggested_disposition"),
        pick.replace_strict(range(len(entries)), [e.lead for e in entries], default=None,
                            return_dtype=pl.String).alias("disposition_lead"),
        pick.replace_strict(range(len(entries)), ["、".join(e.cooperating) for e in entries], default=None,
                            return_dtype=pl.String).alias("disposition_cooperating"),
        pick.replace_strict(range(len(entries)), [f"建议（仅供参考）：{e.rationale}" for e in entries], default=None,
                            return_dtype=pl.String).alias("disposition_basis"),
    )


def _condition(when: Any) -> pl.Expr:
    cond = pl.lit(True)
    rules = pl.col("hit_rules")
    if when.rules_any:
        cond &= pl.any_horizontal(rules.list.contains(rid) for rid in when.rules_any)
    if when.rules_all:
        for rid in when.rules_all:
            cond &= rules.list.contains(rid)
    if when.scale:
        cond &= pl.col("scale") == when.scale
    if when.tenure == "all_leased":
        cond &= pl.col("all_leased_last").fill_null(False)
    elif when.tenure == "has_owned":
        cond &= ~pl.col("all_leased_last").fill_null(True)
    return cond
