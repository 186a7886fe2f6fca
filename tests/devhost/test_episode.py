"""The pure episode phases (devhost/episode.py) on hand-built history lists and inbox messages: no storage, no
threads; the last tests drive orchestrators of the sample app through the real SDK with these phases alone."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from devhost import episode
from devhost import history as h
from devhost.functions import FunctionIndex

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
EXEC = "exec-1"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def snap(history=None, status="Running", timers=None, name="orch") -> episode.Snapshot:
    return episode.Snapshot("iid", name, status, EXEC, dict(timers or {}), list(history or []))


def started(seconds: float = 0) -> list[dict]:
    """The first episode of a generation as the engine records it."""
    return [h.orchestrator_started(at(seconds)), h.execution_started(at(seconds), "orch", "null", "iid", EXEC)]


def result(task_id: int, value, seconds: float = 1, ok: bool = True, execution_id: str = EXEC) -> dict:
    msg = {"kind": "result", "executionId": execution_id, "taskId": task_id, "ok": ok, "at": h.ts(at(seconds))}
    if ok:
        msg["result"] = json.dumps(value)
    else:
        msg.update(reason=value, details="Traceback ...")
    return msg


def raised(name: str, value, seconds: float = 1) -> dict:
    return {"kind": "event", "name": name, "input": json.dumps(value), "at": h.ts(at(seconds))}


def inbox(*messages: dict) -> list[tuple[str, dict]]:
    return [(f"q{i:03d}", m) for i, m in enumerate(messages)]


def activity(name: str, value) -> dict:
    return {"actionType": h.CALL_ACTIVITY, "functionName": name, "input": json.dumps(value)}


def timer(seconds: float, canceled: bool = False) -> dict:
    return {"actionType": h.CREATE_TIMER, "fireAt": h.ts(at(seconds)), "isCanceled": canceled}


def wait(name: str) -> dict:
    return {"actionType": h.WAIT_FOR_EXTERNAL_EVENT, "externalEventName": name}


def any_of(*actions: dict) -> dict:
    return {"actionType": h.WHEN_ANY, "compoundActions": list(actions)}


def types(events: list[dict]) -> list[int]:
    return [e["EventType"] for e in events]


def run_once(s: episode.Snapshot, messages, answer: dict, now: datetime) -> episode.Outcome:
    """plan -> open_episode -> (the orchestrator's `answer`) -> conclude, as the engine does."""
    step = episode.plan(s, messages, now)
    assert isinstance(step, episode.Run), step
    return episode.conclude(step, episode.open_episode(step, "null", now), answer, now)


# ---- the first episode -----------------------------------------------------------------------------------------
def test_first_episode_starts_the_execution_and_schedules_activities():
    step = episode.plan(snap(status="Pending"), [], at(0))
    assert isinstance(step, episode.Run) and step.starting
    opened = episode.open_episode(step, '{"n": 1}', at(0))
    assert types(opened) == [h.ORCHESTRATOR_STARTED, h.EXECUTION_STARTED]
    assert opened[1]["Input"] == '{"n": 1}'
    assert opened[1]["OrchestrationInstance"] == {"InstanceId": "iid", "ExecutionId": EXEC}

    out = episode.conclude(step, opened, {"isDone": False, "actions": [[activity("a", 1), activity("b", 2)]]}, at(0))
    assert out.status == "Running" and out.output is None
    assert out.activities == [(0, "a", "1"), (1, "b", "2")]
    assert types(out.events)[-3:] == [h.TASK_SCHEDULED, h.TASK_SCHEDULED, h.ORCHESTRATOR_COMPLETED]
    assert [e["EventId"] for e in out.events if e["EventType"] == h.TASK_SCHEDULED] == [0, 1]


def test_replay_marks_past_events_played_and_leaves_inputs_alone():
    history = started()
    new = [h.orchestrator_started(at(5))]
    replay = episode.replay_history(history, new)
    assert [e["IsPlayed"] for e in replay] == [True, True, False]
    assert all(not e["IsPlayed"] for e in history)


# ---- activity completions ---------------------------------------------------------------------------------------
def test_activity_completion_resolves_the_task_with_its_sequence_number():
    history = started() + [
        h.task_scheduled(at(0), 0, "a", "1"),
        h.task_scheduled(at(0), 1, "b", "2"),
        h.orchestrator_completed(at(0)),
    ]
    step = episode.plan(snap(history), inbox(result(1, "B")), at(2))
    assert isinstance(step, episode.Run) and not step.starting
    assert step.completed == [1] and step.consumed == ["q000"]
    [completed] = step.new_events
    assert completed["EventType"] == h.TASK_COMPLETED and completed["TaskScheduledId"] == 1
    assert completed["Result"] == '"B"' and completed["Timestamp"] == h.ts(at(1))  # the time it was sent

    # the SDK returns every action each time: tasks 0 and 1 are not scheduled again, task 2 is new
    out = episode.conclude(
        step,
        episode.open_episode(step, None, at(2)),
        {"isDone": False, "actions": [[activity("a", 1), activity("b", 2), activity("c", 3)]]},
        at(2),
    )
    assert out.activities == [(2, "c", "3")]


def test_activity_failure_becomes_task_failed():
    step = episode.plan(
        snap(started() + [h.task_scheduled(at(0), 0, "a", "1")]),
        inbox(result(0, "Activity function 'a' failed: ValueError: x", ok=False)),
        at(2),
    )
    [failed] = step.new_events
    assert failed["EventType"] == h.TASK_FAILED and failed["TaskScheduledId"] == 0
    assert failed["Reason"].startswith("Activity function 'a' failed") and failed["Details"] == "Traceback ..."


def test_result_of_another_execution_is_dropped_not_delivered():
    step = episode.plan(snap(started()), inbox(result(0, 1, execution_id="previous-generation")), at(2))
    assert isinstance(step, episode.Idle)
    assert step.consumed == ["q000"] and step.events == [] and not step.more


def test_a_second_result_of_a_task_is_dropped_in_history_and_in_the_inbox():
    """An activity run again (its first result could not be recorded, or was recorded unbeknown) may leave two
    results: the first is delivered, the other consumed without an event."""
    history = started() + [
        h.task_scheduled(at(0), 0, "a", "1"),
        h.task_scheduled(at(0), 1, "b", "2"),
        h.task_completed(at(1), 0, '"A"'),
    ]
    messages = inbox(result(0, "A again"), result(1, "B"), result(1, "B again", seconds=2))
    step = episode.plan(snap(history), messages, at(3))
    assert isinstance(step, episode.Run)
    assert [(e["TaskScheduledId"], e["Result"]) for e in step.new_events] == [(1, '"B"')]
    assert sorted(step.consumed) == ["q000", "q001", "q002"] and step.inbox_left == 0
    only_duplicates = episode.plan(snap(history + step.new_events), inbox(result(1, "B late")), at(4))
    assert isinstance(only_duplicates, episode.Idle) and only_duplicates.consumed == ["q000"]
    assert only_duplicates.events == [] and not only_duplicates.more


def test_completions_in_time_order_are_batched():
    history = started() + [h.task_scheduled(at(0), 0, "a", "1"), h.task_scheduled(at(0), 1, "b", "2")]
    step = episode.plan(snap(history), inbox(result(1, "late", seconds=3), result(0, "early", seconds=2)), at(4))
    assert [e["TaskScheduledId"] for e in step.new_events] == [0, 1]
    assert step.consumed == ["q001", "q000"] and step.inbox_left == 0


# ---- external events --------------------------------------------------------------------------------------------
def test_event_is_delivered_alone_and_before_the_wait_for_it():
    """Raised before the orchestrator waits for it: delivered anyway (the SDK buffers it by name), alone."""
    history = started()  # the orchestrator waits for "go", not "go2"
    messages = inbox(raised("go2", "second", seconds=1), raised("go", "first", seconds=2))
    step = episode.plan(snap(history), messages, at(3))
    [event] = step.new_events
    assert event["EventType"] == h.EVENT_RAISED and event["Name"] == "go2" and event["Input"] == '"second"'
    assert step.consumed == ["q000"] and step.inbox_left == 1

    out = episode.conclude(
        step, episode.open_episode(step, None, at(3)), {"isDone": False, "actions": [[wait("go")]]}, at(3)
    )
    assert out.wants_another(at(3))  # the second event waits in the inbox


def test_event_never_joins_a_batch_of_other_completions():
    history = started() + [h.task_scheduled(at(0), 0, "a", "1"), h.task_scheduled(at(0), 1, "b", "2")]
    messages = inbox(result(0, "x", seconds=1), raised("go", 1, seconds=2), result(1, "y", seconds=3))
    step = episode.plan(snap(history), messages, at(4))
    assert types(step.new_events) == [h.TASK_COMPLETED]  # stops at the event
    assert step.consumed == ["q000"] and step.inbox_left == 2


# ---- durable timers ----------------------------------------------------------------------------------------------
def test_due_timer_fires_and_is_disarmed():
    history = started() + [h.timer_created(at(0), 0, h.ts(at(60)))]
    assert isinstance(episode.plan(snap(history, timers={"0": h.ts(at(60))}), [], at(59)), episode.Idle)

    step = episode.plan(snap(history, timers={"0": h.ts(at(60))}), [], at(60))
    [fired] = step.new_events
    assert fired["EventType"] == h.TIMER_FIRED and fired["TimerId"] == 0 and fired["Timestamp"] == h.ts(at(60))
    assert step.timers == {} and step.consumed == []


def test_timer_sorts_before_a_message_of_the_same_instant():
    history = started() + [h.timer_created(at(0), 0, h.ts(at(10))), h.task_scheduled(at(0), 1, "a", "1")]
    step = episode.plan(snap(history, timers={"0": h.ts(at(10))}), inbox(result(1, 2, seconds=10)), at(10))
    assert types(step.new_events) == [h.TIMER_FIRED, h.TASK_COMPLETED]


def test_timer_created_once_and_still_armed_when_the_race_is_lost():
    """The extension creates the timer and only cancels its task: it still fires (one more replay)."""
    race = [[any_of(timer(60), wait("approve"))]]
    first = run_once(snap(status="Pending"), [], {"isDone": False, "actions": race}, at(0))
    assert first.timers == {"0": h.ts(at(60))}
    assert [e["FireAt"] for e in first.events if e["EventType"] == h.TIMER_CREATED] == [h.ts(at(60))]

    history = first.events
    won = [[any_of(timer(60, canceled=True), wait("approve"))]]
    out = run_once(
        snap(history, timers=first.timers),
        inbox(raised("approve", "alice", seconds=30)),
        {"isDone": False, "actions": won},
        at(30),
    )
    assert out.timers == first.timers and h.TIMER_CREATED not in types(out.events)

    # created already cancelled (the event was buffered): created and armed all the same
    out = run_once(snap(status="Pending"), [], {"isDone": False, "actions": won}, at(0))
    assert out.timers == {"0": h.ts(at(60))} and h.TIMER_CREATED in types(out.events)


# ---- transitions -----------------------------------------------------------------------------------------------
def test_completed_orchestrator_finishes_with_its_output():
    history = started() + [h.task_scheduled(at(0), 0, "a", "1")]
    out = run_once(
        snap(history, timers={"5": h.ts(at(99))}),
        inbox(result(0, 2)),
        {"isDone": True, "output": {"sum": 2}, "actions": [[activity("a", 1)]], "custom_status": {"step": "done"}},
        at(2),
    )
    assert out.status == "Completed" and out.finished and out.output == '{"sum": 2}'
    assert out.custom_status == '{"step": "done"}'
    assert out.events[-1]["EventType"] == h.EXECUTION_COMPLETED
    assert out.events[-1]["OrchestrationStatus"] == "Completed" and out.events[-1]["Result"] == '{"sum": 2}'
    assert out.timers == {} and out.activities == [] and not out.continued


def test_failed_orchestrator():
    out = run_once(snap(started()), inbox(raised("go", 1)), {"error": "ValueError: boom", "actions": []}, at(2))
    assert out.status == "Failed" and out.finished
    assert json.loads(out.output) == "Orchestrator function 'orch' failed: ValueError: boom"
    assert types(out.events)[-2:] == [h.ORCHESTRATOR_COMPLETED, h.EXECUTION_COMPLETED]
    assert out.events[-1]["OrchestrationStatus"] == "Failed"
    assert out.custom_status is None  # not set: the stored one stays


@pytest.mark.parametrize(
    "kind, name",
    [
        (h.CALL_SUB_ORCHESTRATOR, "call_sub_orchestrator"),
        (h.CALL_ACTIVITY_WITH_RETRY, "call_activity_with_retry"),
        (h.CALL_ENTITY, "call_entity"),
    ],
)
def test_unsupported_action_fails_the_instance_and_schedules_nothing(kind, name):
    out = run_once(
        snap(status="Pending"),
        [],
        {"isDone": False, "actions": [[activity("a", 1), {"actionType": kind, "input": "null"}]]},
        at(0),
    )
    assert out.status == "Failed" and out.activities == []
    assert f"devhost does not support {name}" in json.loads(out.output)


def test_continue_as_new_drops_events_no_live_wait_consumed():
    """Round: task_any(timer 0, wait "ping"); the timer won, activity 1 ran, then continue_as_new (seq 2).
    A "ping" raised after the timer fired went to the abandoned wait: continue_as_new discards it (#1676)."""
    history = started() + [
        h.timer_created(at(0), 0, h.ts(at(10))),
        h.orchestrator_completed(at(0)),
        h.orchestrator_started(at(10)),
        h.timer_fired(at(10), 0, h.ts(at(10))),
        h.task_scheduled(at(10), 1, "add_one", "0"),
        h.orchestrator_completed(at(10)),
        h.orchestrator_started(at(11)),
        h.event_raised(at(11), "ping", '"late"'),
        h.orchestrator_completed(at(11)),
    ]
    actions = [
        [
            any_of(timer(10), wait("ping")),
            activity("add_one", 0),
            {"actionType": h.CONTINUE_AS_NEW_ACTION, "input": '{"round": 1}'},
        ]
    ]
    out = run_once(
        snap(history), inbox(result(1, 1, seconds=12)), {"isDone": True, "output": None, "actions": actions}, at(12)
    )
    assert out.continued and out.continue_input == '{"round": 1}' and out.status == "Running"
    assert out.dropped == [{"kind": "event", "name": "ping", "input": '"late"', "at": h.ts(at(11))}]
    assert out.events[-1]["EventType"] == h.CONTINUE_AS_NEW and out.events[-1]["Input"] == '{"round": 1}'
    assert out.timers == {} and out.activities == [] and out.output is None
    assert out.wants_another(at(12))


def test_continue_as_new_reports_only_events_no_wait_consumed():
    history = started() + [h.timer_created(at(0), 0, h.ts(at(10))), h.event_raised(at(5), "ping", '"p1"')]
    actions = [
        [any_of(timer(10, canceled=True), wait("ping")), {"actionType": h.CONTINUE_AS_NEW_ACTION, "input": "{}"}]
    ]
    out = run_once(
        snap(history, timers={"0": h.ts(at(10))}),
        inbox(raised("other", 1, seconds=5)),
        {"isDone": True, "actions": actions},
        at(6),
    )
    assert out.continued
    # "ping" went to the live wait; "other" (delivered now, never waited for) is dropped
    assert [m["name"] for m in out.dropped] == ["other"]


# ---- control requests -------------------------------------------------------------------------------------------
def test_terminate_wins_and_leaves_later_messages_for_the_drain():
    history = started() + [h.task_scheduled(at(0), 0, "a", "1")]
    messages = inbox(result(0, 1), {"kind": "terminate", "reason": "enough"}, raised("go", 1))
    step = episode.plan(snap(history), messages, at(3))
    assert isinstance(step, episode.Terminate)
    assert step.consumed == ["q001"] and step.output == '"enough"' and step.status == "Terminated"
    assert types(step.events) == [
        h.ORCHESTRATOR_STARTED,
        h.EXECUTION_TERMINATED,
        h.ORCHESTRATOR_COMPLETED,
        h.EXECUTION_COMPLETED,
    ]
    assert step.events[-1]["OrchestrationStatus"] == "Terminated"

    drained = episode.plan(snap(history, status="Terminated"), messages, at(4))
    assert isinstance(drained, episode.Drain) and drained.consumed == ["q000", "q001", "q002"]


def test_suspend_holds_back_deliveries_and_resume_releases_them():
    history = started()
    held = episode.plan(snap(history), inbox(raised("go", 1), {"kind": "suspend", "reason": "hold"}), at(2))
    assert isinstance(held, episode.Idle) and held.status == "Suspended" and not held.more
    assert held.consumed == ["q001"] and types(held.events) == [h.EXECUTION_SUSPENDED]

    again = episode.plan(
        snap(history + held.events, status="Suspended"), inbox(raised("go", 1), {"kind": "suspend"}), at(3)
    )
    assert again.events == [] and again.consumed == ["q001"]  # a repeated suspend is harmless

    resumed = episode.plan(
        snap(history + held.events, status="Suspended"),
        inbox(raised("go", 1), {"kind": "resume", "reason": "go on"}),
        at(4),
    )
    assert isinstance(resumed, episode.Run)
    assert types(resumed.control_events) == [h.EXECUTION_RESUMED]
    assert types(episode.open_episode(resumed, None, at(4)))[:2] == [h.EXECUTION_RESUMED, h.ORCHESTRATOR_STARTED]
    assert resumed.consumed == ["q001", "q000"]


def test_one_episode_handles_at_most_max_messages():
    limit = episode.MAX_MESSAGES_PER_EPISODE
    history = started() + [h.task_scheduled(at(0), i, "a", "1") for i in range(limit + 5)]
    step = episode.plan(snap(history), inbox(*[result(i, i) for i in range(limit + 5)]), at(2))
    assert len(step.new_events) == limit and step.inbox_left == 5


# ---- the phases alone drive real orchestrators through the SDK ----------------------------------------------------
def drive(
    orchestrator,
    messages: list[dict],
    now: datetime,
    input_text: str | None = None,
    history: list[dict] | None = None,
    timers: dict | None = None,
):
    """Episodes until nothing is left to deliver, each with the real SDK: no engine, no storage."""
    history, timers, queue = list(history or []), dict(timers or {}), inbox(*messages)
    out = None
    for _ in range(20):
        step = episode.plan(snap(history, timers=timers, name="x"), queue, now)
        if not isinstance(step, episode.Run):
            break
        opened = episode.open_episode(step, input_text, now)
        context = {
            "history": episode.replay_history(history, opened),
            "input": input_text,
            "instanceId": "iid",
            "isReplaying": False,
            "parentInstanceId": None,
            "upperSchemaVersion": 2,
        }
        answer = json.loads(orchestrator(json.dumps(context)))
        out = episode.conclude(step, opened, answer, now)
        history, timers = history + out.events, out.timers
        queue = [(rk, m) for rk, m in queue if rk not in out.consumed]
        if out.finished:
            break
    return out, history, timers


@pytest.fixture
def orchestrators(sample_app):
    return {name: info.func for name, info in FunctionIndex.from_app(sample_app.app).orchestrators().items()}


@pytest.mark.filterwarnings("ignore:Potential duplicate Task completion")
def test_sdk_waiter_gets_an_event_raised_before_its_wait(orchestrators):
    out, _, _ = drive(orchestrators["waiter"], [raised("go2", "second", 1), raised("go", "first", 2)], at(3))
    assert out.status == "Completed" and json.loads(out.output) == ["first", "second"]


def test_sdk_approval_timer_race(orchestrators):
    out, history, timers = drive(orchestrators["approval"], [], at(0), input_text='{"timeout": 60}')
    assert out.status == "Running" and list(timers.values()) == [h.ts(at(60))]
    out, _, _ = drive(orchestrators["approval"], [], at(60), '{"timeout": 60}', history, timers)
    assert out.status == "Completed" and json.loads(out.output) == {"result": "timeout"}

    out, _, _ = drive(
        orchestrators["approval"], [raised("approve", "alice", 30)], at(30), '{"timeout": 60}', history, timers
    )
    assert json.loads(out.output) == {"result": "approved", "by": "alice"} and out.timers == {}
