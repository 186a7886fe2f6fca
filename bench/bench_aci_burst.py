"""Benchmark: 150 ACI jobs POSTed at once through the full app, against an ARM stand-in that throttles past 100
container group creates per 5 minutes.

Starts its own Azurite and serves the real `function_app.py` with the local host (`devhost.DevHost`) on a
ManualClock, which also drives the ARM stand-in's simulated containers (tests/standins/arm.py: ACI's documented
rates, 100 creates and 100 deletes per 5 minutes, 300 per hour, with Retry-After). The 150 jobs are POSTed
concurrently over HTTP; each goes through its Durable orchestration: the start activity calls the real ACI runner
and SDK, a 429 becomes RetryLater and the orchestrator waits ARM's Retry-After on its durable timer (the job
meanwhile shows `starting` with a message that says why), then polls with back-off until the job ends, and the
finish activity keeps the log and result and deletes the group. The clock is moved with `host.advance(...)` until
every job is final. None may fail for the quota.

Prints: completed, failed, 429s seen (RetryLater raised, Retry-After range), jobs whose start was delayed, groups
left, ARM requests, max Durable history events of a job, simulated time, wall time (and where it went).

    python bench/bench_aci_burst.py [--jobs 150] [--run-seconds 60] [--step 60]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import requests  # noqa: E402
from azure.core.credentials import AccessToken  # noqa: E402

from _support import ROOT, azurite_env  # noqa: E402
from runners.base import RetryLater  # noqa: E402
from shared.platform.clock import ManualClock  # noqa: E402
from tests.standins.arm import ArmStandIn  # noqa: E402

ACI_TYPE = "dmss://WorkflowDS/Blueprints/AzureContainer"
FINAL = {"completed", "failed", "removed"}


class FixedToken:
    def get_token(self, *scopes, **kwargs):
        return AccessToken("bench-token", int(time.time()) + 3600)


class StartProbe:
    """Wraps the registry's runner `start` to count RetryLater and when each job first tried / got started."""

    def __init__(self, runner, elapsed):
        self.original = runner.start
        self.elapsed = elapsed
        self.lock = threading.Lock()
        self.retries = 0
        self.retry_waits: list[float] = []
        self.first_try: dict[str, float] = {}
        self.started: dict[str, float] = {}
        runner.start = self

    def __call__(self, spec):
        now = self.elapsed()
        with self.lock:
            self.first_try.setdefault(spec.uid, now)
        try:
            handle = self.original(spec)
        except RetryLater as error:
            with self.lock:
                self.retries += 1
                self.retry_waits.append(error.retry_after)
            raise
        with self.lock:
            self.started.setdefault(spec.uid, self.elapsed())
        return handle


class Spent:
    """Thread time (summed over threads) spent in wrapped calls, by label: where the wall time goes."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seconds: Counter = Counter()
        self.calls: Counter = Counter()

    def wrap(self, owner, name: str, label: str) -> None:
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                with self.lock:
                    self.seconds[label] += time.perf_counter() - t0
                    self.calls[label] += 1

        setattr(owner, name, timed)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Azurite), from /proc; 0 where there is no /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=150)
    parser.add_argument("--run-seconds", type=float, default=60.0, help="how long each job's container runs")
    parser.add_argument("--step", type=float, default=60.0, help="simulated seconds per host.advance() call")
    parser.add_argument("--max-simulated", type=float, default=4 * 3600.0, help="give up after this much")
    args = parser.parse_args()

    manual = ManualClock()
    arm = ArmStandIn(clock=manual.now, start_delay=20.0).start()  # ACI's rates: 100 creates/deletes per 5 min
    settings = {
        "AZURE_RESOURCE_MANAGER_URL": arm.url,
        "AZURE_SUBSCRIPTION_ID": "bench-sub",
        "ACI_RESOURCE_GROUP": "bench-rg",
        "ACI_LOCATION": "norwayeast",
        "ACI_REGISTRY_SERVER": "",
        "ACI_KEEP_FAILED_GROUPS": "false",
        "LOG_TAIL_LINES": "50",
        "DM_JOB_URL": "http://127.0.0.1:0/api/jobs",
        "SCHEDULE_TICK": "0 * * * * *",
    }
    script = f"echo starting; sleep {args.run_seconds:g}; echo done"
    body = {
        "type": "dmss://WorkflowDS/Blueprints/Job",
        "label": "bench",
        "runner": {
            "type": ACI_TYPE,
            "name": "bench",
            "containerImage": "busybox:1.36",
            "customCommand": ["sh", "-c", script],
        },
    }

    from devhost import DevHost
    from runners.registry import default_registry
    from shared.jobs import activities as lifecycle

    runner = default_registry().get(ACI_TYPE)
    runner.use_credential(FixedToken())
    t0_sim = manual.now()

    def elapsed() -> float:
        return (manual.now() - t0_sim).total_seconds()

    probe = StartProbe(runner, elapsed)
    spent = Spent()
    spent.wrap(runner, "status", "runner.status")
    for name in ("start", "poll", "finish"):  # the activities, as function_app calls them
        spent.wrap(lifecycle, name, f"activity {name}")
    phases: dict[str, float] = {}
    throttled_view = None
    try:
        with (
            azurite_env(**settings) as azurite,
            DevHost(app_dir=ROOT, clock=manual, settings=settings, http_workers=64) as host,
        ):
            engine = host.engine
            spent.wrap(engine, "_run_orchestrator", "orchestrator replay (SDK)")
            spent.wrap(engine.store, "read_inbox", "engine: read inbox")
            spent.wrap(engine.store, "commit_episode", "engine: commit episode")
            spent.wrap(engine, "_episode", "engine: whole episodes")
            http = requests.Session()
            http.mount("http://", requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=64))
            cpu0, azurite_cpu0 = time.process_time(), cpu_seconds(azurite.process.pid)
            t0_wall = time.perf_counter()

            def post(i: int) -> str:
                response = http.post(f"{host.url}/api/jobs", json={**body, "label": f"bench-{i}"}, timeout=120)
                assert response.status_code == 202, response.text
                return response.json()["uid"]

            with ThreadPoolExecutor(64) as pool:
                uids = list(pool.map(post, range(args.jobs)))
            phases[f"{args.jobs} POSTs"] = time.perf_counter() - t0_wall
            mark = time.perf_counter()
            host.wait_idle(120)
            phases["first starts"] = time.perf_counter() - mark

            # the throttled jobs wait on their durable timer, `starting`, saying why
            for uid in uids:
                if uid not in probe.started:
                    view = http.get(f"{host.url}/api/jobs/{uid}", timeout=30).json()
                    assert view["status"] == "starting", view
                    assert view["message"].startswith(
                        "waiting to start: ACI is throttling container group creation; retrying in "
                    ), view["message"]
                    throttled_view = view
                    break

            stops = Counter()
            original_settle = host._settle

            def counted_settle(idle_timeout):
                stops[manual.now()] += 1
                return original_settle(idle_timeout)

            host._settle = counted_settle
            mark = time.perf_counter()
            advances = 0
            wanted = set(uids)
            while elapsed() < args.max_simulated:
                host.advance(args.step, idle_timeout=120)
                advances += 1
                listed = http.get(f"{host.url}/api/jobs", params={"limit": 1000}, timeout=30).json()["jobs"]
                if sum(1 for j in listed if j["uid"] in wanted and j["status"] in FINAL) == len(uids):
                    break
            phases[f"host.advance x{advances} ({len(stops)} clock stops)"] = time.perf_counter() - mark
            wall = time.perf_counter() - t0_wall
            cpu, azurite_cpu = time.process_time() - cpu0, cpu_seconds(azurite.process.pid) - azurite_cpu0
            simulated = elapsed()

            stats = [engine.stats(uid) for uid in uids]
            finals = {uid: http.get(f"{host.url}/api/jobs/{uid}", timeout=30).json() for uid in uids}
    finally:
        runner.use_credential(None)
        arm.stop()

    completed = sum(1 for v in finals.values() if v["status"] == "completed")
    failed = [v for v in finals.values() if v["status"] != "completed"]
    delays = sorted(probe.started[u] - probe.first_try[u] for u in probe.started)
    waits = probe.retry_waits
    print(f"jobs               {args.jobs}")
    print(f"completed          {completed}")
    print(f"failed             {len(failed)}")
    for view in failed[:5]:
        print(f"  {view['uid']}: {view['status']}: {view['message']}")
    print(
        f"429s seen          {arm.counts['throttled']} on create (RetryLater raised {probe.retries}x; "
        f"Retry-After {min(waits, default=0):g}..{max(waits, default=0):g} s), "
        f"{arm.counts.get('delete_throttled', 0)} on delete"
    )
    if throttled_view:
        print(f"throttled job      {throttled_view['status']}: {throttled_view['message']}")
    print(f"start delayed      {sum(1 for d in delays if d > 0)} jobs, max {max(delays, default=0):g} s")
    print(f"groups left        {len(arm.group_names())}")
    kinds = Counter(
        f"{method} {'logs' if path.endswith('/logs') else path.rsplit('/', 1)[-1] if method == 'POST' else 'group'}"
        for method, path, _status in arm.requests
    )
    print(
        f"ARM requests       {arm.counts['requests']} ({arm.counts['creates']} creates, "
        f"{arm.counts['deletes']} deletes; " + ", ".join(f"{k} {v}" for k, v in kinds.most_common()) + ")"
    )
    settle = spent.calls["runner.status"] - spent.calls["activity poll"] - spent.calls["activity finish"]
    print(
        f"runner.status      {spent.calls['runner.status']} calls: {spent.calls['activity poll']} polls, "
        f"{spent.calls['activity finish']} in finish, {settle} in start's settle loop"
    )
    print(
        f"max history events {max(s['max_history_events'] for s in stats)} "
        f"(generations max {max(s['generations'] for s in stats)}, "
        f"{sum(s['episodes'] for s in stats)} episodes in all)"
    )
    print(f"simulated time     {simulated:.0f} s ({simulated / 60:.1f} min)")
    print(f"wall time          {wall:.2f} s")
    for name, seconds in phases.items():
        print(f"  {name:<40} {seconds:6.2f} s")
    print(
        f"CPU                app process {cpu:.1f} s, Azurite {azurite_cpu:.1f} s "
        f"(over {wall:.1f} s wall, {os.cpu_count()} CPUs)"
    )
    print("thread time in     (summed over threads)")
    for label in sorted(spent.seconds, key=spent.seconds.get, reverse=True):
        n = spent.calls[label]
        print(
            f"  {label:<40} {spent.seconds[label]:6.1f} s in {n} calls ({1000 * spent.seconds[label] / n:.1f} ms each)"
        )
    ok = (
        completed == args.jobs
        and not arm.group_names()
        and throttled_view is not None
        and all(s["runtime_status"] == "Completed" for s in stats)
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
