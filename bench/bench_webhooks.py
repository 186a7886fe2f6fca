"""Webhook delivery on the local host (real clock, Azurite, the real Durable SDK), to a healthy receiver on 127.0.0.1.

1. Latency: real shell jobs, one after another; from the moment the job's final status is stored (the store's
   lifecycle hook, which fires right after the write) to the moment the receiver has the `job.completed` request.
   Goal: median under 1 s.
2. Volume: N events to one receiver: jobs whose statuses are written through the job store's own write path
   (create, then running, then completed: three events each, the listener exactly as in production), then every
   event's arrival is checked after de-duplication by webhook-id: none lost, each job's in order.

    .venv/bin/python bench/bench_webhooks.py [--jobs 10] [--events 1000]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import ROOT, azurite_env, percentile  # noqa: E402

from devhost import DevHost  # noqa: E402
from shared.jobs.record import JobRecord  # noqa: E402
from shared.jobs.status import JobStatus  # noqa: E402
from shared.jobs.store import store  # noqa: E402
from shared.platform import clock, hooks  # noqa: E402
from tests.webhooks.receiver import Receiver  # noqa: E402

FINAL = {"completed", "failed", "removed"}


class FinalStored:
    """A lifecycle listener of the bench's own: when each job's final status was stored (monotonic)."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.lock = threading.Lock()

    def status_changed(self, record) -> None:
        if record.status.value in FINAL:
            with self.lock:
                self.at.setdefault(record.uid, time.monotonic())

    def finished(self, record, result) -> None:
        return None


def subscribe(base: str, url: str, events: list[str]) -> str:
    response = requests.post(f"{base}/api/subscriptions", json={"url": url, "events": events}, timeout=30)
    response.raise_for_status()
    return response.json()["secret"]


def arrival(receiver: Receiver, uid: str, event_type: str, timeout: float = 60) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for item in receiver.delivered():
            body = item.payload
            if body["type"] == event_type and body["data"]["uid"] == uid:
                return item.at
        time.sleep(0.005)
    return None


def latency(base: str, jobs: int, listener: FinalStored) -> list[float]:
    receiver = Receiver()
    receiver.secrets = [subscribe(base, receiver.url("/latency"), ["job.completed"])]
    out = []
    try:
        for i in range(jobs):
            job = {
                "type": "dmss://WorkflowDS/Blueprints/Job",
                "label": f"bench {i}",
                "runner": {"type": "JOBCORE:Shell", "script": "echo hello"},
            }
            uid = requests.post(f"{base}/api/jobs", json=job, timeout=30).json()["uid"]
            got = arrival(receiver, uid, "job.completed")
            stored = listener.at.get(uid)
            if got is None or stored is None:
                print(f"  job {uid}: webhook missing")
                continue
            out.append(got - stored)
        assert all(item.verified_with for item in receiver.received), "a request did not verify"
    finally:
        receiver.stop()
    return out


def _write_job(uid: str) -> None:
    record = JobRecord(
        uid=uid, status=JobStatus.STARTING, runner_type="bench", label="volume", started=clock.now(), message="bench"
    )
    store().create(record)

    def to(status: JobStatus):
        def mutate(r: JobRecord) -> None:
            r.status = status
            if status.is_final:
                r.ended = clock.now()

        return mutate

    store().update(uid, to(JobStatus.RUNNING))  # job.started + job.running
    store().update(uid, to(JobStatus.COMPLETED))  # job.completed


def volume(base: str, events: int) -> dict[str, float]:
    receiver = Receiver()
    receiver.secrets = [subscribe(base, receiver.url("/volume"), ["job.started", "job.running", "job.completed"])]
    uids = [str(uuid.uuid4()) for _ in range((events + 2) // 3)]
    expected = len(uids) * 3
    started = time.monotonic()
    try:
        for uid in uids:
            _write_job(uid)
        written = time.monotonic() - started
        deadline = time.monotonic() + 900
        while len(receiver.delivered("/volume")) < expected and time.monotonic() < deadline:
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        got = receiver.delivered("/volume")
        order: dict[str, list[str]] = {}
        for item in got:
            body = item.payload
            order.setdefault(body["data"]["uid"], []).append(body["type"])
        in_order = sum(1 for types in order.values() if types == ["job.started", "job.running", "job.completed"])
        unverified = sum(1 for item in receiver.received if not item.verified_with)
        return {
            "expected": expected,
            "arrived": len(got),
            "requests": len(receiver.received),
            "jobs in order": in_order,
            "unverified": unverified,
            "writing s": round(written, 1),
            "all arrived s": round(elapsed, 1),
            "events/s": round(len(got) / elapsed, 1),
        }
    finally:
        receiver.stop()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--events", type=int, default=1000)
    args = parser.parse_args()
    with azurite_env(WEBHOOK_ALLOW_LOCAL="true"):
        listener = FinalStored()
        with DevHost(app_dir=ROOT, settings={"SCHEDULE_TICK": "0 * * * * *"}) as host:
            hooks.add(listener)
            try:
                values = latency(host.url, args.jobs, listener)
                if values:
                    print(
                        f"final status stored -> webhook arrived, {len(values)} shell jobs: median "
                        f"{percentile(values, 0.5) * 1000:.0f} ms, p90 {percentile(values, 0.9) * 1000:.0f} ms, "
                        f"max {max(values) * 1000:.0f} ms (goal: median < 1000 ms)"
                    )
                result = volume(host.url, args.events)
                figures = ", ".join(f"{k} {v}" for k, v in result.items())
                print(f"{result['expected']} events to one receiver: {figures}")
                lost = result["expected"] - result["arrived"]
                print("no event lost" if lost == 0 else f"LOST {lost} events")
            finally:
                hooks.remove(listener)
    return 0


if __name__ == "__main__":
    sys.exit(main())
