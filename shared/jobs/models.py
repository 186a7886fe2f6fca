"""Job entities after the WorkflowDS blueprints (see ../shared/reference/dm-job.md).

Entities come from users and from DMSS and carry attributes this service does not know: every model keeps
them (`extra="allow"`) so that an entity written back is the entity that came in, plus our changes.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from runners.base import FailureReason
from shared.jobs.status import JobStatus, parse_status
from shared.webhooks.models import MAX_NOTIFY_TARGETS, NotifyTarget

BLUEPRINTS = "dmss://WorkflowDS/Blueprints/"
JOBCORE_ALIAS = "JOBCORE:"

JOB_TYPE = BLUEPRINTS + "Job"
RECURRING_JOB_TYPE = BLUEPRINTS + "RecurringJob"
CRON_JOB_TYPE = BLUEPRINTS + "CronJob"
RECURRING_JOB_HANDLER_TYPE = BLUEPRINTS + "RecurringJobHandler"
REFERENCE_TYPE = "dmss://system/SIMOS/Reference"

MAX_TIME_LIMIT_SECONDS = 366 * 24 * 3600  # a year: durable timers go further, nobody means more
MAX_NAME_CHARACTERS = 1000  # name and label: kept in the table row and the listing index
# Strict: `true` is not a number of seconds and "2" is not an integer (pydantic's lax mode takes both).
TimeLimit = Annotated[StrictInt, Field(gt=0, le=MAX_TIME_LIMIT_SECONDS)]
ShortText = Annotated[str, Field(max_length=MAX_NAME_CHARACTERS)]
MAX_ATTEMPTS = 20  # each attempt is kept in the job's row (compact) and its log and result in blobs
MAX_BACKOFF_SECONDS = 24 * 3600
BackoffSeconds = Annotated[StrictInt, Field(ge=0, le=MAX_BACKOFF_SECONDS)]
ExitCode = Annotated[StrictInt, Field(ge=1, le=255)]  # a failure's exit code (0 is success, 255 the most bash tells)


def normalise_type(value: str) -> str:
    """`JOBCORE:X` -> `dmss://WorkflowDS/Blueprints/X`; a bare `DS/Path` gains `dmss://`."""
    value = value.strip()
    if value.upper().startswith(JOBCORE_ALIAS):
        return BLUEPRINTS + value[len(JOBCORE_ALIAS) :].lstrip("/")
    if "://" not in value and "/" in value and ":" not in value:
        return "dmss://" + value.lstrip("/")
    return value


class Entity(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, validate_assignment=False)

    def dump(self) -> dict[str, Any]:
        """The entity as JSON-ready dict, unknown attributes included, unset optionals left out."""
        return self.model_dump(mode="json", exclude_none=True)


class Reference(Entity):
    type: str = REFERENCE_TYPE
    referenceType: str = "link"
    address: str


class JobHandler(Entity):
    """A runner configuration. Runner-specific attributes stay as extras; each runner validates its own."""

    type: str
    name: str | None = None
    environmentVariables: list[str] = Field(default_factory=list)
    timeLimitSeconds: TimeLimit | None = None

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        return normalise_type(value)

    @field_validator("environmentVariables", mode="before")
    @classmethod
    def _env(cls, value: Any) -> Any:
        return [] if value is None else value


class RetryPolicy(BaseModel):
    """How often, after which failures and how long apart a failed job is started again (each attempt a fresh
    start on its runner). Closed: a misspelt key is refused, not ignored. The decision: shared.jobs.retry."""

    model_config = ConfigDict(extra="forbid")
    maxAttempts: Annotated[StrictInt, Field(ge=1, le=MAX_ATTEMPTS, description="attempts in all, the first included")]
    backoffSeconds: BackoffSeconds = Field(default=10, description="the wait after the first failed attempt")
    backoffFactor: Annotated[float, Field(ge=1, le=10, strict=True)] = Field(
        default=2, description="each further wait is this many times the one before"
    )
    maxBackoffSeconds: BackoffSeconds = Field(default=3600, description="no wait is longer")
    onExitCodes: Annotated[list[ExitCode], Field(min_length=1, max_length=50)] | None = Field(
        default=None, description="retry only failures with these exit codes (or a reason in onReasons)"
    )
    notOnExitCodes: Annotated[list[ExitCode], Field(min_length=1, max_length=50)] | None = Field(
        default=None, description="never retry failures with these exit codes (not with onExitCodes)"
    )
    onReasons: Annotated[list[FailureReason], Field(min_length=1, max_length=len(FailureReason))] | None = Field(
        default=None, description="retry only failures the runner classified so (or with an exit code in onExitCodes)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> "RetryPolicy":
        if self.onExitCodes is not None and self.notOnExitCodes is not None:
            raise ValueError("give onExitCodes or notOnExitCodes, not both")
        if self.maxBackoffSeconds < self.backoffSeconds:
            raise ValueError("maxBackoffSeconds must be at least backoffSeconds")
        for name in ("onExitCodes", "notOnExitCodes", "onReasons"):
            values = getattr(self, name)
            if values is not None and len(set(values)) != len(values):
                raise ValueError(f"{name} lists a value twice")
        return self

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class Job(Entity):
    type: str
    uid: str | None = None
    name: ShortText | None = None
    description: str | None = None
    label: ShortText | None = None
    triggeredBy: ShortText | None = None
    status: JobStatus = JobStatus.NOT_STARTED
    applicationInput: dict[str, Any] | None = None
    started: str | None = None
    ended: str | None = None
    outputTarget: ShortText | None = None  # a DMSS address, kept in the row
    result: dict[str, Any] | None = None
    runner: JobHandler
    referenceTarget: str | None = None
    timeLimitSeconds: TimeLimit | None = None
    retry: RetryPolicy | None = None  # no policy: the job ends at its first failure
    # one-off webhook receivers of this job's events (README "Webhooks"); a RecurringJob's template's: each run's
    notify: list[NotifyTarget] | None = Field(None, max_length=MAX_NOTIFY_TARGETS)

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        return normalise_type(value)

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: Any) -> Any:
        if value is None:
            return JobStatus.NOT_STARTED
        return parse_status(value) if isinstance(value, str) else value

    @property
    def is_recurring(self) -> bool:
        return self.type == RECURRING_JOB_TYPE


class CronJob(Entity):
    type: str = CRON_JOB_TYPE
    cron: str | list[str]  # several expressions: the union of their fire times (shared/schedules/cron.py CronSet)
    startDate: str | None = None
    endDate: str | None = None
    runs: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("runs", mode="before")
    @classmethod
    def _runs(cls, value: Any) -> Any:
        return [] if value is None else value


class RecurringJob(Job):
    applicationInput: dict[str, Any]  # the Job template, contained
    schedule: CronJob
