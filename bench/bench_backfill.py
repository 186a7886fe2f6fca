"""Backfill of 1,000 fire times on a Forbid schedule of 1-second jobs, through the local host on a replaced clock.

A RecurringJob firing every minute (concurrencyPolicy Forbid, the simulated runner, 1 s per run) is asked for
the 1,000 minutes before it was registered (`POST /api/jobs/{uid}/backfill`); the host's clock then moves from
timer to timer (the runs' orchestrations and the backfill driver) until the backfill has nothing left. The
schedule tick is set to once a year so that only the backfill starts runs.

Prints: wall time; the simulated time it took (runs are one after another, each waits for the one before);
how often a run was started (every fire time exactly once: 1,000 distinct times, 1,000 distinct runs, 1,000 jobs
in the list, the backfill's counts); and the storage round trips per run, counted at the HTTP transport of the
Azure SDK in this process (the app and the local host share it): the app's tables and blobs (the job store,
idempotency, the schedule's record), and the local host's Durable store apart.

Run: .venv/bin/python bench/bench_backfill.py [--times 1000]
"""

from __future__ import annotations

import argparse
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import requests

from _support import ROOT, azurite_env

START = datetime(2026, 3, 2, 12, 0, 30, tzinfo=timezone.utc)


def recurring() -> dict:
    return {
        "type": "dmss://WorkflowDS/Blueprints/RecurringJob",
        "label": "every minute, Forbid",
        "runner": {"type": "dmss://WorkflowDS/Blueprints/RecurringJobHandler"},
        "applicationInput": {
            "type": "dmss://WorkflowDS/Blueprints/Job",
            "label": "a one-second run",
            "runner": {"type": "JOBCORE:Simulated", "durationSeconds": 1, "logLines": 0, "progress": False},
        },
        "schedule": {
            "type": "dmss://WorkflowDS/Blueprints/CronJob",
            "cron": "* * * * *",
            "concurrencyPolicy": "Forbid",
            "runs": [],
        },
    }


class RoundTrips:
    """Counts the Azure SDK's HTTP requests by what they reach (the resource in the URL's first segment)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def install(self) -> None:
        from azure.core.pipeline.transport import RequestsTransport

        original = RequestsTransport.send
        counts, lock = self.counts, self.lock

        def send(transport, request, **kwargs):
            resource = urlsplit(request.url).path.split("/")[2].split("(")[0]  # /devstoreaccount1/<table or container>
            with lock:
                counts[resource] += 1
            return original(transport, request, **kwargs)

        RequestsTransport.send = send

    def snapshot(self) -> Counter[str]:
        with self.lock:
            return Counter(self.counts)


def job_uids(url: str) -> list[str]:
    out, token = [], None
    while True:
        params = {"limit": 1000, **({"continuationToken": token} if token else {})}
        page = requests.get(f"{url}/api/jobs", params=params, timeout=60).json()
        out += [j["uid"] for j in page["jobs"] if j["kind"] == "job"]
        token = page["continuationToken"]
        if not token:
            return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--times", type=int, default=1000)
    args = parser.parse_args()
    trips = RoundTrips()
    trips.install()
    settings = {"SCHEDULE_TICK": "0 0 0 1 1 *"}
    with azurite_env(**settings) as _:
        import os

        from devhost import DevHost
        from shared.platform.clock import ManualClock
        from shared.schedules import runs as schedule_runs

        prefix = os.environ["JOB_STORE_PREFIX"]
        starts: list[tuple[str, str]] = []
        original_start = schedule_runs.start_run

        def recording_start(orchestrations, schedule_uid, scheduled, *rest, **kwargs):
            run_uid = original_start(orchestrations, schedule_uid, scheduled, *rest, **kwargs)
            starts.append((scheduled.isoformat(), run_uid))
            return run_uid

        schedule_runs.start_run = recording_start
        with DevHost(app_dir=ROOT, clock=ManualClock(START), settings=settings) as host:
            http = requests.Session()
            uid = http.post(f"{host.url}/api/jobs", json=recurring(), timeout=30).json()["uid"]
            first = START.replace(second=0) - timedelta(minutes=args.times)
            last = first + timedelta(minutes=args.times - 1)
            before = trips.snapshot()
            t0 = time.perf_counter()
            reply = http.post(
                f"{host.url}/api/jobs/{uid}/backfill",
                json={"from": first.isoformat(), "to": last.isoformat()},
                timeout=60,
            ).json()
            assert reply["queued"] == args.times, reply
            progress = reply["backfill"]
            while progress["queued"] or progress["starting"] or progress["running"]:
                host.advance(600)
                progress = http.get(f"{host.url}/api/jobs/{uid}", timeout=30).json()["schedule"]["backfill"]
            host.wait_idle()
            wall = time.perf_counter() - t0
            simulated = host.clock.now() - START
            used = trips.snapshot() - before
            jobs = job_uids(host.url)
    times = [t for t, _ in starts]
    runs = {r for _, r in starts}
    app = sum(
        n for resource, n in used.items() if resource.startswith(prefix) and not resource.startswith(prefix + "h")
    )
    durable = sum(n for resource, n in used.items() if resource.startswith(prefix + "h"))
    other = sum(used.values()) - app - durable
    n = args.times
    print(f"backfill of {n} fire times, Forbid, 1-second simulated runs, local host on a replaced clock")
    print(f"  wall {wall:.1f} s ({wall / n * 1000:.0f} ms per run); simulated {simulated.total_seconds() / 60:.0f} min")
    print(
        f"  starts called {len(times)}, distinct fire times {len(set(times))}, distinct runs {len(runs)}, "
        f"jobs in the list {len(jobs)}; counts {progress['counts']}"
    )
    print(
        f"  storage round trips per run: app {app / n:.1f} (tables and blobs of the job store and the schedule), "
        f"Durable store of the local host {durable / n:.1f}, other {other / n:.1f}"
    )
    print("  by resource:", ", ".join(f"{k.removeprefix(prefix)}={v}" for k, v in sorted(used.items())))
    ok = len(set(times)) == n and len(runs) == n and len(jobs) == n and progress["counts"]["completed"] == n
    print("  every fire time run exactly once:", "yes" if ok else "NO")


if __name__ == "__main__":
    main()
