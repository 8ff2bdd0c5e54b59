#!/usr/bin/env python3
"""One-command setup for a fresh machine that only has Python.

    python3 dev.py run   [screening run options]   # screen the bundled sample_data/
    python3 dev.py test  [pytest options]          # the whole test suite
    python3 dev.py mutate [--only ID ...] [--list] # mutation check of the rules (tests/mutation/)

Both create ``.venv`` on first use and (re)install the project when
pyproject.toml changes, so nothing has to be installed by hand.  Charts need a
font with Chinese glyphs: when none is installed and this runs as root on a
Debian/Ubuntu machine, it installs one with apt-get (otherwise it says how).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed-pyproject-sha256"


def _python() -> str:
    return str(BIN / ("python.exe" if os.name == "nt" else "python"))


def ensure_env() -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"需要 Python ≥ 3.11，当前为 {sys.version.split()[0]}")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == wanted:
        return
    if not (BIN / "python").exists() and not (BIN / "python.exe").exists():
        print("创建虚拟环境 .venv …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("安装依赖（首次约 1 分钟）…", flush=True)
    pip = [_python(), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[test]"], check=True)
    STAMP.write_text(wanted)


# the check is the charts' own font choice, run in the project's environment; exit code
# NO_FONT tells "no font" from a check that failed for another reason (left to the tests)
NO_FONT = 3
FONT_CHECK = ("import sys\nfrom screening.charts import FontMissingError, find_cjk_font\n"
              f"try:\n    find_cjk_font()\nexcept FontMissingError:\n    sys.exit({NO_FONT})")
FONT_PACKAGE = "fonts-wqy-microhei"  # Debian main; 1.6 MB; Chinese glyph forms (= screening.charts.DEBIAN_FONT_PACKAGE)
FONT_STAMP = VENV / ".cjk-font-checked"
APT_TIMEOUT_S = 600  # a root container without network must not hang the test run


def _font_check() -> int:
    try:
        return subprocess.run([_python(), "-c", FONT_CHECK], capture_output=True, check=False, timeout=120).returncode
    except (OSError, subprocess.TimeoutExpired):
        return -1


def _apt_install(package: str = FONT_PACKAGE) -> bool:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        return all(subprocess.run(cmd, env=env, capture_output=True, check=False, timeout=APT_TIMEOUT_S).returncode == 0
                   for cmd in (["apt-get", "update", "-qq"],
                               ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package]))
    except (OSError, subprocess.TimeoutExpired):
        return False


def ensure_cjk_font(force: bool = False) -> None:
    """Install a CJK font with apt-get when none is found (root on Debian/Ubuntu only).

    Never fails the command.  Checked once per environment (``setup`` checks again), so
    later runs start at once and print nothing."""
    if FONT_STAMP.exists() and not force:
        return
    found = _font_check()
    if found not in (0, NO_FONT):  # the check itself broke (say an import error): the tests will show it
        return
    if found == NO_FONT:
        if os.name != "posix" or not shutil.which("apt-get") or os.geteuid() != 0:
            print(f"提示：未找到中文字体，图表无法生成；请安装 {FONT_PACKAGE} 或 fonts-noto-cjk（需要管理员权限）", flush=True)
        else:
            print(f"安装中文字体 {FONT_PACKAGE} …", flush=True)
            if not (_apt_install() and _font_check() == 0):
                print(f"提示：apt-get 未能安装 {FONT_PACKAGE}，图表无法生成；其余功能不受影响", flush=True)
    try:
        FONT_STAMP.write_text("checked\n")
    except OSError:  # a read-only environment checks again next time
        pass


# The web app's browser tests (tests/test_web_browser.py) drive the OS's Chromium with Playwright
# (never a browser download of its own); they skip, saying why, when it cannot be installed.
CHROMIUM = "/usr/bin/chromium"  # = tests/test_web_browser.py CHROMIUM
CHROMIUM_PACKAGE = "chromium"  # Debian main
CHROMIUM_STAMP = VENV / ".chromium-checked"


def ensure_chromium(force: bool = False) -> None:
    """Install Chromium with apt-get when missing (root on Debian/Ubuntu only); once per
    environment, never failing the command."""
    if (CHROMIUM_STAMP.exists() and not force) or Path(CHROMIUM).exists():
        return
    if os.name != "posix" or not shutil.which("apt-get") or os.geteuid() != 0:
        print(f"提示：未找到 {CHROMIUM}，网页的浏览器测试将跳过；请安装 {CHROMIUM_PACKAGE}（需要管理员权限）", flush=True)
    else:
        print(f"安装浏览器测试所需的 {CHROMIUM_PACKAGE} …", flush=True)
        if not (_apt_install(CHROMIUM_PACKAGE) and Path(CHROMIUM).exists()):
            print(f"提示：apt-get 未能安装 {CHROMIUM_PACKAGE}，网页的浏览器测试将跳过", flush=True)
    try:
        CHROMIUM_STAMP.write_text("checked\n")
    except OSError:
        pass


USAGE = """用法：
    python3 dev.py run   [screening run 的选项]     # 用随附的 sample_data/ 生成清单
    python3 dev.py test  [pytest 的选项]            # 运行全部测试
    python3 dev.py setup                           # 只安装环境（.venv、中文字体、Chromium）
    python3 dev.py mutate [--only 编号 ...] [--list] # 规则的变异检查（tests/mutation/）
首次使用会自动创建 .venv 并安装依赖。"""


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "test", "setup", "mutate"}:
        if argv:
            print(f"未知的命令：{argv[0]}")
        print(USAGE)
        return 2
    ensure_env()
    cmd, rest = argv[0], argv[1:]
    ensure_cjk_font(force=cmd == "setup")
    ensure_chromium(force=cmd == "setup")
    if cmd == "setup":
        return 0
    if cmd == "run":
        return subprocess.call([str(BIN / "screening"), "run", *rest], cwd=ROOT)
    if cmd == "mutate":
        return subprocess.call([_python(), str(ROOT / "tests" / "mutation" / "run.py"), *rest], cwd=ROOT)
    return subprocess.call([_python(), "-m", "pytest", *rest], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
