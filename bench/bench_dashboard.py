"""Benchmark: how fast does the dashboard show its first page with 1,000 jobs stored?

The real `function_app.py` under the local host (`devhost.DevHost`, system clock, its own Azurite) with 1,000
finished jobs written through the job store (`shared.jobs.store`, as a start would write them: the job row and
its listing index entry; 90 % completed, 10 % failed, spread over the last 30 days). Headless Chromium (Debian's
`chromium`, launched by path with the flags of tests/browser/conftest.py) opens `/api/ui` in a fresh browser
context each time (nothing cached), `--runs` times, then reloads it in the same context (files revalidated by
ETag, 304s). Figures, per cold and warm load (median, min, max in ms from the start of navigation, the page's
own clock, `performance`):

- `first table`: the jobs table drawn with its 25 rows (the mark `dmjob:first-table`, set when the list's
  reply is rendered): the goal is under 1,000 ms;
- `rows filled`: every row's runner, start, duration and starter filled in from the jobs' status (25 GETs,
  6 at a time);
- `load event`, and the bytes the page itself took (HTML, modules, CSS; API replies not counted).

    python bench/bench_dashboard.py [--jobs 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import ROOT, azurite_env  # noqa: E402

from devhost import DevHost  # noqa: E402
from shared.jobs.models import Job  # noqa: E402
from shared.jobs.operations import new_record  # noqa: E402
from shared.jobs.status import JobStatus  # noqa: E402
from shared.jobs.store import store  # noqa: E402
from shared.platform import clock  # noqa: E402
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

FILLED = "() => document.querySelectorAll('#jobs tbody tr[data-uid]').length >= 25 && [...document.querySelectorAll('#jobs tbody tr[data-uid] td:nth-child(4)')].every(td => td.textContent)"  # noqa: E501


def store_jobs(count: int) -> float:
    """Write `count` finished jobs through the store; returns the seconds it took."""
    started = time.monotonic()
    now = clock.now()
    rng = random.Random(17)

    def one(i: int) -> None:
        job = Job.model_validate(
            {
                "type": "dmss://WorkflowDS/Blueprints/Job",
                "label": f"nightly import {i:04d}",
                "runner": {"type": "dmss://WorkflowDS/Blueprints/Shell", "script": "true"},
            }
        )
        record = new_record(job, str(uuid.uuid4()), None, None)
        begun = now - timedelta(seconds=rng.uniform(0, 30 * 86400))
        failed = i % 10 == 0
        record.created = record.started = begun
        record.ended = begun + timedelta(seconds=rng.uniform(1, 3600))
        record.status = JobStatus.FAILED if failed else JobStatus.COMPLETED
        record.message = "exit code 3" if failed else "exit code 0"
        record.percentage = None if failed else 1.0
        record.log = [f"line {n}" for n in range(5)]
        store().create(record)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(count)))
    return time.monotonic() - started


def measure(page, url: str, reload: bool) -> dict[str, float]:
    if reload:
        page.reload()
    else:
        page.goto(url)
    page.wait_for_function("() => performance.getEntriesByName('dmjob:first-table').length > 0", timeout=30_000)
    page.wait_for_function(FILLED, timeout=30_000)
    page.wait_for_load_state("load")
    return page.evaluate(
        """() => {
        const nav = performance.getEntriesByType('navigation')[0];
        const files = performance.getEntriesByType('resource').filter(r => r.name.includes('/api/ui/'));
        const filled = performance.now();
        return {
          first: performance.getEntriesByName('dmjob:first-table')[0].startTime,
          filled,
          load: nav.loadEventEnd,
          bytes: nav.transferSize + files.reduce((n, r) => n + r.transferSize, 0),
        };
    }"""
    )


def summary(name: str, values: list[float], unit: str = "ms") -> str:
    return f"  {name:12} median {statistics.median(values):7.0f} {unit}  min {min(values):7.0f}  max {max(values):7.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright  # the browser tests' dependency, only for this benchmark

    with azurite_env(), DevHost(app_dir=ROOT) as host:
        seconds = store_jobs(args.jobs)
        print(f"stored {args.jobs} jobs through the job store in {seconds:.1f} s")
        url = f"{host.url}/api/ui"
        cold, warm = [], []
        with tempfile.TemporaryDirectory(prefix="dmjob-bench-") as profile, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            measure(browser.new_page(), url, reload=False)  # the host's first requests (imports, indexing)
            for _ in range(args.runs):
                context = browser.new_context()
                page = context.new_page()
                cold.append(measure(page, url, reload=False))
                warm.append(measure(page, url, reload=True))
                context.close()
            browser.close()
            del profile
        load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
        print(f"machine: {os.cpu_count()} cores, load average {load} (1, 5, 15 min) at the end")
        for name, runs in (("cold (fresh context)", cold), ("warm (reload, 304s)", warm)):
            print(f"{name}, {len(runs)} runs, {args.jobs} jobs stored:")
            print(summary("first table", [r["first"] for r in runs]))
            print(summary("rows filled", [r["filled"] for r in runs]))
            print(summary("load event", [r["load"] for r in runs]))
            print(summary("page bytes", [r["bytes"] for r in runs], unit="B "))


if __name__ == "__main__":
    main()
