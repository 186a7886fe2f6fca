"""The wire shapes of the API's replies and of the progress report, as pydantic models for the document.

The job entities a start takes are the app's own models (`shared.jobs.models.Job`, `RecurringJob`); these are the
bodies `shared.service` answers with. The five models of the old DM-Job service keep its names and fields (its
FastAPI models in equinor/dm-job, src/features/jobs/use_cases/*.py, src/domain_classes/progress.py and
src/restful/responses.py, v1.7.0; the DM web app's client equinor/dm-core-packages,
packages/dm-core/src/services/api/configs/gen-job/models/*.ts, was generated from them): what this service adds
is optional for a reader of the old fields, or a field every answer has. Schemathesis checks every reply
against these models (tests/e2e/test_schemathesis_e2e.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.jobs.status import JobStatus

Fraction = Annotated[float, Field(ge=0.0, le=1.0, description="progress as a fraction from 0 to 1 (0.4 = 40 %)")]
Timestamp = Annotated[str, Field(description="UTC, ISO 8601 with Z: 2026-11-28T08:00:00Z")]


class Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Open(BaseModel):
    """A reply that may carry attributes not listed (entity attributes kept as they came)."""

    model_config = ConfigDict(extra="allow")


# ---- the old service's models ------------------------------------------------------------------------------
class ErrorResponse(Wire):
    """Every refusal and error: the old service's body."""

    status: int = Field(description="the HTTP status code, again")
    type: str = Field(description="what kind of error: BadRequestException, NotFoundException, ...")
    message: str = Field(description="what is wrong, for people; never holds a secret")
    debug: str = Field(description="more detail, or empty")
    data: Any = Field(description="details: the invalid attributes of an entity, or null")


class StartJobResponse(Wire):
    uid: str = Field(description="the job's uid: GET /api/jobs/{uid} follows it")
    message: str
    status: JobStatus = Field(
        description="`starting`, or `registered` for a recurring job (or, for a repeated "
        "Idempotency-Key, the earlier job's status)"
    )


class RunnerRef(Wire):
    type: str = Field(description="the runner type, normalised (`JOBCORE:` written out)")


class ScheduleRun(Open):
    uid: str | None = None
    scheduled: str | None = None
    status: str | None = Field(default=None, description="the run's job status, or `missed` / `skipped`")


class BackfillProgress(Open):
    queued: int = Field(description="fire times waiting to start")
    starting: int = Field(description="runs being started now")
    running: int = Field(description="backfill runs going on")
    started: int
    finished: int = Field(description="backfill runs ended (completed, failed or stopped)")
    alreadyRan: int = Field(description="fire times not started again: they had run already")
    cancelled: int
    counts: dict[str, int]
    queue: list[dict[str, str]] = Field(description="what is left: fire times after `after` up to `to`")
    requests: list[dict[str, Any]] = Field(description="the latest requests")


class ScheduleView(Open):
    """A recurring job's schedule: its attributes as registered (defaults filled in), state and runs."""

    cron: str | list[str] | None = Field(default=None, description="a cron expression, or a list of them")
    timezone: str | None = None
    weekdayDialect: Literal["unix", "dmjob"] | None = None
    state: Literal["active", "suspended", "expired", "removed"] | None = None
    registered: str | None = None
    lastConsidered: str | None = None
    nextFire: str | None = None
    nextFireLocal: str | None = None
    suspendedReason: str | None = None
    runs: list[ScheduleRun] | None = None
    olderRuns: dict[str, int] | None = None
    counts: dict[str, int] | None = None
    consecutiveFailures: int | None = None
    pending: dict[str, Any] | None = None
    backfill: BackfillProgress | None = Field(default=None, description="a backfill's progress, if it had one")


class JobAttempt(Wire):
    """One attempt of a job with a retry policy (`retry`): each is a fresh start on the runner."""

    attempt: int = Field(ge=1, description="1, 2, ...")
    started: str | None = Field(description="when the runner took it (ISO 8601), or null while it waits to start")
    ended: str | None = Field(description="when it ended, or null while it runs or waits")
    status: JobStatus | None = Field(description="how it ended (failed, completed, removed), or null while it goes on")
    exitCode: int | None = Field(description="its exit code, when the runner tells")
    reason: Literal["out-of-memory", "image-pull", "runner-unavailable", "time-limit"] | None = Field(
        description="why it failed, when the runner can tell (what `retry.onReasons` selects on)"
    )
    message: str | None = Field(description="what its runner said at its end (at most 300 characters)")


class StatusJobResponse(Wire):
    """A job's status. `status`, `log` and `percentage` are the old service's; the rest is this service's."""

    status: JobStatus
    log: list[str] | None = Field(description="the tail of the job's output, or what the job reported itself")
    percentage: Fraction | None
    uid: str
    label: str | None
    started: Timestamp | None
    ended: Timestamp | None
    triggeredBy: str | None
    runner: RunnerRef
    message: str | None
    kind: Literal["job", "recurring"]
    outputTarget: str | None = Field(default=None, description="where a result entity is saved (DMSS mode)")
    timeLimitSeconds: int | None = Field(default=None, description="past this the job is stopped and marked failed")
    dmssAddress: str | None = Field(default=None, description="the job entity's address in DMSS (a DMSS job)")
    schedule: ScheduleView | None = Field(default=None, description="a recurring job's schedule")
    attempts: list[JobAttempt] | None = Field(
        default=None, description="a job with a retry policy: its attempts, oldest first (the last may be waiting)"
    )


class DeleteJobResponse(Wire):
    status: JobStatus
    response: str = Field(description="what the runner said when it was stopped")


class GetJobResultResponse(Wire):
    message: str
    result: str = Field(description="the result as text: what the job wrote to $JOB_RESULT_FILE, or its output's tail")
    status: JobStatus = Field(description="completed, failed or removed")
    attempt: int | None = Field(default=None, description="with `?attempt=`: the attempt's number")
    log: str | None = Field(default=None, description="with `?attempt=`: the attempt's full log")


class GetJobLogResponse(Wire):
    uid: str
    status: JobStatus
    source: Literal["stored", "runner", "kept"] = Field(
        description="`stored`: saved when the job ended; `runner`: read from the runner now (the job runs); "
        "`kept`: the lines the app keeps (before the job has a runner, or a job that reports its own log)"
    )
    lines: int = Field(description="how many lines the whole log has")
    truncated: bool = Field(description="true if only the last lines are shown (`tail`, or past 100,000)")
    log: list[str]


class UpdateJobProgressResponse(Wire):
    response: str = Field(description="`OK`")


class Progress(BaseModel):
    """What a job reports about itself. The old job containers send all three keys, values may be null."""

    percentage: Fraction | None = None
    logs: list[str] | str | None = Field(
        default=None, description="appended (split on newlines) or, with overwrite_log=true, replacing the log"
    )
    status: JobStatus | None = Field(
        default=None,
        description="the job's own status; of the final ones only `completed` and `failed` (422 otherwise)",
    )
    exited: bool | None = Field(
        default=None,
        description="true: the job's process has exited (what the local runners' launchers send, alone: nothing "
        "is stored, the service reads the runner's state now; at most once per JOB_FRESHNESS_SECONDS)",
    )


# ---- this service's own ------------------------------------------------------------------------------------
class JobListItem(Wire):
    uid: str
    status: JobStatus
    label: str | None
    kind: Literal["job", "recurring"] | None
    created: Timestamp | None


class ListJobsResponse(Wire):
    jobs: list[JobListItem] = Field(description="newest first")
    continuationToken: str | None = Field(description="pass it back for the next page; null on the last")


class FireTime(Wire):
    utc: Timestamp
    local: str = Field(description="the same time in the schedule's zone, with its offset")
    weekday: str = Field(description="the weekday there: Monday .. Sunday")
    nominal: Timestamp | None = Field(default=None, description="with jitterSeconds: the cron time before the shift")
    expression: str | None = Field(default=None, description="with a list of expressions: the one that fires")


class SchedulePreview(Wire):
    timezone: str
    cron: str | list[str]
    weekdayDialect: Literal["unix", "dmjob"]
    state: Literal["active", "suspended", "expired", "removed"]
    fireTimes: list[FireTime]


class BackfillRequest(Wire):
    """The range of a backfill: one run per fire time in it (naive times in the schedule's zone)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: str = Field(alias="from", description="first fire time wanted, ISO 8601 (2026-03-01T00:00)")
    to: str = Field(description="last fire time wanted, ISO 8601; at most 1,000 fire times from `from`")


class BackfillResponse(Wire):
    schedule: str = Field(description="the recurring job's uid")
    request: str
    from_: Timestamp = Field(alias="from")
    to: Timestamp
    fireTimes: int = Field(description="fire times in the range (Replace: 1, the last)")
    queued: int = Field(description="of them newly queued")
    alreadyQueuedOrRun: int = Field(description="queued or run by an earlier backfill: not queued again")
    message: str
    backfill: BackfillProgress


class BackfillCancelResponse(Wire):
    schedule: str
    cancelled: int = Field(description="queued fire times dropped")
    message: str
    backfill: BackfillProgress


class HealthResponse(Wire):
    status: Literal["healthy", "unhealthy"]
    storage: str
    runners: list[str] | None = Field(default=None, description="the runner types this app knows")


REPLY_MODELS: tuple[type[BaseModel], ...] = (
    ErrorResponse,
    StartJobResponse,
    StatusJobResponse,
    DeleteJobResponse,
    GetJobResultResponse,
    UpdateJobProgressResponse,
    ListJobsResponse,
    SchedulePreview,
    ScheduleView,
    BackfillResponse,
    BackfillCancelResponse,
    HealthResponse,
)
