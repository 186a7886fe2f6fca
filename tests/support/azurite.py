"""Start a real Azurite (Blob, Queue, Table) on free ports for a test session or a benchmark."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .ports import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def azurite_binary() -> str:
    local = ROOT / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return str(local)
    found = shutil.which("azurite")
    if not found:
        raise RuntimeError("Azurite not installed: run `npm ci` in the project root (scripts/bootstrap.sh does)")
    return found


@dataclass
class Azurite:
    process: subprocess.Popen
    directory: str
    blob_port: int
    queue_port: int
    table_port: int

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.blob_port}/{ACCOUNT};"
            f"QueueEndpoint=http://127.0.0.1:{self.queue_port}/{ACCOUNT};"
            f"TableEndpoint=http://127.0.0.1:{self.table_port}/{ACCOUNT};"
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


def azurite_command(directory: str, ports: list[int]) -> list[str]:
    """Azurite's command line: its data in `directory`, Blob, Queue and Table on `ports` (in that order)."""
    return [
        azurite_binary(),
        "--silent",
        "--location",
        directory,
        "--loose",
        "--skipApiVersionCheck",
        "--disableTelemetry",
        "--blobHost",
        "127.0.0.1",
        "--queueHost",
        "127.0.0.1",
        "--tableHost",
        "127.0.0.1",
        "--blobPort",
        str(ports[0]),
        "--queuePort",
        str(ports[1]),
        "--tablePort",
        str(ports[2]),
    ]


def launch(directory: str, ports: list[int]) -> subprocess.Popen:
    """Start Azurite on `ports` over `directory` and wait until every port listens."""
    process = subprocess.Popen(
        azurite_command(directory, ports), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ}
    )
    for port in ports:
        wait_for_port(port)
    return process


def start_azurite() -> Azurite:
    directory = tempfile.mkdtemp(prefix="azurite-")
    ports = [free_port(), free_port(), free_port()]
    return Azurite(launch(directory, ports), directory, *ports)
