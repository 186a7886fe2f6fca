"""In-process Durable Functions engine: replays orchestrators through the real Python SDK from stored history.

Local/test host only (production runs on the Functions host with the Durable Task extension). It does what the
extension does for the subset the app uses: call the orchestrator handle with the context JSON, read the actions
it returns, schedule new ones (activities in a thread pool, durable timers on the engine's clock, waits for
external events), append the resulting history events, and wake the orchestrator again when something completes.
What an episode means (inbox triage, what to deliver, the replay, the actions, the transitions) is decided by the
pure phases in episode.py, so it can be tested on history lists; this module carries it out: leases, thread
pools, storage and the commit.

Semantics kept from Durable Functions (each with the source it follows):
* history replay with sequence-numbered completions; external events buffered in history and matched by name;
  the orchestrator gets the extension's full context JSON (`orchestration_context`), so long timers are split
  by the SDK as in Azure;
* activities run at least once: a restarted engine re-runs scheduled activities that have no recorded result;
  one that raises, or runs past host.json `functionTimeout`, completes as TaskFailed with the extension's reason
  text (`activity_failure_reason`); one whose result can not be recorded (storage down) is abandoned and runs
  again after 2^attempt seconds, at most 600, as the Azure Storage provider redelivers an abandoned work item
  (`redelivery_delay`); a second result of one task is dropped (episode.py `triage`);
* an episode that raises (storage down) is retried by the poller; a commit that landed though its answer was
  lost is found on the next conflict, and the activities it scheduled are started then (`_reload`);
* `continue_as_new` starts a new generation (fresh history, same instance id); events raised but not consumed
  by then are discarded, as the extension discards them (issue #1676); messages that arrive later are delivered
  to the new generation;
* a cancelled timer still fires and replays the orchestrator once more (episode.py `_timer`);
* starting an instance id that exists replaces it when it is Completed, Failed or Terminated and is refused when
  it is Pending, Running, Suspended or ContinuedAsNew: the extension's default `overridableExistingInstanceStates`
  is NonRunningStates (src/WebJobs.Extensions.DurableTask/Options/DurableTaskOptions.cs, OverridableStates.cs;
  the Azure Storage provider throws "An Orchestration instance with the status ... already exists.", which the
  HTTP API answers 500: HttpApiHandler.cs);
* at most `maxConcurrentOrchestratorFunctions` episodes and `maxConcurrentActivityFunctions` activities are
  dispatched at once, and their functions run on the worker's one thread pool (worker.py);
* one engine drives an instance at a time (a lease in the instance row, renewed; a new engine takes over when it
  expires, or at start-up when it has the same `worker_id` as the previous owner);
* every episode commits atomically and ETag-conditionally (see store.py), so two engines never interleave.

Deliberate simplifications: external events are delivered one per episode (never batched with other
completions), so an event can not be swallowed by a `task_any` that another completion resolved in the same
episode; `call_activity_with_retry`, sub-orchestrations and entities are not supported (the instance fails with
a clear message). Lease times and functionTimeout use wall time; orchestration time (timers,
`current_utc_datetime`) uses the clock.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from azure.functions import meta
from azure.functions.durable_functions import ActivityTriggerConverter

from . import episode
from . import history as h
from .episode import TERMINAL
from .functions import FunctionIndex, build_kwargs
from .store import STATE_RK, Conflict, Store, history_rk
from .worker import FunctionTimeout, WorkerPool

log = logging.getLogger("devhost.engine")

ACTIVE = {"Pending", "Running", "Suspended", "ContinuedAsNew"}
# Engines in this process by storage identity, so a message written by one wakes the owner at once.
_registry: dict[tuple, set] = {}
_registry_lock = threading.Lock()


class UnknownOrchestrator(Exception):
    pass


class InstanceExists(Exception):
    pass


class NotFound(Exception):
    pass


class Gone(Exception):
    """The instance is completed, failed or terminated (HTTP 410)."""


@dataclass
class _Owned:
    """An instance this engine holds the lease of, with its current generation's history in memory."""

    id: str
    state: dict
    etag: str
    history: list = field(default_factory=list)
    running: set = field(default_factory=set)  # activity sequence ids in flight here
    lock: threading.RLock = field(default_factory=threading.RLock)


@dataclass(frozen=True)
class WorkItem:
    """One activity execution to run: what the Azure Storage provider keeps as a work-item queue message, with
    `attempt` as its DequeueCount."""

    instance_id: str
    execution_id: str
    seq: int
    name: str
    input_text: str | None
    attempt: int = 1

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.instance_id, self.execution_id, self.seq)

    def again(self) -> "WorkItem":
        return WorkItem(self.instance_id, self.execution_id, self.seq, self.name, self.input_text, self.attempt + 1)


def redelivery_delay(attempt: int) -> float:
    """Seconds until an abandoned work item runs again: the Azure Storage provider abandons a work item whose
    completion failed (durabletask src/DurableTask.Core/TaskActivityDispatcher.cs: `AbortWorkItem =
    AbandonTaskActivityWorkItemAsync`, called when CompleteTaskActivityWorkItemAsync throws) by making its
    queue message visible again after 2^DequeueCount seconds, at most 600 (src/DurableTask.AzureStorage/
    Messaging/TaskHubQueue.cs `AbandonMessageAsync`)."""
    return float(min(2 ** min(attempt, 30), 600))


class Tracker:
    """Counts outstanding work (queued/running episodes, activities, timer-trigger runs) for quiescence."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._busy = 0

    def inc(self) -> None:
        with self._cv:
            self._busy += 1

    def dec(self) -> None:
        with self._cv:
            self._busy -= 1
            if self._busy <= 0:
                self._cv.notify_all()

    @property
    def busy(self) -> int:
        return self._busy

    def wait_idle(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while self._busy > 0:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cv.wait(remaining if remaining is not None else 1.0)
            return True


def _json_or_none(text: str | None) -> Any:
    if text is None or text == "":
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


class Engine:
    """Drives the orchestrations of one function app; thread-safe; see module docstring."""

    def __init__(
        self,
        store: Store,
        functions: FunctionIndex,
        clock,
        *,
        worker_id: str | None = None,
        lease_seconds: float = 30.0,
        poll_interval: float = 1.0,
        activity_workers: int = 16,
        orchestrator_workers: int = 4,
        client_binding: Callable[[], str] | None = None,
        on_timer_armed: Callable[[], None] | None = None,
        worker: WorkerPool | None = None,
    ):
        self.store = store
        self.functions = functions
        self.clock = clock
        self.engine_id = uuid.uuid4().hex
        self.worker_id = worker_id or self.engine_id
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.client_binding = client_binding or (lambda: "{}")
        self.on_timer_armed = on_timer_armed or (lambda: None)
        self.tracker = Tracker()
        self._orchestrators = functions.orchestrators()
        self._activities = functions.activities()
        self._owned: dict[str, _Owned] = {}
        self._owned_lock = threading.RLock()
        self._queue_lock = threading.Lock()
        self._queued: set[str] = set()
        self._again: set[str] = set()
        self._failed: set[str] = set()  # instances whose last episode raised (storage trouble): retried by the poller
        self._abandoned: dict[tuple[str, str, int], threading.Timer] = {}  # work items waiting to run again
        self.redelivery_delay = redelivery_delay
        self.redelivered = 0  # work items run again because their result could not be recorded
        # Dispatch slots (host side): maxConcurrentOrchestratorFunctions / maxConcurrentActivityFunctions. The
        # functions themselves run on the worker's one pool (worker.py), shared with HTTP and timer functions.
        self.worker = worker or WorkerPool(None, None)
        self._own_worker = worker is None
        self._orch_pool = ThreadPoolExecutor(orchestrator_workers, thread_name_prefix="devhost-orch")
        self._act_pool = ThreadPoolExecutor(activity_workers, thread_name_prefix="devhost-activity")
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = False

    # ---- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> None:
        with _registry_lock:
            _registry.setdefault(self.store.key, set()).add(self)
        self._started = True
        self._scan_for_work(startup=True)
        t = threading.Thread(target=self._poll_loop, name="devhost-poll", daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self, release: bool = True, timeout: float = 10.0) -> None:
        """Stop driving instances; with `release`, give up leases so another engine takes over at once."""
        self._stop.set()
        with _registry_lock:
            _registry.get(self.store.key, set()).discard(self)
        self._drop_abandoned()
        self._orch_pool.shutdown(wait=True, cancel_futures=True)
        self._act_pool.shutdown(wait=False, cancel_futures=True)
        if self._own_worker:
            self.worker.shutdown()
        for t in self._threads:
            t.join(timeout)
        if release:
            for inst in list(self._owned.values()):
                with inst.lock:
                    try:
                        state = dict(inst.state, leaseOwner="", leaseUntil=0.0)
                        inst.etag = self.store.replace_state(state, inst.etag)
                    except Exception:  # noqa: BLE001 - best effort, the lease expires anyway
                        pass
        self._owned.clear()

    # ---- client operations (used by the HTTP API and by tests directly) -------------------------------------
    def start_new(self, name: str, instance_id: str | None = None, input_text: str | None = None) -> str:
        if name not in self._orchestrators:
            raise UnknownOrchestrator(
                f"The function '{name}' doesn't exist, is disabled, or is not an "
                f"orchestrator function. Additional info: devhost knows "
                f"{sorted(self._orchestrators)}"
            )
        instance_id = instance_id or uuid.uuid4().hex
        if any(c in instance_id for c in "/\\#?") or any(ord(c) < 32 for c in instance_id):
            raise ValueError("instance id may not contain / \\ # ? or control characters")
        now = self.clock.now()
        existing = self.store.get_state(instance_id)
        generation = 1
        if existing is not None:
            old, etag = existing
            if old.get("runtimeStatus") in ACTIVE:
                raise InstanceExists(
                    f"An Orchestration instance with the status {old.get('runtimeStatus')} already exists."
                )
            generation = int(old.get("generation", 0)) + 1
        state = {
            "PartitionKey": instance_id,
            "RowKey": STATE_RK,
            "name": name,
            "runtimeStatus": "Pending",
            "createdTime": h.ts(now),
            "lastUpdatedTime": h.ts(now),
            "generation": generation,
            "executionId": uuid.uuid4().hex,
            "episode": 0,
            "historyEvents": 0,
            "maxHistoryEvents": 0,
            "generations": 1,
            "episodes": 0,
            "timers": "{}",
            "leaseOwner": self.engine_id,
            "leaseWorker": self.worker_id,
            "leaseUntil": time.time() + self.lease_seconds,
        }
        self.store.pack(state, "input", input_text, instance_id)
        if existing is None:
            try:
                etag = self.store.create_state(state)
            except Conflict:
                raise InstanceExists("An Orchestration instance with this id was just created.") from None
        else:
            self._drop_inbox(instance_id)
            try:
                etag = self.store.replace_state(state, existing[1])
            except Conflict:
                raise InstanceExists("An Orchestration instance with this id was just created.") from None
        with self._owned_lock:
            self._owned[instance_id] = _Owned(instance_id, state, etag)
        self._schedule(instance_id)
        return instance_id

    def status(self, instance_id: str, show_history: bool = False, show_input: bool = True) -> dict | None:
        """The status JSON of the Durable HTTP API (`runtimeStatus`, `input`, `output`, ...), None if unknown."""
        got = self.store.get_state(instance_id)
        if got is None:
            return None
        return self._status_json(got[0], show_history, show_input)

    def _status_json(self, state: dict, show_history: bool = False, show_input: bool = True) -> dict:
        out = {
            "name": state.get("name"),
            "instanceId": state["PartitionKey"],
            "runtimeStatus": state.get("runtimeStatus"),
            "input": self.store.unpack(state, "input") if show_input else None,
            "customStatus": _json_or_none(self.store.unpack(state, "customStatus")),
            "output": _json_or_none(self.store.unpack(state, "output")),
            "createdTime": _iso_z(state.get("createdTime")),
            "lastUpdatedTime": _iso_z(state.get("lastUpdatedTime")),
        }
        if show_history:
            out["historyEvents"] = self.store.read_history(state["PartitionKey"], int(state.get("generation", 1)))
        return out

    def list_status(
        self,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        statuses: set[str] | None = None,
        prefix: str | None = None,
        show_input: bool = False,
    ) -> list:
        out = []
        for state in self.store.list_states():
            if statuses and state.get("runtimeStatus") not in statuses:
                continue
            if prefix and not state["PartitionKey"].startswith(prefix):
                continue
            created = h.parse_ts(state["createdTime"]) if state.get("createdTime") else None
            if created_from and created and created < created_from:
                continue
            if created_to and created and created > created_to:
                continue
            out.append(self._status_json(state, show_input=show_input))
        return out

    def stats(self, instance_id: str) -> dict:
        """History length now / at most, generations (continue_as_new count + 1), episodes run."""
        got = self.store.get_state(instance_id)
        if got is None:
            raise NotFound(instance_id)
        s = got[0]
        return {
            "history_events": int(s.get("historyEvents", 0)),
            "max_history_events": int(s.get("maxHistoryEvents", 0)),
            "generations": int(s.get("generations", 1)),
            "episodes": int(s.get("episodes", 0)),
            "runtime_status": s.get("runtimeStatus"),
        }

    def raise_event(self, instance_id: str, name: str, input_text: str | None) -> None:
        self._send(instance_id, {"kind": "event", "name": name, "input": input_text})

    def terminate(self, instance_id: str, reason: str | None = None) -> None:
        self._send(instance_id, {"kind": "terminate", "reason": reason})

    def suspend(self, instance_id: str, reason: str | None = None) -> None:
        self._send(instance_id, {"kind": "suspend", "reason": reason})

    def resume(self, instance_id: str, reason: str | None = None) -> None:
        self._send(instance_id, {"kind": "resume", "reason": reason})

    def purge(self, instance_id: str) -> int:
        got = self.store.get_state(instance_id)
        if got is None:
            return 0
        if got[0].get("runtimeStatus") not in TERMINAL:
            return 0
        with self._owned_lock:
            self._owned.pop(instance_id, None)
        self.store.delete_instance(instance_id)
        return 1

    def purge_by(self, created_from: datetime | None, created_to: datetime | None, statuses: set[str] | None) -> int:
        wanted = (statuses or TERMINAL) & TERMINAL
        return sum(self.purge(s["instanceId"]) for s in self.list_status(created_from, created_to, wanted))

    def _send(self, instance_id: str, message: dict) -> None:
        got = self.store.get_state(instance_id)
        if got is None:
            raise NotFound(instance_id)
        if got[0].get("runtimeStatus") in TERMINAL:
            raise Gone(instance_id)
        message["at"] = h.ts(self.clock.now())
        self.store.put_message(instance_id, message)
        self.notify(instance_id)

    def notify(self, instance_id: str) -> None:
        """Wake whichever engine in this process owns the instance (others notice by polling storage)."""
        with _registry_lock:
            engines = list(_registry.get(self.store.key, {self}))
        for engine in engines:
            if instance_id in engine._owned:
                engine._schedule(instance_id)

    # ---- timers ---------------------------------------------------------------------------------------------
    def next_timer_due(self) -> datetime | None:
        """Earliest pending durable timer of the (non-suspended) instances this engine drives. An instance with
        an episode queued or running is left out: that episode takes its due timers, and when it ends the
        scheduler looks again (`on_timer_armed`), so a due timer never makes the scheduler spin meanwhile (an
        episode that can not reach storage takes seconds to fail)."""
        best = None
        for inst in list(self._owned.values()):
            if inst.state.get("runtimeStatus") not in ("Running", "Pending") or inst.id in self._queued:
                continue
            for fire_at in json.loads(inst.state.get("timers") or "{}").values():
                when = h.parse_ts(fire_at)
                if best is None or when < best:
                    best = when
        return best

    def fire_due_timers(self) -> int:
        """Wake instances whose timers are due on the engine's clock; returns how many were woken."""
        now = self.clock.now()
        woken = 0
        for inst in list(self._owned.values()):
            if inst.state.get("runtimeStatus") not in ("Running", "Pending") or inst.id in self._queued:
                continue
            timers = json.loads(inst.state.get("timers") or "{}")
            if any(h.parse_ts(v) <= now for v in timers.values()):
                self._schedule(inst.id)
                woken += 1
        return woken

    def wait_idle(self, timeout: float | None = 30.0) -> bool:
        return self.tracker.wait_idle(timeout)

    # ---- scheduling -----------------------------------------------------------------------------------------
    def _schedule(self, instance_id: str) -> None:
        if self._stop.is_set():
            return
        with self._queue_lock:
            if instance_id in self._queued:
                self._again.add(instance_id)
                return
            self._queued.add(instance_id)
            self.tracker.inc()
        try:
            self._orch_pool.submit(self._drive, instance_id)
        except RuntimeError:  # pool shut down
            with self._queue_lock:
                self._queued.discard(instance_id)
            self.tracker.dec()

    def _drive(self, instance_id: str) -> None:
        rounds = 0
        try:
            while not self._stop.is_set():
                more = False
                try:
                    more = self._episode(instance_id)
                except Exception:  # noqa: BLE001 - keep the engine alive; the poller retries it (storage trouble)
                    log.exception("episode of %s failed", instance_id)
                    with self._queue_lock:
                        self._failed.add(instance_id)
                rounds += 1
                with self._queue_lock:
                    if (more and rounds < 10_000) or instance_id in self._again:
                        self._again.discard(instance_id)
                        continue
                    self._queued.discard(instance_id)
                    break
            else:
                with self._queue_lock:
                    self._queued.discard(instance_id)
                    self._again.discard(instance_id)
        finally:
            self.on_timer_armed()  # its timers count for the scheduler again (next_timer_due)
            self.tracker.dec()

    # ---- one orchestrator episode ---------------------------------------------------------------------------
    def _episode(self, instance_id: str) -> bool:
        inst = self._owned.get(instance_id)
        if inst is None:
            return False
        with inst.lock:
            for attempt in range(3):
                try:
                    return self._episode_locked(inst)
                except Conflict:
                    if not self._reload(inst):
                        return False
            return False

    def _episode_locked(self, inst: _Owned) -> bool:
        """One episode: what it means is decided in episode.py; here it is carried out and committed."""
        messages = self.store.read_inbox(inst.id)
        now = self.clock.now()
        step = episode.plan(self._snapshot(inst), messages, now)
        if isinstance(step, episode.Run):
            return self._run(inst, step, now)
        if isinstance(step, episode.Terminate):
            return self._terminate(inst, step, now)
        if isinstance(step, episode.Idle):
            return self._idle(inst, step)
        return self._drain(inst, step)

    @staticmethod
    def _snapshot(inst: _Owned) -> episode.Snapshot:
        state = inst.state
        return episode.Snapshot(
            inst.id,
            state.get("name"),
            state.get("runtimeStatus"),
            state.get("executionId"),
            json.loads(state.get("timers") or "{}"),
            inst.history,
        )

    def _drain(self, inst: _Owned, step: episode.Drain) -> bool:
        if step.consumed:
            self._commit(inst, dict(inst.state), [], step.consumed)
        self._disown(inst)
        return False

    def _idle(self, inst: _Owned, step: episode.Idle) -> bool:
        if not (step.events or step.consumed):
            return False
        new_state = dict(inst.state, runtimeStatus=step.status)
        rows = [self._record(inst, new_state, step.events)] if step.events else []
        self._commit(inst, new_state, rows, step.consumed)
        inst.history = inst.history + step.events
        return step.more

    def _terminate(self, inst: _Owned, step: episode.Terminate, now: datetime) -> bool:
        new_state = dict(inst.state, runtimeStatus=step.status, lastUpdatedTime=h.ts(now), timers="{}")
        self.store.pack(new_state, "output", step.output, inst.id)
        row = self._record(inst, new_state, step.events)
        self._commit(inst, new_state, [row], step.consumed)
        inst.history = inst.history + step.events
        self._disown(inst)
        return False

    def _run(self, inst: _Owned, step: episode.Run, now: datetime) -> bool:
        inst.running.difference_update(step.completed)
        input_text = self.store.unpack(inst.state, "input")
        opened = episode.open_episode(step, input_text, now)
        result = self._run_orchestrator(
            step.snapshot.name, inst.id, input_text, episode.replay_history(inst.history, opened)
        )
        outcome = episode.conclude(step, opened, result, now)
        return self._apply(inst, outcome, now)

    def _apply(self, inst: _Owned, outcome: episode.Outcome, now: datetime) -> bool:
        """Commit a run episode, then start what it scheduled; True if another episode should follow at once."""
        state = inst.state
        new_state = dict(
            state,
            runtimeStatus=outcome.status,
            lastUpdatedTime=h.ts(now),
            timers=json.dumps(outcome.timers),
            episodes=int(state.get("episodes", 0)) + 1,
        )
        if outcome.custom_status is not None:
            self.store.pack(new_state, "customStatus", outcome.custom_status, inst.id)
        if outcome.output is not None:
            self.store.pack(new_state, "output", outcome.output, inst.id)
        row = self._record(inst, new_state, outcome.events)
        generation = int(state.get("generation", 1))
        if outcome.continued:
            self._next_generation(inst.id, new_state, outcome.continue_input)
        if outcome.dropped:
            log.info(
                "instance %s continued as new: %d event(s) raised but not consumed are discarded (%s), as "
                "the Durable extension discards them",
                inst.id,
                len(outcome.dropped),
                ", ".join(m["name"] for m in outcome.dropped),
            )
        self._commit(inst, new_state, [row], outcome.consumed)
        if outcome.continued:
            inst.history = []
            inst.running.clear()
            self._delete_generation(inst.id, generation)
        else:
            inst.history = inst.history + outcome.events
        if outcome.finished:
            self._disown(inst)
            return False
        for seq, name, input_text in outcome.activities:
            self._start_activity(inst, new_state["executionId"], seq, name, input_text)
        if outcome.timers:
            self.on_timer_armed()
        return outcome.wants_another(self.clock.now())

    def _next_generation(self, instance_id: str, new_state: dict, input_text: str | None) -> None:
        """continue_as_new: same instance id, fresh history (the old generation's rows are deleted after commit)."""
        new_state["generation"] = int(new_state.get("generation", 1)) + 1
        new_state["generations"] = int(new_state.get("generations", 1)) + 1
        new_state["executionId"] = uuid.uuid4().hex
        new_state["episode"] = 0
        new_state["historyEvents"] = 0
        new_state["runtimeStatus"] = "Running"
        self.store.pack(new_state, "input", input_text, instance_id)
        new_state.pop("output", None)
        new_state.pop("outputBlob", None)

    def _record(self, inst: _Owned, new_state: dict, events: list[dict]) -> dict:
        """The history row of this episode's events; counts them in the state row, which numbers the episode."""
        history_len = len(inst.history) + len(events)
        new_state["historyEvents"] = history_len
        new_state["maxHistoryEvents"] = max(int(new_state.get("maxHistoryEvents", 0)), history_len)
        episode_no = int(new_state.get("episode", 0))
        new_state["episode"] = episode_no + 1
        return self.store.history_row(inst.id, int(new_state.get("generation", 1)), episode_no, events)

    def _commit(self, inst: _Owned, new_state: dict, history_rows: list[dict], consumed: list[str]) -> None:
        """Write one episode atomically; raises Conflict if the row changed (another engine, or a takeover)."""
        new_state["leaseOwner"] = self.engine_id
        new_state["leaseWorker"] = self.worker_id
        new_state["leaseUntil"] = time.time() + self.lease_seconds
        inst.etag = self.store.commit_episode(new_state, inst.etag, list(history_rows), consumed)
        inst.state = new_state

    def _run_orchestrator(self, name: str, instance_id: str, input_text: str | None, replay: list[dict]) -> dict:
        """Call the SDK handle; returns its state dict (isDone/actions/output/customStatus) or one with `error`."""
        info = self._orchestrators[name]
        context = orchestration_context(replay, input_text, instance_id)
        try:
            raw = self.worker.call(info.name, info.func, json.dumps(context))
        except Exception as exc:  # noqa: BLE001 - the orchestrator failed; the SDK packs its state in the message
            text = str(exc)
            marker = "\n\n$OutOfProcData$:"
            state: dict[str, Any] = {}
            if marker in text:
                message, _, payload = text.partition(marker)
                try:
                    state = json.loads(payload)
                except ValueError:
                    state = {}
                state["error"] = state.get("error") or message
            else:
                state = {"error": f"{type(exc).__name__}: {exc}", "actions": []}
            if "customStatus" in state:
                state["custom_status"] = state["customStatus"]
            return state
        state = json.loads(raw) if isinstance(raw, str) else raw
        if "customStatus" in state:
            state["custom_status"] = state["customStatus"]
        return state

    # ---- activities -----------------------------------------------------------------------------------------
    def _start_activity(self, inst: _Owned, execution_id: str, seq: int, name: str, input_text: str | None) -> None:
        if seq in inst.running:
            return
        inst.running.add(seq)
        if not self._launch(WorkItem(inst.id, execution_id, seq, name, input_text)):
            inst.running.discard(seq)

    def _launch(self, item: WorkItem) -> bool:
        self.tracker.inc()
        try:
            self._act_pool.submit(self._activity, item)
        except RuntimeError:  # pool shut down
            self.tracker.dec()
            return False
        return True

    def _activity(self, item: WorkItem) -> None:
        """Run one work item and record its result; a result that can not be recorded abandons the work item."""
        try:
            message = self._invoke(item)
            if self._stop.is_set():
                return
            message["at"] = h.ts(self.clock.now())
            try:
                self.store.put_message(item.instance_id, message)
            except Exception as exc:  # noqa: BLE001 - storage down or failing: run the work item again later
                self._abandon(item, exc)
                return
            self.notify(item.instance_id)
        except Exception:  # noqa: BLE001
            log.exception("activity %s of %s could not report its result", item.name, item.instance_id)
        finally:
            self.tracker.dec()

    def _invoke(self, item: WorkItem) -> dict:
        """Call the activity through the worker: its result message, TaskFailed's if it raised or timed out."""
        name = item.name
        base = {"kind": "result", "executionId": item.execution_id, "taskId": item.seq}
        try:
            info = self._activities.get(name)
            if info is None:
                raise LookupError(f"The function '{name}' doesn't exist, is disabled, or is not an activity function.")
            value = ActivityTriggerConverter.decode(
                meta.Datum(type="json", value=item.input_text or "null"), trigger_metadata=None
            )
            values = {info.trigger.get("name"): value}
            client = info.binding("durableClient")
            if client:
                values[client["name"]] = self.client_binding()
            result = self.worker.invoke(info, build_kwargs(info, values))
            return dict(base, ok=True, result=ActivityTriggerConverter.encode(result, expected_type=None).value)
        except Exception as exc:  # noqa: BLE001 - an activity failure becomes TaskFailed
            return dict(base, ok=False, reason=activity_failure_reason(name, exc), details=traceback.format_exc())

    def _abandon(self, item: WorkItem, error: Exception) -> None:
        """The result is lost: run the work item again after the Azure Storage provider's abandon backoff
        (`redelivery_delay`). It stays in `running`, so nothing else starts it meanwhile; a pending redelivery
        counts as outstanding work (`wait_idle`)."""
        again = item.again()
        delay = self.redelivery_delay(item.attempt)
        log.warning(
            "the result of activity %s (task %d of %s) could not be recorded (%s): it runs again in %.0f s "
            "(attempt %d)",
            item.name,
            item.seq,
            item.instance_id,
            type(error).__name__,
            delay,
            again.attempt,
        )
        timer = threading.Timer(delay, self._redeliver, (again,))
        timer.daemon = True
        with self._owned_lock:
            if self._stop.is_set():
                return
            self.tracker.inc()
            self._abandoned[item.key] = timer
        timer.start()

    def _redeliver(self, item: WorkItem) -> None:
        """An abandoned work item is due: run it again if this engine still drives its execution and the task
        has no result yet (one recorded after all, or a takeover by another engine, ends it here)."""
        with self._owned_lock:
            if self._abandoned.pop(item.key, None) is None:
                return  # the engine stopped
        try:
            inst = self._owned.get(item.instance_id)
            if inst is None or inst.state.get("executionId") != item.execution_id or item.seq not in inst.running:
                return
            if self._launch(item):
                self.redelivered += 1
        finally:
            self.tracker.dec()

    def _drop_abandoned(self) -> None:
        with self._owned_lock:
            timers = list(self._abandoned.values())
            self._abandoned.clear()
        for timer in timers:
            timer.cancel()
            self.tracker.dec()

    # ---- ownership ------------------------------------------------------------------------------------------
    def owns(self, instance_id: str) -> bool:
        return instance_id in self._owned

    def _disown(self, inst: _Owned) -> None:
        with self._owned_lock:
            self._owned.pop(inst.id, None)

    def _reload(self, inst: _Owned) -> bool:
        """After a conflict: re-read the row; keep driving only if this engine still holds the lease."""
        got = self.store.get_state(inst.id)
        if got is None or got[0].get("leaseOwner") != self.engine_id:
            self._disown(inst)
            return False
        inst.state, inst.etag = got
        inst.history = self.store.read_history(inst.id, int(inst.state.get("generation", 1)))
        self._restart_lost(inst)  # a commit that landed though its answer was lost scheduled them
        return True

    def _try_acquire(self, state: dict, etag: str, startup: bool) -> bool:
        instance_id = state["PartitionKey"]
        if instance_id in self._owned or state.get("runtimeStatus") in TERMINAL:
            return False
        owner = state.get("leaseOwner") or ""
        expired = float(state.get("leaseUntil") or 0) < time.time()
        same_worker = startup and state.get("leaseWorker") == self.worker_id and owner != self.engine_id
        if owner and not expired and not same_worker:
            return False
        new_state = dict(
            state, leaseOwner=self.engine_id, leaseWorker=self.worker_id, leaseUntil=time.time() + self.lease_seconds
        )
        try:
            etag = self.store.replace_state(new_state, etag)
        except Conflict:
            return False
        inst = _Owned(instance_id, new_state, etag)
        inst.history = self.store.read_history(instance_id, int(new_state.get("generation", 1)))
        with self._owned_lock:
            self._owned[instance_id] = inst
        log.info("engine %s took over instance %s", self.engine_id[:8], instance_id)
        self._resume_work(inst)
        return True

    def _resume_work(self, inst: _Owned) -> None:
        """Re-run activities that were scheduled but have no result; wake the instance for anything pending."""
        self._restart_lost(inst)
        self.on_timer_armed()
        self._schedule(inst.id)

    def _restart_lost(self, inst: _Owned) -> None:
        """Start the activities of history that have no result, none waiting in the inbox and none running here."""
        with inst.lock:
            done = episode.completed_tasks(inst.history)
            pending_results = {
                m.get("taskId")
                for _, m in self.store.read_inbox(inst.id)
                if m.get("kind") == "result" and m.get("executionId") == inst.state.get("executionId")
            }
            for e in inst.history:
                if e["EventType"] == h.TASK_SCHEDULED and e["EventId"] not in done | pending_results:
                    self._start_activity(inst, inst.state["executionId"], e["EventId"], e["Name"], e.get("Input"))

    def _retry_failed(self) -> None:
        """Drive again the instances whose last episode raised: its messages or timers are still there."""
        with self._queue_lock:
            failed, self._failed = self._failed, set()
        for instance_id in failed:
            if instance_id in self._owned:
                self._schedule(instance_id)

    def _scan_for_work(self, startup: bool = False) -> None:
        for state in self.store.list_states(
            "runtimeStatus ne 'Completed' and runtimeStatus ne 'Failed' and runtimeStatus ne 'Terminated'"
        ):
            if self._stop.is_set():
                return
            got = self.store.get_state(state["PartitionKey"])
            if got is not None:
                self._try_acquire(got[0], got[1], startup)

    def _renew_leases(self) -> None:
        horizon = time.time() + self.lease_seconds / 2
        for inst in list(self._owned.values()):
            if float(inst.state.get("leaseUntil") or 0) > horizon:
                continue
            if not inst.lock.acquire(timeout=0.1):
                continue
            try:
                new_state = dict(inst.state, leaseUntil=time.time() + self.lease_seconds)
                inst.etag = self.store.replace_state(new_state, inst.etag)
                inst.state = new_state
            except Conflict:
                self._reload(inst)
            except Exception:  # noqa: BLE001
                log.exception("lease renewal of %s failed", inst.id)
            finally:
                inst.lock.release()

    def _poll_loop(self) -> None:
        rounds = 0
        while not self._stop.wait(self.poll_interval):
            try:
                self._retry_failed()
                self._renew_leases()
                for instance_id in self.store.partitions_with_inbox():
                    if instance_id in self._owned:
                        if instance_id not in self._queued:
                            self._schedule(instance_id)
                    else:
                        got = self.store.get_state(instance_id)
                        if got is not None:
                            self._try_acquire(got[0], got[1], startup=False)
                rounds += 1
                if rounds % 5 == 0:
                    self._scan_for_work()
            except Exception:  # noqa: BLE001
                if not self._stop.is_set():
                    log.exception("devhost poll failed")

    def _drop_inbox(self, instance_id: str) -> None:
        for rk, _ in self.store.read_inbox(instance_id):
            try:
                self.store.table.delete_entity(instance_id, rk)
            except Exception:  # noqa: BLE001
                pass

    def _delete_generation(self, instance_id: str, generation: int) -> None:
        """Old generations' history is never read again: delete it to keep storage bounded (best effort)."""
        try:
            rows = self.store.table.query_entities(
                "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
                parameters={"pk": instance_id, "lo": history_rk(generation, 0), "hi": history_rk(generation + 1, 0)},
                select=["PartitionKey", "RowKey"],
            )
            for row in rows:
                self.store.table.delete_entity(row["PartitionKey"], row["RowKey"])
        except Exception:  # noqa: BLE001
            log.debug("could not delete old history of %s", instance_id, exc_info=True)


def orchestration_context(history: list[dict], input_text: str | None, instance_id: str) -> dict:
    """The context JSON the extension hands a Python orchestrator (azure-functions-durable-extension
    src/WebJobs.Extensions.DurableTask/Bindings/OrchestrationTriggerAttributeBindingProvider.cs,
    OrchestrationContextToString): `upperSchemaVersion` V2 (= 1) and `upperSchemaVersionNew` V3 (= 2, the enum
    in Listener/OutOfProcOrchestrationShim.cs), and the Azure Storage provider's timer limits as .NET TimeSpans
    (AzureStorageDurabilityProvider.cs: MaximumDelayTime 6 days, LongRunningTimerIntervalLength 3 days), so the
    SDK splits a timer longer than 6 days into 3-day timers (its LongTimerTask) exactly as in Azure."""
    return {
        "history": history,
        "input": input_text,
        "instanceId": instance_id,
        "isReplaying": False,
        "parentInstanceId": None,
        "upperSchemaVersion": 1,
        "upperSchemaVersionNew": 2,
        "longRunningTimerIntervalDuration": "3.00:00:00",
        "maximumShortTimerDuration": "6.00:00:00",
        "defaultHttpAsyncRequestSleepTimeMillseconds": 30000,
    }


def activity_failure_reason(name: str, exc: BaseException) -> str:
    """TaskFailed's reason as the extension words it (src/WebJobs.Extensions.DurableTask/Listener/
    TaskActivityShim.cs): "Activity function '<name>' failed: <message>". A timeout's message is the host's
    FunctionTimeoutException text; a Python exception's is the worker's RpcException message
    (`f"{type}: {exc}"`) as OutOfProcExceptionHelpers.TryGetExceptionWithFriendlyMessage cuts it from
    "Result: Failure\nException: ...\nStack: ...": everything after "\nException:", so with its leading space."""
    if isinstance(exc, FunctionTimeout):
        return f"Activity function '{name}' failed: {exc}"
    return f"Activity function '{name}' failed:  {type(exc).__name__}: {exc}"


def _iso_z(text: str | None) -> str | None:
    if not text:
        return None
    return h.parse_ts(text).strftime("%Y-%m-%dT%H:%M:%SZ")
