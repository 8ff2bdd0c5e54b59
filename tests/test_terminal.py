"""80-column terminals (issue 14, item 4): the run summary, warn and every table fit the width
given by COLUMNS, wrapped between Chinese characters or at spaces, never inside a number or a
file name."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.cells import cell_len

from cli_helpers import _command
from screening.terminal import wrap

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.e2e


def _run(args, cwd, columns=80):
    env = {k: v for k, v in os.environ.items() if k != "SCREENING_DEBUG"}
    env.update(COLUMNS=str(columns), PYTHONIOENCODING="utf-8")
    return subprocess.run([*_command(), *map(str, args)], cwd=cwd, capture_output=True, text=True, encoding="utf-8",
                          env=env, timeout=300)


def _broken(lines: list[str]) -> list[tuple[str, str]]:
    """Pairs of lines where a run of Latin letters/digits (a number, a file name) was split."""
    pairs = []
    for a, b in zip(lines, lines[1:]):
        a = a.rstrip("│ ")
        if not a or not b:
            continue
        split_number = re.search(r"[\d.,]$", a) and re.match(r"[\d.,%]", b)
        split_name = (re.search(r"\w$", a, re.ASCII) and re.match(r"[._/]", b)) or \
            (re.search(r"[._/]$", a) and re.match(r"\w", b, re.ASCII)) or \
            (re.search(r"[A-Za-z\d]$", a) and re.match(r"[A-Za-z\d]", b))
        if split_number or split_name:
            pairs.append((a, b))
    return pairs


def _check(stdout: str, columns: int) -> None:
    lines = stdout.splitlines()
    assert lines
    # only a path longer than the whole line may stand alone beyond it
    too_wide = [line for line in lines if cell_len(line) > columns
                and not re.fullmatch(r"[\x21-\x7e]+[，。；）]?", line.strip())]
    assert not too_wide, too_wide
    assert not _broken(lines), _broken(lines)
    # a line never starts with a closing mark
    assert not [line for line in lines if line[:1] in "，。；：、）"], lines


@pytest.mark.parametrize("columns", [80, 60])
def test_the_run_summary_fits_the_terminal(tmp_path, columns):
    proc = _run(["run", "--out", tmp_path / "o", "--db", tmp_path / "d.duckdb"], tmp_path, columns)
    assert proc.returncode == 0, proc.stderr
    _check(proc.stdout, columns)
    assert "整治企业清单_2022.xlsx" in proc.stdout    # the file name in one piece


def test_warn_fits_80_columns_and_keeps_its_reasons_whole(tmp_path):
    proc = _run(["warn", "--out", tmp_path / "w"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    _check(proc.stdout, 80)
    assert "…" not in proc.stdout            # nothing elided
    assert "万元/亩" in proc.stdout


def test_whatif_table_fits_80_columns(tmp_path):
    proc = _run(["whatif", "--param", "above_scale_low_tax_per_mu.ratio=0.05,0.1,0.2", "--out", tmp_path / "w"],
                tmp_path)
    assert proc.returncode == 0, proc.stderr
    _check(proc.stdout, 80)
    assert "…" not in proc.stdout and "能耗（吨标准煤）" in proc.stdout


def test_check_fits_80_columns_and_names_its_folder(tmp_path):
    """screening check (issue 14, item 4): per-table blocks, nothing cut, labels and file names whole."""
    from screening.ingest.report import TABLE_HEADERS

    proc = _run(["check", "--data", ROOT / "sample_data", "--year", "2022", "--out", tmp_path / "ck"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    _check(proc.stdout, 80)
    assert "…" not in proc.stdout
    lines = proc.stdout.splitlines()
    for label in TABLE_HEADERS[1:]:
        assert any(f"{label}：" in line for line in lines), label
    for name in ("enterprises.csv", "land.xlsx", "evaluations.xlsx", "product_energy.csv"):
        assert any(name in line for line in lines), name
    assert "已写出：check.json、check.xlsx" in proc.stdout
    assert str((tmp_path / "ck").resolve()) in proc.stdout.replace("\n", "")


def test_pack_breaks_only_between_items():
    from screening.terminal import pack

    items = ["文件：enterprises.csv", "工作表：—", "表头行：1", "读取行数：6001", "接收行数：6000", "规范化单元格：0"]
    for width in (24, 30, 40, 80):  # each item and its separator fit a line
        lines = pack(items, width).split("\n")
        assert all(cell_len(line) <= width for line in lines), lines
        assert [x for line in lines for x in line.split("；") if x] == items


@pytest.mark.parametrize("width", [8, 13, 22, 40, 80])
def test_wrap_keeps_numbers_and_names_whole(width):
    text = ("输出目录：/tmp/out（list.csv/.parquet、整治企业清单_2022.xlsx、run.json）；2021年亩均税收 2.1 万元/亩，"
            "处于同行业（38大类）后 1%；实缴税金从 2020 年的 1,124 万元降为 0，同行业企业中位数同期减少 9.2%")
    lines = wrap(text, width).split("\n")
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    for token in ("/tmp/out", "整治企业清单_2022.xlsx", "2.1", "1,124", "9.2%", "list.csv/.parquet"):
        assert any(token in line for line in lines), (token, lines)
    assert all(cell_len(line) <= width or " " not in line.strip() and len(re.findall(r"[^\x00-\x7f]", line)) <= 12
               for line in lines), lines
