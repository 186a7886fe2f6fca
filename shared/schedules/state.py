"""What a RecurringJob's record holds for its schedule: the schedule state, as a typed record, and the template.

The state is JSON in `JobRecord.schedule`, on the RecurringJob's own row: one row, one ETag, so that the claim
of a fire, the run history and a concurrent suspend/stop cannot overwrite each other. Every writer used to
poke string keys into that dict, where a misspelt key is a silent new one. `ScheduleRecord` names each field
once, here, and converts to and from exactly the JSON stored before: the same keys, in the order they were
read, with the same values; keys it does not know are kept. Nothing stored or shown changes with it.

Run entries (`runs`) stay plain dicts: `shared.schedules.policy` (pure) builds and updates them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar, Mapping

from shared.jobs.activities import load_entity
from shared.jobs.record import JobRecord
from shared.jobs.status import JobStatus
from shared.platform.errors import BadRequest, ValidationFailed
from shared.schedules.due_index import bucket
from shared.schedules.policy import (
    Decision,
    ScheduleSpec,
    ScheduleState,
    apply_decision_to_runs,
    is_running,
    iso,
    parse_iso,
    trim_history,
)

STATE_JSON_LIMIT = 28_000  # characters: the job store keeps a JSON property under 30,000
WAITING_RECHECK = timedelta(minutes=5)  # BufferOne: a waiting fire is looked at this often (the run listener
# makes it due at once when the run going ends; this is for an end the listener missed)
FIRE_FIELDS = ("actual", "expression", "waitedSince")  # what a claim keeps of its fire for the run entry


class Lifecycle(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"  # with a reason; fires neither run nor count as missed
    EXPIRED = "expired"  # past endDate: the RecurringJob is completed
    REMOVED = "removed"  # deleted: no further runs


def _in_read_order(values: dict[str, Any], read_order: tuple[str, ...]) -> dict[str, Any]:
    """`values` with its keys in the order they were read, new keys after them: a record read and written
    back unchanged is the same JSON text."""
    if not read_order or tuple(values)[: len(read_order)] == read_order:
        return values
    ordered = {key: values[key] for key in read_order if key in values}
    ordered.update(values)
    return ordered


@dataclass
class Pending:
    """A fire claimed by a tick (exactly-once): which time, who holds it since when, what to stop first."""

    KEYS: ClassVar[tuple[str, ...]] = ("scheduled", "claimedBy", "claimedAt", "stop", "attempts", *FIRE_FIELDS)

    scheduled: str
    claimed_by: str | None = None  # None: released after a transient start failure, any tick may take it
    claimed_at: str | None = None
    stop: list[str] = field(default_factory=list)  # Replace: runs to stop before starting this one
    attempts: int = 0  # failed starts so far
    fire: dict[str, Any] = field(default_factory=dict)  # FIRE_FIELDS of the fire (jitter, expression, BufferOne)
    extra: dict[str, Any] = field(default_factory=dict)
    read_order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def held(self, now: datetime, lease: timedelta) -> bool:
        """Claimed by a tick whose lease has not run out (it may still be starting the run)."""
        claimed_at = parse_iso(self.claimed_at)
        return bool(self.claimed_by) and claimed_at is not None and now - claimed_at < lease

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Pending:
        return cls(
            scheduled=data["scheduled"],
            claimed_by=data.get("claimedBy"),
            claimed_at=data.get("claimedAt"),
            stop=list(data.get("stop") or []),
            attempts=int(data.get("attempts") or 0),
            fire={k: data[k] for k in FIRE_FIELDS if k in data},
            extra={k: v for k, v in data.items() if k not in cls.KEYS},
            read_order=tuple(data),
        )

    def to_dict(self) -> dict[str, Any]:
        return _in_read_order(
            {
                "scheduled": self.scheduled,
                "claimedBy": self.claimed_by,
                "claimedAt": self.claimed_at,
                "stop": list(self.stop),
                "attempts": self.attempts,
                **{k: self.fire[k] for k in FIRE_FIELDS if k in self.fire},
                **self.extra,
            },
            self.read_order,
        )


@dataclass
class ScheduleRecord:
    """The schedule state of one RecurringJob (`JobRecord.schedule`). Times are kept as the ISO text stored."""

    KEYS: ClassVar[tuple[str, ...]] = (
        "spec",
        "state",
        "suspendedReason",
        "registered",
        "lastConsidered",
        "nextFire",
        "dueBucket",
        "pending",
        "runs",
        "olderRuns",
        "counts",
        "consecutiveFailures",
    )
    OPTIONAL: ClassVar[tuple[str, ...]] = ("waiting",)  # stored only when set

    spec: dict[str, Any]  # the ScheduleSpec as registered, every default filled in
    state: Lifecycle
    suspended_reason: str | None = None
    registered: str | None = None
    last_considered: str | None = None  # every fire time up to this one has been handled
    next_fire: str | None = None
    due_bucket: str | None = None  # where its index row is; None: no row (not active, or no fire left)
    pending: Pending | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    older_runs: dict[str, int] = field(default_factory=dict)  # runs dropped from `runs`, counted by status
    counts: dict[str, int] = field(default_factory=dict)  # started, missed, skipped, failedToStart
    consecutive_failures: int = 0
    waiting: dict[str, Any] | None = None  # BufferOne: the fire waiting for the run going (stored only when set)
    extra: dict[str, Any] = field(default_factory=dict)
    read_order: tuple[str, ...] = field(default=(), compare=False, repr=False)
    uid: str = field(default="", compare=False, repr=False)  # the RecurringJob's uid (not stored): jitter's seed
    _spec: ScheduleSpec | None = field(default=None, compare=False, repr=False)

    # ---- the stored JSON --------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScheduleRecord:
        pending = data.get("pending")
        return cls(
            spec=data.get("spec") or {},
            state=Lifecycle(data["state"]),
            suspended_reason=data.get("suspendedReason"),
            registered=data.get("registered"),
            last_considered=data.get("lastConsidered"),
            next_fire=data.get("nextFire"),
            due_bucket=data.get("dueBucket"),
            pending=Pending.from_dict(pending) if pending else None,
            runs=data.get("runs") or [],
            older_runs=data.get("olderRuns") or {},
            counts=data.get("counts") or {},
            consecutive_failures=int(data.get("consecutiveFailures") or 0),
            waiting=dict(data["waiting"]) if data.get("waiting") else None,
            extra={k: v for k, v in data.items() if k not in cls.KEYS and k not in cls.OPTIONAL},
            read_order=tuple(data),
        )

    def to_dict(self) -> dict[str, Any]:
        return _in_read_order(
            {
                "spec": self.spec,
                "state": self.state.value,
                "suspendedReason": self.suspended_reason,
                "registered": self.registered,
                "lastConsidered": self.last_considered,
                "nextFire": self.next_fire,
                "dueBucket": self.due_bucket,
                "pending": self.pending.to_dict() if self.pending else None,
                "runs": self.runs,
                "olderRuns": self.older_runs,
                "counts": self.counts,
                "consecutiveFailures": self.consecutive_failures,
                **({"waiting": self.waiting} if self.waiting else {}),
                **self.extra,
            },
            self.read_order,
        )

    @classmethod
    def of(cls, record: JobRecord) -> ScheduleRecord | None:
        """The record's schedule state; None for a job that is not (or no longer) a recurring one."""
        if not record.schedule:
            return None
        state = cls.from_dict(record.schedule)
        state.uid = record.uid
        return state

    def save(self, record: JobRecord) -> None:
        record.schedule = self.to_dict()

    # ---- reading ----------------------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self.state is Lifecycle.ACTIVE

    @property
    def considered_at(self) -> datetime | None:
        return parse_iso(self.last_considered)

    def schedule_spec(self) -> ScheduleSpec:
        if self._spec is None:
            # stored with every default filled in; seeded with the uid, that jitter offsets come from
            self._spec = ScheduleSpec.parse(self.spec).seeded(self.uid)
        return self._spec

    def running(self) -> list[str]:
        """Uids of this schedule's runs still going."""
        return [entry["uid"] for entry in self.runs if is_running(entry)]

    def policy_state(self) -> ScheduleState:
        return ScheduleState(self.considered_at, tuple(self.running()), self.consecutive_failures, waiting=self.waiting)

    # ---- changes ----------------------------------------------------------------------------------------
    def count(self, name: str, amount: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + amount

    def record_decision(self, decision: Decision) -> None:
        """The missed and skipped fire times of a decision go into the history and the counts."""
        self.runs = apply_decision_to_runs(self.runs, decision)
        self.last_considered = iso(decision.considered_until)
        self.waiting = dict(decision.waiting) if decision.waiting else None
        self.count("missed", decision.missed_total)
        self.count("skipped", 1 if decision.skipped else 0)

    def suspend(self, reason: str) -> None:
        self.state, self.suspended_reason = Lifecycle.SUSPENDED, reason
        self.due_bucket = self.next_fire = None

    def advance(self, record: JobRecord, next_fire: datetime | None, now: datetime) -> None:
        """Point the schedule at its next fire, or end it (the RecurringJob completes) when there is none. With
        a fire waiting (BufferOne) it is looked at again within WAITING_RECHECK, and does not end before it ran."""
        self.next_fire = iso(next_fire)
        due = next_fire
        if self.waiting and self.active:
            due = min(due, now + WAITING_RECHECK) if due else now + WAITING_RECHECK
        self.due_bucket = bucket(due) if due else None
        if due is None and self.active:
            self.state = Lifecycle.EXPIRED
            if not record.status.is_final:
                record.status = JobStatus.COMPLETED
                record.ended = now
                record.message = "schedule ended: no fire time left (endDate passed)"

    def fit(self, spec: ScheduleSpec) -> None:
        """Apply the history limit, then drop the oldest finished entries until the state fits its table cell."""
        self.runs, self.older_runs = trim_history(self.runs, spec.history_limit, self.older_runs)
        while len(json.dumps(self.to_dict())) > STATE_JSON_LIMIT and len(self.runs) > 1:
            limit = max(1, len(self.runs) - max(1, len(self.runs) // 10))
            self.runs, self.older_runs = trim_history(self.runs, limit, self.older_runs)
            if len(self.runs) > limit:  # only running entries left: nothing more to drop
                break


# ---- the RecurringJob entity -----------------------------------------------------------------------------------
def entity_schedule(entity: Mapping[str, Any]) -> Mapping[str, Any]:
    schedule = entity.get("schedule")
    if not isinstance(schedule, Mapping):
        raise ValidationFailed(
            "invalid schedule: schedule: missing or not an object (a CronJob with at least `cron`)",
            data={"attribute": "schedule"},
        )
    return schedule


def template_of(record: JobRecord) -> dict[str, Any]:
    """A fresh copy of the Job every run is made from (the RecurringJob's `applicationInput`)."""
    template = load_entity(record).get("applicationInput")
    if not isinstance(template, dict):
        raise BadRequest("a recurring job's applicationInput must be the Job template (an object)")
    return json.loads(json.dumps(template))
