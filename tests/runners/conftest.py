"""Fixtures for the runner tests: replaced clock, ARM and Radix stand-ins, a real podman engine."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from azure.core.credentials import AccessToken

from shared.platform import clock
from shared.platform.clock import ManualClock, SystemClock
from tests.standins.arm import ArmStandIn
from tests.standins.radix import RadixStandIn

ROOT = Path(__file__).resolve().parents[2]
PODMAN_ENV = ROOT / ".work" / "podman.env"
TEST_IMAGE = "localhost/busybox:test"
SECRET = "s3cr3t-Value-never-shown"


class StaticTokenCredential:
    """A TokenCredential that returns a fixed token (the ARM stand-in only checks that one is sent)."""

    def __init__(self, token: str = "fixed-test-token"):
        self.token = token
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)


@pytest.fixture
def manual_clock():
    previous = clock.get_clock()
    manual = ManualClock()
    clock.set_clock(manual)
    yield manual
    clock.set_clock(previous if not isinstance(previous, ManualClock) else SystemClock())


@pytest.fixture
def arm(manual_clock, monkeypatch):
    server = ArmStandIn().start()
    monkeypatch.setenv("AZURE_RESOURCE_MANAGER_URL", server.url)
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "00000000-0000-0000-0000-0000000000aa")
    monkeypatch.setenv("ACI_RESOURCE_GROUP", "rg-jobs")
    monkeypatch.setenv("ACI_LOCATION", "norwayeast")
    for name in (
        "ACI_REGISTRY_SERVER",
        "ACI_JOB_IDENTITY_ID",
        "ACI_REGISTRY_USERNAME",
        "ACI_REGISTRY_PASSWORD",
        "ACI_KEEP_FAILED_GROUPS",
        "OMNIA_SUBNET_ID",
        "OMNIA_LOG_ANALYTICS_WORKSPACE_ID",
        "OMNIA_LOG_ANALYTICS_WORKSPACE_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    yield server
    server.stop()


@pytest.fixture
def credential():
    return StaticTokenCredential()


@pytest.fixture
def radix(manual_clock, monkeypatch):
    server = RadixStandIn().start()
    monkeypatch.setenv("RADIX_SCHEDULER_URL_TEMPLATE", "http://127.0.0.1:{schedulerPort}")
    yield server
    server.stop()


def _read_env_file() -> dict[str, str]:
    values = {}
    if PODMAN_ENV.exists():
        for line in PODMAN_ENV.read_text().splitlines():
            if "=" in line:
                key, value = line.split("=", 1)
                values[key.strip()] = value.strip()
    return values


def _socket_alive(docker_host: str) -> bool:
    if not docker_host.startswith("unix://"):
        return False
    path = docker_host[len("unix://") :]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(path)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
            return b" 200 " in sock.recv(64)
    except OSError:
        return False


@pytest.fixture(scope="session")
def podman_host() -> str:
    """DOCKER_HOST of a running podman service with the offline test image; started by scripts/setup_podman.sh
    when podman is installed but not serving. Skips (not under CI) or fails (CI set) when there is none."""
    host = _read_env_file().get("DOCKER_HOST", "")
    if not _socket_alive(host) and shutil.which("podman") and os.geteuid() == 0:
        subprocess.run(
            [str(ROOT / "scripts" / "setup_podman.sh")],
            check=False,
            timeout=300,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        host = _read_env_file().get("DOCKER_HOST", "")
    if not _socket_alive(host):
        reason = (
            "no podman Docker API socket (.work/podman.env): run scripts/setup_podman.sh as root to install "
            "podman and start its service"
        )
        if os.environ.get("CI"):
            pytest.fail(reason + " [CI is set: local container tests must run]")
        pytest.skip(reason)
    return host


@pytest.fixture
def docker_env(podman_host, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", podman_host)
    monkeypatch.setenv("ENABLE_LOCAL_RUNNERS", "true")
    return podman_host


@pytest.fixture(scope="session")
def docker_client(podman_host):
    import docker

    client = docker.DockerClient(base_url=podman_host, version="1.41")
    yield client
    client.close()
