"""The activities of a job's orchestration: start it on its runner, poll it, finish it.

Activities do the I/O the (replayed) orchestrator may not do. Their inputs and outputs land in the Durable
history, which the management API can show: they carry the job uid and small facts only, never the job's
environment or token, which activities read from the store themselves.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from runners.base import JobSpec, RetryLater, RunnerError, RunnerStatus
from runners.registry import default_registry

from shared.platform import clock, environment, hooks, settings
from shared.jobs.record import JobRecord
from shared.jobs.store import store
from shared.jobs.models import Job
from shared.jobs.status import JobStatus

log = logging.getLogger(__name__)

START_SETTLE_SECONDS = 0.3  # how long `start` watches a new job before leaving it to the polls


def update(uid: str, mutate: Callable[[JobRecord], bool | None]) -> JobRecord:
    return store().update(uid, mutate)


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


def _fail(message: str) -> Callable[[JobRecord], None]:
    def mutate(record: JobRecord) -> None:
        if record.status.is_final:
            return
        record.status = JobStatus.FAILED
        record.message = message
        record.ended = clock.now()
    return mutate


def start(uid: str) -> dict[str, Any]:
    record = store().get(uid)
    if record.stop_requested or record.status.is_final:
        return {"state": "done"}
    entity = load_entity(record)
    job = Job.model_validate(entity)
    runner = default_registry().get(record.runner_type)
    spec = JobSpec(uid=uid, config=job.runner.dump(), time_limit_seconds=time_limit(job), entity=entity,
                   environment=environment.build(uid, job.runner.environmentVariables,
                                                 service_environment(record)))
    try:
        handle = runner.start(spec)
    except RetryLater as error:
        waiting = f"waiting to start: {error}"
        update(uid, lambda r: setattr(r, "message", waiting))
        return {"state": "retry", "retryAfter": max(1.0, float(error.retry_after))}
    except RunnerError as error:
        update(uid, _fail(f"the runner could not start the job: {error}"))
        return {"state": "done"}
    except Exception as error:  # noqa: BLE001 - report, never leak details that may hold secrets
        log.error("runner %s failed to start job %s: %s", record.runner_type, uid, type(error).__name__)
        update(uid, _fail(f"the runner could not start the job ({type(error).__name__})"))
        return {"state": "done"}

    stop_now = False

    def launched(r: JobRecord) -> None:
        nonlocal stop_now
        r.handle = handle
        if r.stop_requested or r.status.is_final:
            stop_now = True
            return
        r.message = "started"

    update(uid, launched)
    if stop_now:  # a DELETE came while we were starting it
        runner.stop(handle)
        runner.cleanup(handle)
        return {"state": "done"}
    if runner.local and _finishes_quickly(runner, handle):  # cloud jobs never end this fast: spare their API
        return {"state": "finished"}
    return {"state": "started"}


def _finishes_quickly(runner, handle: dict[str, Any]) -> bool:
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


def poll(uid: str) -> dict[str, Any]:
    record = store().get(uid)
    if record.stop_requested or record.status.is_final:
        return {"done": True, "reason": "stopped", "changed": True}
    if record.handle is None:
        return {"done": True, "reason": None, "changed": True}
    runner = default_registry().get(record.runner_type)
    try:
        seen = runner.status(record.handle)
    except RunnerError as error:  # transient (throttled, 5xx): keep the status, say why, poll again later
        note = f"the runner could not tell the job's state: {error}"
        update(uid, lambda r: None if r.message == note else setattr(r, "message", note))
        return {"done": False, "reason": None, "changed": False}
    tail = settings.get_int("LOG_TAIL_LINES")
    lines = environment.scrub(seen.log[-tail:], secrets_of(record, load_entity(record)))
    changed = False

    def observe(r: JobRecord) -> bool:
        nonlocal changed
        if r.status.is_final or r.stop_requested:
            return False
        if seen.state.value != r.runner_state:
            r.runner_state = seen.state.value
            changed = True
            if not seen.finished and not r.externally_reported:
                r.status = seen.state
            if seen.message:
                r.message = seen.message
        if lines != r.log:
            r.log = lines
        if seen.percentage is not None and not r.externally_reported:
            r.percentage = seen.percentage
        return None

    update(uid, observe)
    return {"done": seen.finished, "reason": None, "changed": changed}


def _final_status(reason: str | None, seen: RunnerStatus | None, record: JobRecord) -> tuple[JobStatus, str]:
    if reason == "stopped":
        return JobStatus.REMOVED, record.message or "stopped"
    if reason == "timeout":
        limit = record.time_limit_seconds
        return JobStatus.FAILED, f"stopped: the job ran past its time limit of {limit} s"
    if seen is None:
        return JobStatus.FAILED, record.message or "the job was never started"
    if seen.state == JobStatus.COMPLETED and record.status == JobStatus.FAILED and record.externally_reported:
        return JobStatus.FAILED, record.message or "the job reported that it failed"
    if seen.state in (JobStatus.COMPLETED, JobStatus.FAILED):
        return seen.state, seen.message
    return JobStatus.FAILED, seen.message or f"the runner left the job in state {seen.state.value}"


@dataclass
class _FinalRecord:
    """What `finish` could read from the runner before releasing it."""

    seen: RunnerStatus | None = None
    log_ref: str | None = None
    result_ref: str | None = None
    result_text: str | None = None
    problem: str | None = None  # the final state could not be read (the job is then marked failed)


def _read_final(uid: str, runner, handle: dict[str, Any], reason: str | None, secrets: list[str]) -> _FinalRecord:
    final = _FinalRecord()
    final.seen = runner.status(handle)
    full_log = "\n".join(environment.scrub(runner.logs(handle).splitlines(), secrets))
    final.log_ref = store().put_text(uid, "log.txt", full_log)
    if reason is None:
        text = runner.result(handle)
        if text is not None:
            final.result_text = "\n".join(environment.scrub(text.split("\n"), secrets))
            final.result_ref = store().put_text(uid, "result.txt", final.result_text)
    return final


def finish(request: dict[str, Any]) -> dict[str, Any]:
    """End a job: stop it if needed, keep its final log and result, release the runner, set `ended`.

    A transient refusal while reading the final state (throttling) returns `{"retryAfter": s}` before anything
    is released, and the orchestrator calls again; with `lastAttempt` (or any other runner error) the job is
    marked failed with the reason and released all the same.
    """
    uid, reason = request["uid"], request.get("reason")
    record = store().get(uid)
    entity = load_entity(record)
    secrets = secrets_of(record, entity)
    final = _FinalRecord()
    if record.handle is not None:
        runner = default_registry().get(record.runner_type)
        if reason in ("timeout", "stopped"):
            try:
                runner.stop(record.handle)
            except RunnerError as error:
                log.warning("stopping job %s: %s", uid, error)
        try:
            final = _read_final(uid, runner, record.handle, reason, secrets)
        except RetryLater as error:
            if not request.get("lastAttempt"):
                return {"retryAfter": max(1.0, float(error.retry_after))}
            final.problem = f"the job's final state could not be read: {error}"
        except RunnerError as error:
            final.problem = f"the job's final state could not be read: {error}"
        try:
            runner.cleanup(record.handle)
        except Exception as error:  # noqa: BLE001
            log.warning("cleanup of job %s failed: %s", uid, type(error).__name__)
    tail = settings.get_int("LOG_TAIL_LINES")
    seen = final.seen

    def end(r: JobRecord) -> None:
        status, message = _final_status(reason, seen, r)
        if final.problem and reason is None:
            status, message = JobStatus.FAILED, final.problem
        if not (r.status == JobStatus.REMOVED and reason != "timeout"):
            r.status, r.message = status, message
        r.ended = r.ended or clock.now()
        r.log_ref, r.result_ref = final.log_ref or r.log_ref, final.result_ref or r.result_ref
        if seen is not None:
            r.runner_state = seen.state.value
            r.log = environment.scrub(seen.log[-tail:], secrets)
            if status == JobStatus.COMPLETED and not r.externally_reported:
                r.percentage = 100.0

    record = update(uid, end)
    hooks.finished(record, final.result_text)
    return {"status": record.status.value}
