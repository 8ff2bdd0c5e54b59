"""A small grade history with townships and accounts, for the differential measures tests."""
from __future__ import annotations

from pathlib import Path

import polars as pl

from screening.uscc import check_char


def code(n: int) -> str:
    first = f"91330382MA{n:07d}"
    return first + check_char(first)


F1, F2, F3, F4, F5, F6 = (code(i) for i in range(1, 7))
GRADES = {  # firm: {year: grade}
    F1: {2021: "D", 2022: "D", 2023: "D"},           # third consecutive D year -> 0.4
    F2: {2021: "C", 2022: "D", 2023: "D"},           # second D year -> 0.3 (C before does not count)
    F3: {2020: "D", 2021: "D", 2022: "B", 2023: "D"},  # the B year breaks the run -> 1 year, 0.3
    F4: {2022: "D", 2023: "B"},                      # left D -> refund 40 %, no surcharge
    F5: {2022: "A", 2023: "A"},                      # no measure
    F6: {2022: "C", 2023: "C"},                      # C two years -> 0.1
}
TOWNS = {F1: "柳市镇", F2: "柳市镇", F3: "乐成街道", F4: "乐成街道", F5: "柳市镇", F6: "虹桥镇"}

POLICY = {
    "id": "measures", "title": "测试政策", "last_reviewed": "2026-11-29",
    "sources": {"t": {"issuer": "测试", "title": "测试文件", "published": None}},
    "utilities": {"电": {"code": "electricity", "unit": "元/千瓦时", "quantity": "用电量", "provider": "供电单位",
                         "aliases": ["电力"]},
                  "水": {"code": "water", "unit": "元/吨", "quantity": "用水量", "provider": "供水单位",
                         "aliases": ["自来水"]},
                  "气": {"code": "gas", "unit": "元/立方米", "quantity": "用气量", "provider": "供气单位"}},
    "period": {"start_month": 1, "start_day": 1, "months": 12, "cite": {"source": "t", "clause": "一"}},
    "policies": [
        {"id": "power_d", "utility": "电", "grade": "D", "valid_from": "2020-01-01", "valid_to": None,
         "steps": [{"from_years": 1, "surcharge": 0.3}, {"from_years": 3, "surcharge": 0.4}],
         "refund": {"share": 0.4, "cite": {"source": "t", "clause": "三"}},
         "cite": {"source": "t", "clause": "二"}, "assumption": None},
        {"id": "power_c", "utility": "电", "grade": "C", "valid_from": "2020-01-01", "valid_to": None,
         "steps": [{"from_years": 1, "surcharge": 0.1}], "cite": {"source": "t", "clause": "二"}, "assumption": None},
        {"id": "water_d", "utility": "水", "grade": "D", "valid_from": "2024-07-01", "valid_to": None,
         "steps": [{"from_years": 1, "surcharge": 1.5}], "cite": {"source": "t", "clause": "四"},
         "assumption": "测试假设"},
    ],
    "messages": {"surcharge": "{grade}类连续{consecutive_years}年，加价{surcharge:g}{unit}",
                 "refund": "返还{refund_share:%}", "no_account": "未登记{utility}户号"},
}


def write_data(folder: Path, shift: int = 0) -> Path:
    """enterprises.csv, evaluations.csv (GRADES, years moved by ``shift``) and accounts.csv.

    accounts.csv: header row 1; F2 has two power accounts; row 5 names a utility that is not one;
    row 6 gives F1's account to F6 (one meter, two firms); F3 has none; rows 7 and 8 write the utility
    as 电力 and 自来水 (aliases of measures.yaml)."""
    folder.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"统一社会信用代码": list(TOWNS), "企业名称": [f"企业{i}" for i in range(1, 7)],
                  "乡镇街道": list(TOWNS.values()), "行业代码": ["3823"] * 6}).write_csv(folder / "enterprises.csv")
    rows = [(u, y + shift, g) for u, years in GRADES.items() for y, g in years.items()]
    pl.DataFrame(rows, schema=["统一社会信用代码", "年度", "评价等级"], orient="row").write_csv(folder / "evaluations.csv")
    accounts = [(F1, "电", "1001"), (F2, "电", "2001"), (F2, "电", "2002"), (F4, "煤", "4001"),
                (F6, "电", "1001"), (F4, "电力", "4001"), (F1, "自来水", "W01")]
    pl.DataFrame(accounts, schema=["统一社会信用代码", "类型", "户号"], orient="row").write_csv(folder / "accounts.csv")
    return folder
