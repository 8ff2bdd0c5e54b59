"""What-if: the list under several values of one rule parameter, against the defaults.

The inputs are read and validated once; each value is a full screening through the same
code path as ``screening run`` (so the default value reproduces the default list exactly).
"""
from __future__ import annotations

from pathlib import Path

import polars as pl

from .errors import RuleSetError
from .ingest import read_dir
from .paths import default_ruleset, sample_data_dir
from .ruleset import RuleSet, load_ruleset
from .screen import needed_tables, screen
from .validate import Inputs, validate

#: items of a list parameter inside one what-if value, e.g. grades=C+D,D
LIST_ITEM_SEPARATOR = "+"


def parse_param(spec: str, rs: RuleSet) -> tuple[str, list[str]]:
    """``RULE.PARAM=V1,V2`` → ("RULE.PARAM", ["V1", "V2"]); names are checked like --set."""
    target, sep, raw = spec.partition("=")
    values = [v.strip() for v in raw.split(",") if v.strip()]
    if not sep or not values:
        raise RuleSetError(f"--param {spec!r} 格式应为 规则ID.参数名=值1,值2,…（列表参数的多个取值用 + 连接，如 C+D）")
    for value in values:  # validates names and types, on a throwaway copy
        probe = load_ruleset(rs.directory)
        probe.apply_overrides([f"{target.strip()}={value.replace(LIST_ITEM_SEPARATOR, ',')}"], flag="--param")
    return target.strip(), values


def _outcome(inputs: Inputs, year: int | None, rs: RuleSet) -> tuple[int, pl.DataFrame, dict[str, int]]:
    with screen(year=year, ruleset=rs, inputs=inputs, anomalies=False) as s:  # the list is all it needs
        return s.list_year, s.list.select("uscc", "land_mu", "energy_tce"), s.hits_per_rule()


def whatif(param: str, data_dir: Path | None = None, year: int | None = None,
           rules: Path | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(one row per value: value, listed, land_mu, energy_tce, entered, left, hits per rule;
    the firms that enter or leave the list at each value compared with the defaults)."""
    directory = Path(rules) if rules else default_ruleset()
    base_rs = load_ruleset(directory)
    target, values = parse_param(param, base_rs)
    inputs = validate(read_dir(Path(data_dir) if data_dir else sample_data_dir(), needed_tables(base_rs)))
    list_year, baseline, _ = _outcome(inputs, year, base_rs)
    default = set(baseline["uscc"].to_list())

    rows, changes = [], []
    for value in values:
        rs = load_ruleset(directory)
        rs.apply_overrides([f"{target}={value.replace(LIST_ITEM_SEPARATOR, ',')}"])
        _, listed, hits = _outcome(inputs, list_year, rs)
        firms = set(listed["uscc"].to_list())
        rows.append({"value": value, "listed": listed.height,
                     "land_mu": float(listed["land_mu"].sum() or 0.0),
                     "energy_tce": float(listed["energy_tce"].sum() or 0.0),
                     "entered": len(firms - default), "left": len(default - firms), **hits})
        changes += [{"value": value, "uscc": u, "change": "entered"} for u in sorted(firms - default)]
        changes += [{"value": value, "uscc": u, "change": "left"} for u in sorted(default - firms)]
    table = pl.DataFrame(rows).with_columns(pl.lit(target).alias("param"), pl.lit(list_year).alias("list_year"))
    moved = pl.DataFrame(changes, schema={"value": pl.String, "uscc": pl.String, "change": pl.String})
    return table, moved


CHANGE_ZH = {"entered": "新进清单", "left": "退出清单"}


def write_report(table: pl.DataFrame, moved: pl.DataFrame, out: Path,
                 rules: Path | None = None) -> tuple[list[Path], str | None]:
    """whatif.xlsx (Chinese headers) and the chart whatif.png / whatif.svg, beside whatif.csv.

    Returns the files written and, when no installed font can draw the chart's Chinese
    text, the reason the chart was left out (the workbook is written regardless)."""
    from . import charts
    from .export import export_excel

    rs = load_ruleset(Path(rules) if rules else default_ruleset())
    headers = {"land_mu": "清单企业用地合计（亩，最近一年）", "energy_tce": "清单企业综合能耗合计（吨标准煤，最近一年）",
               **{rid: f"命中数：{rule.short_title}" for rid, rule in rs.rules.items()}}
    changes = moved.with_columns(pl.col("change").replace_strict(CHANGE_ZH, default=pl.col("change")))
    written = [export_excel({"参数试算": table, "进出清单企业": changes}, out / "whatif.xlsx", headers)]
    try:
        written += charts.save_chart(charts.whatif_chart(table, rs), out / "whatif")
    except charts.FontMissingError as exc:
        return written, str(exc)
    return written, None
