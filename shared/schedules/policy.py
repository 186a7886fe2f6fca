"""Recurring-job policy: the schedule's settings (`ScheduleSpec`) and what a tick must do (`decide`). PURE.

No I/O and no clock reads: `now` and the schedule's state are arguments, and app-wide defaults come in as a
`Defaults` value (`Defaults.from_settings()` reads them, through `shared.platform.settings`, at the caller's request).

A RecurringJob's `schedule` (a CronJob) may carry, besides the blueprint's `cron` (a string, or a list of up to
20 strings: the union of their fire times, a time two of them share fires once), `startDate`, `endDate`, `runs`:

| attribute                | default (setting)                        | meaning                                        |
|--------------------------|------------------------------------------|------------------------------------------------|
| `timezone`               | `UTC`                                    | IANA zone of the cron and of naive dates       |
| `weekdayDialect`         | SCHEDULE_WEEKDAY_DIALECT (`unix`)        | `unix` (0=Sunday) or `dmjob` (0=Monday)        |
| `concurrencyPolicy`      | SCHEDULE_CONCURRENCY_POLICY (`Allow`)    | `Allow`, `Forbid`, `Replace` or `BufferOne`    |
| `jitterSeconds`          | 0                                        | shift each fire by 0..this many seconds        |
| `startingDeadlineSeconds`| SCHEDULE_STARTING_DEADLINE_SECONDS (3600)| a late/missed run still starts within this     |
| `suspend`                | false                                    | registered but not firing                      |
| `historyLimit`           | SCHEDULE_HISTORY_LIMIT (100)             | run entries kept; older ones become counts     |
| `suspendAfterFailures`   | SCHEDULE_SUSPEND_AFTER_FAILURES (0=never)| suspend after this many failed runs in a row   |

BufferOne: a fire that comes while a run is going waits for it (at most one waiting: `ScheduleState.waiting`);
a later one is skipped with the reason. The waiting fire starts at the first decision that finds no run going.

Jitter: the fire at nominal time T is due at T + offset, the offset a hash of (schedule uid, T) in
[0, jitterSeconds] and below the time to the next nominal fire (`cron.jitter_offset`): every host computes the
same time, fire order is kept, and the due index holds the shifted time. A fire's identity stays its nominal
time: run entries' `scheduled` and the run's idempotency key are nominal; `actual` is the shifted time.

Defaults are resolved once, at registration, and stored with the schedule: changing a setting later does not
change the meaning of schedules already registered. Unknown attributes are kept as they came.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Iterator, Mapping

from shared.platform import settings
from shared.schedules.cron import (
    MAX_JITTER_SECONDS,
    UTC,
    CronError,
    CronSet,
    Fire,
    floor_minute,
    jitter_offset,
    load_zone,
    parse_datetime,
)

POLICIES = ("Allow", "Forbid", "Replace", "BufferOne")
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
    "jitterSeconds",
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

    cron: CronSet
    start: datetime | None  # aware UTC, inclusive
    end: datetime | None  # aware UTC, inclusive
    concurrency_policy: str
    starting_deadline_seconds: int
    suspend: bool
    history_limit: int
    suspend_after_failures: int
    attributes: Mapping[str, Any] = field(default_factory=dict, compare=False)
    jitter_seconds: int = 0
    seed: str = ""  # the schedule's uid: what the jitter offsets are derived from (`seeded`)
    _fires: dict[datetime, Fire] = field(default_factory=dict, init=False, compare=False, repr=False)

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
        if not isinstance(cron_text, (str, list)) or (isinstance(cron_text, str) and not cron_text.strip()):
            raise ScheduleError(
                "schedule.cron: required, a 5-field cron string such as '*/5 * * * *' or a list of them"
            )
        zone_name = attrs.get("timezone") or "UTC"
        dialect = attrs.get("weekdayDialect") or defaults.weekday_dialect
        try:
            zone = load_zone(zone_name)
        except CronError as exc:
            raise ScheduleError(f"schedule.{exc}") from None
        try:
            cron = CronSet.parse(cron_text, zone.key, dialect)
        except CronError as exc:
            message = str(exc)
            raise ScheduleError(
                "schedule." + (message if message.startswith(("cron", "weekdayDialect")) else "cron: " + message)
            ) from None
        jitter = _int(attrs.get("jitterSeconds", 0), "jitterSeconds", minimum=0, maximum=MAX_JITTER_SECONDS)
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
        if "jitterSeconds" in attrs:
            attrs["jitterSeconds"] = jitter
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
            jitter_seconds=jitter,
        )

    def seeded(self, uid: str | None) -> ScheduleSpec:
        """The same spec with the schedule's uid, that the jitter offsets are derived from."""
        return replace(self, seed=uid or "")

    @property
    def listed(self) -> bool:
        """`cron` is a list: run entries and the preview say which expression fired."""
        return not isinstance(self.cron.expression, str)

    def to_dict(self) -> dict[str, Any]:
        """The stored form; `ScheduleSpec.parse(spec.to_dict())` gives the same spec whatever the defaults."""
        return dict(self.attributes)

    # ---- fire times: nominal (the cron's, within [start, end]) shifted by the jitter --------------------------
    def fire(self, nominal: datetime, following: datetime | None | bool = True) -> Fire:
        """The fire at `nominal`: when it is due (jitter) and which expression it comes from. `following`: the
        next nominal time when the caller knows it (None: there is none), True: look it up. Remembered per
        nominal time, as a decision asks about the same fires more than once (croniter's steps are its cost)."""
        known = self._fires.get(nominal)
        if known is not None:
            return known
        at = nominal
        if self.jitter_seconds:
            if following is True:
                following = self.cron.next_fire(nominal)
            gap = None if following is None else (following - nominal).total_seconds()
            at = nominal + timedelta(seconds=jitter_offset(self.seed, nominal, self.jitter_seconds, gap))
        fire = Fire(at=at, nominal=nominal, expression=self.cron.which(nominal) if self.listed else "")
        self._fires[nominal] = fire
        return fire

    def _not_before(self, when: datetime) -> datetime | None:
        """Where a walk over nominal times may stop looking for fires due after `when`. With jitter, the last
        nominal time at or before `when` may be due after it (an earlier one never: it is due before the next),
        so the walk goes on until a fire is due at or before `when`: no bound but `startDate`."""
        bound = None if self.jitter_seconds else when
        if self.start is not None and (bound is None or bound < self.start):
            bound = self.start - timedelta(microseconds=1)
        return bound

    def fires(self, after: datetime, until: datetime | None = None, *, limit: int | None = None) -> Iterator[Fire]:
        """Fires due in (after, until], in order (the last nominal time before `after` may be due after it)."""
        lower = after
        if self.jitter_seconds:
            last = self.cron.last_fire_at_or_before(after)
            if last is not None and after - last < timedelta(seconds=self.jitter_seconds):
                lower = last - timedelta(microseconds=1)
        if self.start is not None and lower < self.start:
            lower = self.start - timedelta(microseconds=1)
        count = 0
        nominals = self.cron.fire_times(lower)
        nominal = next(nominals, None)
        while nominal is not None:
            if (self.end is not None and nominal > self.end) or (until is not None and nominal > until):
                return
            following = next(nominals, None) if self.jitter_seconds else True
            fire = self.fire(nominal, following)
            nominal = following if self.jitter_seconds else next(nominals, None)
            if fire.at <= after:
                continue
            if until is not None and fire.at > until:
                return
            yield fire
            count += 1
            if limit is not None and count >= limit:
                return

    def fires_backwards(self, upper: datetime, lower: datetime, *, limit: int | None = None) -> Iterator[Fire]:
        """Fires due in (lower, upper], latest first."""
        top = upper if self.end is None else min(upper, self.end)
        bottom = self._not_before(lower)
        if bottom is not None and top <= bottom:
            return
        count, following = 0, True  # the latest one's next nominal time is looked up, the others' is known
        for nominal in self.cron.fire_times_backwards(floor_minute(top) + timedelta(minutes=1), bottom):
            fire = self.fire(nominal, following)
            following = nominal
            if fire.at > upper:
                continue
            if fire.at <= lower:
                return
            yield fire
            count += 1
            if limit is not None and count >= limit:
                return

    def next_fire(self, after: datetime) -> datetime | None:
        """The first nominal fire time > `after` within [start, end] (what a backfill walks: a fire's identity)."""
        if self.start is not None and after < self.start:
            after = self.start - timedelta(microseconds=1)
        fire = self.cron.next_fire(after)
        if fire is None or (self.end is not None and fire > self.end):
            return None
        return fire

    def next_due(self, after: datetime) -> datetime | None:
        """When the first fire due after `after` is due (its nominal time plus jitter): where the due index
        points. None when none is left. Without jitter it is `next_fire`."""
        if not self.jitter_seconds:
            return self.next_fire(after)
        fire = next(self.fires(after, limit=1), None)
        return None if fire is None else fire.at

    def entry_fields(self, fire: Fire) -> dict[str, str]:
        """What a run entry (and the preview) records of a fire besides its nominal time: `actual` with jitter,
        `expression` for a list of expressions."""
        fields = {}
        if self.jitter_seconds:
            fields["actual"] = iso(fire.at)
        if self.listed:
            fields["expression"] = fire.expression
        return fields

    def preview(self, n: int, after: datetime) -> list[dict[str, str]]:
        """The next `n` fires after `after`: when each is due, in UTC and in the schedule's zone (with jitter the
        shifted time, and `nominal` beside it; for a list, the `expression` that fires)."""
        out = []
        for fire in self.fires(after, limit=max(0, n)):
            item = {"utc": iso(fire.at), "local": fire.at.astimezone(self.cron.zone).isoformat(timespec="seconds")}
            if self.jitter_seconds:
                item["nominal"] = iso(fire.nominal)
            if self.listed:
                item["expression"] = fire.expression
            out.append(item)
        return out

    def check_fires(self, now: datetime) -> datetime:
        """The first fire time after `now`; ScheduleError when there is none (registration check)."""
        if self.end is not None and self.end <= now:
            raise ScheduleError(f"schedule.endDate: {self.attributes.get('endDate')!r} is in the past")
        fire = self.next_due(now)
        if fire is None:
            window = "between startDate and endDate" if self.end is not None else "again"
            raise ScheduleError(f"schedule.cron: {self.cron.shown!r} never fires {window}")
        return fire


@dataclass(frozen=True)
class ScheduleState:
    """What `decide` needs to know about a schedule besides its spec."""

    last_considered: datetime  # every fire due at or before this has been handled (started, missed or skipped)
    running: tuple[str, ...] = ()  # uids of this schedule's runs that are still running
    consecutive_failures: int = 0
    suspended: bool = False
    waiting: Mapping[str, Any] | None = None  # BufferOne: the fire waiting for the run going (`waiting_entry`)


@dataclass(frozen=True)
class Decision:
    start: datetime | None = None  # nominal time of the run to start now
    missed: tuple[datetime, ...] = ()  # missed fire times (nominal) to record, oldest first (the most recent ones)
    missed_more: int = 0  # older missed fire times not listed
    missed_more_capped: bool = False  # missed_more is a lower bound (counting stopped)
    skipped: datetime | None = None  # Forbid, BufferOne: the fire time skipped because a run is still going
    skip_reason: str = ""
    stop: tuple[str, ...] = ()  # Replace: runs to stop before starting the new one
    next_fire: datetime | None = None  # when the next fire is due (jitter included)
    expired: bool = False  # no fire time left (past endDate)
    suspend: bool = False  # suspend now (too many failures in a row)
    suspend_reason: str = ""
    considered_until: datetime | None = None  # the new `last_considered`
    waiting: Mapping[str, Any] | None = None  # BufferOne: the fire waiting after this decision
    details: Mapping[datetime, Mapping[str, Any]] = field(default_factory=dict)  # run-entry fields per nominal time

    @property
    def missed_total(self) -> int:
        return len(self.missed) + self.missed_more

    def fields(self, nominal: datetime | None) -> dict[str, Any]:
        """The run entry's fields for a fire this decision names, besides its nominal time (`scheduled`)."""
        return dict(self.details.get(nominal, {})) if nominal is not None else {}


def waiting_entry(spec: ScheduleSpec, fire: Fire, since: datetime) -> dict[str, Any]:
    """The stored form of a fire put waiting (BufferOne) at `since`."""
    return {"scheduled": iso(fire.nominal), **spec.entry_fields(fire), "since": iso(since)}


def decide(
    spec: ScheduleSpec,
    state: ScheduleState,
    now: datetime,
    *,
    missed_record_limit: int = MISSED_RECORD_LIMIT,
    missed_count_cap: int = MISSED_COUNT_CAP,
) -> Decision:
    """What to do for a schedule at `now`.

    Fires due in (last_considered, now] (nominal times within [start, end], due at nominal + jitter) are
    handled. The latest one starts if it is due no longer than `startingDeadlineSeconds` ago (subject to the
    concurrency policy); every other due fire is recorded as missed (the most recent `missed_record_limit` by
    time, the rest as a count). At most one run starts per decision, whatever the backlog: a long outage never
    blocks the schedule. BufferOne: a waiting fire starts once no run is going, before the fire due now (which
    then waits in its place).
    """
    now = now.astimezone(UTC)
    considered = max(state.last_considered.astimezone(UTC), now)
    if state.suspended:
        return Decision(considered_until=state.last_considered, waiting=state.waiting)
    if spec.suspend_after_failures and state.consecutive_failures >= spec.suspend_after_failures:
        return Decision(
            suspend=True,
            considered_until=considered,
            waiting=state.waiting,
            suspend_reason=f"{state.consecutive_failures} failed runs in a row "
            f"(suspendAfterFailures={spec.suspend_after_failures})",
        )
    window = missed_record_limit + missed_count_cap
    due = list(spec.fires_backwards(now, state.last_considered.astimezone(UTC), limit=window + 1))  # latest first
    decision = Decision(considered_until=considered, waiting=state.waiting)
    on_time = bool(due) and (now - due[0].at).total_seconds() <= spec.starting_deadline_seconds
    if due:
        missed = due if not on_time else due[1:]
        recorded = missed[:missed_record_limit]
        decision = replace(
            decision,
            missed=tuple(sorted(f.nominal for f in recorded)),
            missed_more=len(missed) - len(recorded),
            missed_more_capped=len(due) - 1 >= window,
            details={f.nominal: spec.entry_fields(f) for f in recorded},
        )
    if on_time:
        decision = _concurrency(spec, state, decision, due[0], now)
    elif state.waiting is not None and not state.running:
        decision = _start_waiting(decision, state.waiting)
    next_fire = spec.next_due(considered)
    return replace(decision, next_fire=next_fire, expired=next_fire is None)


def _concurrency(spec: ScheduleSpec, state: ScheduleState, decision: Decision, fire: Fire, now: datetime) -> Decision:
    """The fire due now, under the schedule's concurrency policy."""
    policy, running = spec.concurrency_policy, state.running
    if policy == "BufferOne":
        return _buffer_one(spec, state, decision, fire, now)
    if policy == "Forbid" and running:
        return _skip(spec, decision, fire, f"concurrencyPolicy Forbid: run {running[-1]} still running")
    return _start(decision, fire.nominal, spec.entry_fields(fire), running if policy == "Replace" else ())


def _buffer_one(spec: ScheduleSpec, state: ScheduleState, decision: Decision, fire: Fire, now: datetime) -> Decision:
    """BufferOne: start when nothing runs; else wait for the run going; skip when one is waiting already. A
    fire waiting from before starts first, and the fire due now waits for it."""
    waiting, running = state.waiting, state.running
    if running and waiting is None:
        return replace(decision, waiting=waiting_entry(spec, fire, now))
    if running:
        return _skip(
            spec,
            decision,
            fire,
            f"concurrencyPolicy BufferOne: run {running[-1]} still running and the fire of "
            f"{waiting.get('scheduled')} already waiting",
        )
    if waiting is not None:
        return replace(_start_waiting(decision, waiting), waiting=waiting_entry(spec, fire, now))
    return _start(decision, fire.nominal, spec.entry_fields(fire), ())


def _skip(spec: ScheduleSpec, decision: Decision, fire: Fire, reason: str) -> Decision:
    details = {**decision.details, fire.nominal: spec.entry_fields(fire)}
    return replace(decision, skipped=fire.nominal, skip_reason=reason, details=details)


def _start(decision: Decision, nominal: datetime, fields: Mapping[str, Any], stop: tuple[str, ...]) -> Decision:
    return replace(decision, start=nominal, stop=tuple(stop), details={**decision.details, nominal: dict(fields)})


def _start_waiting(decision: Decision, waiting: Mapping[str, Any]) -> Decision:
    """Start the fire that waited (BufferOne); its run entry says since when it waited."""
    fields = {k: v for k, v in waiting.items() if k not in ("scheduled", "since")}
    fields["waitedSince"] = waiting.get("since")
    return replace(_start(decision, parse_iso(waiting["scheduled"]), fields, ()), waiting=None)


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
        out.append(run_entry(None, fire, "missed", **decision.fields(fire)))
    if decision.skipped is not None:
        fields = decision.fields(decision.skipped)
        out.append(run_entry(None, decision.skipped, "skipped", reason=decision.skip_reason, **fields))
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
    "waiting_entry",
]
