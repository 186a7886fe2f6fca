"""What a retry costs, on the local host with Azurite and real shell jobs (issue 15, item 1: retry policies).

Prints, for N jobs of each kind, POST to `completed` (median, p90) and the storage round trips per job, split into
the job's own tables and blobs and the local Durable engine's history tables:
- `echo hello` without a policy (the baseline: one attempt);
- a script that fails twice and then succeeds, with `retry: {maxAttempts: 3, backoffSeconds: 0}` (three attempts:
  what the attempts add beyond the baseline is the price of two retries).
Round trips are counted at the Azure SDK clients (every table and blob call the process makes), so they include
the status reads of the polling client here (one GET per 10 ms, counted apart).

Run: .venv/bin/python bench/bench_retries.py [--jobs 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests
from azure.data.tables import TableClient
from azure.storage.blob import BlobClient, ContainerClient

from _support import ROOT, azurite_env, percentile

ECHO = {"type": "JOBCORE:Job", "label": "bench", "runner": {"type": "JOBCORE:Shell", "script": "echo hello"}}
CALLS: Counter = Counter()
_lock = threading.Lock()


def flaky(marker: Path) -> dict:
    script = f'echo x >> {marker}; n=$(wc -l < {marker}); echo "attempt $n"; [ "$n" -ge 3 ]'
    return {
        "type": "JOBCORE:Job",
        "label": "bench",
        "runner": {"type": "JOBCORE:Shell", "script": script},
        "retry": {"maxAttempts": 3, "backoffSeconds": 0},
    }


def count_calls() -> None:
    """Count every table and blob call, by table (the job store's tables end in the prefix's names)."""

    def wrap(cls, name, key):
        original = getattr(cls, name)

        def counted(self, *args, **kwargs):
            with _lock:
                CALLS[key(self)] += 1
            return original(self, *args, **kwargs)

        setattr(cls, name, counted)

    for name in ("get_entity", "create_entity", "update_entity", "upsert_entity", "delete_entity", "query_entities"):
        wrap(TableClient, name, lambda client: client.table_name)
    for name in ("upload_blob", "download_blob", "delete_blob"):
        wrap(ContainerClient, name, lambda client: "blob:" + client.container_name)
        wrap(BlobClient, name, lambda client: "blob:" + client.container_name)


def run(session: requests.Session, base: str, job: dict) -> tuple[float, int, dict]:
    started = time.perf_counter()
    uid = session.post(f"{base}/api/jobs", json=job, timeout=30).json()["uid"]
    reads = 0
    while True:
        body = session.get(f"{base}/api/jobs/{uid}", timeout=30).json()
        reads += 1
        if body["status"] == "completed":
            return time.perf_counter() - started, reads, body
        if body["status"] in ("failed", "removed") or time.perf_counter() - started > 60:
            raise RuntimeError(f"job {uid}: {body}")
        time.sleep(0.01)


def measure(session, base, jobs, prefix: str) -> tuple[list[float], float, float]:
    """Durations, and per job: round trips of the job store, of the Durable engine (status reads taken out)."""
    CALLS.clear()
    durations, reads = [], 0
    for job in jobs:
        duration, polled, _ = run(session, base, job)
        durations.append(duration)
        reads += polled
    own = sum(n for table, n in CALLS.items() if not table.startswith(prefix + "h") and "devhost" not in table)
    engine = sum(CALLS.values()) - own
    return durations, (own - reads) / len(jobs), engine / len(jobs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10)
    args = parser.parse_args()
    from devhost import DevHost

    count_calls()
    with tempfile.TemporaryDirectory() as work, azurite_env(JOB_WORK_DIR=work) as _, DevHost(app_dir=ROOT) as host:
        prefix = os.environ["JOB_STORE_PREFIX"]
        session = requests.Session()
        run(session, host.url, ECHO)  # warm-up
        markers = [Path(work) / f"marker-{i}" for i in range(args.jobs)]
        _, _, body = run(session, host.url, flaky(Path(work) / "warm"))
        assert [a["status"] for a in body["attempts"]] == ["failed", "failed", "completed"], body
        for label, jobs in (("echo, no policy", [ECHO] * args.jobs), ("fails twice, 3 attempts", map(flaky, markers))):
            durations, own, engine = measure(session, host.url, list(jobs), prefix)
            print(
                f"{label:>23}, {args.jobs} jobs: POST to completed median "
                f"{statistics.median(durations) * 1000:.0f} ms, "
                f"p90 {percentile(durations, 0.9) * 1000:.0f} ms; storage round trips per job: job store {own:.1f}, "
                f"Durable engine {engine:.1f}"
            )


if __name__ == "__main__":
    main()
