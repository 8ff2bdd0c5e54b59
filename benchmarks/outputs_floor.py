#!/usr/bin/env python3
"""What the evidence costs: ``screen()`` followed by the real output stage, or by only the
contract's minimum outputs (issue 15, "还差多少" in docs/run-performance.md).

    flock /tmp/bench.lock .venv/bin/python benchmarks/outputs_floor.py \
        --data benchmarks/data/firms1000000-seed1 --year 2022 --repeat 2

Each round runs, in fresh processes and alternately:

- ``full``: ``screen()`` then ``outputs.write_all`` (every output of ``screening run``, the
  database copy included) — what the command does, without run.json and the final move;
- ``minimum``: the same ``screen()``, then the list files, rejects, rules, the data check's
  notes and the workbook as today, but results.parquet, results.csv and the database's results
  with only the contract's five columns (``uscc, rule_id, status, value, threshold``: no
  industry average, no two years' values, no Chinese reason), and ``run_enterprises`` as today.

The difference is the price of the evidence on each result row; ``minimum`` is a floor no
implementation that writes the contract's outputs goes below on this machine.  It is an
experiment, not an output the product could write (the evidence is what makes the list
explainable).  Prints one JSON line per run: wall and CPU seconds of ``screen()`` and of the
writing, and the wall time from the start of the process.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _minimum(s, out: Path, db: Path) -> None:
    from screening import outputs
    from screening.sqlquote import literal

    s.status_counts(), s.enterprises  # computed before the results table goes, as write_all does
    with ThreadPoolExecutor(max_workers=2) as pool:
        for write in (outputs.write_list, outputs.write_rejects, outputs.write_rules, outputs.write_anomalies):
            write(s, out)
        parquet = out / "results.parquet"
        s.engine.copy_to("(SELECT uscc, rule_id, status, value, threshold FROM results_out)", parquet,
                         outputs.RESULTS_PARQUET_OPTIONS)
        s.results_file = parquet
        outputs.release_results(s)

        def save() -> None:
            con = s.engine.cursor()
            con.execute("SET SESSION preserve_insertion_order = true")
            con.execute(f"ATTACH {literal(db)} AS floor_db")
            con.execute("BEGIN TRANSACTION")
            con.execute("CREATE TABLE floor_db.run_results AS SELECT p.firm_id::INTEGER AS firm, r.* EXCLUDE (uscc) "
                        f"FROM read_parquet({literal(parquet)}) r JOIN firm_panel p ON p.uscc = r.uscc")
            con.execute(f"CREATE TABLE floor_db.run_enterprises AS SELECT {literal(s.run_id)} AS run_id, "
                        "firm_id::INTEGER AS firm, * EXCLUDE (firm_id) FROM firm_panel")
            con.execute("COMMIT")
            con.execute("DETACH floor_db")
            con.close()

        saved = pool.submit(save)
        excel = pool.submit(outputs.write_excel, s, out)
        s.engine.copy_to(f"(SELECT * FROM read_parquet({literal(parquet)}))", out / "results.csv", "(FORMAT csv, HEADER)")
        saved.result()
        excel.result()


def once(mode: str, data: Path, year: int) -> dict:
    start = time.perf_counter()
    from screening import outputs
    from screening.screen import screen

    with tempfile.TemporaryDirectory(prefix="floor-") as tmp:
        out, db = Path(tmp) / "out", Path(tmp) / "floor.duckdb"
        out.mkdir()
        w0, c0 = time.perf_counter(), time.process_time()
        s = screen(data, year=year, keep_tables=False)
        w1, c1 = time.perf_counter(), time.process_time()
        with s:
            if mode == "full":
                error = outputs.write_all(s, out, db)
                if error is not None:
                    raise error
            else:
                _minimum(s, out, db)
        w2, c2 = time.perf_counter(), time.process_time()
        sizes = {p.name: round(p.stat().st_size / 2**20, 1) for p in sorted(out.iterdir()) if p.is_file()}
        sizes["database"] = round(db.stat().st_size / 2**20, 1)
    return {"mode": mode, "screen_wall_s": round(w1 - w0, 2), "screen_cpu_s": round(c1 - c0, 2),
            "write_wall_s": round(w2 - w1, 2), "write_cpu_s": round(c2 - c1, 2),
            "wall_from_start_s": round(w2 - start, 2), "files_mb": sizes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--year", type=int, default=2022)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--mode", choices=("full", "minimum"), help="one run in this process (used by the rounds)")
    args = ap.parse_args()
    if args.mode:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(once(args.mode, args.data, args.year), ensure_ascii=False))
        return
    for _ in range(args.repeat):
        for mode in ("full", "minimum"):
            done = subprocess.run([sys.executable, __file__, "--data", str(args.data), "--year", str(args.year),
                                   "--mode", mode], capture_output=True, text=True, check=True)
            print(done.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
