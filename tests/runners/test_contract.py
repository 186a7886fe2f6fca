"""One contract, every runner: start -> running -> completed, failure, stop, time limit, result, cleanup.

Each runner gets an adapter that knows how to express "a job that prints X, writes result Y, exits with code N
after sleeping S" in that runner's configuration, which clock drives it, and how to see what a job left behind.
Real parts: bash processes (shell), podman containers (local container), the real ACI SDK against the ARM
stand-in, HTTP against the Radix scheduler stand-in. Stand-in and simulated runners run on a ManualClock.
"""
from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pytest

from runners.base import JobSpec, Runner, RunnerStatus
from shared.jobs.status import JobStatus

SECRET = "s3cr3t-Value-never-shown"

pytestmark = pytest.mark.timeout(120)


@dataclass
class Job:
    output: str = "hello from the job"
    result: Optional[str] = "result-42"
    exit_code: int = 0
    sleep: float = 1.0


class Adapter:
    name = "?"
    manual = False  # driven by the shared ManualClock (else real time)
    has_log = True
    has_exit_code = True
    has_result = True
    owns_time_limit = False
    step = 0.1

    def __init__(self, request: pytest.FixtureRequest):
        self.request = request
        self.clock = request.getfixturevalue("manual_clock") if self.manual else None

    def runner(self) -> Runner:
        raise NotImplementedError

    def config(self, job: Job) -> dict[str, Any]:
        raise NotImplementedError

    def environment(self, job: Job) -> dict[str, str]:
        return {"SECRET_TOKEN": SECRET}

    def expected_log(self, job: Job) -> str:
        return job.output

    def leftovers(self, handle: dict[str, Any]) -> list[str]:
        return []

    def wait(self, seconds: float) -> None:
        if self.manual:
            self.clock.advance(seconds)
        else:
            time.sleep(seconds)

    def script(self, job: Job, result_target: str) -> str:
        parts = [f"echo '{job.output}'"]
        if job.result is not None:
            parts.append(f"echo '{job.result}' > {result_target}")
        parts += [f"sleep {job.sleep:g}", f"exit {job.exit_code}"]
        return "; ".join(parts)


def _module_runner(module: str) -> type[Runner]:
    mod = pytest.importorskip(module, reason=f"{module} is not written yet")
    return mod.RUNNERS[0]


class ShellAdapter(Adapter):
    name = "shell"

    def __init__(self, request):
        super().__init__(request)
        monkeypatch = request.getfixturevalue("monkeypatch")
        tmp = request.getfixturevalue("tmp_path")
        monkeypatch.setenv("ENABLE_LOCAL_RUNNERS", "true")
        monkeypatch.setenv("JOB_WORK_DIR", str(tmp / "work"))
        self._runner = _module_runner("runners.shell")()

    def runner(self):
        return self._runner

    def config(self, job):
        return {"type": self._runner.type_names[0], "script": self.script(job, '"$JOB_RESULT_FILE"')}

    def leftovers(self, handle):
        left = []
        pgid = handle.get("pgid") or handle.get("pid")
        if pgid:
            try:
                os.killpg(pgid, 0)
                left.append(f"process group {pgid}")
            except ProcessLookupError:
                pass
        if handle.get("workdir") and Path(handle["workdir"]).exists():
            left.append(f"directory {handle['workdir']}")
        return left


class SimulatedAdapter(Adapter):
    name = "simulated"
    manual = True
    step = 0.25

    def __init__(self, request):
        super().__init__(request)
        self._runner = _module_runner("runners.simulated")()

    def runner(self):
        return self._runner

    def config(self, job):
        config = {"type": self._runner.type_names[0], "durationSeconds": job.sleep, "exitCode": job.exit_code}
        if job.result is not None:
            config["result"] = job.result
        return config

    def expected_log(self, job):
        return "step 10/10"  # the simulated runner's own log lines

    def leftovers(self, handle):
        cleaned = getattr(self._runner, "cleaned", None)
        return [] if cleaned is None or cleaned(handle["uid"]) else [f"simulated job {handle['uid']} not cleaned"]


class LocalContainerAdapter(Adapter):
    name = "local-container"

    def __init__(self, request):
        super().__init__(request)
        request.getfixturevalue("docker_env")
        self.docker = request.getfixturevalue("docker_client")
        from runners.local_container import LocalContainerRunner

        self._runner = LocalContainerRunner()

    def runner(self):
        return self._runner

    def config(self, job):
        return {"type": "dmss://WorkflowDS/Blueprints/LocalContainer", "name": "contract",
                "image": {"registryName": "localhost", "imageName": "busybox", "version": "test"},
                "customCommand": ["sh", "-c", self.script(job, "/tmp/job-result")],
                "network": "none", "computeResource": {"cpu": 0.5, "memory": 0.25}}

    def leftovers(self, handle):
        found = self.docker.containers.list(all=True, filters={"name": handle["container"]})
        return [f"container {c.name}" for c in found if c.name == handle["container"]]


class AciAdapter(Adapter):
    name = "aci"
    manual = True
    step = 0.5
    runner_module_class = "AzureContainerRunner"

    def __init__(self, request):
        super().__init__(request)
        self.arm = request.getfixturevalue("arm")
        from runners import azure_container

        self._runner = getattr(azure_container, self.runner_module_class)(
            credential=request.getfixturevalue("credential"))

    def runner(self):
        return self._runner

    def script(self, job, result_target):  # ACI has no file channel: the result is the output's tail
        parts = [f"echo '{job.output}'", f"sleep {job.sleep:g}"]
        if job.result is not None:
            parts.append(f"echo '{job.result}'")
        parts.append(f"exit {job.exit_code}")
        return "; ".join(parts)

    def config(self, job):
        return {"type": "dmss://WorkflowDS/Blueprints/AzureContainer", "name": "main",
                "image": {"registryName": "registry.example.invalid", "imageName": "jobs/worker", "version": "1.2"},
                "customCommand": ["sh", "-c", self.script(job, "")],
                "computeResource": {"cpu": 1, "memory": 2}}

    def leftovers(self, handle):
        return [f"container group {name}" for name in self.arm.group_names() if name == handle["group"]]


class OmniaAdapter(AciAdapter):
    name = "omnia-classic"
    runner_module_class = "OmniaClassicRunner"

    def config(self, job):
        return {"type": "dmss://DMT-Internal/DMT/AzureContainerInstanceJobClassic",
                "image": "registry.example.invalid/jobs/worker:1.2",
                "command": ["sh", "-c", self.script(job, "")],
                "subnetId": "/subscriptions/x/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/v/"
                            "subnets/aci"}


class RadixAdapter(Adapter):
    name = "radix"
    manual = True
    step = 0.5
    has_log = False  # the scheduler API has no logs: the log is its status message
    has_result = False  # and no result channel
    owns_time_limit = True

    def __init__(self, request):
        super().__init__(request)
        self.scheduler = request.getfixturevalue("radix")
        from runners.radix import RadixRunner

        self._runner = RadixRunner()

    def runner(self):
        return self._runner

    def config(self, job):
        return {"type": "dmss://WorkflowDS/Blueprints/Radix", "jobName": "compute",
                "schedulerPort": str(self.scheduler.port), "imageTagName": "v1"}

    def environment(self, job):
        # TRAPS_SIGTERM: the job ends on the SIGTERM Radix sends at its time limit, as radix-config advises
        # (otherwise Kubernetes kills it 30 s later)
        return {**super().environment(job), "SLEEP_SECONDS": f"{job.sleep:g}", "EXIT_CODE": str(job.exit_code),
                "TRAPS_SIGTERM": "1"}

    def leftovers(self, handle):
        return [f"radix job {handle['name']}"] if handle["name"] in self.scheduler.jobs else []


ADAPTERS = {a.name: a for a in (ShellAdapter, SimulatedAdapter, LocalContainerAdapter, AciAdapter, OmniaAdapter,
                                 RadixAdapter)}


@pytest.fixture(params=list(ADAPTERS))
def adapter(request) -> Adapter:
    return ADAPTERS[request.param](request)


# --- helpers -----------------------------------------------------------------------------------------------

def start(adapter: Adapter, job: Job, time_limit: int = 3600) -> tuple[Runner, dict[str, Any], JobSpec]:
    runner = adapter.runner()
    config = adapter.config(job)
    runner.validate(config)
    spec = JobSpec(uid=str(uuid.uuid4()), config=config, environment=adapter.environment(job),
                   time_limit_seconds=time_limit)
    handle = runner.start(spec)
    assert SECRET not in json.dumps(handle), "the handle must never hold environment values"
    json.dumps(handle)  # JSON-able
    return runner, handle, spec


def poll(adapter: Adapter, runner: Runner, handle: dict[str, Any], until, limit: float = 30.0):
    """Poll until `until(status)`; returns (status, states seen). `limit` is in the adapter's time."""
    seen: list[JobStatus] = []
    waited = 0.0
    while True:
        status = runner.status(handle)
        assert SECRET not in status.message and all(SECRET not in line for line in status.log)
        if not seen or seen[-1] != status.state:
            seen.append(status.state)
        if until(status):
            return status, seen
        if waited >= limit:
            pytest.fail(f"{adapter.name}: condition not reached after {limit}s; states seen {seen}, last {status}")
        adapter.wait(adapter.step)
        waited += adapter.step


def finished(status: RunnerStatus) -> bool:
    return status.finished


# --- the contract ------------------------------------------------------------------------------------------

def test_runs_to_completion_with_log_exit_code_and_result(adapter):
    job = Job(sleep=1.5)
    runner, handle, _ = start(adapter, job)
    status, seen = poll(adapter, runner, handle, finished)
    assert JobStatus.RUNNING in seen, f"never seen running: {seen}"
    assert set(seen) <= {JobStatus.STARTING, JobStatus.RUNNING, JobStatus.COMPLETED}, seen
    assert status.state == JobStatus.COMPLETED, status
    if adapter.has_exit_code:
        assert status.exit_code == 0
    if adapter.has_log:
        assert any(adapter.expected_log(job) in line for line in status.log), status.log
        assert adapter.expected_log(job) in runner.logs(handle)
    result = runner.result(handle)
    if adapter.has_result:
        assert result is not None and job.result in result
    else:
        assert result is None
    assert runner.status(handle).state == JobStatus.COMPLETED  # a finished job stays finished
    runner.cleanup(handle)


def test_failure_reports_exit_code(adapter):
    job = Job(exit_code=3, sleep=0.2, result=None)
    runner, handle, _ = start(adapter, job)
    status, _ = poll(adapter, runner, handle, finished)
    assert status.state == JobStatus.FAILED, status
    if adapter.has_exit_code:
        assert status.exit_code == 3
        assert "3" in status.message
    runner.cleanup(handle)


def test_stop_ends_a_running_job(adapter):
    job = Job(sleep=300, result=None)
    runner, handle, _ = start(adapter, job)
    poll(adapter, runner, handle, lambda s: s.state == JobStatus.RUNNING)
    message = runner.stop(handle)
    assert isinstance(message, str) and message
    status, _ = poll(adapter, runner, handle, finished, limit=15)
    assert status.state == JobStatus.FAILED, status
    runner.stop(handle)  # idempotent
    runner.cleanup(handle)
    assert adapter.leftovers(handle) == []


def test_time_limit(adapter):
    job = Job(sleep=300, result=None)
    runner, handle, spec = start(adapter, job, time_limit=3)
    if adapter.owns_time_limit:  # the platform ends the job (Radix: timeLimitSeconds)
        status, _ = poll(adapter, runner, handle, finished, limit=20)
        assert status.state == JobStatus.FAILED
        assert "time limit" in status.message.lower() or "deadline" in status.message.lower(), status.message
    else:  # the core enforces it: the runner keeps running past the limit until the core stops it
        poll(adapter, runner, handle, lambda s: s.state == JobStatus.RUNNING)
        adapter.wait(spec.time_limit_seconds + 0.5 if adapter.manual else 0.5)
        assert runner.status(handle).state == JobStatus.RUNNING
        runner.stop(handle)
        status, _ = poll(adapter, runner, handle, finished, limit=15)
        assert status.state == JobStatus.FAILED
    runner.cleanup(handle)
    assert adapter.leftovers(handle) == []


def test_cleanup_leaves_nothing_behind(adapter):
    job = Job(sleep=0.2)
    runner, handle, _ = start(adapter, job)
    poll(adapter, runner, handle, finished)
    runner.logs(handle)  # the core asks for the full log before cleanup
    runner.cleanup(handle)
    assert adapter.leftovers(handle) == []
    runner.cleanup(handle)  # idempotent
    runner.stop(handle)  # stopping a vanished job is fine
    assert adapter.leftovers(handle) == []
