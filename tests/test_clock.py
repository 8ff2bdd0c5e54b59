"""One clock (issue 14, item 5): every time a person reads is China time, labelled; the zone is
configurable (SCREENING_TIMEZONE)."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess

import openpyxl
import pytest

from cli_helpers import _command
from screening import clock
from screening.errors import SettingsError

UTC = dt.timezone.utc


def test_times_are_shown_in_china_time_labelled(monkeypatch):
    monkeypatch.delenv("SCREENING_TIMEZONE", raising=False)
    moment = dt.datetime(2022, 5, 6, 16, 30, tzinfo=UTC)
    assert clock.stamp(moment) == "2022-05-07 00:30（北京时间）"
    assert clock.today(moment) == dt.date(2022, 5, 7)


def test_the_zone_is_configurable(monkeypatch):
    monkeypatch.setenv("SCREENING_TIMEZONE", "Asia/Urumqi")
    assert clock.stamp(dt.datetime(2022, 5, 6, 16, 30, tzinfo=UTC)) == "2022-05-06 22:30（新疆时间）"
    monkeypatch.setenv("SCREENING_TIMEZONE", "Mars/Olympus")
    with pytest.raises(SettingsError, match="SCREENING_TIMEZONE"):
        clock.stamp()


def test_the_workbook_time_is_china_time_whatever_the_machine_zone(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("SCREENING_DEBUG", "SCREENING_TIMEZONE")}
    env.update(TZ="America/New_York", PYTHONIOENCODING="utf-8")
    proc = subprocess.run([*_command(), "run", "--out", str(tmp_path / "o"), "--db", str(tmp_path / "d.duckdb")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, encoding="utf-8", timeout=300)
    assert proc.returncode == 0, proc.stderr
    created = dt.datetime.fromisoformat(json.loads((tmp_path / "o" / "run.json").read_text())["created_at"])
    assert created.utcoffset() != dt.timedelta(hours=8)      # the machine's own zone is elsewhere
    ws = openpyxl.load_workbook(tmp_path / "o" / "整治企业清单_2022.xlsx")["汇总"]
    shown = next(row[1].value for row in ws.iter_rows() if row[0].value == "生成时间")
    china = created.astimezone(dt.timezone(dt.timedelta(hours=8)))
    assert shown == f"{china:%Y-%m-%d %H:%M:%S}（北京时间）"


def test_pages_show_times_in_china_time_whatever_the_machine_zone(monkeypatch):
    """The web filters used to print the machine's zone (UTC on a server) for stored times."""
    from api.web.templating import _beijing, _when

    monkeypatch.delenv("SCREENING_TIMEZONE", raising=False)
    utc = dt.datetime(2026, 11, 29, 23, 30, tzinfo=dt.timezone.utc)
    assert _when(utc) == "2026-11-30 07:30"
    assert _beijing(utc.isoformat()) == "2026-11-30 07:30:00"
    assert _when(None) == "—"
