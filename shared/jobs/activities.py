"""The activities of a job's orchestration: start it on its runner, poll it, finish it.

Activities do the I/O the (replayed) orchestrator may not do; what a job's status becomes is decided in
`shared.jobs.transitions`, and every write goes through the job store. Their inputs and outputs land in the
Durable history, which the management API can show: they carry the job uid and small facts only
(`shared.jobs.outcomes`), never the job's environment or token, which activities read from the store themselves.

A job with a retry policy runs in attempts (`record.attempts`): `start` launches the current one (named by its
number on the runner, so a start run again adopts it and the next attempt is a fresh start), and `finish` ends an
attempt and either finishes the job or, as the policy decides (`transitions.attempt_ended`), answers the wait
before the next attempt, keeping each attempt's log and result in blobs of its own.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Callable

from runners.base import JobSpec, RetryLater, Runner, RunnerError, RunnerStatus
from runners.registry import default_registry
from shared.jobs import freshness, transitions
from shared.jobs.models import Job, RetryPolicy
from shared.jobs.outcomes import FinishOutcome, FinishRequest, PollOutcome, StartOutcome, StartState
from shared.jobs.record import JobRecord, attempt_entry, current_attempt
from shared.jobs.store import store
from shared.platform import clock, environment, hooks, settings

log = logging.getLogger(__name__)

HOOKS_PENDING = "finishHooksPending"  # record.extra: the final write's listeners have not all run yet
START_SETTLE_SECONDS = 0.3  # how long `start` watches a new job before leaving it to the polls


def load_entity(record: JobRecord) -> dict[str, Any]:
    if record.entity_ref:
        return json.loads(store().get_text(record.entity_ref))
    return record.entity


def time_limit(job: Job) -> int:
    return int(job.timeLimitSeconds or job.runner.timeLimitSeconds or settings.get_int("JOB_MAX_RUN_SECONDS"))


def service_environment(record: JobRecord) -> dict[str, str]:
    """Values the service itself gives a job beyond JOB_UID/DM_JOB_URL: its progress token JOB_TOKEN, and the
    DMSS ones when it has a DMSS token."""
    values = dict(record.extra.get("environment", {}))
    if record.job_token:
        values["JOB_TOKEN"] = record.job_token
    if record.secret_token:
        values["DMSS_TOKEN"] = record.secret_token
    return values


def secrets_of(record: JobRecord, entity: dict[str, Any]) -> list[str]:
    items = (entity.get("runner") or {}).get("environmentVariables") or []
    return environment.secret_values(items, [record.secret_token, record.job_token])


def retry_policy(entity: dict[str, Any]) -> RetryPolicy | None:
    """The job's retry policy (validated when the job was accepted), or None: no retries."""
    data = entity.get("retry")
    return RetryPolicy.model_validate(data) if isinstance(data, dict) else None


def _attempt_of(record: JobRecord, policy: RetryPolicy | None) -> int | None:
    """The attempt a job with a retry policy is on; None for a job without one (no attempts are kept)."""
    return current_attempt(record) if policy is not None else None


# ---- start ------------------------------------------------------------------------------------------------
def start(uid: str) -> dict[str, Any]:
    return _start(uid).to_dict()


def _start(uid: str) -> StartOutcome:
    record = store().get(uid)
    if transitions.must_stop(record):
        _release_lost(record)
        return StartOutcome(StartState.DONE)
    if record.handle is not None:  # this activity ran before and launched it (activities are at-least-once)
        return StartOutcome(StartState.STARTED)
    runner = default_registry().get(record.runner_type)
    spec = _spec(record)
    attempt = _attempt_of(record, retry_policy(spec.entity))
    handle = _launch(runner, record, spec, attempt)
    if isinstance(handle, StartOutcome):
        return handle
    record = store().update(uid, partial(transitions.launched, handle=handle, attempt=attempt, now=clock.now()))
    if transitions.must_stop(record):  # a DELETE came while we were starting it
        runner.stop(handle)
        runner.cleanup(handle)
        return StartOutcome(StartState.DONE)
    if runner.local and _finishes_quickly(runner, handle):  # cloud jobs never end this fast: spare their API
        return StartOutcome(StartState.FINISHED)
    return StartOutcome(StartState.STARTED)


def _spec(record: JobRecord) -> JobSpec:
    """The current attempt's start: a later attempt is named by its number and gets what is left of the job's
    time limit (the limit is the whole job's)."""
    entity = load_entity(record)
    job = Job.model_validate(entity)
    attempt = current_attempt(record)
    limit = time_limit(job)
    if attempt > 1 and record.started is not None:
        limit = max(1, int(limit - (clock.now() - record.started).total_seconds()))
    return JobSpec(
        uid=record.uid,
        config=job.runner.dump(),
        time_limit_seconds=limit,
        entity=entity,
        environment=environment.build(record.uid, job.runner.environmentVariables, service_environment(record)),
        attempt=attempt,
    )


def _launch(runner: Runner, record: JobRecord, spec: JobSpec, attempt: int | None) -> dict[str, Any] | StartOutcome:
    """The runner's start; a refusal becomes the record's message and the orchestrator's next step (for a job
    with a retry policy, `finish` then decides whether another attempt follows)."""
    uid = record.uid
    reason = None
    try:
        return runner.start(spec)
    except RetryLater as error:
        store().update(uid, partial(transitions.waiting_to_start, message=f"waiting to start: {error}"))
        return StartOutcome(StartState.RETRY, max(1.0, float(error.retry_after)))
    except RunnerError as error:
        message, reason = f"the runner could not start the job: {error}", error.reason
    except Exception as error:  # noqa: BLE001 - report, never leak details that may hold secrets
        log.error("runner %s failed to start job %s: %s", record.runner_type, uid, type(error).__name__)
        message = f"the runner could not start the job ({type(error).__name__})"
    if attempt is not None:
        store().update(uid, partial(transitions.attempt_refused, attempt=attempt, message=message, reason=reason))
        return StartOutcome(StartState.REFUSED)
    store().update(uid, partial(transitions.start_failed, message=message, now=clock.now()))
    return StartOutcome(StartState.DONE)


def _finishes_quickly(runner: Runner, handle: dict[str, Any]) -> bool:
    """Watch a just-started job for a moment: short jobs then end without waiting for the first poll."""
    deadline = time.monotonic() + START_SETTLE_SECONDS
    while True:
        try:
            if runner.status(handle).finished:
                return True
        except RunnerError:
            return False
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


# ---- poll -------------------------------------------------------------------------------------------------
def poll(uid: str) -> dict[str, Any]:
    return _poll(uid).to_dict()


def _poll(uid: str) -> PollOutcome:
    record = store().get(uid)
    store().announce_pending(record)  # a change whose writer died before its index row and listeners had it
    if transitions.must_stop(record):
        return PollOutcome(done=True, reason=transitions.STOPPED, changed=True)
    if record.handle is None:
        return PollOutcome(done=True, changed=True)
    runner = default_registry().get(record.runner_type)
    try:
        seen = runner.status(record.handle)
    except RunnerError as error:  # transient (throttled, 5xx): keep the status, say why, poll again later
        note = f"the runner could not tell the job's state: {error}"
        store().update(uid, partial(transitions.poll_unreadable, note=note))
        return PollOutcome(done=False)
    tail = settings.get_int("LOG_TAIL_LINES")
    secrets = secrets_of(record, load_entity(record))
    lines = environment.scrub(seen.log[-tail:], secrets)
    seen = _scrubbed(seen, secrets)
    before = record.runner_state
    after = store().update(uid, partial(transitions.observed, seen=seen, lines=lines))
    if transitions.must_stop(after):
        return PollOutcome(done=True, reason=transitions.STOPPED, changed=True)
    if not seen.finished and transitions.reported_final(after) and transitions.grace_over(after, clock.now()):
        return PollOutcome(done=True, reason=transitions.REPORTED, changed=True)
    return PollOutcome(done=seen.finished, changed=seen.state.value != before)


# ---- finish -----------------------------------------------------------------------------------------------
@dataclass
class _FinalRecord:
    """What `finish` could read from the runner before releasing it."""

    seen: RunnerStatus | None = None
    log_ref: str | None = None
    result_ref: str | None = None
    result_text: str | None = None
    problem: str | None = None  # the final state could not be read (the job is then marked failed)
    retry_after: float | None = None  # the runner is throttling: nothing was released


def _scrubbed(seen: RunnerStatus, secrets: list[str]) -> RunnerStatus:
    """A runner's message can quote its engine (a container error, an ACI event): keep the job's values out."""
    if not seen.message:
        return seen
    return dataclasses.replace(seen, message=environment.scrub_text(seen.message, secrets))


def _read_final(
    uid: str, runner: Runner, handle: dict[str, Any], reason: str | None, secrets: list[str], attempt: int | None
) -> _FinalRecord:
    """The final status, log and result; an attempt's (job with a retry policy) go to blobs of its own."""
    final = _FinalRecord()
    final.seen = _scrubbed(runner.status(handle), secrets)
    full_log = "\n".join(environment.scrub(runner.logs(handle).splitlines(), secrets))
    prefix = f"attempt-{attempt}." if attempt is not None else ""
    final.log_ref = store().put_text(uid, f"{prefix}log.txt", full_log)
    if reason in (None, transitions.REPORTED):
        text = runner.result(handle)
        if text is not None:
            final.result_text = "\n".join(environment.scrub(text.split("\n"), secrets))
            final.result_ref = store().put_text(uid, f"{prefix}result.txt", final.result_text)
    return final


def _release(
    record: JobRecord, handle: dict[str, Any], request: FinishRequest, secrets: list[str], attempt: int | None
) -> _FinalRecord:
    """Stop the job if it must end early and read what it left. A throttling runner gets `retry_after` set and
    nothing read, unless this is the last attempt."""
    uid = record.uid
    runner = default_registry().get(record.runner_type)
    if request.reason in (transitions.TIMEOUT, transitions.STOPPED, transitions.REPORTED, *transitions.BROKEN):
        try:
            runner.stop(handle)
        except RunnerError as error:
            log.warning("stopping job %s: %s", uid, error)
    try:
        return _read_final(uid, runner, handle, request.reason, secrets, attempt)
    except RetryLater as error:
        if not request.last_attempt:
            return _FinalRecord(retry_after=max(1.0, float(error.retry_after)))
        return _FinalRecord(problem=f"the job's final state could not be read: {error}")
    except RunnerError as error:
        return _FinalRecord(problem=f"the job's final state could not be read: {error}")


def _cleanup(record: JobRecord, handle: dict[str, Any] | None, request: FinishRequest) -> float | None:
    """Release the runner's resources, after the final state is stored (a finish run again then only cleans
    up). Returns seconds to wait when the runner is throttling (ACI deletes 100 per 5 minutes)."""
    if handle is None:
        return None
    try:
        default_registry().get(record.runner_type).cleanup(handle)
    except RetryLater as error:
        if not request.last_attempt:
            return max(1.0, float(error.retry_after))
        log.warning("cleanup of job %s throttled on the last attempt; its resources may remain", record.uid)
    except Exception as error:  # noqa: BLE001
        log.warning("cleanup of job %s failed: %s", record.uid, type(error).__name__)
    return None


def _handle_of(record: JobRecord) -> dict[str, Any] | None:
    """The stored handle, or one the runner finds for a job whose start died before storing it."""
    if record.handle is not None:
        return record.handle
    try:
        return default_registry().get(record.runner_type).find(_spec(record))
    except Exception as error:  # noqa: BLE001 - nothing found is the usual answer
        log.info("looking up job %s on its runner: %s", record.uid, type(error).__name__)
        return None


def _release_lost(record: JobRecord) -> None:
    """A job stopped before its start stored a handle: stop what that start may have launched anyway."""
    handle = _handle_of(record)
    if handle is None:
        return
    runner = default_registry().get(record.runner_type)
    try:
        runner.stop(handle)
        runner.cleanup(handle)
    except Exception as error:  # noqa: BLE001 - the reconciliation and the runner's own limits remain
        log.warning("stopping the lost launch of job %s: %s", record.uid, type(error).__name__)


def finish(request: dict[str, Any]) -> dict[str, Any]:
    return _finish(FinishRequest.from_dict(request)).to_dict()


def _finish(request: FinishRequest) -> FinishOutcome:
    """End a job (or an attempt of it): stop it if needed, keep its final log and result, set `ended`, then
    release the runner.

    A transient refusal (throttling) asks the orchestrator to call again; on the last attempt (or any other
    runner error) the job is marked failed with the reason and released all the same. Safe to run twice: a job
    already finished is only cleaned up again (its final log and status are never read over), and so is an
    attempt already followed by another (the same wait is answered).
    """
    record = store().get(request.uid)
    retried = _retried_attempt(record, request)
    if retried is not None:
        return _after_retry(record, retried, request)
    handle = _handle_of(record)
    if record.extra.get(transitions.FINISHED):
        if record.extra.get(HOOKS_PENDING):
            _run_finish_hooks(record, None)
        wait = _cleanup(record, handle, request)
        return FinishOutcome(retry_after=wait) if wait else FinishOutcome(status=record.status.value)
    entity = load_entity(record)
    secrets = secrets_of(record, entity)
    policy = retry_policy(entity)
    final = _FinalRecord()
    if handle is not None:
        final = _release(record, handle, request, secrets, _attempt_of(record, policy))
        if final.retry_after is not None:
            return FinishOutcome(retry_after=final.retry_after)
    tail = settings.get_int("LOG_TAIL_LINES")
    seen = final.seen
    lines = environment.scrub(seen.log[-tail:], secrets) if seen is not None else []
    ending = transitions.Ending(
        reason=request.reason,
        seen=seen,
        problem=final.problem,
        log_ref=final.log_ref,
        result_ref=final.result_ref,
        lines=lines,
    )
    if policy is None:
        mutation = partial(transitions.finished, ending=ending, now=clock.now())
    else:
        plan = transitions.AttemptPlan(policy, request.attempt, _deadline(record, request))
        mutation = partial(transitions.attempt_ended, ending=ending, plan=plan, now=clock.now())
    record = store().update(request.uid, partial(_marking_hooks_pending, mutation))
    retried = _retried_attempt(record, request) if policy is not None else None
    if retried is not None:
        return _after_retry(record, retried, request)
    _forget_wakes(request.uid)
    _run_finish_hooks(record, final.result_text)
    wait = _cleanup(record, handle, request)
    return FinishOutcome(retry_after=wait) if wait else FinishOutcome(status=record.status.value)


def _marking_hooks_pending(mutation: Callable[[JobRecord], Any], record: JobRecord) -> Any:
    """The final write also says that its listeners have not heard of it yet: a host that dies between the
    write and the listeners (the DMSS write-back, the result's delivery, webhooks, the schedule's history) leaves
    the marker, and the finish run again (activities are at-least-once) tells them then."""
    answer = mutation(record)
    if answer is not False and record.extra.get(transitions.FINISHED):
        record.extra[HOOKS_PENDING] = True
    return answer


def _run_finish_hooks(record: JobRecord, result_text: str | None) -> None:
    """Tell the listeners the job finished, then clear the marker. Run again after a crash, the status-change
    listeners hear the final status a second time: each of them is idempotent on a status it already has."""
    if result_text is None:  # a finish run again: the result as stored
        if not store().announce_pending(record, grace_seconds=0):
            hooks.status_changed(record)
        result_text = store().get_text(record.result_ref) if record.result_ref else None
    hooks.finished(record, result_text)
    store().update(record.uid, _hooks_done)


def _hooks_done(record: JobRecord) -> bool | None:
    if not record.extra.pop(HOOKS_PENDING, None):
        return False
    return None


def _retried_attempt(record: JobRecord, request: FinishRequest) -> dict[str, Any] | None:
    """The entry of the request's attempt when that attempt has ended and another was decided to follow."""
    entry = attempt_entry(record, request.attempt) if record.attempts else None
    return entry if entry is not None and "retryIn" in entry else None


def _after_retry(record: JobRecord, entry: dict[str, Any], request: FinishRequest) -> FinishOutcome:
    """Release the ended attempt (its handle is in its entry) and answer the wait before the next one."""
    wait = _cleanup(record, entry.get("handle"), request)
    return FinishOutcome(retry_after=wait) if wait else FinishOutcome(next_attempt_in=float(entry["retryIn"]))


def _deadline(record: JobRecord, request: FinishRequest) -> datetime | None:
    """The job's deadline: the orchestration's, or (from an older history) its start plus its time limit."""
    if request.deadline:
        return datetime.fromisoformat(request.deadline)
    if record.started is not None and record.time_limit_seconds:
        return record.started + timedelta(seconds=record.time_limit_seconds)
    return None


def _forget_wakes(uid: str) -> None:
    try:
        freshness.forget(uid)
    except Exception as error:  # noqa: BLE001 - a leftover wake row is harmless
        log.info("wake row of job %s not removed: %s", uid, type(error).__name__)
