"""Job lifecycle speed on the local host with Azurite (issue: the job lifecycle end to end).

Prints:
- POST to status `completed` for `echo hello`: median and p90 over N jobs (goal: median under 1 s; the old
  service waited a fixed 5 s before every start);
- GET /api/jobs/{uid}: median and p99 latency over sequential requests (goal: median under 15 ms);
- 200 concurrent GETs: how many were answered 200, and the wall time.

Run: .venv/bin/python bench/bench_lifecycle.py [--jobs 20] [--gets 500]
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from _support import ROOT, azurite_env, percentile

ECHO = {
    "type": "dmss://WorkflowDS/Blueprints/Job",
    "label": "bench",
    "runner": {"type": "JOBCORE:Shell", "script": "echo hello"},
}


def post_to_completed(session: requests.Session, base: str) -> float:
    started = time.perf_counter()
    uid = session.post(f"{base}/api/jobs", json=ECHO, timeout=30).json()["uid"]
    while True:
        status = session.get(f"{base}/api/jobs/{uid}", timeout=30).json()["status"]
        if status == "completed":
            return time.perf_counter() - started
        if status in ("failed", "removed"):
            raise RuntimeError(f"job {uid} ended {status}")
        if time.perf_counter() - started > 30:
            raise RuntimeError(f"job {uid} still {status} after 30 s")
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--gets", type=int, default=500)
    args = parser.parse_args()
    from devhost import DevHost

    with azurite_env(), DevHost(app_dir=ROOT) as host:
        session = requests.Session()
        post_to_completed(session, host.url)  # warm-up: tables, containers, imports
        durations = [post_to_completed(session, host.url) for _ in range(args.jobs)]
        print(
            f"POST -> completed (echo hello), {args.jobs} jobs: median {statistics.median(durations) * 1000:.0f} ms, "
            f"p90 {percentile(durations, 0.9) * 1000:.0f} ms, max {max(durations) * 1000:.0f} ms"
        )

        uid = session.post(f"{host.url}/api/jobs", json=ECHO).json()["uid"]
        url = f"{host.url}/api/jobs/{uid}"
        latencies = []
        for _ in range(args.gets):
            t0 = time.perf_counter()
            assert session.get(url, timeout=30).status_code == 200
            latencies.append(time.perf_counter() - t0)
        print(
            f"GET /api/jobs/{{uid}}, {args.gets} sequential: median {statistics.median(latencies) * 1000:.1f} ms, "
            f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms"
        )

        def one(_: int) -> int:
            try:
                return requests.get(url, timeout=60).status_code
            except requests.RequestException:
                return 0

        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=200) as pool:
            codes = list(pool.map(one, range(200)))
        wall = time.perf_counter() - t0
        print(
            f"200 concurrent GETs: {codes.count(200)} answered 200, {len(codes) - codes.count(200)} not; "
            f"wall {wall * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
