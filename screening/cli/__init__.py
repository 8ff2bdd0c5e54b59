"""The ``screening`` command (typer + rich).  Messages are Chinese; errors are one line.

One module per command family, each importing what every command shares from
screening/cli/common.py; this module builds the command line from them and registers the
commands in the order ``--help`` lists them.  Imports run one way: the command modules never
import this package's ``__init__`` (tests/test_imports.py)."""
from __future__ import annotations

import typer

from . import analysis, backup, common, data, evaluate, final, measures, projects, run, service, warn
from .common import run_app

app = typer.Typer(
    help="高耗低效企业筛选引擎：读取部门数据，按规则生成《高耗低效整治企业清单》。",
    no_args_is_help=True, add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False,
)

app.command()(run.run)
app.command()(analysis.whatif)
app.command()(projects.projects)
app.command()(analysis.compare)
app.command()(data.synth)
app.command()(data.check)
app.command()(data.lint)
app.add_typer(service.users_app, name="users")
app.command()(service.serve)
app.command("export-final")(final.export_final)
app.command("evaluate")(evaluate.evaluate_command)
app.command("warn")(warn.warn_command)
app.command("measures")(measures.measures_command)
backup.register(app)  # backup, restore, verify, runs prune


def main() -> None:
    """The command line, in this process: every outcome ends in ``SystemExit`` (tests call it)."""
    run_app(app)


def console() -> None:
    """Console entry point (``screening``, ``python -m screening``): :func:`main`, then, when the
    command succeeded and said its process may end at once (``common.end_quickly``), the process
    ends without tearing its heap down (see ``common.exit_now``)."""
    common.reset_quick_end()
    try:
        main()
    except SystemExit as ended:
        if ended.code in (0, None) and common.may_end_quickly():
            common.exit_now(0)
        raise
