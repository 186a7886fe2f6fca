"""Who may touch a job (README "Who may do what"): one function, used by every operation.

The starter (same caller id) may do everything; the job itself, presenting its own token, may read and report
progress. A job whose entity is kept elsewhere (DMSS) may also be read or stopped by whoever that store says
may read or write the entity: a registered `Delegate` (shared.dmss.access, added by function_app) decides
those, asking the store with the caller's own credential. Without a delegate every job is owner-only. Token
comparison is constant-time.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Protocol

from shared.platform.errors import Forbidden
from shared.platform.lazy import Plugins

if TYPE_CHECKING:
    from shared.jobs.record import JobRecord

READ, WRITE = "read", "write"
#: what a delegate is asked for each action; progress is not delegated (the job's token, or its starter)
LEVELS = {
    "read": READ,
    "read the result of": READ,
    "stop": WRITE,
    "suspend": WRITE,
    "resume": WRITE,
    "start runs of": WRITE,  # a recurring job's Run now and backfill
}


class Caller(Protocol):
    id: str | None

    @property
    def display(self) -> str: ...


class Delegate(Protocol):
    def allows(self, record: JobRecord, caller: Caller | None, level: str) -> bool:
        """True: the caller may (`level` READ or WRITE). False: not this delegate's job to say. Raise an
        `ApiError` to refuse: its status and message are what the caller gets."""
        ...


_delegates = Plugins()


def add_delegate(delegate: Delegate | str) -> None:
    """Register a delegate, or the `"module:attribute"` spec of one; one per class (see `Plugins`)."""
    _delegates.add(delegate)


def remove_delegate(delegate: Delegate) -> None:
    _delegates.remove(delegate)


def _token_matches(record: JobRecord, presented: str | None) -> bool:
    if not presented:
        return False
    return any(
        secret and hmac.compare_digest(presented.encode(), secret.encode())
        for secret in (record.job_token, record.secret_token)
    )


def authorize(
    record: JobRecord, caller: Caller | None, action: str, job_token: str | None = None, *, open_route: bool = False
) -> None:
    """Who may touch a job (README "Who may do what").

    - The starter (same caller id) may read, stop, fetch the result and report progress.
    - The job itself, presenting its JOB_TOKEN or its DMSS token, may read and report progress.
    - A job started without an identity is open to callers without one (local development); but not on an
      `open_route` (the progress route takes no function key, so there an unidentified caller needs the token).
    - Anyone else: what a delegate allows (a DMSS job: what DMSS lets the caller do with its entity), else 403.
    """
    if action in ("read", "progress") and _token_matches(record, job_token):
        return
    caller_id = caller.id if caller is not None else None
    if caller_id is None and open_route:
        raise Forbidden(
            f"reporting progress for job {record.uid} needs the job's token (JOB_TOKEN or its DMSS "
            "token as Access-Key or Bearer) or the starter's identity"
        )
    if (record.owner or None) == caller_id:
        return
    level = LEVELS.get(action)
    if level is not None and any(delegate.allows(record, caller, level) for delegate in _delegates.all()):
        return
    raise Forbidden(f"the caller may not {action} job {record.uid}: only its starter may")
