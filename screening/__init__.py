"""高耗低效企业筛选引擎 (screening engine for high-energy-consumption, low-efficiency firms).

The Python API, for notebooks (the command line uses the same functions)::

    import screening
    s = screening.screen("sample_data", 2022)          # a Screening; use it with `with` or close()
    s.list                                              # the 整治企业清单 (Polars)
    s.results.filter(pl.col("uscc") == code)            # every rule's status, evidence and reason
    inputs = screening.load_inputs("sample_data")       # validated tables (all years) and rejects
    table, moved = screening.whatif("above_scale_low_tax_per_mu.ratio=0.05,0.1,0.2")
    screening.compare_runs("screening.duckdb", 2021, 2022)   # entered / left / stayed, and why
    screening.export_excel({"清单": s.list}, "out/清单.xlsx")  # tables for reports, Chinese headers
    w = screening.early_warning("sample_data", 2022)   # 预警 (advisory): w.warnings, w.backtest, w.training
    f = screening.final_list("screening.duckdb", 2022)  # 定稿清单: f.firms, f.hits, f.progress (targets)
    p = screening.review_projects("sample_data/projects")  # 拟建项目节能审查 (一.5): p.results, p.rejects
    screening.key_energy_users(energy, stats)           # 重点用能单位 with their intensity trend

Charts (PNG + SVG, Chinese labels, a CJK font checked glyph by glyph) are in
``screening.charts``, imported on demand because matplotlib takes a moment to load.
"""

import os as _os
from pathlib import Path as _Path

# Polars allocates through jemalloc and asks it to keep freed pages for 0.5 s, then to hold
# them as "muzzy" (still counted in the process's memory) for 1 s more.  A province's run
# would then hold each stage's freed Polars memory beside the next stage's DuckDB memory
# (DuckDB has its own allocator).  A background thread returning them after 0.2 s, with no
# muzzy stay, lowers the peak of a 1 M-firm run by about 180 MB at no measurable CPU cost
# (docs/run-performance.md).  Polars reads it when it loads (appending it to its own
# defaults), so it is set before any import of Polars here; a value the user set is kept.
_os.environ.setdefault("_RJEM_MALLOC_CONF", "background_thread:true,dirty_decay_ms:200,muzzy_decay_ms:0")

from ._version import __version__  # noqa: F401

# bound here, after the submodules of the same names, so that screening.screen is the function:
# not loaded on first use like the two below, because a submodule first imported by anyone
# else (``from screening.screen import …``) would become the package's attribute instead
from .ruleset import load_ruleset  # noqa: E402
from .screen import Screening, screen  # noqa: E402
from .whatif import whatif  # noqa: E402


def __getattr__(name: str):
    """``compare_runs`` and ``export_excel``, loaded on first use (PEP 562): compare pulls in the
    database layer and export the Excel writer (xlsxwriter), about 0.1 s that every command paid
    at start-up, ``screening evaluate`` included."""
    if name == "compare_runs":
        from .compare import compare_runs as value
    elif name == "export_excel":
        from .export import export_excel as value
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), "compare_runs", "export_excel"})


def load_inputs(data_dir: str | _Path, keep_years: set[int] | None = None):
    """Read and validate every table in ``data_dir`` (all years unless ``keep_years``)."""
    from .ingest import read_dir
    from .validate import validate

    return validate(read_dir(_Path(data_dir), {"enterprises"}), keep_years=keep_years)


def early_warning(data_dir: str | _Path | None = None, year: int | None = None, **options):
    """预警 (advisory): each firm's risk of the list of ``year + 1`` from the data up to ``year - 1``.

    Returns a :class:`screening.warn.WarnResult` (``warnings``: Polars frame, ``backtest``:
    metrics, ``training``: the training rows, ``model``).  Options: ``ruleset``, ``config``,
    ``model`` (a saved model.joblib), ``inputs``.  scikit-learn is imported on first use.
    """
    from .warn import early_warning as run

    return run(data_dir, year, **options)


def final_list(db: str | _Path, year: int):
    """The finalized (定稿) list of ``year`` in the service's database, opened read-only.

    Returns a :class:`screening.final.FinalList`: ``firms`` (Polars, in print order), ``hits``
    (each firm's hit rules with values, thresholds and citations) and ``progress`` toward the
    year's targets (listed, final, plans, completed; land and energy the plans expect to free and
    the completed plans freed; the listed and final firms' own land and energy)."""
    from .final import read_final
    from .store import connect

    con = connect(_Path(db), read_only=True)
    try:
        return read_final(con, year)
    finally:
        con.close()



def review_projects(data_dir: str | _Path, ruleset: str | _Path | None = None, overrides: list[str] | None = None):
    """拟建项目节能审查 (seed 一.5) of the ``projects`` table in ``data_dir``: a
    :class:`screening.projects.ProjectReview` (``results``: one row per project as projects.csv,
    ``rejects``).  ``overrides``: ``projects.NAME=VALUE`` strings, like ``--set``."""
    from .projects import review

    return review(_Path(data_dir), ruleset, overrides)


def key_energy_users(energy, stats, ruleset: str | _Path | None = None, overrides: list[str] | None = None):
    """重点用能单位: firm-years of ``energy`` (uscc, year, energy_tce) at or above the rule set's
    threshold, with energy per 万元 of value added (``stats``: uscc, year, value_added) and ``rising``."""
    from .projects import key_energy_users as run

    return run(energy, stats, ruleset, overrides)



__all__ = ["Screening", "compare_runs", "early_warning", "export_excel", "final_list", "key_energy_users",
           "load_inputs", "load_ruleset", "review_projects", "screen", "whatif"]
