"""`DevHost`: serves a function app like `func start`, plus virtual time control for tests.

Local/test host only: production runs on the real Functions host. Pieces: settings (settings.py), the app's
functions (functions.py) as the worker and the host index them (indexing.py), the worker's one thread pool
(worker.py), HTTP routes (routing.py, http_server.py) and function keys (keys.py), the Durable API
(durable_api.py) backed by the in-process engine (engine.py, episode.py, store.py), and timer triggers
(timers.py).

Time: the host takes a clock (`shared.platform.clock` protocol). With a `ManualClock` nothing fires on wall time; tests
call `advance(seconds)`, which moves the clock to each due durable timer / timer-trigger occurrence in order and
waits for the engine to go quiet after each stop. With the system clock a scheduler thread fires on wall time.

Process-wide state, and what it means for several hosts in one process:
* `shared.platform.clock` is global: the host installs its clock on start (and puts the previous one back on stop), so
  two hosts in one process must share one clock object;
* `os.environ` is global: settings of one host are visible to the other;
* the SDK client's aiohttp session is global: all hosts use one event loop (devhost.loop) for that reason.
Two hosts over one storage work both in one process (distinct `worker_id`s) and in separate processes; each
instance is driven by one engine at a time (leases).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import azure.durable_functions as df

from shared.platform import clock as shared_clock

from . import indexing
from . import loop as shared_loop
from .durable_api import DurableApi, client_binding
from .engine import Engine
from .functions import FunctionIndex, load_app
from .http_server import HttpServer
from .routing import Router
from .keys import Keys
from .settings import EnvironmentPatch, flag, read_host_json, resolve
from .store import Store
from .timers import TimerTriggers, seconds_until
from .worker import DEFAULT_FUNCTION_TIMEOUT, WorkerPool, parse_timespan, thread_count

log = logging.getLogger("devhost")


class DevHost:
    """A local Functions host for one app directory. Use as a context manager or call start()/stop()."""

    def __init__(
        self,
        app_dir: str | Path = ".",
        module: str = "function_app",
        port: int = 0,
        clock=None,
        settings: dict[str, Any] | None = None,
        worker_id: str | None = None,
        *,
        lease_seconds: float = 30.0,
        poll_interval: float = 1.0,
        host_workers: int = 32,
        function_timeout: float | None = None,
        http_workers: int | None = None,
    ):
        self.app_dir = Path(app_dir).resolve()
        self.module = module
        self.requested_port = port
        self.clock = clock or shared_clock.SystemClock()
        self.manual = hasattr(self.clock, "advance") and hasattr(self.clock, "set")
        self.settings = dict(settings or {})
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        # `http_workers` (older name): the host's own threads; function threads are the worker's (worker.py)
        self.host_workers = http_workers or host_workers
        self.function_timeout_override = function_timeout
        self.worker: WorkerPool | None = None
        self.function_errors: dict[str, list[str]] = {}  # functions the host refused, with why
        self.port: int | None = None
        self.engine: Engine | None = None
        self.store: Store | None = None
        self.functions: FunctionIndex | None = None
        self.router: Router | None = None
        self.triggers: TimerTriggers | None = None
        self.hub_name = "TestHubName"
        self._env = EnvironmentPatch()
        self._executor: ThreadPoolExecutor | None = None
        self._server: HttpServer | None = None
        self._previous_clock = None
        self._scheduler: threading.Thread | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._started = False

    # ---- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> "DevHost":
        if self._started:
            return self
        try:
            return self._start()
        except BaseException:
            self._started = True  # let stop() undo whatever was set up
            self.stop(release_leases=True)
            raise

    def _start(self) -> "DevHost":
        self._env.apply(self.app_dir, self.settings)
        self._previous_clock = shared_clock.get_clock()
        shared_clock.set_clock(self.clock)
        host_json = read_host_json(self.app_dir)
        extensions = host_json.get("extensions") or {}
        prefix = (extensions.get("http") or {}).get("routePrefix", "api")
        self.hub_name = resolve((extensions.get("durableTask") or {}).get("hubName")) or "TestHubName"

        app = load_app(self.app_dir, self.module)
        self.functions = self._indexed(FunctionIndex.from_app(app))
        self.router = Router(prefix if prefix is not None else "api")
        for info in self.functions.of_type("httpTrigger"):
            self.router.add(
                info.name,
                info.trigger.get("route"),
                info.trigger.get("methods"),
                info.trigger.get("authLevel", "function"),
                handler=info,
            )

        # The worker's one pool for every sync function; the host's own pool for its storage work.
        self.worker = WorkerPool(thread_count(), self._function_timeout(host_json))
        self._executor = ThreadPoolExecutor(self.host_workers, thread_name_prefix="devhost-host")
        keys = Keys.from_settings(os.environ, self.app_dir) if flag("DEVHOST_REQUIRE_KEYS") else None
        # bind first (the durable client binding needs the port), serve at the end when everything is ready
        self._server = HttpServer(self.router, None, self.worker, self.client_binding_json, keys)
        self.port = self._server.bind(self.requested_port)

        needs_engine = bool(
            self.functions.orchestrators()
            or self.functions.activities()
            or any(f.binding("durableClient") for f in self.functions.all)
        )
        if needs_engine:
            connection = os.environ.get("AzureWebJobsStorage", "")
            prefix_setting = os.environ.get("JOB_ORCHESTRATION_STORE_PREFIX") or "devhost"
            durable = extensions.get("durableTask") or {}
            cpus = os.cpu_count() or 1
            self.store = Store(connection, prefix_setting)
            self.engine = Engine(
                self.store,
                self.functions,
                self.clock,
                worker_id=self.worker_id,
                lease_seconds=self.lease_seconds,
                poll_interval=self.poll_interval,
                activity_workers=int(durable.get("maxConcurrentActivityFunctions") or 10 * cpus),
                orchestrator_workers=int(durable.get("maxConcurrentOrchestratorFunctions") or 10 * cpus),
                client_binding=self.client_binding_json,
                on_timer_armed=self._wake.set,
                worker=self.worker,
            )
            self._server.durable = DurableApi(self.engine, self.binding, self._executor)
            self.engine.start()
        tracker = self.engine.tracker if self.engine else _NullTracker()
        timer_fns = self.functions.of_type("timerTrigger")
        self.triggers = TimerTriggers(
            timer_fns,
            self.clock,
            tracker,
            store=self.store,
            client_binding=self.client_binding_json,
            owner=self.worker_id or "devhost",
            worker=self.worker,
        )
        if not self.manual:
            self._scheduler = threading.Thread(target=self._schedule_loop, name="devhost-scheduler", daemon=True)
            self._scheduler.start()
        elif self.triggers.next_due() is not None and self.triggers.next_due() <= self.clock.now():
            self.triggers.fire_due()  # runOnStartup
        shared_loop.run(self._server.start(), 30)
        self._started = True
        return self

    def stop(self, release_leases: bool = True) -> None:
        """Stop serving. `release_leases=False` simulates a crash: other engines must wait for lease expiry
        (or share this host's worker_id) to take over its instances."""
        if not self._started:
            return
        self._started = False
        self._stopping.set()
        self._wake.set()
        if self._scheduler:
            self._scheduler.join(10)
        if self._server:
            try:
                shared_loop.run(self._server.stop(), 30)
            except Exception:  # noqa: BLE001
                log.exception("server stop failed")
        if self.triggers:
            self.triggers.stop()
        if self.engine:
            self.engine.stop(release=release_leases)
        if self._executor:
            self._executor.shutdown(wait=False, cancel_futures=True)
        if self.worker:
            self.worker.shutdown()
        if self.store:
            self.store.close()
        if self._previous_clock is not None and shared_clock.get_clock() is self.clock:
            shared_clock.set_clock(self._previous_clock)
        self._env.restore()

    def __enter__(self) -> "DevHost":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _indexed(self, index: FunctionIndex) -> FunctionIndex:
        """What the worker and the host would accept (indexing.py): a worker refusal fails the start, as the
        worker's failed metadata response leaves the real host with no functions; a function the host refuses is
        left out with its error logged (and kept in `function_errors`), as ScriptHost does."""
        worker = indexing.worker_problems(index.all)
        if worker:
            raise RuntimeError("; ".join(str(p) for p in worker))
        refused = indexing.host_problems(index.all, dict(os.environ))
        for problem in refused:
            log.error("%s", problem)
            self.function_errors.setdefault(problem.function, []).append(problem.message)
        return FunctionIndex(index.app, [f for f in index.all if f.name not in self.function_errors])

    def _function_timeout(self, host_json: dict) -> float | None:
        """host.json `functionTimeout` (the Flex Consumption default, 30 minutes, when absent; -1: none)."""
        if self.function_timeout_override is not None:
            return self.function_timeout_override
        if "functionTimeout" not in host_json:
            return DEFAULT_FUNCTION_TIMEOUT
        return parse_timespan(host_json.get("functionTimeout"))

    # ---- addresses and bindings -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def binding(self) -> dict:
        return client_binding(self.port or 0, self.hub_name)

    def client_binding_json(self) -> str:
        return json.dumps(self.binding)

    def client(self):
        """A real SDK `DurableOrchestrationClient` for this host; await its methods via `host.run(...)`."""
        return df.DurableOrchestrationClient(self.client_binding_json())

    def run(self, coro, timeout: float | None = 60):
        """Run a coroutine (e.g. an SDK client call) on the host's event loop and return its result."""
        return shared_loop.run(coro, timeout)

    def routes(self) -> list[tuple[str, str, str]]:
        """(function name, methods, URL) like the list `func start` prints."""
        out = []
        for route in sorted(self.router.routes, key=lambda r: r.order):
            methods = ",".join(sorted(route.methods)) if route.methods else "ALL"
            out.append((route.function_name, methods, self.url + self.router.public_path(route)))
        return out

    # ---- time -----------------------------------------------------------------------------------------------
    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no episode is queued/running, no activity and no timer function is running."""
        if self.engine is None:
            return True
        return self.engine.wait_idle(timeout)

    def _next_due(self):
        candidates = [
            t
            for t in (
                self.engine.next_timer_due() if self.engine else None,
                self.triggers.next_due() if self.triggers else None,
            )
            if t is not None
        ]
        return min(candidates) if candidates else None

    def fire_due(self) -> None:
        """Fire what is due on the clock now (durable timers, timer triggers) without moving the clock: for
        several hosts sharing one ManualClock, which the test moves itself."""
        self._fire_due()

    def _fire_due(self) -> None:
        if self.engine:
            self.engine.fire_due_timers()
        if self.triggers:
            self.triggers.fire_due()

    def advance(self, seconds: float, idle_timeout: float = 30.0) -> None:
        """Move a ManualClock forward, stopping at every due durable timer and timer-trigger occurrence."""
        if not self.manual:
            raise RuntimeError("advance() needs a ManualClock (DevHost(clock=ManualClock()))")
        target = self.clock.now() + timedelta(seconds=seconds)
        self._settle(idle_timeout)
        while True:
            nxt = self._next_due()
            if nxt is None or nxt > target:
                self.clock.set(target)
                self._settle(idle_timeout)
                return
            self.clock.set(nxt)
            self._settle(idle_timeout)

    def _settle(self, idle_timeout: float) -> None:
        """Fire whatever is due now and wait for quiet, until nothing more is due at this instant."""
        for _ in range(10_000):
            if not self.wait_idle(idle_timeout):
                raise TimeoutError(f"devhost did not become idle within {idle_timeout}s")
            nxt = self._next_due()
            if nxt is None or nxt > self.clock.now():
                return
            self._fire_due()
        raise RuntimeError("devhost: work keeps becoming due at the same instant")

    def _schedule_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._fire_due()
                wait = seconds_until(self._next_due(), self.clock.now(), 1.0)
            except Exception:  # noqa: BLE001
                log.exception("scheduler round failed")
                wait = 1.0
            self._wake.wait(wait)
            self._wake.clear()


class _NullTracker:
    def inc(self) -> None: ...

    def dec(self) -> None: ...
