"""Fresh when someone is watching, cheap when nobody is: figures through the local host on a replaced clock.

With the simulated runner (a 10-minute job on the host's clock):
1. a reader polling every 5 s (the DM web app's rate): from the runner's end to `completed` visible, p50/p95
   over several jobs whose ends fall at different moments (goal: under 5 s; the backoff alone: up to 60 s);
2. the same job with no reader: runner polls in all (goal: what the backoff gives, about 17);
3. many readers polling the same running job every second: runner polls caused, and the status GET median
   (goal: at most one poll per freshness window; GET median unchanged);
4. a job that PUTs its own `completed` as it ends: wall time until the orchestration has finished it (goal:
   under 1 s; the backoff alone: up to 60 s of the job's clock).

Run: .venv/bin/python bench/bench_freshness.py [--jobs 8] [--readers 100] [--reader-seconds 600]
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import requests

from _support import ROOT, azurite_env, percentile

START = datetime(2026, 3, 2, 9, 0, 0, tzinfo=timezone.utc)
DURATION = 600.0


def job(duration: float) -> dict:
    return {
        "type": "dmss://WorkflowDS/Blueprints/Job",
        "label": "fresh",
        "runner": {"type": "JOBCORE:Simulated", "durationSeconds": duration},
    }


class Bench:
    def __init__(self, host, runner):
        self.host, self.runner = host, runner
        self.http = requests.Session()

    def start(self, duration: float) -> str:
        uid = self.http.post(f"{self.host.url}/api/jobs", json=job(duration), timeout=30).json()["uid"]
        self.host.wait_idle()
        return uid

    def status(self, uid: str) -> dict:
        return self.http.get(f"{self.host.url}/api/jobs/{uid}", timeout=30).json()

    def settle(self) -> None:
        """Let the engine act on a wake a read raised (it is raised without waiting) before the clock moves."""
        time.sleep(0.05)
        self.host.wait_idle()

    def lag_with_reader(self, duration: float, every: float = 5.0) -> tuple[float, int]:
        """Seconds of the job's clock from its end to `completed` seen by a reader, and the polls it took."""
        uid, before = self.start(duration), self.runner.polls
        elapsed = 0.0
        while True:
            self.host.advance(every)
            elapsed += every
            if self.status(uid)["status"] == "completed":
                return elapsed - duration, self.runner.polls - before
            self.settle()

    def polls_without_reader(self, duration: float) -> tuple[int, float]:
        uid, before = self.start(duration), self.runner.polls
        self.host.advance(duration + 120)  # nobody reads until it is over
        body = self.status(uid)
        ended = datetime.fromisoformat(body["ended"].replace("Z", "+00:00"))
        started = datetime.fromisoformat(body["started"].replace("Z", "+00:00"))
        return self.runner.polls - before, (ended - started).total_seconds() - duration

    def many_readers(self, readers: int, seconds: int) -> tuple[int, float]:
        uid = self.start(seconds * 10)
        self.host.advance(300)  # the backoff has grown to its cap: what the readers cause shows
        before, latencies = self.runner.polls, []

        def one() -> None:
            t0 = time.perf_counter()
            self.http.get(f"{self.host.url}/api/jobs/{uid}", timeout=30)
            latencies.append((time.perf_counter() - t0) * 1000)

        with ThreadPoolExecutor(max_workers=16) as pool:
            for _ in range(seconds):
                list(pool.map(lambda _: one(), range(readers)))
                self.settle()
                self.host.advance(1.0)
        return self.runner.polls - before, statistics.median(latencies)

    def own_report(self, duration: float, token_of) -> float:
        uid = self.start(duration)
        self.host.advance(duration)  # the runner ends now; the next backoff poll is up to 60 s away
        t0 = time.perf_counter()
        self.http.put(
            f"{self.host.url}/api/jobs/{uid}?overwrite_log=false",
            timeout=30,
            json={"percentage": 1.0, "logs": "done", "status": "completed"},
            headers={"Authorization": f"Bearer {token_of(uid)}"},
        )
        while not self.status(uid).get("ended") or self.status(uid).get("log") is None:
            if time.perf_counter() - t0 > 30:
                return float("inf")
            time.sleep(0.005)
        return (time.perf_counter() - t0) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--readers", type=int, default=100)
    parser.add_argument("--reader-seconds", type=int, default=600)
    args = parser.parse_args()
    from devhost import DevHost
    from runners.registry import default_registry
    from shared.jobs.store import store
    from shared.platform.clock import ManualClock

    with azurite_env(), DevHost(app_dir=ROOT, clock=ManualClock(START)) as host:
        bench = Bench(host, default_registry().get("JOBCORE:Simulated"))
        runs = [bench.lag_with_reader(DURATION + 1.3 * i) for i in range(args.jobs)]
        lags = [lag for lag, _ in runs]
        print(
            f"10-minute job, a reader every 5 s ({args.jobs} jobs): end -> completed visible p50 "
            f"{percentile(lags, 0.5):.1f} s, p95 {percentile(lags, 0.95):.1f} s; runner polls per job "
            f"{statistics.median(p for _, p in runs):.0f} (goal: < 5 s; backoff alone: up to 60 s)"
        )
        polls, lag = bench.polls_without_reader(DURATION)
        print(
            f"10-minute job, nobody reading: {polls} runner polls, finished {lag:.0f} s after its end "
            "(the backoff's own figures)"
        )
        caused, median = bench.many_readers(args.readers, args.reader_seconds)
        windows = args.reader_seconds / 5
        print(
            f"{args.readers} readers polling one running job every second for {args.reader_seconds} s: "
            f"{caused} runner polls caused ({windows:.0f} freshness windows; goal <= one per window), "
            f"status GET median {median:.1f} ms"
        )
        reports = [bench.own_report(120, lambda uid: store().get(uid).job_token) for _ in range(5)]
        print(
            f"a job PUTting its own `completed`: finished after median {statistics.median(reports):.0f} ms "
            f"(max {max(reports):.0f} ms; goal < 1 s)"
        )


if __name__ == "__main__":
    main()
