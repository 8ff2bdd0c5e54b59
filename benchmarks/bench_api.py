#!/usr/bin/env python3
"""Load test of the service (``screening serve``, one uvicorn worker) on loopback.

    .venv/bin/python benchmarks/bench_api.py                  # 1,000,000 firms, 20 s per scenario
    .venv/bin/python benchmarks/bench_api.py --duration 10 --client python

Builds once (cached in benchmarks/out/api/) a database with ``screening run --year 2022``
on the synthetic province-size data, an admin user and a township user for 柳市镇; then
starts ``screening serve`` on 127.0.0.1 and a free port, and loads three scenarios, each
bounded in time and in request count, after a short unmeasured warm-up:

  record    GET /api/v1/enterprises/{uscc}?year=2022, random listed and unlisted firms (admin)
  list      GET /api/v1/lists/2022?page=N&page_size=50, random pages of the whole list (admin)
  township  the same for the 柳市镇 user, random pages of its own list

The load generator is ``wrk`` when installed (``apt-get install -y wrk``), else a Python
client (httpx, one keep-alive client per thread); both keep ``--connections`` requests in
flight.  Reports requests/s, p50/p90/p99 latency and errors (non-2xx and socket errors) per
scenario, prints a summary and writes benchmarks/out/bench_api.json.  The server is always
stopped at the end.  Targets (issue): record route ≥ 500 requests/s with p99 < 50 ms, one
worker on the 2-core machine.  Run on demand, not in CI.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from _common import HERE, data_dir, generate, measured_run, screening_exe

YEAR = 2022
TOWNSHIP = "柳市镇"
PAGE_SIZE = 50
OUT = HERE / "out" / "api"
TARGET_RPS, TARGET_P99_MS = 500, 50.0


# --------------------------------------------------------------------------- build (cached)

def build(firms: int, seed: int, rebuild: bool) -> dict:
    """The database, its run and the two users' tokens; built once, reused while the marker matches."""
    marker = OUT / "build.json"
    db = OUT / f"firms{firms}-seed{seed}.duckdb"
    if not rebuild and marker.exists() and db.exists():
        info = json.loads(marker.read_text(encoding="utf-8"))
        if info.get("firms") == firms and info.get("seed") == seed and info.get("db") == str(db):
            info["cached"] = True
            return info
    data = data_dir(firms, seed)
    gen = generate(firms, seed, data)
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    print(f"构建数据库：screening run --year {YEAR}（{firms:,} 家企业）…", flush=True)
    wall, peak = measured_run([screening_exe(), "run", "--data", str(data), "--year", str(YEAR),
                               "--out", str(OUT / "run"), "--db", str(db)])
    info = {"firms": firms, "seed": seed, "db": str(db), "generate_s": round(gen, 1),
            "run_wall_s": wall, "run_peak_rss_mb": peak,
            "admin_token": _add_user(db, "bench-admin", "admin"),
            "township_token": _add_user(db, "bench-township", "township", TOWNSHIP)}
    marker.write_text(json.dumps(info, ensure_ascii=False, indent=2), encoding="utf-8")
    info["cached"] = False
    return info


def _add_user(db: Path, name: str, role: str, township: str | None = None) -> str:
    cmd = [screening_exe(), "users", "add", "--db", str(db), "--name", name, "--role", role]
    if township:
        cmd += ["--township", township]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if proc.returncode != 0 or not proc.stdout.strip():
        sys.exit(f"screening users add {name} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout.strip().splitlines()[-1].strip()  # the token is the last stdout line


def sample(db: Path, n: int, seed: int) -> dict:
    """Firms and page counts for the scenarios, read before the server takes the file's lock."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        run = con.execute("SELECT run_id FROM runs WHERE list_year = ? ORDER BY created_at DESC, run_id DESC LIMIT 1",
                          [YEAR]).fetchall()[0][0]
        q = ("SELECT e.uscc FROM run_enterprises e {join} WHERE e.run_id = $run "
             "ORDER BY hash(e.uscc, $seed) LIMIT $n")
        listed = con.execute(q.format(join="SEMI JOIN run_list l ON l.run_id = e.run_id AND l.uscc = e.uscc"),
                           {"run": run, "seed": seed, "n": n}).fetchall()
        unlisted = con.execute(q.format(join="ANTI JOIN run_list l ON l.run_id = e.run_id AND l.uscc = e.uscc"),
                             {"run": run, "seed": seed, "n": n}).fetchall()
        total = con.execute("SELECT count(*) FROM run_list WHERE run_id = ?", [run]).fetchall()[0][0]
        town = con.execute("SELECT count(*) FROM run_list WHERE run_id = ? AND township = ?",
                           [run, TOWNSHIP]).fetchall()[0][0]
        firms = con.execute("SELECT count(*) FROM run_enterprises WHERE run_id = ?", [run]).fetchall()[0][0]
        tables = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                  for t in ("run_enterprises", "run_results", "run_list")}
    finally:
        con.close()
    return {"run_id": run, "listed": [r[0] for r in listed], "unlisted": [r[0] for r in unlisted],
            "list_total": total, "list_pages": max(1, math.ceil(total / PAGE_SIZE)),
            "township_total": town, "township_pages": max(1, math.ceil(town / PAGE_SIZE)),
            "enterprises": firms, "table_rows": tables}


# --------------------------------------------------------------------------- server

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``screening serve`` as a child process; its output goes to a log file (never to a pipe that could fill)."""

    def __init__(self, db: Path, log: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115  (open for the server's lifetime, closed in stop())
        self.proc = subprocess.Popen([screening_exe(), "serve", "--db", str(db), "--host", "127.0.0.1",
                                      "--port", str(self.port)],
                                     stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_healthy(self, timeout: float = 90.0) -> float:
        import httpx

        t = time.perf_counter()
        while time.perf_counter() - t < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"screening serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.base + "/api/v1/health", timeout=2).status_code == 200:
                    return time.perf_counter() - t
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"/api/v1/health did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def wait_log(self, text: str, timeout: float) -> float:
        t = time.perf_counter()
        while time.perf_counter() - t < timeout:
            self._log.flush()
            if text in self.log_path.read_text(encoding="utf-8", errors="replace"):
                return time.perf_counter() - t
            if self.proc.poll() is not None:
                raise RuntimeError(f"screening serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            time.sleep(0.2)
        raise RuntimeError(f"the server did not log {text!r} within {timeout:.0f} s:\n{self.log_tail()}")

    def cpu_seconds(self) -> float:
        """user + system CPU time of the server process so far."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return float("nan")

    def rss_mb(self) -> float:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
        except OSError:
            pass
        return float("nan")

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # uvicorn shuts down cleanly (lifespan closes the DB)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


# --------------------------------------------------------------------------- load generators



@contextmanager
def serving(db: Path, log: Path):
    """``screening serve`` on ``db``, started, healthy and with its newest run read into memory:
    yields (server, seconds to get there); always stopped, also on SIGTERM/SIGHUP."""
    server = Server(db, log)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}

    def _terminate(signum, _frame):
        raise SystemExit(128 + signum)  # unwinds through the finally below, which stops the server

    for sig in previous:
        signal.signal(sig, _terminate)
    try:
        startup = server.wait_healthy()
        startup += server.wait_log("已将运行", timeout=600)  # the newest run is read into memory in the background
        yield server, startup
        if server.proc.poll() is not None:
            raise RuntimeError(f"screening serve died during the test:\n{server.log_tail()}")
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
WRK_LUA = r"""
local paths, token, max_requests = {}, "%(token)s", %(max_requests)d
for line in io.lines("%(paths)s") do paths[#paths + 1] = line end
local headers = {["Authorization"] = "Bearer " .. token, ["Accept"] = "application/json"}
local sent, threads = 0, {}
statuses = {}  -- globals: done() reads each thread's copy with thread:get()
local ffi = require("ffi")  -- wrk runs LuaJIT: a monotonic clock, to time a run that stops at the request cap
ffi.cdef("typedef struct { long tv_sec; long tv_nsec; } bench_ts; int clock_gettime(int, bench_ts *);")
local function now_us()
  local t = ffi.new("bench_ts"); ffi.C.clock_gettime(1, t)
  return tonumber(t.tv_sec) * 1e6 + tonumber(t.tv_nsec) / 1e3
end
math.randomseed(%(seed)d)

function setup(thread)
  threads[#threads + 1] = thread
  thread:set("tid", #threads)
end
function init(args)
  math.randomseed(%(seed)d * 1000 + (tid or 0))
  started = now_us()
end
function request()
  return wrk.format("GET", paths[math.random(#paths)], headers)
end
function response(status, hdrs, body)
  statuses[status] = (statuses[status] or 0) + 1
  sent = sent + 1
  if max_requests > 0 and sent >= max_requests and not stopped then
    stopped = now_us()
    wrk.thread:stop()
  end
end
function done(summary, latency, requests)
  local merged, first, last, capped = {}, nil, nil, true
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do merged[tostring(k)] = (merged[tostring(k)] or 0) + v end
    local a, b = t:get("started"), t:get("stopped")
    if a and (not first or a < first) then first = a end
    if b and (not last or b > last) then last = b end
    if not b then capped = false end
  end
  -- all threads stopped at the cap: wrk still reports its full -d, so time the run here
  local duration = summary.duration
  if capped and first and last then duration = math.floor(last - first) end
  local parts = {}
  for k, v in pairs(merged) do parts[#parts + 1] = string.format('"%%s": %%d', k, v) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %%d, "duration_us": %%d, "capped": %%s, "bytes": %%d, "p50_us": %%d, "p90_us": %%d, "p99_us": %%d, ' ..
    '"max_us": %%d, "mean_us": %%.1f, "connect": %%d, "read": %%d, "write": %%d, "status": %%d, "timeout": %%d, ' ..
    '"statuses": {%%s}}\n',
    summary.requests, duration, tostring(capped), summary.bytes, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout,
    table.concat(parts, ", ")))
end
"""


def run_wrk(base: str, paths: list[str], token: str, duration: float, connections: int, threads: int,
            max_requests: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_api_") as tmp:
        plist = Path(tmp) / "paths.txt"
        plist.write_text("\n".join(paths) + "\n", encoding="utf-8")
        script = Path(tmp) / "load.lua"
        per_thread = math.ceil(max_requests / threads) if max_requests else 0
        script.write_text(WRK_LUA % {"token": token, "paths": plist, "max_requests": per_thread, "seed": seed},
                          encoding="utf-8")
        cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "10s",
               "-s", str(script), base + "/"]
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=duration + 60)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    r = json.loads(line.removeprefix("BENCH_JSON "))
    seconds = r["duration_us"] / 1e6
    statuses = {k: v for k, v in sorted(r["statuses"].items())}
    non2xx = sum(v for k, v in statuses.items() if not k.startswith("2"))
    socket_errors = r["connect"] + r["read"] + r["write"] + r["timeout"]
    return {"requests": r["requests"], "seconds": round(seconds, 2), "rps": round(r["requests"] / seconds, 1),
            "stopped_at_cap": r["capped"],
            "p50_ms": r["p50_us"] / 1000, "p90_ms": r["p90_us"] / 1000, "p99_ms": r["p99_us"] / 1000,
            "max_ms": r["max_us"] / 1000, "mean_ms": round(r["mean_us"] / 1000, 3),
            "errors": non2xx + socket_errors, "non_2xx": non2xx, "socket_errors": socket_errors,
            "statuses": statuses, "mean_bytes": round(r["bytes"] / max(1, r["requests"]))}


def run_python(base: str, paths: list[str], token: str, duration: float, connections: int,
               max_requests: int, seed: int) -> dict:
    import httpx

    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    stop_at = time.perf_counter() + duration
    budget = iter(range(max_requests)) if max_requests else None
    lock = threading.Lock()

    def worker(i: int) -> tuple[list[float], Counter, int]:
        rng = random.Random(seed * 1000 + i)
        lat, statuses, size = [], Counter(), 0
        with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
            while time.perf_counter() < stop_at:
                if budget is not None:
                    with lock:
                        if next(budget, None) is None:
                            break
                t = time.perf_counter()
                try:
                    resp = client.get(rng.choice(paths))
                    statuses[str(resp.status_code)] += 1
                    size += len(resp.content)
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1
                lat.append(time.perf_counter() - t)
        return lat, statuses, size

    t0 = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        parts = list(pool.map(worker, range(connections)))
    seconds = time.perf_counter() - t0
    lat = sorted(x for p in parts for x in p[0])
    statuses = sum((p[1] for p in parts), Counter())
    n = len(lat)

    def pct(q: float) -> float:
        return round(lat[min(n - 1, max(0, math.ceil(q / 100 * n) - 1))] * 1000, 3) if n else float("nan")

    non2xx = sum(v for k, v in statuses.items() if k.isdigit() and not k.startswith("2"))
    socket_errors = sum(v for k, v in statuses.items() if not k.isdigit())
    return {"requests": n, "seconds": round(seconds, 2), "rps": round(n / seconds, 1),
            "stopped_at_cap": bool(max_requests) and n >= max_requests, "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99), "max_ms": pct(100),
            "mean_ms": round(statistics.fmean(lat) * 1000, 3) if n else float("nan"),
            "errors": non2xx + socket_errors, "non_2xx": non2xx, "socket_errors": socket_errors,
            "statuses": dict(sorted(statuses.items())), "mean_bytes": round(sum(p[2] for p in parts) / max(1, n))}


# --------------------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--firms", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of measured load per scenario")
    ap.add_argument("--max-requests", type=int, default=200_000, help="request cap per scenario (0: none)")
    ap.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each scenario")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--wrk-threads", type=int, default=1)
    ap.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    ap.add_argument("--sample", type=int, default=5000, help="listed and unlisted firms each, for the record route")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the cached database and users")
    args = ap.parse_args()

    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    elif client == "wrk" and not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install -y wrk), use --client python")

    info = build(args.firms, args.seed, args.rebuild)
    db = Path(info["db"])
    s = sample(db, args.sample, args.seed)
    rng = random.Random(args.seed)
    record_paths = [f"/api/v1/enterprises/{u}?year={YEAR}" for u in s["listed"] + s["unlisted"]]
    rng.shuffle(record_paths)
    scenarios = {
        "record": (info["admin_token"], record_paths,
                   (f"GET /api/v1/enterprises/{{uscc}}?year={YEAR}，随机 {len(s['listed'])} 家在单 + "
                    f"{len(s['unlisted'])} 家不在单企业（admin）")),
        "list": (info["admin_token"],
                 [f"/api/v1/lists/{YEAR}?page={p}&page_size={PAGE_SIZE}" for p in range(1, s["list_pages"] + 1)],
                 f"GET /api/v1/lists/{YEAR}?page=N&page_size={PAGE_SIZE}，N 随机取 1..{s['list_pages']}（admin）"),
        "township": (info["township_token"],
                     [f"/api/v1/lists/{YEAR}?page={p}&page_size={PAGE_SIZE}" for p in range(1, s["township_pages"] + 1)],
                     f"{TOWNSHIP} 用户的清单，N 随机取 1..{s['township_pages']}（township）"),
    }

    def load(base: str, token: str, paths: list[str], seconds: float, cap: int) -> dict:
        if client == "wrk":
            return run_wrk(base, paths, token, seconds, args.connections, args.wrk_threads, cap, args.seed)
        return run_python(base, paths, token, seconds, args.connections, cap, args.seed)

    OUT.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    with serving(db, OUT / "server.log") as (server, startup):
        print(f"服务已启动：{server.base}（{startup:.1f} s），负载工具 {client}，{args.connections} 个并发连接，"
              f"每个场景 {args.duration:g} s（上限 {args.max_requests:,} 次请求）", flush=True)
        import httpx

        for name, (token, paths, label) in scenarios.items():
            probe = httpx.get(server.base + paths[0], headers={"Authorization": f"Bearer {token}"}, timeout=30)
            if args.warmup > 0:
                load(server.base, token, paths, args.warmup, 0)
            cpu0, t0 = server.cpu_seconds(), time.perf_counter()
            r = load(server.base, token, paths, args.duration, args.max_requests)
            r["server_cpu_cores"] = round((server.cpu_seconds() - cpu0) / (time.perf_counter() - t0), 2)
            r["server_rss_mb"] = server.rss_mb()
            r["probe"] = {"path": paths[0], "status": probe.status_code, "bytes": len(probe.content),
                          "body_head": probe.text[:200] if probe.status_code != 200 else None}
            r["description"], r["distinct_paths"] = label, len(paths)
            results[name] = r
            print(f"  {name:<9} {r['rps']:8.1f} req/s  p50 {r['p50_ms']:7.2f} ms  p90 {r['p90_ms']:7.2f} ms  "
                  f"p99 {r['p99_ms']:7.2f} ms  错误 {r['errors']:,}/{r['requests']:,} {r['statuses']}", flush=True)

    rec = results["record"]
    targets = {"rps_min": TARGET_RPS, "p99_ms_max": TARGET_P99_MS,
               "record_rps_met": rec["rps"] >= TARGET_RPS, "record_p99_met": rec["p99_ms"] < TARGET_P99_MS,
               "record_errors": rec["errors"]}
    targets["met"] = targets["record_rps_met"] and targets["record_p99_met"] and rec["errors"] == 0
    import duckdb

    report = {
        "machine": {"cpus": os.cpu_count(), "nproc": len(os.sched_getaffinity(0)), "platform": platform.platform(),
                    "python": platform.python_version(), "duckdb": duckdb.__version__},
        "load": {"client": client, "connections": args.connections,
                 "wrk_threads": args.wrk_threads if client == "wrk" else None, "duration_s": args.duration,
                 "max_requests": args.max_requests, "warmup_s": args.warmup, "host": "127.0.0.1",
                 "server": "screening serve (uvicorn, 1 worker)", "server_startup_s": round(startup, 2)},
        "build": {k: v for k, v in info.items() if not k.endswith("_token")},
        "data": {k: v for k, v in s.items() if k not in ("listed", "unlisted")},
        "scenarios": results, "targets": targets,
    }
    (HERE / "out" / "bench_api.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")

    print(f"\n{args.firms:,} 家企业，{YEAR} 年度清单 {s['list_total']:,} 家（{TOWNSHIP} {s['township_total']:,} 家）；"
          f"{report['machine']['nproc']} 核，一个 uvicorn 进程，负载工具 {client}，{args.connections} 个连接，仅 127.0.0.1")
    print(f"{'场景':<10}{'req/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'错误':>8}{'请求数':>9}{'服务 CPU':>9}")
    for name, r in results.items():
        print(f"{name:<10}{r['rps']:>9.1f}{r['p50_ms']:>9.2f}{r['p90_ms']:>9.2f}{r['p99_ms']:>9.2f}"
              f"{r['errors']:>8,}{r['requests']:>9,}{r['server_cpu_cores']:>9.2f}")
    verdict = "达到" if targets["met"] else "未达到"
    print(f"目标（档案接口 ≥ {TARGET_RPS} req/s 且 p99 < {TARGET_P99_MS:g} ms、无错误）：{verdict}"
          f"（{rec['rps']:.0f} req/s，p99 {rec['p99_ms']:.1f} ms，错误 {rec['errors']}）")
    print(f"结果已写入 {HERE / 'out' / 'bench_api.json'}")


if __name__ == "__main__":
    main()
