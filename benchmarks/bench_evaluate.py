#!/usr/bin/env python3
"""Benchmark of the 亩均效益综合评价 (``screening evaluate``) on a province-size synthetic dataset.

    .venv/bin/python benchmarks/bench_evaluate.py                    # 1,000,000 firms, data year 2021
    .venv/bin/python benchmarks/bench_evaluate.py --repeat 3 --method huangyan-2022
    .venv/bin/python benchmarks/bench_evaluate.py --excel            # also time a run that writes the workbook

Generates the data once with ``screening synth --format parquet`` (kept in benchmarks/data/,
git-ignored; shared with bench_run.py), then measures:

* **end to end**: the command in a fresh process per repetition (read + validate of the data
  year's rows, compute, write evaluation.csv/.parquet, evaluation_items.parquet — its CSV only
  when it fits in a spreadsheet, not at this size — rejects, evaluation.json):
  wall time, CPU time of all its threads (on a shared machine it moves less with the other
  load than the wall time), peak RSS, and the stage timings the command records in evaluation.json.  Run
  with ``--no-excel``: xlsxwriter needs about 100 s for a million-row workbook; ``--excel``
  adds one run with it;
* **steps alone**, in this process: read + validate once, ``evaluate()`` (median of
  ``--compute-repeat`` runs), then each of the four data files written alone (wall and CPU
  seconds of each step: which step costs what, without the overlap of the command).

Targets: under 10 s on the 2-core machine (issue 3); ``--no-excel`` ≤ 6 s (issue 15; figures
in docs/evaluation.md).  Run on demand, not in CI; on a shared machine under ``flock``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import HERE, data_dir, generate, measured_run_cpu, screening_exe

YEAR = 2021


def run_once(command: list[str], data: Path, out: Path, method: str, excel: bool) -> dict:
    if out.exists():
        shutil.rmtree(out)
    cmd = [*command, "--data", str(data), "--year", str(YEAR), "--method", method, "--out", str(out),
           "--excel" if excel else "--no-excel"]
    wall, peak_mb, cpu = measured_run_cpu(cmd)
    record = json.loads((out / "evaluation.json").read_text(encoding="utf-8"))
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak_mb,
            "stages_s": record["timings_s"], "counts": record["counts"], "excel": excel}


def compute_only(data: Path, method: str, repeat: int) -> dict:
    sys.path.insert(0, str(HERE.parent))
    from screening.evaluation import evaluate, file_writers, load_evaluation_inputs, load_method

    m = load_method(method)
    t, load_cpu = time.perf_counter(), time.process_time()
    inputs = load_evaluation_inputs(data, YEAR, m, cells_ahead=True)  # as the command reads
    load_s = time.perf_counter() - t
    load_cpu = time.process_time() - load_cpu
    times, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        ev = evaluate(inputs, YEAR, m)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    del inputs
    # each data file alone (in the command they are written side by side): wall and CPU seconds
    writers = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, write in file_writers(ev).items():
            t, c = time.perf_counter(), time.process_time()
            write(Path(tmp) / name)
            writers[name] = {"wall_s": round(time.perf_counter() - t, 3), "cpu_s": round(time.process_time() - c, 3)}
    return {"read_validate_s": round(load_s, 2), "read_validate_cpu_s": round(load_cpu, 2),
            "evaluate_s": [round(x, 3) for x in times],
            "evaluate_s_median": round(statistics.median(times), 3),
            "evaluate_cpu_s_median": round(statistics.median(cpu), 3),
            "writers_alone": writers,
            "enterprises": ev.scores.height, "item_rows": ev.items.height}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--firms", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--method", default="yueqing-default")
    ap.add_argument("--repeat", type=int, default=1, help="end-to-end runs without the workbook")
    ap.add_argument("--compute-repeat", type=int, default=3)
    ap.add_argument("--excel", action="store_true", help="also time one end-to-end run that writes the workbook")
    args = ap.parse_args()

    load_before = os.getloadavg()[0]  # the machine may be shared: the other load is reported
    data = data_dir(args.firms, args.seed)
    gen = generate(args.firms, args.seed, data)
    command = [screening_exe(), "evaluate"]
    runs = [run_once(command, data, HERE / "out" / f"evaluate{i}", args.method, excel=False) for i in range(args.repeat)]
    with_excel = run_once(command, data, HERE / "out" / "evaluate_excel", args.method, excel=True) if args.excel else None
    compute = compute_only(data, args.method, args.compute_repeat)
    stages = {k: statistics.median(r["stages_s"].get(k, 0.0) for r in runs) for k in runs[0]["stages_s"]}
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]},
        "firms": args.firms, "data_year": YEAR, "method": args.method, "command": command, "generate_s": round(gen, 1),
        "end_to_end_wall_s_median": statistics.median(r["wall_s"] for r in runs),
        "end_to_end_cpu_s_median": statistics.median(r["cpu_s"] for r in runs),
        "peak_rss_mb_max": max(r["peak_rss_mb"] for r in runs),
        "stages_s_median": stages, "compute_only": compute, "runs": runs, "with_excel": with_excel,
    }
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "bench_evaluate.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"{args.firms:,} 家企业，{YEAR} 年数据，方法 {args.method}（{os.cpu_count()} 核，{args.repeat} 次；"
          f"机器负载 {report['machine']['load_average_1min']}）")
    print(f"  端到端（不写 Excel）：{report['end_to_end_wall_s_median']} s（CPU {report['end_to_end_cpu_s_median']} s），"
          f"峰值内存 {report['peak_rss_mb_max']} MB")
    for stage, seconds in stages.items():
        print(f"    {stage:<24} {seconds:7.2f} s")
    print(f"  单独各步（本进程内）：读取与校验 {compute['read_validate_s']} s（CPU {compute['read_validate_cpu_s']} s）")
    print(f"    计算 evaluate()：中位数 {compute['evaluate_s_median']} s（CPU {compute['evaluate_cpu_s_median']} s；"
          f"{compute['enterprises']:,} 家企业，"
          f"{compute['item_rows']:,} 行得分明细）")
    for name, w in compute["writers_alone"].items():
        print(f"    单独写出 {name:<26} {w['wall_s']:6.2f} s（CPU {w['cpu_s']:.2f} s）")
    if with_excel:
        print(f"  端到端（含 Excel）：{with_excel['wall_s']} s，其中 Excel {with_excel['stages_s'].get('写出 Excel')} s，"
              f"峰值内存 {with_excel['peak_rss_mb']} MB")


if __name__ == "__main__":
    main()
