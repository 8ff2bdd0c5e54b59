"""A small hand-computable data set and method for the evaluation workflow tests.

Eight 规下 manufacturing firms, 10 亩 each, 实缴税金 100, 90, …, 30 万元 in 2020 and 2021 (four
in 柳市镇, four in 乐成街道).  The method ``simple-test`` scores 亩均税收 ÷ 10 × 100 (one indicator,
fixed baseline, no cap) and grades by rank ÷ 8: A ≤ 25 %, B ≤ 50 %, C ≤ 75 %, D the rest.  So
firm i (1–8) scores 110 − 10·i, ranks i, and is A A B B C C D D."""
from __future__ import annotations

from pathlib import Path

import yaml

from api.auth import add_user
from api_helpers import OTHER, TOWNSHIP
from screening.evaluation_method import methods_dir
from screening.store import connect
from screening.uscc import check_char

METHOD_ID = "simple-test"
YEARS = (2020, 2021)


def firm_code(i: int) -> str:
    first = f"91330382MA2C{i:05d}"
    return first + check_char(first)


FIRMS = [firm_code(i) for i in range(1, 9)]


def township_of(i: int) -> str:
    return TOWNSHIP if i <= 4 else OTHER


def write_data(root: Path) -> Path:
    data = root / "data"
    data.mkdir(parents=True)
    ent = ["uscc,name,township,industry_code,established"]
    stats, tax, land = ["uscc,year,scale,revenue"], ["uscc,year,tax_paid"], ["uscc,year,parcel_id,area_mu,tenure"]
    for i, code in enumerate(FIRMS, start=1):
        ent.append(f"{code},企业{i},{township_of(i)},3823,2010-01-01")
        for y in YEARS:
            stats.append(f"{code},{y},规下,1000")
            tax.append(f"{code},{y},{110 - 10 * i}")
            land.append(f"{code},{y},P{i},10,自有")
    files = {"enterprises": ent, "stats": stats, "tax": tax, "land": land,
             "energy": ["uscc,year,energy_tce,electricity"], "evaluations": ["uscc,year,grade,score"],
             "product_energy": ["uscc,year,product,output,unit_consumption"]}
    for name, lines in files.items():
        (data / f"{name}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (data / f"{METHOD_ID}.yaml").write_text(method_yaml(), encoding="utf-8")
    return data


def method_yaml() -> str:
    doc = yaml.safe_load((methods_dir() / "yueqing-default.yaml").read_text(encoding="utf-8"))
    doc = {k: v for k, v in doc.items() if not k.startswith("x-")}
    doc["id"] = METHOD_ID
    doc["title"] = "测试方法（亩均税收一项）"
    cite = {"source": "project_assumption", "clause": "测试"}
    for scale in ("规上", "规下"):
        sm = doc["scales"][scale]
        sm["indicators"] = [{"id": "tax_per_mu", "name": "亩均税收", "unit": "万元/亩",
                             "formula": {"numerator": "tax_paid", "denominator": "land_mu"}, "weight": 100,
                             "baseline": {"kind": "fixed", "value": 10}, "cite": cite}]
        sm["item_score"] = {"function": "ratio", "cap": None, "cite": cite}
        sm["grading"] = {"within": "scale", "cutoffs": {"A": 0.25, "B": 0.5, "C": 0.75, "D": 1.0}, "rank_decimals": 6,
                         "cite": cite}
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def add_users(db: Path) -> dict[str, str]:
    con = connect(db)
    from api.db import ensure_schema
    ensure_schema(con)
    tokens = {"admin": add_user(con, "经信局", "admin", None), "township": add_user(con, "柳市", "township", TOWNSHIP, True),
              "other_township": add_user(con, "乐成", "township", OTHER, True), "analyst": add_user(con, "分析", "analyst", None),
              "dashboard": add_user(con, "看板", "dashboard", None)}
    con.close()
    return tokens


def evaluate_app():
    """A Typer app with only ``evaluate``, for CliRunner (in-process: fast, and its output captured)."""
    import typer

    from screening.cli.evaluate import evaluate_command

    app = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        """test app"""

    app.command("evaluate")(evaluate_command)
    return app
