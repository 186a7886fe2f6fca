"""Every change of a job's status, in one place. PURE: functions of a record and the facts, no I/O, no clock.

Each function changes the `JobRecord` it is given; callers pass it to `store().update(uid, ...)`, which may call
it again on a fresher row (so a function must depend only on its arguments). Returning False means "nothing
to write". The rules the functions keep:

- A final status (completed, failed, removed) is never left again, except that `finished` may still correct
  the message of a job that a poll saw end.
- A job that reports progress itself (`externally_reported`) owns its status, percentage and log until the
  runner says it has finished; the runner's view then decides, except that a job that said `failed` stays
  failed even if its process exited 0.
- `stop_requested` (a DELETE) wins over everything the runner says afterwards.
- A job that reports a final status itself (completed or failed) ends with that status: its process may exit
  by itself within REPORTED_GRACE_SECONDS, or is stopped then; its log and result are kept.
- Progress (`percentage`) is a fraction from 0 to 1, what the DM web app shows as `Math.round(p * 100)%`: a
  job that completes without reporting ends at 1.0; one that reported keeps what it said (`fraction`).
- A job with a retry policy keeps one entry per attempt (`record.attempts`). An attempt that fails and is retried
  (`attempt_ended`, deciding with shared.jobs.retry) never gives the job a final status: it goes back to
  `starting` with the message "attempt 2 of 3 after exit code 1", so the lifecycle listeners (the schedule's
  failure count, the DMSS write-back) hear of one final status per job however many attempts it took.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from runners.base import FailureReason, RunnerStatus
from shared.jobs import retry
from shared.jobs.record import ATTEMPT_MESSAGE_CHARACTERS, JobRecord, attempt_entry, current_attempt
from shared.jobs.status import JobStatus

if TYPE_CHECKING:  # annotations only: a status read need not load the pydantic models
    from shared.jobs.models import RetryPolicy

STOPPED = "stopped"  # finish reasons given by the orchestrator (shared.jobs.orchestrator)
TIMEOUT = "timeout"
START_FAILED = "start-failed"
POLL_FAILED = "poll-failed"
REPORTED = "reported"  # the job said it ended; its process outlived the grace period and is stopped
START_REFUSED = "start-refused"  # the runner refused to start an attempt of a job with a retry policy
ORPHANED = "orphaned"  # the job's orchestration ended before the job (shared.jobs.reconcile)
REPORTED_GRACE_SECONDS = 30
FINISHED = "finishedAt"  # record.extra: `finished` has run (a finish run again only cleans up)
BROKEN = {
    START_FAILED: "the job could not be started: the start activity kept failing (it raised, or ran past "
    "the host's functionTimeout)",
    POLL_FAILED: "the job could not be followed: its runner could not be polled (the poll activity kept "
    "failing: it raised, or ran past the host's functionTimeout)",
    ORPHANED: "the job's orchestration ended before the job did (it failed or was terminated); the job was "
    "stopped and closed by the service's reconciliation",
}


def waiting_to_start(record: JobRecord, message: str) -> bool | None:
    """The runner asked to be called again later (throttled)."""
    if record.message == message:
        return False
    record.message = message
    return None


def start_failed(record: JobRecord, message: str, now: datetime) -> bool | None:
    if record.status.is_final:
        return False
    record.status = JobStatus.FAILED
    record.message = message
    record.ended = now
    return None


def launched(record: JobRecord, handle: dict, attempt: int | None = None, now: datetime | None = None) -> None:
    """The runner took the job (attempt `attempt` of a job with a retry policy; None: a job without one). The
    handle is kept even when a stop came meanwhile, so the stop can reach it."""
    record.handle = handle
    entry = _attempt(record, attempt)
    if entry is not None and now is not None:
        entry.setdefault("started", now.isoformat())
    if not (record.stop_requested or record.status.is_final):
        record.message = entry["note"] if entry is not None and entry.get("note") else "started"


def _attempt(record: JobRecord, attempt: int | None) -> dict | None:
    """The entry of `attempt`, added when it is the first (None for a job without a retry policy)."""
    if attempt is None:
        return None
    entry = attempt_entry(record, attempt)
    if entry is None and not record.attempts:
        entry = {"attempt": attempt}
        record.attempts = [entry]
    return entry


def attempt_refused(record: JobRecord, attempt: int, message: str, reason: FailureReason | None) -> bool | None:
    """The runner refused to start this attempt (a job with a retry policy): say why; `finish` decides."""
    entry = _attempt(record, attempt)
    if entry is None or record.status.is_final:
        return False
    entry["refusal"] = message[:ATTEMPT_MESSAGE_CHARACTERS]
    if reason is not None:
        entry["reason"] = reason.value
    record.message = message
    return None


def reported_final(record: JobRecord) -> bool:
    """The job itself said it completed or failed (and nobody stopped it)."""
    return (
        record.externally_reported
        and not record.stop_requested
        and record.status in (JobStatus.COMPLETED, JobStatus.FAILED)
    )


def must_stop(record: JobRecord) -> bool:
    """Nothing more to follow on the runner: stopped, or final for a reason other than the job's own report."""
    return record.stop_requested or (record.status.is_final and not reported_final(record))


def grace_over(record: JobRecord, now: datetime) -> bool:
    """A job that reported its end has had its time to exit by itself."""
    said = record.extra.get("reportedFinalAt")
    return said is not None and (now - datetime.fromisoformat(said)).total_seconds() >= REPORTED_GRACE_SECONDS


def poll_unreadable(record: JobRecord, note: str) -> bool | None:
    """The runner could not tell the job's state (throttled, 5xx): keep the status, say why."""
    return waiting_to_start(record, note)


def fraction(value: float | None) -> float | None:
    """Progress as the fraction 0..1 the clients show. Runners report fractions; a value above 1 comes from a
    runner (or a record stored before progress was a fraction) that counts in percent, and is converted; the
    result is clamped to 0..1 (None stays None, and so does a value that is not a number)."""
    if value is None:
        return None
    number = float(value)
    if number != number:  # NaN
        return None
    if number > 1.0:
        number /= 100.0
    return min(1.0, max(0.0, number))


def observed(record: JobRecord, seen: RunnerStatus, lines: list[str]) -> bool | None:
    """What a poll saw. The status follows the runner's state only when that state changed, and only while the
    job runs (a finished runner state is `finished`'s to interpret)."""
    if must_stop(record):
        return False
    if seen.state.value != record.runner_state:
        record.runner_state = seen.state.value
        if not seen.finished and not record.externally_reported:
            record.status = seen.state
    message = seen.message
    note = (attempt_entry(record, current_attempt(record)) or {}).get("note") if record.attempts else None
    if message and note:
        message = f"{note}: {message}"  # "attempt 2 of 3 after exit code 1: container running"
    if message and message != record.message and not reported_final(record):
        record.message = message  # e.g. a runner retrying says which attempt it is on
    if lines != record.log:
        record.log = lines
    if seen.percentage is not None and not record.externally_reported:
        record.percentage = fraction(seen.percentage)
    return None


@dataclass(frozen=True)
class Progress:
    """A progress report from the job itself (PUT), validated."""

    percentage: float | None  # a fraction, 0..1 (checked by the progress route)
    status: JobStatus | None
    lines: list[str]
    overwrite: bool
    tail: int
    now: datetime


def reported(record: JobRecord, progress: Progress) -> None:
    record.externally_reported = True
    if progress.percentage is not None:
        record.percentage = float(progress.percentage)
    if progress.status is not None and not record.status.is_final:
        record.status = progress.status
        if progress.status.is_final:
            record.message = f"the job reported that it {progress.status.value}"
            record.extra["reportedFinalAt"] = progress.now.isoformat()
    if progress.overwrite:
        record.reported_log = progress.lines[-progress.tail :]
    elif progress.lines:
        record.reported_log = (record.reported_log + progress.lines)[-progress.tail :]


def stop_requested(record: JobRecord, message: str, now: datetime) -> bool | None:
    """A DELETE: the job is `removed` at once; the orchestration then stops it on its runner."""
    if record.status.is_final:
        return False
    record.stop_requested = True
    record.status = JobStatus.REMOVED
    record.message = message
    record.ended = now
    return None


def final_status(reason: str | None, seen: RunnerStatus | None, record: JobRecord) -> tuple[JobStatus, str]:
    """The status and message a job ends with, from why it ended and what the runner said last."""
    if reason == STOPPED:
        return JobStatus.REMOVED, record.message or "stopped"
    if reason == TIMEOUT:
        return JobStatus.FAILED, f"stopped: the job ran past its time limit of {record.time_limit_seconds} s"
    if reason in BROKEN:
        return JobStatus.FAILED, BROKEN[reason]
    if reason == START_REFUSED:
        refusal = (attempt_entry(record, current_attempt(record)) or {}).get("refusal")
        return JobStatus.FAILED, refusal or "the runner could not start the job"
    if reported_final(record):
        return record.status, record.message or f"the job reported that it {record.status.value}"
    if seen is None:
        return JobStatus.FAILED, record.message or "the job was never started"
    if seen.state in (JobStatus.COMPLETED, JobStatus.FAILED):
        return seen.state, seen.message
    return JobStatus.FAILED, seen.message or f"the runner left the job in state {seen.state.value}"


@dataclass(frozen=True)
class Ending:
    """What `finish` learned before releasing the runner."""

    reason: str | None
    seen: RunnerStatus | None
    problem: str | None  # the final state could not be read: the job then fails with this message
    log_ref: str | None
    result_ref: str | None
    lines: list[str]  # the runner's final log tail, scrubbed


def finished(record: JobRecord, ending: Ending, now: datetime) -> None:
    status, message = final_status(ending.reason, ending.seen, record)
    if ending.problem and ending.reason is None:
        status, message = JobStatus.FAILED, ending.problem
    if not (record.status == JobStatus.REMOVED and ending.reason != TIMEOUT):
        record.status, record.message = status, message
    record.ended = record.ended or now
    record.extra[FINISHED] = now.isoformat()
    record.log_ref = ending.log_ref or record.log_ref
    record.result_ref = ending.result_ref or record.result_ref
    if ending.seen is not None:
        record.runner_state = ending.seen.state.value
        record.log = ending.lines
        if status == JobStatus.COMPLETED and not record.externally_reported:
            record.percentage = 1.0


# ---- attempts (jobs with a retry policy) ----------------------------------------------------------------------
@dataclass(frozen=True)
class AttemptPlan:
    """What `attempt_ended` needs to know of the job's policy: which attempt ended, and the deadline."""

    policy: RetryPolicy
    attempt: int
    deadline: datetime | None


def failure_of(ending: Ending, record: JobRecord) -> retry.Failure:
    """How the attempt failed, as a retry policy sees it."""
    code = ending.seen.exit_code if ending.seen is not None else None
    if ending.reason == TIMEOUT:
        return retry.Failure(code, FailureReason.TIME_LIMIT)
    if ending.reason in (START_FAILED, POLL_FAILED) or (ending.problem and ending.reason is None):
        return retry.Failure(code, FailureReason.RUNNER_UNAVAILABLE)
    if ending.reason == START_REFUSED:
        reason = (attempt_entry(record, current_attempt(record)) or {}).get("reason")
        return retry.Failure(None, FailureReason(reason) if reason else None)
    return retry.Failure(code, ending.seen.reason if ending.seen is not None else None)


def attempt_ended(record: JobRecord, ending: Ending, plan: AttemptPlan, now: datetime) -> None:
    """An attempt of a job with a retry policy ended: the job goes on to the next attempt (status `starting`,
    nothing final) when the policy says so and nobody stopped it, or finishes as `finished` would."""
    if plan.attempt != current_attempt(record):
        return  # an attempt already closed (a finish run late): its successor is under way
    status, message = final_status(ending.reason, ending.seen, record)
    if ending.problem and ending.reason is None:
        status, message = JobStatus.FAILED, ending.problem
    failure = failure_of(ending, record)
    decision = retry.Decision(False)
    if status == JobStatus.FAILED and ending.reason != STOPPED and not record.stop_requested:
        decision = retry.decide(plan.policy, plan.attempt, failure, now, plan.deadline)
    entry = _attempt(record, plan.attempt) or {"attempt": plan.attempt}
    if entry.get("started") or ending.reason != STOPPED:  # a next attempt stopped in its wait never ran
        _close(entry, status, message, failure, ending, record, now)
    if decision.retry:
        entry["retryIn"] = decision.wait_seconds
        _next_attempt(record, plan.attempt + 1, decision, now)
        return
    record.attempts = [e for e in record.attempts or [] if "status" in e]  # a next attempt that never started
    finished(record, ending, now)
    if plan.attempt > 1 or decision.why:
        suffix = decision.why or f"attempt {plan.attempt} of {plan.policy.maxAttempts}"
        if record.status != JobStatus.REMOVED:
            record.message = f"{record.message} ({suffix})"
    if not record.attempts:
        record.attempts = None


def _close(
    entry: dict, status: JobStatus, message: str, failure: retry.Failure, ending: Ending, record: JobRecord, now
) -> None:
    """Attempt `entry` ended: how, and where its log and result are (its handle is kept for its cleanup)."""
    entry.update(
        ended=now.isoformat(),
        status=JobStatus.REMOVED.value if ending.reason == STOPPED else status.value,
        message=message[:ATTEMPT_MESSAGE_CHARACTERS],
    )
    if failure.exit_code is not None:
        entry["exitCode"] = failure.exit_code
    if status == JobStatus.FAILED and failure.reason is not None:
        entry["reason"] = failure.reason.value
    for key, value in (("logRef", ending.log_ref), ("resultRef", ending.result_ref), ("handle", record.handle)):
        if value is not None:
            entry[key] = value


def _next_attempt(record: JobRecord, attempt: int, decision: retry.Decision, now: datetime) -> None:
    """Back to `starting` for a fresh attempt: what the last one left (its handle, its own reports) is put away;
    its log tail stays shown until the next attempt has one."""
    record.attempts = [*(record.attempts or []), {"attempt": attempt, "note": decision.why}]
    record.handle = None
    record.runner_state = None
    record.externally_reported = False
    record.reported_log = []
    record.percentage = None
    record.extra.pop("reportedFinalAt", None)
    record.status = JobStatus.STARTING
    record.message = f"{decision.why}: starts in {decision.wait_seconds:g} s"
