"""The output directory of a command: files appear in OUT complete, or not at all.

OUT is chosen by the user and may hold other files (the database, an earlier run's files,
the data).  A command therefore writes into a hidden staging folder inside it,
``OUT/.partial-<pid>-<random>/``, and only when everything is written moves each file
into OUT (``os.replace``: atomic per file, on the same file system).  The command's record
(``run.json``, ``evaluation.json``, ``backtest.json``) is removed first and moved last, so
a record in OUT always describes the files beside it.

A failure inside the command removes its staging folder.  A crash (power cut, ``kill -9``)
leaves it behind: the next command writing into the same OUT removes the staging folders of
processes that no longer run, saying so, and lists those it cannot tell are finished.
"""
from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .handover import _alive

STAGING_PREFIX = ".partial-"
#: written last (and an earlier one removed first): their presence means the files are complete
RECORD_FILES = ("run.json", "evaluation.json", "backtest.json")

Notice = Callable[[str], None]


def _owner(folder: Path) -> int | None:
    pid = folder.name[len(STAGING_PREFIX):].split("-", 1)[0]
    return int(pid) if pid.isdigit() else None


def clear_leftovers(out: Path, notice: Notice) -> list[Path]:
    """Remove the staging folders in ``out`` left by crashed commands; returns those removed.

    A folder whose process still runs (or cannot be checked) is listed, not removed."""
    removed = []
    for folder in sorted(out.glob(STAGING_PREFIX + "*")):
        if not folder.is_dir():
            continue
        pid = _owner(folder)
        if pid is not None and pid != os.getpid() and _alive(pid):
            notice(f"{folder} 是进程 {pid} 正在写出的文件（若该进程已结束，可删除此目录）")
            continue
        shutil.rmtree(folder, ignore_errors=True)
        if folder.exists():
            notice(f"未能删除上次中断留下的未完成输出 {folder}，请手动删除")
        else:
            notice(f"已删除上次中断留下的未完成输出 {folder}")
            removed.append(folder)
    return removed


def promote(staging: Path, out: Path) -> list[Path]:
    """Move every file of ``staging`` into ``out`` (records last) and remove ``staging``."""
    names = sorted(p.name for p in staging.iterdir())
    records = [n for n in RECORD_FILES if n in names]
    for name in records:  # an earlier record would describe files that are being replaced
        (out / name).unlink(missing_ok=True)
    moved = []
    for name in [n for n in names if n not in records] + records:
        os.replace(staging / name, out / name)
        moved.append(out / name)
    staging.rmdir()
    return moved


@contextmanager
def staged(out: Path, notice: Notice) -> Iterator[Path]:
    """Yield a staging folder inside ``out``; on success its files move into ``out``.

    ``out`` is created if needed (an OSError, e.g. ``out`` is a file or not writable, reaches
    the caller: see ``screening.errors.from_os_error``).  ``notice`` receives one Chinese line
    per leftover of an earlier crash."""
    out = Path(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    clear_leftovers(out, notice)
    staging = out / f"{STAGING_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        yield staging
        promote(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not any(out.iterdir()):  # a failed command leaves no empty OUT behind
            out.rmdir()
        raise
