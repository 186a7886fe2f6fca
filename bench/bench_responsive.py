"""Benchmark: does the app still answer a status GET while 10 job starts are each blocked for 20 s?

The real `function_app.py` under the local host (`devhost.DevHost`, system clock, its own Azurite). Every sync
function (HTTP, orchestrator, activities) shares the Python worker's one thread pool, as in Azure
(devhost/worker.py): `PYTHON_THREADPOOL_THREAD_COUNT` threads, else min(32, cpu + 4). The simulated runner's
`start` is made to block for `--block` seconds (a runner hanging in its create call), 10 jobs are POSTed, and
while their start activities hang the benchmark GETs one job's status and the job list every 0.1 s for 8 s
(each GET timed on its own, so a GET stuck behind the pool counts for as long as it waits). It says for each
route whether its function is sync (the worker pool) or async (its blocking work then runs on the event loop's
default executor, a separate pool of the same default size).

Two runs: "default" (no PYTHON_THREADPOOL_THREAD_COUNT: the worker's default pool) and "azure" (the value
infra/app/api.bicep sets). host.json's `maxConcurrentActivityFunctions` / `maxConcurrentOrchestratorFunctions`
apply to both. Prints, per run: pool sizes, how many starts were hanging, and each GET's median, p95 and max
latency (goal: median under 50 ms).

    python bench/bench_responsive.py [--jobs 10] [--block 20] [--measure 8] [--runs default,azure]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import requests  # noqa: E402

from _support import ROOT, azurite_env, percentile  # noqa: E402

SIMULATED = "dmss://WorkflowDS/Blueprints/Simulated"
SETTING = "PYTHON_THREADPOOL_THREAD_COUNT"


def azure_thread_count() -> str | None:
    """The thread count infra/app/api.bicep gives the app in Azure (None if it sets none)."""
    m = re.search(rf"\b{SETTING}:\s*'(\d+)'", (ROOT / "infra" / "app" / "api.bicep").read_text())
    return m.group(1) if m else None


class Hang:
    """Replaces the runner's start: blocks (wall time) until released or `seconds` pass, then starts."""

    def __init__(self, runner, seconds: float):
        self.original = runner.start
        self.seconds = seconds
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.hanging = 0
        self.most = 0
        runner.start = self

    def __call__(self, spec):
        with self.lock:
            self.hanging += 1
            self.most = max(self.most, self.hanging)
        try:
            self.release.wait(self.seconds)
        finally:
            with self.lock:
                self.hanging -= 1
        return self.original(spec)


def run(name: str, threads: str | None, args) -> dict:
    from devhost import DevHost
    from runners.registry import default_registry

    runner = default_registry().get(SIMULATED)
    hang = Hang(runner, args.block)
    settings = {SETTING: threads} if threads else {}
    saved = os.environ.pop(SETTING, None)
    job = {
        "type": "dmss://WorkflowDS/Blueprints/Job",
        "label": "bench",
        "runner": {"type": SIMULATED, "durationSeconds": 1},
    }
    try:
        with DevHost(app_dir=ROOT, settings=settings) as host:
            durable = (json.loads((ROOT / "host.json").read_text()).get("extensions") or {}).get("durableTask", {})
            http = requests.Session()
            probe = http.post(f"{host.url}/api/jobs", json=job, timeout=30).json()["uid"]
            with ThreadPoolExecutor(args.jobs) as pool:
                codes = list(
                    pool.map(
                        lambda _: requests.post(f"{host.url}/api/jobs", json=job, timeout=60).status_code,
                        range(args.jobs),
                    )
                )
            settle = time.monotonic() + 5
            while time.monotonic() < settle and hang.hanging < args.jobs + 1:
                time.sleep(0.05)
            # a status GET and a list GET every `--every` seconds for `--measure` seconds, each timed on its own
            latencies: dict[str, list[float]] = {"status": [], "list": []}
            urls = {"status": f"{host.url}/api/jobs/{probe}", "list": f"{host.url}/api/jobs?limit=1"}

            def get(kind: str) -> None:
                t0 = time.perf_counter()
                r = requests.get(urls[kind], timeout=3 * args.block + 60)
                assert r.status_code == 200, r.text
                latencies[kind].append((time.perf_counter() - t0) * 1000)

            with ThreadPoolExecutor(2 * int(args.measure / args.every) + 2) as getters:
                end = time.monotonic() + args.measure
                while time.monotonic() < end:
                    getters.submit(get, "status")
                    getters.submit(get, "list")
                    time.sleep(args.every)
            hanging_seen = hang.most
            hang.release.set()
            return {
                "name": name,
                "threads": host.worker.size,
                "cpus": os.cpu_count(),
                "activity_slots": durable.get("maxConcurrentActivityFunctions"),
                "orchestrator_slots": durable.get("maxConcurrentOrchestratorFunctions"),
                "posted": codes.count(202),
                "hanging": hanging_seen,
                "sync": {f.name: not f.is_async for f in host.functions.all},
                "figures": {
                    kind: {"n": len(v), "median": statistics.median(v), "p95": percentile(v, 0.95), "max": max(v)}
                    for kind, v in latencies.items()
                },
            }
    finally:
        hang.release.set()
        runner.start = hang.original
        if saved is not None:
            os.environ[SETTING] = saved


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--block", type=float, default=20.0)
    parser.add_argument("--measure", type=float, default=8.0, help="seconds of status GETs, while starts hang")
    parser.add_argument("--every", type=float, default=0.1, help="seconds between two status GETs")
    parser.add_argument("--runs", default="default,azure")
    args = parser.parse_args()
    configs = {"default": None, "azure": azure_thread_count()}
    with azurite_env():
        for name in args.runs.split(","):
            out = run(name, configs[name], args)
            print(
                f"{name:8s}: worker pool {out['threads']} threads ({SETTING}="
                f"{configs[name] or 'unset'}, {out['cpus']} cpus), activity slots {out['activity_slots']}, "
                f"orchestrator slots {out['orchestrator_slots']}; {out['posted']} jobs posted, "
                f"{out['hanging']} starts hanging {args.block:g} s",
                flush=True,
            )
            for kind, route, function in (
                ("status", "GET /api/jobs/{uid}", "get_job"),
                ("list", "GET /api/jobs?limit=1", "list_jobs"),
            ):
                f = out["figures"][kind]
                pool = "worker pool" if out["sync"].get(function) else "async: loop's default executor"
                print(
                    f"          {route} ({function}, {pool}): median {f['median']:.1f} ms, p95 {f['p95']:.1f} "
                    f"ms, max {f['max']:.1f} ms over {f['n']} GETs (goal: median < 50 ms)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
