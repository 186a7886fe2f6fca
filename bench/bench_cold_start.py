"""Benchmark: what a cold start costs in imports, against the two Functions SDKs alone.

Every scale-out from zero imports `function_app.py` before the host knows the app's functions. Each sample is a
fresh interpreter (`python -c`, site-packages as deployed) that times, with `time.perf_counter` inside the
process (so interpreter start-up, the same for all, is left out):

- `sdks`: `import azure.functions, azure.durable_functions` (the floor: the app cannot import less);
- `app`: `import function_app` (the SDKs, the declarations, the lazy handles; the goal is 1.3x `sdks`);
- `app + first status GET`: `import function_app`, then one `GET /api/jobs/{uid}` answered in process
  (`service.get_job` against a private Azurite holding the job): what the first poll after a scale-out waits
  for on top of the host's own start, storage clients and connection included;
- `app + first requests`: `import function_app`, then what the first requests of each kind load on top
  (shared.service for the API, shared.jobs.activities + orchestrator for a job's first activities, the schedule
  tick, the webhooks' delivery): the part of the old import cost that moved to the first request using it.

Kinds are interleaved (sdks, app, app+first, sdks, ...) so machine load hits them alike. Prints medians, p90s
and the ratio app / sdks.

    python bench/bench_cold_start.py [--samples 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

from _support import ROOT, azurite_env

FIRST_REQUESTS = [
    "shared.service",
    "shared.jobs.activities",
    "shared.jobs.orchestrator",
    "shared.schedules.runs",
    "shared.webhooks.delivery",
]
JOB = {"type": "JOBCORE:Job", "label": "cold", "runner": {"type": "JOBCORE:Simulated", "durationSeconds": 3600}}


def kinds(uid: str) -> dict[str, str]:
    return {
        "sdks": "import azure.functions, azure.durable_functions",
        "app": "import function_app",
        "app + first status GET": f"import function_app\nassert function_app.service.get_job({uid!r})['uid']",
        "app + first requests": "import function_app, importlib\n"
        + "".join(f"importlib.import_module({name!r})\n" for name in FIRST_REQUESTS),
    }


class _NoOrchestrations:
    def start(self, uid, input):
        pass

    def raise_stop(self, uid):
        pass


def stored_job() -> str:
    from shared import service

    return service.start_job(JOB, caller=None, orchestrations=_NoOrchestrations()).uid


def sample(code: str) -> float:
    timed = f"import time\n_t = time.perf_counter()\n{code}\nprint(time.perf_counter() - _t)\n"
    out = subprocess.run(
        [sys.executable, "-c", timed], cwd=ROOT, capture_output=True, text=True, check=True, env={**os.environ}
    )
    return float(out.stdout.strip().splitlines()[-1])


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=15)
    args = parser.parse_args()
    with azurite_env():
        codes = kinds(stored_job())
        times: dict[str, list[float]] = {kind: [] for kind in codes}
        for code in codes.values():  # one unmeasured round: the file cache warm for all kinds alike
            sample(code)
        for _ in range(args.samples):
            for kind, code in codes.items():
                times[kind].append(sample(code))
    for kind, values in times.items():
        print(f"{kind:24s} median {statistics.median(values) * 1000:6.0f} ms   p90 {p90(values) * 1000:6.0f} ms")
    ratio = statistics.median(times["app"]) / statistics.median(times["sdks"])
    moved = statistics.median(times["app + first requests"]) - statistics.median(times["app"])
    print(f"import function_app / SDKs alone: {ratio:.2f}x (goal <= 1.3x), {args.samples} samples each")
    print(f"loaded later, by the first requests of each kind: {moved * 1000:.0f} ms in all")


if __name__ == "__main__":
    main()
