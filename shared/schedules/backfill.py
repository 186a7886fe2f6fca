"""Backfill and run-now: the queue of fire times a user asked for, kept in the schedule's state. PURE.

A backfill of `[from, to]` does not store its fire times one by one (1,000 ISO times would not fit the table
cell the schedule lives in): the queue is a few segments "fire times after A up to B", walked with the
schedule's own `next_fire`, so a request of any length costs two timestamps. `covered` keeps, as merged
intervals, every time a backfill has queued or run, so that a re-sent or overlapping request queues only the
times it adds; a time the tick already ran is found in the run history (and by the start's idempotency key,
the same `schedule <uid> <time>` the tick uses) and counted as `alreadyRan` instead of started again.

Starting follows the tick's protocol (shared/schedules/tick.py): a claim, written with the schedule's ETag,
names the time, the claimer and a lease; the run is started (idempotent on the claim); the finalize write
records the run and drops the claim. A claim whose lease ran out (its starter died) is taken over and started
again, which the idempotency turns into "the same run". A manual run ("Run now") is a claim too, of kind
`manual`, keyed by the caller's Idempotency-Key, so a retried request finds its claim or its run.

Everything here is a function of the record (or the `Backfill` value) it is given; shared/schedules/runs.py
does the reads, writes and starts.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, ClassVar, Mapping

from shared.jobs.record import JobRecord
from shared.platform.errors import ApiError, Conflict
from shared.schedules.history import refresh_runs
from shared.schedules.policy import FINAL_STATUSES, iso, parse_iso, run_entry
from shared.schedules.state import Lifecycle, ScheduleRecord

STATE_KEY = "backfill"  # the key of the backfill queue in the schedule's state (ScheduleRecord.extra)
MAX_PER_REQUEST = 1000  # fire times one backfill request may ask for (more: 422 naming the bound)
ALLOW_CAP = 10  # concurrencyPolicy Allow: backfill runs going at once
MAX_COVERED = 50  # disjoint intervals remembered in `covered`; the oldest beyond are forgotten
MAX_SEGMENTS = 50  # queued segments (disjoint pieces of requests not yet started)
MAX_REQUESTS_SHOWN = 10
MAX_START_ATTEMPTS = 3  # transient start failures retried before the time is recorded as failed to start
ONE_SECOND = timedelta(seconds=1)
REFRESH_AFTER = timedelta(seconds=60)  # a step asks the job store about a run once it is this old (see below)

NextFire = Callable[[datetime], "datetime | None"]
StatusOf = Callable[[str], "str | None"]


# ---- the stored shape --------------------------------------------------------------------------------------
@dataclass
class Claim:
    """A start in progress (exactly once): which time, of which kind, who holds it since when."""

    scheduled: str
    kind: str = "backfill"  # backfill | manual
    claimed_by: str | None = None  # None: released after a transient failure, any step may take it
    claimed_at: str | None = None
    key: str | None = None  # manual: the hashed Idempotency-Key (or a fresh id without one)
    requested_by: str | None = None
    stop: list[str] = field(default_factory=list)  # Replace: runs to stop before this one starts
    attempts: int = 0

    def held(self, now: datetime, lease: timedelta) -> bool:
        claimed_at = parse_iso(self.claimed_at)
        return bool(self.claimed_by) and claimed_at is not None and now - claimed_at < lease

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Claim:
        return cls(
            scheduled=data["scheduled"],
            kind=data.get("kind") or "backfill",
            claimed_by=data.get("claimedBy"),
            claimed_at=data.get("claimedAt"),
            key=data.get("key"),
            requested_by=data.get("requestedBy"),
            stop=list(data.get("stop") or []),
            attempts=int(data.get("attempts") or 0),
        )

    def to_dict(self) -> dict[str, Any]:
        out = {
            "scheduled": self.scheduled,
            "kind": self.kind,
            "claimedBy": self.claimed_by,
            "claimedAt": self.claimed_at,
            "key": self.key,
            "requestedBy": self.requested_by,
            "stop": list(self.stop),
            "attempts": self.attempts,
        }
        return {k: v for k, v in out.items() if v not in (None, [])}

    def same(self, other: Claim) -> bool:
        return (self.scheduled, self.kind, self.key) == (other.scheduled, other.kind, other.key)


@dataclass
class Backfill:
    """The backfill queue of one schedule (`schedule["backfill"]` on the RecurringJob's record)."""

    COUNTS: ClassVar[tuple[str, ...]] = (
        "requested",
        "started",
        "alreadyRan",
        "completed",
        "failed",
        "removed",
        "failedToStart",
        "cancelled",
    )

    queue: list[list[str]] = field(default_factory=list)  # [after, to]: fire times > after and <= to, in order
    claims: list[Claim] = field(default_factory=list)
    running: list[str] = field(default_factory=list)  # uids of backfill runs started and not yet ended
    covered: list[list[str]] = field(default_factory=list)  # [first, last] inclusive, merged, oldest first
    queued: int = 0  # fire times in `queue`
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(Backfill.COUNTS, 0))
    requests: list[dict[str, Any]] = field(default_factory=list)  # the latest few, for the view

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Backfill:
        data = data or {}
        counts = dict.fromkeys(cls.COUNTS, 0)
        counts.update(data.get("counts") or {})
        return cls(
            queue=[list(s) for s in data.get("queue") or []],
            claims=[Claim.from_dict(c) for c in data.get("claims") or []],
            running=list(data.get("running") or []),
            covered=[list(i) for i in data.get("covered") or []],
            queued=int(data.get("queued") or 0),
            counts=counts,
            requests=list(data.get("requests") or []),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "claims": [c.to_dict() for c in self.claims],
            "running": self.running,
            "covered": self.covered,
            "queued": self.queued,
            "counts": self.counts,
            "requests": self.requests,
        }

    @classmethod
    def of(cls, state: ScheduleRecord) -> Backfill:
        return cls.from_dict(state.extra.get(STATE_KEY))

    def save(self, state: ScheduleRecord) -> None:
        state.extra[STATE_KEY] = self.to_dict()

    @property
    def active(self) -> bool:
        """Something left to do: times queued, starts in progress or backfill runs going."""
        return bool(self.queue or self.claims or self.running)

    def count(self, name: str, amount: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + amount

    def view(self, runs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Progress as the schedule's view shows it; with the history's `runs`, runs that ended since the last
        step (the run listener writes their entries at once) count as finished already."""
        if runs is not None and self.running:
            settled = Backfill.from_dict(self.to_dict())
            settle_running(settled, runs)
            return settled.view()
        c = self.counts
        return {
            "queued": self.queued,
            "starting": sum(1 for claim in self.claims if claim.kind == "backfill"),
            "running": len(self.running),
            "started": c["started"],
            "finished": c["completed"] + c["failed"] + c["removed"],
            "alreadyRan": c["alreadyRan"],
            "cancelled": c["cancelled"],
            "counts": dict(c),
            "queue": [{"after": after, "to": to} for after, to in self.queue],
            "requests": list(self.requests),
        }


# ---- intervals of fire times (closed, one-second resolution) ------------------------------------------------
Interval = tuple[datetime, datetime]


def merge(intervals: list[Interval]) -> list[Interval]:
    """The union of closed intervals, adjacent ones (one second apart) joined, in order."""
    out: list[Interval] = []
    for first, last in sorted(intervals):
        if out and first <= out[-1][1] + ONE_SECOND:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


def subtract(interval: Interval, covered: list[Interval]) -> list[Interval]:
    """The parts of `interval` outside every interval of `covered`."""
    pieces = [interval]
    for c_first, c_last in covered:
        rest: list[Interval] = []
        for first, last in pieces:
            if c_last < first or c_first > last:
                rest.append((first, last))
                continue
            if first < c_first:
                rest.append((first, c_first - ONE_SECOND))
            if c_last < last:
                rest.append((c_last + ONE_SECOND, last))
        pieces = rest
    return pieces


def _intervals(raw: list[list[str]]) -> list[Interval]:
    return [(parse_iso(a), parse_iso(b)) for a, b in raw]


def _raw(intervals: list[Interval]) -> list[list[str]]:
    return [[iso(a), iso(b)] for a, b in intervals]


def fire_times(next_fire: NextFire, after: datetime, last: datetime, limit: int) -> list[datetime]:
    """Fire times in (after, last], at most `limit` of them."""
    out: list[datetime] = []
    cursor = after
    while len(out) < limit:
        fire = next_fire(cursor)
        if fire is None or fire > last:
            break
        out.append(fire)
        cursor = fire
    return out


def whole_seconds(first: datetime, last: datetime) -> Interval:
    """[first, last] on whole seconds: first rounded up, last down (fire times have no fractions)."""
    if first.microsecond:
        first = first.replace(microsecond=0) + ONE_SECOND
    return first, last.replace(microsecond=0)


# ---- a request, a cancel --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Queued:
    """What a request added: how many fire times, which ones were already covered, the range."""

    request: str
    times: int  # fire times in the range (Replace: 1, the last)
    added: int  # of them newly queued
    already: int  # already queued or run by an earlier backfill


def too_many(count: int) -> str:
    return f"the range holds more than {MAX_PER_REQUEST} fire times; a backfill may ask for at most {MAX_PER_REQUEST}"


def request(
    bf: Backfill,
    first: datetime,
    last: datetime,
    next_fire: NextFire,
    *,
    policy: str,
    requested_by: str,
    now: datetime,
    request_id: str | None = None,
) -> Queued:
    """Queue the fire times in [first, last] not already covered (Replace: only the last of them).

    Raises ValueError with the bound when the range holds more than MAX_PER_REQUEST fire times, and
    OverflowError when the queue would have too many pieces; `bf` is unchanged then."""
    first, last = whole_seconds(first, last)
    times = fire_times(next_fire, first - ONE_SECOND, last, MAX_PER_REQUEST + 1)
    if len(times) > MAX_PER_REQUEST:
        raise ValueError(too_many(len(times)))
    if policy == "Replace" and times:
        first = times[-1]
        times = times[-1:]
    wanted = (first, last) if policy != "Replace" else (first, first)
    new = subtract(wanted, _intervals(bf.covered)) if times else []
    added = sum(len(fire_times(next_fire, a - ONE_SECOND, b, MAX_PER_REQUEST)) for a, b in new)
    new = [piece for piece in new if fire_times(next_fire, piece[0] - ONE_SECOND, piece[1], 1)]
    if len(bf.queue) + len(new) > MAX_SEGMENTS:
        raise OverflowError(f"more than {MAX_SEGMENTS} separate ranges queued; wait for them or cancel the backfill")
    request_id = request_id or uuid.uuid4().hex[:12]
    bf.queue.extend([iso(a - ONE_SECOND), iso(b)] for a, b in new)
    bf.queue.sort(key=lambda segment: segment[0])
    bf.queued += added
    bf.count("requested", added)
    if new:
        bf.covered = _raw(merge(_intervals(bf.covered) + new)[-MAX_COVERED:])
    bf.requests = (
        bf.requests
        + [
            {
                "id": request_id,
                "from": iso(first),
                "to": iso(last),
                "requestedBy": requested_by,
                "requested": iso(now),
                "times": len(times),
                "queued": added,
            }
        ]
    )[-MAX_REQUESTS_SHOWN:]
    return Queued(request_id, len(times), added, len(times) - added)


def cancel(bf: Backfill, next_fire: NextFire) -> int:
    """Drop the queued times (not those being started or running): they are no longer covered, so a later
    backfill may queue them again. Returns how many were dropped."""
    dropped = bf.queued
    not_run = [(parse_iso(after) + ONE_SECOND, parse_iso(to)) for after, to in bf.queue]
    covered = _intervals(bf.covered)
    for piece in not_run:
        covered = [rest for c in covered for rest in subtract(c, [piece])]
    bf.covered = _raw(merge(covered))
    bf.queue, bf.queued = [], 0
    bf.count("cancelled", dropped)
    return dropped


# ---- what to start now ----------------------------------------------------------------------------------------
def take(bf: Backfill, next_fire: NextFire, n: int, ran: set[str]) -> list[datetime]:
    """Take up to `n` fire times off the queue, oldest first; times in `ran` (ISO; the history's runs) are
    counted as already run instead."""
    out: list[datetime] = []
    while bf.queue and len(out) < n:
        after, to = bf.queue[0]
        fire = next_fire(parse_iso(after))
        if fire is None or fire > parse_iso(to):
            bf.queue.pop(0)
            continue
        bf.queue[0][0] = iso(fire)
        bf.queued = max(0, bf.queued - 1)
        if iso(fire) in ran:
            bf.count("alreadyRan")
            continue
        out.append(fire)
    while bf.queue and _exhausted(bf.queue[0], next_fire):
        bf.queue.pop(0)
    return out


def _exhausted(segment: list[str], next_fire: NextFire) -> bool:
    fire = next_fire(parse_iso(segment[0]))
    return fire is None or fire > parse_iso(segment[1])


def room(policy: str, bf: Backfill, running: list[str], now: datetime, lease: timedelta) -> int:
    """How many backfill runs may start now: Forbid and BufferOne one after another (none while any run of
    the schedule goes on or a start is in progress), Allow up to ALLOW_CAP backfill runs at once, Replace one
    (its queue holds only the last time; it stops the runs going on)."""
    held = sum(1 for c in bf.claims if c.held(now, lease))
    if policy == "Allow":
        return max(0, ALLOW_CAP - len(bf.running) - held)
    if policy == "Replace":
        return 0 if held else 1
    return 0 if running or held else 1


def settle_running(bf: Backfill, runs: list[dict[str, Any]]) -> int:
    """Backfill runs whose history entry has a final status are counted as finished. Returns how many."""
    status = {entry.get("uid"): entry.get("status") for entry in runs if entry.get("uid")}
    finished = 0
    still = []
    for uid in bf.running:
        value = status.get(uid)
        if value in FINAL_STATUSES or value == "unknown":
            bf.count(value if value in ("completed", "failed", "removed") else "failed")
            finished += 1
        else:
            still.append(uid)
    bf.running = still
    return finished


# ---- claim and finalize on the schedule's record ----------------------------------------------------------------
@dataclass
class StepClaim:
    """What one step found and took: the claims it now holds (to start), and what changed."""

    claims: list[Claim] = field(default_factory=list)
    finished: int = 0
    active: bool = False
    changed: bool = False


def usable(record: JobRecord, state: ScheduleRecord | None) -> bool:
    """A schedule still taking runs: not removed or ended (a suspended one takes backfills and manual runs)."""
    return (
        state is not None and state.state not in (Lifecycle.REMOVED, Lifecycle.EXPIRED) and not record.status.is_final
    )


def _refresh_settled(state: ScheduleRecord, status_of: StatusOf, now: datetime) -> None:
    """The history's runs brought up to date, asking the job store only about runs started more than
    REFRESH_AFTER ago: the run listener records a run's end the moment it is written, so a step (one every few
    seconds while a backfill runs) need not read every young run again; the store is the safety net for an end
    the listener missed."""
    young = {
        entry["uid"]: entry.get("status")
        for entry in state.runs
        if entry.get("uid") and (parse_iso(entry.get("started")) or now) > now - REFRESH_AFTER
    }
    refresh_runs(state, lambda uid: young[uid] if uid in young else status_of(uid), now)


def nominal_fires(state: ScheduleRecord) -> NextFire:
    """The schedule's nominal fire times (its cron's, whatever startDate, endDate and jitter say): a backfill
    names the times it wants, and a fire's identity is its nominal time."""
    return state.schedule_spec().cron.next_fire


def claim_step(record: JobRecord, now: datetime, claimer: str, status_of: StatusOf, lease: timedelta) -> StepClaim:
    """One step of a schedule's backfill on `record` as read just now (changes it only when `changed`)."""
    out = StepClaim()
    state = ScheduleRecord.of(record)
    if state is None or STATE_KEY not in state.extra:
        return out
    next_fire = nominal_fires(state)
    bf = Backfill.of(state)
    if not usable(record, state):
        if bf.queue:
            cancel(bf, next_fire)
            bf.save(state)
            state.save(record)
            out.changed = True
        return out
    before = bf.to_dict()
    _refresh_settled(state, status_of, now)
    out.finished = settle_running(bf, state.runs)
    # a manual claim whose requester went away: dropped (its retry, same key, is the same run all the same)
    bf.claims = [c for c in bf.claims if c.kind == "backfill" or c.held(now, lease)]
    policy = state.schedule_spec().concurrency_policy
    n = room(policy, bf, state.running(), now, lease)
    for c in bf.claims:  # its starter died (lease over) or released it: ours now
        if not c.held(now, lease):
            c.claimed_by, c.claimed_at = claimer, iso(now)
            out.claims.append(c)
    n -= len(out.claims)
    ran = {entry["scheduled"] for entry in state.runs if entry.get("uid") and entry.get("scheduled")}
    stop = state.running() if policy == "Replace" else []
    for fire in take(bf, next_fire, max(0, n), ran):
        c = Claim(iso(fire), "backfill", claimer, iso(now), stop=list(stop))
        bf.claims.append(c)
        out.claims.append(c)
    out.active = bf.active
    if bf.to_dict() != before or out.finished:
        bf.save(state)
        state.save(record)
        out.changed = True
    return out


@dataclass(frozen=True)
class Started:
    """What became of one claimed start."""

    claim: Claim
    run_uid: str | None = None
    failure: Exception | None = None
    stopped: tuple[str, ...] = ()


def finalize(record: JobRecord, results: list[Started], claimer: str, now: datetime) -> bool:
    """Record the starts in the history and drop their claims (claims taken over meanwhile are left alone).
    Returns whether `record` changed."""
    state = ScheduleRecord.of(record)
    if state is None:
        return False
    bf = Backfill.of(state)
    changed = False
    for result in results:
        held = next((c for c in bf.claims if c.same(result.claim) and c.claimed_by == claimer), None)
        if held is None:
            continue
        changed = True
        for entry in state.runs:
            if entry.get("uid") in result.stopped:
                entry["stoppedBy"] = f"concurrencyPolicy Replace ({held.kind} run for {held.scheduled})"
        if result.failure is not None and _release(held, result.failure):
            continue
        bf.claims.remove(held)
        _record(state, bf, held, result, now)
    if changed:
        state.fit(state.schedule_spec())
        bf.save(state)
        state.save(record)
    return changed


def _release(claim: Claim, failure: Exception) -> bool:
    transient = not isinstance(failure, ApiError) or failure.status >= 500
    claim.attempts += 1
    if transient and claim.attempts < MAX_START_ATTEMPTS:
        claim.claimed_by = None
        return True
    return False


def _record(state: ScheduleRecord, bf: Backfill, claim: Claim, result: Started, now: datetime) -> None:
    scheduled = parse_iso(claim.scheduled)
    extra = {"trigger": claim.kind, "requestedBy": claim.requested_by, "requestKey": claim.key}
    spec = state.schedule_spec()
    if claim.kind == "backfill" and spec.listed:  # a list of expressions: which one has this fire time
        extra["expression"] = spec.cron.which(scheduled)
    if result.failure is not None:
        reason = f"could not start: {type(result.failure).__name__}: {str(result.failure)[:200]}"
        state.runs.append(run_entry(None, scheduled, "failed", ended=now, reason=reason, **extra))
        state.consecutive_failures += 1
        if claim.kind == "backfill":
            bf.count("failedToStart")
        return
    if any(entry.get("uid") == result.run_uid for entry in state.runs):
        if claim.kind == "backfill":
            bf.count("alreadyRan")  # the tick's run of this time (the same idempotency key)
        return
    state.runs.append(run_entry(result.run_uid, scheduled, "starting", started=now, **extra))
    state.runs.sort(key=lambda e: e.get("scheduled") or e.get("before") or "")
    if claim.kind == "backfill":
        bf.running.append(result.run_uid)
        bf.count("started")


# ---- run now ------------------------------------------------------------------------------------------------------
def request_key(requester: str | None, idempotency_key: str | None) -> str | None:
    """A caller's Idempotency-Key as kept in the schedule's state (hashed with who sent it: the same key from
    two callers is two requests)."""
    if not idempotency_key:
        return None
    return hashlib.sha256(f"{requester or ''}\n{idempotency_key}".encode()).hexdigest()[:32]


@dataclass
class ManualClaim:
    """What a Run now claim found: the claim to start, or the run an earlier request with its key started."""

    claim: Claim | None = None
    existing: str | None = None  # run uid
    existing_status: str | None = None


def claim_manual(
    record: JobRecord,
    now: datetime,
    claimer: str,
    status_of: StatusOf,
    lease: timedelta,
    *,
    key: str | None,
    requested_by: str,
    out: ManualClaim,
) -> bool:
    """Claim a manual run on `record` as read just now, under the schedule's concurrency policy: Forbid and
    BufferOne refuse (409 naming the run) while a run goes on, Replace stops the runs going on, Allow starts.
    Returns whether `record` changed (False: `out.existing` names the run of an earlier request)."""
    out.claim, out.existing, out.existing_status = None, None, None
    state = ScheduleRecord.of(record)
    if not usable(record, state):
        raise Conflict(f"recurring job {record.uid} has ended or was removed: it starts no runs")
    bf = Backfill.of(state)
    if key:
        earlier = next((e for e in state.runs if e.get("requestKey") == key and e.get("uid")), None)
        if earlier is not None:
            out.existing, out.existing_status = earlier["uid"], earlier.get("status")
            return False
        pending = next((c for c in bf.claims if c.kind == "manual" and c.key == key), None)
        if pending is not None:
            if pending.held(now, lease):
                raise Conflict(
                    f"a run with this Idempotency-Key is being started ({pending.scheduled}); ask again shortly",
                    headers={"Retry-After": "5"},
                )
            pending.claimed_by, pending.claimed_at = claimer, iso(now)
            out.claim = pending
            bf.save(state)
            state.save(record)
            return True
    refresh_runs(state, status_of, now)
    policy = state.schedule_spec().concurrency_policy
    running = state.running()
    if policy not in ("Allow", "Replace") and running:
        raise Conflict(
            f"concurrencyPolicy {policy}: run {running[-1]} of recurring job {record.uid} is in progress",
            data={"run": running[-1], "concurrencyPolicy": policy},
        )
    if policy not in ("Allow", "Replace") and any(c.held(now, lease) for c in bf.claims):
        raise Conflict(
            f"concurrencyPolicy {policy}: a run of recurring job {record.uid} is being started",
            headers={"Retry-After": "5"},
        )
    out.claim = Claim(
        iso(now),
        "manual",
        claimer,
        iso(now),
        key=key or uuid.uuid4().hex[:32],
        requested_by=requested_by,
        stop=running if policy == "Replace" else [],
    )
    bf.claims.append(out.claim)
    bf.save(state)
    state.save(record)
    return True
