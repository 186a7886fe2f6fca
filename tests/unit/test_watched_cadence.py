"""The watched cadence (shared/jobs/polling.py): pure, decided from the orchestration's state and its clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from shared.jobs.polling import WATCHED_WINDOWS, PollPolicy, mark_polled

T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=timezone.utc)
POLICY = PollPolicy(1, 60, 2, watched=5)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_unwatched_the_backoff_alone_decides():
    state = {"interval": 60.0}
    mark_polled(state, T0)
    assert POLICY.next_wait(state, T0) == 60.0


def test_a_wake_a_window_after_the_last_poll_polls_now_and_keeps_a_window_cadence():
    state = {"interval": 60.0}
    mark_polled(state, T0)
    assert POLICY.woken(state, at(30))  # the last poll is 30 s old: poll now
    mark_polled(state, at(30))
    assert POLICY.next_wait(state, at(30)) == 5.0  # watched: the next poll a window later, not 60 s
    assert POLICY.next_wait(state, at(30 + 5 * WATCHED_WINDOWS)) == 60.0  # nobody woke it since: the backoff


def test_a_wake_within_a_window_of_a_poll_waits_for_the_window():
    state = {"interval": 60.0}
    mark_polled(state, T0)
    POLICY.woken(state, at(10))
    mark_polled(state, at(10))
    assert not POLICY.woken(state, at(12))  # a hundred readers' wakes: still one poll per window
    assert POLICY.next_wait(state, at(12)) == 3.0


def test_the_backoff_below_a_window_is_kept():
    state = {"interval": 2.0}
    mark_polled(state, T0)
    POLICY.woken(state, at(0.5))
    assert POLICY.next_wait(state, at(0.5)) == 1.5


def test_instances_from_before_the_cadence_poll_at_every_wake():
    old = PollPolicy.from_dict({"minimum": 1, "maximum": 60, "factor": 2})  # no "watched": started earlier
    state = {"interval": 60.0}
    mark_polled(state, T0)
    assert old.woken(state, at(1)) and "watchedUntil" not in state
    assert PollPolicy.from_dict(POLICY.as_dict()) == POLICY
