"""The 定稿 list for signature and a 《高耗低效企业认定告知书》 per listed firm.

``screening export-final --year Y --db FILE --out OUT`` and ``GET /api/v1/lists/{year}/final/export``
write, from the list the service finalized (tables ``finalizations`` and ``final_list``):

* ``定稿清单_<Y>.xlsx``: the summary (targets against the final list, the plans and the completed
  plans), the final list with a sign-off block (编制单位、审核、日期), printable as it is;
* ``告知书/<序号>_<企业名称>.docx``: one notice per firm, from the rule set's ``notice_template.docx``
  (a docxtpl template the bureau edits in Word/WPS; ``notice.yaml`` holds the issuer and the
  objection route and deadline), and ``告知书_<Y>_合并打印.docx``, all notices for one print job.

See docs/print.md."""
from __future__ import annotations

import datetime as dt
import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import clock
from .config_errors import describe
from .errors import InputError, RuleSetError
from .excel import LIST_COLUMNS, WORKBOOK_OPTIONS, Workbook, _formats, _list_sheet, print_setup, target_tables
from .ruleset import RuleSet
from .store import results_relation

NOTICE_FILE = "notice.yaml"
NOTICE_DIR = "告知书"
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f]')
#: the final list's columns on paper: the list's, less the machine's rule ids, plus how it was finalized
FINAL_COLUMNS = (*(c for c in LIST_COLUMNS if c[0] != "rule_ids"), ("basis_zh", "定稿依据", 12, "wrap"))
BASIS_ZH = {"confirmed": "属地核实确认", "dispute_rejected": "异议经审核驳回"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Days(_Strict):
    value: int = Field(ge=1, le=365)
    unit: str = "个工作日"
    note: str | None = None


class Objection(_Strict):
    days: Days
    route: str = Field(min_length=1)
    contact: str = Field(min_length=1)


class NoticeConfig(_Strict):
    template: str = "notice_template.docx"
    issuer: str = Field(min_length=1)
    objection: Objection
    basis_source: str


def notice_config(rs: RuleSet) -> NoticeConfig:
    path = rs.directory / NOTICE_FILE
    if not path.is_file():
        raise RuleSetError(f"规则集 {rs.directory} 中没有告知书设置 {NOTICE_FILE}（见 docs/print.md）")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        config = NoticeConfig.model_validate(raw)
    except ValidationError as exc:
        raise RuleSetError(f"{path} 填写有误：{describe(exc, raw, NoticeConfig)}") from None
    except yaml.YAMLError as exc:
        raise RuleSetError(f"{path} 不是有效的 YAML：{' '.join(str(exc).split())}") from None
    if config.basis_source not in rs.meta.sources:
        raise RuleSetError(f"{path}：basis_source “{config.basis_source}” 不是 _ruleset.yaml 中 sources 的一项"
                           f"（可用：{'、'.join(rs.meta.sources)}）")
    if not (rs.directory / config.template).is_file():
        raise RuleSetError(f"{path}：告知书模板 {rs.directory / config.template} 不存在")
    return config


@dataclass
class FinalList:
    year: int
    run_id: str
    finalized_by: str
    finalized_at: dt.datetime
    firms: pl.DataFrame                       # the final list, in print order, with list_no
    hits: dict[str, list[dict[str, Any]]]     # uscc → hit rows of the run
    progress: dict[str, float | None] = field(default_factory=dict)


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def _has(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = ? AND schema_name = 'main'",
                            [table]).fetchall())


def read_final(con: duckdb.DuckDBPyConnection, year: int) -> FinalList:
    """The finalized list of ``year``; InputError (exit 2, 404) when it is not finalized."""
    info = _rows(con, "SELECT * FROM finalizations WHERE list_year = ?", [year]) if _has(con, "finalizations") else []
    if not info:
        raise InputError(f"{year} 年度清单尚未定稿，没有可导出的定稿清单；请先在服务中完成核实并定稿"
                         f"（POST /api/v1/lists/{year}/finalize）")
    entries = [{**json.loads(r["entry"]), "basis": r["basis"]}
               for r in _rows(con, "SELECT basis, entry FROM final_list WHERE list_year = ?", [year])]
    columns = [c for c, *_ in LIST_COLUMNS if c not in ("list_no", "rule_titles")]
    firms = pl.DataFrame([{c: e.get(c) for c in (*columns, "basis")} for e in entries],
                         schema={**{c: pl.String for c in columns}, "basis": pl.String,
                                 **{c: pl.Float64 for c in ("tax_per_mu", "land_mu", "energy_tce")}})
    firms = firms.sort("township", "uscc", nulls_last=True).with_columns(
        pl.int_range(1, pl.len() + 1).alias("list_no"),
        pl.col("basis").replace_strict(BASIS_ZH, default=pl.col("basis")).alias("basis_zh"))
    run = info[0]["run_id"]
    hits: dict[str, list[dict[str, Any]]] = {}
    hit_rows = results_relation(con, "(SELECT * FROM run_results WHERE run_id = ? AND status = 'hit')")
    for h in _rows(con, f"SELECT * FROM {hit_rows} ORDER BY uscc, rule_id", [run]):
        hits.setdefault(h["uscc"], []).append(h)
    titles = {u: "；".join(h["rule_title"] or h["rule_id"] for h in rows) for u, rows in hits.items()}
    firms = firms.with_columns(pl.col("uscc").replace_strict(titles, default=pl.col("rule_ids")).alias("rule_titles"))
    final = FinalList(year, run, info[0]["finalized_by"], info[0]["finalized_at"], firms, hits)
    final.progress = _progress(con, year, firms)
    return final


def _progress(con: duckdb.DuckDBPyConnection, year: int, firms: pl.DataFrame) -> dict[str, float | None]:
    """Stages toward the targets: the run's list, the final list, plans made and plans completed,
    land and energy the plans expect to free and the completed plans freed."""
    listed = _rows(con, "SELECT listed FROM runs r JOIN finalizations f USING (run_id) WHERE f.list_year = ?", [year])
    listed_sums = _rows(con, "SELECT sum(land_mu) AS land, sum(energy_tce) AS energy FROM run_list l "
                             "JOIN finalizations f USING (run_id) WHERE f.list_year = ?", [year])[0]
    plans = _rows(con, "SELECT plan, status FROM plans WHERE list_year = ?", [year]) if _has(con, "plans") else []
    made = [(json.loads(p["plan"]), p["status"]) for p in plans]
    done = [p for p, s in made if s == "completed"]
    return {
        "listed": listed[0]["listed"] if listed else None,
        "final": firms.height, "plans": len(made), "completed": len(done),
        "expected_land_mu": sum(p["expected_land_mu"] for p, _ in made),
        "expected_energy_tce": sum(p["expected_energy_tce"] for p, _ in made),
        "freed_land_mu": sum(p["expected_land_mu"] for p in done),
        "freed_energy_tce": sum(p["expected_energy_tce"] for p in done),
        "listed_land_mu": listed_sums["land"], "listed_energy_tce": listed_sums["energy"],
        "final_land_mu": firms["land_mu"].sum() or 0.0, "final_energy_tce": firms["energy_tce"].sum() or 0.0,
    }


def _title(rs: RuleSet, year: int) -> str:
    return f"{rs.meta.region}{year}年度高耗低效整治企业清单（定稿）"


def write_workbook(final: FinalList, rs: RuleSet, path: Path, now: dt.datetime) -> Path:
    title = _title(rs, final.year)
    facts = f"规则集 {rs.meta.id} 版本 {rs.meta.version}　定稿时间 {clock.stamp(final.finalized_at)}"
    with Workbook(str(path), WORKBOOK_OPTIONS) as wb:
        fmts = _formats(wb)
        ws = wb.add_worksheet("汇总")
        ws.set_column(0, 0, 30)
        ws.set_column(1, 8, 12)
        ws.write_string(0, 0, title, fmts["title"])
        info = [("清单年度", f"{final.year}年度"), ("定稿企业", f"{final.firms.height} 家"),
                ("定稿人", final.finalized_by), ("定稿时间", clock.stamp(final.finalized_at)),
                ("筛选运行编号", final.run_id), ("导出时间", clock.stamp(now))]
        for i, (k, v) in enumerate(info, start=2):
            ws.write_string(i, 0, k, fmts["bold"])
            ws.write_string(i, 1, v, fmts["text"])
        row = target_tables(ws, fmts, len(info) + 3, rs.meta.targets, final.progress)
        _sign_off(ws, fmts, row + 1, 0)
        print_setup(ws, title, facts, header_rows=None, one_page=True)
        lst = _list_sheet(wb, fmts, "定稿清单", final.firms, FINAL_COLUMNS, page=(title, facts))
        _sign_off(lst, fmts, final.firms.height + 2, 2)
    return path


SIGN_OFF = ("编制单位（盖章）：", "审核：", "日期：　　　　年　　月　　日")


def _sign_off(ws: Any, fmts: dict[str, Any], row: int, col: int) -> None:
    """编制单位、审核、日期 under the table, a blank line between them for the hand."""
    for i, label in enumerate(SIGN_OFF):
        ws.set_row(row + i * 2, 24)
        ws.write_string(row + i * 2, col, label, fmts["bold"])


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    return f"{value:,.2f}{unit}"


def notice_context(final: FinalList, rs: RuleSet, config: NoticeConfig, firm: dict[str, Any],
                   now: dt.datetime) -> dict[str, Any]:
    """What the template's placeholders read (docs/print.md lists them)."""
    source = rs.meta.sources[config.basis_source]
    basis = f"{source.issuer}《{source.title}》"
    hits = []
    for h in final.hits.get(firm["uscc"], []):
        rule = rs.rules.get(h["rule_id"])
        # the unit of what the rule measures, never a parameter's (规则 1's ratio is 倍, its value 万元/亩)
        unit = (rule.value_unit or "") if rule is not None else ""
        hits.append({
            "rule_id": h["rule_id"], "title": h["rule_title"] or h["rule_id"], "reason": h["reason"] or "",
            # texts list one value per year or grade with ",": people write "C、D", as the years below
            "value": (h["value_text"] or "").replace(",", "、") or _number(h["value"], unit),
            "threshold": (h["threshold_text"] or "").replace(",", "、") or _number(h["threshold"], unit),
            "industry_avg": _number(h["industry_avg"], unit) if h["industry_avg"] is not None else "—",
            "years": "、".join(f"{y}年" for y in (h["years"] or "").split(",") if y) or "—",
            "citation": h["citation"] or "",
        })
    local = clock.local(now)
    return {
        "notice_no": f"{rs.meta.region}{final.year}年度第{firm['list_no']:03d}号",
        "region": rs.meta.region, "year": final.year, "basis": basis, "issuer": config.issuer,
        "date": f"{local.year}年{local.month}月{local.day}日",
        "firm": {"name": firm["name"] or "", "uscc": firm["uscc"], "township": firm["township"] or "所在乡镇街道",
                 "industry": firm.get("industry_name") or "",
                 "disposition": firm.get("suggested_disposition") or "由一企一策方案确定"},
        "hits": hits,
        "objection": {"days": config.objection.days.value, "unit": config.objection.days.unit,
                      "route": config.objection.route, "contact": config.objection.contact},
    }


def _render(template: bytes, context: dict[str, Any], rs: RuleSet, config: NoticeConfig) -> Any:
    from docxtpl import DocxTemplate

    doc = DocxTemplate(io.BytesIO(template))
    try:
        doc.render(context, autoescape=True)
    except Exception as exc:  # a template the bureau edited with a broken placeholder
        raise RuleSetError(f"告知书模板 {rs.directory / config.template} 无法套用："
                           f"{' '.join(str(exc).split())}（占位符写法见 docs/print.md）") from None
    return doc


def check_template(rs: RuleSet, config: NoticeConfig) -> None:
    """Render the template once with a made-up firm of two hits (screening lint)."""
    hit = {"rule_id": "r", "title": "规则", "reason": "理由", "value": "1", "threshold": "2", "industry_avg": "—",
           "years": "2020年、2021年", "citation": "出处"}
    final = FinalList(2022, "check", "check", dt.datetime.now(dt.timezone.utc), pl.DataFrame(), {})
    firm = {"uscc": "x", "name": "示例企业", "township": "示例镇", "list_no": 1}
    context = notice_context(final, rs, config, firm, dt.datetime.now(dt.timezone.utc))
    context["hits"] = [hit, hit]
    _render((rs.directory / config.template).read_bytes(), context, rs, config)


def write_notices(final: FinalList, rs: RuleSet, out: Path, now: dt.datetime) -> list[Path]:
    """One .docx per firm in OUT/告知书/ and the merged file for printing; returns the merged file first."""
    from docx import Document
    from docxcompose.composer import Composer

    config = notice_config(rs)
    template = (rs.directory / config.template).read_bytes()
    folder = out / NOTICE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    composer = None
    for firm in final.firms.iter_rows(named=True):
        doc = _render(template, notice_context(final, rs, config, firm, now), rs, config)
        name = _UNSAFE.sub("_", f"{firm['list_no']:03d}_{firm['name'] or firm['uscc']}")[:120]
        path = folder / f"{name}.docx"
        doc.save(str(path))
        written.append(path)
        if composer is None:
            composer = Composer(Document(str(path)))
        else:
            composer.doc.add_page_break()
            composer.append(Document(str(path)))
    merged = out / f"告知书_{final.year}_合并打印.docx"
    if composer is not None:
        composer.save(str(merged))
        return [merged, *written]
    return written


def export_final(con: duckdb.DuckDBPyConnection, year: int, rs: RuleSet, out: Path,
                 now: dt.datetime | None = None) -> list[Path]:
    """Every file of the export into ``out`` (created); the workbook first."""
    now = now or dt.datetime.now(dt.timezone.utc)
    notice_config(rs)  # a broken notice set-up stops before anything is written
    final = read_final(con, year)
    out.mkdir(parents=True, exist_ok=True)
    book = write_workbook(final, rs, out / f"定稿清单_{year}.xlsx", now)
    return [book, *write_notices(final, rs, out, now)]


def export_zip(con: duckdb.DuckDBPyConnection, year: int, rs: RuleSet, scratch: Path) -> bytes:
    """The export as one zip (for the API): the same files, paths relative to the export."""
    files = export_final(con, year, rs, scratch)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            zf.write(path, path.relative_to(scratch).as_posix())
    return buffer.getvalue()
