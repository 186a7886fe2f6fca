"""Benchmark: what a cold start costs in imports, against the two Functions SDKs alone.

Every scale-out from zero imports `function_app.py` before the host knows the app's functions. Each sample is a
fresh interpreter (`python -c`, site-packages as deployed) that times, with `time.perf_counter` inside the
process (so interpreter start-up, the same for all, is left out):

- `sdks`: `import azure.functions, azure.durable_functions` (the floor: the app cannot import less);
- `app`: `import function_app` (the SDKs, the declarations, the lazy handles; the goal is 1.3x `sdks`);
- `app + first requests`: `import function_app`, then what the first requests of each kind load on top
  (shared.service for the API, shared.jobs.activities + orchestrator for a job's first activities, the schedule
  tick, the webhooks' delivery): the part of the old import cost that moved to the first request using it.

Kinds are interleaved (sdks, app, app+first, sdks, ...) so machine load hits them alike. Prints medians, p90s
and the ratio app / sdks.

    python bench/bench_cold_start.py [--samples 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRST_REQUESTS = [
    "shared.service",
    "shared.jobs.activities",
    "shared.jobs.orchestrator",
    "shared.schedules.runs",
    "shared.webhooks.delivery",
]
KINDS = {
    "sdks": "import azure.functions, azure.durable_functions",
    "app": "import function_app",
    "app + first requests": "import function_app, importlib\n"
    + "".join(f"importlib.import_module({name!r})\n" for name in FIRST_REQUESTS),
}


def sample(code: str) -> float:
    timed = f"import time\n_t = time.perf_counter()\n{code}\nprint(time.perf_counter() - _t)\n"
    out = subprocess.run([sys.executable, "-c", timed], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=15)
    args = parser.parse_args()
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for kind, code in KINDS.items():  # one unmeasured round: the file cache warm for all kinds alike
        sample(code)
    for _ in range(args.samples):
        for kind, code in KINDS.items():
            times[kind].append(sample(code))
    for kind, values in times.items():
        print(f"{kind:22s} median {statistics.median(values) * 1000:6.0f} ms   p90 {p90(values) * 1000:6.0f} ms")
    ratio = statistics.median(times["app"]) / statistics.median(times["sdks"])
    moved = statistics.median(times["app + first requests"]) - statistics.median(times["app"])
    print(f"import function_app / SDKs alone: {ratio:.2f}x (goal <= 1.3x), {args.samples} samples each")
    print(f"loaded later, by the first requests of each kind: {moved * 1000:.0f} ms in all")


if __name__ == "__main__":
    main()
