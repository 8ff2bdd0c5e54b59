"""The input contract (../shared/contract.md, "Input directory") as data.

Each table lists its columns with the English name, the Chinese header a bureau
export uses, the value kind and what makes a value unusable.  Ingestion and
validation are driven entirely by these specs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["uscc", "text", "code4", "year", "date", "number", "integer", "enum"]

#: 1 亩 = 2000/3 m² (a unit definition, not a policy number).
M2_PER_MU_NUM, M2_PER_MU_DEN = 2000.0, 3.0


@dataclass(frozen=True)
class Column:
    name: str
    zh: str
    kind: Kind
    required: bool = True  # the header must be present
    nonnull: bool = False  # an empty cell sends the row to rejects
    min: float | None = None  # inclusive lower bound
    min_exclusive: bool = False
    allowed: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()  # further accepted headers
    #: the quantity a number measures (money/area/electricity/energy): a unit written in the
    #: header is converted to the contract's unit (see screening/ingest/synonyms.yaml)
    unit: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name}（{self.zh}）"


@dataclass(frozen=True)
class Table:
    name: str
    zh: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    #: alternative column groups: at least one member of each group must be present
    one_of: tuple[tuple[str, ...], ...] = ()
    needs_enterprise: bool = True
    #: read only by a command of its own (``screening projects``), never by a screening run
    standalone: bool = False
    #: read only when a command asks for it (``screening evaluate``: the 加减分 table); a
    #: screening run never opens it, so a file of it in the data directory changes no run
    on_request: bool = False
    #: keep each accepted row's spreadsheet row number (column ``source_row``): a check that
    #: needs more than the schema (an item id of the evaluation method) can still name the row
    keep_rows: bool = False

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def _uscc() -> Column:
    return Column("uscc", "统一社会信用代码", "uscc", nonnull=True)


def _year() -> Column:
    return Column("year", "年份", "year", nonnull=True)


def _money(name: str, zh: str, required: bool = True, nonnull: bool = False) -> Column:
    return Column(name, zh, "number", required=required, nonnull=nonnull, min=0.0, unit="money")


#: the utilities of the ``accounts`` table and of differential measures (电 power, 水 water, 气 gas)
UTILITIES = ("电", "水", "气")
#: what a measure ledger row records: a surcharge collected, a refund paid back, an incentive granted
LEDGER_KINDS = ("加价收取", "加价返还", "奖励")

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "enterprises",
            "企业名录",
            (
                _uscc(),
                Column("name", "企业名称", "text"),
                Column("township", "乡镇街道", "text"),
                Column("industry_code", "行业代码", "code4"),
                Column("established", "成立日期", "date", required=False),
                # 是否小微园（小微企业园）企业: an optional registry flag some methods rank apart (遂昌 2023)
                Column("small_park", "小微园", "enum", required=False, allowed=("是", "否")),
            ),
            key=("uscc",),
            needs_enterprise=False,
        ),
        Table(
            "stats",
            "统计数据",
            (
                _uscc(),
                _year(),
                Column("scale", "规模", "enum", nonnull=True, allowed=("规上", "规下")),
                _money("revenue", "营业收入"),
                _money("value_added", "工业增加值", required=False),
                Column("employees", "年平均职工人数", "integer", required=False, min=0.0),
                _money("rd_expense", "研发经费", required=False),
                Column("emissions", "主要污染物排放量", "number", required=False, min=0.0),
            ),
            key=("uscc", "year"),
        ),
        Table(
            "tax",
            "税收数据",
            (_uscc(), _year(), _money("tax_paid", "实缴税金", nonnull=True)),
            key=("uscc", "year"),
        ),
        Table(
            "land",
            "用地数据",
            (
                _uscc(),
                _year(),
                Column("parcel_id", "地块编号", "text", nonnull=True),
                Column("area_mu", "用地面积(亩)", "number", required=False, min=0.0, min_exclusive=True,
                       aliases=("用地面积（亩）",), unit="area"),
                Column("area_m2", "用地面积(平方米)", "number", required=False, min=0.0, min_exclusive=True,
                       aliases=("用地面积（平方米）",)),
                Column("tenure", "权属", "enum", allowed=("自有", "租赁")),
            ),
            key=("uscc", "year", "parcel_id"),
            one_of=(("area_mu", "area_m2"),),
        ),
        Table(
            "energy",
            "能耗数据",
            (
                _uscc(),
                _year(),
                Column("energy_tce", "综合能耗", "number", min=0.0, unit="energy"),
                Column("electricity", "用电量", "number", min=0.0, unit="electricity"),
            ),
            key=("uscc", "year"),
        ),
        Table(
            "product_energy",
            "产品单耗",
            (
                _uscc(),
                _year(),
                Column("product", "产品代码", "text", nonnull=True),
                Column("output", "产量", "number", min=0.0),
                # may be negative: some processes are net energy producers (e.g. converter steelmaking)
                Column("unit_consumption", "单位产品能耗", "number", nonnull=True),
            ),
            key=("uscc", "year", "product"),
        ),
        Table(
            "evaluations",
            "亩均效益评价",
            (
                _uscc(),
                _year(),
                Column("grade", "评价等级", "enum", nonnull=True, allowed=("A", "B", "C", "D")),
                Column("score", "综合得分", "number", required=False),
            ),
            key=("uscc", "year"),
        ),
        Table(
            "accounts",
            "用能户号",
            (
                _uscc(),
                Column("utility", "类型", "enum", nonnull=True, allowed=UTILITIES),
                Column("account", "户号", "text", nonnull=True),
            ),
            key=("uscc", "utility", "account"),
            # read only by ``screening measures`` (screening/measures), never by a screening run
            standalone=True,
        ),
        Table(
            "measure_ledger",
            "差别化措施台账",
            (
                _year(),
                # 1–4, Q1, 一季度, 第一季度 …: read by screening/measures/ledger.py
                Column("quarter", "季度", "text", nonnull=True),
                Column("kind", "类别", "enum", nonnull=True, allowed=LEDGER_KINDS),
                Column("utility", "类型", "enum", required=False, allowed=UTILITIES),
                # a firm's row has its code; a township's total has none
                Column("uscc", "统一社会信用代码", "uscc", required=False),
                Column("name", "企业名称", "text", required=False),
                Column("township", "乡镇街道", "text", required=False),
                Column("quantity", "计费量", "number", required=False, min=0.0),
                Column("amount", "金额", "number", nonnull=True, min=0.0, unit="money"),
                Column("note", "备注", "text", required=False),
            ),
            key=("year", "quarter", "kind", "utility", "uscc", "township"),
            needs_enterprise=False,
            # uploaded to the service (POST /api/v1/measures/ledger/upload), never read by a run
            standalone=True,
        ),
        Table(
            "adjustments",
            "加减分",
            (
                _uscc(),
                _year(),
                Column("item", "加减分项目", "text", nonnull=True),
                # points or % as the method's item says; a deduction is written as a positive number
                Column("value", "分值", "number", required=False, min=0.0),
                Column("source", "认定部门", "text", nonnull=True),
                Column("document", "依据文件", "text", required=False),
            ),
            key=("uscc", "year", "item"),
            on_request=True,
            keep_rows=True,
        ),
        Table(
            "projects",
            "拟建项目",
            (
                Column("project_id", "项目代码", "text", nonnull=True),
                Column("name", "项目名称", "text"),
                # the applicant; a new company may not have a code yet
                Column("uscc", "统一社会信用代码", "uscc", required=False),
                Column("township", "乡镇街道", "text"),
                Column("industry_code", "行业代码", "code4", nonnull=True),
                Column("energy_tce", "年综合能耗", "number", nonnull=True, min=0.0, unit="energy"),
                Column("coal_t", "其中煤炭", "number", required=False, min=0.0),
                Column("value_added", "年工业增加值", "number", min=0.0, unit="money"),
                Column("start_year", "计划开工年份", "year", required=False),
                Column("status", "状态", "text", required=False),
            ),
            key=("project_id",),
            needs_enterprise=False,
            standalone=True,
        ),
    )
}

#: A year outside this range is a typing error rather than data (e.g. 20021).
YEAR_RANGE = (1949, 2100)
#: years a date cell may hold (a two-digit year "17-05-13" read as the year 17 is not a date)
DATE_YEAR_RANGE = (1900, 2100)
