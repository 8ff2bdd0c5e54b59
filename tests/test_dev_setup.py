"""dev.py's font step never breaks or slows `python3 dev.py test`: without apt-get or root it
only prints a hint, a failing or hanging apt-get is survived, and it runs once per environment."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit


@pytest.fixture
def dev(monkeypatch, tmp_path):
    spec = importlib.util.spec_from_file_location("dev_setup", Path(__file__).resolve().parent.parent / "dev.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "FONT_STAMP", tmp_path / ".cjk-font-checked")
    module.calls = []

    def run(cmd, **kwargs):  # records every command; apt-get "fails" unless a test says otherwise
        module.calls.append(cmd[0])
        return subprocess.CompletedProcess(cmd, module.apt_code)

    module.apt_code = 100
    monkeypatch.setattr(module.subprocess, "run", run)
    return module


def _machine(monkeypatch, dev, *, apt: bool, root: bool, font_checks: list[int]) -> None:
    monkeypatch.setattr(dev.shutil, "which", lambda name: "/usr/bin/apt-get" if apt else None)
    monkeypatch.setattr(dev.os, "geteuid", lambda: 0 if root else 1000)
    monkeypatch.setattr(dev, "_font_check", lambda: font_checks.pop(0))


@pytest.mark.parametrize("apt, root", [(False, True), (True, False)])
def test_without_apt_or_root_it_only_says_how(dev, monkeypatch, capsys, apt, root):
    _machine(monkeypatch, dev, apt=apt, root=root, font_checks=[dev.NO_FONT])
    dev.ensure_cjk_font()
    assert dev.calls == [] and "未找到中文字体" in capsys.readouterr().out
    dev.ensure_cjk_font()  # checked once per environment: the next run is silent
    assert capsys.readouterr().out == ""


def test_a_failing_apt_get_is_survived_and_not_retried(dev, monkeypatch, capsys):
    _machine(monkeypatch, dev, apt=True, root=True, font_checks=[dev.NO_FONT])
    dev.ensure_cjk_font()
    assert dev.calls == ["apt-get"] and "未能安装" in capsys.readouterr().out  # update failed: no install
    dev.ensure_cjk_font()
    assert dev.calls == ["apt-get"]


def test_a_hanging_apt_get_is_given_up(dev, monkeypatch, capsys):
    _machine(monkeypatch, dev, apt=True, root=True, font_checks=[dev.NO_FONT])

    def hang(cmd, **kwargs):
        raise subprocess.TimeoutExpired(cmd, kwargs["timeout"])
    monkeypatch.setattr(dev.subprocess, "run", hang)
    dev.ensure_cjk_font()
    assert "未能安装" in capsys.readouterr().out


def test_installs_as_root_then_checks_again(dev, monkeypatch, capsys):
    _machine(monkeypatch, dev, apt=True, root=True, font_checks=[dev.NO_FONT, 0])
    dev.apt_code = 0
    dev.ensure_cjk_font()
    assert dev.calls == ["apt-get", "apt-get"] and "未能安装" not in capsys.readouterr().out


def test_a_broken_check_installs_nothing(dev, monkeypatch, capsys):
    # an import error in the project is not a missing font: no apt-get, and it is looked at again next time
    _machine(monkeypatch, dev, apt=True, root=True, font_checks=[1, 1])
    dev.ensure_cjk_font()
    dev.ensure_cjk_font()
    assert dev.calls == [] and capsys.readouterr().out == ""


def test_the_check_exits_no_font_only_for_a_missing_font(dev, monkeypatch):
    from screening import charts

    def missing(text: str = "") -> None:
        raise charts.FontMissingError("未找到能显示图表中文的字体")
    monkeypatch.setattr(charts, "find_cjk_font", missing)
    with pytest.raises(SystemExit) as stop:
        exec(dev.FONT_CHECK, {})
    assert stop.value.code == dev.NO_FONT


# Chromium for the web app's browser tests (tests/test_web_browser.py): the same rules as the font

@pytest.fixture
def no_chromium(dev, monkeypatch, tmp_path):
    monkeypatch.setattr(dev, "CHROMIUM", str(tmp_path / "no-chromium"))
    monkeypatch.setattr(dev, "CHROMIUM_STAMP", tmp_path / ".chromium-checked")
    return dev


@pytest.mark.parametrize("apt, root", [(False, True), (True, False)])
def test_chromium_without_apt_or_root_only_says_how(no_chromium, monkeypatch, capsys, apt, root):
    dev = no_chromium
    _machine(monkeypatch, dev, apt=apt, root=root, font_checks=[])
    dev.ensure_chromium()
    assert dev.calls == [] and "浏览器测试将跳过" in capsys.readouterr().out
    dev.ensure_chromium()  # once per environment
    assert capsys.readouterr().out == ""


def test_chromium_is_installed_with_apt_as_root(no_chromium, monkeypatch, capsys):
    dev = no_chromium
    _machine(monkeypatch, dev, apt=True, root=True, font_checks=[])
    commands = []
    monkeypatch.setattr(dev.subprocess, "run", lambda cmd, **kw: (commands.append((cmd, kw.get("timeout"))),
                                                                   subprocess.CompletedProcess(cmd, 0))[1])
    dev.ensure_chromium()
    assert ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"] in [c for c, _ in commands]
    assert all(timeout == dev.APT_TIMEOUT_S for _, timeout in commands)
    assert "未能安装 chromium" in capsys.readouterr().out  # still missing afterwards: said, never a failure


def test_an_installed_chromium_is_left_alone(dev, monkeypatch, tmp_path):
    browser = tmp_path / "chromium"
    browser.write_text("")
    monkeypatch.setattr(dev, "CHROMIUM", str(browser))
    _machine(monkeypatch, dev, apt=True, root=True, font_checks=[])
    dev.ensure_chromium(force=True)
    assert dev.calls == []


def test_an_unknown_command_is_said_in_chinese():
    dev = Path(__file__).resolve().parents[1] / "dev.py"
    proc = subprocess.run([sys.executable, str(dev), "deploy"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "未知的命令：deploy" in proc.stdout and "用法" in proc.stdout and "Usage" not in proc.stdout
