"""Docs that cannot drift (issue 14, item 6): figures quoted from a command equal what the
command gives on the sample; every project path named in a shipped file or message exists."""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from cli_helpers import cli

ROOT = Path(__file__).resolve().parents[1]
TOP = ("docs", "rules", "screening", "notebooks", "sql", "tests", "sample_data", "api", "benchmarks")
PROJECT_PATH = re.compile(rf"(?<![\w./-])((?:{'|'.join(TOP)})/[\w./-]*\w)(?![<{{*])")
FILE_NAME = re.compile(r"(?<![\w./-])([\w-]+\.(?:md|yaml|ipynb))\b")
CJK = re.compile(r"[\u4e00-\u9fff]")
#: names that are not project files on purpose: a file a command writes, a user's own example
NOT_PROJECT_FILES = {
    "backtest.md": "screening warn 写出的文件",
    "rules/methods/my.yaml": "docs/evaluation.md 中用户自己的评价方法示例",
    "我的方法.yaml": "docs/evaluation.md 中用户自己的评价方法示例",
}


def _people_texts() -> dict[str, str]:
    """What people read: README, docs, the sample's README, the rule sets, the notebooks, and the
    messages (string constants with Chinese in them) of the package and the service."""
    texts = {p.name if p.parent == ROOT else str(p.relative_to(ROOT)): p.read_text(encoding="utf-8")
             for p in [ROOT / "README.md", ROOT / "sample_data" / "README.md", *sorted((ROOT / "docs").glob("*.md")),
                       *sorted((ROOT / "rules").rglob("*.yaml")), *sorted((ROOT / "rules").rglob("*.csv"))]}
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        texts[str(nb.relative_to(ROOT))] = "\n".join("".join(c["source"]) for c in cells)
    for py in [*sorted((ROOT / "screening").rglob("*.py")), *sorted((ROOT / "api").rglob("*.py"))]:
        tree = ast.parse(py.read_text(encoding="utf-8"))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)}
        strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                   and id(n) not in docstrings and CJK.search(n.value)]
        texts[str(py.relative_to(ROOT))] = "\n".join(strings)
    return texts


def test_every_project_path_named_for_people_exists():
    names = {p.name for p in ROOT.rglob("*") if ".venv" not in p.parts and ".git" not in p.parts}
    missing = []
    for where, text in _people_texts().items():
        for path in PROJECT_PATH.findall(text):
            if not (ROOT / path).exists() and path not in NOT_PROJECT_FILES:
                missing.append((where, path))
        for name in FILE_NAME.findall(text):
            if name not in names and name not in NOT_PROJECT_FILES:
                missing.append((where, name))
    assert not missing, missing


def test_the_notebook_count_in_the_docs_is_the_count():
    words = {2: "两", 3: "三", 4: "四", 5: "五", 6: "六", 7: "七", 8: "八", 9: "九"}
    count = len(list((ROOT / "notebooks").glob("*.ipynb")))
    text = (ROOT / "docs" / "notebooks.md").read_text(encoding="utf-8")
    said = re.findall(r"([两三四五六七八九])个 notebook", text)
    assert said and set(said) == {words[count]}, (said, count)
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        assert nb.stem in text, nb.stem


@pytest.fixture(scope="module")
def backtest(tmp_path_factory):
    root = tmp_path_factory.mktemp("warn")
    proc = cli("warn", "--out", root / "w", cwd=root, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads((root / "w" / "backtest.json").read_text(encoding="utf-8"))


def _figures(bt: dict) -> dict[str, float]:
    chosen = bt["candidates"][bt["chosen"]]
    return {"auc": chosen["auc"], "p50": chosen["precision_at"]["50"], "base_auc": bt["baseline"]["auc"],
            "base_p50": bt["baseline"]["precision_at"]["50"]}


def test_the_warn_docs_quote_the_command(backtest):
    """docs/warn.md's backtest table and English summary are the command's figures on the sample."""
    text = (ROOT / "docs" / "warn.md").read_text(encoding="utf-8")
    bt, figures = backtest, _figures(backtest)
    rows = {"logistic": r"\| 校准的逻辑回归", "gradient_boosting": r"\| \*\*梯度提升树（选用）\*\*"}
    for name, start in rows.items():
        m = bt["candidates"][name]
        line = next(line for line in text.splitlines() if re.match(start, line))
        numbers = [float(x) for x in re.findall(r"\d+\.\d+", line)]
        assert numbers == [m["auc"], round(m["precision_at"]["50"] * 100, 1), round(m["precision_at"]["150"] * 100, 1),
                           round(m["brier"], 5)], line
    base = next(line for line in text.splitlines() if line.startswith("| 朴素基线"))
    assert [float(x) for x in re.findall(r"\d+\.\d+", base)] == [
        figures["base_auc"], round(figures["base_p50"] * 100, 1), round(bt["baseline"]["precision_at"]["150"] * 100, 1)]
    english = next(line for line in text.splitlines() if line.startswith("- **Sample backtest"))
    assert f"AUC {figures['auc']}" in english and f"precision@50 {figures['p50'] * 100:.1f} %" in english
    assert f"AUC {figures['base_auc']}, {figures['base_p50'] * 100:.1f} %" in english


def test_the_readme_quotes_the_warn_command(backtest):
    """README's early-warning figures (Chinese and English) are the command's, as docs/warn.md's."""
    f = _figures(backtest)
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    zh = (f"模型 AUC {f['auc']}、前 50 名精确率 {f['p50'] * 100:.1f}%，基线为 {f['base_auc']}、"
          f"{f['base_p50'] * 100:.1f}%")
    en = (f"AUC {f['auc']} and precision@50 {f['p50'] * 100:.1f} % against {f['base_auc']} and "
          f"{f['base_p50'] * 100:.1f} % for the baseline")
    assert zh in text, zh
    assert en in text, en
