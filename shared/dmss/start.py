"""Start a job whose entity lives in DMSS, from its address (the old clients' `POST /api/jobs/{address}`).

The start goes through the same `service.start_job` as an inline job; DMSS adds the entity's address, the job
token and the DMSS part of the environment to the record (`prepare`), and the first write-back happens there,
before anything is stored: if DMSS refuses it, nothing is left half-started. A start that fails after the
first write-back puts the entity's own values back.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from shared import service
from shared.dmss import jobs as dmss_jobs
from shared.dmss.writeback import WRITTEN, dmss_view
from shared.jobs.record import JobRecord
from shared.jobs.status import JobStatus
from shared.platform.errors import BadRequest, Unauthorized

log = logging.getLogger(__name__)


def start_from_address(address: str, headers: Mapping[str, str], *, caller: Any, orchestrations: Any,
                       idempotency_key: str | None = None) -> service.StartResult:
    if not address.strip("/"):
        raise BadRequest("a DMSS address is needed after /api/jobs/, e.g. /api/jobs/dmss%3A%2F%2FDS%2F%24id")
    token = dmss_jobs.credentials_from_request(headers)
    if token is None:
        raise Unauthorized("starting a job from DMSS needs the caller's DMSS credentials: an Access-Key header "
                           "or an Authorization: Bearer token")
    entity, absolute = dmss_jobs.fetch_job_entity(address, token)
    written: dict[str, Any] = {}

    def prepare(record: JobRecord) -> None:
        environment = dmss_jobs.job_environment(absolute, entity, token, record.uid)
        environment.pop("DMSS_TOKEN", None)  # kept once, as the record's secret, not in `extra`
        record.dmss_address = absolute
        record.secret_token = token
        record.extra["environment"] = environment
        view = dmss_view(record)
        dmss_jobs.write_back(absolute, token, view, entity_type=entity.get("type"))
        written.update(view)
        record.extra[WRITTEN] = view

    try:
        return service.start_job(entity, caller=caller, orchestrations=orchestrations,
                                 idempotency_key=idempotency_key, prepare=prepare)
    except Exception:
        if written:  # the entity already names a run that was then undone: put back what it said before
            _undo_write_back(absolute, token, entity, written)
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
        log.warning("could not undo the write-back to %s after a failed start: %s", address,
                    type(error).__name__)
