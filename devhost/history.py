"""History events and orchestrator actions in the exact JSON shapes the Durable Functions Python SDK reads/writes.

Local/test host only. The SDK (`TaskOrchestrationExecutor`) replays an orchestrator from a list of history events:
it needs `EventType`, `EventId`, `IsPlayed`, `Timestamp` on each, matches activity results on `TaskScheduledId`,
timers on `TimerId`, external events on `Name`, and reads payloads from `Result` (TaskCompleted) / `Input`
(EventRaised) as JSON text. The orchestrator answers with `actions` (schema V2: one flat list of every action of
this execution, append-only, compound WhenAny/WhenAll actions nested); `flatten_actions` gives each atomic
action the sequence number the SDK gave its task, which is what completions must carry.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterator

# HistoryEventType numbers (azure/durable_functions/models/history/HistoryEventType.py)
EXECUTION_STARTED = 0
EXECUTION_COMPLETED = 1
EXECUTION_FAILED = 2
EXECUTION_TERMINATED = 3
TASK_SCHEDULED = 4
TASK_COMPLETED = 5
TASK_FAILED = 6
TIMER_CREATED = 10
TIMER_FIRED = 11
ORCHESTRATOR_STARTED = 12
ORCHESTRATOR_COMPLETED = 13
EVENT_RAISED = 15
CONTINUE_AS_NEW = 16
EXECUTION_SUSPENDED = 19
EXECUTION_RESUMED = 20

# ActionType numbers (azure/durable_functions/models/actions/ActionType.py)
CALL_ACTIVITY = 0
CALL_ACTIVITY_WITH_RETRY = 1
CALL_SUB_ORCHESTRATOR = 2
CALL_SUB_ORCHESTRATOR_WITH_RETRY = 3
CONTINUE_AS_NEW_ACTION = 4
CREATE_TIMER = 5
WAIT_FOR_EXTERNAL_EVENT = 6
CALL_ENTITY = 7
CALL_HTTP = 8
SIGNAL_ENTITY = 9
WHEN_ANY = 11
WHEN_ALL = 12

# Action types whose task gets a sequence number from the SDK (external events are keyed by name instead).
_NUMBERED = {
    CALL_ACTIVITY,
    CALL_ACTIVITY_WITH_RETRY,
    CALL_SUB_ORCHESTRATOR,
    CALL_SUB_ORCHESTRATOR_WITH_RETRY,
    CREATE_TIMER,
    CALL_ENTITY,
    CALL_HTTP,
}
_FIRE_AND_FORGET = {CONTINUE_AS_NEW_ACTION, SIGNAL_ENTITY}


def ts(dt: datetime) -> str:
    """Timestamp format the .NET host sends (ISO 8601, UTC, `Z`)."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(text: str) -> datetime:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def event(event_type: int, when: datetime, event_id: int = -1, **fields: Any) -> dict:
    out = {"EventType": event_type, "EventId": event_id, "IsPlayed": False, "Timestamp": ts(when)}
    out.update({k: v for k, v in fields.items() if v is not None or k in ("Input", "Result")})
    return out


def orchestrator_started(when: datetime) -> dict:
    return event(ORCHESTRATOR_STARTED, when)


def orchestrator_completed(when: datetime) -> dict:
    return event(ORCHESTRATOR_COMPLETED, when)


def execution_started(when: datetime, name: str, input_text: str | None, instance_id: str, execution_id: str) -> dict:
    return event(
        EXECUTION_STARTED,
        when,
        Name=name,
        Input=input_text,
        Version="",
        OrchestrationInstance={"InstanceId": instance_id, "ExecutionId": execution_id},
    )


def task_scheduled(when: datetime, task_id: int, name: str, input_text: str | None) -> dict:
    return event(TASK_SCHEDULED, when, task_id, Name=name, Input=input_text)


def task_completed(when: datetime, task_id: int, result_text: str | None) -> dict:
    return event(TASK_COMPLETED, when, TaskScheduledId=task_id, Result=result_text)


def task_failed(when: datetime, task_id: int, reason: str, details: str) -> dict:
    return event(TASK_FAILED, when, TaskScheduledId=task_id, Reason=reason, Details=details)


def timer_created(when: datetime, timer_id: int, fire_at: str) -> dict:
    return event(TIMER_CREATED, when, timer_id, FireAt=fire_at)


def timer_fired(when: datetime, timer_id: int, fire_at: str) -> dict:
    return event(TIMER_FIRED, when, TimerId=timer_id, FireAt=fire_at)


def event_raised(when: datetime, name: str, input_text: str | None) -> dict:
    return event(EVENT_RAISED, when, Name=name, Input=input_text)


def flatten_actions(actions: list) -> Iterator[tuple[int | None, dict]]:
    """Yield (sequence id or None, atomic action) in the order the SDK numbered their tasks.

    The SDK numbers a task when the orchestrator first yields it (children of a compound task in order) and
    also counts fire-and-forget actions (continue_as_new, signal_entity); external-event waits have no number.
    Actions of schema V2 arrive as `[[a1, a2, ...]]`; V1 as one list per yield: both are walked in order.
    """
    counter = 0

    def walk(action: dict):
        nonlocal counter
        kind = action.get("actionType")
        if kind in (WHEN_ANY, WHEN_ALL):
            for child in action.get("compoundActions", []):
                yield from walk(child)
            return
        if kind in _NUMBERED or kind in _FIRE_AND_FORGET:
            seq = counter
            counter += 1
            yield seq, action
        else:
            yield None, action

    for group in actions or []:
        for action in group if isinstance(group, list) else [group]:
            yield from walk(action)


def unconsumed_events(history: list[dict], actions: list) -> list[dict]:
    """EventRaised events of this generation that no live wait consumed: what `continue_as_new` discards.

    The SDK matches an event to an open wait task by name, or buffers it until a wait is yielded. A wait that
    lost a `task_any` race stays open and silently swallows the next event of its name. Either way Durable
    Functions loses such an event at `continue_as_new` (extension issue #1676), and so does the local engine; it
    only logs them. An event counts as consumed if the wait it went to was still live (no sibling of its
    `task_any` had completed before the event).
    """
    waits = _waits(actions)
    completed_at = _completion_index(history)
    left: list[dict] = []
    for index, e in enumerate(history):
        if e["EventType"] != EVENT_RAISED:
            continue
        wait = next((w for w in waits if w["name"] == e.get("Name") and not w["matched"]), None)
        if wait is None:
            left.append(e)
            continue
        wait["matched"] = True
        if any(completed_at.get(s, len(history)) < index for s in wait["siblings"] or []):
            left.append(e)  # went to an abandoned wait
    return left


def _waits(actions: list) -> list[dict]:
    """Wait occurrences in the order the orchestrator yielded them, each with the sequence numbers of its
    `task_any` siblings (None outside a `task_any`): numbered as `flatten_actions` numbers them."""
    waits: list[dict] = []
    counter = 0

    def walk(action: dict, any_group: list | None) -> None:
        nonlocal counter
        kind = action.get("actionType")
        if kind in (WHEN_ANY, WHEN_ALL):
            group = [] if kind == WHEN_ANY else any_group
            for child in action.get("compoundActions", []):
                walk(child, group)
            return
        if kind in _NUMBERED or kind in _FIRE_AND_FORGET:
            if any_group is not None:
                any_group.append(counter)
            counter += 1
        elif kind == WAIT_FOR_EXTERNAL_EVENT:
            waits.append({"name": action.get("externalEventName"), "siblings": any_group, "matched": False})

    for group in actions or []:
        for action in group if isinstance(group, list) else [group]:
            walk(action, None)
    return waits


def _completion_index(history: list[dict]) -> dict[int, int]:
    """Sequence number -> position in history of the task's first completion (activity result or timer)."""
    completed_at: dict[int, int] = {}
    for index, e in enumerate(history):
        if e["EventType"] in (TASK_COMPLETED, TASK_FAILED):
            completed_at.setdefault(e.get("TaskScheduledId"), index)
        elif e["EventType"] == TIMER_FIRED:
            completed_at.setdefault(e.get("TimerId"), index)
    return completed_at
