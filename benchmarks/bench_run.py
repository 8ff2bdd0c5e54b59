#!/usr/bin/env python3
"""End-to-end benchmark of ``screening run`` on a province-size synthetic dataset.

    .venv/bin/python benchmarks/bench_run.py                 # 1,000,000 firms × 2019-2021
    .venv/bin/python benchmarks/bench_run.py --firms 200000 --repeat 3

Generates the data once with ``screening synth --format parquet`` (kept in
benchmarks/data/, git-ignored), then times ``screening run`` in a fresh process per
repetition: wall time, peak RSS of that process, and the per-stage timings the run
records in run.json.  Targets (issue 2): whole run < 20 s and < 2 GB peak RSS on the
2-core machine; the rule stage alone a few seconds.  Run on demand, not in CI.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
from pathlib import Path

from _common import HERE, data_dir, generate, measured_run, screening_exe


def run_once(data: Path, out: Path) -> dict:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    wall, peak_mb = measured_run([screening_exe(), "run", "--data", str(data), "--year", "2022", "--out", str(out),
                                  "--db", str(out / "bench.duckdb")])
    record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    return {"wall_s": wall, "peak_rss_mb": peak_mb,
            "stages_s": record["timings_s"], "listed": record["listed"], "enterprises": record["enterprises"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--firms", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()

    data = data_dir(args.firms, args.seed)
    gen = generate(args.firms, args.seed, data)
    runs = [run_once(data, HERE / "out" / f"run{i}") for i in range(args.repeat)]
    stages = {k: statistics.median(r["stages_s"].get(k, 0.0) for r in runs) for k in runs[0]["stages_s"]}
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "firms": args.firms, "years": "2019-2021", "generate_s": round(gen, 1),
        "input_rows": {p.stem: _rows(p) for p in sorted(data.glob("*.parquet"))},
        "wall_s_median": statistics.median(r["wall_s"] for r in runs),
        "peak_rss_mb_max": max(r["peak_rss_mb"] for r in runs),
        "stages_s_median": stages, "listed": runs[0]["listed"], "runs": runs,
    }
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "bench.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"{args.firms:,} 家企业 × 3 年：总用时中位数 {report['wall_s_median']} s，峰值内存 {report['peak_rss_mb_max']} MB，"
          f"清单 {report['listed']:,} 家（{args.repeat} 次运行，{os.cpu_count()} 核）")
    for stage, seconds in stages.items():
        print(f"  {stage:<12} {seconds:7.2f} s")


def _rows(path: Path) -> int:
    import polars as pl

    return pl.scan_parquet(path).select(pl.len()).collect().item()


if __name__ == "__main__":
    main()
