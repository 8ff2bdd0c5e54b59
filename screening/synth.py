"""Deterministic synthetic input data for 乐清市 (realistic, in the contract's input format).

``generate(firms, seed, out, fmt, years, bad_rows)`` writes the seven input tables
(enterprises, stats, tax, land, energy, product_energy, evaluations) into ``out`` and
returns ``{table: rows_written}``.

Formats
-------
- ``"parquet"``: every table as ``<table>.parquet``, English headers, typed columns.
- ``"csv"``: every table as ``<table>.csv``, UTF-8 with BOM, English headers.
- ``"mixed"``: what real bureau exports look like (the committed sample):
  enterprises.csv UTF-8+BOM Chinese headers; stats.csv and tax.csv GBK (written with the
  gb18030 codec) Chinese headers; land.xlsx Chinese headers with the area in
  ``用地面积(平方米)``; energy.csv UTF-8 English headers; product_energy.csv UTF-8
  Chinese headers; evaluations.xlsx Chinese headers.

Determinism
-----------
Same ``(firms, seed, fmt, years, bad_rows)`` → byte-identical files. All randomness comes
from ``numpy.random.default_rng([seed, tag])`` streams in a fixed order; rows are written
in (year, uscc) order. xlsx files are written through an ``xlsxwriter.Workbook`` whose
creation date is pinned (xlsxwriter already pins the zip member timestamps), so they are
byte-identical as well.

The model (see ``shared/domain.md`` §5): firms get a persistent size type (about a third
规上), a log-revenue firm effect plus year trend and AR(1) noise (scale = revenue ≥ 2000
万元, so firms near the line switch scale), 1–4 mostly stable parcels, a lognormal
亩均税收 with firm, industry and year effects whose 规上 aggregate is calibrated to
61 万元/亩 (2017) drifting to 55.29 (2021), energy from revenue × industry intensity, and
evaluation grades by rank of a noisy 亩均税收 score within 规上 / 规下. Product unit
consumptions are drawn around the limits in ``rules/yueqing-2022/energy_limits.csv``.

``bad_rows=True`` adds 11 deliberately bad rows (see ``_bad_rows``). Values that
cannot be typed (``2021年`` as a year, ``abc`` as electricity) exist only in the CSV /
mixed formats; for parquet those rows are omitted.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from screening.uscc import ALPHABET, WEIGHTS, check_char

__all__ = ["generate", "TABLES", "FORMATS", "CHINESE_HEADERS"]

TABLES = ("enterprises", "stats", "tax", "land", "energy", "product_energy", "evaluations")
FORMATS = ("parquet", "csv", "mixed")

CHINESE_HEADERS = {
    "uscc": "统一社会信用代码",
    "name": "企业名称",
    "township": "乡镇街道",
    "industry_code": "行业代码",
    "established": "成立日期",
    "year": "年份",
    "scale": "规模",
    "revenue": "营业收入",
    "value_added": "工业增加值",
    "employees": "年平均职工人数",
    "rd_expense": "研发经费",
    "emissions": "主要污染物排放量",
    "tax_paid": "实缴税金",
    "parcel_id": "地块编号",
    "area_mu": "用地面积(亩)",
    "area_m2": "用地面积(平方米)",
    "tenure": "权属",
    "energy_tce": "综合能耗",
    "electricity": "用电量",
    "product": "产品代码",
    "output": "产量",
    "unit_consumption": "单位产品能耗",
    "grade": "评价等级",
    "score": "综合得分",
}

COLUMNS = {
    "enterprises": ["uscc", "name", "township", "industry_code", "established"],
    "stats": ["uscc", "year", "scale", "revenue", "value_added", "employees", "rd_expense", "emissions"],
    "tax": ["uscc", "year", "tax_paid"],
    "land": ["uscc", "year", "parcel_id", "area_mu", "tenure"],
    "energy": ["uscc", "year", "energy_tce", "electricity"],
    "product_energy": ["uscc", "year", "product", "output", "unit_consumption"],
    "evaluations": ["uscc", "year", "grade", "score"],
}

# ---------------------------------------------------------------------------------------
# Parameters of the model
# ---------------------------------------------------------------------------------------

REGION = "330382"  # 乐清市 (GB/T 2260)
USCC_PREFIX = "91" + REGION  # 9 = 市场监管, 1 = 企业

# 25 乡镇街道 (8 街道 + 14 镇 + 3 乡), relative weights.
TOWNSHIPS: list[tuple[str, float]] = [
    ("柳市镇", 20.0), ("北白象镇", 11.0), ("虹桥镇", 9.0), ("乐成街道", 8.0), ("城东街道", 8.0),
    ("城南街道", 7.0), ("翁垟街道", 6.5), ("磐石镇", 5.0), ("盐盆街道", 3.0), ("白石街道", 3.0),
    ("石帆街道", 3.0), ("天成街道", 3.0), ("蒲岐镇", 2.5), ("南岳镇", 2.0), ("淡溪镇", 2.0),
    ("清江镇", 2.0), ("南塘镇", 1.5), ("芙蓉镇", 1.5), ("雁荡镇", 1.5), ("大荆镇", 1.5),
    ("湖雾镇", 0.8), ("仙溪镇", 0.6), ("岭底乡", 0.2), ("智仁乡", 0.2), ("龙西乡", 0.2),
]

# GB/T 4754-2017 4-digit codes: (code, weight %, 字号后行业词 "|"-separated,
#   log effect on 亩均税收, energy intensity tce per 万元 revenue, electricity share of energy)
INDUSTRIES: list[tuple[str, float, str, float, float, float]] = [
    # 38 电气机械和器材 (~45 %)
    ("3811", 2.0, "电机|发电设备", 0.15, 0.014, 0.9),
    ("3812", 3.0, "电机|电动机", 0.15, 0.014, 0.9),
    ("3821", 4.0, "变压器|电力设备|互感器", 0.15, 0.012, 0.9),
    ("3822", 1.5, "电容器|电力电容", 0.15, 0.012, 0.9),
    ("3823", 13.0, "电气|电器|开关|配电设备|成套设备", 0.2, 0.010, 0.9),
    ("3824", 5.0, "电子|电力电子|电器", 0.15, 0.012, 0.9),
    ("3825", 1.0, "光伏|新能源", 0.15, 0.015, 0.9),
    ("3829", 5.0, "电气|电力|电器", 0.15, 0.010, 0.9),
    ("3831", 2.5, "线缆|电缆|电线", 0.1, 0.015, 0.85),
    ("3832", 0.3, "光纤|通信线缆", 0.1, 0.02, 0.9),
    ("3839", 1.5, "电工器材|接线端子|电工", 0.1, 0.012, 0.9),
    ("3841", 1.0, "电池|新能源", 0.1, 0.02, 0.9),
    ("3872", 1.5, "照明|灯具|光电", 0.1, 0.012, 0.9),
    ("3879", 1.7, "灯饰|照明电器", 0.1, 0.012, 0.9),
    ("3891", 1.0, "电气|信号设备", 0.15, 0.010, 0.9),
    ("3899", 1.0, "电器|电气", 0.1, 0.010, 0.9),
    # 39 电子 (~12 %)
    ("3921", 1.0, "通信|通讯设备", 0.1, 0.012, 0.9),
    ("3975", 1.0, "光电|半导体照明", 0.05, 0.015, 0.9),
    ("3976", 1.0, "光电|光电子", 0.05, 0.015, 0.9),
    ("3981", 2.0, "电子|电子元件", 0.05, 0.015, 0.9),
    ("3982", 1.5, "电路|电子", 0.05, 0.02, 0.9),
    ("3983", 1.5, "传感器|电子", 0.1, 0.012, 0.9),
    ("3989", 4.0, "电子|接插件|连接器", 0.05, 0.015, 0.9),
    # 34 通用设备 (~9.5 %)
    ("3441", 1.5, "泵业|机械", 0.0, 0.02, 0.9),
    ("3443", 3.0, "阀门|阀业|流体设备", 0.0, 0.02, 0.9),
    ("3451", 1.0, "轴承|机械", -0.05, 0.025, 0.9),
    ("3462", 1.0, "风机|机电", 0.0, 0.02, 0.9),
    ("3484", 2.0, "机械|精密机械|五金机械", -0.05, 0.025, 0.9),
    ("3489", 1.0, "机械配件|机械", -0.05, 0.025, 0.9),
    # 33 金属制品 (~8.5 %)
    ("3311", 1.0, "钢结构|金属结构", -0.15, 0.03, 0.85),
    ("3351", 1.0, "五金|金属配件", -0.15, 0.03, 0.9),
    ("3360", 2.0, "表面处理|电镀|热处理", -0.2, 0.08, 0.9),
    ("3389", 1.5, "五金|金属制品", -0.15, 0.03, 0.9),
    ("3391", 0.5, "铸造|铸件", -0.2, 0.12, 0.7),
    ("3399", 2.5, "五金|模具|冲压件", -0.15, 0.03, 0.9),
    # 29 橡胶和塑料 (~6 %)
    ("2919", 1.0, "橡胶|橡塑", -0.2, 0.05, 0.9),
    ("2922", 1.0, "塑业|塑料管业", -0.2, 0.05, 0.9),
    ("2927", 0.5, "塑胶|日用塑料", -0.2, 0.05, 0.9),
    ("2929", 3.5, "塑胶|塑料|注塑", -0.2, 0.05, 0.9),
    # 40 仪器仪表 (~5 %)
    ("4011", 1.5, "自动化|仪表|控制设备", 0.15, 0.010, 0.9),
    ("4012", 2.5, "仪表|电工仪表|电表", 0.15, 0.010, 0.9),
    ("4016", 1.0, "仪表|计量仪表|燃气表", 0.1, 0.010, 0.9),
    # 19 鞋业, 24 文体用品 (头盔), others
    ("1952", 2.0, "鞋业|皮鞋", -0.3, 0.012, 0.9),
    ("1959", 1.0, "鞋业|鞋材", -0.3, 0.012, 0.9),
    ("2411", 0.5, "文具|办公用品", -0.25, 0.015, 0.9),
    ("2439", 0.5, "工艺品|工艺", -0.25, 0.015, 0.9),
    ("2444", 1.0, "头盔|安全防护用品|体育用品", -0.25, 0.015, 0.9),
    ("3599", 1.5, "机械|专用设备", -0.05, 0.02, 0.9),
    ("3670", 1.0, "汽车配件|汽配", -0.05, 0.025, 0.9),
    ("1810", 0.5, "服饰|服装", -0.3, 0.01, 0.9),
    ("2231", 0.5, "包装|纸品", -0.3, 0.04, 0.85),
    ("2319", 0.5, "印刷|包装印刷", -0.25, 0.03, 0.9),
    ("2669", 0.3, "化工|新材料", -0.1, 0.08, 0.6),
    ("4190", 0.5, "制品|日用品", -0.2, 0.015, 0.9),
    # 30 非金属矿物, 31 黑色, 32 有色 (energy heavy)
    ("3011", 0.12, "水泥|建材", -0.1, 2.8, 0.15),
    ("3021", 0.3, "水泥制品|建材", -0.2, 0.15, 0.5),
    ("3041", 0.05, "玻璃|平板玻璃", -0.1, 0.8, 0.25),
    ("3042", 0.15, "玻璃|钢化玻璃|特种玻璃", -0.1, 0.25, 0.6),
    ("3099", 0.3, "建材|新材料", -0.2, 0.3, 0.4),
    ("3130", 0.3, "钢业|金属材料", -0.2, 0.1, 0.6),
    ("3251", 1.2, "铜业|金属材料|铜材", -0.1, 0.03, 0.7),
    ("3252", 0.3, "铝业|铝材", -0.1, 0.05, 0.7),
    # not manufacturing (~3 %): the scope rule excludes these
    ("4411", 0.5, "电力|能源|热电", 0.0, 3.0, 0.05),
    ("4790", 1.0, "建设|建筑工程", 0.0, 0.005, 0.6),
    ("5179", 1.5, "贸易|商贸|电气销售", 0.0, 0.002, 1.0),
]

# Characters for the 字号 (trade name): two (sometimes three) of these.
NAME_CHARS = (
    "正泰德力西天华宏达恒信鑫源通瑞丰盛新万佳兴安成中凯美龙海明光东方永昌金利合远欣博嘉诚益隆"
    "昊宇晨星科创立威豪腾飞迅捷卓越联众和顺福吉祥富荣汇元泽润林峰伟国民胜伦邦建精良优特奥凌旭"
    "展航贝诺康宁奇亿环球泓乐清雅"
)
NAME_QUALIFIERS = [("", 64.0), ("科技", 18.0), ("实业", 9.0), ("制造", 9.0)]

# 规上 aggregate 亩均税收 (万元/亩): 61 in 2017, 55.29 in 2021 (domain.md §5); linear in between.
def _tax_target(year: int) -> float:
    return 61.0 + (55.29 - 61.0) * (year - 2017) / 4.0


# Product energy: per 4-digit industry, the probability that a large-type firm of the
# industry reports product unit consumption, and the products it may make.
PRODUCT_INDUSTRIES: dict[str, tuple[float, list[str]]] = {
    "3011": (1.0, ["clinker", "cement"]),
    "3041": (1.0, ["flat_glass_500plus"]),
    "3042": (1.0, ["tempered_glass_3mm"]),
    "3251": (0.45, ["copper_rod_upcast", "brass_rod", "copper_busbar"]),
    "3252": (0.6, ["al_flat_ingot"]),
}
# Industries whose firms are always of the large type.
HEAVY_BIG = ["3011", "3041"]
# Output price (万元 per unit of output) used to turn revenue into output. Product data, not limits.
PRODUCT_PRICE = {
    "cement": 0.035, "clinker": 0.03, "flat_glass_500plus": 0.008, "tempered_glass_3mm": 0.006,
    "copper_rod_upcast": 6.0, "brass_rod": 4.0, "copper_busbar": 6.5, "al_flat_ingot": 1.8,
}
# Typical unit consumption of products that have no row in the limits table (valid data,
# rule 4 has nothing to hold them against).
PRODUCT_TYPICAL = {"brass_rod": 68.0, "copper_busbar": 45.0}

LIMITS_REL = Path("rules") / "yueqing-2022" / "energy_limits.csv"

_MU_TO_M2 = 2000.0 / 3.0

# RNG stream tags
_T_CODES, _T_FIRM, _T_NAME, _T_YEAR, _T_LAND, _T_TAX, _T_EVAL, _T_ENERGY, _T_PROD, _T_MISS, _T_BAD = range(11)


def _rng(seed: int, tag: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), tag])


def _limits_csv() -> Path:
    here = Path(__file__).resolve().parent
    for base in (here / "_bundled", here.parent):
        path = base / LIMITS_REL
        if path.exists():
            return path
    raise FileNotFoundError(f"energy limits table not found: {LIMITS_REL}")


def _reference_consumption(products: list[str], years: list[int]) -> dict[tuple[str, int], float]:
    """Per (product, year): the limit in force on 31 December of the year, else the
    product's earliest limit row, else its typical value (products absent from the table)."""
    lim = pl.read_csv(_limits_csv(), infer_schema_length=0).select(
        pl.col("product").str.strip_chars(),
        pl.col("limit").str.strip_chars().cast(pl.Float64),
        pl.col("effective_from").str.strip_chars().str.to_date(strict=False),
        pl.col("effective_to").str.strip_chars().str.to_date(strict=False),
    )
    ref: dict[tuple[str, int], float] = {}
    for product in products:
        rows = lim.filter(pl.col("product") == product).sort("effective_from")
        for year in years:
            day = datetime(year, 12, 31).date()
            in_force = rows.filter(
                (pl.col("effective_from") <= day)
                & (pl.col("effective_to").is_null() | (pl.col("effective_to") >= day))
            )
            if in_force.height:
                ref[(product, year)] = float(in_force["limit"][0])
            elif rows.height:
                ref[(product, year)] = float(rows["limit"][0])
            else:
                ref[(product, year)] = PRODUCT_TYPICAL[product]
    return ref


# ---------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------

def _choice(rng: np.random.Generator, weights: list[float], n: int) -> np.ndarray:
    p = np.asarray(weights, dtype=np.float64)
    return rng.choice(len(p), size=n, p=p / p.sum())


def _codes_from_values(vals: np.ndarray) -> np.ndarray:
    """(n, 9) organisation-code values → (n,) bytes array of full 18-char USCCs."""
    n = vals.shape[0]
    alpha = np.frombuffer(ALPHABET.encode(), dtype=np.uint8)
    prefix_vals = np.array([ALPHABET.index(c) for c in USCC_PREFIX], dtype=np.int64)
    w = np.asarray(WEIGHTS, dtype=np.int64)
    total = int(prefix_vals @ w[:8]) + vals.astype(np.int64) @ w[8:17]
    check = (31 - total % 31) % 31
    buf = np.empty((n, 18), dtype=np.uint8)
    buf[:, :8] = np.frombuffer(USCC_PREFIX.encode(), dtype=np.uint8)
    buf[:, 8:17] = alpha[vals]
    buf[:, 17] = alpha[check]
    return np.frombuffer(buf.tobytes(), dtype="S18")


def _unique_codes(rng: np.random.Generator, n: int) -> np.ndarray:
    """n distinct 9-value organisation codes, sorted (so firms are in uscc order), plus
    one more distinct code (used for the stats row whose uscc is not in enterprises)."""
    m = n + 1
    pow31 = 31 ** np.arange(8, -1, -1, dtype=np.int64)
    vals = rng.integers(0, 31, size=(m, 9), dtype=np.int64)
    while True:
        keys = vals @ pow31
        _, first = np.unique(keys, return_index=True)
        dup = np.ones(m, dtype=bool)
        dup[first] = False
        if not dup.any():
            break
        vals[dup] = rng.integers(0, 31, size=(int(dup.sum()), 9), dtype=np.int64)
    extra = vals[-1:]
    body = vals[:-1]
    order = np.argsort(body @ pow31, kind="stable")
    return body[order], extra


def _str_series(name: str, codes: np.ndarray) -> pl.Series:
    return pl.Series(name, codes).cast(pl.String)


def _pick_words(rng: np.random.Generator, groups: list[list[str]], group_idx: np.ndarray) -> pl.Series:
    """For each row, a uniformly chosen word of its group (vectorized via a flat table)."""
    flat = [w for g in groups for w in g]
    lens = np.array([len(g) for g in groups], dtype=np.int64)
    offs = np.concatenate([[0], np.cumsum(lens)[:-1]])
    k = (rng.random(group_idx.shape[0]) * lens[group_idx]).astype(np.int64)
    return pl.Series(flat).gather(offs[group_idx] + k)


def _pick2(no: str, yes: str, cond: np.ndarray) -> pl.Series:
    """String column: ``yes`` where cond else ``no`` (cheap; avoids numpy unicode arrays)."""
    return pl.Series([no, yes]).gather(cond.astype(np.int64))


def _names(rng: np.random.Generator, ind_idx: np.ndarray, big: np.ndarray) -> pl.Series:
    n = ind_idx.shape[0]
    chars = pl.Series(list(NAME_CHARS))
    nc = len(NAME_CHARS)
    c1 = rng.integers(0, nc, n)
    c2 = (c1 + 1 + rng.integers(0, nc - 1, n)) % nc
    words = _pick_words(rng, [r[2].split("|") for r in INDUSTRIES], ind_idx)
    qual = pl.Series([q for q, _ in NAME_QUALIFIERS]).gather(_choice(rng, [w for _, w in NAME_QUALIFIERS], n))
    prefix = _pick2("乐清市", "浙江", rng.random(n) < np.where(big, 0.25, 0.08))
    suffix = _pick2("有限公司", "股份有限公司", big & (rng.random(n) < 0.06))
    df = pl.DataFrame({
        "prefix": prefix, "zihao": chars.gather(c1) + chars.gather(c2),
        "word": words, "qual": qual, "suffix": suffix,
    })
    name_expr = pl.concat_str(["prefix", "zihao", "word", "qual", "suffix"])
    df = df.with_columns(name=name_expr)
    # Make names unique: later duplicates get one more 字号 character, until unique.
    extra = rng.integers(0, nc, size=(n,))
    for _ in range(64):
        dup = df.select(pl.int_range(pl.len()).over("name") > 0).to_series().to_numpy()
        if not dup.any():
            break
        add = chars.gather(extra).alias("add")
        extra = (extra * 7 + 13 + np.arange(n)) % nc
        df = df.with_columns(
            zihao=pl.when(pl.Series(dup)).then(pl.col("zihao") + pl.lit(add)).otherwise(pl.col("zihao"))
        ).with_columns(name=name_expr)
    else:  # pragma: no cover - practically unreachable
        raise RuntimeError("could not make company names unique")
    return df["name"]


# ---------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------

def _model(firms: int, seed: int, years: tuple[int, int]) -> tuple[dict[str, pl.DataFrame], pl.Series]:
    """Clean typed tables (English columns) and the spare uscc (not in enterprises)."""
    y0, y1 = int(years[0]), int(years[1])
    if y1 < y0:
        raise ValueError("years must be (first, last) with first <= last")
    yrs = list(range(y0, y1 + 1))
    ny = len(yrs)
    n = int(firms)
    if n < 1:
        raise ValueError("firms must be >= 1")

    # --- identity --------------------------------------------------------------------
    vals, extra_vals = _unique_codes(_rng(seed, _T_CODES), n)
    uscc = _str_series("uscc", _codes_from_values(vals))
    spare = _str_series("uscc", _codes_from_values(extra_vals))

    rf = _rng(seed, _T_FIRM)
    town_idx = _choice(rf, [w for _, w in TOWNSHIPS], n)
    ind_idx = _choice(rf, [r[1] for r in INDUSTRIES], n)
    ind_codes = np.array([r[0] for r in INDUSTRIES])
    ind_tax = np.array([r[3] for r in INDUSTRIES])
    ind_energy = np.array([r[4] for r in INDUSTRIES])
    ind_elec = np.array([r[5] for r in INDUSTRIES])
    firm_ind = ind_codes[ind_idx]
    div = np.array([int(c[:2]) for c in ind_codes])[ind_idx]
    manuf = (div >= 13) & (div <= 43)

    # established: 5 % unknown, 4 % new (last two data years), rest 1985..y1-2 skewed late
    u = rf.random(n)
    unknown = u < 0.05
    new = (u >= 0.05) & (u < 0.09)
    old_span = max(y1 - 2 - 1985 + 1, 1)
    est_year = np.where(new, y1 - 1 + (rf.random(n) < 0.5), 1985 + np.floor(rf.beta(2.2, 1.4, n) * old_span))
    est_year = est_year.astype(np.int64)
    jan1 = (est_year - 1970) * 365 + ((est_year - 1969) // 4)  # days since epoch of 1 Jan (valid 1901-2099)
    leap = ((est_year % 4) == 0).astype(np.int64)
    est_days = jan1 + (rf.random(n) * (365 + leap)).astype(np.int64)
    established = pl.Series("established", est_days, dtype=pl.Int32).cast(pl.Date)
    established = pl.select(pl.when(pl.Series(unknown)).then(None).otherwise(established)).to_series().alias("established")
    first_year = np.where(unknown, y0, np.maximum(est_year, y0))

    # size type and revenue firm effect
    big = rf.random(n) < 0.31
    big |= np.isin(firm_ind, HEAVY_BIG)  # cement works and float-glass lines are never small
    z_mu = rf.standard_normal(n)
    mu = np.where(big, np.log(8000.0) + 0.85 * z_mu, np.log(550.0) + 0.95 * z_mu)

    names = _names(_rng(seed, _T_NAME), ind_idx, big)
    enterprises = pl.DataFrame({
        "uscc": uscc,
        "name": names,
        "township": pl.Series([t for t, _ in TOWNSHIPS]).gather(town_idx),
        "industry_code": pl.Series(firm_ind),
        "established": established,
    })

    exists = np.stack([(first_year <= y) for y in yrs], axis=1)  # (n, ny)

    # --- yearly revenue and scale ------------------------------------------------------
    ry = _rng(seed, _T_YEAR)
    rho, sd = 0.45, 0.36
    e = np.empty((n, ny))
    e[:, 0] = sd * ry.standard_normal(n)
    for t in range(1, ny):
        e[:, t] = rho * e[:, t - 1] + np.sqrt(1 - rho**2) * sd * ry.standard_normal(n)
    trend = np.array([0.03 * (y - 2017) - (0.05 if y == 2020 else 0.0) for y in yrs])
    revenue = np.round(np.exp(mu[:, None] + trend[None, :] + e), 2)
    above = revenue >= 2000.0

    # --- land parcels ------------------------------------------------------------------
    rl = _rng(seed, _T_LAND)
    land_total = np.exp(np.where(big, np.log(15.0), np.log(2.8))
                        + np.where(big, 0.75, 0.85) * (0.5 * z_mu + np.sqrt(0.75) * rl.standard_normal(n)))
    n_parcels = 1 + _choice(rl, [75.0, 17.0, 6.0, 2.0], n)
    p_firm = np.repeat(np.arange(n), n_parcels)
    p_pos = np.arange(p_firm.shape[0]) - np.repeat(np.cumsum(n_parcels) - n_parcels, n_parcels)
    share = rl.gamma(2.0, 1.0, p_firm.shape[0])
    share = share / np.bincount(p_firm, weights=share, minlength=n)[p_firm]
    p_area = np.maximum(np.round(land_total[p_firm] * share, 2), 0.05)
    lease_p = np.where(big, 0.12, 0.72)[p_firm]
    p_leased = rl.random(p_firm.shape[0]) < lease_p
    # parcel validity: the first parcel spans all years; some extra parcels come or go
    uu = rl.random(p_firm.shape[0])
    extra_p = p_pos > 0
    p_start = np.full(p_firm.shape[0], y0)
    p_end = np.full(p_firm.shape[0], y1)
    if ny > 1:
        late = extra_p & (uu < 0.08)
        early = extra_p & (uu >= 0.08) & (uu < 0.15)
        p_start = np.where(late, y0 + 1 + rl.integers(0, ny - 1, p_firm.shape[0]), p_start)
        p_end = np.where(early, y0 + rl.integers(0, ny - 1, p_firm.shape[0]), p_end)
    # parcel ids 330382-YYYY-NNNN: registration year + sequence within the year
    reg = rl.integers(1995, max(y0, 1996), p_firm.shape[0])
    perm = rl.permutation(p_firm.shape[0])
    gaps = rl.integers(1, 4, p_firm.shape[0])
    seq_df = pl.DataFrame({"reg": reg[perm], "gap": gaps, "pos": perm}).with_columns(
        num=pl.col("gap").cum_sum().over("reg")
    ).sort("pos")
    num = seq_df["num"].to_numpy()
    width = max(4, len(str(int(num.max()))))
    parcel_id = (
        pl.DataFrame({"reg": reg, "num": num})
        .select(pl.concat_str([pl.lit(REGION + "-"), pl.col("reg").cast(pl.String), pl.lit("-"),
                               pl.col("num").cast(pl.String).str.zfill(width)]))
        .to_series()
    )
    land_year = np.stack(
        [np.bincount(p_firm, weights=np.where((p_start <= y) & (p_end >= y), p_area, 0.0), minlength=n) for y in yrs],
        axis=1,
    )

    # --- missing data masks ------------------------------------------------------------
    rm = _rng(seed, _T_MISS)
    has_stats = exists.copy()
    has_stats[:, -1] &= rm.random(n) >= 0.01
    has_stats &= rm.random((n, ny)) >= 0.002
    has_tax = exists & (rm.random((n, ny)) >= 0.01)
    has_land = exists & (rm.random((n, ny)) >= 0.01)
    has_energy = has_stats & (rm.random((n, ny)) >= 0.01)
    eval_keep = rm.random((n, ny)) >= 0.02

    # --- 亩均税收 and tax --------------------------------------------------------------
    rt = _rng(seed, _T_TAX)
    a = rt.standard_normal(n)
    a = 0.3 * z_mu + np.sqrt(1 - 0.09) * a
    sig_a = np.where(big, 0.92, 0.72)
    sig_e = np.where(big, 0.45, 0.42)
    base = np.where(big, np.log(30.0), np.log(28.5)) + ind_tax[ind_idx]
    log_t = (base + sig_a * a)[:, None] + sig_e[:, None] * rt.standard_normal((n, ny))
    log_t += np.array([-0.02 * (y - 2017) for y in yrs])[None, :]
    tpm = np.exp(log_t)
    zero = (rt.random(n) < 0.003)[:, None] | (rt.random((n, ny)) < 0.002)
    tpm = np.where(zero, 0.0, tpm)
    tax = tpm * land_year
    # calibrate: 规上 manufacturing aggregate Σtax/Σland per year hits the domain figure
    for t, y in enumerate(yrs):
        sel = above[:, t] & manuf & exists[:, t]
        tb = tax[sel & big, t].sum()
        ts = tax[sel & ~big, t].sum()
        lsum = land_year[sel, t].sum()
        if tb > 0 and lsum > 0:
            f = max((_tax_target(y) * lsum - ts) / tb, 0.1)
            tax[big, t] *= f
    tax = np.round(tax, 2)
    tpm_eff = np.where(land_year > 0, tax / np.maximum(land_year, 1e-9), 0.0)

    # --- stats details -----------------------------------------------------------------
    rs = _rng(seed, _T_YEAR + 100)
    va = np.round(revenue * rs.uniform(0.20, 0.30, (n, ny)), 2)
    prod = np.exp(np.log(80.0) + 0.35 * rs.standard_normal(n))[:, None] * np.exp(0.05 * rs.standard_normal((n, ny)))
    employees = np.maximum(np.round(revenue / prod), 3).astype(np.int64)
    rd_rate = np.where(above, rs.uniform(0.01, 0.04, (n, ny)), rs.uniform(0.0, 0.03, (n, ny)))
    rd = np.round(revenue * rd_rate, 2)
    rd_null = ~above & (rs.random((n, ny)) < 0.7)

    # --- energy ------------------------------------------------------------------------
    re_ = _rng(seed, _T_ENERGY)
    intensity = ind_energy[ind_idx][:, None] * np.exp(0.45 * re_.standard_normal(n))[:, None]
    energy = np.round(revenue * intensity * np.exp(0.08 * re_.standard_normal((n, ny))), 2)
    e_share = np.clip(ind_elec[ind_idx][:, None] * np.exp(0.1 * re_.standard_normal((n, ny))), 0.01, 1.0)
    electricity = np.round(energy * e_share / 1.229, 2)  # 1 万kWh = 1.229 tce (当量值)
    emissions = np.round(energy * np.exp(np.log(0.004) + 0.6 * re_.standard_normal(n))[:, None], 3)
    em_null = re_.random((n, ny)) < 0.12

    # --- product energy ----------------------------------------------------------------
    rp = _rng(seed, _T_PROD)
    all_products = sorted({p for _, ps in PRODUCT_INDUSTRIES.values() for p in ps})
    ref = _reference_consumption(all_products, yrs)
    pf_firm, pf_prod, pf_share = [], [], []
    report_u = rp.random(n)
    mult_u = rp.random(n)
    pick_u = rp.random(n)
    for code, (prob, products) in PRODUCT_INDUSTRIES.items():
        firms_i = np.nonzero((firm_ind == code) & big & (report_u < prob))[0]
        if firms_i.size == 0:
            continue
        if len(products) == 1 or code == "3011":
            # cement works: clinker+cement (integrated) for 60 %, cement only (grinding) else
            if code == "3011":
                integrated = mult_u[firms_i] < 0.6
                pf_firm += [firms_i[integrated], firms_i]
                pf_prod += [np.full(int(integrated.sum()), "clinker"), np.full(firms_i.size, "cement")]
                pf_share += [np.full(int(integrated.sum()), 0.3), np.where(integrated, 0.7, 1.0)]
            else:
                pf_firm.append(firms_i)
                pf_prod.append(np.full(firms_i.size, products[0]))
                pf_share.append(np.ones(firms_i.size))
        else:
            main = np.array(products)[(pick_u[firms_i] * len(products)).astype(np.int64)]
            second = mult_u[firms_i] < 0.3
            alt = np.array(products)[((pick_u[firms_i] * len(products)).astype(np.int64) + 1) % len(products)]
            pf_firm += [firms_i, firms_i[second]]
            pf_prod += [main, alt[second]]
            pf_share += [np.where(second, 0.7, 1.0), np.full(int(second.sum()), 0.3)]
    if pf_firm:
        pe_firm = np.concatenate(pf_firm)
        pe_prod = np.concatenate(pf_prod).astype(str)
        pe_share = np.concatenate(pf_share)
    else:
        pe_firm, pe_prod, pe_share = np.zeros(0, np.int64), np.zeros(0, str), np.zeros(0)
    o = np.lexsort((pe_prod, pe_firm))
    pe_firm, pe_prod, pe_share = pe_firm[o], pe_prod[o], pe_share[o]
    npe = pe_firm.shape[0]
    # firm factor relative to the reference consumption: uniform 0.86-1.06, stratified
    # within each product so that every product has a steady share of rows above it
    if npe:
        _, grp = np.unique(pe_prod, return_inverse=True)
        order = np.lexsort((rp.random(npe), grp))
        sizes = np.bincount(grp)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        rank = np.empty(npe, dtype=np.int64)
        rank[order] = np.arange(npe) - starts[grp[order]]
        u_strat = (rank + rp.random(npe)) / sizes[grp]
    else:
        u_strat = np.zeros(0)
    pe_factor = 0.86 + 0.20 * u_strat
    pe_price = np.array([PRODUCT_PRICE[p] for p in pe_prod]) if npe else np.zeros(0)

    # --- evaluations latent ------------------------------------------------------------
    rv = _rng(seed, _T_EVAL)
    eval_latent = np.log(tpm_eff + 0.5) + 0.75 * rv.standard_normal((n, ny))

    # --- assemble per-year tables ------------------------------------------------------
    stats_parts, tax_parts, land_parts, energy_parts, pe_parts, eval_parts = [], [], [], [], [], []
    for t, y in enumerate(yrs):
        i = np.nonzero(has_stats[:, t])[0]
        stats_parts.append(pl.DataFrame({
            "uscc": uscc.gather(i),
            "year": pl.Series(np.full(i.size, y, dtype=np.int64)),
            "scale": _pick2("规下", "规上", above[i, t]),
            "revenue": revenue[i, t],
            "value_added": va[i, t],
            "employees": employees[i, t],
            "rd_expense": pl.Series(rd[i, t]).set(pl.Series(rd_null[i, t]), None) if i.size else pl.Series([], dtype=pl.Float64),
            "emissions": pl.Series(emissions[i, t]).set(pl.Series(em_null[i, t]), None) if i.size else pl.Series([], dtype=pl.Float64),
        }))
        i = np.nonzero(has_tax[:, t])[0]
        tax_parts.append(pl.DataFrame({
            "uscc": uscc.gather(i), "year": np.full(i.size, y, dtype=np.int64), "tax_paid": tax[i, t],
        }))
        pm = (p_start <= y) & (p_end >= y) & has_land[p_firm, t]
        k = np.nonzero(pm)[0]
        land_parts.append(pl.DataFrame({
            "uscc": uscc.gather(p_firm[k]),
            "year": np.full(k.size, y, dtype=np.int64),
            "parcel_id": parcel_id.gather(k),
            "area_mu": p_area[k],
            "tenure": _pick2("自有", "租赁", p_leased[k]),
        }))
        i = np.nonzero(has_energy[:, t])[0]
        energy_parts.append(pl.DataFrame({
            "uscc": uscc.gather(i), "year": np.full(i.size, y, dtype=np.int64),
            "energy_tce": energy[i, t], "electricity": electricity[i, t],
        }))
        if npe:
            k = np.nonzero(has_stats[pe_firm, t])[0]
            f = pe_firm[k]
            refv = np.array([ref[(p, y)] for p in pe_prod[k]])
            uc = refv * pe_factor[k] * np.exp(0.025 * rp.standard_normal(k.size) - 0.005 * (y - y0))
            out_qty = revenue[f, t] * pe_share[k] / pe_price[k]
            pe_parts.append(pl.DataFrame({
                "uscc": uscc.gather(f), "year": np.full(k.size, y, dtype=np.int64),
                "product": pl.Series(pe_prod[k], dtype=pl.String),
                "output": np.round(out_qty, 2), "unit_consumption": np.round(uc, 2),
            }))
        # graded: manufacturing, scale known, not established this year, and
        # 规上 or land >= 3 亩 (land known)
        est_this_year = ~unknown & (est_year == y)
        graded = manuf & has_stats[:, t] & ~est_this_year & (above[:, t] | (has_land[:, t] & (land_year[:, t] >= 3.0)))
        i = np.nonzero(graded)[0]
        ev = pl.DataFrame({
            "i": i, "above": above[i, t], "lat": eval_latent[i, t], "keep": eval_keep[i, t],
        }).with_columns(
            z=((pl.col("lat") - pl.col("lat").mean().over("above")) / pl.col("lat").std().over("above")).fill_nan(0.0).fill_null(0.0),
            pct=pl.col("lat").rank("ordinal", descending=True).over("above") / pl.len().over("above"),
        ).with_columns(
            grade=pl.when(pl.col("pct") <= 0.20).then(pl.lit("A"))
            .when(pl.col("pct") <= 0.80).then(pl.lit("B"))
            .when(pl.col("pct") <= 0.95).then(pl.lit("C"))
            .otherwise(pl.lit("D")),
            score=(70.0 + 12.0 * pl.col("z")).clip(0.0, 100.0).round(2),
        ).filter("keep")
        eval_parts.append(pl.DataFrame({
            "uscc": uscc.gather(ev["i"].to_numpy()),
            "year": np.full(ev.height, y, dtype=np.int64),
            "grade": ev["grade"],
            "score": ev["score"],
        }))

    pe_schema = {"uscc": pl.String, "year": pl.Int64, "product": pl.String, "output": pl.Float64,
                 "unit_consumption": pl.Float64}
    tables = {
        "enterprises": enterprises,
        "stats": pl.concat(stats_parts),
        "tax": pl.concat(tax_parts),
        "land": pl.concat(land_parts),
        "energy": pl.concat(energy_parts),
        "product_energy": pl.concat(pe_parts) if pe_parts else pl.DataFrame(schema=pe_schema),
        "evaluations": pl.concat(eval_parts),
    }
    return tables, spare


# ---------------------------------------------------------------------------------------
# Bad rows
# ---------------------------------------------------------------------------------------

def _wrong_check(code: str) -> str:
    good = check_char(code[:17])
    return code[:17] + ALPHABET[(ALPHABET.index(good) + 7) % 31]


def _bad_rows(tables: dict[str, pl.DataFrame], spare: str, seed: int, years: tuple[int, int], typed: bool) -> dict[str, pl.DataFrame]:
    """Add the deliberately bad rows: 11 in the text formats; in parquet 9, and the two
    rows whose bad value cannot be typed are left out instead.

    - enterprises: an extra firm whose uscc has a wrong check character;
    - stats: a scale ``规模以上`` (unknown value), a negative revenue, a row whose uscc is
      not in enterprises, a year written ``<last>年`` (text formats; parquet omits that row);
    - tax: a negative tax_paid, a duplicated (uscc, year) key, a row whose uscc (a typo of a
      real firm's) has a wrong check character;
    - land: an extra parcel with area 0;
    - energy: electricity ``abc`` (text formats; parquet omits that row);
    - evaluations: a grade ``E``.
    The rows to spoil are drawn from their own RNG stream, identically for every format.
    """
    rng = _rng(seed, _T_BAD)
    y1 = int(years[1])
    out = dict(tables)

    def pick(df: pl.DataFrame, mask: pl.Expr | None = None) -> int:
        """A random row (matching mask when any does); the draw is made even for an empty
        table so that later picks do not depend on it. -1 when the table is empty."""
        rows = np.arange(df.height) if mask is None else np.nonzero(df.select(mask).to_series().to_numpy())[0]
        if rows.size == 0:
            rows = np.arange(df.height)
        u = rng.random()
        return int(rows[int(u * rows.size)]) if rows.size else -1

    def set_at(df: pl.DataFrame, col: str, row: int, value) -> pl.DataFrame:
        if row < 0:
            return df
        m = np.zeros(df.height, dtype=bool)
        m[row] = True
        return df.with_columns(
            pl.when(pl.Series(m)).then(pl.lit(value, dtype=df.schema[col])).otherwise(pl.col(col)).alias(col))

    def insert_after(df: pl.DataFrame, row: int, new: pl.DataFrame) -> pl.DataFrame:
        if row < 0:
            return df
        return pl.concat([df.slice(0, row + 1), new.select(df.columns).cast(df.schema), df.slice(row + 1)])

    def drop(df: pl.DataFrame, row: int) -> pl.DataFrame:
        if row < 0:
            return df
        return pl.concat([df.slice(0, row), df.slice(row + 1)])

    # enterprises: an extra firm whose code's check character is wrong
    ent = out["enterprises"]
    r = pick(ent, pl.col("industry_code").str.starts_with("38"))
    bad_code = _wrong_check(_codes_from_values(rng.integers(0, 31, size=(1, 9), dtype=np.int64))[0].decode())
    row = ent.slice(r, 1).with_columns(
        uscc=pl.lit(bad_code),
        name=pl.concat_str([pl.col("name").str.replace("(股份)?有限公司$", ""), pl.lit("销售有限公司")]),
    )
    out["enterprises"] = insert_after(ent, r, row)

    # stats
    st = out["stats"]
    st = set_at(st, "scale", pick(st, pl.col("year") < y1), "规模以上")
    r = pick(st, pl.col("scale") == "规下")
    st = set_at(st, "revenue", r, -round(float(rng.uniform(50, 900)), 2))
    r = pick(st, pl.col("year") == y1)
    st = insert_after(st, r, st.slice(r, 1).with_columns(uscc=pl.lit(spare)))
    r = pick(st, (pl.col("year") == y1) & (pl.col("scale") == "规下") & (pl.col("revenue") >= 0)
             & (pl.col("uscc") != spare))
    if typed:
        st = drop(st, r)
    else:
        st = set_at(st.with_columns(pl.col("year").cast(pl.String)), "year", r, f"{y1}年")
    out["stats"] = st

    # tax
    tx = out["tax"]
    tx = set_at(tx, "tax_paid", pick(tx, pl.col("tax_paid") > 0), -round(float(rng.uniform(1, 60)), 2))
    r = pick(tx, pl.col("tax_paid") > 0)
    tx = insert_after(tx, r, tx.slice(r, 1).with_columns((pl.col("tax_paid") * 1.1 + 0.37).round(2)))
    r = pick(tx, pl.col("tax_paid") > 0)
    if r >= 0:
        tx = insert_after(tx, r, tx.slice(r, 1).with_columns(uscc=pl.lit(_wrong_check(tx["uscc"][r]))))
    out["tax"] = tx

    # land: an extra parcel with area 0
    ld = out["land"]
    r = pick(ld)
    zero = ld.slice(r, 1).with_columns(
        parcel_id=pl.concat_str([pl.col("parcel_id").str.slice(0, 12), pl.lit("9999")]),
        area_mu=pl.lit(0.0), tenure=pl.lit("租赁"),
    )
    out["land"] = insert_after(ld, r, zero)

    # energy: electricity "abc"
    en = out["energy"]
    r = pick(en, pl.col("year") == y1)
    if typed:
        en = drop(en, r)
    else:
        en = set_at(en.with_columns(pl.col("electricity").cast(pl.String)), "electricity", r, "abc")
    out["energy"] = en

    # evaluations: grade E
    ev = out["evaluations"]
    out["evaluations"] = set_at(ev, "grade", pick(ev, pl.col("grade") == "D"), "E")
    return out


# ---------------------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------------------

_XLSX_EPOCH = datetime(2022, 1, 1, 0, 0, 0)


def _write_xlsx(df: pl.DataFrame, path: Path) -> None:
    from .excel import Workbook

    wb = Workbook(str(path), {"nan_inf_to_errors": True, "strings_to_formulas": False,
                              "strings_to_numbers": False, "strings_to_urls": False})
    wb.set_properties({"created": _XLSX_EPOCH, "author": "", "title": path.stem})
    widths = {c: 24 if c in ("统一社会信用代码", "地块编号") else 14 for c in df.columns}
    formats = {c: "0" for c in df.columns if c == "年份"}
    df.write_excel(workbook=wb, worksheet="Sheet1", column_formats=formats or None,
                   column_widths=widths, float_precision=2, autofilter=True)
    wb.close()


def _chinese(df: pl.DataFrame) -> pl.DataFrame:
    return df.rename({c: CHINESE_HEADERS[c] for c in df.columns})


def _write_csv(df: pl.DataFrame, path: Path, encoding: str) -> None:
    if encoding == "utf-8-sig":
        df.write_csv(path, include_bom=True)
    elif encoding == "utf-8":
        df.write_csv(path)
    else:
        path.write_bytes(df.write_csv().encode(encoding))


def _write_table(name: str, df: pl.DataFrame, out: Path, fmt: str) -> None:
    if fmt == "parquet":
        df.write_parquet(out / f"{name}.parquet", statistics=True)
        return
    if fmt == "csv":
        _write_csv(df, out / f"{name}.csv", "utf-8-sig")
        return
    # mixed: what the bureaux really send
    if name == "enterprises":
        _write_csv(_chinese(df), out / "enterprises.csv", "utf-8-sig")
    elif name in ("stats", "tax"):
        _write_csv(_chinese(df), out / f"{name}.csv", "gb18030")
    elif name == "land":
        m2 = df.with_columns(area_m2=(pl.col("area_mu") * _MU_TO_M2).round(2)).select(
            "uscc", "year", "parcel_id", "area_m2", "tenure")
        _write_xlsx(_chinese(m2), out / "land.xlsx")
    elif name == "energy":
        _write_csv(df, out / "energy.csv", "utf-8")
    elif name == "product_energy":
        _write_csv(_chinese(df), out / "product_energy.csv", "utf-8")
    elif name == "evaluations":
        _write_xlsx(_chinese(df), out / "evaluations.xlsx")
    else:  # pragma: no cover
        raise ValueError(name)


def generate(
    firms: int,
    seed: int,
    out: Path,
    fmt: str = "mixed",
    years: tuple[int, int] = (2017, 2021),
    bad_rows: bool = True,
) -> dict[str, int]:
    """Write synthetic 乐清 input tables for ``firms`` enterprises into ``out``.

    Returns ``{table_name: rows_written}`` (data rows, header excluded). Deterministic:
    the same arguments give byte-identical files (xlsx included: its creation date is
    pinned). Existing files of the seven tables in ``out`` (any extension) are replaced.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(FORMATS)}; got {fmt!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tables, spare = _model(firms, seed, years)
    if bad_rows:
        tables = _bad_rows(tables, spare[0], seed, years, typed=(fmt == "parquet"))
    counts: dict[str, int] = {}
    for name in TABLES:
        for ext in ("csv", "xlsx", "parquet"):
            (out / f"{name}.{ext}").unlink(missing_ok=True)
        df = tables[name].select(COLUMNS[name])
        _write_table(name, df, out, fmt)
        counts[name] = df.height
    return counts


#: industries of the synthetic proposed projects: (GB/T 4754 小类, weight); 两高 大类 25/26/30/31/32/44 included
_PROJECT_INDUSTRIES = [("3823", 6), ("3824", 3), ("3411", 2), ("3311", 2), ("2614", 2), ("3011", 2), ("3041", 1),
                       ("3130", 1), ("3216", 1), ("2511", 1), ("4411", 1), ("2929", 2)]
_PROJECT_TOWNS = ["柳市镇", "北白象镇", "虹桥镇", "乐成街道", "城东街道", "城南街道", "盐盘街道", "翁垟街道"]
#: boundary projects every sample holds, so each outcome shows: (energy tce, value added 万元, industry)
_PROJECT_FIXED = [(2450.0, 5000.0, "3823"), (2500.0, 5000.0, "3011"), (1000.0, 4000.0, "3824"),
                  (5000.0, 12000.0, "2614"), (999.0, 3000.0, "3411"), (3000.0, None, "3216"), (800.0, 0.0, "2929")]


def generate_projects(out: Path, seed: int = 20220507, projects: int = 30) -> Path:
    """The synthetic 拟建项目 table of sample_data/projects/ (``screening projects``): ``projects``
    rows (the boundary projects of ``_PROJECT_FIXED`` first), a Chinese workbook as a 发改局 register
    would look, plus one deliberately bad row (negative energy). Same seed → same file, byte for byte."""
    rng = _rng(seed, 17)
    rows = []
    for i in range(projects):
        if i < len(_PROJECT_FIXED):
            energy, value_added, industry = _PROJECT_FIXED[i]
        else:
            industry = _PROJECT_INDUSTRIES[int(_choice(rng, [w for _, w in _PROJECT_INDUSTRIES], 1)[0])][0]
            energy = float(round(float(np.exp(rng.normal(7.3, 1.0))), 1))  # median ≈ 1500 tce
            # intensity around the standard: most pass, some clearly above
            value_added = float(round(energy / float(np.exp(rng.normal(np.log(0.35), 0.45))), 1))
        township = _PROJECT_TOWNS[int(rng.integers(len(_PROJECT_TOWNS)))]
        body = f"91330382P{i + 1:08d}"
        applicant = body + check_char(body) if rng.random() < 0.7 else None  # a new company has no code yet
        rows.append({
            "项目代码": f"2022-330382-{industry[:2]}-03-{i + 1:06d}", "项目名称": f"样例拟建项目{i + 1:02d}",
            "统一社会信用代码": applicant, "乡镇街道": township, "行业代码": industry,
            "年综合能耗（吨标准煤）": energy, "其中煤炭（吨）": round(energy * 0.3, 1) if industry[:2] in ("30", "44") else None,
            "年工业增加值（万元）": value_added, "计划开工年份": 2022 + int(rng.integers(2)), "状态": "拟建",
        })
    rows.append({**rows[-1], "项目代码": "2022-330382-38-03-999999", "项目名称": "样例错误行（能耗为负）",
                 "年综合能耗（吨标准煤）": -100.0})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    schema = {k: (pl.Float64 if "（" in k and k != "项目代码" else pl.Int64 if k == "计划开工年份" else pl.String)
              for k in rows[0]}
    path = out / "projects.xlsx"
    _write_xlsx(pl.DataFrame(rows, schema=schema, orient="row"), path)
    return path
