"""The API's operations, independent of the Functions host: validate, store, start, answer.

Bad input is refused before anything is written; a start that fails half-way removes what it wrote. Replies
carry the old service's keys (its clients read them) plus a few of ours, and never an environment value or
token.
"""
from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from pydantic import ValidationError

from runners.base import ConfigError
from runners.registry import UnknownRunner, default_registry

from shared.platform import clock, environment, settings
from shared.jobs.polling import PollPolicy
from shared.platform.errors import (ApiError, BadRequest, Conflict, Forbidden, NotFound, NotImplementedRunner,
    PayloadTooLarge, ServiceUnavailable, ValidationFailed)
from shared.jobs.record import JobNotFound, JobRecord
from shared.jobs.store import store
from shared.jobs.activities import load_entity, time_limit, update
from shared.jobs.models import JOB_TYPE, RECURRING_JOB_TYPE, Job, RecurringJob, normalise_type
from shared.jobs.orchestrator import initial_input
from shared.jobs.status import JobStatus, parse_status

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
IDEMPOTENCY_TTL = timedelta(hours=24)
_UID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
INLINE_ENTITY_LIMIT = 30_000


class Orchestrations(Protocol):
    """What the service needs of Durable Functions (function_app adapts the durable client)."""

    def start(self, uid: str, input: dict[str, Any]) -> None: ...

    def raise_stop(self, uid: str) -> None: ...


class Caller(Protocol):
    id: str | None

    @property
    def display(self) -> str: ...


@dataclass(frozen=True)
class StartResult:
    uid: str
    status: JobStatus
    message: str
    existed: bool = False

    def body(self) -> dict[str, Any]:
        return {"uid": self.uid, "message": self.message, "status": self.status.value}


# ---- input ------------------------------------------------------------------------------------------------
def parse_json(body: bytes | None) -> Any:
    if body is not None and len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"request body is {len(body)} bytes; the limit is {MAX_BODY_BYTES} bytes (1 MiB)")
    if not body:
        raise BadRequest("request body is empty; expected a JSON object")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRequest(f"request body is not valid JSON: {getattr(error, 'msg', 'cannot decode')}") from None


def check_uid(uid: str) -> str:
    if not _UID.match(uid or ""):
        raise BadRequest(f"malformed job uid {uid[:80]!r}: expected a UUID")
    return uid.lower()


def _validation_message(error: ValidationError) -> tuple[str, list[dict[str, Any]]]:
    """Pydantic's errors without the offending input values (they may be secrets)."""
    details = [{"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"], "type": e["type"]}
               for e in error.errors(include_input=False, include_url=False)]
    first = details[0]
    return f"invalid job entity: {first['loc']}: {first['msg']}", details


def validate_job(data: Any) -> Job:
    """A Job or RecurringJob entity, its runner known, allowed and valid; raises the API error otherwise."""
    if not isinstance(data, dict):
        raise BadRequest("a job entity must be a JSON object")
    raw_type = data.get("type")
    if raw_type is None:
        raise ValidationFailed("invalid job entity: type: Field required",
                               data=[{"loc": "type", "msg": "Field required", "type": "missing"}])
    if not isinstance(raw_type, str) or normalise_type(raw_type) not in (JOB_TYPE, RECURRING_JOB_TYPE):
        raise BadRequest(f"entity type {str(raw_type)[:200]!r} is not a job: expected {JOB_TYPE} or "
                         f"{RECURRING_JOB_TYPE}")
    model = RecurringJob if normalise_type(raw_type) == RECURRING_JOB_TYPE else Job
    try:
        job = model.model_validate(data)
    except ValidationError as error:
        message, details = _validation_message(error)
        raise ValidationFailed(message, data=details) from None
    if isinstance(job, RecurringJob):
        template = validate_job(job.applicationInput)
        if isinstance(template, RecurringJob):
            raise BadRequest("a recurring job's applicationInput must be a Job, not another RecurringJob")
        return job
    check_runner(job)
    return job


def check_runner(job: Job) -> None:
    registry = default_registry()
    try:
        runner_class = registry.runner_class(job.runner.type)
    except UnknownRunner:
        raise NotImplementedRunner(f"no runner handles runner type {job.runner.type[:200]!r}; known types: "
                                   f"{', '.join(registry.types())}") from None
    if runner_class.local and not settings.get_bool("ENABLE_LOCAL_RUNNERS"):
        raise Forbidden(f"runner type {job.runner.type!r} runs on the app's own host and is disabled here "
                        "(app setting ENABLE_LOCAL_RUNNERS)")
    try:
        registry.get(job.runner.type).validate(job.runner.dump())
    except ConfigError as error:
        raise ValidationFailed(f"invalid runner: {error}") from None
    environment.parse_items(job.runner.environmentVariables)


# ---- start ------------------------------------------------------------------------------------------------
def _owner(caller: Caller | None) -> str:
    return (caller.id if caller is not None else None) or "anonymous"


def new_record(job: Job, uid: str, caller: Caller | None, triggered_by: str | None) -> JobRecord:
    now = clock.now()
    status = JobStatus.REGISTERED if isinstance(job, RecurringJob) else JobStatus.STARTING
    who = triggered_by or (caller.display if caller is not None else None) or "anonymous"
    entity = job.dump()
    entity.update(uid=uid, status=status.value, started=clock.iso(now), triggeredBy=who)
    entity.pop("ended", None)
    extra = {"outputTarget": job.outputTarget} if job.outputTarget else {}
    return JobRecord(extra=extra, uid=uid, kind="recurring" if isinstance(job, RecurringJob) else "job", status=status,
                     job_token=secrets.token_urlsafe(32),
                     entity=entity, runner_type=job.runner.type, label=job.label or job.name, triggered_by=who,
                     owner=caller.id if caller is not None else None, started=now,
                     time_limit_seconds=None if isinstance(job, RecurringJob) else time_limit(job),
                     message="registered" if status == JobStatus.REGISTERED else "starting")


def _spill_entity(record: JobRecord) -> None:
    if len(json.dumps(record.entity)) > INLINE_ENTITY_LIMIT:
        record.entity_ref = store().put_text(record.uid, "entity.json", json.dumps(record.entity))
        record.entity = {}


def start_job(data: Any, *, caller: Caller | None, orchestrations: Orchestrations,
              idempotency_key: str | None = None, triggered_by: str | None = None,
              prepare: Any = None) -> StartResult:
    """Validate, store and start a job (or register a recurring one).

    `prepare(record)` may add to the record before it is stored (the DMSS mode adds the address and token).
    """
    job = validate_job(data)
    uid = str(uuid.uuid4())
    jobs = store()
    if idempotency_key:
        if len(idempotency_key) > 200:
            raise BadRequest("Idempotency-Key is longer than 200 characters")
        earlier = jobs.claim_idempotency(_owner(caller), idempotency_key, uid, IDEMPOTENCY_TTL)
        if earlier:
            try:
                status = jobs.get(earlier).status
            except JobNotFound:
                status = JobStatus.UNKNOWN
            return StartResult(earlier, status, f"already started with this Idempotency-Key: job {earlier}",
                               existed=True)
    record = new_record(job, uid, caller, triggered_by)
    try:
        if prepare is not None:
            prepare(record)
        _spill_entity(record)
        jobs.create(record)
        if isinstance(job, RecurringJob):
            from shared.schedules import tick as schedules

            schedules.register(record)
        else:
            orchestrations.start(uid, initial_input(uid, record.time_limit_seconds or 0,
                                                    PollPolicy.from_settings()))
    except Exception as error:
        _undo_start(uid, caller, idempotency_key, record)
        if isinstance(error, ApiError):
            raise
        log.warning("starting job %s failed: %s", uid, type(error).__name__)
        raise ServiceUnavailable(f"the job could not be started ({type(error).__name__}); nothing was kept") \
            from None
    if isinstance(job, RecurringJob):
        return StartResult(uid, JobStatus.REGISTERED, f"recurring job {uid} registered")
    return StartResult(uid, JobStatus.STARTING, f"job {uid} is starting")


def _undo_start(uid: str, caller: Caller | None, key: str | None, record: JobRecord) -> None:
    jobs = store()
    try:
        jobs.delete(uid)
        if record.entity_ref:
            jobs.delete_texts([record.entity_ref])
        if record.kind == "recurring":
            from shared.schedules import tick as schedules

            schedules.unregister(uid)
        if key:
            jobs.release_idempotency(_owner(caller), key)
    except Exception as error:  # noqa: BLE001 - best effort; the original error is what the caller sees
        log.warning("cleaning up failed start of job %s: %s", uid, type(error).__name__)


# ---- read -------------------------------------------------------------------------------------------------
def get_record(uid: str) -> JobRecord:
    try:
        return store().get(check_uid(uid))
    except JobNotFound:
        raise NotFound(f"no job with uid {uid}") from None


def _token_matches(record: JobRecord, presented: str | None) -> bool:
    if not presented:
        return False
    return any(secret and hmac.compare_digest(presented.encode(), secret.encode())
               for secret in (record.job_token, record.secret_token))


def authorize(record: JobRecord, caller: Caller | None, action: str, job_token: str | None = None, *,
              open_route: bool = False) -> None:
    """Who may touch a job (README "Who may do what").

    - The starter (same caller id) may read, stop, fetch the result and report progress.
    - The job itself, presenting its JOB_TOKEN or its DMSS token, may read and report progress.
    - A job started without an identity is open to callers without one (local development); but not on an
      `open_route` (the progress route takes no function key, so there an unidentified caller needs the token).
    """
    if action in ("read", "progress") and _token_matches(record, job_token):
        return
    caller_id = caller.id if caller is not None else None
    if caller_id is None and open_route:
        raise Forbidden(f"reporting progress for job {record.uid} needs the job's token (JOB_TOKEN or its DMSS "
                        "token as Access-Key or Bearer) or the starter's identity")
    if (record.owner or None) == caller_id:
        return
    raise Forbidden(f"the caller may not {action} job {record.uid}: only its starter may")


def status_body(record: JobRecord) -> dict[str, Any]:
    entity = record.entity if not record.entity_ref else {}
    body: dict[str, Any] = {
        "uid": record.uid,
        "status": record.status.value,
        "log": record.reported_log if record.externally_reported else record.log,
        "percentage": record.percentage,
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
    if record.kind == "recurring":
        from shared.schedules import tick as schedules

        body["schedule"] = schedules.view(record)
    return body


def get_job(uid: str, caller: Caller | None = None, job_token: str | None = None) -> dict[str, Any]:
    record = get_record(uid)
    authorize(record, caller, "read", job_token)
    return status_body(record)


def get_result(uid: str, caller: Caller | None = None) -> dict[str, Any]:
    record = get_record(uid)
    authorize(record, caller, "read the result of")
    if not record.status.is_final:
        raise Conflict(f"job {record.uid} has not finished yet (status {record.status.value}); ask again when "
                       "it is completed or failed")
    result = store().get_text(record.result_ref) if record.result_ref else ""
    return {"message": record.message, "result": result, "status": record.status.value}


# ---- stop -------------------------------------------------------------------------------------------------
def stop_job(uid: str, caller: Caller | None, orchestrations: Orchestrations, *,
             stop_running: bool = False) -> dict[str, Any]:
    record = get_record(uid)
    authorize(record, caller, "stop")
    if record.kind == "recurring":
        from shared.schedules import tick as schedules

        message = schedules.unregister(record.uid, stop_running=stop_running, orchestrations=orchestrations)
        record = _mark_removed(record.uid, caller, message)
        return {"status": record.status.value, "response": message}
    if record.status.is_final:
        return {"status": record.status.value, "response": f"job had already ended ({record.status.value})"}
    record = _mark_removed(record.uid, caller, "stopped")
    response = "stop requested"
    if record.handle is not None:
        from runners.base import RunnerError

        try:
            response = default_registry().get(record.runner_type).stop(record.handle)
        except RunnerError as error:
            response = f"stop requested; the runner said: {error}"
    try:
        orchestrations.raise_stop(record.uid)
    except Exception as error:  # noqa: BLE001 - the next poll sees the stop in the store anyway
        log.info("stop event for job %s not delivered (%s); the next poll ends it", record.uid,
                 type(error).__name__)
    return {"status": record.status.value, "response": response}


def _mark_removed(uid: str, caller: Caller | None, message: str) -> JobRecord:
    who = caller.display if caller is not None else "anonymous"

    def mutate(r: JobRecord) -> bool | None:
        if r.status.is_final:
            return False
        r.stop_requested = True
        r.status = JobStatus.REMOVED
        r.message = f"{message} by {who}"
        r.ended = clock.now()
        return None

    return update(uid, mutate)


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


def report_progress(uid: str, body: bytes | None, overwrite_log: str | None, caller: Caller | None = None,
                    job_token: str | None = None) -> dict[str, Any]:
    overwrite = parse_overwrite_log(overwrite_log)
    data = parse_json(body)
    if not isinstance(data, dict):
        raise BadRequest("progress must be a JSON object {\"percentage\", \"logs\", \"status\"}")
    percentage = data.get("percentage")
    if percentage is not None and (isinstance(percentage, bool) or not isinstance(percentage, (int, float))):
        raise ValidationFailed("percentage must be a number or null")
    status = None
    if data.get("status") is not None:
        if not isinstance(data["status"], str):
            raise ValidationFailed("status must be a job status string or null")
        try:
            status = parse_status(data["status"])
        except ValueError as error:
            raise ValidationFailed(str(error)) from None
    record = get_record(uid)
    authorize(record, caller, "progress", job_token, open_route=True)
    from shared.jobs.activities import secrets_of

    lines = environment.scrub(_progress_lines(data.get("logs"), overwrite), secrets_of(record, load_entity(record)))
    tail = settings.get_int("LOG_TAIL_LINES")

    def mutate(r: JobRecord) -> None:
        r.externally_reported = True
        if percentage is not None:
            r.percentage = float(percentage)
        if status is not None and not r.status.is_final:
            r.status = status
        if overwrite:
            r.reported_log = lines[-tail:]
        elif lines:
            r.reported_log = (r.reported_log + lines)[-tail:]

    update(record.uid, mutate)
    return {"response": "OK"}


# ---- list and health --------------------------------------------------------------------------------------
def list_jobs(status: str | None, limit: str | None, token: str | None) -> dict[str, Any]:
    wanted = None
    if status:
        try:
            wanted = parse_status(status)
        except ValueError as error:
            raise BadRequest(str(error)) from None
    try:
        size = int(limit) if limit else 100
    except ValueError:
        raise BadRequest(f"limit must be an integer, not {limit[:20]!r}") from None
    if not 1 <= size <= 1000:
        raise BadRequest("limit must be between 1 and 1000")
    try:
        rows, next_token = store().list(wanted, size, token)
    except (ValueError, TypeError):
        raise BadRequest("malformed continuation token") from None
    jobs = [{"uid": row["uid"], "status": row["status"], "label": row.get("label") or None, "kind": row.get("kind"),
             "created": clock.iso(row.get("created"))} for row in rows]
    return {"jobs": jobs, "continuationToken": next_token}


def health() -> tuple[int, dict[str, Any]]:
    try:
        store().ping()
    except Exception as error:  # noqa: BLE001
        return 503, {"status": "unhealthy", "storage": f"not reachable ({type(error).__name__})"}
    return 200, {"status": "healthy", "storage": "ok", "runners": default_registry().types()}


# ---- schedules --------------------------------------------------------------------------------------------
def _recurring(uid: str, caller: Caller | None, action: str) -> JobRecord:
    record = get_record(uid)
    authorize(record, caller, action)
    if record.kind != "recurring":
        raise BadRequest(f"job {record.uid} is not a recurring job")
    return record


def suspend_schedule(uid: str, caller: Caller | None) -> dict[str, Any]:
    from shared.schedules import tick as schedules

    return schedules.suspend(_recurring(uid, caller, "suspend").uid)


def resume_schedule(uid: str, caller: Caller | None) -> dict[str, Any]:
    from shared.schedules import tick as schedules

    return schedules.resume(_recurring(uid, caller, "resume").uid)


def preview_schedule(uid: str, count: str | None, caller: Caller | None) -> dict[str, Any]:
    from shared.schedules import tick as schedules

    try:
        n = int(count) if count else 5
    except ValueError:
        raise BadRequest(f"next must be an integer, not {count[:20]!r}") from None
    if not 1 <= n <= 100:
        raise BadRequest("next must be between 1 and 100")
    return schedules.preview(_recurring(uid, caller, "read").uid, n)
