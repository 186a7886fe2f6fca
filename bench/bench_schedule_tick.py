"""Benchmark: one schedule tick with 10,000 registered schedules, ~1% due, against a real Azurite.

    . .venv/bin/activate && python bench/bench_schedule_tick.py [--schedules 10000] [--due-percent 1] [--mix]

Registers N recurring jobs (job records created in parallel, the due index written in table transactions of
up to 100 rows per bucket), runs a warm-up tick, then ticks two minutes in which ~1% of the schedules are due,
and prints for each: wall time, index rows and entities read, runs started. Beside it, the full-scan
alternative: read every schedule record and pick the due ones (what a scheduler without the index must do).

With --mix, the schedules use the features of issue 15 in equal thirds, with the same fire times on the whole:
plain cron strings; a list of expressions (the same hours split in two, plus one that shares the first hour's
time: a time fired once); and jitterSeconds=240 (each fire due up to four minutes late, so a minute's tick
starts some of this minute's and some of earlier minutes' fires). Every other schedule is BufferOne. It then ticks
six minutes, so that the jittered fires reach their steady share.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.jobs.models import CRON_JOB_TYPE, JOB_TYPE, RECURRING_JOB_HANDLER_TYPE, RECURRING_JOB_TYPE  # noqa: E402
from shared.jobs.record import JobRecord  # noqa: E402
from shared.jobs.status import JobStatus  # noqa: E402
from shared.jobs.store import store  # noqa: E402
from shared.schedules import due_index, operations, tick as ticking  # noqa: E402
from shared.schedules.policy import iso  # noqa: E402
from tests.support.azurite import start_azurite  # noqa: E402

UTC = timezone.utc


def crons(n: int, due_percent: float) -> list[str]:
    """Schedules spread over `slots` minutes of a two-hour cycle, so that ~due_percent% fire in any slot."""
    slots = max(1, min(120, round(100 / due_percent)))
    out = []
    for i in range(n):
        slot = i % slots
        minute, odd = slot % 60, slot // 60
        out.append(f"{minute} {'1-23/2' if odd else '0-22/2'} * * *")
    return out


def mixed(cron: str, i: int) -> dict:
    """The CronJob attributes of the i-th schedule under --mix (see the docstring)."""
    minute, hours = cron.split(" ")[:2]
    extra: dict = {"concurrencyPolicy": "BufferOne"} if i % 2 else {}
    if i % 3 == 1:
        first, _, rest = hours.partition("-")
        low, _, step = rest.partition("/")
        start = int(first)
        middle = start + 12
        return {
            "cron": [
                f"{minute} {start}-{middle - 2}/{step} * * *",
                f"{minute} {middle}-{low}/{step} * * *",
                f"{minute} {start} * * *",  # shares every fire of the first hour with the first expression
            ],
            **extra,
        }
    if i % 3 == 2:
        return {"cron": cron, "jitterSeconds": 240, **extra}
    return {"cron": cron, **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--due-percent", type=float, default=1.0)
    parser.add_argument("--mix", action="store_true", help="thirds: plain, cron lists, jitterSeconds=240")
    args = parser.parse_args()

    server = start_azurite()
    os.environ["AzureWebJobsStorage"] = server.connection_string
    os.environ["JOB_STORE_PREFIX"] = "bench" + uuid.uuid4().hex[:6]
    try:
        registered_at = datetime(2026, 5, 4, 0, 0, 30, tzinfo=UTC)
        records = []
        for i, cron in enumerate(crons(args.schedules, args.due_percent)):
            uid = str(uuid.uuid4())
            schedule = mixed(cron, i) if args.mix else {"cron": cron}
            entity = {
                "type": RECURRING_JOB_TYPE,
                "uid": uid,
                "status": "registered",
                "runner": {"type": RECURRING_JOB_HANDLER_TYPE},
                "applicationInput": {
                    "type": JOB_TYPE,
                    "runner": {"type": "dmss://WorkflowDS/Blueprints/Shell", "script": "true"},
                },
                "schedule": {"type": CRON_JOB_TYPE, **schedule, "runs": []},
            }
            records.append(
                JobRecord(
                    uid=uid,
                    kind="recurring",
                    status=JobStatus.REGISTERED,
                    entity=entity,
                    runner_type=RECURRING_JOB_HANDLER_TYPE,
                )
            )
        t = time.perf_counter()
        operations.register_many(records, now=registered_at)
        print(
            f"registered {len(records)} schedules in {time.perf_counter() - t:.1f} s "
            f"(records in parallel, due index in batches of <= 100 per bucket)"
        )

        started: list[tuple[str, datetime]] = []

        def start_run(schedule_uid, scheduled, template, triggered_by):
            started.append((schedule_uid, scheduled))
            return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{schedule_uid}|{scheduled.isoformat()}"))

        def status_of(run_uid):
            return "completed"

        warm = ticking.tick(registered_at + timedelta(seconds=15), start_run, None, status_of)
        print(f"warm-up tick: due {warm.due}, {warm.elapsed * 1000:.0f} ms")
        print()
        print(f"{'tick at':<22}{'due':>6}{'started':>9}{'entities read':>15}{'wall ms':>10}")
        for minute in range(1, 7) if args.mix else (1, 2):
            now = registered_at.replace(second=5) + timedelta(minutes=minute)
            report = ticking.tick(now, start_run, None, status_of)
            assert not report.errors, report.errors
            print(f"{report.now:<22}{report.due:>6}{report.started:>9}{report.read:>15}{report.elapsed * 1000:>10.0f}")

        # the alternative without an index: read every schedule, pick the due ones
        now = registered_at.replace(second=5) + timedelta(minutes=7 if args.mix else 3)
        t = time.perf_counter()
        read = due = 0
        for row in store().jobs.query_entities(
            "RowKey eq 'job' and kind eq 'recurring'", select=["PartitionKey", "schedule"], results_per_page=1000
        ):
            read += 1
            state = json.loads(row["schedule"])
            if state.get("nextFire") and state["nextFire"] <= iso(now):
                due += 1
        scan = time.perf_counter() - t
        print(f"{'find due: full scan':<22}{due:>6}{'-':>9}{read:>15}{scan * 1000:>10.0f}")
        t = time.perf_counter()
        b = due_index.bucket(now)
        found = len(
            list(
                due_index.due_table().query_entities(
                    f"PartitionKey ge '{b}' and PartitionKey le '{b}'", select=["RowKey"]
                )
            )
        )
        print(f"{'find due: index query':<22}{found:>6}{'-':>9}{found:>15}{(time.perf_counter() - t) * 1000:>10.0f}")
        report = ticking.tick(now, start_run, None, status_of)
        print(
            f"{'indexed tick, same min':<22}{report.due:>6}{report.started:>9}{report.read:>15}"
            f"{report.elapsed * 1000:>10.0f}"
        )
        print()
        print(f"runs started: {len(started)}, distinct: {len(set(started))}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
