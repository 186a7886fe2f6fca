"""Session-wide fixtures: one real Azurite for the whole run, a fresh table/blob prefix per test."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.azurite import start_azurite  # noqa: E402


@pytest.fixture(scope="session")
def azurite():
    server = start_azurite()
    yield server
    server.stop()


@pytest.fixture
def storage_env(azurite, monkeypatch):
    """Point the app's settings at Azurite with a prefix unique to this test (tables and containers)."""
    prefix = "t" + uuid.uuid4().hex[:10]
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("JOB_STORE_PREFIX", prefix)
    monkeypatch.setenv("JOB_ORCHESTRATION_STORE_PREFIX", prefix + "h")
    monkeypatch.setenv("ENABLE_LOCAL_RUNNERS", "true")
    yield prefix
