"""Request and response bodies (documented in the OpenAPI schema)."""
from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from screening.ingest.header import FORMAT_CHARS

#: control characters (C0, DEL, C1) other than tab, line feed and carriage return: they have no
#: place in a note someone typed, and they reach the audit trail, exports and printed pages
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def no_control_chars(value: str | None) -> str | None:
    if value is not None and _CONTROL.search(value):
        raise ValueError("不能含控制字符（如 NUL）")
    return value


#: invisible format characters (zero-width, bidirectional marks, overrides and isolates): a reason
#: written "\u202e…" shows reversed on every page, export and printout; taken out, as in cells read
_FORMAT = re.compile(f"[{FORMAT_CHARS}]")


def no_format_chars(value: Any) -> Any:
    """Before the length checks, so that text of only such characters is empty (and refused where required)."""
    return _FORMAT.sub("", value) if isinstance(value, str) else value


def Text(max_length: int, min_length: int = 0, **field: Any) -> Any:  # noqa: N802 (a type, used like one)
    """Free text a person typed (notes, reasons, plan measures): bounded, no control characters."""
    return Annotated[str, Field(min_length=min_length, max_length=max_length, **field), AfterValidator(no_control_chars),
                     BeforeValidator(no_format_chars)]


class FirmItem(BaseModel):
    """An enterprise in a list: its code, name, township and industry, and more fields allowed."""
    model_config = ConfigDict(extra="allow")
    uscc: str = Field(examples=["91330381145618741G"])
    name: str | None
    township: str | None
    industry_code: str | None


class ListItem(FirmItem):
    scale: str | None
    rule_ids: str = Field(description="命中规则编号，按字母排序、以 ; 连接")
    reasons: str = Field(description="逐条认定理由（中文）")
    verification_status: str = Field(description="属地核实状态：pending（待核实）、confirmed、disputed")


class ListPage(BaseModel):
    year: int
    run_id: str = Field(description="该年度清单所依据的筛选：定稿后为定稿所依据的筛选，定稿前为最新一次筛选")
    finalized: bool = Field(description="该年度清单是否已定稿")
    total: int
    page: int
    page_size: int
    items: list[ListItem]


class RuleResult(BaseModel):
    model_config = ConfigDict(extra="allow")
    rule_id: str
    status: Literal["hit", "pass", "insufficient_data", "not_applicable"]
    value: float | None
    threshold: float | None
    reason: str | None
    citation: str | None


class VerificationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"year": 2022, "outcome": "disputed", "reason": "企业已关停", "note": "2022年3月已停产"}]})
    year: int = Field(ge=2000, le=2100, description="清单年度")
    outcome: Literal["confirmed", "disputed"] = Field(description="confirmed：确认；disputed：有异议")
    reason: Text(500) | None = Field(default=None, description="异议原因（disputed 时必填），如数据有误、企业已关停或迁出、已完成整改、其他")
    note: Text(2000) | None = Field(default=None, description="备注")

    @model_validator(mode="after")
    def _reason_for_dispute(self) -> "VerificationIn":
        if self.outcome == "disputed" and not (self.reason or "").strip():
            raise ValueError("提出异议（disputed）时必须填写原因 reason")
        return self


class Verification(BaseModel):
    verification_id: str
    uscc: str
    year: int
    run_id: str
    outcome: str
    reason: str | None
    note: str | None
    created_by: str
    created_at: dt.datetime


class AnomalyNote(BaseModel):
    """数据核查提示（仅供参考）: how unusual the firm's figures look against its industry."""
    year: int = Field(description="清单年度")
    run_id: str
    anomaly_score: float | None = Field(ge=0, le=1, description="0–1，越高越不寻常；0.5 为提示分界（未计算时为 null）")
    flagged: bool = Field(description="是否提示核查")
    indicator_ids: list[str] = Field(description="最不寻常的指标编号（见 docs/anomaly.md）")
    indicators: str | None = Field(description="中文说明：指标值与同行业中位数")
    advisory: Literal["仅供参考"] = Field(description="仅供参考：不改变任何规则判定")


class EnterpriseRecord(BaseModel):
    model_config = ConfigDict(extra="allow")
    uscc: str
    name: str | None
    township: str | None
    year: int
    run_id: str
    listed: bool
    list_entry: dict[str, Any] | None = Field(description="清单中的一行（未列入清单时为 null）")
    results: list[RuleResult]
    anomaly: AnomalyNote | None = Field(default=None, description="数据核查提示（仅供参考；数据库早于该功能时为 null）")
    verifications: list[Verification]
    plan: dict[str, Any] | None = Field(description="一企一策整治方案（尚未制定时为 null）")
    key_energy_user: dict[str, Any] | None = Field(
        default=None, description="重点用能单位（仅供参考）：门槛、依据、各数据年度的综合能耗、单位工业增加值能耗及是否上升；"
                                  "不是重点用能单位或筛选早于该功能时为 null")
    early_warning: dict[str, Any] | None = Field(
        default=None, description="预警（仅供参考）：该年度最新一次预警中进入下一年度清单的估计概率 risk 与主要原因 "
                                  "factors；没有预警结果时为 null；不改变任何规则判定")


class Dashboard(BaseModel):
    model_config = ConfigDict(extra="allow")
    year: int
    run_id: str = Field(description="该年度清单所依据的筛选：定稿后为定稿所依据的筛选，定稿前为最新一次筛选")
    finalized: bool = Field(description="该年度清单是否已定稿")
    listed: int = Field(description="该年度清单（见 run_id）的企业数")
    final: int = Field(description="定稿清单企业数（定稿前为 0）")
    by_township: list[dict[str, Any]]
    by_rule: list[dict[str, Any]]
    verification: dict[str, int]
    targets: dict[str, Any]
    measures: dict[str, Any] | None = Field(
        default=None, description="差别化措施：lists 为该年度名单按类型（电、水、气）的家数、加价、返还和未登记户号的家数"
                                  "（未生成名单时为 null）；ledger 为台账按季度和类别（加价收取、加价返还、奖励）的金额（万元）")
    key_energy_users: dict[str, Any] | None = Field(
        default=None, description="重点用能单位（仅供参考）：门槛及依据、最近数据年度的家数、单位工业增加值能耗上升的家数；"
                                  "筛选早于该功能时为 null")
