#!/usr/bin/env python3
"""End-to-end benchmark of ``screening run`` on a province-size synthetic dataset, beside a
rules-only pandas script on the same input (issue 15).

    .venv/bin/python benchmarks/bench_run.py                 # 1,000,000 firms × 2019-2021
    .venv/bin/python benchmarks/bench_run.py --firms 200000 --repeat 3
    .venv/bin/python benchmarks/bench_run.py --no-pandas     # without the reference

Generates the data once with ``screening synth --format parquet`` (kept in
benchmarks/data/, git-ignored), then in fresh processes, one at a time: ``screening run``
(wall time, peak RSS, the per-stage timings of run.json) and benchmarks/pandas_reference.py
(the four rules as an analyst writes them with pandas; needs ``pip install -e '.[bench]'``).
Reports the ratio run / pandas and checks that both find the same hits per rule (exit 1
if not).  Writes benchmarks/out/bench_run.json.  Targets (issue 15): the whole run ≤ 15 s
and ≤ 1.5 GB peak RSS on 2 cores, and no slower than the pandas script.  Run on demand
(on a shared machine under ``flock /tmp/bench.lock``), not in CI.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
from pathlib import Path

from _common import HERE, data_dir, generate, measured_run_cpu, screening_exe

YEAR = 2022


def run_once(data: Path, out: Path) -> dict:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    wall, peak_mb, cpu = measured_run_cpu([screening_exe(), "run", "--data", str(data), "--year", str(YEAR),
                                           "--out", str(out), "--db", str(out / "bench.duckdb")])
    record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak_mb, "stages_s": record["timings_s"], "listed": record["listed"],
            "enterprises": record["enterprises"], "hits_per_rule": record["hits_per_rule"],
            "files_mb": {p.name: round(p.stat().st_size / 2**20, 1) for p in sorted(out.iterdir()) if p.is_file()}}


def pandas_once(data: Path, out: Path) -> dict:
    result = out / "pandas_reference.json"
    wall, peak_mb, cpu = measured_run_cpu([sys.executable, str(HERE / "pandas_reference.py"), "--data", str(data),
                                           "--year", str(YEAR), "--json", str(result)])
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak_mb, **json.loads(result.read_text(encoding="utf-8"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--firms", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--no-pandas", action="store_true", help="skip the pandas reference")
    args = ap.parse_args()

    if not args.no_pandas:
        import importlib.util

        if importlib.util.find_spec("pandas") is None:
            sys.exit("参考脚本需要 pandas：.venv/bin/pip install -e '.[bench]'（或加 --no-pandas 只测 screening run）")
    data = data_dir(args.firms, args.seed)
    gen = generate(args.firms, args.seed, data)
    (HERE / "out").mkdir(exist_ok=True)
    runs = [run_once(data, HERE / "out" / f"run{i}") for i in range(args.repeat)]
    refs = [] if args.no_pandas else [pandas_once(data, HERE / "out") for _ in range(args.repeat)]
    stages = {k: statistics.median(r["stages_s"].get(k, 0.0) for r in runs) for k in runs[0]["stages_s"]}
    wall = statistics.median(r["wall_s"] for r in runs)
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "firms": args.firms, "years": "2019-2021", "generate_s": round(gen, 1),
        "input_rows": {p.stem: _rows(p) for p in sorted(data.glob("*.parquet"))},
        "wall_s_median": wall, "cpu_s_median": statistics.median(r["cpu_s"] for r in runs),
        "peak_rss_mb_max": max(r["peak_rss_mb"] for r in runs),
        "stages_s_median": stages, "listed": runs[0]["listed"], "hits_per_rule": runs[0]["hits_per_rule"],
        "runs": runs,
    }
    if refs:
        pandas_wall = statistics.median(r["wall_s"] for r in refs)
        same = all(r["hits_per_rule"] == runs[0]["hits_per_rule"] for r in refs)
        report["pandas_reference"] = {"wall_s_median": pandas_wall,
                                      "cpu_s_median": statistics.median(r["cpu_s"] for r in refs),
                                      "peak_rss_mb_max": max(r["peak_rss_mb"] for r in refs),
                                      "hits_per_rule": refs[0]["hits_per_rule"], "same_hits_as_run": same, "runs": refs}
        report["ratio_run_to_pandas"] = round(wall / pandas_wall, 2)
    (HERE / "out" / "bench_run.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")

    print(f"{args.firms:,} 家企业 × 3 年（{os.cpu_count()} 核，{args.repeat} 次运行取中位数）")
    print(f"  screening run     {wall:7.2f} s（CPU {report['cpu_s_median']:.1f} s）  峰值内存 {report['peak_rss_mb_max']:6} MB   "
          f"清单 {report['listed']:,} 家")
    if refs:
        ref = report["pandas_reference"]
        print(f"  pandas 四条规则   {ref['wall_s_median']:7.2f} s（CPU {ref['cpu_s_median']:.1f} s）  峰值内存 {ref['peak_rss_mb_max']:6} MB   "
              f"run / pandas = {report['ratio_run_to_pandas']}")
    print("  各阶段（run.json timings_s）：")
    for stage, seconds in stages.items():
        print(f"    {stage:<12} {seconds:7.2f} s")
    if refs and not report["pandas_reference"]["same_hits_as_run"]:
        sys.exit(f"pandas 参考脚本的命中数与 screening run 不一致：{refs[0]['hits_per_rule']} ≠ {runs[0]['hits_per_rule']}")


def _rows(path: Path) -> int:
    import polars as pl

    return pl.scan_parquet(path).select(pl.len()).collect().item()


if __name__ == "__main__":
    main()
