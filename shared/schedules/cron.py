"""Cron schedules: parse, validate and compute fire times. PURE: no I/O, no clock reads.

Like an APScheduler-4 trigger, a schedule computes its next fire time from a given instant; the caller owns
"now" and the last fire time.

Syntax: the standard 5 fields `minute hour day-of-month month day-of-week`, each a comma list of `*`, `N`,
`A-B`, with an optional `/STEP` (`*/15`, `1-30/2`, `5/10` = `5-59/10`); month and day names (`jan`, `mon`)
are accepted, as are the nicknames `@yearly @annually @monthly @weekly @daily @midnight @hourly`. Anything
else (seconds, years, `L`, `W`, `#`, `?`) is rejected with a message naming the field.

Day rule (Vixie cron): when both day-of-month and day-of-week are restricted (neither starts with `*`), a day
matches when EITHER matches; otherwise both must match. In the `dmjob` weekday dialect (the old DM-Job
service, APScheduler: 0 = Monday .. 6 = Sunday) both must always match, as APScheduler did.

Time zones and daylight saving time: a schedule is a set of wall-clock times in its IANA zone.
  * a wall time that does not exist (in the spring-forward gap) is skipped;
  * a wall time that exists twice (in the autumn overlap) fires once, at its first occurrence.
croniter on aware datetimes does neither (it moves a gap time to the end of the gap and fires an overlap time
twice), so croniter here only iterates naive wall times and this module maps them to UTC.
"""

from __future__ import annotations

import calendar
import copy
import hashlib
import heapq
import itertools
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import Callable, Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

UTC = timezone.utc
DIALECTS = ("unix", "dmjob")
MAX_SKIPS = 20_000  # wall times skipped (gap/overlap) in one search before giving up: cannot happen for real zones

NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTHS = {
    name: i + 1
    for i, name in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])
}
UNIX_DAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
DMJOB_DAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
MONTH_DAYS = {m: (29 if m == 2 else calendar.monthrange(2001, m)[1]) for m in range(1, 13)}

_VALUE = re.compile(r"^(\d+|[a-z]+)$")


class CronError(ValueError):
    """A cron string, time zone, dialect or date is invalid; the message says which part and why."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None
    hint: str = ""


def _fields(dialect: str) -> tuple[_Field, ...]:
    if dialect == "dmjob":
        dow = _Field("day-of-week", 0, 6, DMJOB_DAYS, " (dmjob dialect: 0=Monday .. 6=Sunday, or mon-sun)")
    else:
        dow = _Field("day-of-week", 0, 7, UNIX_DAYS, " (unix dialect: 0 or 7=Sunday .. 6=Saturday, or sun-sat)")
    return (
        _Field("minute", 0, 59),
        _Field("hour", 0, 23),
        _Field("day-of-month", 1, 31),
        _Field("month", 1, 12, MONTHS, " (1-12 or jan-dec)"),
        dow,
    )


def _value(token: str, field: _Field, *, range_end: bool = False) -> int:
    token = token.strip().lower()
    if re.fullmatch(r"\d*[lw]", token):
        raise CronError(
            f"{field.name}: {token.upper()!r} (last day / nearest weekday) is not standard 5-field cron syntax"
        )
    if not _VALUE.match(token):
        raise CronError(f"{field.name}: {token!r} is not a number{field.hint}")
    if token.isdigit():
        number = int(token)
    elif field.names and token in field.names:
        number = field.names[token]
        # `mon-sun` in the unix dialect: Sunday closing a range is 7, not 0.
        if range_end and field.name == "day-of-week" and field.high == 7 and number == 0:
            number = 7
    else:
        what = "a number or name" if field.names else "a number"
        raise CronError(f"{field.name}: {token!r} is not {what}{field.hint}")
    if not field.low <= number <= field.high:
        raise CronError(f"{field.name}: {number} is out of range {field.low}-{field.high}{field.hint}")
    return number


def _parse_field(text: str, field: _Field) -> frozenset[int]:
    for char, meaning in (("#", "# (nth weekday)"), ("?", "?")):
        if char in text:
            raise CronError(f"{field.name}: {meaning} is not standard 5-field cron syntax")
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise CronError(f"{field.name}: empty item in list {text!r}")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise CronError(f"{field.name}: step {step_text!r} in {item!r} must be a whole number >= 1")
            step = int(step_text)
        if base == "*":
            start, end = field.low, field.high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _value(first, field), _value(last, field, range_end=True)
            if start > end:
                raise CronError(
                    f"{field.name}: range {item!r} runs backwards (write it as two ranges, "
                    f"e.g. {start}-{field.high},{field.low}-{end})"
                )
        else:
            start = _value(base, field)
            end = field.high if slash else start
        values.update(range(start, end + 1, step))
    if field.name == "day-of-week" and field.high == 7 and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


def _render(values: frozenset[int], field: _Field) -> str:
    """A value set as croniter text: `*` when complete, else compressed ranges (`1-5,7`)."""
    high = 6 if field.name == "day-of-week" else field.high
    if values == frozenset(range(field.low, high + 1)):
        return "*"
    items, ordered = [], sorted(values)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        items.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(items)


def translate_dmjob_weekdays(field_text: str) -> str:
    """Day-of-week field in the dmjob dialect (0=Monday .. 6=Sunday) -> the same days in unix numbering.

    `6` -> `0` (Sunday), `0-4` -> `1-5` (Monday to Friday), `*/2` -> `0-1,3,5` (Mon, Wed, Fri, Sun)."""
    dow = _fields("dmjob")[4]
    days = _parse_field(field_text.strip(), dow)
    unix = frozenset((d + 1) % 7 for d in days)
    return _render(unix, _fields("unix")[4])


def load_zone(name: str | None) -> ZoneInfo:
    """An IANA zone (`Europe/Oslo`); None or "" is UTC."""
    if name is None or str(name).strip() == "":
        return ZoneInfo("UTC")
    if not isinstance(name, str):
        raise CronError(f"timezone: {name!r} is not a string")
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CronError(
            f"timezone: {name!r} is not an IANA time zone name (e.g. 'UTC', 'Europe/Oslo', 'America/New_York')"
        ) from None


def resolve_wall_time(wall: datetime, zone: ZoneInfo) -> datetime | None:
    """Naive wall time in `zone` -> aware UTC, by the DST rule: None when the wall time falls in the
    spring-forward gap; its first occurrence when it falls in the autumn overlap."""
    utc = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) != wall.replace(fold=0):
        return None
    return utc


def parse_datetime(value: str | datetime | None, zone: ZoneInfo, *, what: str = "date") -> datetime | None:
    """ISO 8601 date or date-time -> aware UTC. With an offset (`Z`, `+01:00`) it is exact; without, it is a
    wall time in `zone` (the old UI's `YYYY-MM-DDTHH:MM` included; a bare date is its midnight). A naive time
    in a DST gap or overlap takes the offset in force before the transition."""
    if value is None:
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        text = str(value).strip()
        if not text:
            return None
        try:
            dt = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "zZ" else text)
        except ValueError:
            raise CronError(
                f"{what}: {text!r} is not an ISO 8601 date-time (e.g. '2026-03-01T08:00', "
                f"'2026-03-01T08:00:00+01:00', '2026-03-01T07:00:00Z')"
            ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=zone, fold=0)
    return dt.astimezone(UTC)


def floor_minute(dt: datetime) -> datetime:
    return dt.replace(second=0, microsecond=0)


def _aware(dt: datetime, what: str) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware")
    return dt


class _Backwards:
    """Queries both CronSchedule and CronSet answer from their own `fire_times_backwards`."""

    fire_times_backwards: Callable[..., Iterator[datetime]]

    def prev_fire(self, before: datetime) -> datetime | None:
        """The last fire time strictly before `before` (aware), as aware UTC; None if there is none."""
        return next(self.fire_times_backwards(before, limit=1), None)

    def last_fire_at_or_before(self, when: datetime) -> datetime | None:
        """The latest fire time <= `when` (fire times are whole minutes)."""
        return self.prev_fire(floor_minute(_aware(when, "when")) + timedelta(minutes=1))


@dataclass(frozen=True)
class CronSchedule(_Backwards):
    """A validated cron expression in a time zone. Build it with `CronSchedule.parse`."""

    expression: str  # as given
    timezone: str  # IANA name
    dialect: str  # "unix" or "dmjob"
    unix_expression: str  # the same schedule for croniter, numeric, unix weekday numbering
    day_or: bool  # day-of-month OR day-of-week (Vixie rule); False: both must match

    @classmethod
    def parse(cls, expression: str, timezone: str | None = "UTC", dialect: str | None = "unix") -> CronSchedule:
        if not isinstance(expression, str) or not expression.strip():
            raise CronError(
                "cron: empty; expected 5 fields 'minute hour day-of-month month day-of-week', e.g. '*/5 * * * *'"
            )
        dialect = (dialect or "unix").strip().lower()
        if dialect not in DIALECTS:
            raise CronError(f"weekdayDialect: {dialect!r} is not one of: {', '.join(DIALECTS)}")
        zone = load_zone(timezone)
        text = " ".join(expression.split())
        if text.startswith("@"):
            if text.lower() not in NICKNAMES:
                raise CronError(f"cron: unknown nickname {text!r}; known: {', '.join(NICKNAMES)}")
            text = NICKNAMES[text.lower()]
            if dialect == "dmjob":  # nicknames mean what they say: @weekly is Sunday in either dialect
                text = text[:-1] + ("6" if text.endswith("0") else "*")
        parts = text.split(" ")
        if len(parts) != 5:
            raise CronError(
                f"cron: {expression!r} has {len(parts)} field(s); expected 5: "
                f"'minute hour day-of-month month day-of-week' (no seconds or years)"
            )
        fields = _fields(dialect)
        try:
            sets = [_parse_field(part, field) for part, field in zip(parts, fields)]
        except CronError as exc:
            raise CronError(f"cron {expression!r}: {exc}") from None
        if dialect == "dmjob":
            sets[4] = frozenset((d + 1) % 7 for d in sets[4])
            day_or = False  # APScheduler: all fields must match
        else:
            day_or = not (parts[2].startswith("*") or parts[4].startswith("*"))
        unix_fields = _fields("unix")
        rendered = [_render(values, field) for values, field in zip(sets, unix_fields)]
        if rendered[2] != "*" and not (day_or and rendered[4] != "*"):
            possible = [m for m in sets[3] if min(sets[2]) <= MONTH_DAYS[m]]
            if not possible:
                months = ",".join(str(m) for m in sorted(sets[3]))
                raise CronError(
                    f"cron: {expression!r} never fires: day-of-month {parts[2]} does not occur in month {months}"
                )
        unix_expression = " ".join(rendered)
        try:
            template = croniter(unix_expression, datetime(2000, 1, 1), day_or=day_or)
        except CroniterError as exc:  # pragma: no cover - the field parser is stricter than croniter
            raise CronError(f"cron: {expression!r}: {exc}") from None
        schedule = cls(
            expression=expression, timezone=zone.key, dialect=dialect, unix_expression=unix_expression, day_or=day_or
        )
        schedule.__dict__["_template"] = template  # the validation's expansion is the template (`_template`)
        return schedule

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def _template(self) -> croniter:
        """The expression expanded once: croniter's constructor (the expansion) is most of a fire-time
        computation, and jitter and lists need several per decision."""
        return croniter(self.unix_expression, datetime(2000, 1, 1), day_or=self.day_or)

    def _iter(self, wall: datetime) -> croniter:
        """A croniter at naive `wall`: the expanded template copied (it does not depend on the start time
        unless `expand_from_start_time`, not used here), set to `wall` as its constructor would."""
        it = copy.copy(self._template)
        it.set_current(wall, force=True)
        return it

    def next_fire(self, after: datetime) -> datetime | None:
        """The first fire time strictly after `after` (aware), as aware UTC; None if it never fires again."""
        after = _aware(after, "after").astimezone(UTC)
        wall = after.astimezone(self.zone).replace(tzinfo=None, fold=0)
        it = self._iter(wall)
        for _ in range(MAX_SKIPS):
            try:
                candidate = it.get_next(datetime)
            except CroniterBadDateError:
                return None
            utc = resolve_wall_time(candidate, self.zone)
            if utc is not None and utc > after:
                return utc
        return None  # pragma: no cover

    def fire_times(
        self, after: datetime, until: datetime | None = None, *, limit: int | None = None
    ) -> Iterator[datetime]:
        """Fire times in (after, until] in order (aware UTC), at most `limit` of them."""
        after = _aware(after, "after").astimezone(UTC)
        wall = after.astimezone(self.zone).replace(tzinfo=None, fold=0)
        it = self._iter(wall)
        count = skips = 0
        while limit is None or count < limit:
            try:
                candidate = it.get_next(datetime)
            except CroniterBadDateError:
                return
            utc = resolve_wall_time(candidate, self.zone)
            if utc is None or utc <= after:
                skips += 1
                if skips > MAX_SKIPS:  # pragma: no cover
                    return
                continue
            if until is not None and utc > until:
                return
            after = utc
            count += 1
            yield utc

    def fire_times_backwards(
        self, before: datetime, not_before: datetime | None = None, *, limit: int | None = None
    ) -> Iterator[datetime]:
        """Fire times strictly before `before` and strictly after `not_before`, latest first."""
        before = _aware(before, "before").astimezone(UTC)
        local = before.astimezone(self.zone)
        wall = local.replace(tzinfo=None, fold=0)
        if local.fold == 1:
            # `before` is in the second pass through an overlap: wall times up to the first-pass reading of the
            # same instant are earlier instants (the first pass), so the backwards walk starts from there.
            wall += local.replace(fold=0).utcoffset() - local.utcoffset()
        it = self._iter(wall + timedelta(microseconds=1))
        count = skips = 0
        while limit is None or count < limit:
            try:
                candidate = it.get_prev(datetime)
            except CroniterBadDateError:
                return
            if candidate.year < 1971:
                return
            # Wall time -> UTC (first occurrence) is monotonic, so the walk yields descending instants.
            utc = resolve_wall_time(candidate, self.zone)
            if utc is None or utc >= before:
                skips += 1
                if skips > MAX_SKIPS:  # pragma: no cover
                    return
                continue
            if not_before is not None and utc <= not_before:
                return
            before = utc
            count += 1
            yield utc

    def preview(self, n: int, after: datetime) -> list[dict[str, str]]:
        """The next `n` fire times after `after`: `{"utc": "...Z", "local": "...+01:00"}` each."""
        return [
            {"utc": t.strftime("%Y-%m-%dT%H:%M:%SZ"), "local": t.astimezone(self.zone).isoformat(timespec="seconds")}
            for t in self.fire_times(after, limit=max(0, n))
        ]


def parse_cron(expression: str, timezone: str | None = "UTC", dialect: str | None = "unix") -> CronSchedule:
    return CronSchedule.parse(expression, timezone, dialect)


# ---- several expressions: the union of their fire times -------------------------------------------------------
MAX_EXPRESSIONS = 20  # expressions in one schedule's `cron` list


@dataclass(frozen=True)
class Fire:
    """One fire time of a schedule. `nominal` is the cron time (the fire's identity: a run is started once per
    nominal time); `at` is when it is due, `nominal` shifted by the schedule's jitter (`at == nominal` without
    jitter); `expression` is the cron expression it comes from (the first in list order when several share it)."""

    at: datetime
    nominal: datetime
    expression: str


@dataclass(frozen=True)
class CronSet(_Backwards):
    """One or several cron expressions in one zone and dialect: fire times are the union of theirs, a time
    two of them share fires once. With one expression it behaves exactly as that `CronSchedule`.

    `expression` is what was given: a string, or the list (for a list of one too)."""

    schedules: tuple[CronSchedule, ...]
    expression: str | tuple[str, ...]

    @classmethod
    def parse(
        cls, expression: str | list[str] | tuple[str, ...], timezone: str | None = "UTC", dialect: str | None = "unix"
    ) -> CronSet:
        """A string or a list of 1..MAX_EXPRESSIONS strings; CronError names the failing item (`cron[1] ...`)."""
        if isinstance(expression, str):
            return cls((CronSchedule.parse(expression, timezone, dialect),), expression)
        if not isinstance(expression, (list, tuple)):
            raise CronError(f"cron: {expression!r} is neither a cron string nor a list of cron strings")
        if not expression:
            raise CronError("cron: an empty list; give at least one expression such as '0 8 * * 1-5'")
        if len(expression) > MAX_EXPRESSIONS:
            raise CronError(f"cron: a list of {len(expression)} expressions; at most {MAX_EXPRESSIONS}")
        schedules = []
        for i, item in enumerate(expression):
            if not isinstance(item, str):
                raise CronError(f"cron[{i}]: {item!r} is not a cron string")
            try:
                schedules.append(CronSchedule.parse(item, timezone, dialect))
            except CronError as exc:
                message = str(exc)
                if message.startswith("weekdayDialect"):
                    raise
                raise CronError(f"cron[{i}]" + message[len("cron") :]) from None
        return cls(tuple(schedules), tuple(expression))

    @property
    def expressions(self) -> tuple[str, ...]:
        return tuple(s.expression for s in self.schedules)

    @property
    def shown(self) -> str | list[str]:
        """The expression as stored and shown (a list as a JSON list)."""
        return self.expression if isinstance(self.expression, str) else list(self.expression)

    @property
    def timezone(self) -> str:
        return self.schedules[0].timezone

    @property
    def dialect(self) -> str:
        return self.schedules[0].dialect

    @property
    def zone(self) -> ZoneInfo:
        return self.schedules[0].zone

    def which(self, fire: datetime) -> str:
        """The first expression (in list order) that fires at `fire` (a fire time of this set)."""
        if len(self.schedules) > 1:
            for s in self.schedules:
                if s.last_fire_at_or_before(fire) == fire:
                    return s.expression
        return self.schedules[0].expression

    def next_fire(self, after: datetime) -> datetime | None:
        times = [t for t in (s.next_fire(after) for s in self.schedules) if t is not None]
        return min(times, default=None)

    def fire_times(
        self, after: datetime, until: datetime | None = None, *, limit: int | None = None
    ) -> Iterator[datetime]:
        """Fire times in (after, until] in order, each once, at most `limit`."""
        if len(self.schedules) == 1:
            yield from self.schedules[0].fire_times(after, until, limit=limit)
            return
        merged = heapq.merge(*(s.fire_times(after, until) for s in self.schedules))
        yield from itertools.islice(_distinct(merged), limit)

    def fire_times_backwards(
        self, before: datetime, not_before: datetime | None = None, *, limit: int | None = None
    ) -> Iterator[datetime]:
        """Fire times strictly before `before` and strictly after `not_before`, latest first, each once."""
        if len(self.schedules) == 1:
            yield from self.schedules[0].fire_times_backwards(before, not_before, limit=limit)
            return
        merged = heapq.merge(*(s.fire_times_backwards(before, not_before) for s in self.schedules), reverse=True)
        yield from itertools.islice(_distinct(merged), limit)

    def preview(self, n: int, after: datetime) -> list[dict[str, str]]:
        return [
            {"utc": t.strftime("%Y-%m-%dT%H:%M:%SZ"), "local": t.astimezone(self.zone).isoformat(timespec="seconds")}
            for t in self.fire_times(after, limit=max(0, n))
        ]


def _distinct(times: Iterator[datetime]) -> Iterator[datetime]:
    """Drop repeats from a sorted stream (a time two expressions share)."""
    last = None
    for t in times:
        if t != last:
            yield t
        last = t


# ---- jitter -----------------------------------------------------------------------------------------------
MAX_JITTER_SECONDS = 86_400  # a day


def jitter_offset(seed: str, nominal: datetime, jitter_seconds: int, gap_seconds: float | None) -> int:
    """Seconds to shift the fire at `nominal` by: a number in [0, jitter_seconds] taken from a hash of (seed,
    nominal), so every host computes the same; below `gap_seconds` (the time to the next nominal fire), so that a
    fire never passes the next one and fire order is kept. None: no next fire."""
    bound = jitter_seconds if gap_seconds is None else min(jitter_seconds, math.ceil(gap_seconds) - 1)
    if bound <= 0:
        return 0
    digest = hashlib.sha256(f"{seed}|{nominal.astimezone(UTC).isoformat()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (bound + 1)
