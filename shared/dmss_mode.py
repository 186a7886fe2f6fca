"""Jobs whose entity lives in DMSS: start from an address, write status changes back, deliver results.

The start goes through the same `service.start_job` as an inline job; DMSS adds the entity's address, the job
token and the DMSS part of the environment to the record (`prepare`), and the first write-back happens there,
before anything is stored: if DMSS refuses it, nothing is left half-started.

Afterwards `DmssWriteBack` listens to the lifecycle (see shared/hooks.py): a status change writes `uid`,
`status`, `started`, `ended` to the entity (a poll that changes nothing never reaches DMSS), and a finished job
with an `outputTarget` has its result entity delivered there, retried with backoff; a delivery that keeps
failing is shown in the job's message and log while the job's status stays what the job did.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from . import clock, dmss_jobs, service
from .errors import ApiError, BadRequest, Unauthorized
from .jobstore import JobRecord, store
from .status import JobStatus

log = logging.getLogger(__name__)

WRITTEN = "dmssWritten"  # record.extra key: what DMSS last got, so only changes are written


def _dmss_view(record: JobRecord) -> dict[str, Any]:
    return {"uid": record.uid, "status": record.status.value, "started": clock.iso(record.started),
            "ended": clock.iso(record.ended)}


def start_from_address(address: str, headers: Mapping[str, str], *, caller: Any, orchestrations: Any,
                       idempotency_key: str | None = None) -> service.StartResult:
    if not address.strip("/"):
        raise BadRequest("a DMSS address is needed after /api/jobs/, e.g. /api/jobs/dmss%3A%2F%2FDS%2F%24id")
    token = dmss_jobs.credentials_from_request(headers)
    if token is None:
        raise Unauthorized("starting a job from DMSS needs the caller's DMSS credentials: an Access-Key header "
                           "or an Authorization: Bearer token")
    entity, absolute = dmss_jobs.fetch_job_entity(address, token)

    def prepare(record: JobRecord) -> None:
        environment = dmss_jobs.job_environment(absolute, entity, token, record.uid)
        environment.pop("DMSS_TOKEN", None)  # kept once, as the record's secret, not in `extra`
        record.dmss_address = absolute
        record.secret_token = token
        record.extra["environment"] = environment
        view = _dmss_view(record)
        dmss_jobs.write_back(absolute, token, view, entity_type=entity.get("type"))
        record.extra[WRITTEN] = view

    return service.start_job(entity, caller=caller, orchestrations=orchestrations,
                             idempotency_key=idempotency_key, prepare=prepare)


def _result_entity(result: str | None) -> dict[str, Any] | None:
    if not result:
        return None
    try:
        value = json.loads(result)
    except ValueError:
        return None
    return value if isinstance(value, dict) and isinstance(value.get("type"), str) else None


class DmssWriteBack:
    """Lifecycle listener for DMSS-backed jobs."""

    def status_changed(self, record: JobRecord) -> None:
        if not (record.dmss_address and record.secret_token):
            return
        current = _dmss_view(record)
        changes = dmss_jobs.changed_attributes(record.extra.get(WRITTEN), current)
        if not changes:
            return
        dmss_jobs.write_back(record.dmss_address, record.secret_token, changes)

        def remember(r: JobRecord) -> None:
            r.extra[WRITTEN] = {**r.extra.get(WRITTEN, {}), **changes}

        store().update(record.uid, remember)

    def finished(self, record: JobRecord, result: str | None) -> None:
        if not (record.dmss_address and record.secret_token):
            return
        target = (record.entity or {}).get("outputTarget")
        if not target or record.status != JobStatus.COMPLETED:
            return
        entity = _result_entity(result)
        if entity is None:
            self._note(record.uid, f"result not delivered to {target}: the job's result is not a JSON entity with "
                                   "a `type`")
            return
        try:
            dmss_jobs.deliver_result(target, record.secret_token, entity)
        except ApiError as error:
            self._note(record.uid, f"result delivery failed: {error.message}")
            return
        self._note(record.uid, f"result delivered to {target}", failed=False)

    @staticmethod
    def _note(uid: str, message: str, failed: bool = True) -> None:
        def mutate(r: JobRecord) -> None:
            r.message = f"{r.message}; {message}" if r.message else message
            r.log = r.log + [message]
            if r.externally_reported:
                r.reported_log = r.reported_log + [message]
            r.extra["resultDelivered"] = not failed

        store().update(uid, mutate)
