"""Benchmark: 150 ACI jobs started at once against the ARM stand-in, which throttles past 100 creates per 5 minutes.

Runs the real ACI runner and the real SDK on a ManualClock. Each job is started like an orchestrator would: on
RetryLater it waits `retry_after` on the clock and calls start again; every started job is polled (every
`--poll` simulated seconds) until it ends, then its log is read and its group cleaned up. Prints: completed,
failed, 429s seen, simulated time, wall time, and ARM request counts.

    python bench/bench_aci_burst.py [--jobs 150] [--run-seconds 60] [--poll 15]
"""
from __future__ import annotations

import argparse
import heapq
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from azure.core.credentials import AccessToken  # noqa: E402

from runners.azure_container import AzureContainerRunner  # noqa: E402
from runners.base import JobSpec, RetryLater  # noqa: E402
from shared import clock  # noqa: E402
from shared.clock import ManualClock  # noqa: E402
from tests.standins.arm import ArmStandIn  # noqa: E402


class FixedToken:
    def get_token(self, *scopes, **kwargs):
        return AccessToken("bench-token", int(time.time()) + 3600)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=150)
    parser.add_argument("--run-seconds", type=float, default=60.0, help="how long each job's container runs")
    parser.add_argument("--poll", type=float, default=15.0, help="poll interval (simulated seconds)")
    args = parser.parse_args()

    manual = ManualClock()
    clock.set_clock(manual)
    arm = ArmStandIn(start_delay=20.0).start()  # default throttle: 100 creates per 300 s
    os.environ.update(AZURE_RESOURCE_MANAGER_URL=arm.url, AZURE_SUBSCRIPTION_ID="bench-sub",
                      ACI_RESOURCE_GROUP="bench-rg", LOG_TAIL_LINES="50")
    runner = AzureContainerRunner(credential=FixedToken())
    script = f"echo starting; sleep {args.run_seconds:g}; echo done"

    t0_wall, t0_sim = time.perf_counter(), manual.now()
    # (due time in simulated seconds, sequence, action, job index)
    queue: list[tuple[float, int, str, int]] = []
    seq = 0
    specs = [JobSpec(uid=str(uuid.uuid4()), config={
        "type": "dmss://WorkflowDS/Blueprints/AzureContainer", "name": "bench", "containerImage": "busybox:1.36",
        "customCommand": ["sh", "-c", script]}, environment={"JOB_INDEX": str(i)}, time_limit_seconds=3600)
        for i in range(args.jobs)]
    handles: dict[int, dict] = {}
    outcome: dict[int, str] = {}
    retries, retry_waits, first_start_at, started_at = 0, [], {}, {}
    for i in range(args.jobs):
        queue.append((0.0, seq, "start", i))
        seq += 1
    heapq.heapify(queue)

    def elapsed() -> float:
        return (manual.now() - t0_sim).total_seconds()

    while queue:
        due, _, action, i = heapq.heappop(queue)
        if due > elapsed():
            manual.advance(due - elapsed())
        if action == "start":
            first_start_at.setdefault(i, elapsed())
            try:
                handles[i] = runner.start(specs[i])
            except RetryLater as error:
                retries += 1
                retry_waits.append(error.retry_after)
                heapq.heappush(queue, (elapsed() + error.retry_after, seq, "start", i))
                seq += 1
                continue
            started_at[i] = elapsed()
            heapq.heappush(queue, (elapsed() + args.poll, seq, "poll", i))
            seq += 1
        else:
            status = runner.status(handles[i])
            if status.finished:
                runner.logs(handles[i])
                runner.cleanup(handles[i])
                outcome[i] = status.state.value
            else:
                heapq.heappush(queue, (elapsed() + args.poll, seq, "poll", i))
                seq += 1

    wall = time.perf_counter() - t0_wall
    simulated = elapsed()
    arm.stop()
    completed = sum(1 for v in outcome.values() if v == "completed")
    failed = sum(1 for v in outcome.values() if v == "failed")
    delays = sorted(started_at[i] - first_start_at[i] for i in started_at)
    print(f"jobs               {args.jobs}")
    print(f"completed          {completed}")
    print(f"failed             {failed}")
    print(f"429s seen          {arm.counts['throttled']} (RetryLater raised {retries}x; "
          f"Retry-After {min(retry_waits, default=0):g}..{max(retry_waits, default=0):g} s)")
    print(f"start delayed      {sum(1 for d in delays if d > 0)} jobs, max {max(delays, default=0):g} s")
    print(f"groups left        {len(arm.group_names())}")
    print(f"ARM requests       {arm.counts['requests']} ({arm.counts['creates']} creates, "
          f"{arm.counts['deletes']} deletes)")
    print(f"simulated time     {simulated:.0f} s ({simulated / 60:.1f} min)")
    print(f"wall time          {wall:.2f} s")
    return 0 if completed == args.jobs and not arm.group_names() else 1


if __name__ == "__main__":
    raise SystemExit(main())
