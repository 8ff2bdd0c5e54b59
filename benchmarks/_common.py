"""Shared by the benchmark scripts: the data generator and a measured run of a command."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# a fresh wrapper process per run, so that its children's peak RSS (and CPU time) is this run's alone
_WRAPPER = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(u.ru_maxrss, u.ru_utime + u.ru_stime)\n"
    "sys.exit(rc)\n"
)


def screening_exe() -> str:
    exe = Path(sys.executable).parent / "screening"
    return str(exe) if exe.exists() else shutil.which("screening") or "screening"


def data_dir(firms: int, seed: int, first_year: int = 2019) -> Path:
    return HERE / "data" / (f"firms{firms}-seed{seed}" + (f"-y{first_year}" if first_year != 2019 else ""))


def generate(firms: int, seed: int, data: Path, first_year: int = 2019) -> float:
    """Province-size Parquet data, ``first_year``-2021, generated once (benchmarks/data/ is git-ignored)."""
    if (data / "enterprises.parquet").exists():
        return 0.0
    t = time.perf_counter()
    subprocess.run([screening_exe(), "synth", "--firms", str(firms), "--seed", str(seed), "--out", str(data),
                    "--format", "parquet", "--first-year", str(first_year), "--last-year", "2021", "--clean"],
                   check=True)
    return time.perf_counter() - t


def measured_run(cmd: list[str]) -> tuple[float, int]:
    """Run ``cmd``; return (wall seconds, peak RSS in MB).  Exits with its stderr on failure."""
    wall, peak, _cpu = measured_run_cpu(cmd)
    return wall, peak


def measured_run_cpu(cmd: list[str]) -> tuple[float, int, float]:
    """(wall seconds, peak RSS in MB, CPU seconds of all its threads): on a shared machine the
    CPU time moves less with the other load than the wall time does."""
    # as installed: Python's bytecode cached (pip compiles it; a developer's PYTHONDONTWRITEBYTECODE
    # would make every run compile the project's modules again, about 0.1 s)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, *cmd], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[:2])} failed ({proc.returncode}):\n{proc.stderr}")
    maxrss, cpu = proc.stdout.strip().splitlines()[-1].split()
    return round(wall, 2), round(int(maxrss) / 1024), round(float(cpu), 2)
