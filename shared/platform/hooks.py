"""Lifecycle listeners: behaviour added around the core instead of woven into it (dramatiq's middleware idea).

The DMSS write-back, for example, listens for status changes; the core only says that a status changed.
A listener that fails is logged and does not break the job's own bookkeeping.
"""

from __future__ import annotations

import logging
from typing import Protocol

from shared.jobs.record import JobRecord

log = logging.getLogger(__name__)


class Listener(Protocol):
    def status_changed(self, record: JobRecord) -> None: ...

    def finished(self, record: JobRecord, result: str | None) -> None: ...


_listeners: list[Listener] = []


def add(listener: Listener) -> None:
    """Register a listener; one per class, so importing the app twice (a reloading host) does not double it."""
    _listeners[:] = [existing for existing in _listeners if type(existing) is not type(listener)]
    _listeners.append(listener)


def remove(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def status_changed(record: JobRecord) -> None:
    for listener in list(_listeners):
        try:
            listener.status_changed(record)
        except Exception as error:  # noqa: BLE001 - a listener must not break the lifecycle
            log.warning(
                "listener %s failed on status change of job %s: %s",
                type(listener).__name__,
                record.uid,
                type(error).__name__,
            )


def finished(record: JobRecord, result: str | None) -> None:
    for listener in list(_listeners):
        try:
            listener.finished(record, result)
        except Exception as error:  # noqa: BLE001
            log.warning(
                "listener %s failed when job %s finished: %s", type(listener).__name__, record.uid, type(error).__name__
            )
