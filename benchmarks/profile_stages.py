#!/usr/bin/env python3
"""Per-stage wall, CPU and peak memory of ``screen()`` (issue 15: the middle stages).

    flock /tmp/bench.lock .venv/bin/python benchmarks/profile_stages.py \
        --data benchmarks/data/firms1000000-seed1 --year 2022 [--dump DIR]

Runs ``screen()`` in this process as ``screening run`` does (``keep_tables=False``) and prints,
for each stage, the wall time, the CPU time of the whole process (``time.process_time()``:
DuckDB's and Polars' threads included) and the peak RSS reached within the stage (VmHWM,
reset at each stage's start through /proc/self/clear_refs).  The anomaly check's last step
(``anomaly.assemble``, run after the list) is counted in its stage, as ``screen()`` does.
``--dump DIR`` writes what the run decided (results, list, anomalies, audit, key energy users,
warnings) so that two versions of the code can be compared (``--compare A B``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# screening first: it sets Polars' allocator settings (screening/__init__.py), which Polars reads
# when it loads, as in `screening run`
from screening import anomaly  # noqa: E402

import polars as pl  # noqa: E402
from screening.screen import screen  # noqa: E402


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


class Stages:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, float]] = {}
        self.current: str | None = None
        self.wall = self.cpu = 0.0

    def _close(self) -> None:
        if self.current is not None:
            row = self.rows.setdefault(self.current, {"wall_s": 0.0, "cpu_s": 0.0, "peak_mb": 0.0})
            row["wall_s"] += time.perf_counter() - self.wall
            row["cpu_s"] += time.process_time() - self.cpu
            row["peak_mb"] = max(row["peak_mb"], _status_kb("VmHWM") / 1024)
        self.current = None

    def __call__(self, stage: str | None) -> None:
        self._close()
        _reset_peak()
        self.current, self.wall, self.cpu = stage, time.perf_counter(), time.process_time()


def run(data: Path, year: int, dump: Path | None) -> dict:
    stages = Stages()
    original = anomaly.assemble

    def assemble(*args, **kwargs):
        stages(anomaly.STAGE)
        try:
            return original(*args, **kwargs)
        finally:
            stages(None)

    anomaly.assemble = assemble
    start, cpu0 = time.perf_counter(), time.process_time()
    try:
        s = screen(data, year=year, keep_tables=False, progress=stages)
        stages(None)
    finally:
        anomaly.assemble = original
    total = {"wall_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu0,
             "peak_mb": max(r["peak_mb"] for r in stages.rows.values())}
    with s:
        if dump:
            dump.mkdir(parents=True, exist_ok=True)
            s.engine.copy_to("(SELECT * FROM results_out ORDER BY uscc, rule_id)", dump / "results.parquet",
                             "(FORMAT parquet)")
            s.list.drop("run_id").write_parquet(dump / "list.parquet")
            s.anomalies.drop("run_id").write_parquet(dump / "anomalies.parquet")
            s.audit.write_parquet(dump / "audit.parquet")
            (dump / "run.json").write_text(json.dumps({
                "warnings": s.warnings, "anomaly_summary": s.anomaly_summary, "key_energy": s.key_energy,
                "unverified_limit_hits": s.unverified_limit_hits, "enterprises": s.enterprises,
                "status_counts": s.status_counts()}, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    return {"stages": {k: {m: round(v, 2) for m, v in r.items()} for k, r in stages.rows.items()},
            "total": {m: round(v, 2) for m, v in total.items()}}


def compare(a: Path, b: Path) -> int:
    bad = 0
    for name in ("results", "list", "anomalies", "audit"):
        fa, fb = pl.read_parquet(a / f"{name}.parquet"), pl.read_parquet(b / f"{name}.parquet")
        if name == "results":
            fa, fb = fa.drop("run_id"), fb.drop("run_id")
        same = fa.schema == fb.schema and fa.equals(fb, null_equal=True)
        print(f"{name}: {fa.height} / {fb.height} 行，{'相同' if same else '不同'}")
        bad += not same
    ja, jb = (json.loads((d / "run.json").read_text(encoding="utf-8")) for d in (a, b))
    same = ja == jb
    print(f"run.json: {'相同' if same else '不同'}")
    return int(bad + (not same) > 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path)
    ap.add_argument("--year", type=int, default=2022)
    ap.add_argument("--dump", type=Path, help="write the run's decisions here")
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"), help="compare two --dump directories")
    args = ap.parse_args()
    if args.compare:
        sys.exit(compare(*args.compare))
    if args.data is None:
        ap.error("需要 --data")
    print(json.dumps(run(args.data, args.year, args.dump), ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
