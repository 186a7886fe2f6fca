"""The job API's operations on plain jobs, independent of the Functions host: store, start, read, stop, report.

Input is validated (`shared.jobs.validation`) before anything is written; a start that fails half-way removes
what it wrote. Status changes are made by `shared.jobs.transitions` through the job store. Replies carry the old
service's keys (its clients read them) plus a few of ours, and never an environment value or token. Recurring
jobs reuse the start and read here; what is special about them lives in `shared.schedules` and `shared.service`
puts the two together.
"""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Protocol

from runners.base import RunnerError
from shared.jobs import freshness, transitions
from shared.jobs.access import Caller, authorize
from shared.jobs.polling import PollPolicy
from shared.jobs.record import JobNotFound, JobRecord, attempt_entry
from shared.jobs.status import JobStatus, parse_status
from shared.jobs.store import store
from shared.platform import clock, environment, lazy, settings
from shared.platform.parsing import check_uid, parse_json
from shared.platform.errors import ApiError, BadRequest, Conflict, NotFound, ServiceUnavailable, ValidationFailed

if TYPE_CHECKING:
    from shared.jobs.models import Job

# what starting, stopping and progress need, not a status read (the first request of a cold instance is often one)
activities = lazy.module("shared.jobs.activities")
models = lazy.module("shared.jobs.models")
orchestrator = lazy.module("shared.jobs.orchestrator")
registry = lazy.module("runners.registry")

log = logging.getLogger(__name__)

IDEMPOTENCY_TTL = timedelta(hours=24)
ABANDONED_AFTER = timedelta(seconds=30)
INLINE_ENTITY_LIMIT = 30_000


class Orchestrations(Protocol):
    """What the service needs of Durable Functions (shared.platform.durable adapts the durable client)."""

    def start(self, uid: str, input: dict[str, Any]) -> None: ...

    def raise_stop(self, uid: str) -> None: ...


Launch = Callable[[JobRecord], None]
Undo = Callable[[str], Any]
Prepare = Callable[[JobRecord], None]


@dataclass(frozen=True)
class StartResult:
    uid: str
    status: JobStatus
    message: str
    existed: bool = False

    def body(self) -> dict[str, Any]:
        return {"uid": self.uid, "message": self.message, "status": self.status.value}


# ---- start ------------------------------------------------------------------------------------------------
def _owner(caller: Caller | None) -> str:
    return (caller.id if caller is not None else None) or "anonymous"


def new_record(job: Job, uid: str, caller: Caller | None, triggered_by: str | None) -> JobRecord:
    now = clock.now()
    status = JobStatus.REGISTERED if isinstance(job, models.RecurringJob) else JobStatus.STARTING
    who = triggered_by or (caller.display if caller is not None else None) or "anonymous"
    entity = job.dump()
    entity.update(uid=uid, status=status.value, started=clock.iso(now), triggeredBy=who)
    entity.pop("ended", None)
    extra = {"outputTarget": job.outputTarget} if job.outputTarget else {}
    return JobRecord(
        extra=extra,
        uid=uid,
        kind="recurring" if isinstance(job, models.RecurringJob) else "job",
        status=status,
        job_token=secrets.token_urlsafe(32),
        entity=entity,
        runner_type=job.runner.type,
        label=job.label or job.name,
        triggered_by=who,
        owner=caller.id if caller is not None else None,
        started=now,
        time_limit_seconds=None if isinstance(job, models.RecurringJob) else activities.time_limit(job),
        message="registered" if status == JobStatus.REGISTERED else "starting",
    )


def _spill_entity(record: JobRecord) -> None:
    if len(json.dumps(record.entity)) > INLINE_ENTITY_LIMIT:
        record.entity_ref = store().put_text(record.uid, "entity.json", json.dumps(record.entity))
        record.entity = {}


def start_job(
    job: Job,
    *,
    caller: Caller | None,
    launch: Launch,
    undo: Undo | None = None,
    idempotency_key: str | None = None,
    triggered_by: str | None = None,
    prepare: Prepare | None = None,
) -> StartResult:
    """Store a validated job and launch it (`launch(record)`: start its orchestration, or register its schedule).

    `prepare(record)` may add to the record before it is stored (the DMSS mode adds the address and token). A
    start that fails half-way removes what it wrote (`undo(uid)` removes what `launch` may have written)."""
    uid = str(uuid.uuid4())
    if idempotency_key:
        earlier = _claim(caller, idempotency_key, uid)
        if earlier is not None:
            return earlier
    record = new_record(job, uid, caller, triggered_by)
    try:
        if prepare is not None:
            prepare(record)
        _spill_entity(record)
        store().create(record)
        launch(record)
    except Exception as error:
        _undo_start(record, caller, idempotency_key, undo)
        if isinstance(error, ApiError):
            raise
        log.warning("starting job %s failed: %s", uid, type(error).__name__)
        raise ServiceUnavailable(f"the job could not be started ({type(error).__name__}); nothing was kept") from None
    if record.kind == "recurring":
        return StartResult(uid, JobStatus.REGISTERED, f"recurring job {uid} registered")
    return StartResult(uid, JobStatus.STARTING, f"job {uid} is starting")


def _claim(caller: Caller | None, key: str, uid: str) -> StartResult | None:
    """The answer for a repeated Idempotency-Key (the earlier job), or None when this start may go on."""
    if len(key) > 200:
        raise BadRequest("Idempotency-Key is longer than 200 characters")
    earlier = store().claim_idempotency(_owner(caller), key, uid, IDEMPOTENCY_TTL, abandoned=_abandoned)
    if not earlier:
        return None
    try:
        status = store().get(earlier).status
    except JobNotFound:  # claimed moments ago by a start that has not stored its job yet (or died doing so)
        raise Conflict(
            f"a start with this Idempotency-Key is in progress (job {earlier}); ask again in a few seconds",
            headers={"Retry-After": "5"},
        ) from None
    return StartResult(earlier, status, f"already started with this Idempotency-Key: job {earlier}", existed=True)


def _abandoned(uid: str, age: timedelta) -> bool:
    """A claim whose start died before storing its job: never let the key point at a job that does not exist.
    A start stores its job within milliseconds of claiming; ABANDONED_AFTER leaves a slow one its time."""
    if age < ABANDONED_AFTER:
        return False
    try:
        store().get(uid)
    except JobNotFound:
        return True
    return False


def orchestrated(orchestrations: Orchestrations) -> Launch:
    """The launch of a plain job: its orchestration, which starts it on its runner and follows it."""

    def launch(record: JobRecord) -> None:
        policy = PollPolicy.from_settings()
        orchestrations.start(record.uid, orchestrator.initial_input(record.uid, record.time_limit_seconds or 0, policy))

    return launch


def _undo_start(record: JobRecord, caller: Caller | None, key: str | None, undo: Undo | None) -> None:
    jobs = store()
    try:
        jobs.delete(record.uid)
        if record.entity_ref:
            jobs.delete_texts([record.entity_ref])
        if undo is not None:
            undo(record.uid)
        if key:
            jobs.release_idempotency(_owner(caller), key)
    except Exception as error:  # noqa: BLE001 - best effort; the original error is what the caller sees
        log.warning("cleaning up failed start of job %s: %s", record.uid, type(error).__name__)


# ---- read -------------------------------------------------------------------------------------------------
def get_record(uid: str) -> JobRecord:
    try:
        return store().get(check_uid(uid))
    except JobNotFound:
        raise NotFound(f"no job with uid {uid}") from None


def status_body(record: JobRecord) -> dict[str, Any]:
    entity = record.entity if not record.entity_ref else {}
    body: dict[str, Any] = {
        "uid": record.uid,
        "status": record.status.value,
        "log": record.reported_log if record.externally_reported else record.log,
        "percentage": transitions.fraction(record.percentage),
        "label": record.label,
        "started": clock.iso(record.started),
        "ended": clock.iso(record.ended),
        "triggeredBy": record.triggered_by,
        "runner": {"type": record.runner_type},
        "message": record.message,
        "kind": record.kind,
    }
    target = record.extra.get("outputTarget") or entity.get("outputTarget")
    if target:
        body["outputTarget"] = target
    if record.attempts:  # a job with a retry policy (shared.jobs.retry)
        body["attempts"] = [{key: entry.get(key) for key in ATTEMPT_KEYS} for entry in record.attempts]
    if record.time_limit_seconds:
        body["timeLimitSeconds"] = record.time_limit_seconds
    if record.dmss_address:  # the entity's address (what a DMSS job gets as JOB_DMSS_ID; not a secret)
        body["dmssAddress"] = record.dmss_address
    return body


ATTEMPT_KEYS = ("attempt", "started", "ended", "status", "exitCode", "reason", "message")
MAX_LOG_LINES = 100_000  # a whole log is answered up to this many (its last) lines


def get_log(uid: str, caller: Caller | None = None, tail: str | None = None) -> dict[str, Any]:
    """A job's whole log, where the status shows only its last lines: the one stored when the job ended; while
    it runs, read from its runner at this request (one runner call, scrubbed of the job's secret values as every
    log is); before it has a runner, or for a job that reports its own log, the lines the app keeps."""
    wanted = _log_lines_wanted(tail)
    record = get_record(uid)
    authorize(record, caller, "read")
    text, source = _whole_log(record)
    lines = text.splitlines() if text is not None else list(_kept_log(record))
    shown = lines[-wanted:]
    return {
        "uid": record.uid,
        "status": record.status.value,
        "source": source,
        "lines": len(lines),
        "truncated": len(shown) < len(lines),
        "log": shown,
    }


def _log_lines_wanted(tail: str | None) -> int:
    if tail is None or tail == "":
        return MAX_LOG_LINES
    if not (len(tail) <= 6 and tail.isdigit() and 1 <= int(tail) <= MAX_LOG_LINES):
        raise BadRequest(f"tail must be a number of lines from 1 to {MAX_LOG_LINES}, not {tail[:20]!r}")
    return int(tail)


def _kept_log(record: JobRecord) -> list[str]:
    return record.reported_log if record.externally_reported else record.log


def _whole_log(record: JobRecord) -> tuple[str | None, str]:
    """(text, where it came from); text None: only the kept lines exist."""
    if record.externally_reported:
        return None, "kept"  # the job sends its log itself (the old job containers): that is the log
    if record.log_ref:
        return store().get_text(record.log_ref), "stored"
    if record.handle is None or record.status.is_final:
        return None, "kept"
    try:
        runner = registry.default_registry().get(record.runner_type)
    except LookupError:  # its runner is no longer offered here (local runners switched off): what the app kept
        return None, "kept"
    try:
        text = runner.logs(record.handle)
    except RunnerError as error:
        raise ServiceUnavailable(f"the runner could not give job {record.uid}'s log for now: {error}") from None
    secrets = activities.secrets_of(record, activities.load_entity(record))
    return "\n".join(environment.scrub(text.splitlines(), secrets)), "runner"


def get_result(uid: str, caller: Caller | None = None, attempt: str | None = None) -> dict[str, Any]:
    record = get_record(uid)
    authorize(record, caller, "read the result of")
    if attempt:
        return _attempt_result(record, attempt)
    if not record.status.is_final:
        raise Conflict(
            f"job {record.uid} has not finished yet (status {record.status.value}); ask again when "
            "it is completed or failed"
        )
    result = store().get_text(record.result_ref) if record.result_ref else ""
    return {"message": record.message, "result": result, "status": record.status.value}


def _attempt_result(record: JobRecord, attempt: str) -> dict[str, Any]:
    """One attempt's result and full log (a job with a retry policy keeps both, in blobs of their own)."""
    if not (len(attempt) <= 3 and attempt.isdigit() and int(attempt) >= 1):
        raise BadRequest(f"attempt must be an attempt number (1, 2, ...), not {attempt[:20]!r}")
    entry = attempt_entry(record, int(attempt)) if record.attempts else None
    if entry is None:
        raise NotFound(f"job {record.uid} has no attempt {int(attempt)}")
    if "ended" not in entry:
        raise Conflict(f"attempt {int(attempt)} of job {record.uid} has not finished yet; ask again when it has")
    texts = {
        key: store().get_text(entry[ref]) if entry.get(ref) else ""
        for key, ref in (("result", "resultRef"), ("log", "logRef"))
    }
    return {"attempt": entry["attempt"], "message": entry.get("message", ""), "status": entry.get("status"), **texts}


# ---- stop -------------------------------------------------------------------------------------------------
def stop_job(record: JobRecord, caller: Caller | None, orchestrations: Orchestrations) -> dict[str, Any]:
    """Stop an (authorized) plain job: `removed` at once, the runner told, the orchestration woken."""
    if record.status.is_final:
        return {"status": record.status.value, "response": f"job had already ended ({record.status.value})"}
    record = mark_removed(record.uid, caller, "stopped")
    response = "stop requested"
    if record.handle is not None:
        try:
            response = registry.default_registry().get(record.runner_type).stop(record.handle)
        except RunnerError as error:
            response = f"stop requested; the runner said: {error}"
    try:
        orchestrations.raise_stop(record.uid)
    except Exception as error:  # noqa: BLE001 - the next poll sees the stop in the store anyway
        log.info("stop event for job %s not delivered (%s); the next poll ends it", record.uid, type(error).__name__)
    return {"status": record.status.value, "response": response}


def mark_removed(uid: str, caller: Caller | None, message: str) -> JobRecord:
    who = caller.display if caller is not None else "anonymous"
    return store().update(uid, partial(transitions.stop_requested, message=f"{message} by {who}", now=clock.now()))


# ---- progress reported by the job itself ------------------------------------------------------------------
def parse_overwrite_log(value: str | None) -> bool:
    if value is None:
        raise ValidationFailed("query parameter overwrite_log is required (true or false)")
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValidationFailed(f"query parameter overwrite_log must be true or false, not {value[:20]!r}")


def _progress_lines(logs: Any, overwrite: bool) -> list[str]:
    if logs is None:
        return []
    if isinstance(logs, str):
        if overwrite:
            return [logs]
        return [line for line in logs.splitlines() if line.strip()]
    if isinstance(logs, list) and all(isinstance(item, str) for item in logs):
        if overwrite:
            return list(logs)
        return [line for item in logs for line in item.splitlines() if line.strip()]
    raise ValidationFailed("logs must be a string, a list of strings or null")


def report_progress(
    uid: str,
    body: bytes | None,
    overwrite_log: str | None,
    caller: Caller | None = None,
    job_token: str | None = None,
    *,
    wake: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    overwrite = parse_overwrite_log(overwrite_log)
    data = parse_json(body)
    if not isinstance(data, dict):
        raise BadRequest('progress must be a JSON object {"percentage", "logs", "status"}')
    percentage = _percentage(data.get("percentage"))
    status = _reported_status(data.get("status"))
    exited = _exited(data.get("exited"))
    record = get_record(uid)
    authorize(record, caller, "progress", job_token, open_route=True)
    if exited and data.keys() <= {"exited"}:  # only the launcher's notice that the process exited: nothing to store
        freshness.on_exit(record, clock.now(), wake)
        return {"response": "OK"}
    secrets = activities.secrets_of(record, activities.load_entity(record))
    lines = environment.scrub(_progress_lines(data.get("logs"), overwrite), secrets)
    if status is not None and status.is_final and status not in (JobStatus.COMPLETED, JobStatus.FAILED):
        raise ValidationFailed(
            f"a job may report that it completed or failed, not {status.value!r}: DELETE the job to stop it"
        )
    progress = transitions.Progress(
        percentage=percentage,
        status=status,
        lines=lines,
        overwrite=overwrite,
        tail=settings.get_int("LOG_TAIL_LINES"),
        now=clock.now(),
    )
    record = store().update(record.uid, partial(transitions.reported, progress=progress))
    if wake is not None and transitions.reported_final(record):  # the job said it ended: finish it now
        wake(record.uid)
    elif exited:
        freshness.on_exit(record, clock.now(), wake)
    return {"response": "OK"}


def _exited(value: Any) -> bool:
    """`exited: true` is a local runner's launcher saying the job's process exited (shared.jobs.freshness)."""
    if value is not None and not isinstance(value, bool):
        raise ValidationFailed("exited must be true, false or null")
    return bool(value)


def _percentage(value: Any) -> float | None:
    """Progress is a fraction from 0 to 1 (the DM web app shows `Math.round(percentage * 100)%`)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationFailed("percentage must be a number or null")
    try:
        number = float(value)
    except OverflowError:
        raise ValidationFailed("percentage is out of range") from None
    if not 0.0 <= number <= 1.0:
        raise ValidationFailed(
            f"percentage is a fraction from 0 to 1 (0.4 for 40 %), not {number:g}", data={"percentage": number}
        )
    return number


def _reported_status(value: Any) -> JobStatus | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationFailed("status must be a job status string or null")
    try:
        return parse_status(value)
    except ValueError as error:
        raise ValidationFailed(str(error)) from None


# ---- list and health --------------------------------------------------------------------------------------
def list_jobs(status: str | None, limit: str | None, token: str | None, caller: Caller | None = None) -> dict[str, Any]:
    """The caller's own jobs, newest first (a stranger's jobs are not listed, not even their labels)."""
    wanted = None
    if status:
        try:
            wanted = parse_status(status)
        except ValueError as error:
            raise BadRequest(str(error)) from None
    if limit and not (len(limit) <= 10 and limit.strip().isdigit()):
        raise BadRequest(f"limit must be an integer, not {limit[:20]!r}")
    size = int(limit) if limit else 100
    if not 1 <= size <= 1000:
        raise BadRequest("limit must be between 1 and 1000")
    try:
        rows, next_token = store().list(wanted, size, token, owner=(caller.id if caller is not None else None) or "")
    except (ValueError, TypeError):
        raise BadRequest("malformed continuation token") from None
    jobs = [
        {
            "uid": row["uid"],
            "status": row["status"],
            "label": row.get("label") or None,
            "kind": row.get("kind"),
            "created": clock.iso(row.get("created")),
        }
        for row in rows
    ]
    return {"jobs": jobs, "continuationToken": next_token}


def health() -> tuple[int, dict[str, Any]]:
    try:
        store().ping()
    except Exception as error:  # noqa: BLE001
        return 503, {"status": "unhealthy", "storage": f"not reachable ({type(error).__name__})"}
    return 200, {"status": "healthy", "storage": "ok", "runners": registry.default_registry().types()}
