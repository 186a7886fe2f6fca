"""What the job's activities answer the orchestrator: typed, and plain JSON on the way through Durable.

Activity results are stored in the Durable history as JSON, so each outcome has `to_dict()` (what the
activity returns) and `from_dict()` (what the replayed orchestrator reads). The wire keys are the ones the
history already holds (`state`, `retryAfter`, `done`, `reason`, `changed`, `status`): instances started by an
earlier version replay unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


class StartState(str, Enum):
    STARTED = "started"  # running on its runner: follow it
    RETRY = "retry"  # the runner asked to be called again after `retry_after` seconds
    DONE = "done"  # nothing to follow: stopped before it started, or the start failed (the record says why)
    FINISHED = "finished"  # started and already ended (a short local job): finish it now
    REFUSED = "refused"  # the runner refused this attempt of a job with a retry policy: finish it (and maybe retry)


@dataclass(frozen=True)
class StartOutcome:
    state: StartState
    retry_after: float | None = None

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"state": self.state.value}
        if self.retry_after is not None:
            body["retryAfter"] = self.retry_after
        return body

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StartOutcome:
        return cls(StartState(data["state"]), data.get("retryAfter"))


@dataclass(frozen=True)
class PollOutcome:
    done: bool  # the job has ended (or must end): finish it
    reason: str | None = None  # why it must end: "stopped", or None when the runner says it ended
    changed: bool = False  # the runner's state changed since the last poll (polls speed up again)

    def to_dict(self) -> dict[str, Any]:
        return {"done": self.done, "reason": self.reason, "changed": self.changed}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PollOutcome:
        return cls(bool(data["done"]), data.get("reason"), bool(data.get("changed")))


@dataclass(frozen=True)
class FinishRequest:
    uid: str
    reason: str | None  # "stopped", "timeout" or None (the runner says the job ended)
    last_attempt: bool = False  # a throttling runner gets no further wait: close the job regardless
    attempt: int = 1  # the job's attempt that ended (a retry policy's; absent from older histories: 1)
    deadline: str | None = None  # the job's deadline (ISO 8601): a retry must start before it

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"uid": self.uid, "reason": self.reason, "lastAttempt": self.last_attempt}
        if self.attempt != 1:
            body["attempt"] = self.attempt
        if self.deadline is not None:
            body["deadline"] = self.deadline
        return body

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinishRequest:
        return cls(
            data["uid"],
            data.get("reason"),
            bool(data.get("lastAttempt")),
            int(data.get("attempt", 1)),
            data.get("deadline"),
        )


@dataclass(frozen=True)
class FinishOutcome:
    status: str | None = None  # the job's final status, once finished
    retry_after: float | None = None  # the runner is throttling: call again after this many seconds
    next_attempt_in: float | None = None  # the attempt failed and is retried: start the next one after this wait

    def to_dict(self) -> dict[str, Any]:
        if self.retry_after is not None:
            return {"retryAfter": self.retry_after}
        if self.next_attempt_in is not None:
            return {"nextAttemptIn": self.next_attempt_in}
        return {"status": self.status}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinishOutcome:
        return cls(data.get("status"), data.get("retryAfter"), data.get("nextAttemptIn"))
