"""Jobs whose entity lives in DMSS: start from an address, write status changes back, deliver results.

The start goes through the same `service.start_job` as an inline job; DMSS adds the entity's address, the job
token and the DMSS part of the environment to the record (`prepare`), and the first write-back happens there,
before anything is stored: if DMSS refuses it, nothing is left half-started.

Afterwards `DmssWriteBack` listens to the lifecycle (see shared/platform/hooks.py): a status change writes `uid`,
`status`, `started`, `ended` to the entity (a poll that changes nothing never reaches DMSS), and a finished job
with an `outputTarget` has its result entity delivered there, retried with backoff, before the entity is told
`completed`; a delivery that keeps failing is shown in the job's message and log while the job's status stays
what the job did. A start that fails after the first write-back puts the entity's own values back.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from shared.platform import clock
from shared.dmss import jobs as dmss_jobs
from shared import service
from shared.platform.errors import ApiError, BadRequest, Unauthorized
from shared.jobs.record import JobRecord
from shared.jobs.store import store
from shared.jobs.activities import load_entity
from shared.jobs.status import JobStatus

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
    written: dict[str, Any] = {}

    def prepare(record: JobRecord) -> None:
        environment = dmss_jobs.job_environment(absolute, entity, token, record.uid)
        environment.pop("DMSS_TOKEN", None)  # kept once, as the record's secret, not in `extra`
        record.dmss_address = absolute
        record.secret_token = token
        record.extra["environment"] = environment
        view = _dmss_view(record)
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


def _output_target(record: JobRecord) -> str | None:
    target = load_entity(record).get("outputTarget")
    return target if isinstance(target, str) and target.strip() else None


def _result_entity(result: str | None) -> dict[str, Any] | None:
    if not result:
        return None
    try:
        value = json.loads(result)
    except ValueError:
        return None
    return value if isinstance(value, dict) and isinstance(value.get("type"), str) else None


class DmssWriteBack:
    """Lifecycle listener for DMSS-backed jobs.

    - A status change writes the changed attributes to the entity. A job that completed with an
      `outputTarget` is the exception: its final status waits for `finished`, which delivers the result
      first, so that an entity that says `completed` has its result at the target already (or the delivery
      has failed for good and the job's message says why).
    - `finished` delivers the result, then writes whatever the entity has not got yet (the final status, or a
      status change whose write failed), retried like the delivery: a DMSS hiccup at the last write must not
      leave the entity `running` for ever.

    `delivery_attempts` / `delivery_backoff` (seconds, doubled per retry, at most 60 s) tune both retries
    (5 attempts from 2 s, as the README says); tests shorten the backoff."""

    delivery_attempts = 5
    delivery_backoff = 2.0

    def status_changed(self, record: JobRecord) -> None:
        if not (record.dmss_address and record.secret_token):
            return
        if record.status == JobStatus.COMPLETED and "resultDelivered" not in record.extra \
                and _output_target(record):
            return  # finished() delivers the result first, then writes the final status
        self._write_changes(record)

    @staticmethod
    def _write_changes(record: JobRecord) -> None:
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
        try:
            self._deliver(record, result)
        finally:
            self._sync(record.uid)

    def _deliver(self, record: JobRecord, result: str | None) -> None:
        target = _output_target(record)
        if not target or record.status != JobStatus.COMPLETED:
            return
        entity = _result_entity(result)
        if entity is None:
            self._note(record.uid, f"result not delivered to {target}: the job's result is not a JSON entity with "
                                   "a `type`")
            return
        try:
            dmss_jobs.deliver_result(target, record.secret_token, entity, attempts=self.delivery_attempts,
                                     backoff=self.delivery_backoff)
        except ApiError as error:
            self._note(record.uid, f"result delivery failed: {error.message}")
            return
        self._note(record.uid, f"result delivered to {target}", failed=False)

    def _sync(self, uid: str) -> None:
        """Write to the entity what it has not got yet (fresh from the store), retried on DMSS 5xx/timeouts."""
        delay = max(0.0, float(self.delivery_backoff))
        for attempt in range(1, self.delivery_attempts + 1):
            try:
                self._write_changes(store().get(uid))
                return
            except ApiError as error:
                if not dmss_jobs._retryable(error) or attempt == self.delivery_attempts:
                    log.warning("job %s: its final state could not be written to DMSS: %s", uid, error.message)
                    return
            clock.get_clock().sleep(min(delay, 60.0))
            delay *= 2

    @staticmethod
    def _note(uid: str, message: str, failed: bool = True) -> None:
        def mutate(r: JobRecord) -> None:
            r.message = f"{r.message}; {message}" if r.message else message
            r.log = r.log + [message]
            if r.externally_reported:
                r.reported_log = r.reported_log + [message]
            r.extra["resultDelivered"] = not failed

        store().update(uid, mutate)
