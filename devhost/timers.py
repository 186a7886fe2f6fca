"""Timer triggers: 6-field NCRONTAB schedules fired on the host's clock, one host per occurrence.

Local/test host only. As the Functions host: the schedule may be `%SETTING%` (resolved from app settings), times
are UTC, the function receives a `TimerRequest` (`past_due`, `schedule_status` with Last/Next/LastUpdated), and
only one host sharing the storage fires a given occurrence (an ETag-conditional claim row in storage, the way
the real host's singleton lock keeps timer triggers from running twice). Failures are logged, never retried.
If the clock jumped over several occurrences (a sleeping laptop, a long `advance` step) the function runs once
with `past_due=True`, as with `useMonitor`.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from azure.functions.timer import TimerRequest
from croniter import croniter

from .functions import FunctionInfo, build_kwargs, call_sync
from .settings import resolve

log = logging.getLogger("devhost.timers")


@dataclass
class _Schedule:
    info: FunctionInfo
    expression: str
    next_fire: datetime
    last: datetime | None = None
    run_on_startup: bool = False

    def after(self, when: datetime) -> datetime:
        return croniter(self.expression, when, second_at_beginning=True).get_next(datetime)


def parse_schedule(expression: str) -> str:
    """Validate a 6-field NCRONTAB expression (seconds first); TimeSpan schedules (`00:05:00`) are refused."""
    fields = expression.split()
    if len(fields) != 6:
        raise ValueError(f"timer schedule '{expression}' must have 6 fields (second minute hour day month weekday)")
    croniter(expression, datetime(2026, 1, 1, tzinfo=timezone.utc), second_at_beginning=True)
    return expression


class TimerTriggers:
    """All timer-triggered functions of the app; `fire_due()` runs what is due on the clock."""

    def __init__(
        self,
        functions: list[FunctionInfo],
        clock,
        tracker,
        store=None,
        owner: str = "devhost",
        workers: int = 4,
        client_binding=None,
        worker=None,
    ):
        self.clock = clock
        self.worker = worker  # the worker's pool (worker.py); None: call in the timer thread
        self.client_binding = client_binding or (lambda: "{}")
        self.tracker = tracker
        self.store = store
        self.owner = owner
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="devhost-timer")
        now = clock.now()
        self.schedules: list[_Schedule] = []
        for info in functions:
            expression = parse_schedule(resolve(info.trigger.get("schedule")))
            s = _Schedule(info, expression, now, run_on_startup=bool(info.trigger.get("runOnStartup")))
            s.next_fire = now if s.run_on_startup else s.after(now)
            self.schedules.append(s)

    def next_due(self) -> datetime | None:
        return min((s.next_fire for s in self.schedules), default=None)

    def fire_due(self) -> int:
        now = self.clock.now()
        fired = 0
        for s in self.schedules:
            if s.next_fire > now:
                continue
            scheduled = s.next_fire
            following = s.after(scheduled)
            past_due = following <= now  # at least one later occurrence was missed as well
            s.next_fire = s.after(now) if past_due else following
            if self.store is not None and not s.run_on_startup:
                try:
                    if not self.store.claim_occurrence(s.info.name, scheduled.isoformat(), self.owner):
                        continue
                except Exception:  # noqa: BLE001 - storage trouble must not stop the schedule
                    log.exception("timer claim for %s failed; firing anyway", s.info.name)
            s.run_on_startup = False
            status = {
                "Last": (s.last or scheduled).isoformat(),
                "Next": s.next_fire.isoformat(),
                "LastUpdated": now.isoformat(),
            }
            s.last = scheduled
            request = TimerRequest(past_due=past_due, schedule_status=status, schedule={"AdjustForDST": True})
            self.tracker.inc()
            try:
                self._pool.submit(self._run, s.info, request)
            except RuntimeError:
                self.tracker.dec()
                continue
            fired += 1
        return fired

    def _run(self, info: FunctionInfo, request) -> None:
        try:
            values = {info.trigger.get("name"): request}
            client = info.binding("durableClient")
            if client:  # a timer function may start orchestrations, as on the real host
                values[client["name"]] = self.client_binding()
            if self.worker is not None:
                self.worker.invoke(info, build_kwargs(info, values))
            else:
                call_sync(info, build_kwargs(info, values))
        except Exception:  # noqa: BLE001 - the real host logs a failed timer run and waits for the next one
            log.exception("timer function %s failed", info.name)
        finally:
            self.tracker.dec()

    def stop(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def seconds_until(when: datetime | None, now: datetime, cap: float) -> float:
    if when is None:
        return cap
    return max(0.0, min(cap, (when - now) / timedelta(seconds=1)))
