"""Who may touch a job (README "Who may do what"): one function, used by every operation.

The starter (same caller id) may do everything; the job itself, presenting its own token, may read and report
progress. Token comparison is constant-time.
"""
from __future__ import annotations

import hmac
from typing import Protocol

from shared.jobs.record import JobRecord
from shared.platform.errors import Forbidden


class Caller(Protocol):
    id: str | None

    @property
    def display(self) -> str: ...


def _token_matches(record: JobRecord, presented: str | None) -> bool:
    if not presented:
        return False
    return any(secret and hmac.compare_digest(presented.encode(), secret.encode())
               for secret in (record.job_token, record.secret_token))


def authorize(record: JobRecord, caller: Caller | None, action: str, job_token: str | None = None, *,
              open_route: bool = False) -> None:
    """Who may touch a job (README "Who may do what").

    - The starter (same caller id) may read, stop, fetch the result and report progress.
    - The job itself, presenting its JOB_TOKEN or its DMSS token, may read and report progress.
    - A job started without an identity is open to callers without one (local development); but not on an
      `open_route` (the progress route takes no function key, so there an unidentified caller needs the token).
    """
    if action in ("read", "progress") and _token_matches(record, job_token):
        return
    caller_id = caller.id if caller is not None else None
    if caller_id is None and open_route:
        raise Forbidden(f"reporting progress for job {record.uid} needs the job's token (JOB_TOKEN or its DMSS "
                        "token as Access-Key or Bearer) or the starter's identity")
    if (record.owner or None) == caller_id:
        return
    raise Forbidden(f"the caller may not {action} job {record.uid}: only its starter may")
