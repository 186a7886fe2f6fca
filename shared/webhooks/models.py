"""Event types, subscriptions and deliveries as the API shows them; validation of a new subscription. Pure.

An event's `rank` orders a job's events: a job goes starting -> running -> a final status once, so the
events of one job, sorted by rank, are in the order they happened (the table keys sort the same way).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.platform.errors import ValidationFailed

JOB_STARTED, JOB_RUNNING = "job.started", "job.running"
JOB_COMPLETED, JOB_FAILED, JOB_REMOVED = "job.completed", "job.failed", "job.removed"
SCHEDULE_RUN_STARTED = "schedule.run.started"
SCHEDULE_MISSED, SCHEDULE_SKIPPED = "schedule.run.missed", "schedule.run.skipped"
SCHEDULE_SUSPENDED = "schedule.suspended"

#: event type -> rank within its job (the order of a job's events)
RANKS = {
    JOB_STARTED: 1,
    SCHEDULE_RUN_STARTED: 1,
    JOB_RUNNING: 2,
    JOB_COMPLETED: 3,
    JOB_FAILED: 3,
    JOB_REMOVED: 3,
    SCHEDULE_MISSED: 2,  # schedule events are keyed by time as well (schedule_events.py)
    SCHEDULE_SKIPPED: 2,
    SCHEDULE_SUSPENDED: 2,
}
EVENT_TYPES = tuple(RANKS)
#: the job status a status change reports -> its event
STATUS_EVENTS = {"running": JOB_RUNNING, "completed": JOB_COMPLETED, "failed": JOB_FAILED, "removed": JOB_REMOVED}

# delivery states
PENDING, DELIVERED, FAILED, GONE, CANCELLED = "pending", "delivered", "failed", "gone", "cancelled"
DELIVERY_STATES = (PENDING, DELIVERED, FAILED, GONE, CANCELLED)

MAX_URL_CHARS = 2048
MAX_SUBSCRIPTIONS_PER_OWNER = 100
_SUBSCRIPTION_ID = re.compile(r"^sub_[0-9a-f]{24}$")
#: what a job's one-off `notify` target may ask for: its own events (schedule events are the subscriptions')
NOTIFY_EVENT_TYPES = (JOB_STARTED, JOB_RUNNING, JOB_COMPLETED, JOB_FAILED, JOB_REMOVED, SCHEDULE_RUN_STARTED)
MAX_NOTIFY_TARGETS = 5


class NotifyTarget(BaseModel):
    """A job's one-off receiver (`notify: [...]` of a Job entity, or of a RecurringJob's template: each run).

    Signed with the secrets of one of the owner's subscriptions (`signWith`), so a receiver verifies it with a
    secret it already has, a rotation of that subscription covers it too, and no secret is ever in a job entity."""

    model_config = ConfigDict(extra="forbid", strict=True)
    url: str = Field(..., min_length=1, max_length=MAX_URL_CHARS, description="the receiver (https in Azure)")
    events: list[Literal[NOTIFY_EVENT_TYPES]] = Field(  # type: ignore[valid-type]
        ..., min_length=1, max_length=len(NOTIFY_EVENT_TYPES), description="this job's event types to send"
    )
    signWith: str = Field(
        ...,
        pattern=_SUBSCRIPTION_ID.pattern,
        description="the id of one of your subscriptions (POST /api/subscriptions): its secret signs these deliveries",
    )


class SubscriptionFilter(BaseModel):
    """Which of the owner's jobs: every given condition must hold (none given: all of them)."""

    model_config = ConfigDict(extra="forbid")
    labelPrefix: str | None = Field(None, max_length=200, description="the job's label starts with this")
    runnerType: str | None = Field(None, max_length=200, description="the job's runner type, e.g. JOBCORE:Shell")
    scheduleUid: str | None = Field(
        None,
        pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
        description="a recurring job's uid: the recurring job itself and the runs it starts",
    )


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(..., min_length=1, max_length=MAX_URL_CHARS, description="the receiver (https in Azure)")
    events: list[str] = Field(..., min_length=1, max_length=len(EVENT_TYPES), description="event types to send")
    filter: SubscriptionFilter = Field(default_factory=SubscriptionFilter)
    description: str | None = Field(None, max_length=500)


@dataclass
class Subscription:
    """One subscription as stored. `secrets`: [{"value", "expires" (ISO or None)}], newest first."""

    id: str
    owner: str  # the caller id of its creator ("" for callers without one)
    url: str
    events: list[str]
    filter: dict[str, Any] = field(default_factory=dict)
    description: str | None = None
    created: str | None = None
    disabled: bool = False
    disabled_reason: str | None = None
    secrets: list[dict[str, Any]] = field(default_factory=list)
    sign_with: str | None = None  # a job's notify target (`ntf_` id): the subscription whose secrets sign it

    def view(self) -> dict[str, Any]:
        """What GET shows: never a secret."""
        return {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "filter": dict(self.filter),
            "description": self.description,
            "created": self.created,
            "disabled": self.disabled,
            "disabledReason": self.disabled_reason,
        }

    def wants(self, event_type: str, job: dict[str, Any]) -> bool:
        """Whether this subscription takes `event_type` for a job described by `job` (label, runner, trigger)."""
        if self.disabled or event_type not in self.events:
            return False
        prefix = self.filter.get("labelPrefix")
        if prefix and not str(job.get("label") or "").startswith(prefix):
            return False
        runner = self.filter.get("runnerType")
        if runner and str(job.get("runnerType") or "").lower() != runner.lower():
            return False
        schedule = (self.filter.get("scheduleUid") or "").lower()
        if schedule and schedule not in (job.get("uid"), job.get("scheduleUid")):
            return False
        return True


def check_subscription_id(value: str) -> str:
    """A subscription id as the API makes them; anything else cannot name one (a 404, not a 400: ids are opaque)."""
    return value if _SUBSCRIPTION_ID.match(value or "") else ""


def parse_subscription(data: Any) -> SubscriptionCreate:
    """A new subscription's body, or a 422 naming what is wrong (never echoing the values)."""
    if not isinstance(data, dict):
        raise ValidationFailed("the body must be a JSON object with url and events")
    try:
        body = SubscriptionCreate.model_validate(data)
    except ValidationError as error:
        details = [
            {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"], "type": e["type"]}
            for e in error.errors(include_input=False, include_url=False)
        ]
        raise ValidationFailed(
            "invalid subscription: " + "; ".join(f"{d['loc']}: {d['msg']}" for d in details), data=details
        ) from None
    unknown = [name for name in body.events if name not in RANKS]
    if unknown:
        raise ValidationFailed(
            f"unknown event type(s) in events ({len(unknown)}); expected some of: {', '.join(EVENT_TYPES)}"
        )
    body.events = sorted(set(body.events), key=EVENT_TYPES.index)
    if body.filter.scheduleUid:
        body.filter.scheduleUid = body.filter.scheduleUid.lower()
    return body
