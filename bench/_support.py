"""Shared set-up for benchmarks: a private Azurite and settings for the app under the local host."""

from __future__ import annotations

import os
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.azurite import start_azurite  # noqa: E402


@contextmanager
def azurite_env(**settings: str):
    """Start Azurite on free ports and point the app's settings at it (unique table prefix)."""
    server = start_azurite()
    prefix = "b" + uuid.uuid4().hex[:8]
    values = {
        "AzureWebJobsStorage": server.connection_string,
        "JOB_STORE_PREFIX": prefix,
        "JOB_ORCHESTRATION_STORE_PREFIX": prefix + "h",
        "ENABLE_LOCAL_RUNNERS": "true",
        "SCHEDULE_TICK": "0 * * * * *",
        **settings,
    }
    previous = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield server
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]
