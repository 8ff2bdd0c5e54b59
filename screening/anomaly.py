"""数据核查提示（仅供参考）: records whose figures do not fit together, per industry.

Advisory only.  It reads the run's two data years and never feeds a rule, a status, the
list or ``results``; it only tells township staff which records to check first.

Method (settings and the reasons for them in ``anomaly.yaml``, explained in docs/anomaly.md):
each indicator compares figures from different departments (tax against electricity and
revenue, output against land, energy against revenue) or a figure against its own previous
year.  On the log scale, a firm's value is compared with its 2-digit industry by a robust
z-score, ``(x − median) / (1.4826 × MAD)``; an industry with too few firms for an indicator
uses all firms instead.  A firm is flagged when its most unusual indicator passes the
cut-off, and the flag names those indicators with the firm's value and the industry's
typical value.  The score ``m² / (m² + c²)`` (m: largest |z|, c: cut-off) is 0 for a
typical record, 0.5 at the cut-off and approaches 1 as the record gets stranger.

Why not an IsolationForest: scoring a province's 1,000,000 firms costs about 4 s (100 trees,
2 cores, measured) against about 0.9 s for this whole check, and its score cannot say which
figure is odd, which is what a checker needs.  The median/MAD model is vectorized Polars.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .config_errors import describe
from .engine import Engine, sql_text
from .errors import ScreeningError

STAGE = "数据核查提示"
ADVISORY = "仅供参考"
DEFAULT_CONFIG = Path(__file__).with_name("anomaly.yaml")
#: 1.4826 × MAD estimates the standard deviation of normally distributed data (a constant
#: of the method, not a setting)
MAD_TO_SD = 1.4826
_GROUP = "_group"

#: one row per firm in the output files and the database table run_anomalies
OUTPUT_SCHEMA: dict[str, pl.DataType] = {
    "run_id": pl.String, "list_year": pl.Int32, "uscc": pl.String, "name": pl.String, "township": pl.String,
    "industry_code": pl.String, "listed": pl.Boolean, "flagged": pl.Boolean, "anomaly_score": pl.Float64,
    "indicator_ids": pl.String, "indicators": pl.String, "advisory": pl.String,
}
_SCORED_SCHEMA: dict[str, pl.DataType] = {
    "firm_id": pl.UInt32, "anomaly_score": pl.Float64, "flagged": pl.Boolean,
    "indicator_ids": pl.String, "indicators": pl.String,
}


class AnomalyConfigError(ScreeningError):
    """The advisory data check's settings file is invalid."""


class Indicator(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: Literal["ratio", "change"]
    label: str
    unit: str
    numerator: str | None = None
    denominator: str | None = None
    quantity: str | None = None
    factor: float = Field(default=1.0, gt=0)
    #: overrides the file's min_scale for this indicator
    min_scale: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _columns_given(self) -> Indicator:
        if self.kind == "ratio" and not (self.numerator and self.denominator):
            raise ValueError("kind=ratio 需要 numerator 和 denominator")
        if self.kind == "change" and not self.quantity:
            raise ValueError("kind=change 需要 quantity")
        return self

    @property
    def columns(self) -> tuple[str, str]:
        """(numerator, denominator) columns of the features table."""
        if self.kind == "change":
            return f"{self.quantity}_last", f"{self.quantity}_prev"
        return self.numerator, self.denominator  # type: ignore[return-value]


class AnomalyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    min_group_size: int = Field(ge=2)
    robust_z: float = Field(gt=0)
    max_flag_share: float = Field(gt=0, le=1)
    min_scale: float = Field(gt=0)
    zero_floor: float = Field(gt=0, lt=1)
    max_indicators: int = Field(ge=1)
    fit_rows_per_group: int = Field(ge=100)
    seed: int
    indicators: list[Indicator] = Field(min_length=1)


def load_config(path: Path | None = None) -> AnomalyConfig:
    path = Path(path) if path else DEFAULT_CONFIG
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        config = AnomalyConfig.model_validate(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise AnomalyConfigError(f"无法读取数据核查设置 {path}：{exc}") from None
    except ValidationError as exc:
        raise AnomalyConfigError(f"数据核查设置 {path} 无效：{describe(exc, raw, AnomalyConfig)}") from None
    ids = [i.id for i in config.indicators]
    if len(set(ids)) != len(ids):
        raise AnomalyConfigError(f"数据核查设置 {path} 无效：指标 id 重复")
    return config


@dataclass
class Scored:
    """Every firm with figures in the run's two data years: score, flag and (flagged only) reasons."""

    frame: pl.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


def features(engine: Engine) -> pl.DataFrame:
    """The figures the check compares, one row per firm (reads firm_panel and firm_years)."""
    return engine.query("anomaly/features.sql", sql_text("anomaly/features.sql"), {})


def score(frame: pl.DataFrame, list_year: int, config: AnomalyConfig | None = None) -> Scored:
    """Score every row of a features frame (columns: firm_id, division and those the indicators name)."""
    cfg = config or load_config()
    missing = sorted({c for i in cfg.indicators for c in i.columns} - set(frame.columns))
    if missing:
        raise AnomalyConfigError(f"数据核查设置引用了不存在的字段：{'、'.join(missing)}")
    ids = [i.id for i in cfg.indicators]
    logs = frame.select("firm_id", pl.col("division").alias(_GROUP), *(_log_ratio(i).alias(i.id) for i in cfg.indicators))
    params = _group_params(logs, cfg)
    z = _robust_z(logs, params, ids, cfg).with_columns(pl.max_horizontal(pl.col(ids).abs()).alias("_m"))
    del logs

    scored_n = int(z["_m"].is_not_null().sum())
    cutoff, flagged = _cutoff(z, scored_n, cfg)
    z = z.with_columns(
        flagged.fill_null(False).alias("flagged"),
        (pl.col("_m") ** 2 / (pl.col("_m") ** 2 + cutoff ** 2)).round(4).alias("anomaly_score"),
    )
    reasons = _reasons(z.filter("flagged"), frame, params, cfg, cutoff, list_year)
    out = z.select("firm_id", "anomaly_score", "flagged").join(reasons, on="firm_id", how="left", maintain_order="left")
    summary = {"scored": scored_n, "flagged": int(out["flagged"].sum()), "cutoff": round(cutoff, 3),
               "robust_z": cfg.robust_z, "max_flag_share": cfg.max_flag_share, "indicators": ids}
    return Scored(out.select(list(_SCORED_SCHEMA)), summary)


def _robust_z(logs: pl.DataFrame, params: pl.DataFrame, ids: list[str], cfg: AnomalyConfig) -> pl.DataFrame:
    """firm_id, the group and each indicator's robust z: ``(x − centre) / spread`` of the firm's
    group; a 0 numerator (−inf) is placed at log(zero_floor).

    The group's row of ``params`` is found once per firm (one index column) and each indicator's
    centre and spread are gathered from it in turn: joining ``params`` would copy all of its
    columns (three per indicator) onto every firm at once, about 230 MB for a province's million
    firms while the rules run beside the check.  The values, and so every z, are the same."""
    at = logs.select(_GROUP).join(params.select(_GROUP).with_row_index("_at"), on=_GROUP, how="left",
                                  nulls_equal=True, maintain_order="left")["_at"]
    z = logs.select("firm_id", _GROUP)
    for k in ids:
        parts = pl.DataFrame([logs[k], params[f"{k}#c"].gather(at).alias("c"), params[f"{k}#s"].gather(at).alias("s")])
        z = z.with_columns(parts.select(
            pl.when((pl.col(k) == -math.inf) & pl.col("c").is_not_null())
            .then(math.log(cfg.zero_floor) / pl.col("s"))
            .otherwise((pl.col(k) - pl.col("c")) / pl.col("s")).alias(k)).to_series())
    return z


def _cutoff(z: pl.DataFrame, scored_n: int, cfg: AnomalyConfig) -> tuple[float, pl.Expr]:
    """The cut-off on the largest |z| (column ``_m``) and the flag expression.

    robust_z, raised when more than max_flag_share of the compared firms reach it (at least
    the most unusual firm may be flagged).  Firms tied at a raised cut-off (every zero tax
    of an industry gets the same z) would break the cap, so a fixed hash of the firm id,
    not the order of the input, decides which of them fill the remaining places."""
    limit = max(1, int(cfg.max_flag_share * scored_n + 1e-9))
    if int((z["_m"] >= cfg.robust_z).sum()) <= limit:
        return cfg.robust_z, pl.col("_m") >= cfg.robust_z
    cutoff = float(z["_m"].top_k(limit).min())
    room = limit - int((z["_m"] > cutoff).sum())
    tie_rank = pl.when(pl.col("_m") == cutoff).then(pl.col("firm_id").hash(cfg.seed)).rank("ordinal")
    return cutoff, (pl.col("_m") > cutoff) | (tie_rank <= room)


def _log_ratio(ind: Indicator) -> pl.Expr:
    """log(numerator ÷ denominator); null when either is missing or the denominator is not > 0,
    −inf when the numerator is 0 (placed by zero_floor later)."""
    num, den = ind.columns
    return pl.when(pl.col(den) > 0).then((pl.col(num) / pl.col(den)).log())


def _group_params(logs: pl.DataFrame, cfg: AnomalyConfig) -> pl.DataFrame:
    """Per group and indicator: centre (median) ``k#c``, spread ``k#s`` and ``k#pool`` (True when
    the group had too few values and all firms stand in for it)."""
    ids = [i.id for i in cfg.indicators]
    # medians from a deterministic sample of at most fit_rows_per_group firms per group (every
    # firm of a smaller group): exact for a county, and a province's big industries stay cheap
    share = pl.col("firm_id").hash(cfg.seed).cast(pl.Float64) / 2.0 ** 64
    sample = logs.filter(share < cfg.fit_rows_per_group / pl.len().over(_GROUP))
    everyone = logs.filter(share < cfg.fit_rows_per_group / pl.len())
    pool_c = everyone.select(pl.col(ids).median())
    pool_s = everyone.select((pl.col(k) - pool_c[k][0]).abs().median() for k in ids)
    centres = sample.group_by(_GROUP).agg(pl.col(k).median().alias(f"{k}#c") for k in ids)
    mads = (sample.join(centres, on=_GROUP, how="left", nulls_equal=True).group_by(_GROUP)
            .agg((pl.col(k) - pl.col(f"{k}#c")).abs().median().alias(f"{k}#mad") for k in ids))
    counts = logs.group_by(_GROUP).agg(pl.col(k).count().alias(f"{k}#n") for k in ids)
    params = (counts.join(centres, on=_GROUP, how="left", nulls_equal=True)
              .join(mads, on=_GROUP, how="left", nulls_equal=True))
    out = [pl.col(_GROUP)]
    floors = {i.id: i.min_scale or cfg.min_scale for i in cfg.indicators}
    for k in ids:
        small = pl.col(f"{k}#n") < cfg.min_group_size
        # all firms together too few as well (a tiny data set): nothing to compare with
        pooled = pool_c[k][0] if logs[k].count() >= cfg.min_group_size else None
        centre = pl.when(small).then(pl.lit(pooled, pl.Float64)).otherwise(pl.col(f"{k}#c"))
        # more than half the values zero: no typical level to compare with, the indicator is skipped
        centre = pl.when(centre.is_finite()).then(centre)
        mad = pl.when(small).then(pl.lit(pool_s[k][0], pl.Float64)).otherwise(pl.col(f"{k}#mad"))
        spread = pl.max_horizontal(pl.when(mad.is_finite()).then(mad * MAD_TO_SD).fill_null(0.0), pl.lit(floors[k]))
        out += [centre.alias(f"{k}#c"), spread.alias(f"{k}#s"), small.alias(f"{k}#pool")]
    return params.select(out)


def _reasons(flagged: pl.DataFrame, frame: pl.DataFrame, params: pl.DataFrame, cfg: AnomalyConfig,
             cutoff: float, list_year: int) -> pl.DataFrame:
    """indicator_ids and the Chinese sentences of the flagged firms' most unusual indicators."""
    by_id = {i.id: i for i in cfg.indicators}
    if not flagged.height:
        return pl.DataFrame(schema={k: _SCORED_SCHEMA[k] for k in ("firm_id", "indicator_ids", "indicators")})
    parts = [
        flagged.select("firm_id", _GROUP, pl.lit(k).alias("indicator"), pl.col(k).alias("z"),
                       pl.lit(pos).alias("pos")).filter(pl.col("z").abs() >= cutoff)
        for pos, k in enumerate(by_id)
    ]
    top = (pl.concat(parts).sort("firm_id", pl.col("z").abs(), "pos", descending=[False, True, False])
           .group_by("firm_id", maintain_order=True).head(cfg.max_indicators))
    figures = frame.select("firm_id", *sorted({c for i in cfg.indicators for c in i.columns}))
    top = top.join(figures, on="firm_id", how="left", maintain_order="left")
    centres = params.select(_GROUP, *(pl.struct(c=f"{k}#c", pool=f"{k}#pool").alias(k) for k in by_id))
    centres = {(row[_GROUP], k): row[k] for row in centres.iter_rows(named=True) for k in by_id}
    texts = []
    for row in top.iter_rows(named=True):
        ind = by_id[row["indicator"]]
        num, den = ind.columns
        centre = centres[(row[_GROUP], ind.id)]
        texts.append(_sentence(ind, row[num], row[den], math.exp(centre["c"]), centre["pool"], row["z"], list_year))
    return (top.select("firm_id", "indicator").with_columns(pl.Series("text", texts, dtype=pl.String))
            .group_by("firm_id", maintain_order=True)
            .agg(pl.col("indicator").str.join(";").alias("indicator_ids"), pl.col("text").str.join("；").alias("indicators")))


def _sentence(ind: Indicator, num: float, den: float, typical: float, pool: bool, z: float, list_year: int) -> str:
    """e.g. 单位用电税收 0.02 元/千瓦时，同行业中位数 0.35 元/千瓦时，明显偏低."""
    peers = "全部企业中位数" if pool else "同行业中位数"
    if ind.kind == "ratio":
        word = "明显偏高" if z > 0 else "明显偏低"
        unit = ind.unit if ind.unit.startswith("%") else f" {ind.unit}"
        # the typical value carries the unit too: "0%，同行业中位数 7.67" reads as a fraction
        return (f"{ind.label} {fmt_number(num / den * ind.factor)}{unit}，"
                f"{peers} {fmt_number(typical * ind.factor)}{unit}，{word}")
    y_prev, y_last = list_year - 2, list_year - 1
    word = "增幅异常" if z > 0 else "降幅异常"
    # in plain words (issue 14): "实缴税金从 2020 年的 519 万元降为 0，同行业企业中位数同期减少 9%"
    moved = "降为 0" if num == 0 else f"变为 {y_last} 年的 {fmt_number(num)} {ind.unit}（{change_words(num / den)}）"
    group = "全部企业" if pool else "同行业企业"
    return (f"{ind.label}从 {y_prev} 年的 {fmt_number(den)} {ind.unit}{moved}，"
            f"{group}中位数同期{change_words(typical)}，{word}")


def change_words(ratio: float) -> str:
    """A ratio of this year to last as a change in words: 增加 9%、减少 9%、增加 9 倍、基本不变."""
    if not math.isfinite(ratio):
        return "变化无法计算"
    if ratio >= 2:
        return f"为上年的 {fmt_number(ratio)} 倍"
    pct = (ratio - 1) * 100
    if abs(pct) < 0.5:
        return "基本不变"
    return f"{'增加' if pct > 0 else '减少'} {fmt_number(abs(pct))}%"


def fmt_number(value: float) -> str:
    """Three significant figures without scientific notation: 0.0213, 3.52, 35.2, 1,234."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    decimals = max(0, 2 - math.floor(math.log10(size)))
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def empty_output() -> pl.DataFrame:
    return pl.DataFrame(schema=OUTPUT_SCHEMA)


def assemble(engine: Engine, scored: Scored, listing: pl.DataFrame, run_id: str, list_year: int) -> pl.DataFrame:
    """The rows kept with the run: every flagged firm and every listed firm (flagged or not),
    most unusual first."""
    engine.attach_frame("_anomaly_listed", listing.select("uscc"))
    try:
        listed = engine.query("anomalies: listed firms", "SELECT firm_id FROM firm_panel WHERE uscc IN "
                                                         "(SELECT uscc FROM _anomaly_listed)", {})["firm_id"]
        # only the rows kept go back to DuckDB (a province scores a million firms, keeps a few percent)
        kept = scored.frame.filter(pl.col("flagged") | pl.col("firm_id").is_in(listed.implode()))
        engine.attach_frame("_anomaly_kept", kept)
        out = engine.query("anomalies", """
            SELECT p.uscc, p.name, p.township, p.industry_code, l.uscc IS NOT NULL AS listed,
                   coalesce(a.flagged, false) AS flagged, a.anomaly_score, a.indicator_ids, a.indicators
            FROM firm_panel p
            LEFT JOIN _anomaly_kept a USING (firm_id)
            LEFT JOIN _anomaly_listed l USING (uscc)
            WHERE a.firm_id IS NOT NULL OR l.uscc IS NOT NULL
            ORDER BY flagged DESC, a.anomaly_score DESC NULLS LAST, p.uscc
        """, {})
    finally:
        for name in ("_anomaly_listed", "_anomaly_kept"):
            engine.con.unregister(name)  # a no-op for a name never registered
    return out.with_columns(
        pl.lit(run_id).alias("run_id"), pl.lit(list_year, pl.Int32).alias("list_year"),
        pl.lit(ADVISORY).alias("advisory"),
    ).select([pl.col(c).cast(t) for c, t in OUTPUT_SCHEMA.items()])
