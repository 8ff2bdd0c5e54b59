#!/usr/bin/env python3
"""Where the seconds of 预警 (``screening warn``) go: wall and CPU seconds per stage, in one process.

    flock /tmp/bench.lock .venv/bin/python benchmarks/profile_warn.py benchmarks/data/firms1000000-seed1-y2017

Runs ``early_warning(data, 2022)`` and prints each stage's wall time, CPU time (user + system of
every thread: on a shared machine it moves less with the other load than the wall time) and the
peak RSS so far — the stages of the run itself and, inside 标签（真实筛选）, those of each label's
screening (加载规则集 … 生成说明与清单).  Nothing is written.  Use the data bench_warn.py generates.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import resource
import time

screen_module = importlib.import_module("screening.screen")
pipeline = importlib.import_module("screening.warn.pipeline")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="数据目录（bench_warn.py 生成的 Parquet）")
    ap.add_argument("--year", type=int, default=2022)
    args = ap.parse_args()

    cpu_per_stage: dict[str, float] = {}
    timed = screen_module._timed

    @contextlib.contextmanager
    def measured(timings, stage, progress):
        start = _cpu()
        with timed(timings, stage, progress):
            yield
        cpu = _cpu() - start
        cpu_per_stage[stage] = cpu_per_stage.get(stage, 0.0) + cpu
        print(f"  {stage:<20} 墙钟 {timings[stage]:7.2f} s  CPU {cpu:7.2f} s  峰值内存 {_peak_mb():,} MB", flush=True)

    # the run's stages and each label screening's stages are timed by the same helper
    screen_module._timed = pipeline._timed = measured
    start, cpu0 = time.perf_counter(), _cpu()
    result = pipeline.early_warning(args.data, args.year)
    print(f"合计：墙钟 {time.perf_counter() - start:.1f} s，CPU {_cpu() - cpu0:.1f} s，峰值内存 {_peak_mb():,} MB；"
          f"评分 {result.warnings.height:,} 家，训练行 {result.training.height:,}")
    print("各阶段 CPU 秒（标签筛选内的阶段为 4 次之和）：")
    for stage, cpu in cpu_per_stage.items():
        print(f"  {stage:<20} {cpu:7.2f}")


if __name__ == "__main__":
    main()
