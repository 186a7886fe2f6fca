"""Recurring-job policy: the schedule's settings (`ScheduleSpec`) and what a tick must do (`decide`). PURE.

No I/O and no clock reads: `now` and the schedule's state are arguments, and app-wide defaults come in as a
`Defaults` value (`Defaults.from_settings()` reads them, through `shared.platform.settings`, at the caller's request).

A RecurringJob's `schedule` (a CronJob) may carry, besides the blueprint's `cron`, `startDate`, `endDate`,
`runs`:

| attribute                | default (setting)                        | meaning                                        |
|--------------------------|------------------------------------------|------------------------------------------------|
| `timezone`               | `UTC`                                    | IANA zone of the cron and of naive dates       |
| `weekdayDialect`         | SCHEDULE_WEEKDAY_DIALECT (`unix`)        | `unix` (0=Sunday) or `dmjob` (0=Monday)        |
| `concurrencyPolicy`      | SCHEDULE_CONCURRENCY_POLICY (`Allow`)    | `Allow`, `Forbid` or `Replace`                 |
| `startingDeadlineSeconds`| SCHEDULE_STARTING_DEADLINE_SECONDS (3600)| a late/missed run still starts within this     |
| `suspend`                | false                                    | registered but not firing                      |
| `historyLimit`           | SCHEDULE_HISTORY_LIMIT (100)             | run entries kept; older ones become counts     |
| `suspendAfterFailures`   | SCHEDULE_SUSPEND_AFTER_FAILURES (0=never)| suspend after this many failed runs in a row   |

Defaults are resolved once, at registration, and stored with the schedule: changing a setting later does not
change the meaning of schedules already registered. Unknown attributes are kept as they came.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Mapping

from shared.platform import settings
from shared.schedules.cron import UTC, CronError, CronSchedule, load_zone, parse_datetime

POLICIES = ("Allow", "Forbid", "Replace")
MAX_HISTORY_LIMIT = 1000
MISSED_RECORD_LIMIT = 50  # missed times recorded one by one per decision; older ones are counted
MISSED_COUNT_CAP = 1_000  # counting stops here (the count is then a lower bound, flagged)

# Run-entry statuses. Job statuses come from the job service; `missed` and `skipped` are the schedule's own.
ACTIVE_STATUSES = frozenset({"registered", "not started", "starting", "running"})
FINAL_STATUSES = frozenset({"completed", "failed", "removed", "missed", "skipped"})
KNOWN_ATTRIBUTES = (
    "cron",
    "timezone",
    "weekdayDialect",
    "startDate",
    "endDate",
    "concurrencyPolicy",
    "startingDeadlineSeconds",
    "suspend",
    "historyLimit",
    "suspendAfterFailures",
)


class ScheduleError(ValueError):
    """An invalid schedule; the message names the attribute and says what is wrong (an API 422)."""


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


@dataclass(frozen=True)
class Defaults:
    weekday_dialect: str = "unix"
    concurrency_policy: str = "Allow"
    starting_deadline_seconds: int = 3600
    history_limit: int = 100
    suspend_after_failures: int = 0

    @classmethod
    def from_settings(cls) -> Defaults:
        def integer(name: str) -> int:
            try:
                return settings.get_int(name)
            except ValueError:
                raise ScheduleError(f"setting {name}={settings.get(name)!r} is not a whole number") from None

        return cls(
            weekday_dialect=settings.get("SCHEDULE_WEEKDAY_DIALECT").strip().lower(),
            concurrency_policy=settings.get("SCHEDULE_CONCURRENCY_POLICY").strip(),
            starting_deadline_seconds=integer("SCHEDULE_STARTING_DEADLINE_SECONDS"),
            history_limit=integer("SCHEDULE_HISTORY_LIMIT"),
            suspend_after_failures=integer("SCHEDULE_SUSPEND_AFTER_FAILURES"),
        )


def _int(value: Any, name: str, *, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or value is None:
        raise ScheduleError(f"schedule.{name}: {value!r} is not a whole number")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise ScheduleError(f"schedule.{name}: {value!r} is not a whole number")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ScheduleError(f"schedule.{name}: {value} must be {bound}")
    return value


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    raise ScheduleError(f"schedule.{name}: {value!r} is not true or false")


def _policy(value: Any, name: str) -> str:
    if isinstance(value, str):
        for policy in POLICIES:
            if policy.lower() == value.strip().lower():
                return policy
    raise ScheduleError(f"schedule.{name}: {value!r} is not one of: {', '.join(POLICIES)}")


@dataclass(frozen=True)
class ScheduleSpec:
    """A validated schedule. `attributes` is the schedule object as stored (defaults filled in, unknown
    attributes kept, `runs` left out: the schedule's run history lives in its state)."""

    cron: CronSchedule
    start: datetime | None  # aware UTC, inclusive
    end: datetime | None  # aware UTC, inclusive
    concurrency_policy: str
    starting_deadline_seconds: int
    suspend: bool
    history_limit: int
    suspend_after_failures: int
    attributes: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def timezone(self) -> str:
        return self.cron.timezone

    @property
    def weekday_dialect(self) -> str:
        return self.cron.dialect

    @classmethod
    def parse(cls, schedule: Mapping[str, Any], defaults: Defaults | None = None) -> ScheduleSpec:
        """Validate a CronJob object (a RecurringJob's `schedule`); raise ScheduleError saying what is wrong."""
        if not isinstance(schedule, Mapping):
            raise ScheduleError("schedule: missing or not an object (a CronJob with at least `cron`)")
        defaults = defaults or Defaults()
        attrs = {k: v for k, v in schedule.items() if k != "runs"}
        if "timeZone" in attrs and "timezone" not in attrs:  # Kubernetes' spelling
            attrs["timezone"] = attrs.pop("timeZone")
        cron_text = attrs.get("cron")
        if not isinstance(cron_text, str) or not cron_text.strip():
            raise ScheduleError("schedule.cron: required, a 5-field cron string such as '*/5 * * * *'")
        zone_name = attrs.get("timezone") or "UTC"
        dialect = attrs.get("weekdayDialect") or defaults.weekday_dialect
        try:
            zone = load_zone(zone_name)
        except CronError as exc:
            raise ScheduleError(f"schedule.{exc}") from None
        try:
            cron = CronSchedule.parse(cron_text, zone.key, dialect)
        except CronError as exc:
            message = str(exc)
            raise ScheduleError(
                "schedule." + (message if message.startswith(("cron", "weekdayDialect")) else "cron: " + message)
            ) from None
        try:
            start = parse_datetime(attrs.get("startDate"), zone, what="schedule.startDate")
            end = parse_datetime(attrs.get("endDate"), zone, what="schedule.endDate")
        except CronError as exc:
            raise ScheduleError(str(exc)) from None
        if start and end and end < start:
            raise ScheduleError(
                f"schedule.endDate: {attrs.get('endDate')!r} is before startDate {attrs.get('startDate')!r}"
            )
        if defaults.concurrency_policy not in POLICIES:
            _policy(defaults.concurrency_policy, "concurrencyPolicy (setting SCHEDULE_CONCURRENCY_POLICY)")
        policy = _policy(attrs.get("concurrencyPolicy", defaults.concurrency_policy), "concurrencyPolicy")
        deadline = _int(
            attrs.get("startingDeadlineSeconds", defaults.starting_deadline_seconds),
            "startingDeadlineSeconds",
            minimum=0,
        )
        suspend = _bool(attrs.get("suspend", False), "suspend")
        history = _int(
            attrs.get("historyLimit", defaults.history_limit), "historyLimit", minimum=1, maximum=MAX_HISTORY_LIMIT
        )
        failures = _int(
            attrs.get("suspendAfterFailures", defaults.suspend_after_failures), "suspendAfterFailures", minimum=0
        )
        attrs.update(
            cron=cron_text,
            timezone=zone.key,
            weekdayDialect=cron.dialect,
            concurrencyPolicy=policy,
            startingDeadlineSeconds=deadline,
            suspend=suspend,
            historyLimit=history,
            suspendAfterFailures=failures,
        )
        return cls(
            cron=cron,
            start=start,
            end=end,
            concurrency_policy=policy,
            starting_deadline_seconds=deadline,
            suspend=suspend,
            history_limit=history,
            suspend_after_failures=failures,
            attributes=attrs,
        )

    def to_dict(self) -> dict[str, Any]:
        """The stored form; `ScheduleSpec.parse(spec.to_dict())` gives the same spec whatever the defaults."""
        return dict(self.attributes)

    def next_fire(self, after: datetime) -> datetime | None:
        """First fire time > `after` within [start, end]."""
        if self.start is not None and after < self.start:
            after = self.start - timedelta(microseconds=1)
        fire = self.cron.next_fire(after)
        if fire is None or (self.end is not None and fire > self.end):
            return None
        return fire

    def preview(self, n: int, after: datetime) -> list[dict[str, str]]:
        """Next `n` fire times after `after` within [start, end], in UTC and in the schedule's zone."""
        out = []
        cursor = after
        for _ in range(max(0, n)):
            fire = self.next_fire(cursor)
            if fire is None:
                break
            out.append({"utc": iso(fire), "local": fire.astimezone(self.cron.zone).isoformat(timespec="seconds")})
            cursor = fire
        return out

    def check_fires(self, now: datetime) -> datetime:
        """The first fire time after `now`; ScheduleError when there is none (registration check)."""
        if self.end is not None and self.end <= now:
            raise ScheduleError(f"schedule.endDate: {self.attributes.get('endDate')!r} is in the past")
        fire = self.next_fire(now)
        if fire is None:
            window = "between startDate and endDate" if self.end is not None else "again"
            raise ScheduleError(f"schedule.cron: {self.cron.expression!r} never fires {window}")
        return fire


@dataclass(frozen=True)
class ScheduleState:
    """What `decide` needs to know about a schedule besides its spec."""

    last_considered: datetime  # every fire time <= this has been handled (started, missed or skipped)
    running: tuple[str, ...] = ()  # uids of this schedule's runs that are still running
    consecutive_failures: int = 0
    suspended: bool = False


@dataclass(frozen=True)
class Decision:
    start: datetime | None = None  # scheduled time of the run to start now
    missed: tuple[datetime, ...] = ()  # missed fire times to record, oldest first (the most recent ones)
    missed_more: int = 0  # older missed fire times not listed
    missed_more_capped: bool = False  # missed_more is a lower bound (counting stopped)
    skipped: datetime | None = None  # Forbid: the fire time skipped because a run is still going
    skip_reason: str = ""
    stop: tuple[str, ...] = ()  # Replace: runs to stop before starting the new one
    next_fire: datetime | None = None
    expired: bool = False  # no fire time left (past endDate)
    suspend: bool = False  # suspend now (too many failures in a row)
    suspend_reason: str = ""
    considered_until: datetime | None = None  # the new `last_considered`

    @property
    def missed_total(self) -> int:
        return len(self.missed) + self.missed_more


def decide(
    spec: ScheduleSpec,
    state: ScheduleState,
    now: datetime,
    *,
    missed_record_limit: int = MISSED_RECORD_LIMIT,
    missed_count_cap: int = MISSED_COUNT_CAP,
) -> Decision:
    """What to do for a schedule at `now`.

    Fire times in (last_considered, now] within [start, end] are due. The latest one starts if it is no older
    than `startingDeadlineSeconds` (subject to the concurrency policy); every other due time is recorded as
    missed (the most recent `missed_record_limit` by time, the rest as a count). At most one run starts per
    decision, whatever the backlog: a long outage never blocks the schedule.
    """
    now = now.astimezone(UTC)
    considered = max(state.last_considered.astimezone(UTC), now)
    if state.suspended:
        return Decision(considered_until=state.last_considered)
    if spec.suspend_after_failures and state.consecutive_failures >= spec.suspend_after_failures:
        return Decision(
            suspend=True,
            considered_until=considered,
            suspend_reason=f"{state.consecutive_failures} failed runs in a row "
            f"(suspendAfterFailures={spec.suspend_after_failures})",
        )
    lower = state.last_considered.astimezone(UTC)
    if spec.start is not None and lower < spec.start:
        lower = spec.start - timedelta(microseconds=1)
    upper = now if spec.end is None else min(now, spec.end)
    decision = Decision(considered_until=considered)
    latest = spec.cron.last_fire_at_or_before(upper) if upper > lower else None
    if latest is not None and latest > lower:
        on_time = (now - latest).total_seconds() <= spec.starting_deadline_seconds
        window = missed_record_limit + missed_count_cap
        older = list(spec.cron.fire_times_backwards(latest, lower, limit=window))  # latest first
        missed = ([] if on_time else [latest]) + older
        recorded, more = missed[:missed_record_limit], len(missed) - min(len(missed), missed_record_limit)
        decision = replace(
            decision, missed=tuple(sorted(recorded)), missed_more=more, missed_more_capped=len(older) >= window
        )
        if on_time:
            if spec.concurrency_policy == "Forbid" and state.running:
                decision = replace(
                    decision,
                    skipped=latest,
                    skip_reason=f"concurrencyPolicy Forbid: run {state.running[-1]} still running",
                )
            else:
                stop = tuple(state.running) if spec.concurrency_policy == "Replace" else ()
                decision = replace(decision, start=latest, stop=stop)
    next_fire = spec.next_fire(considered)
    return replace(decision, next_fire=next_fire, expired=next_fire is None)


# --- run history (pure helpers on the list of run entries) ------------------------------------------------


def run_entry(
    uid: str | None,
    scheduled: datetime,
    status: str,
    *,
    started: datetime | None = None,
    ended: datetime | None = None,
    **extra: Any,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "uid": uid,
        "scheduled": iso(scheduled),
        "started": iso(started),
        "status": status,
        "ended": iso(ended),
    }
    entry.update({k: v for k, v in extra.items() if v is not None})
    return entry


def is_running(entry: Mapping[str, Any]) -> bool:
    return entry.get("status") in ACTIVE_STATUSES and bool(entry.get("uid"))


def needs_refresh(entry: Mapping[str, Any]) -> bool:
    """A run whose status may still change (not final, and a real run with a uid)."""
    return bool(entry.get("uid")) and entry.get("status") not in FINAL_STATUSES and not entry.get("missing")


def apply_status(
    runs: list[dict[str, Any]], run_uid: str, status: str, ended: datetime | None, consecutive_failures: int
) -> tuple[bool, int]:
    """Record a run's new status in `runs` (in place). Returns (changed, consecutive_failures): a run turning
    `failed` adds one failure, `completed` resets the count, a stop (`removed`) leaves it."""
    for entry in runs:
        if entry.get("uid") != run_uid:
            continue
        old = entry.get("status")
        if old == status or old in FINAL_STATUSES:
            return False, consecutive_failures
        entry["status"] = status
        if status in FINAL_STATUSES:
            entry["ended"] = entry.get("ended") or iso(ended)
            if status == "failed":
                consecutive_failures += 1
            elif status == "completed":
                consecutive_failures = 0
        return True, consecutive_failures
    return False, consecutive_failures


def trim_history(
    runs: list[dict[str, Any]], limit: int, older: Mapping[str, int] | None = None
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Keep the last `limit` entries (oldest first in `runs`); count the dropped ones by status into `older`.
    Entries still running are never dropped (their status must keep being followed)."""
    counts = dict(older or {})
    if len(runs) <= limit:
        return runs, counts
    excess = len(runs) - limit
    kept: list[dict[str, Any]] = []
    for entry in runs:
        if excess > 0 and not needs_refresh(entry):
            status = str(entry.get("status") or "unknown")
            counts[status] = counts.get(status, 0) + int(entry.get("count") or 1)
            excess -= 1
        else:
            kept.append(entry)
    return kept, counts


def apply_decision_to_runs(runs: list[dict[str, Any]], decision: Decision) -> list[dict[str, Any]]:
    """Append the decision's missed and skipped entries (oldest first) to a copy of `runs`."""
    out = list(runs)
    if decision.missed_more:
        summary: dict[str, Any] = {
            "uid": None,
            "scheduled": None,
            "status": "missed",
            "count": decision.missed_more,
            "before": iso(decision.missed[0]) if decision.missed else None,
        }
        if decision.missed_more_capped:
            summary["countIsLowerBound"] = True
        out.append(summary)
    for fire in decision.missed:
        out.append(run_entry(None, fire, "missed"))
    if decision.skipped is not None:
        out.append(run_entry(None, decision.skipped, "skipped", reason=decision.skip_reason))
    out.sort(key=lambda e: e.get("scheduled") or e.get("before") or "")
    return out


def run_template(template: Mapping[str, Any], schedule_uid: str, *, deeper: bool = False) -> dict[str, Any]:
    """A fresh Job entity for one run from the RecurringJob's template: `triggeredBy` = `Schedule (<uid>)`,
    status `not started`, no uid/started/ended/result. With `deeper=True`, relative reference addresses
    (`~...`) in its `applicationInput` gain one `~.`, as the old service did when it stored the copy one
    level deeper (in `schedule.runs`)."""
    job = copy.deepcopy(dict(template))
    for key in ("uid", "started", "ended", "result"):
        job.pop(key, None)
    job["status"] = "not started"
    job["triggeredBy"] = triggered_by(schedule_uid)
    ref = job.get("applicationInput")
    if deeper and isinstance(ref, dict) and isinstance(ref.get("address"), str) and ref["address"].startswith("~"):
        ref["address"] = "~." + ref["address"]
    return job


def triggered_by(schedule_uid: str) -> str:
    return f"Schedule ({schedule_uid})"


__all__ = [
    "ACTIVE_STATUSES",
    "Decision",
    "Defaults",
    "FINAL_STATUSES",
    "POLICIES",
    "ScheduleError",
    "ScheduleSpec",
    "ScheduleState",
    "apply_decision_to_runs",
    "apply_status",
    "decide",
    "is_running",
    "iso",
    "needs_refresh",
    "parse_iso",
    "run_entry",
    "run_template",
    "trim_history",
    "triggered_by",
]
