"""What a job entity must be before anything is stored (the body's JSON and a uid: shared.platform.parsing).

Every refusal is an `ApiError` (4xx with the JSON error body) that names what is wrong without echoing the
offending value (it may be a secret).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from runners.base import ConfigError
from runners.registry import UnknownRunner, default_registry
from shared.jobs.models import JOB_TYPE, RECURRING_JOB_TYPE, Job, RecurringJob, normalise_type
from shared.platform import environment, settings
from shared.platform.errors import BadRequest, Forbidden, NotImplementedRunner, ValidationFailed


def _validation_message(error: ValidationError) -> tuple[str, list[dict[str, Any]]]:
    """Pydantic's errors without the offending input values (they may be secrets)."""
    details = [
        {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in error.errors(include_input=False, include_url=False)
    ]
    first = details[0]
    return f"invalid job entity: {first['loc']}: {first['msg']}", details


def validate_job(data: Any) -> Job:
    """A Job or RecurringJob entity, its runner known, allowed and valid; raises the API error otherwise."""
    if not isinstance(data, dict):
        raise BadRequest("a job entity must be a JSON object")
    raw_type = data.get("type")
    if raw_type is None:
        raise ValidationFailed(
            "invalid job entity: type: Field required",
            data=[{"loc": "type", "msg": "Field required", "type": "missing"}],
        )
    if not isinstance(raw_type, str) or normalise_type(raw_type) not in (JOB_TYPE, RECURRING_JOB_TYPE):
        raise BadRequest(
            f"entity type {str(raw_type)[:200]!r} is not a job: expected {JOB_TYPE} or {RECURRING_JOB_TYPE}"
        )
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
        raise NotImplementedRunner(
            f"no runner handles runner type {job.runner.type[:200]!r}; known types: {', '.join(registry.types())}"
        ) from None
    if runner_class.local and not settings.get_bool("ENABLE_LOCAL_RUNNERS"):
        raise Forbidden(
            f"runner type {job.runner.type!r} runs on the app's own host and is disabled here "
            "(app setting ENABLE_LOCAL_RUNNERS)"
        )
    try:
        registry.get(job.runner.type).validate(job.runner.dump())
    except ConfigError as error:
        raise ValidationFailed(f"invalid runner: {error}") from None
    environment.parse_items(job.runner.environmentVariables)
