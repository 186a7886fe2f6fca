"""A third-party runner module is loaded through JOB_RUNNER_MODULES, next to the built-ins."""

from __future__ import annotations

import pytest

from runners import registry
from runners.base import ConfigError, JobSpec
from shared.jobs.status import JobStatus


@pytest.fixture
def fresh_registry(monkeypatch):
    monkeypatch.setenv("JOB_RUNNER_MODULES", "examples.third_party_runner")
    registry.reset_default_registry()
    yield registry.default_registry()
    registry.reset_default_registry()


def test_example_runner_loads_via_job_runner_modules(fresh_registry, manual_clock):
    runner = fresh_registry.get("dmss://Example/Blueprints/Echo")
    assert type(runner).__name__ == "EchoRunner"
    assert fresh_registry.get("dmss://Example/Blueprints/Echo") is runner  # created once
    with pytest.raises(ConfigError, match="runner.message"):
        runner.validate({"type": "dmss://Example/Blueprints/Echo"})
    handle = runner.start(
        JobSpec("u1", {"type": "dmss://Example/Blueprints/Echo", "message": "hi", "seconds": 5}, {}, 60)
    )
    assert runner.status(handle).state == JobStatus.RUNNING
    manual_clock.advance(5)
    assert runner.status(handle).state == JobStatus.COMPLETED
    assert runner.result(handle) == "hi"


def test_builtin_runners_are_registered(fresh_registry):
    types = fresh_registry.types()
    for name in (
        "dmss://WorkflowDS/Blueprints/LocalContainer",
        "dmss://WorkflowDS/Blueprints/AzureContainer",
        "dmss://WorkflowDS/Blueprints/OmniaClassicAzureContainer",
        "dmss://DMT-Internal/DMT/AzureContainerInstanceJobClassic",
        "dmss://WorkflowDS/Blueprints/Radix",
    ):
        assert name in types
    assert type(fresh_registry.get("JOBCORE:AzureContainer")).__name__ == "AzureContainerRunner"
    assert (
        type(fresh_registry.get("DMT-Internal/DMT/AzureContainerInstanceJobClassic")).__name__ == "OmniaClassicRunner"
    )
