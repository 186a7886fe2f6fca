"""The runner interface: the one small contract every way of running a job implements.

A runner is created once per process (the registry keeps it) and must be safe to call from several threads.
Everything it needs to find a job again is in the *handle* it returns from `start`: a small JSON-able dict that
the core stores in the job's table row and passes back on every later call, so that a host restart (or another
instance) can carry on. Handles never hold secrets: environment values are given to `start` and only there.

`start` is idempotent per job uid. Activities run at least once: a start may be run again after one that
launched the job but died before its handle was stored. A runner therefore names what it launches after the
uid (a working directory, a container `dm-job-<uid>`, a container group `job-<uid>`, a Radix job with jobId
uid) and, when `start` finds the job launched already, answers an equivalent handle without launching (or
restarting) anything. `find` is that look-up alone: it never launches, so the core can stop and release a job
whose handle was lost. `stop` and `cleanup` reach everything the job has on the runner; `cleanup` may be called
again after it succeeded, and raises RetryLater (never a plain RunnerError) when the runner is throttling.

A job with a retry policy runs in *attempts*, each a fresh start: `JobSpec.attempt` numbers them and
`JobSpec.run_id` names what an attempt launches (the uid for the first attempt, as before; `<uid>-a<n>` for
attempt n > 1), so attempt 2 never adopts attempt 1's container while a retried start of attempt 2 still adopts
its own. A runner that can tell why a job failed says so in `RunnerStatus.reason` or `RunnerError.reason`
(a `FailureReason`), which a retry policy's `onReasons` selects on.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar, Iterator

from shared.jobs.status import JobStatus
from shared.platform import environment as job_environment


class FailureReason(str, Enum):
    """Why a job failed, as far as its runner can tell (beside its exit code). The wire values are what a retry
    policy's `onReasons` lists."""

    OUT_OF_MEMORY = "out-of-memory"  # killed for using more memory than its limit (OOMKilled)
    IMAGE_PULL = "image-pull"  # its image could not be pulled (not found, no access)
    RUNNER_UNAVAILABLE = "runner-unavailable"  # the runner could not be reached, or lost the job
    TIME_LIMIT = "time-limit"  # it ran past its time limit

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class JobSpec:
    """What a runner gets to start a job (one attempt of it)."""

    uid: str
    config: dict[str, Any]  # the job's `runner` entity (type normalised, unknown attributes kept)
    environment: dict[str, str]  # resolved: JOB_UID, DM_JOB_URL, ..., then the runner's K=V items. Secret.
    time_limit_seconds: int
    entity: dict[str, Any] = field(default_factory=dict)  # the whole job entity, for runners that want more
    attempt: int = 1  # 1, 2, ...: each attempt of a job with a retry policy is a fresh start

    @property
    def run_id(self) -> str:
        """What names the attempt's resources (and makes its start idempotent): the uid for the first attempt,
        `<uid>-a<n>` for attempt n."""
        return self.uid if self.attempt <= 1 else f"{self.uid}-a{self.attempt}"


@dataclass(frozen=True)
class RunnerStatus:
    """What a poll sees. `state` is one of STARTING, RUNNING, COMPLETED, FAILED (or UNKNOWN)."""

    state: JobStatus
    log: list[str] = field(default_factory=list)  # tail of the job's output, oldest first
    percentage: float | None = None
    message: str = ""
    exit_code: int | None = None
    reason: FailureReason | None = None  # why it failed, when the runner can tell

    @property
    def finished(self) -> bool:
        return self.state in (JobStatus.COMPLETED, JobStatus.FAILED)


class RunnerError(Exception):
    """The runner could not do what was asked; the message is shown to the user (no secrets in it). `reason`
    classifies a refused start (e.g. IMAGE_PULL) for retry policies."""

    reason: FailureReason | None = None

    def __init__(self, message: str = "", reason: FailureReason | None = None):
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class ConfigError(RunnerError):
    """The runner configuration is invalid (API answers 422 before anything is stored)."""


class RetryLater(RunnerError):
    """A transient refusal (throttling, 5xx): the core waits `retry_after` seconds and calls again."""

    def __init__(self, message: str, retry_after: float = 10.0):
        super().__init__(message)
        self.retry_after = retry_after


class Runner(ABC):
    #: runner `type` strings (normalised, e.g. "dmss://WorkflowDS/Blueprints/Shell") this runner handles
    type_names: ClassVar[tuple[str, ...]] = ()
    #: runs code on the app's own host: only allowed when ENABLE_LOCAL_RUNNERS is true
    local: ClassVar[bool] = False

    def validate(self, config: dict[str, Any]) -> None:
        """Raise ConfigError if `config` cannot be run. Called before anything is stored; no I/O."""

    @abstractmethod
    def start(self, job: JobSpec) -> dict[str, Any]:
        """Launch the job and return its handle; when it was launched already (same uid), return an equivalent
        handle and launch nothing. Raise RetryLater for transient refusals, RunnerError else."""

    def find(self, job: JobSpec) -> dict[str, Any] | None:
        """The handle of the job if it was launched already (by a start whose handle was lost), else None.
        Never launches. Default: None (a runner that keeps nothing outside the process)."""
        return None

    @abstractmethod
    def status(self, handle: dict[str, Any]) -> RunnerStatus:
        """The job's state now. Cheap enough to call every second; never raises for a finished job."""

    @abstractmethod
    def stop(self, handle: dict[str, Any]) -> str:
        """Stop the job (idempotent: stopping a stopped or vanished job is fine). Returns a short message."""

    def logs(self, handle: dict[str, Any]) -> str:
        """The full log for the final record (called before cleanup). Default: the status tail."""
        return "\n".join(self.status(handle).log)

    def result(self, handle: dict[str, Any]) -> str | None:
        """The job's result text once it has finished, or None if it made none."""
        return None

    @abstractmethod
    def cleanup(self, handle: dict[str, Any]) -> None:
        """Release everything the job held (processes, containers, groups, files). Idempotent; RetryLater when
        the runner is throttling (the core calls it again later)."""


@contextmanager
def no_secrets_in_errors(job: JobSpec) -> Iterator[None]:
    """Errors raised inside carry no value of the job's environment (an engine or API may echo what it was sent):
    a RunnerError's message is scrubbed, its type (ConfigError, RetryLater and its wait) kept."""
    try:
        yield
    except RunnerError as error:
        message = str(error)
        clean = job_environment.scrub_text(message, job_environment.environment_secrets(job.environment))
        if clean == message:
            raise
        error.args = (clean,)
        raise error from None


class UidLocks:
    """One lock per job uid, so that two starts of the same job in this process never both launch it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, list[Any]] = {}  # uid -> [lock, users]

    @contextmanager
    def hold(self, uid: str) -> Iterator[None]:
        with self._guard:
            entry = self._locks.setdefault(uid, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    self._locks.pop(uid, None)
