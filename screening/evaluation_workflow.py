"""The evaluation year as a workflow (docs/evaluation-workflow.md): what a stored 测算 keeps
and how it is computed again.  Pure functions over Polars frames; the service stores what they
return (api/routes/evaluations.py) and never computes a score itself.

- :func:`pack_inputs` / :func:`unpack_inputs`: the validated input tables an evaluation read,
  as Arrow IPC bytes, and back (the stored inputs; their hash is :func:`inputs_sha256`);
- :func:`apply_corrections`: the same inputs with corrected quantities (a township's data
  confirmation, an accepted objection) put in place of the originals;
- :func:`compute`: ``screening.evaluation.evaluate()`` on them, and one row per firm in a fixed
  layout (:func:`result_rows`), reading the columns a newer evaluate() adds (population, 初评等级 …)
  only when present;
- :func:`method_from_text`: the method exactly as stored (its file's bytes), so that a stored
  evaluation is recomputed under the method it was computed with, whatever the file says today.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from .evaluation import evaluate
from .evaluation_method import DENOMINATORS, NUMERATORS, QUANTITY_TABLE, Method, load_method
from .validate import FIRM_ID, Inputs

#: the quantities a confirmation or an objection may correct: (Chinese name, unit) by contract column
CORRECTABLE: dict[str, tuple[str, str]] = {q: {**NUMERATORS, **DENOMINATORS}[q] for q in QUANTITY_TABLE}
#: the table column each quantity lives in (land is the sum of the year's parcels)
_COLUMN = {"land_mu": "area_mu"}
#: the parcel id of the one parcel a corrected land area stands for
CORRECTED_PARCEL = "更正"
#: columns a newer evaluate() adds; read only when present
OPTIONAL_COLUMNS = ("population", "population_name", "base_score", "adjustment", "initial_grade", "grade_class",
                    "adjustment_detail")
LAND_INCOMPLETE = "_land_incomplete"


# ---------------------------------------------------------------- stored inputs

def pack_inputs(inputs: Inputs) -> dict[str, bytes]:
    """Each validated table (and the firm-years of unknown land) as Arrow IPC bytes."""
    out = {name: _ipc(frame) for name, frame in sorted(inputs.tables.items())}
    out[LAND_INCOMPLETE] = _ipc(inputs.land_incomplete)
    return out


def _ipc(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_ipc(buf, compression="zstd")
    return buf.getvalue()


def unpack_inputs(blobs: Mapping[str, bytes]) -> Inputs:
    tables = {name: pl.read_ipc(io.BytesIO(data)) for name, data in blobs.items() if name != LAND_INCOMPLETE}
    inputs = Inputs(tables=tables, rejects=pl.DataFrame())
    if LAND_INCOMPLETE in blobs:
        inputs.land_incomplete = pl.read_ipc(io.BytesIO(blobs[LAND_INCOMPLETE]))
    return inputs


def blob_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def inputs_sha256(blobs: Mapping[str, bytes]) -> str:
    """One hash over the stored tables (name and SHA-256 of each, in name order)."""
    lines = "".join(f"{name}:{blob_sha256(data)}\n" for name, data in sorted(blobs.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


# ---------------------------------------------------------------- the method as stored

def method_from_text(method_id: str, text: bytes) -> Method:
    """Load a method from its stored file bytes (the file name must be ``<id>.yaml``)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{method_id}.yaml"
        path.write_bytes(text)
        return load_method(path)


# ---------------------------------------------------------------- corrections

@dataclass(frozen=True)
class Correction:
    uscc: str
    quantity: str
    value: float


def check_corrections(values: Mapping[str, Any]) -> dict[str, float]:
    """{quantity: value} as a person sent it → checked floats; ValueError (Chinese) otherwise."""
    out: dict[str, float] = {}
    for name, value in values.items():
        if name not in CORRECTABLE:
            raise ValueError(f"“{name}”不是可更正的数据项，可更正：{'、'.join(f'{q}（{z}）' for q, (z, _) in CORRECTABLE.items())}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name}（{CORRECTABLE[name][0]}）应为不小于 0 的数字")
        if name == "land_mu" and value <= 0:
            raise ValueError("land_mu（用地面积）应大于 0")
        out[name] = float(value)
    return out


def original_values(inputs: Inputs, year: int, uscc: str) -> dict[str, float | None]:
    """A firm's quantities in ``year`` as the inputs hold them (land: the sum of its parcels;
    None when missing or, for land, unknown because a parcel row was rejected)."""
    ent = inputs.tables["enterprises"].filter(pl.col("uscc") == uscc)
    out: dict[str, float | None] = dict.fromkeys(CORRECTABLE)
    if not ent.height:
        return out
    fid = ent[FIRM_ID][0]
    for q, table in QUANTITY_TABLE.items():
        frame = inputs.tables.get(table)
        if frame is None or _COLUMN.get(q, q) not in frame.columns:
            continue
        rows = frame.filter((pl.col(FIRM_ID) == fid) & (pl.col("year") == year))
        if not rows.height:
            continue
        if q == "land_mu":
            incomplete = inputs.land_incomplete.filter((pl.col(FIRM_ID) == fid) & (pl.col("year") == year)).height
            out[q] = None if incomplete else float(rows["area_mu"].sum())
        else:
            value = rows[q][0]
            out[q] = None if value is None else float(value)
    return out


def apply_corrections(inputs: Inputs, year: int, corrections: Iterable[Correction]) -> tuple[Inputs, list[dict]]:
    """The inputs with each correction in place of the original value (the inputs given are
    not changed).  Returns the corrected inputs and, per correction, whether it could be
    applied: a quantity of ``stats`` cannot be given to a firm without a stats row that year
    (its scale is unknown), nor any quantity to a code not in the registry."""
    tables = dict(inputs.tables)
    incomplete = inputs.land_incomplete
    ids = dict(tables["enterprises"].select("uscc", FIRM_ID).iter_rows())
    outcome: list[dict] = []
    for c in corrections:
        row = {"uscc": c.uscc, "quantity": c.quantity, "value": c.value, "applied": True, "reason": None}
        outcome.append(row)
        fid = ids.get(c.uscc)
        if fid is None:
            row.update(applied=False, reason="企业名录中没有该企业")
            continue
        table = QUANTITY_TABLE[c.quantity]
        frame = tables[table]
        here = (pl.col(FIRM_ID) == fid) & (pl.col("year") == year)
        if c.quantity == "land_mu":
            parcels = frame.filter(here)
            tenures = parcels["tenure"].drop_nulls().unique().to_list() if "tenure" in parcels.columns else []
            new = {col: None for col in frame.columns}
            new.update({FIRM_ID: fid, "year": year, "parcel_id": CORRECTED_PARCEL, "area_mu": c.value})
            if "tenure" in frame.columns:
                new["tenure"] = tenures[0] if len(tenures) == 1 else None
            tables[table] = pl.concat([frame.filter(~here), pl.DataFrame([new], schema=frame.schema)])
            incomplete = incomplete.filter(~((pl.col(FIRM_ID) == fid) & (pl.col("year") == year)))
            continue
        if frame.filter(here).height:
            dtype = frame.schema[c.quantity]
            value = round(c.value) if dtype.is_integer() else c.value
            tables[table] = frame.with_columns(
                pl.when(here).then(pl.lit(value).cast(dtype)).otherwise(pl.col(c.quantity)).alias(c.quantity))
        elif table == "stats":
            row.update(applied=False, reason=f"该企业没有{year}年统计数据（规模不明），不能更正{CORRECTABLE[c.quantity][0]}")
        else:
            new = {col: None for col in frame.columns}
            new.update({FIRM_ID: fid, "year": year, c.quantity: c.value})
            tables[table] = pl.concat([frame, pl.DataFrame([new], schema=frame.schema)])
    corrected = Inputs(tables=tables, rejects=inputs.rejects, files=inputs.files, land_incomplete=incomplete,
                       product_rejected=inputs.product_rejected)
    return corrected, outcome


# ---------------------------------------------------------------- results

RESULT_COLUMNS = ("uscc", "name", "township", "industry_code", "scale", "population", "population_name", "score",
                  "base_score", "adjustment", "rank", "group_size", "grade", "initial_grade", "grade_class",
                  "not_graded_reason", "quantities", "detail")


def result_rows(ev, method: Method) -> pl.DataFrame:
    """One row per firm evaluated in a fixed layout (:data:`RESULT_COLUMNS`).

    ``population`` is the evaluate() frame's own when it has one, else the scale (each scale is
    ranked on its own); ``initial_grade`` (初评等级) is the frame's when present, else its grade.
    ``quantities`` (JSON) holds the input quantities used; ``detail`` (JSON) the indicator values,
    item scores and anything else the frame carries."""
    s = ev.scores
    cols = set(s.columns)
    quantities = [q for q in method.quantities() if q in cols]
    known = {FIRM_ID, "year", "method_id", "percentile", "grade_group", *RESULT_COLUMNS, *quantities}
    extra = [c for c in s.columns if c not in known]

    def col(name: str, dtype, fallback: pl.Expr | None = None) -> pl.Expr:
        if name in cols:
            return pl.col(name).cast(dtype)
        return (fallback if fallback is not None else pl.lit(None)).cast(dtype).alias(name)

    frame = s.select(
        "uscc", col("name", pl.String), col("township", pl.String), col("industry_code", pl.String),
        col("scale", pl.String),
        col("population", pl.String, pl.col("scale")), col("population_name", pl.String, pl.col("scale")),
        col("score", pl.Float64), col("base_score", pl.Float64), col("adjustment", pl.Float64),
        col("rank", pl.Int64), col("group_size", pl.Int64), col("grade", pl.String),
        col("initial_grade", pl.String, pl.col("grade")), col("grade_class", pl.String),
        col("not_graded_reason", pl.String),
        pl.struct(quantities).struct.json_encode().alias("quantities") if quantities
        else pl.lit("{}").alias("quantities"),
        pl.struct(extra).struct.json_encode().alias("detail") if extra else pl.lit("{}").alias("detail"),
    )
    return frame.with_columns(pl.col("population").fill_null("规模不明"),
                              pl.col("population_name").fill_null("规模不明"))


#: one row per (firm, indicator): how each item score came about (evaluation_items.csv's columns
#: but ``scale`` and ``population``, which the firm's result row holds)
ITEM_COLUMNS = {"uscc": pl.String, "indicator": pl.String, "indicator_name": pl.String, "unit": pl.String,
                "numerator": pl.Float64, "denominator": pl.Float64, "value": pl.Float64, "baseline": pl.Float64,
                "weight": pl.Float64, "item_score": pl.Float64, "data_status": pl.String, "handling": pl.String,
                "capped": pl.Boolean, "note": pl.String}


def item_rows(ev) -> pl.DataFrame:
    """The evaluate() items in the stored layout (:data:`ITEM_COLUMNS`, plain types): the value,
    基准值, weight and item score of every indicator of every firm, so that a firm's score can be
    traced item by item where it is shown (GET /evaluations/{id}/firms/{uscc})."""
    return ev.items.select(pl.col(name).cast(dtype) for name, dtype in ITEM_COLUMNS.items())


def compute(inputs: Inputs, year: int, method: Method) -> tuple[Any, pl.DataFrame]:
    """evaluate() on ``inputs`` and its rows in the stored layout."""
    ev = evaluate(inputs, year, method)
    return ev, result_rows(ev, method)


def final_grades_sha256(rows: Iterable[Mapping[str, Any]]) -> str:
    """The hash of a finalized evaluation's grades: per firm (in code order) its code, 初评等级,
    computed grade, final grade, score (6 decimals) and rank."""
    canonical = [[r["uscc"], r["initial_grade"], r["computed_grade"], r["final_grade"],
                  None if r["score"] is None else round(float(r["score"]), 6), r["rank"]]
                 for r in sorted(rows, key=lambda r: r["uscc"])]
    return hashlib.sha256(json.dumps(canonical, ensure_ascii=False).encode()).hexdigest()


# ---------------------------------------------------------------- rule 2 reads the final grades

FINAL_GRADES_SCHEMA = {"uscc": pl.String, "year": pl.Int32, "grade": pl.String, "evaluation_id": pl.String,
                       "finalized_at": pl.Datetime("us", "UTC")}


def finalized_grades(con, years: Iterable[int] | None = None) -> pl.DataFrame:
    """The final grades (最终等级) of the finalized (定稿) evaluations in a service database
    (``con``: a DuckDB connection), one evaluation per data year: uscc, year, grade,
    evaluation_id, finalized_at.  Empty when the database has no evaluations."""
    tables = {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' "
        "AND table_name IN ('eval_runs', 'eval_final')").fetchall()}
    if tables != {"eval_runs", "eval_final"}:
        return pl.DataFrame(schema=FINAL_GRADES_SCHEMA)
    rows = con.execute(
        "SELECT f.uscc, r.data_year, f.final_grade, r.evaluation_id, r.finalized_at "
        "FROM eval_final f JOIN eval_runs r USING (evaluation_id) WHERE r.status = 'finalized' "
        "ORDER BY r.data_year, f.uscc").fetchall()
    frame = pl.DataFrame(rows, schema=FINAL_GRADES_SCHEMA, orient="row")
    return frame if years is None else frame.filter(pl.col("year").is_in(list(years)))


def final_grades_frame(final: pl.DataFrame | None, inputs: Inputs, years: Iterable[int]) -> pl.DataFrame:
    """``final`` (see :func:`finalized_grades`) for the given data years, shaped like the computed
    grades rule 2 reads (firm_id, year, grade, basis): firms in the registry, graded ones only;
    ``basis`` names the evaluation and its 定稿 date (China time)."""
    from .clock import local

    schema = {FIRM_ID: pl.UInt32, "year": pl.Int32, "grade": pl.String, "basis": pl.String}
    if final is None or not final.height:
        return pl.DataFrame(schema=schema)
    final = final.filter(pl.col("year").is_in(list(years)))
    if not final.height:
        return pl.DataFrame(schema=schema)
    labels = pl.DataFrame(
        [(y, e, f"{y}年等级取自已定稿的亩均效益评价 {e}（{local(at).date().isoformat()} 定稿）")
         for y, e, at in final.select("year", "evaluation_id", "finalized_at").unique().iter_rows()],
        schema={"year": pl.Int32, "evaluation_id": pl.String, "basis": pl.String}, orient="row")
    ids = inputs.tables["enterprises"].select("uscc", FIRM_ID)
    return (final.join(ids, on="uscc", how="inner").join(labels, on=["year", "evaluation_id"], how="left")
            .filter(pl.col("grade").is_not_null())
            .select(pl.col(FIRM_ID).cast(pl.UInt32), pl.col("year").cast(pl.Int32), "grade", "basis"))


# ---------------------------------------------------------------- the published workbook

PUBLICATION_COLUMNS: list[tuple[str, str, str]] = [
    ("rank", "名次", "int"), ("grade", "等级", "text"), ("score", "综合得分", "num2"), ("name", "企业名称", "wrap"),
    ("uscc", "统一社会信用代码", "text"), ("township", "乡镇街道", "text"), ("industry_code", "行业代码", "text"),
    ("not_graded_reason", "不定等级原因", "wrap"),
]


def publication_workbook(title: str, note: str, rows: list[dict[str, Any]], quantities: list[str]) -> bytes:
    """The published list of one population (公示名单) as an xlsx: a title, the publication
    window, and per firm its rank, grade, score and the input data used (as counties publish
    them, e.g. land area).  Cells are written as text or numbers, never as formulas."""

    from .excel import WORKBOOK_OPTIONS, Workbook, _formats, _table

    buf = io.BytesIO()
    wb = Workbook(buf, {**WORKBOOK_OPTIONS, "in_memory": True})
    fmts = _formats(wb)
    ws = wb.add_worksheet("公示名单")
    ws.write_string(0, 0, title, fmts["title"])
    ws.write_string(1, 0, note, fmts["note"])
    details = [json.loads(r.get("detail") or "{}").get("adjustment_detail") for r in rows]
    # 加减分 and one-vote items explain a score or a grade the indicators alone do not give
    adjusted = [("adjustment_detail", "加减分说明", "wrap")] if any(details) else []
    cols = [*PUBLICATION_COLUMNS, *adjusted,
            *((q, f"{CORRECTABLE[q][0]}（{CORRECTABLE[q][1]}）", "num2") for q in quantities)]
    widths = [6, 6, 10, 30, 21, 10, 9, 40, *([40] * len(adjusted)), *([14] * len(quantities))]
    for c, w in enumerate(widths):
        ws.set_column(c, c, w)
    table = []
    for r, detail in zip(rows, details):
        used = json.loads(r["quantities"] or "{}")
        # T (暂不评价) is published as T beside its reason, never as an empty grade
        shown = {**r, "grade": r.get("grade") or r.get("grade_class"), "adjustment_detail": detail}
        table.append([used.get(key) if key in quantities else shown.get(key) for key, _, _ in cols])
    _table(ws, fmts, 3, [h for _, h, _ in cols], table, [k for _, _, k in cols], widths)
    ws.freeze_panes(4, 0)
    wb.close()
    return buf.getvalue()
