"""Keep a DMSS job entity in step with its job: a lifecycle listener (see shared/platform/hooks.py).

A status change writes `uid`, `status`, `started`, `ended` to the entity (a poll that changes nothing never
reaches DMSS), and a finished job with an `outputTarget` has its result entity delivered there, retried with
backoff, before the entity is told `completed`; a delivery that keeps failing is shown in the job's message and
log while the job's status stays what the job did.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from shared.dmss import jobs as dmss_jobs
from shared.jobs.activities import load_entity
from shared.jobs.record import JobRecord
from shared.jobs.status import JobStatus
from shared.jobs.store import store
from shared.platform import clock
from shared.platform.errors import ApiError

log = logging.getLogger(__name__)

WRITTEN = "dmssWritten"  # record.extra key: what DMSS last got, so only changes are written


def dmss_view(record: JobRecord) -> dict[str, Any]:
    return {
        "uid": record.uid,
        "status": record.status.value,
        "started": clock.iso(record.started),
        "ended": clock.iso(record.ended),
    }


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
        if record.status == JobStatus.COMPLETED and "resultDelivered" not in record.extra and _output_target(record):
            return  # finished() delivers the result first, then writes the final status
        self._write_changes(record)

    @staticmethod
    def _write_changes(record: JobRecord) -> None:
        current = dmss_view(record)
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
            self._note(
                record.uid, f"result not delivered to {target}: the job's result is not a JSON entity with a `type`"
            )
            return
        try:
            dmss_jobs.deliver_result(
                target, record.secret_token, entity, attempts=self.delivery_attempts, backoff=self.delivery_backoff
            )
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
