"""Outages on demand: an Azurite of a test's own that can be stopped and started again on the same ports and data.

The session's Azurite (tests/conftest.py) is shared by every test, so it must never go down; a test that takes
storage away starts this one instead. `stop()` ends Azurite the way an operator would (SIGTERM: it saves its
data and closes its ports, so clients get "connection refused"); `start()` brings it back on the same ports over
the same directory, with every table row and blob it had.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time

from .azurite import Azurite, launch
from .ports import free_port


class RestartableAzurite(Azurite):
    """An Azurite whose outages a test controls; `close()` removes its data for good."""

    def __init__(self) -> None:
        directory = tempfile.mkdtemp(prefix="azurite-outage-")
        ports = [free_port(), free_port(), free_port()]
        super().__init__(launch(directory, ports), directory, *ports)
        self.outages: list[tuple[float, float]] = []  # (stopped, started again) on time.monotonic()

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Storage goes away (its data kept)."""
        if not self.running:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.outages.append((time.monotonic(), float("nan")))

    def start(self) -> None:
        """Storage comes back: same ports, same data."""
        if self.running:
            return
        self.process = launch(self.directory, [self.blob_port, self.queue_port, self.table_port])
        if self.outages:
            self.outages[-1] = (self.outages[-1][0], time.monotonic())

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
