"""A job that runs 24 hours, on the local host with a replaced clock (issue: the job lifecycle end to end).

The simulated runner "runs" for 86,400 s of the host's clock; the host advances the clock from timer to timer.
Prints the orchestration's largest history (goal: never above 200 events), the number of generations
(continue_as_new), the runner polls in all (goal: fewer than 1,500; the old UI polled every 2 s: 43,200 a
day), the table writes the job caused, and the wall time.

Run: .venv/bin/python bench/bench_long_job.py [--hours 24]
"""

from __future__ import annotations

import argparse
import time

import requests

from _support import ROOT, azurite_env


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hours", type=float, default=24)
    args = parser.parse_args()
    from devhost import DevHost
    from runners.registry import default_registry
    from shared.platform.clock import ManualClock
    from shared.jobs.store import TableJobStore

    seconds = args.hours * 3600
    job = {
        "type": "dmss://WorkflowDS/Blueprints/Job",
        "label": "a day",
        "runner": {"type": "JOBCORE:Simulated", "durationSeconds": seconds},
    }
    writes = {"n": 0}
    original_update = TableJobStore.update

    def counting_update(self, uid, mutate):
        before = self.get(uid).etag
        record = original_update(self, uid, mutate)
        writes["n"] += record.etag != before
        return record

    TableJobStore.update = counting_update
    with azurite_env(), DevHost(app_dir=ROOT, clock=ManualClock()) as host:
        runner = default_registry().get("JOBCORE:Simulated")
        polls_before = runner.polls
        t0 = time.perf_counter()
        uid = requests.post(f"{host.url}/api/jobs", json=job, timeout=30).json()["uid"]
        host.wait_idle()
        host.advance(seconds + 300)
        wall = time.perf_counter() - t0
        body = requests.get(f"{host.url}/api/jobs/{uid}", timeout=30).json()
        stats = host.engine.stats(uid)
    polls = runner.polls - polls_before
    print(f"{args.hours:g} h job on a replaced clock: status {body['status']}, wall {wall:.1f} s")
    print(
        f"  history: max {stats['max_history_events']} events in one generation (goal <= 200), "
        f"{stats['generations']} generations"
    )
    print(f"  runner polls: {polls} (goal < 1500; the old UI: {int(seconds / 2)})")
    print(f"  job-row writes: {writes['n']} (the old service wrote the store and DMSS on every poll)")


if __name__ == "__main__":
    main()
