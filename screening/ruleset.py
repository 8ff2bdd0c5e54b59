"""Load and validate a rule set directory (``rules/<id>/``) and apply ``--set`` overrides.

Layout of a rule set:
  _ruleset.yaml        id, version, sources (citations), scope numbers, targets, rule order
  <rule_id>.yaml       one rule: title, citation, parameters (value + citation), messages
  dispositions.yaml    ordered mapping from hits to a suggested 一企一策 disposition
  energy_limits.csv    product energy limits (contract columns), edited by bureau staff
  projects.yaml        (optional) the 两高 project review of ``screening projects`` (not a list rule)
  key_energy_users.yaml (optional) the key energy users' threshold (一企一策 record, dashboard)
The rule logic is ``sql/rules/<rule_id>.sql``; id == file stem == SQL file name.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
from pathlib import Path
from typing import Any, Literal

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from . import reasons
from .config_errors import describe
from .errors import RuleSetError
from .paths import folder_problem, sql_dir
from .schema import TABLES

RULE_IDS = (
    "above_scale_low_tax_per_mu",
    "below_scale_consecutive_c_grade",
    "below_scale_consecutive_low_tax_per_mu",
    "energy_limit_exceeded",
)
#: rule families outside the list: same file shape as a rule, own SQL, own command; ``--set`` of a
#: list run does not reach them and they never enter run.json's parameters
FAMILY_IDS = ("projects", "key_energy_users")
STATUSES = ("hit", "pass", "insufficient_data", "not_applicable")
#: the statuses as a person reads them (CLI tables, comparisons, workbooks)
STATUS_ZH = {"hit": "命中", "pass": "未命中", "insufficient_data": "数据不足", "not_applicable": "不适用"}
LIMIT_RULE = "energy_limit_exceeded"
#: reason codes a rule's SQL may give that need a message of their own (besides the scope's)
REQUIRED_MESSAGES = {"energy_limit_exceeded": ("hit", "hit_unverified", "product_rejected"), "key_energy_users": ("listed", "rising"),
                     "projects": ("hit", "pass", "value_added_missing", "below_review", "county", "upper")}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    doc_no: str | None = None
    issuer: str
    title: str
    short_title: str | None = None  # how result rows cite it (the full form is in run.json and Excel)
    published: dt.date
    url: str | None = None


class Cite(_Strict):
    source: str
    clause: str
    heading: str | None = None  # the clause's own title, shown in the full citation
    quote: str | None = None
    note: str | None = None


class Parameter(_Strict):
    type: Literal["float", "int", "list", "choice", "text"]
    value: Any
    unit: str | None = None
    description: str
    allowed: list[str] | None = None
    #: the smallest and largest values that make sense (inclusive), for numbers: a value outside
    #: is refused like a wrong type (``ratio=1e308`` once overflowed the threshold to infinity)
    minimum: float | None = None
    maximum: float | None = None
    #: "sql": bound into the rule's SQL; "engine": read by the Python pipeline (e.g. a method name)
    applies_in: Literal["sql", "engine"] = "sql"
    cite: Cite

    @model_validator(mode="after")
    def _typed(self) -> "Parameter":
        object.__setattr__(self, "value", coerce(self, self.value, "默认值"))
        return self


class NumberSetting(_Strict):
    value: float
    unit: str | None = None
    label: str | None = None
    cite: Cite


class Rule(_Strict):
    id: str
    title: str
    short_title: str
    enabled: bool = True
    lead_department: str
    #: the input tables the rule reads besides ``enterprises`` (the run needs them; others may be absent)
    reads: list[str] = Field(min_length=1)
    citation: Cite
    #: the unit of the rule's value, threshold and industry average (e.g. 万元/亩), shown after those
    #: numbers where a person reads them apart from the reason (the notice); none when the value is a
    #: text (grades) or its unit differs from result to result (product energy use: in the reason)
    value_unit: str | None = None
    parameters: dict[str, Parameter] = Field(default_factory=dict)
    messages: dict[str, str]


class Condition(_Strict):
    rules_any: list[str] | None = None
    rules_all: list[str] | None = None
    scale: Literal["规上", "规下"] | None = None
    tenure: Literal["all_leased", "has_owned"] | None = None


class Disposition(_Strict):
    disposition: Literal["兼并重组", "整体腾退", "搬迁入园", "改造提升"]
    lead: str
    cooperating: list[str] = Field(default_factory=list)
    when: Condition
    rationale: str


class Dispositions(_Strict):
    source: str
    clause: str
    entries: list[Disposition]


#: the scope numbers and comparison settings every screening reads (the SQL's parameters, the
#: texts' constants): a rule set without one of them cannot be used
SCOPE_KEYS = ("manufacturing_division_min", "manufacturing_division_max", "new_firm_window_years")
COMPARISON_KEYS = ("relative_tolerance",)


class RuleSetFile(_Strict):
    id: str
    version: str
    title: str
    region: str
    designed_for_list_year: int
    last_reviewed: dt.date
    sources: dict[str, Source]
    scope: dict[Literal[SCOPE_KEYS], NumberSetting]
    comparison: dict[Literal[COMPARISON_KEYS], float]
    targets: dict[Literal["firms", "land_mu", "energy_tce"], NumberSetting]
    rules: list[str]
    scope_messages: dict[Literal["not_manufacturing", "new_firm", "industry_unknown", "no_stats"], str]


#: a parameter's type as a person reads it in a message
PARAM_TYPES_ZH = {"float": "数字", "int": "整数", "list": "逗号分隔的列表", "choice": "可选值之一", "text": "文本"}


def _number(value: Any) -> float:
    """float(value), with the library's English error said in Chinese."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError("不是数字") from None


def coerce(param: Parameter, value: Any, what: str) -> Any:
    """Convert a YAML value or a ``--set`` string to the parameter's type, or raise ValueError."""
    try:
        if param.type in ("choice", "text"):
            text = str(value).strip()
            if not text:
                raise ValueError("不能为空")
            if param.type == "choice" and param.allowed and text not in param.allowed:
                raise ValueError(f"应为 {'、'.join(param.allowed)} 之一")
            return text
        if param.type == "list":
            items = value.split(",") if isinstance(value, str) else list(value)
            items = [str(i).strip().upper() for i in items if str(i).strip()]
            if not items:
                raise ValueError("列表不能为空")
            bad = [i for i in items if param.allowed and i not in param.allowed]
            if bad:
                raise ValueError(f"{'、'.join(bad)} 不在允许值 {'、'.join(param.allowed or [])} 中")
            return items
        if isinstance(value, bool):
            raise ValueError("不是数字")
        number = _number(value)
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError("不是有限的数字")
        if param.type == "int" and number != int(number):
            raise ValueError("应为整数")
        _in_range(param, number)
        return int(number) if param.type == "int" else number
    except (TypeError, ValueError) as exc:
        raise (OutOfRange if isinstance(exc, OutOfRange) else ValueError)(f"{what} {_shown(value)} 无效：{exc}") from None


#: how much of a value a message repeats (a 100,000-character --set was echoed whole)
SHOWN_CHARS = 60


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + f"…（共 {len(text):,} 个字符）"


class OutOfRange(ValueError):
    """A number of the right type outside the parameter's minimum/maximum."""


def _in_range(param: Parameter, number: float) -> None:
    low, high, unit = param.minimum, param.maximum, f" {param.unit}" if param.unit else ""
    if (low is not None and number < low) or (high is not None and number > high):
        bounds = "、".join(filter(None, [f"不小于 {low:g}" if low is not None else "",
                                          f"不大于 {high:g}" if high is not None else ""]))
        raise OutOfRange(f"超出合理范围（应{bounds}{unit}）")


class RuleSet:
    """A validated rule set with the parameter values in force for this run."""

    def __init__(self, directory: Path, meta: RuleSetFile, rules: dict[str, Rule],
                 dispositions: Dispositions, energy_limits: pl.DataFrame, files: dict[str, str],
                 families: dict[str, Rule] | None = None):
        self.directory, self.meta, self.rules = directory, meta, rules
        #: the rule families outside the list (FAMILY_IDS) this rule set defines
        self.families: dict[str, Rule] = families or {}
        self.family_params: dict[str, dict[str, Any]] = {
            fid: {n: p.value for n, p in f.parameters.items()} for fid, f in self.families.items()}
        self.family_overrides: dict[str, Any] = {}
        self.dispositions, self.energy_limits, self.files = dispositions, energy_limits, files
        self.params: dict[str, dict[str, Any]] = {rid: {n: p.value for n, p in r.parameters.items()} for rid, r in rules.items()}
        self.overrides: dict[str, Any] = {}
        #: where a file named by a parameter (grade_method) may come from; None: anywhere on
        #: this machine (the command line), else the rule set and the roots of :meth:`confine`
        self.file_roots: tuple[Path, ...] | None = None

    def confine(self, *roots: Path) -> None:
        """Let parameters name files only inside this rule set and ``roots`` (the service's
        data root); shipped method names stay usable."""
        self.file_roots = (self.directory, *roots)

    @property
    def enabled(self) -> list[str]:
        return [rid for rid in self.meta.rules if self.rules[rid].enabled]

    def citation_text(self, cite: Cite, short: bool = False) -> str:
        src = self.meta.sources[cite.source]
        doc = f"{src.doc_no} " if src.doc_no else ""
        if short and src.short_title:
            return f"{doc}《{src.short_title}》{cite.clause}"
        heading = f"（{cite.heading}）" if cite.heading else ""
        return f"{doc}{src.issuer}《{src.title}》{cite.clause}{heading}，{src.published.isoformat()}"

    def sql_params(self, rule_id: str) -> dict[str, Any]:
        """The parameters bound into a rule's SQL (engine-side ones are not)."""
        rule = self.rules[rule_id]
        return {n: v for n, v in self.params[rule_id].items() if rule.parameters[n].applies_in == "sql"}

    def apply_overrides(self, assignments: list[str], flag: str = "--set") -> None:
        """Apply ``RULE_ID.NAME=VALUE`` strings; unknown names or bad values raise RuleSetError."""
        _assign(self.rules, self.meta.rules, self.params, self.overrides, assignments, flag)

    def family(self, family_id: str) -> Rule:
        """A rule family outside the list (projects, key_energy_users), or a clear error."""
        if family_id not in self.families:
            raise RuleSetError(f"规则集 {self.directory} 没有 {family_id}.yaml，无法进行{_FAMILY_ZH[family_id]}")
        return self.families[family_id]

    def apply_family_overrides(self, family_id: str, assignments: list[str], flag: str = "--set") -> None:
        """``--set`` for a family's own command: ``FAMILY_ID.NAME=VALUE``, only that family's parameters."""
        self.family(family_id)
        _assign(self.families, [family_id], self.family_params, self.family_overrides, assignments, flag)

    def scope_params(self, list_year: int) -> dict[str, Any]:
        """The parameters of the rules' shared definitions for a list year: the two data years,
        the manufacturing divisions and the new-firm cut-off of ``rules_scope`` and the day of
        ``limits_in_force`` (sql/views/00_macros.sql).  Early warning binds the same values."""
        scope = {k: v.value for k, v in self.meta.scope.items()}
        return {
            "year_prev": list_year - 2,
            "year_last": list_year - 1,
            "division_min": int(scope["manufacturing_division_min"]),
            "division_max": int(scope["manufacturing_division_max"]),
            "new_firm_cutoff": dt.date(list_year - int(scope["new_firm_window_years"]), 1, 1),
            "limit_date": dt.date(list_year - 1, 12, 31),
        }

    def template_constants(self, list_year: int) -> dict[str, dict[str, Any]]:
        """Per rule, the constants its Chinese texts may name (the messages, and the
        citation's note in the workbook's 规则与依据): the two data years, the manufacturing
        divisions, the new-firm window and the rule's parameters."""
        scope = {k: v.value for k, v in self.meta.scope.items()}
        shared = {
            "year_prev": list_year - 2,
            "year_last": list_year - 1,
            "division_min": int(scope["manufacturing_division_min"]),
            "division_max": int(scope["manufacturing_division_max"]),
            "new_firm_years": int(scope["new_firm_window_years"]),
        }
        return {rid: {**shared, **self.params[rid]} for rid in self.meta.rules}

    def rule_notes(self, list_year: int) -> dict[str, str]:
        """Each rule's citation note as the workbook's 规则与依据 prints it, its fields (such as
        ``{year_last}``) filled with the list year's constants; an unknown field is a RuleSetError."""
        constants = self.template_constants(list_year)
        return {rid: reasons.render_constants((self.rules[rid].citation.note or "").strip(), constants[rid],
                                              f"{self.directory}/{rid}.yaml citation.note")
                for rid in self.meta.rules}

    def describe(self) -> dict[str, Any]:
        """What run.json records about the rule set."""
        return {
            "id": self.meta.id, "version": self.meta.version, "directory": str(self.directory),
            "file_sha256": self.files,
            "parameters": self.params, "overrides": self.overrides,
            "scope": {k: v.value for k, v in self.meta.scope.items()},
            "comparison": dict(self.meta.comparison),
        }


_FAMILY_ZH = {"projects": "拟建项目节能审查", "key_energy_users": "重点用能单位统计"}


def _assign(rules: dict[str, Rule], order: list[str], params: dict[str, dict[str, Any]],
            overrides: dict[str, Any], assignments: list[str], flag: str) -> None:
    valid = [f"{rid}.{name}" for rid in order for name in rules[rid].parameters]
    listing = "；可用参数：" + "、".join(valid)
    for item in assignments:
        target, sep, raw = item.partition("=")
        rid, dot, name = target.strip().partition(".")
        if not sep or not dot:
            raise RuleSetError(f"{flag} {_shown(item)} 格式应为 规则ID.参数名=值{listing}")
        if rid not in order:
            raise RuleSetError(f"{flag} {_shown(item)}：未知规则 {rid}；可用规则：{'、'.join(order)}{listing}")
        param = rules[rid].parameters.get(name)
        if param is None:
            raise RuleSetError(f"{flag} {_shown(item)}：规则 {rid} 没有参数 {name}{listing}")
        try:
            value = coerce(param, raw.strip(), f"{rid}.{name} 的取值")
        except OutOfRange as exc:
            raise RuleSetError(f"{flag} {_shown(item)}：{exc}") from None
        except ValueError as exc:
            kind = PARAM_TYPES_ZH.get(param.type, param.type)
            raise RuleSetError(f"{flag} {_shown(item)}：{exc}（应为{kind}）{listing}") from None
        params[rid][name] = value
        overrides[f"{rid}.{name}"] = value


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except FileNotFoundError:
        raise RuleSetError(f"规则集缺少文件：{path}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"第 {mark.line + 1} 行第 {mark.column + 1} 列" if mark else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise RuleSetError(f"{path}：YAML 格式错误，{where}{problem}") from None


def _model(cls: type[BaseModel], path: Path) -> Any:
    raw = _load_yaml(path)
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        raise RuleSetError(f"{path}：{describe(exc, raw, cls)}") from None


LIMIT_COLUMNS = ("product", "product_name", "standard", "unit", "limit", "effective_from", "effective_to")
#: the optional ``verified`` column: has the limit been checked against the standard's official text?
#: An empty cell or a table without the column counts as not verified (nothing says it was checked).
VERIFIED_YES = ("是", "已核对", "y", "yes", "true", "1")
VERIFIED_NO = ("否", "未核对", "n", "no", "false", "0", "")


def load_energy_limits(path: Path) -> pl.DataFrame:
    """The limits table.  Staff edit it in Excel, so a GBK or BOM save and dates written
    2022/11/1 are accepted like in the input files."""
    from .ingest import _decode_csv
    from .validate import parse_dates

    try:
        data, _ = _decode_csv(path.read_bytes(), path)
        raw = pl.read_csv(io.BytesIO(data), infer_schema=False)
    except FileNotFoundError:
        raise RuleSetError(f"规则集缺少文件：{path}") from None
    except Exception as exc:
        raise RuleSetError(f"{path}：无法读取（{exc}）") from None
    raw = raw.rename({c: c.replace("\ufeff", "").strip() for c in raw.columns})
    missing = [c for c in LIMIT_COLUMNS if c not in raw.columns]
    if missing:
        raise RuleSetError(f"{path}：缺少列 {'、'.join(missing)}")
    if "verified" not in raw.columns:
        raw = raw.with_columns(pl.lit(None, dtype=pl.String).alias("verified"))
    text = {c: pl.col(c).str.strip_chars() for c in ("effective_from", "effective_to")}
    mark = pl.col("verified").str.strip_chars().str.to_lowercase().fill_null("")
    typed = raw.with_row_index("_row", offset=2).with_columns(
        pl.col("product").str.strip_chars(),
        pl.col("limit").str.strip_chars().cast(pl.Float64, strict=False).alias("limit"),
        parse_dates(text["effective_from"]).alias("effective_from"),
        parse_dates(text["effective_to"]).alias("effective_to"),
        (text["effective_to"].fill_null("") != "").alias("_has_to"),
        mark.is_in(VERIFIED_YES).alias("verified"),
        (~mark.is_in(VERIFIED_YES + VERIFIED_NO)).alias("_bad_mark"),
    )
    bad = typed.filter(
        pl.col("product").is_null() | pl.col("limit").is_null() | pl.col("effective_from").is_null()
        | (pl.col("_has_to") & pl.col("effective_to").is_null())
        | (pl.col("effective_to") < pl.col("effective_from")) | pl.col("_bad_mark")
    )
    if bad.height:
        rows = "、".join(str(r) for r in bad["_row"].to_list()[:10])
        raise RuleSetError(f"{path}：第 {rows} 行无效（product、limit、effective_from 必填，日期如 2022-11-01，"
                           f"失效日期不早于生效日期，verified 填“是”或“否”）")
    return typed.drop("_row", "_has_to", "_bad_mark")


def load_ruleset(directory: Path) -> RuleSet:
    directory = Path(directory)
    problem = folder_problem(directory, "规则集目录")
    if problem:
        raise RuleSetError(problem)
    meta: RuleSetFile = _model(RuleSetFile, directory / "_ruleset.yaml")
    unknown = [r for r in meta.rules if r not in RULE_IDS]
    if unknown:
        raise RuleSetError(f"{directory}/_ruleset.yaml：未知规则 {'、'.join(unknown)}；可用规则：{'、'.join(RULE_IDS)}")
    for field, needed in (("scope", SCOPE_KEYS), ("comparison", COMPARISON_KEYS)):
        if missing := [key for key in needed if key not in getattr(meta, field)]:
            raise RuleSetError(f"{directory}/_ruleset.yaml：{field} 缺少 {'、'.join(missing)}（每次筛选都要用到）")
    rules = {rid: _load_rule(directory, meta, rid) for rid in meta.rules}
    families = {fid: _load_rule(directory, meta, fid) for fid in FAMILY_IDS if (directory / f"{fid}.yaml").is_file()}
    dispositions: Dispositions = _model(Dispositions, directory / "dispositions.yaml")
    for entry in dispositions.entries:
        named = (entry.when.rules_any or []) + (entry.when.rules_all or [])
        if any(r not in meta.rules for r in named):
            raise RuleSetError(f"{directory}/dispositions.yaml：条件中有未知规则 {named}")
    limits = load_energy_limits(directory / "energy_limits.csv")
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir()) if p.is_file()}
    rs = RuleSet(directory, meta, rules, dispositions, limits, files, families)
    rs.rule_notes(meta.designed_for_list_year)  # a note naming an unknown field stops here, before any run stores anything
    return rs


def _load_rule(directory: Path, meta: RuleSetFile, rid: str) -> Rule:
    rule: Rule = _model(Rule, directory / f"{rid}.yaml")
    if rule.id != rid:
        raise RuleSetError(f"{directory}/{rid}.yaml：id 为 {rule.id}，应与文件名 {rid} 一致")
    unknown_tables = [t for t in rule.reads if t not in TABLES]
    if unknown_tables:
        raise RuleSetError(f"{directory}/{rid}.yaml：reads 中有未知的输入表 {'、'.join(unknown_tables)}；"
                           f"可用：{'、'.join(TABLES)}")
    if not (sql_dir() / "rules" / f"{rid}.sql").is_file():
        raise RuleSetError(f"规则 {rid} 缺少 SQL 文件 sql/rules/{rid}.sql")
    for cite in [rule.citation, *(p.cite for p in rule.parameters.values())]:
        if cite.source not in meta.sources:
            raise RuleSetError(f"{directory}/{rid}.yaml：引用了未定义的来源 {cite.source}")
    for code in REQUIRED_MESSAGES.get(rid, ("hit",)):
        if code not in rule.messages:
            raise RuleSetError(f"{directory}/{rid}.yaml：messages 缺少 {code} 的说明模板")
    return rule


def unverified_limits_note(rs: RuleSet, hits: int) -> str:
    """Said wherever a run is summed up (command line, run.json, the workbook's 规则与依据) when
    rule-4 hits rest on limits not marked verified in energy_limits.csv."""
    return (f"规则“{rs.rules[LIMIT_RULE].short_title}”的 {hits} 家命中企业所依据的能耗限额在规则集 energy_limits.csv 中"
            f"未标为已核对（verified 不是“是”）：限额数值待核对官方文本，定稿前请对照标准原文核实")
