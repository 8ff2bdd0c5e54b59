"""The allocator setting screening gives Polars (screening/__init__.py; docs/run-performance.md)."""
from __future__ import annotations

import os
import subprocess
import sys

PROBE = ("import screening, polars as pl, os; pl.DataFrame({'a': list(range(100000))}).sum(); "
         "print(os.environ['_RJEM_MALLOC_CONF'])")


def _probe(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=60)


def test_the_allocator_accepts_the_setting_and_polars_applies_it_last():
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    done = _probe(env)
    assert done.returncode == 0, done.stderr
    assert "<jemalloc>" not in done.stderr  # jemalloc names every option it does not accept
    conf = done.stdout.strip()
    # Polars puts its own defaults first and ours after them: the later value wins
    assert conf.endswith("background_thread:true,dirty_decay_ms:200,muzzy_decay_ms:0"), conf


def test_a_setting_of_the_user_is_kept():
    done = _probe({**os.environ, "_RJEM_MALLOC_CONF": "dirty_decay_ms:1000"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(",dirty_decay_ms:1000")
    assert "background_thread" not in done.stdout


def test_a_run_of_its_own_has_duckdb_return_freed_memory():
    """A standalone run's DuckDB gives freed memory back from a background thread (about 100 MB
    less held through a province's outputs); inside the service, whose connection it borrows,
    the service's setting is left alone."""
    import duckdb

    from screening.engine import Engine

    setting = "SELECT current_setting('allocator_background_threads')"
    own = Engine()
    assert own.con.sql(setting).fetchall() == [(True,)]
    own.close()
    host = duckdb.connect()
    borrowed = Engine(host)
    assert host.sql(setting).fetchall() == [(False,)]
    borrowed.close()
    host.close()
