"""Fixtures for the devhost tests: a DevHost over the sample app, real Azurite, a ManualClock."""

from __future__ import annotations

from pathlib import Path

import pytest

from devhost import DevHost
from devhost.functions import load_module
from shared.platform.clock import ManualClock

SAMPLE_APP = Path(__file__).resolve().parent / "sample_app"


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def make_host(storage_env, clock):
    """Factory: DevHost(**kwargs) over the sample app, stopped at the end of the test."""
    hosts = []

    def make(**kwargs):
        kwargs.setdefault("app_dir", SAMPLE_APP)
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("poll_interval", 0.2)
        host = DevHost(**kwargs)
        host.start()
        hosts.append(host)
        return host

    yield make
    for host in reversed(hosts):
        host.stop()


@pytest.fixture
def host(make_host):
    return make_host()


@pytest.fixture
def sample_app():
    # Loaded from its folder, not imported by name: the real app's module is also named `function_app` (tests/e2e
    # and tests/unit load it in the same session); devhost.functions.load_module gives the sample's either way.
    function_app = load_module(SAMPLE_APP)

    function_app.TICKS.clear()
    function_app.ACTIVITY_CALLS.clear()
    function_app.THREADS.clear()
    function_app.RUNNING[:] = [0, 0]
    function_app.GATE.clear()
    function_app.SLEEPY_RELEASE.clear()
    yield function_app
    function_app.GATE.set()
    function_app.SLEEPY_RELEASE.set()
