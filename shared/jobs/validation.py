"""What a request must be before anything is stored: a JSON body within limits, a uid, a valid job entity.

Every refusal is an `ApiError` (4xx with the JSON error body) that names what is wrong without echoing the
offending value (it may be a secret).
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from runners.base import ConfigError
from runners.registry import UnknownRunner, default_registry
from shared.jobs.models import JOB_TYPE, RECURRING_JOB_TYPE, Job, RecurringJob, normalise_type
from shared.platform import environment, settings
from shared.platform.errors import BadRequest, Forbidden, NotImplementedRunner, PayloadTooLarge, ValidationFailed

MAX_BODY_BYTES = 1024 * 1024
_UID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


MAX_JSON_DEPTH = 64  # nesting of arrays/objects; far beyond any job entity, far below Python's recursion limit
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259 has no NaN or Infinity)")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _depth(text: str) -> int:
    """The deepest nesting of arrays and objects, outside strings; found before parsing, whose recursion would
    fail on hostile input long before the body's size limit."""
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _check_text(value: Any) -> None:
    """Lone surrogates (from `\\ud800` escapes) cannot be stored or passed to a process as UTF-8."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(
            "request body holds a lone UTF-16 surrogate (an unpaired \\uD800-\\uDFFF escape); "
            "text must be valid Unicode"
        ) from None


def parse_json(body: bytes | None, what: str = "request body") -> Any:
    """Strict JSON: UTF-8, no NaN/Infinity, finite numbers, bounded size and depth, valid Unicode."""
    if body is not None and len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"{what} is {len(body)} bytes; the limit is {MAX_BODY_BYTES} bytes (1 MiB)")
    if not body:
        raise BadRequest(f"{what} is empty; expected a JSON object")
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else str(body)
    except UnicodeDecodeError as error:
        raise BadRequest(f"{what} is not valid UTF-8 (byte {error.start})") from None
    if _depth(text) > MAX_JSON_DEPTH:
        raise BadRequest(f"{what} nests arrays/objects deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except ValueError as error:
        raise BadRequest(f"{what} is not valid JSON: {getattr(error, 'msg', None) or str(error)[:100]}") from None
    _check_text(value)
    return value


def check_uid(uid: str) -> str:
    if not _UID.match(uid or ""):
        raise BadRequest(f"malformed job uid {uid[:80]!r}: expected a UUID")
    return uid.lower()


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
