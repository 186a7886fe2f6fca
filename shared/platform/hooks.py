"""Lifecycle listeners: behaviour added around the core instead of woven into it (dramatiq's middleware idea).

The DMSS write-back, for example, listens for status changes; the core only says that a status changed.
A listener that fails is logged and does not break the job's own bookkeeping. `function_app` names its
listeners by `"module:attribute"` spec, loaded when a status first changes, so a cold start does not import them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from shared.platform.lazy import Plugins

if TYPE_CHECKING:
    from shared.jobs.record import JobRecord

log = logging.getLogger(__name__)


class Listener(Protocol):
    def status_changed(self, record: JobRecord) -> None: ...

    def finished(self, record: JobRecord, result: str | None) -> None: ...


_listeners = Plugins()


def add(listener: Listener | str) -> None:
    """Register a listener, or the `"module:attribute"` spec of one; one per class (see `Plugins`)."""
    _listeners.add(listener)


def remove(listener: Listener) -> None:
    _listeners.remove(listener)


def status_changed(record: JobRecord) -> None:
    for listener in _listeners.all():
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
    for listener in _listeners.all():
        try:
            listener.finished(record, result)
        except Exception as error:  # noqa: BLE001
            log.warning(
                "listener %s failed when job %s finished: %s", type(listener).__name__, record.uid, type(error).__name__
            )
