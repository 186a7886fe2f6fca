"""Whether a failed attempt of a job is started again, and after how long. PURE: no I/O, no clock.

A job's `retry` policy (shared.jobs.models.RetryPolicy) is read as Kubernetes' backoffLimit and podFailurePolicy
and Argo's retryStrategy are: `maxAttempts` counts every attempt, the first included; the wait before attempt
n + 1 is `backoffSeconds * backoffFactor ** (n - 1)`, at most `maxBackoffSeconds`. Which failures are retried:
- `notOnExitCodes` excludes: a failure with one of those exit codes is never retried;
- `onExitCodes` and `onReasons` select: with either given, a failure is retried only when its exit code is in
  `onExitCodes` or its reason (runners.base.FailureReason) is in `onReasons`; with neither, every failure is.
Never retried, whatever the policy: a job that completed or was stopped, a last attempt, and an attempt whose
wait would not end before the job's deadline (the time limit is the whole job's: attempts and waits count
against it, so a job stopped at its time limit has no time left for another attempt).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from runners.base import FailureReason

if TYPE_CHECKING:  # annotations only
    from shared.jobs.models import RetryPolicy


@dataclass(frozen=True)
class Failure:
    """How an attempt failed: its exit code and the runner's reason, either or both unknown."""

    exit_code: int | None = None
    reason: FailureReason | None = None

    def describe(self) -> str:
        """`exit code 1`, `out-of-memory (exit code 137)`, `runner-unavailable`, or `a failure`."""
        if self.reason is not None and self.exit_code is not None:
            return f"{self.reason.value} (exit code {self.exit_code})"
        if self.reason is not None:
            return self.reason.value
        if self.exit_code is not None:
            return f"exit code {self.exit_code}"
        return "a failure"


@dataclass(frozen=True)
class Decision:
    retry: bool
    wait_seconds: float = 0.0  # before the next attempt starts
    why: str = ""  # retried: "attempt 2 of 3 after exit code 1"; not: why not ("exit code 2 is not retried")


def backoff(policy: RetryPolicy, attempt: int) -> float:
    """Seconds to wait after attempt `attempt` (1, 2, ...) failed."""
    exponent = max(0, attempt - 1)
    if policy.backoffSeconds == 0:
        return 0.0
    try:
        wait = policy.backoffSeconds * float(policy.backoffFactor) ** exponent
    except OverflowError:
        wait = float(policy.maxBackoffSeconds)
    return float(min(wait, policy.maxBackoffSeconds))


def selected(policy: RetryPolicy, failure: Failure) -> bool:
    """The policy retries this kind of failure (attempts and time aside)."""
    if policy.notOnExitCodes and failure.exit_code in policy.notOnExitCodes:
        return False
    if policy.onExitCodes is None and policy.onReasons is None:
        return True
    by_code = policy.onExitCodes is not None and failure.exit_code in policy.onExitCodes
    by_reason = policy.onReasons is not None and failure.reason in policy.onReasons
    return by_code or by_reason


def note(attempt: int, max_attempts: int, failure: Failure) -> str:
    """What the job's message says while attempt `attempt` waits and runs: "attempt 2 of 3 after exit code 1"."""
    return f"attempt {attempt} of {max_attempts} after {failure.describe()}"


def decide(
    policy: RetryPolicy | None, attempt: int, failure: Failure, now: datetime, deadline: datetime | None
) -> Decision:
    """Whether attempt `attempt`, which failed as `failure` at `now`, is followed by another before `deadline`."""
    if policy is None:
        return Decision(False)
    if attempt >= policy.maxAttempts:
        return Decision(False, why=f"attempt {attempt} of {policy.maxAttempts}: no attempts left")
    if not selected(policy, failure):
        return Decision(False, why=f"attempt {attempt} of {policy.maxAttempts}: {failure.describe()} is not retried")
    wait = backoff(policy, attempt)
    if deadline is not None and (deadline - now).total_seconds() <= wait:
        return Decision(
            False, why=f"attempt {attempt} of {policy.maxAttempts}: the job's time limit leaves no time for another"
        )
    return Decision(True, wait, note(attempt + 1, policy.maxAttempts, failure))
