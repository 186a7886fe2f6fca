"""The job orchestration: launch, follow, finish. Replayed from history, so deterministic and small.

Per wake-up it only reads `context` (time, input, task results) and decides the next task. Polls back off
(PollPolicy) and race a durable timer against a `stop` external event. Every POLLS_PER_GENERATION polls it
continues as new, so the history of a job of any length stays below about 150 events. A stop raised while
the instance is between generations is not lost either way: DELETE also marks the job in the store, and the
next poll sees that.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Generator

from shared.jobs.outcomes import FinishOutcome, FinishRequest, PollOutcome, StartOutcome, StartState
from shared.jobs.polling import PollPolicy

ORCHESTRATOR = "job_orchestrator"
START_ACTIVITY = "start_job_activity"
POLL_ACTIVITY = "poll_job_activity"
FINISH_ACTIVITY = "finish_job_activity"
STOP_EVENT = "stop"
POLLS_PER_GENERATION = 16
FINISH_ATTEMPTS = 5


def initial_input(uid: str, time_limit_seconds: int, policy: PollPolicy) -> dict[str, Any]:
    return {"uid": uid, "timeLimitSeconds": time_limit_seconds, "poll": policy.as_dict()}


def _wait(context, seconds: float, deadline: datetime) -> Generator[Any, Any, str | None]:
    """Sleep `seconds` (not past the deadline). Returns "stopped", "timeout" or None."""
    now = context.current_utc_datetime
    if now >= deadline:
        return "timeout"
    fire_at = min(now + timedelta(seconds=seconds), deadline)
    timer = context.create_timer(fire_at)
    stop = context.wait_for_external_event(STOP_EVENT)
    winner = yield context.task_any([timer, stop])
    if winner == stop:
        timer.cancel()
        return "stopped"
    return "timeout" if fire_at >= deadline else None


def _finish(context, uid: str, reason: str | None) -> Generator[Any, Any, Any]:
    """Finish the job; a runner that is throttling gets a few waits before the job is closed regardless."""
    for attempt in range(FINISH_ATTEMPTS):
        request = FinishRequest(uid, reason, last_attempt=attempt == FINISH_ATTEMPTS - 1)
        answer = yield context.call_activity(FINISH_ACTIVITY, request.to_dict())
        outcome = FinishOutcome.from_dict(answer)
        if outcome.retry_after is None:
            return answer
        yield context.create_timer(context.current_utc_datetime + timedelta(seconds=outcome.retry_after))
    return answer


def _launch(context, uid: str, deadline: datetime) -> Generator[Any, Any, tuple[StartState, str | None]]:
    """Start the job, waiting as the runner asks. Returns how the start ended and, for a wait cut short, why."""
    outcome = StartOutcome.from_dict((yield context.call_activity(START_ACTIVITY, uid)))
    while outcome.state == StartState.RETRY:
        reason = yield from _wait(context, outcome.retry_after or 1.0, deadline)
        if reason:
            return outcome.state, reason
        outcome = StartOutcome.from_dict((yield context.call_activity(START_ACTIVITY, uid)))
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
            return (yield from _finish(context, uid, reason))
        if started == StartState.DONE:
            return {"status": "not started"}
        if started == StartState.FINISHED:
            return (yield from _finish(context, uid, None))
        state["launched"] = True
        state["interval"] = policy.minimum

    for _ in range(POLLS_PER_GENERATION):
        reason = yield from _wait(context, state["interval"], deadline)
        if reason:
            return (yield from _finish(context, uid, reason))
        polled = PollOutcome.from_dict((yield context.call_activity(POLL_ACTIVITY, uid)))
        if polled.done:
            return (yield from _finish(context, uid, polled.reason))
        state["interval"] = policy.next(state["interval"], polled.changed)
    context.continue_as_new(state)
    return None
