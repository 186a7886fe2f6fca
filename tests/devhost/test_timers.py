"""Virtual time: advance() fires durable timers and timer triggers in order; settings resolution."""

from __future__ import annotations

import os
import time

from shared.platform import clock as shared_clock


def test_advance_fires_timer_triggers_and_durable_timers_in_order(host, clock, sample_app):
    assert shared_clock.now() == clock.now()  # the app's clock is the host's clock
    client = host.client()
    iid = host.run(client.start_new("approval", None, {"timeout": 420}))
    host.wait_idle(10)
    host.advance(16 * 60)
    assert [t["at"] for t in sample_app.TICKS] == [
        "2026-01-01T00:05:00+00:00",
        "2026-01-01T00:10:00+00:00",
        "2026-01-01T00:15:00+00:00",
    ]
    assert not any(t["past_due"] for t in sample_app.TICKS)
    status = host.engine.status(iid)
    assert status["output"] == {"result": "timeout"}
    assert status["lastUpdatedTime"] == "2026-01-01T00:07:00Z"  # fired exactly at its time, between ticks
    assert clock.now().isoformat() == "2026-01-01T00:16:00+00:00"


def test_process_environment_wins_over_local_settings(make_host, monkeypatch, sample_app):
    monkeypatch.setenv("SCHEDULE_TICK", "*/30 * * * * *")
    host = make_host()
    assert os.environ["SAMPLE_ONLY_IN_FILE"] == "from-file"
    host.advance(95)
    assert [t["at"][11:19] for t in sample_app.TICKS] == ["00:00:30", "00:01:00", "00:01:30"]
    host.stop()
    assert "SAMPLE_ONLY_IN_FILE" not in os.environ  # the host restores what it set


def test_settings_argument_and_system_clock(make_host, sample_app):
    make_host(clock=shared_clock.SystemClock(), settings={"SCHEDULE_TICK": "* * * * * *"})
    deadline = time.monotonic() + 5
    while len(sample_app.TICKS) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(sample_app.TICKS) >= 2
