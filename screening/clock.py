"""One clock for every time a person reads: China time (Asia/Shanghai), labelled.

The zone can be changed with the environment variable ``SCREENING_TIMEZONE`` (an IANA name,
e.g. ``Asia/Urumqi``); the label then names that zone.  Machine records (run.json,
the database) keep ISO times with their offset; this module is only for what people read."""
from __future__ import annotations

import datetime as dt
import os
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import SettingsError

DEFAULT_ZONE = "Asia/Shanghai"
#: Chinese labels of the zones people here use; any other zone is labelled by its name
LABELS = {"Asia/Shanghai": "北京时间", "Asia/Chongqing": "北京时间", "Asia/Urumqi": "新疆时间"}


def zone_name() -> str:
    return (os.environ.get("SCREENING_TIMEZONE") or DEFAULT_ZONE).strip() or DEFAULT_ZONE


def zone() -> dt.tzinfo:
    name = zone_name()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        if name in (DEFAULT_ZONE, "Asia/Chongqing"):  # no tz database on the machine: China has no DST
            return dt.timezone(dt.timedelta(hours=8), "CST")
        raise SettingsError(f"环境变量 SCREENING_TIMEZONE 的值“{name}”无效：应为 IANA 时区名，如 Asia/Shanghai") from None


def label() -> str:
    name = zone_name()
    return LABELS.get(name, name)


def local(moment: dt.datetime | None = None) -> dt.datetime:
    """``moment`` (now when None) in the people's zone; a naive time is taken as the machine's local time."""
    moment = moment or dt.datetime.now(dt.timezone.utc)
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.astimezone(zone())


def stamp(moment: dt.datetime | None = None, seconds: bool = False) -> str:
    """'2022-05-07 09:30（北京时间）'"""
    fmt = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return f"{local(moment).strftime(fmt)}（{label()}）"


def today(moment: dt.datetime | None = None) -> dt.date:
    return local(moment).date()
