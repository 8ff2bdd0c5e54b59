#!/usr/bin/env python3
"""Benchmark of 预警 (``screening warn``) at province scale, and the cost of its training sample.

    .venv/bin/python benchmarks/bench_warn.py                       # 1,000,000 firms × 5 years, then the AUC check
    .venv/bin/python benchmarks/bench_warn.py --firms 300000 --skip-auc
    flock /tmp/bench.lock .venv/bin/python benchmarks/bench_warn.py # on a shared machine: one heavy run at a time

Generates the data once with ``screening synth --format parquet`` for 2017–2021 (kept in
benchmarks/data/, git-ignored), then measures, each in a fresh process:

* **end to end** on ``--firms`` (default 1,000,000): ``screening warn --year 2022`` (data up to
  2021, risk of the 2023 list; training feature years 2017–2020): wall time, peak RSS, and the
  stage timings the command records in warn_run.json, with the training sample it drew;
* **the sample's cost in accuracy** on ``--auc-firms`` (default 300,000): the same command with
  the default sample and with ``--sample-rows 0`` (every training row); the backtest AUC of each
  candidate and of the chosen model, and their difference.

Targets (issue 15): 1,000,000 firms × 5 years in ≤ 120 s and ≤ 4 GB on 2 cores; the sampled
model's backtest AUC within 0.005 of the unsampled model's on 300,000 firms.  Writes
benchmarks/out/bench_warn.json.  Run on demand, not in CI.  Where the seconds go, with the CPU
seconds of each stage and of each label screening's stages: benchmarks/profile_warn.py.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
from pathlib import Path

from _common import HERE, data_dir, generate, measured_run_cpu, screening_exe

YEAR = 2022  # data 2017–2021
FIRST_YEAR = 2017
TARGET_WALL_S, TARGET_RSS_MB, TARGET_AUC_GAP = 120, 4096, 0.005


def run_once(data: Path, out: Path, sample_rows: int | None = None) -> dict:
    if out.exists():
        shutil.rmtree(out)
    cmd = [screening_exe(), "warn", "--data", str(data), "--year", str(YEAR), "--out", str(out)]
    if sample_rows is not None:
        cmd += ["--sample-rows", str(sample_rows)]
    wall, peak_mb, cpu = measured_run_cpu(cmd)
    record = json.loads((out / "warn_run.json").read_text(encoding="utf-8"))
    bt = json.loads((out / "backtest.json").read_text(encoding="utf-8"))
    return {
        "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak_mb, "stages_s": record["timings_s"],
        "firms_scored": record["firms_scored"], "training_rows": record["training_rows"],
        "training_sample": record["training_sample"], "backtest_sample": record["backtest_sample"],
        "backtest_rows": bt["rows"], "chosen": bt["chosen"],
        "auc": {name: m["auc"] for name, m in bt["candidates"].items()},
        "auc_chosen": bt["candidates"][bt["chosen"]]["auc"], "auc_baseline": bt["baseline"]["auc"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--firms", type=int, default=1_000_000)
    ap.add_argument("--auc-firms", type=int, default=300_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1, help="end-to-end runs on --firms")
    ap.add_argument("--skip-auc", action="store_true", help="no sampled-vs-unsampled comparison")
    ap.add_argument("--skip-scale", action="store_true", help="only the sampled-vs-unsampled comparison")
    args = ap.parse_args()

    report: dict = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_at_start": [round(v, 2) for v in os.getloadavg()]},
        "year": YEAR, "data_years": [FIRST_YEAR, YEAR - 1],
        "targets": {"wall_s": TARGET_WALL_S, "peak_rss_mb": TARGET_RSS_MB, "auc_gap": TARGET_AUC_GAP},
    }
    out_root = HERE / "out"
    if not args.skip_scale:
        data = data_dir(args.firms, args.seed, FIRST_YEAR)
        gen = generate(args.firms, args.seed, data, FIRST_YEAR)
        runs = [run_once(data, out_root / f"warn{i}") for i in range(args.repeat)]
        stages = {k: statistics.median(r["stages_s"].get(k, 0.0) for r in runs) for k in runs[0]["stages_s"]}
        report["scale"] = {
            "firms": args.firms, "generate_s": round(gen, 1),
            "wall_s_median": round(statistics.median(r["wall_s"] for r in runs), 2),
            "cpu_s_median": round(statistics.median(r["cpu_s"] for r in runs), 1),
            "peak_rss_mb_max": max(r["peak_rss_mb"] for r in runs),
            "stages_s_median": stages, "runs": runs,
        }
    if not args.skip_auc:
        data = data_dir(args.auc_firms, args.seed, FIRST_YEAR)
        gen = generate(args.auc_firms, args.seed, data, FIRST_YEAR)
        sampled = run_once(data, out_root / "warn_sampled")
        every = run_once(data, out_root / "warn_unsampled", sample_rows=0)
        report["auc"] = {
            "firms": args.auc_firms, "generate_s": round(gen, 1), "sampled": sampled, "unsampled": every,
            "gap_chosen": round(every["auc_chosen"] - sampled["auc_chosen"], 4),
            "gap_per_candidate": {n: round(every["auc"][n] - sampled["auc"][n], 4) for n in every["auc"]},
        }
    report["machine"]["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    out_root.mkdir(exist_ok=True)
    (out_root / "bench_warn.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")

    print(f"screening warn --year {YEAR}（数据 {FIRST_YEAR}—{YEAR - 1} 年，{os.cpu_count()} 核）")
    if "scale" in report:
        s = report["scale"]
        ok = s["wall_s_median"] <= TARGET_WALL_S and s["peak_rss_mb_max"] <= TARGET_RSS_MB
        print(f"  {s['firms']:,} 家企业：{s['wall_s_median']} s（CPU {s['cpu_s_median']} s），峰值内存 {s['peak_rss_mb_max']} MB"
              f"（目标 ≤ {TARGET_WALL_S} s、≤ {TARGET_RSS_MB} MB：{'达到' if ok else '未达到'}）")
        for stage, seconds in s["stages_s_median"].items():
            print(f"    {stage:<24} {seconds:7.2f} s")
    if "auc" in report:
        a = report["auc"]
        for label, run in (("抽样", a["sampled"]), ("不抽样", a["unsampled"])):
            print(f"  {a['firms']:,} 家企业，{label}：{run['wall_s']} s，峰值 {run['peak_rss_mb']} MB，"
                  f"训练 {run['training_sample']['rows']:,}/{run['training_sample']['population_rows']:,} 行，"
                  f"AUC {run['auc']}（选用 {run['chosen']}）")
        ok = abs(a["gap_chosen"]) <= TARGET_AUC_GAP
        print(f"  选用模型 AUC 差（不抽样 − 抽样）：{a['gap_chosen']:+.4f}（目标 ≤ {TARGET_AUC_GAP}：{'达到' if ok else '未达到'}）")


if __name__ == "__main__":
    main()
