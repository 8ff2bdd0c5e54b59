#!/usr/bin/env python3
"""The database copy of a run alone (screening.store._save_run), at province scale (issue 15).

    .venv/bin/python benchmarks/bench_store.py                  # 1,000,000 firms, list year 2022
    .venv/bin/python benchmarks/bench_store.py --firms 200000

Screens once (not timed), writes results.parquet as ``screening run`` does (the copy reads
it), then times ``_save_run`` into a new database file and once more into the same file (a
second run of the year), wall and CPU seconds (``time.process_time``: this process's threads,
i.e. DuckDB's) and the file's size.  Run on demand, on a shared machine under
``flock /tmp/bench.lock``; the data is made by bench_run.py (benchmarks/data/).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _common import HERE, data_dir

sys.path.insert(0, str(HERE.parent))  # the checkout this script is in, not an installed copy

from screening import outputs, store  # noqa: E402
from screening.screen import screen  # noqa: E402
from screening.sqlquote import literal  # noqa: E402

YEAR = 2022


def _timed(save) -> dict[str, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    save()
    return {"wall_s": round(time.perf_counter() - wall, 2), "cpu_s": round(time.process_time() - cpu, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--firms", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", type=Path, help="a data directory (default: benchmarks/data/firms<N>-seed<S>)")
    args = ap.parse_args()
    data = args.data or data_dir(args.firms, args.seed)
    if not any((data / f"enterprises.{kind}").exists() for kind in ("parquet", "csv", "xlsx")):
        sys.exit(f"没有基准数据 {data}：请先运行 benchmarks/bench_run.py 生成")
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        out = Path(tmp)
        with screen(data, YEAR, keep_tables=False) as s:
            outputs.write_results_parquet(s, out)
            record = outputs.run_record(s, {})
            db = out / "bench.duckdb"
            first = _timed(lambda: store._save_run(s, db, record))
            first["db_mb"] = round(db.stat().st_size / 2**20, 1)
            # a second run: its result rows carry its own id (results.parquet names the first run)
            s.run_id += "-again"
            again = out / "results-again.parquet"
            s.engine.copy_to(f"(SELECT * REPLACE ({literal(s.run_id)} AS run_id) FROM read_parquet({literal(s.results_file)}))",
                             again, outputs.RESULTS_PARQUET_OPTIONS)
            s.results_file = again
            second = _timed(lambda: store._save_run(s, db, record))
            second["db_mb"] = round(db.stat().st_size / 2**20, 1)
            rows = sum(sum(counts.values()) for counts in record["status_counts"].values())
            result = {"data": str(data), "results_rows": rows, "enterprises": record["enterprises"],
                      "new_file": first, "second_run_same_file": second}
    print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
