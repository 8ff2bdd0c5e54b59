"""Every frame of the command line a person reads is Chinese (issue 14, item 3): the help of
every command, usage errors, and library errors inside our own messages."""
from __future__ import annotations

import re

import pytest
from typer.main import get_command

from cli_helpers import cli
from screening.cli import app
from screening.cli.zh import localise

pytestmark = pytest.mark.e2e

ENGLISH_FRAMES = ("Usage:", "Options:", "Commands:", "Show this message", "[default", "[required]", "Error:",
                  "Invalid value", "Missing option", "No such", "<str>", "<int", "<path>", "<float", "x>=", "<=x")


def _commands(command, path=()):
    yield path, command
    for name, sub in (getattr(command, "commands", None) or {}).items():
        yield from _commands(sub, (*path, name))


def _help(path: tuple[str, ...]) -> str:
    root = localise(get_command(app))
    ctx = root.make_context("screening", [*path, "--help"], resilient_parsing=True)
    command, parent = root, ctx
    for name in path:
        command = command.commands[name]
        parent = command.make_context(name, [], parent=parent, resilient_parsing=True)
    return parent.get_help()


def test_every_command_help_is_chinese():
    paths = [p for p, _ in _commands(get_command(app))]
    assert len(paths) >= 10 and ("export-final",) in paths and ("users", "add") in paths
    for path in paths:
        text = _help(path)
        assert "用法：screening" in text and "显示本帮助并退出。" in text, path
        assert not [f for f in ENGLISH_FRAMES if f in text], (path, text)


def test_group_help_says_what_each_command_does():
    """Click shortens a help text at a word boundary; a long Chinese sentence has none, and
    ``screening --help`` listed evaluate, backup and verify as "..."."""
    for path, command in _commands(get_command(app)):
        if not getattr(command, "commands", None):
            continue
        listed = _help(path).split("命令：")[1]
        assert "..." not in listed, (path, listed)
        for name in command.commands:
            line = next(line for line in listed.splitlines() if line.split()[:1] == [name])
            words = line.split(None, 1)[1]
            assert sum("\u4e00" <= ch <= "\u9fff" for ch in words) >= 4, (path, name, line)


def test_help_on_the_command_line_is_chinese(tmp_path):
    proc = cli("run", "--help", cwd=tmp_path)
    assert proc.returncode == 0
    assert "用法：screening run [选项]" in proc.stdout and "选项：" in proc.stdout
    assert not [f for f in ENGLISH_FRAMES if f in proc.stdout]
    top = cli(cwd=tmp_path)
    assert "命令：" in top.stdout and "Commands:" not in top.stdout


@pytest.mark.parametrize(("args", "said"), [
    (("run", "--year", "abc"), "选项 --year 的取值无效：“abc” 不是整数"),
    (("synth", "--firms", "0"), "应不小于 1"),
    (("whatif",), "缺少必填选项 --param"),
    (("run", "--dat", "x"), "没有选项 --dat（是否想用 --data"),
    (("nosuch",), "没有命令 “nosuch”"),
    (("run", "extra"), "多余的参数：extra"),
    (("run", "--set", "above_scale_low_tax_per_mu.ratio=abc"), "'abc' 无效：不是数字"),
])
def test_usage_errors_are_one_chinese_line(tmp_path, args, said):
    proc = cli(*args, "--out", tmp_path / "o", cwd=tmp_path) if args[0] == "run" and "--set" in args else \
        cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("错误："), proc.stderr
    assert said in lines[0]
    # no English sentence inside (option names and file names aside)
    words = re.findall(r"[A-Za-z]{3,}", re.sub(r"--[\w-]+|screening|[\w.]+_[\w.]+", "", lines[0]))
    assert not [w for w in words if w not in (*args, "abc", "help")], lines[0]


def test_compare_writes_a_chinese_workbook_beside_the_csv(tmp_path):
    import openpyxl
    import polars as pl

    db = tmp_path / "db.duckdb"
    for year in ("2021", "2022"):
        assert cli("run", "--year", year, "--out", tmp_path / year, "--db", db, cwd=tmp_path).returncode == 0
    proc = cli("compare", "--before", "2021", "--after", "2022", "--db", db, "--out", tmp_path / "cmp", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = list(openpyxl.load_workbook(tmp_path / "cmp" / "compare.xlsx").active.iter_rows(values_only=True))
    assert rows[0] == ("变动", "统一社会信用代码", "企业名称", "乡镇街道", "此前命中规则", "现命中规则", "变动原因")
    changes = {r[0] for r in rows[1:]}
    assert changes == {"新进清单", "退出清单", "仍在清单"}
    entered = next(r for r in rows[1:] if r[0] == "新进清单" and "亩均税收" in r[6] and "本企业数值" in r[6])
    assert entered[6].startswith("新进清单：") and "由未命中变为命中" in entered[6]
    assert not [r for r in rows[1:] if re.search(r"\b(hit|pass|entered|left|stayed)\b", " ".join(map(str, r)))]
    # the CSV keeps its machine columns (contract) and gains the Chinese reason
    csv = pl.read_csv(tmp_path / "cmp" / "compare.csv")
    assert {"change", "why", "reason"} <= set(csv.columns)


def test_an_evaluation_title_says_one_year_one_way():
    from screening.evaluation_method import load_method

    title = load_method("huangyan-2022").title_for(2021)
    assert "2021年度数据" in title and "2022年度数据" not in title and "年数据）：" not in title
    assert re.findall(r"\d{4}年", title) == ["2021年"]


def test_api_validation_messages_have_no_english_fragment(tmp_path):
    from fastapi.testclient import TestClient

    from api.config import Settings
    from api.main import create_app
    from api_helpers import bearer, build_service_db

    db, tokens = build_service_db(tmp_path)
    with TestClient(create_app(Settings(db=db))) as client:
        firm = client.get("/api/v1/lists/2022?page_size=1", headers=bearer(tokens["admin"])).json()["items"][0]["uscc"]
        bad = client.post(f"/api/v1/enterprises/{firm}/verifications", headers=bearer(tokens["admin"]),
                          json={"year": 2022, "outcome": "maybe"})
    assert bad.status_code == 422
    detail = bad.json()["detail"]
    assert "“maybe”无效，可选值：confirmed、disputed" in detail and " or " not in detail, detail


def test_a_bracket_wrapped_at_the_end_of_a_line_is_chinese_too():
    # click wraps "[default: value]" after the colon when the description fills the line
    from screening.cli.zh import translate_help

    wrapped = translate_help("  --db PATH   a long description  [default:\n               screening.duckdb]\n"
                             "  --x TEXT    another one  [env var:\n               X]\n")
    assert "[默认：\n" in wrapped and "[环境变量：\n" in wrapped and "default" not in wrapped and "env var" not in wrapped
