"""Start a job whose entity lives in DMSS, from its address (the old clients' `POST /api/jobs/{address}`).

The start goes through the same `service.start_job` as an inline job; DMSS adds the entity's address, the job
token and the DMSS part of the environment to the record (`prepare`), and the first write-back happens there,
before anything is stored: if DMSS refuses it, nothing is left half-started. A start that fails after the
first write-back puts the entity's own values back.

A RecurringJob read from DMSS was written for the old service: a `schedule` that names no `weekdayDialect` is
read as the old service read it (`dmjob`: day-of-week 0 = Monday .. 6 = Sunday, what the DM web app's schedule
editor means by "6 = every Sunday"), and the dialect is written into the entity's `schedule` so that the entity
says what it means. Inline starts keep the app's default (SCHEDULE_WEEKDAY_DIALECT). The schedule is validated
before anything is written: an hour 24 is a 422 naming the field, and DMSS is not touched.
"""

from __future__ import annotations

import logging
import copy
from collections.abc import Mapping
from typing import Any

from shared import service
from shared.dmss import access as dmss_access, jobs as dmss_jobs
from shared.dmss.writeback import WRITTEN, dmss_view
from shared.jobs.models import RECURRING_JOB_TYPE, normalise_type
from shared.jobs.record import JobRecord
from shared.jobs.status import JobStatus
from shared.platform.errors import BadRequest, Unauthorized
from shared.schedules import operations as schedules

log = logging.getLogger(__name__)

OLD_SERVICE_DIALECT = "dmjob"  # APScheduler's day-of-week, the old service's: 0 = Monday .. 6 = Sunday


def _is_recurring(entity: Mapping[str, Any]) -> bool:
    return isinstance(entity.get("type"), str) and normalise_type(entity["type"]) == RECURRING_JOB_TYPE


def old_schedule_meaning(entity: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the entity as this service runs it, what to write into its `schedule`). A RecurringJob whose schedule
    names no `weekdayDialect` gets the old service's (`dmjob`); anything else is returned as it is."""
    schedule = entity.get("schedule")
    if not _is_recurring(entity) or not isinstance(schedule, Mapping) or schedule.get("weekdayDialect"):
        return dict(entity), {}
    changes = {"weekdayDialect": OLD_SERVICE_DIALECT}
    return {**copy.deepcopy(dict(entity)), "schedule": {**copy.deepcopy(dict(schedule)), **changes}}, changes


def start_from_address(
    address: str, headers: Mapping[str, str], *, caller: Any, orchestrations: Any, idempotency_key: str | None = None
) -> service.StartResult:
    if not address.strip("/"):
        raise BadRequest("a DMSS address is needed after /api/jobs/, e.g. /api/jobs/dmss%3A%2F%2FDS%2F%24id")
    token = dmss_jobs.credentials_from_request(headers)
    if token is None:
        raise Unauthorized(
            "starting a job from DMSS needs the caller's DMSS credentials: an Access-Key header "
            "or an Authorization: Bearer token"
        )
    fetched, absolute = dmss_jobs.fetch_job_entity(address, token)
    entity, schedule_changes = old_schedule_meaning(fetched)
    if _is_recurring(entity):
        schedules.validate(entity)  # refused (422) before DMSS or the store is touched
    written: dict[str, Any] = {}

    def prepare(record: JobRecord) -> None:
        environment = dmss_jobs.job_environment(absolute, entity, token, record.uid)
        environment.pop("DMSS_TOKEN", None)  # kept once, as the record's secret, not in `extra`
        record.dmss_address = absolute
        record.secret_token = token
        record.extra["environment"] = environment
        acl_document = dmss_access.acl_document_of(absolute, fetched)
        if acl_document:
            record.extra[dmss_access.ACL_DOCUMENT] = acl_document
        view = dmss_view(record)
        dmss_jobs.write_back(absolute, token, view, entity_type=entity.get("type"))
        written.update(view)
        record.extra[WRITTEN] = view
        if schedule_changes:
            dmss_jobs.write_schedule(absolute, token, schedule_changes, schedule_type=entity["schedule"].get("type"))

    try:
        return service.start_job(
            entity, caller=caller, orchestrations=orchestrations, idempotency_key=idempotency_key, prepare=prepare
        )
    except Exception:
        if written:  # the entity already names a run that was then undone: put back what it said before
            _undo_write_back(absolute, token, fetched, written)
        raise


def _undo_write_back(address: str, token: str, entity: Mapping[str, Any], written: Mapping[str, Any]) -> None:
    """Best effort: the entity's own values of the attributes the failed start wrote (its `uid`, `status`,
    `started`, `ended` from before), so that it does not point at a job this service never kept."""
    original = {name: entity.get(name) for name in written}
    if "status" in original and original["status"] is None:
        original["status"] = JobStatus.NOT_STARTED.value
    try:
        dmss_jobs.write_back(address, token, original, entity_type=entity.get("type"))
    except Exception as error:  # noqa: BLE001 - the start's own error is what the caller sees
        log.warning("could not undo the write-back to %s after a failed start: %s", address, type(error).__name__)
