"""What every command shares: the consoles, one-line failures and notices, and the runner that
turns any failure into one Chinese line (screening.cli.zh words the command line's own errors).

Commands live in the screening/cli/<family>.py modules, which import from here;
screening/cli/__init__.py imports the command modules: imports run one way (tests/test_imports.py)."""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.text import Text

from ..errors import ScreeningError, environment_error
from ..ruleset import STATUS_ZH  # noqa: F401  (re-exported to the command modules)

out_console = Console()
err_console = Console(stderr=True)



def _fail(exc: ScreeningError) -> None:
    _error_line(str(exc))
    raise typer.Exit(exc.exit_code)


def _error_line(message: str) -> None:
    # the message as plain text: a path or value with [brackets] is not rich markup
    err_console.print(Text.assemble(("错误：", "bold red"), message), highlight=False, soft_wrap=True)


def _notice(message: str) -> None:
    """One line on stderr that does not stop the command (e.g. leftovers of a crash removed)."""
    err_console.print(Text.assemble(("提示：", "yellow"), message), highlight=False, soft_wrap=True)


#: set by a command that has written and closed every file, its database included (no
#: connection, no thread left), and holds only a large result in memory: freeing it frame by
#: frame at interpreter exit cost a province's `evaluate` ~0.25 s and `run` ~0.3-0.5 s more than
#: ending the process at once (docs/evaluation.md, docs/run-performance.md)
_quick_end = False


def end_quickly() -> None:
    """Let the console entry point end this process without freeing its heap (see above)."""
    global _quick_end
    _quick_end = True


def may_end_quickly() -> bool:
    return _quick_end


def reset_quick_end() -> None:
    global _quick_end
    _quick_end = False


def exit_now(code: int) -> None:
    """End the process at once with ``code``: output flushed, log handlers closed; no
    interpreter teardown.  Only for a command that said :func:`end_quickly`."""
    import logging

    for stream in (sys.stdout, sys.stderr):
        if stream is None:  # started with the stream closed (``>&-``, pythonw): nothing to flush
            continue
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said anyway
            pass
    logging.shutdown()
    os._exit(code)


def run_app(application: typer.Typer) -> None:
    """Run a command line; every failure is one Chinese line on stderr.

    A file-system failure anywhere (``--out`` is a file, a directory is not writable, the
    disk is full; also when a writer wraps it) names the path, with exit 2 when the path
    given cannot be used as given and 1 when the machine refuses (screening.errors).  Other
    unexpected errors are bugs: one line, exit 1, the traceback only with SCREENING_DEBUG."""
    from ..store import private_umask

    from typer._click import exceptions as click_exceptions
    from typer.main import get_command

    from .zh import error_message, localise

    private_umask()  # files it creates (database, WAL, outputs) are its user's only
    args = sys.argv[1:]
    try:
        if args and not {"--help", "-h"} & set(args):
            # a bad SCREENING_TIMEZONE is said before any work, not when a run's last step first prints a time
            from .. import clock

            clock.zone()
        # the command tree with Chinese help frames; usage errors worded here (screening.cli.zh)
        code = localise(get_command(application)).main(args=args, prog_name="screening", standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except SystemExit:
        raise
    except click_exceptions.NoArgsIsHelpError as exc:  # a group called without a command: its help
        print(exc.ctx.get_help())
        sys.exit(2)
    except click_exceptions.ClickException as exc:
        _error_line(error_message(exc, args))
        sys.exit(exc.exit_code)
    except ScreeningError as exc:  # raised outside a command's own handling, e.g. a bad SCREENING_* setting
        _error_line(str(exc))
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        err_console.print("已中断", markup=False, highlight=False)
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("SCREENING_DEBUG"):
            raise
        problem = environment_error(exc)
        if problem is not None:
            _error_line(str(problem))
            sys.exit(problem.exit_code)
        detail = " ".join(str(exc).split())  # one line, whatever the exception's text holds
        err_console.print(f"内部错误：{type(exc).__name__}: {detail}（设置环境变量 SCREENING_DEBUG=1 可查看详细信息）",
                          markup=False, highlight=False, soft_wrap=True)
        sys.exit(1)


@contextmanager
def _database(db: Path):
    """The database file opened read-write; or, while ``screening serve`` holds it, the
    service to hand the write over to (see screening.handover); or one clear line."""
    from ..handover import find
    from ..store import DatabaseLocked, connect

    try:
        con = connect(db)
    except DatabaseLocked as exc:
        service = find(db)
        if service is None:
            _fail(exc)
        yield service
        return
    except ScreeningError as exc:
        _fail(exc)
    try:
        yield con
    finally:
        con.close()
