"""What one orchestrator episode means, as pure phases over plain data, apart from how the engine carries it out.

Local/test host only. The engine (engine.py) owns everything with side effects: leases, thread pools, storage,
calling the orchestrator through the SDK and the ETag-conditional commit. The Durable semantics it promises
(see its docstring) are decided here instead, on history lists, inbox messages and the state dict the SDK
returns, so they can be tested without Azurite, threads or an app. No function here reads a clock, storage or
mutable module state: `now` is passed in, and every result is a new value (inputs are not mutated).

One episode, phase by phase:

1. `triage` the inbox: control requests (terminate, suspend, resume) take effect in arrival order; activity
   results of another execution (an earlier generation, or an earlier instance with the same id) and second
   results of one task (an activity run again) are dropped; the rest may be delivered to the orchestrator.
2. `select_batch`: what this episode delivers: due timers and messages in time order, an external event only
   alone (one event per episode).
3. `deliver`: the batch as history events; completions carry the sequence number of their task, events their
   name (the SDK buffers an event until a wait of that name is yielded).
4. `open_episode` and `replay_history`: the events the orchestrator is woken with, after the past ones
   marked as played.
5. `interpret` the actions the orchestrator returned: new TaskScheduled / TimerCreated events, activities to
   run, timers armed or cancelled, continue_as_new, unsupported actions.
6. `conclude`: the transition: Failed, continued as new (dropping events no wait consumed), Completed, or
   Running.

`plan` chains phases 1-3 and says which of four things the engine has to do: `Drain`, `Terminate`, `Idle` or
`Run` (then 4-6 around the orchestrator call).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import history as h

TERMINAL = frozenset({"Completed", "Failed", "Terminated", "Canceled"})
# Bounds one commit: a table transaction holds at most 100 operations (state + history row + consumed + carried).
MAX_MESSAGES_PER_EPISODE = 80

Message = tuple[str, dict]  # (inbox row key, message body)
Activity = tuple[int, str, str | None]  # (sequence number, activity name, input JSON text)

_UNSUPPORTED = {
    h.CALL_ACTIVITY_WITH_RETRY: "call_activity_with_retry",
    h.CALL_SUB_ORCHESTRATOR: "call_sub_orchestrator",
    h.CALL_SUB_ORCHESTRATOR_WITH_RETRY: "call_sub_orchestrator_with_retry",
    h.CALL_ENTITY: "call_entity",
    h.SIGNAL_ENTITY: "signal_entity",
    h.CALL_HTTP: "call_http",
}


@dataclass
class Snapshot:
    """The instance as an episode sees it: a few fields of its state row and this generation's history."""

    instance_id: str
    name: str
    status: str
    execution_id: str
    timers: dict[str, str] = field(default_factory=dict)  # armed timers: sequence number (text) -> fire time
    history: list[dict] = field(default_factory=list)


# ---- phase 1: inbox triage ------------------------------------------------------------------------------------
@dataclass
class Triage:
    status: str  # after suspend/resume requests
    consumed: list[str] = field(default_factory=list)
    control_events: list[dict] = field(default_factory=list)  # ExecutionSuspended / ExecutionResumed
    deliverable: list[Message] = field(default_factory=list)
    terminate: dict | None = None  # the terminate request, if one came


def triage(
    status: str, execution_id: str, messages: list[Message], now: datetime, completed: frozenset[int] = frozenset()
) -> Triage:
    """Control requests take effect before anything is delivered, so a suspend holds back every completion in
    the inbox (also those that came before it) and a terminate wins over them.

    A terminate ends the triage: messages after it stay in the inbox and are drained once the instance is
    finished. A suspend of a suspended instance (or a resume of a running one) is consumed without an event, so
    repeating a request is harmless.

    A second result of one task (`completed`: the tasks whose result is in history) is dropped: an activity
    runs again when its first result could not be recorded, or was recorded without the engine learning it,
    so two may arrive. The orchestrator sees the first either way: in Azure the duplicate reaches history and
    both DTFx and the Python SDK ignore it (durabletask src/DurableTask.Core/TaskOrchestrationContext.cs
    `LogDuplicateEvent`; azure-functions-durable-python TaskOrchestrationExecutor.set_task_value "Potential
    duplicate Task completion"); the local host keeps it out of history.
    """
    out = Triage(status)
    done = set(completed)
    for rk, msg in messages[:MAX_MESSAGES_PER_EPISODE]:
        kind = msg.get("kind")
        if kind == "terminate":
            out.consumed.append(rk)
            out.terminate = msg
            break
        if kind in ("suspend", "resume"):
            out.consumed.append(rk)
            _toggle(out, kind, msg.get("reason"), now)
        elif kind == "result" and msg.get("executionId") != execution_id:
            out.consumed.append(rk)  # a result for an execution that no longer exists: nobody waits for it
        elif kind == "result" and msg.get("taskId") in done:
            out.consumed.append(rk)  # the task has its result already
        else:
            if kind == "result":
                done.add(msg.get("taskId"))
            out.deliverable.append((rk, msg))
    return out


def completed_tasks(history: list[dict]) -> frozenset[int]:
    """Sequence numbers of the activities whose result is in history."""
    return frozenset(e.get("TaskScheduledId") for e in history if e["EventType"] in (h.TASK_COMPLETED, h.TASK_FAILED))


def _toggle(out: Triage, kind: str, reason: str | None, now: datetime) -> None:
    if kind == "suspend" and out.status != "Suspended":
        out.status = "Suspended"
        out.control_events.append(h.event(h.EXECUTION_SUSPENDED, now, Reason=reason))
    elif kind == "resume" and out.status == "Suspended":
        out.status = "Running"
        out.control_events.append(h.event(h.EXECUTION_RESUMED, now, Reason=reason))


# ---- phase 2: batch selection ---------------------------------------------------------------------------------
def select_batch(deliverable: list[Message], timers: dict[str, str], now: datetime) -> list[tuple[str | None, dict]]:
    """This episode's deliveries: due timers and messages in time order, stopping at the first external event.

    An event is delivered alone (it may open a batch, never join one): if a `task_any` of a wait and a timer or
    activity were resolved by that other completion in the same episode, the wait would be abandoned holding the
    event, and the orchestrator would never see it. Timers come as `(None, {"kind": "timer", ...})` since they
    have no inbox row; a timer sorts before a message of the same instant.
    """
    batch: list[tuple[str | None, dict]] = []
    for rk, msg in _in_time_order(deliverable, timers, now):
        if msg["kind"] == "event":
            if not batch:
                batch.append((rk, msg))
            break
        batch.append((rk, msg))
    return batch


def _in_time_order(deliverable: list[Message], timers: dict[str, str], now: datetime) -> list[tuple[str | None, dict]]:
    candidates: list[tuple[datetime, int, str | None, dict]] = []
    for order, (rk, msg) in enumerate(deliverable):
        candidates.append((h.parse_ts(msg.get("at") or h.ts(now)), order, rk, msg))
    for seq, fire_at in timers.items():
        when = h.parse_ts(fire_at)
        if when <= now:
            candidates.append((when, -1, None, {"kind": "timer", "id": int(seq), "fireAt": fire_at}))
    candidates.sort(key=lambda c: (c[0], c[1]))
    return [(rk, msg) for _, _, rk, msg in candidates]


# ---- phase 3: delivery as history events ----------------------------------------------------------------------
@dataclass
class Delivery:
    events: list[dict] = field(default_factory=list)
    consumed: list[str] = field(default_factory=list)
    fired: list[str] = field(default_factory=list)  # timers that fired (sequence numbers as text)
    completed: list[int] = field(default_factory=list)  # activities with a result (sequence numbers)


def deliver(batch: list[tuple[str | None, dict]], now: datetime) -> Delivery:
    """The batch as the history events the SDK matches: TaskCompleted/TaskFailed on `TaskScheduledId`, TimerFired
    on `TimerId`, EventRaised on `Name`; stamped with the time the message was sent, a timer with its due time."""
    out = Delivery()
    for rk, msg in batch:
        if rk is not None:
            out.consumed.append(rk)
        when = h.parse_ts(msg["at"]) if msg.get("at") else now
        kind = msg["kind"]
        if kind == "timer":
            out.fired.append(str(msg["id"]))
            out.events.append(h.timer_fired(h.parse_ts(msg["fireAt"]), msg["id"], msg["fireAt"]))
        elif kind == "event":
            out.events.append(h.event_raised(when, msg["name"], msg.get("input")))
        elif kind == "result":
            out.completed.append(msg["taskId"])
            out.events.append(_result_event(msg, when))
    return out


def _result_event(msg: dict, when: datetime) -> dict:
    if msg.get("ok"):
        return h.task_completed(when, msg["taskId"], msg.get("result"))
    return h.task_failed(when, msg["taskId"], msg.get("reason", ""), msg.get("details", ""))


# ---- what the engine does with an episode ---------------------------------------------------------------------
@dataclass
class Drain:
    """The instance is already finished: drop what is still in its inbox (at most one episode's worth)."""

    consumed: list[str]


@dataclass
class Terminate:
    """End the instance on request: its history closes with ExecutionTerminated, the reason is its output."""

    events: list[dict]
    consumed: list[str]
    output: str  # JSON text of the reason
    status: str = "Terminated"


@dataclass
class Idle:
    """Nothing for the orchestrator (suspended, or nothing due): record control requests if any came."""

    status: str
    events: list[dict]
    consumed: list[str]
    more: bool  # whether another episode should follow at once


@dataclass
class Run:
    """Wake the orchestrator: `open_episode`, the SDK call, then `conclude`."""

    snapshot: Snapshot
    control_events: list[dict]
    new_events: list[dict]
    consumed: list[str]
    timers: dict[str, str]  # still armed (the fired ones removed)
    completed: list[int]  # activities whose result this episode delivers
    inbox_left: int  # inbox messages this episode leaves for the next

    @property
    def starting(self) -> bool:
        return not self.snapshot.history


Plan = Drain | Terminate | Idle | Run


def plan(snapshot: Snapshot, messages: list[Message], now: datetime) -> Plan:
    """Phases 1-3 on the inbox as read (all of it; at most MAX_MESSAGES_PER_EPISODE are handled)."""
    if snapshot.status in TERMINAL:
        return Drain([rk for rk, _ in messages[:MAX_MESSAGES_PER_EPISODE]])
    triaged = triage(snapshot.status, snapshot.execution_id, messages, now, completed_tasks(snapshot.history))
    if triaged.terminate is not None:
        return terminate(triaged, now)
    if triaged.status == "Suspended":
        return Idle(triaged.status, triaged.control_events, triaged.consumed, more=False)
    batch = select_batch(triaged.deliverable, snapshot.timers, now)
    if not batch and snapshot.history:  # a first episode runs with nothing delivered: ExecutionStarted
        return Idle(triaged.status, triaged.control_events, triaged.consumed, more=bool(triaged.deliverable))
    delivery = deliver(batch, now)
    consumed = triaged.consumed + delivery.consumed
    timers = {seq: at for seq, at in snapshot.timers.items() if seq not in delivery.fired}
    return Run(
        snapshot,
        triaged.control_events,
        delivery.events,
        consumed,
        timers,
        delivery.completed,
        inbox_left=len(messages) - len(consumed),
    )


def terminate(triaged: Triage, now: datetime) -> Terminate:
    """Terminate without running the orchestrator again (the extension does not replay it either)."""
    reason = (triaged.terminate or {}).get("reason")
    events = list(triaged.control_events) + [
        h.orchestrator_started(now),
        h.event(h.EXECUTION_TERMINATED, now, Input=json.dumps(reason)),
        h.orchestrator_completed(now),
        h.event(h.EXECUTION_COMPLETED, now, OrchestrationStatus="Terminated", Result=json.dumps(reason)),
    ]
    return Terminate(events, list(triaged.consumed), json.dumps(reason))


# ---- phase 4: the replay --------------------------------------------------------------------------------------
def open_episode(run: Run, input_text: str | None, now: datetime) -> list[dict]:
    """This episode's events before the orchestrator answers; ExecutionStarted only in a generation's first."""
    snap = run.snapshot
    events = list(run.control_events)
    events.append(h.orchestrator_started(now))
    if run.starting:
        events.append(h.execution_started(now, snap.name, input_text, snap.instance_id, snap.execution_id))
    events.extend(run.new_events)
    return events


def replay_history(history: list[dict], episode_events: list[dict]) -> list[dict]:
    """What the SDK replays: past events played (their tasks resolve silently), this episode's new ones not."""
    return [dict(e, IsPlayed=True) for e in history] + [dict(e) for e in episode_events]


# ---- phase 5: the orchestrator's actions ----------------------------------------------------------------------
@dataclass
class Actions:
    events: list[dict] = field(default_factory=list)  # TaskScheduled / TimerCreated, new ones only
    activities: list[Activity] = field(default_factory=list)
    timers: dict[str, str] = field(default_factory=dict)
    continued: bool = False
    continue_input: Any = None
    unsupported: str | None = None  # the first action devhost can not carry out


def interpret(actions: list, known: list[dict], timers: dict[str, str], now: datetime) -> Actions:
    """Turn the actions into new work. The SDK returns every action of the execution each time, so an action
    whose sequence number already has its TaskScheduled / TimerCreated in `known` was handled before; only a
    cancellation of such a timer is new (`task_any` lost by the timer)."""
    scheduled = {e["EventId"] for e in known if e["EventType"] == h.TASK_SCHEDULED}
    created = {e["EventId"] for e in known if e["EventType"] == h.TIMER_CREATED}
    out = Actions(timers=dict(timers))
    for seq, action in h.flatten_actions(actions):
        kind = action.get("actionType")
        if kind == h.CALL_ACTIVITY:
            if seq not in scheduled:
                _schedule_activity(out, seq, action, now)
        elif kind == h.CREATE_TIMER:
            _timer(out, seq, action, seq in created, now)
        elif kind == h.CONTINUE_AS_NEW_ACTION:
            out.continued = True
            out.continue_input = action.get("input")
        elif kind != h.WAIT_FOR_EXTERNAL_EVENT and out.unsupported is None:
            out.unsupported = f"devhost does not support {_UNSUPPORTED.get(kind, f'action type {kind}')}"
    return out


def _schedule_activity(out: Actions, seq: int, action: dict, now: datetime) -> None:
    name = action.get("functionName")
    out.events.append(h.task_scheduled(now, seq, name, action.get("input")))
    out.activities.append((seq, name, action.get("input")))


def _timer(out: Actions, seq: int, action: dict, known: bool, now: datetime) -> None:
    """A new timer is created and armed, also one the orchestrator cancelled before yielding it. A cancelled
    timer stays armed: the extension creates every CreateTimer action as a DTFx timer and only cancels the
    returned task (azure-functions-durable-extension src/WebJobs.Extensions.DurableTask/Listener/
    OutOfProcOrchestrationShim.cs: `CreateTimer(action.FireAt, cts.Token)` then `cts.Cancel()` if
    `isCanceled`), so the timer message still arrives and wakes the orchestrator for one more replay, in which
    the SDK ignores it. Only the end of the execution (completion, failure, continue_as_new) drops it."""
    if not known:
        out.events.append(h.timer_created(now, seq, action["fireAt"]))
        out.timers[str(seq)] = action["fireAt"]


# ---- phase 6: the transition ----------------------------------------------------------------------------------
@dataclass
class Outcome:
    """Everything a run episode commits, and the work it leaves."""

    events: list[dict]  # appended to the generation's history
    consumed: list[str]
    status: str  # Running, Completed or Failed
    timers: dict[str, str]  # armed after the episode
    activities: list[Activity]  # to start after the commit
    inbox_left: int
    output: str | None = None  # JSON text once finished; None leaves it as it was
    custom_status: str | None = None  # JSON text when the orchestrator set one; None leaves it as it was
    continued: bool = False  # continue_as_new: the engine starts the next generation
    continue_input: Any = None  # the next generation's input (JSON text)
    dropped: list[dict] = field(default_factory=list)  # events continue_as_new discards (no wait consumed them)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    def wants_another(self, now: datetime) -> bool:
        """Whether the engine should run the next episode at once rather than wait for a message or a timer."""
        due = any(h.parse_ts(at) <= now for at in self.timers.values())
        return self.continued or due or self.inbox_left > 0


def conclude(run: Run, episode_events: list[dict], result: dict, now: datetime) -> Outcome:
    """The orchestrator's answer (the SDK's state dict, or one with `error`) as the episode's outcome."""
    snap = run.snapshot
    acts = interpret(result.get("actions") or [], snap.history + episode_events, run.timers, now)
    events = episode_events + acts.events + [h.orchestrator_completed(now)]
    error = result.get("error")
    if error is None:
        error = acts.unsupported
    out = Outcome(
        events,
        list(run.consumed),
        "Running",
        acts.timers,
        acts.activities,
        run.inbox_left,
        custom_status=json.dumps(result["custom_status"]) if "custom_status" in result else None,
        continued=acts.continued and error is None,
        continue_input=acts.continue_input,
    )
    if error is not None:
        _finish(out, "Failed", json.dumps(f"Orchestrator function '{snap.name}' failed: {error}"), now)
    elif result.get("isDone") and acts.continued:
        out.dropped = carried_events(snap.history + events, result.get("actions") or [])
        out.events.append(h.event(h.CONTINUE_AS_NEW, now, Input=acts.continue_input))
        out.timers, out.activities = {}, []
    elif result.get("isDone"):
        _finish(out, "Completed", json.dumps(result.get("output")), now)
    return out


def _finish(out: Outcome, status: str, output: str, now: datetime) -> None:
    out.events.append(h.event(h.EXECUTION_COMPLETED, now, OrchestrationStatus=status, Result=output))
    out.status, out.output = status, output
    out.timers, out.activities = {}, []


def carried_events(history: list[dict], actions: list) -> list[dict]:
    """Events of this generation no live wait consumed (as inbox messages): what continue_as_new discards.

    The extension does not carry them into the new generation: an event raised but not yet consumed when the
    orchestrator continues as new is lost (azure-functions-durable-extension issue #1676; the Python SDK's
    `continue_as_new` has no `preserve_unprocessed_events`). Events still in the inbox (sent after the
    episode's batch) are delivered to the new generation, as queued messages are in Azure."""
    return [
        {"kind": "event", "name": e["Name"], "input": e.get("Input"), "at": e["Timestamp"]}
        for e in h.unconsumed_events(history, actions)
    ]
