"""Fixtures for the DMSS tests: a stand-in DMSS per test, its settings, tokens and a manual clock."""

from __future__ import annotations

import pytest

from shared.platform import clock as app_clock
from shared.dmss import client as dmss_client
from tests.standins.dmss import DmssStandIn, TokenInfo, make_jwt

CANARY = "DMSS_canary0123456789abcdefSECRET"


@pytest.fixture
def dmss(monkeypatch):
    """A running stand-in DMSS with data source `DS`; DMSS_URL points at it (PUBLIC_DMSS_URL unset)."""
    server = DmssStandIn().start()
    server.add_data_source("DS")
    monkeypatch.setenv("DMSS_URL", server.url)
    monkeypatch.delenv("PUBLIC_DMSS_URL", raising=False)
    monkeypatch.delenv("DMSS_APP_ACCESS_KEY", raising=False)
    monkeypatch.setenv("DMSS_TIMEOUT_SECONDS", "2")
    yield server
    server.stop()
    dmss_client.reset_session()


@pytest.fixture
def token(dmss):
    """A valid job token (personal access token) for subject `alice`."""
    return dmss.issue_token(subject="alice", ttl_seconds=3600)


@pytest.fixture
def jwt_token():
    return make_jwt("alice")


@pytest.fixture
def manual_clock():
    """The app clock replaced by a ManualClock: `sleep` advances it instead of waiting."""
    previous = app_clock.get_clock()
    fake = app_clock.ManualClock()
    app_clock.set_clock(fake)
    yield fake
    app_clock.set_clock(previous)


@pytest.fixture
def canary(dmss):
    """A valid token with a recognisable value: it must never show up in a message, log line or repr."""
    dmss.tokens[CANARY] = TokenInfo("alice", "WRITE", dmss.now() + 3600)
    return CANARY
