"""Mutation check of the rule logic: each mutant must make a test fail.

    python3 dev.py mutate                     # every mutant in tests/mutation/mutants.yaml
    python3 dev.py mutate --only r4_effective_from_exclusive disposition_scale_inverted
    python3 dev.py mutate --list              # the mutants, without running anything

The tree (screening/, sql/, rules/, tests/, sample_data/, api/, pyproject.toml) is copied once to a
temporary directory; each mutant changes one place in that COPY, the tests it names run there
(default: the golden cases, ``pytest -m golden tests/rules``), and the file is put back before the
next one.  The working files are never touched.  The tests are first run once unchanged (a failing
baseline would make every mutant look caught).

Exit code: 0 every mutant caught, 1 a mutant survived (or its run broke), 2 the mutant list or the
baseline is wrong.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_LIST = Path(__file__).with_name("mutants.yaml")
DEFAULT_TESTS = ("-m", "golden", "tests/rules")
COPIED = ("screening", "sql", "rules", "tests", "sample_data", "api", "pyproject.toml")
IGNORED = shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.duckdb", "*.pyc")


@dataclass(frozen=True)
class Mutant:
    id: str
    file: str
    original: str
    replacement: str
    zh: str
    en: str
    tests: tuple[str, ...] = ()
    first: str | None = None  # a test file to run first (the likeliest to catch it: -x stops early)

    def pytest_args(self) -> list[str]:
        if self.tests:
            return list(self.tests)
        first = self.first
        if first is None and self.file.startswith("sql/rules/"):
            guess = f"tests/rules/yueqing-2022/test_{Path(self.file).stem}.yaml"
            first = guess if (ROOT / guess).is_file() else None
        return ["-m", "golden", *([first] if first else []), "tests/rules"]

    def baseline_args(self) -> tuple[str, ...]:
        """The same tests in their plain order (one unmutated run per distinct selection)."""
        return self.tests or DEFAULT_TESTS


@dataclass
class Outcome:
    mutant: Mutant
    result: str  # caught | survived | error
    seconds: float
    output: str = field(default="", repr=False)


def load(path: Path) -> list[Mutant]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    mutants = [Mutant(**{**m, "tests": tuple(m.get("tests", ()))}) for m in raw["mutants"]]
    problems = []
    seen: set[str] = set()
    for m in mutants:
        if m.id in seen:
            problems.append(f"{m.id}：编号重复")
        seen.add(m.id)
        target = ROOT / m.file
        if not target.is_file():
            problems.append(f"{m.id}：文件 {m.file} 不存在")
            continue
        count = target.read_text(encoding="utf-8").count(m.original)
        if count != 1:
            problems.append(f"{m.id}：原文在 {m.file} 中出现 {count} 次（应恰为 1 次），变异体列表已过时")
        if m.original == m.replacement:
            problems.append(f"{m.id}：替换文本与原文相同")
    if problems:
        raise SystemExit("变异体列表有误：\n  " + "\n  ".join(problems))
    return mutants


def copy_tree(target: Path) -> Path:
    tree = target / "tree"
    tree.mkdir()
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=IGNORED)
        elif source.is_file():
            shutil.copy2(source, tree / name)
    return tree


def _env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}


def check_isolated(tree: Path, python: str) -> None:
    """The copy's package must be the one imported, or the mutants would test the working files."""
    found = subprocess.run([python, "-c", "import screening, screening.paths as p; print(p.sql_dir())"],
                           cwd=tree, env=_env(tree), capture_output=True, text=True, check=False)
    where = Path(found.stdout.strip() or "/nonexistent")
    if found.returncode != 0 or where.resolve() != (tree / "sql").resolve():
        raise SystemExit(f"无法在副本中导入 screening（实际 sql 目录：{where}）：{found.stderr.strip()[-500:]}")


def run_tests(tree: Path, python: str, args: list[str]) -> subprocess.CompletedProcess:
    command = [python, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--no-header", *args]
    return subprocess.run(command, cwd=tree, env=_env(tree), capture_output=True, text=True, check=False)


def run_mutant(tree: Path, python: str, m: Mutant) -> Outcome:
    target = tree / m.file
    original = target.read_text(encoding="utf-8")
    target.write_text(original.replace(m.original, m.replacement, 1), encoding="utf-8")
    start = time.perf_counter()
    try:
        done = run_tests(tree, python, m.pytest_args())
    finally:
        target.write_text(original, encoding="utf-8")
    seconds = time.perf_counter() - start
    # pytest: 0 all passed (the mutant survived), 1 a test failed (caught); anything else is a broken run
    result = {0: "survived", 1: "caught"}.get(done.returncode, "error")
    return Outcome(m, result, seconds, done.stdout[-3000:] + done.stderr[-2000:])


RESULT_ZH = {"caught": "捕获", "survived": "存活", "error": "运行出错"}


def _width(text: str) -> int:
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


def table(outcomes: list[Outcome]) -> str:
    rows = [("编号 id", "文件 file", "说明 what it does", "结果 result", "用时")]
    rows += [(o.mutant.id, o.mutant.file, f"{o.mutant.zh} / {o.mutant.en}", f"{RESULT_ZH[o.result]} {o.result}",
              f"{o.seconds:.1f}s") for o in outcomes]
    widths = [max(_width(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(_pad(c, w) for c, w in zip(r, widths)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="规则逻辑的变异检查：每个变异体都应使测试失败")
    parser.add_argument("--only", nargs="+", metavar="ID", help="只运行这些编号的变异体")
    parser.add_argument("--mutants", type=Path, default=DEFAULT_LIST, help="变异体列表（YAML）")
    parser.add_argument("--list", action="store_true", help="只列出变异体，不运行")
    parser.add_argument("--python", default=sys.executable, help="运行测试所用的 Python（默认：当前解释器）")
    args = parser.parse_args(argv)

    mutants = load(args.mutants)
    if args.only:
        unknown = sorted(set(args.only) - {m.id for m in mutants})
        if unknown:
            print(f"未知的变异体编号：{'、'.join(unknown)}", file=sys.stderr)
            return 2
        mutants = [m for m in mutants if m.id in set(args.only)]
    if args.list:
        for m in mutants:
            print(f"{m.id}\t{m.file}\t{m.zh} / {m.en}")
        return 0

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
        tree = copy_tree(Path(tmp))
        check_isolated(tree, args.python)
        for selection in dict.fromkeys(m.baseline_args() for m in mutants):
            base = run_tests(tree, args.python, list(selection))
            if base.returncode != 0:
                print(f"基线测试未通过（未作任何变异）：pytest {' '.join(selection)}\n{base.stdout[-3000:]}",
                      file=sys.stderr)
                return 2
        outcomes = []
        for i, m in enumerate(mutants, 1):
            outcome = run_mutant(tree, args.python, m)
            outcomes.append(outcome)
            print(f"[{i}/{len(mutants)}] {m.id}: {RESULT_ZH[outcome.result]} ({outcome.seconds:.1f}s)", flush=True)
    print()
    print(table(outcomes))
    bad = [o for o in outcomes if o.result != "caught"]
    print(f"\n共 {len(outcomes)} 个变异体：捕获 {len(outcomes) - len(bad)}，未捕获 {len(bad)}；"
          f"用时 {time.perf_counter() - started:.0f} 秒")
    for o in bad:
        print(f"\n--- {o.mutant.id}（{RESULT_ZH[o.result]}）：{o.mutant.file}\n"
              f"    {o.mutant.original!r} → {o.mutant.replacement!r}\n{o.output[-1500:] if o.result == 'error' else ''}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
