"""The job orchestration: launch, follow, finish. Replayed from history, so deterministic and small.

Per wake-up it only reads `context` (time, input, task results) and decides the next task. Polls back off
(PollPolicy) and race a durable timer against a `stop` external event. Every POLLS_PER_GENERATION polls it
continues as new, so the history of a job of any length stays below about 150 events. A stop raised while
the instance is between generations is not lost either way: DELETE also marks the job in the store, and the
next poll sees that.

An activity that fails (it ran past the host's functionTimeout, or raised) never leaves the job hanging: a failed
start or finish is retried like a throttled one, a poll may fail POLL_FAILURES_ALLOWED times in a row, and then
the job is finished as failed with the reason (START_FAILED, POLL_FAILED).

A job with a retry policy may end an attempt instead of the job: the finish activity then answers the wait
before the next attempt (`nextAttemptIn`, decided by shared.jobs.retry), the orchestration waits for it on a
durable timer raced with the stop event (a stop ends the job with no further attempt), and continues as new
with the next attempt number, so each attempt starts with a fresh history. The deadline stays the job's.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Generator

from shared.jobs.outcomes import FinishOutcome, FinishRequest, PollOutcome, StartOutcome, StartState
from shared.jobs.polling import PollPolicy, mark_polled
from shared.platform.names import ENDED, FINISH_ACTIVITY, POLL_ACTIVITY, START_ACTIVITY, STOP_EVENT, WAKE_EVENT

WOKEN = "woken"  # _wait: a reader's wake (a wake saying the job ended is answered by polling at once)
POLLS_PER_GENERATION = 16
FINISH_ATTEMPTS = 5
POLL_FAILURES_ALLOWED = 3
START_FAILED = "start-failed"  # finish reasons beside "stopped" and "timeout" (shared.jobs.transitions)
POLL_FAILED = "poll-failed"
START_REFUSED = "start-refused"
FAILED_ACTIVITY_RETRY_SECONDS = 5


def initial_input(uid: str, time_limit_seconds: int, policy: PollPolicy) -> dict[str, Any]:
    return {"uid": uid, "timeLimitSeconds": time_limit_seconds, "poll": policy.as_dict()}


def _wait(context, seconds: float, deadline: datetime) -> Generator[Any, Any, str | None]:
    """Sleep `seconds` (not past the deadline), or less when woken. Returns "stopped", "timeout", WOKEN or None."""
    now = context.current_utc_datetime
    if now >= deadline:
        return "timeout"
    fire_at = min(now + timedelta(seconds=seconds), deadline)
    timer = context.create_timer(fire_at)
    stop = context.wait_for_external_event(STOP_EVENT)
    wake = context.wait_for_external_event(WAKE_EVENT)
    winner = yield context.task_any([timer, stop, wake])
    if winner == stop:
        timer.cancel()
        return "stopped"
    if winner == wake:
        timer.cancel()
        return None if wake.result == ENDED else WOKEN
    return "timeout" if fire_at >= deadline else None


def _call(context, name: str, argument: Any) -> Generator[Any, Any, Any]:
    """An activity's result, or None when it failed (the SDK throws the failure into the orchestrator)."""
    try:
        return (yield context.call_activity(name, argument))
    except Exception:  # noqa: BLE001 - TaskFailed: the activity raised or ran past functionTimeout
        return None


def _finish(
    context, uid: str, reason: str | None, job_attempt: int = 1, deadline: str | None = None
) -> Generator[Any, Any, Any]:
    """Finish the job (or its attempt `job_attempt`); a runner that is throttling (or a failing finish) gets a
    few waits before the job is closed regardless."""
    answer: Any = {"status": None}
    for attempt in range(FINISH_ATTEMPTS):
        last = attempt == FINISH_ATTEMPTS - 1
        request = FinishRequest(uid, reason, last_attempt=last, attempt=job_attempt, deadline=deadline)
        answer = yield from _call(context, FINISH_ACTIVITY, request.to_dict())
        outcome = FinishOutcome.from_dict(answer) if answer is not None else None
        if outcome is not None and outcome.retry_after is None:
            return answer
        wait = outcome.retry_after if outcome is not None else FAILED_ACTIVITY_RETRY_SECONDS
        yield context.create_timer(context.current_utc_datetime + timedelta(seconds=wait))
    return answer


def _end(context, state: dict[str, Any], reason: str | None) -> Generator[Any, Any, Any]:
    """The current attempt ended: finish it; when another attempt follows, wait for it (a stop or the deadline
    ends the job instead) and continue as new with its number."""
    uid, attempt, deadline = state["uid"], state.get("attempt", 1), state["deadline"]
    answer = yield from _finish(context, uid, reason, attempt, deadline)
    wait = FinishOutcome.from_dict(answer).next_attempt_in if answer is not None else None
    if wait is None:
        return answer
    cut = yield from _backoff(context, wait, datetime.fromisoformat(deadline))
    if cut:
        return (yield from _finish(context, uid, cut, attempt + 1, deadline))
    for key in ("launched", "interval", "pollFailures", "lastPoll"):
        state.pop(key, None)
    state["attempt"] = attempt + 1
    context.continue_as_new(state)
    return None


def _backoff(context, seconds: float, deadline: datetime) -> Generator[Any, Any, str | None]:
    """The wait before a next attempt: only a stop (or the deadline) cuts it short, not a reader's wake."""
    fire_at = min(context.current_utc_datetime + timedelta(seconds=seconds), deadline)
    timer = context.create_timer(fire_at)
    stop = context.wait_for_external_event(STOP_EVENT)
    winner = yield context.task_any([timer, stop])
    if winner == stop:
        timer.cancel()
        return "stopped"
    return "timeout" if fire_at >= deadline else None


def _start(context, uid: str) -> Generator[Any, Any, StartOutcome | None]:
    answer = yield from _call(context, START_ACTIVITY, uid)
    return StartOutcome.from_dict(answer) if answer is not None else None


def _launch(context, uid: str, deadline: datetime) -> Generator[Any, Any, tuple[StartState, str | None]]:
    """Start the job, waiting as the runner asks. Returns how the start ended and, for a wait cut short or a
    start that kept failing, why."""
    failures = 0
    outcome = yield from _start(context, uid)
    while outcome is None or outcome.state == StartState.RETRY:
        failures = failures + 1 if outcome is None else 0
        if failures >= FINISH_ATTEMPTS:
            return StartState.DONE, START_FAILED
        wait = FAILED_ACTIVITY_RETRY_SECONDS if outcome is None else outcome.retry_after or 1.0
        reason = yield from _wait(context, wait, deadline)
        if reason and reason != WOKEN:
            return StartState.RETRY, reason
        outcome = yield from _start(context, uid)
    return outcome.state, None


def orchestrate(context) -> Generator[Any, Any, Any]:
    state: dict[str, Any] = dict(context.get_input())
    uid = state["uid"]
    if "deadline" not in state:
        limit = timedelta(seconds=state["timeLimitSeconds"])
        state["deadline"] = (context.current_utc_datetime + limit).isoformat()
    deadline = datetime.fromisoformat(state["deadline"])
    policy = PollPolicy.from_dict(state["poll"])

    if not state.get("launched"):
        started, reason = yield from _launch(context, uid, deadline)
        if reason:
            return (yield from _end(context, state, reason))
        if started == StartState.DONE and state.get("attempt", 1) > 1:  # stopped before its next attempt
            return (yield from _finish(context, uid, "stopped", state["attempt"], state["deadline"]))
        if started == StartState.DONE:
            return {"status": "not started"}
        if started in (StartState.FINISHED, StartState.REFUSED):
            return (yield from _end(context, state, None if started == StartState.FINISHED else START_REFUSED))
        state["launched"] = True
        state["interval"] = policy.minimum

    for _ in range(POLLS_PER_GENERATION):
        reason = yield from _wait(context, policy.next_wait(state, context.current_utc_datetime), deadline)
        if reason == WOKEN and not policy.woken(state, context.current_utc_datetime):
            continue  # polled less than a window ago: it stays watched and polls when the window is over
        if reason and reason != WOKEN:
            return (yield from _end(context, state, reason))
        answer = yield from _call(context, POLL_ACTIVITY, uid)
        mark_polled(state, context.current_utc_datetime)
        if answer is None:
            state["pollFailures"] = state.get("pollFailures", 0) + 1
            if state["pollFailures"] >= POLL_FAILURES_ALLOWED:
                return (yield from _end(context, state, POLL_FAILED))
            continue
        state.pop("pollFailures", None)
        polled = PollOutcome.from_dict(answer)
        if polled.done:
            return (yield from _end(context, state, polled.reason))
        state["interval"] = policy.next(state["interval"], polled.changed)
    context.continue_as_new(state)
    return None
