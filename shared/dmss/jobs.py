"""Jobs stored in DMSS: what the service calls to start, update and finish a job whose entity lives in DMSS.

The service (shared/service.py) wires these in; see the README (DMSS mode) for the user-facing rules.

- `credentials_from_request(headers)`: the caller's DMSS token for the job (Access-Key as is, else the
  Bearer JWT exchanged at DMSS for a personal access token), or None.
- `fetch_job_entity(address, token)`: the Job/RecurringJob entity and its canonical address (400 otherwise).
- `job_environment(address, entity, token, uid)`: the DMSS part of the job's environment.
- `write_back(address, token, changes)`: `uid`, `status`, `started`, `ended` (...) written to the entity with
  `partial_update=true`: only the given keys are sent, so attributes this service does not know, and anything
  the job itself wrote meanwhile, stay as they are (GET + merge + PUT would race with the job and DMSS has no
  ETags to detect that; it also costs two calls). An empty `changes` writes nothing.
- `write_schedule(address, token, changes)`: the `weekdayDialect` in force written into a RecurringJob's
  `schedule` (`PUT <job>.schedule?partial_update=true`).
- `deliver_result(output_target, token, result, attempts, backoff)`: POST (add) the result entity at
  `outputTarget` (a package, a list attribute or an object attribute), retried on 5xx/timeouts.
- `renew_token_for_schedule()`: a fresh job token from the app's own key (`DMSS_APP_ACCESS_KEY`), or an error
  that says why there is none.

No function here logs, returns in a message, or stores a token anywhere but the job's environment dict.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any, Callable, TypeVar

from shared.dmss import client as dmss
from shared.platform import settings
from shared.platform.clock import get_clock, iso
from shared.dmss.address import parse_address, parse_target, resolve_reference
from shared.platform.errors import ApiError, BadGateway, BadRequest, ServiceUnavailable, Unauthorized
from shared.jobs.models import CRON_JOB_TYPE, JOB_TYPE, RECURRING_JOB_TYPE, REFERENCE_TYPE, normalise_type

log = logging.getLogger(__name__)

JOB_TYPES = (JOB_TYPE, RECURRING_JOB_TYPE)
#: attributes of the job entity this service writes back to DMSS; nothing else is ever written
WRITABLE_ATTRIBUTES = ("uid", "status", "started", "ended", "triggeredBy", "result")
#: attributes of a RecurringJob's `schedule` this service writes back (the weekday dialect it runs the cron in)
SCHEDULE_ATTRIBUTES = ("weekdayDialect",)
PACKAGE_TYPE = "dmss://system/SIMOS/Package"
NO_APP_CREDENTIALS = "the job token expired and the app has no DMSS credentials (DMSS_APP_ACCESS_KEY)"

T = TypeVar("T")


class ResultDeliveryFailed(BadGateway):
    """The result could not be saved at the job's outputTarget (the message says where and why)."""

    type = "ResultDeliveryException"


class TokenRenewalImpossible(Unauthorized):
    """A scheduled run needs a new DMSS token and the app cannot get one."""

    type = "TokenExpiredException"


# --- credentials ------------------------------------------------------------------------------------------


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        for key, candidate in headers.items():
            if key.lower() == lowered:
                value = candidate
                break
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def bearer_token(headers: Mapping[str, str] | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    auth = _header(headers, "Authorization")
    if not auth:
        return None
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def credentials_from_request(headers: Mapping[str, str] | None) -> str | None:
    """The DMSS token a job started by this request will use.

    `Access-Key` header: its value, as is (a DMSS personal access token). Else `Authorization: Bearer <JWT>`:
    exchanged at DMSS (`POST /api/token`, scope WRITE, lifetime DMSS_TOKEN_TTL_SECONDS) for a personal
    access token, so that the job keeps working after the short-lived JWT expires. None when neither header
    is there (the API answers 401). DMSS refusing the JWT gives its 401/403."""
    access_key = _header(headers, "Access-Key")
    if access_key:
        return access_key
    bearer = bearer_token(headers)
    if not bearer:
        return None
    token = dmss.exchange_token(bearer, settings.get_int("DMSS_TOKEN_TTL_SECONDS"), scope="WRITE")
    log.info("exchanged the caller's bearer token at DMSS for a job token")
    return token


def token_fingerprint(token: str) -> str:
    """A one-way fingerprint of a token (`sha256:<hex>`), to store instead of the token (e.g. in the job's
    table row) so that later calls can be matched to "the job's token" or "the starter's key"."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


def matches_fingerprint(token: str | None, fingerprint: str | None) -> bool:
    """Constant-time check that `token` is the one `fingerprint` was made from."""
    if not token or not fingerprint:
        return False
    return hmac.compare_digest(token_fingerprint(token), fingerprint)


# --- start ------------------------------------------------------------------------------------------------


def fetch_job_entity(address: str, token: str) -> tuple[dict[str, Any], str]:
    """GET the entity (depth 1) and check it is a Job or RecurringJob (`JOBCORE:` aliases accepted).

    Returns (entity as DMSS gave it, canonical absolute address `dmss://DS/path`). A malformed address or an
    entity of another type is a BadRequest (400); DMSS's 401/403/404 pass through."""
    absolute = str(parse_address(address))
    entity = dmss.get_document(absolute, 1, token=token)
    if not isinstance(entity, dict):
        raise BadRequest(f"The document at {absolute} is not an entity (a JSON object)", data={"address": absolute})
    entity_type = entity.get("type")
    if not isinstance(entity_type, str) or normalise_type(entity_type) not in JOB_TYPES:
        raise BadRequest(
            f"The entity at {absolute} has type {entity_type!r}; a job must be of type {JOB_TYPE} or "
            f"{RECURRING_JOB_TYPE}",
            data={"address": absolute, "type": entity_type},
        )
    return entity, absolute


def input_address(address: str, entity: Mapping[str, Any]) -> str | None:
    """Absolute address of the job's input: its `applicationInput` reference resolved against the job's own
    address (`~`, `^`, `$id`, absolute), or, for an inline input object, the address of that object
    (`<job>.applicationInput`). None when the job has no input."""
    value = entity.get("applicationInput")
    if not isinstance(value, Mapping):
        return None
    value_type = value.get("type")
    is_reference = (isinstance(value_type, str) and normalise_type(value_type) == REFERENCE_TYPE) or (
        "address" in value and "referenceType" in value
    )
    job = parse_address(address)
    if is_reference:
        reference = value.get("address")
        if not isinstance(reference, str) or not reference.strip():
            raise BadRequest(f"The applicationInput reference of {job} has no address", data={"address": str(job)})
        return resolve_reference(str(job), reference)
    return str(job.attribute("applicationInput"))


def public_dmss_url() -> str:
    return (settings.get("PUBLIC_DMSS_URL") or settings.get("DMSS_URL")).rstrip("/")


def job_environment(address: str, entity: Mapping[str, Any], token: str, uid: str) -> dict[str, str]:
    """The DMSS-related environment of a job (the runner's own `environmentVariables` come on top, from the
    service's allow-listed builder):

    - `DMSS_TOKEN`: the job token (secret: environment only).
    - `DMSS_URL`: PUBLIC_DMSS_URL, else DMSS_URL.
    - `DM_JOB_URL`: this API's public job URL (progress PUTs to `{DM_JOB_URL}/{JOB_UID}`).
    - `JOB_DMSS_ID`: the job entity's absolute address.
    - `JOB_UID`: the run's uid.
    - `JOB_INPUT_ADDRESS`: absolute address of the input (see `input_address`), when the job has one.
    """
    absolute = str(parse_address(address))
    env = {
        "DMSS_TOKEN": token,
        "DMSS_URL": public_dmss_url(),
        "DM_JOB_URL": settings.get("DM_JOB_URL").rstrip("/"),
        "JOB_DMSS_ID": absolute,
        "JOB_UID": uid,
    }
    source = input_address(absolute, entity)
    if source:
        env["JOB_INPUT_ADDRESS"] = source
    return env


# --- write-back -------------------------------------------------------------------------------------------


def _wire(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, Enum):
        return value.value
    return value


def changed_attributes(last_written: Mapping[str, Any] | None, current: Mapping[str, Any]) -> dict[str, Any]:
    """The writable attributes of `current` that differ from what was last written (so that a poll that
    changes nothing writes nothing)."""
    last = {k: _wire(v) for k, v in (last_written or {}).items()}
    return {
        k: _wire(v) for k, v in current.items() if k in WRITABLE_ATTRIBUTES and (k not in last or last[k] != _wire(v))
    }


def write_back(address: str, token: str, changes: Mapping[str, Any], *, entity_type: str | None = None) -> Any:
    """Write `changes` (a subset of WRITABLE_ATTRIBUTES; datetimes and statuses serialised) to the job entity
    with `PUT ...?partial_update=true`. Nothing else in the entity is sent, so unknown attributes are kept.
    `entity_type` (the entity's `type`, unchanged) is sent along when given, for DMSS versions that validate
    a partial update against the blueprint. No call when `changes` is empty; returns DMSS's `data` or None."""
    unknown = sorted(set(changes) - set(WRITABLE_ATTRIBUTES))
    if unknown:
        raise ValueError(f"write_back does not write {unknown}; allowed: {list(WRITABLE_ATTRIBUTES)}")
    if not changes:
        return None
    data = {k: _wire(v) for k, v in changes.items()}
    if entity_type:
        data = {"type": entity_type, **data}
    absolute = str(parse_address(address))
    return dmss.update_document(absolute, data, partial_update=True, token=token)


def write_schedule(address: str, token: str, changes: Mapping[str, Any], *, schedule_type: str | None = None) -> Any:
    """Write `changes` (only SCHEDULE_ATTRIBUTES, e.g. the `weekdayDialect` in force) into the RecurringJob's
    `schedule` object: `PUT <job>.schedule?partial_update=true`, so `cron`, the dates and `runs` stay as they
    are (a partial update of the job entity itself would replace the whole `schedule`: DMSS merges top-level
    keys only). `schedule_type` (the CronJob's `type`) is sent along, as DMSS's update reads `data["type"]`."""
    unknown = sorted(set(changes) - set(SCHEDULE_ATTRIBUTES))
    if unknown:
        raise ValueError(f"write_schedule does not write {unknown}; allowed: {list(SCHEDULE_ATTRIBUTES)}")
    if not changes:
        return None
    data = {"type": schedule_type or CRON_JOB_TYPE, **changes}
    target = parse_address(address).attribute("schedule")
    return dmss.update_document(str(target), data, partial_update=True, token=token)


# --- result -----------------------------------------------------------------------------------------------


def _retryable(error: ApiError) -> bool:
    return isinstance(error, (ServiceUnavailable, BadGateway)) or error.status in (408, 429)


def deliver_result(
    output_target: str,
    token: str,
    result_entity: Mapping[str, Any],
    attempts: int = 5,
    backoff: float = 2.0,
    *,
    max_backoff: float = 60.0,
) -> str:
    """Save `result_entity` at `output_target` with `POST /api/documents/{outputTarget}` (add):

    - a package: added to its content (needs a `name` unique in the package);
    - a list attribute (`$doc.results`): appended (every run of a recurring job keeps its result);
    - an object attribute (`$doc.result`): set;
    - a bare data source (`dmss://DS`) only takes root packages (DMSS's rule), so anything else is refused
      here, before calling DMSS, with a message saying so.

    PUT (replace) is not used: it needs the target to exist already, and it would overwrite earlier results.
    DMSS 5xx, timeouts and dropped connections are retried (`attempts` in all, sleeping `backoff`, doubled each
    time up to `max_backoff`, via the app clock); 4xx answers are not retried. A retried POST whose first
    try reached DMSS can add the result twice (at-least-once). Returns the new document's uid (address).
    Raises ResultDeliveryFailed (502, or DMSS's 4xx status) naming the target and the last error."""
    if (
        not isinstance(result_entity, Mapping)
        or not isinstance(result_entity.get("type"), str)
        or not result_entity.get("type")
    ):
        raise BadRequest("The job's result must be a JSON object with a 'type'")
    if attempts < 1:
        raise ValueError("attempts must be >= 1")
    target = parse_target(output_target)
    is_root_package = result_entity.get("type") == PACKAGE_TYPE and bool(result_entity.get("isRoot"))
    if not target.items and not is_root_package:
        raise ResultDeliveryFailed(
            f"Cannot deliver the result to {target}: a bare data source only takes root packages; set "
            f"outputTarget to a package, a list attribute or an attribute",
            status=400,
            data={"outputTarget": str(target)},
        )
    delay = max(0.0, float(backoff))
    last: ApiError | None = None
    for attempt in range(1, attempts + 1):
        try:
            uid = dmss.add_document(str(target), dict(result_entity), token=token)
            if attempt > 1:
                log.info("result delivered to %s on attempt %d", target, attempt)
            return uid
        except ApiError as error:
            last = error
            if not _retryable(error):
                raise ResultDeliveryFailed(
                    f"Could not deliver the result to {target}: {error.message}",
                    status=error.status,
                    data={"outputTarget": str(target), "attempts": attempt},
                ) from None
            log.warning("result delivery to %s failed (attempt %d of %d): %s", target, attempt, attempts, error.message)
        if attempt < attempts:
            get_clock().sleep(min(delay, max_backoff))
            delay *= 2
    assert last is not None
    raise ResultDeliveryFailed(
        f"Could not deliver the result to {target} after {attempts} attempts: {last.message}",
        data={"outputTarget": str(target), "attempts": attempts},
    )


# --- tokens for schedules ---------------------------------------------------------------------------------


def app_has_credentials() -> bool:
    return bool(settings.get("DMSS_APP_ACCESS_KEY"))


def renew_token_for_schedule(schedule_address: str | None = None, *, ttl_seconds: int | None = None) -> str:
    """A fresh job token for a scheduled run, made from the app's own DMSS access key
    (`POST /api/token` authenticated with `Access-Key: DMSS_APP_ACCESS_KEY`, scope WRITE, lifetime
    DMSS_TOKEN_TTL_SECONDS). The app's key itself is never given to a job.

    Raises TokenRenewalImpossible (401) "the job token expired and the app has no DMSS credentials
    (DMSS_APP_ACCESS_KEY)" when the setting is empty, and Unauthorized when DMSS refuses the app's key."""
    where = f" (schedule {schedule_address})" if schedule_address else ""
    key = settings.get("DMSS_APP_ACCESS_KEY")
    if not key:
        raise TokenRenewalImpossible(
            f"Cannot renew the DMSS token{where}: {NO_APP_CREDENTIALS}", data={"schedule": schedule_address}
        )
    ttl = ttl_seconds if ttl_seconds is not None else settings.get_int("DMSS_TOKEN_TTL_SECONDS")
    try:
        return dmss.renew_with_access_key(key, ttl, scope="WRITE")
    except Unauthorized as error:
        raise Unauthorized(
            f"Cannot renew the DMSS token{where}: DMSS refused the app's credentials (DMSS_APP_ACCESS_KEY): "
            f"{error.message}",
            data={"schedule": schedule_address},
        ) from None


def call_with_token_renewal(
    call: Callable[[str], T], token: str, *, schedule_address: str | None = None
) -> tuple[T, str]:
    """`call(token)`; on a DMSS 401 (expired/revoked token) get a new token with `renew_token_for_schedule`
    and call once more. Returns (result, the token that worked): store it for the schedule's next runs."""
    try:
        return call(token), token
    except TokenRenewalImpossible:
        raise
    except Unauthorized:
        pass
    fresh = renew_token_for_schedule(schedule_address)
    return call(fresh), fresh
