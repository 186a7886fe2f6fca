"""One contract, every runner: start -> running -> completed, failure, stop, time limit, result, cleanup.

Each runner gets an adapter that knows how to express "a job that prints X, writes result Y, exits with code N
after sleeping S" in that runner's configuration, which clock drives it, and how to see what a job left behind.
Real parts: bash processes (shell), podman containers (local container), the real ACI SDK against the ARM
stand-in, HTTP against the Radix scheduler stand-in. Stand-in and simulated runners run on a ManualClock.

Starts are idempotent: starting a job twice, at once from two threads, or again after a crash that lost the
first handle (a fresh runner instance, as a restarted host has) runs it once. Each adapter counts runs the way
its engine can: a marker line per run (shell), containers with the job's label (podman), container group
creations and PUTs (ARM stand-in), jobs with the job's jobId (Radix stand-in).
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pytest

from runners.base import JobSpec, RetryLater, Runner, RunnerError, RunnerStatus
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

    def runs(self, uid: str) -> int:
        """How many times the job was launched on the runner side."""
        raise NotImplementedError

    def fresh_runner(self) -> Runner:
        """A new runner instance: what a host that crashed and restarted has (no memory of earlier starts)."""
        return type(self.runner())()

    survives_restart = True  # the job lives outside the process, so a restarted host can find it

    def throttle_cleanup(self, on: bool) -> bool:
        """Make the runner's side refuse cleanup as throttled (or stop doing so). False: it is never throttled."""
        return False

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
        self.markers = tmp / "runs"
        self.markers.mkdir()
        self._runner = _module_runner("runners.shell")()

    def runner(self):
        return self._runner

    def config(self, job):
        marker = f'echo run >> {self.markers}/"$(basename "$PWD")"'  # the working directory is named after the uid
        return {"type": self._runner.type_names[0], "script": marker + "; " + self.script(job, '"$JOB_RESULT_FILE"')}

    def runs(self, uid):
        marker = self.markers / uid
        return len(marker.read_text().split()) if marker.exists() else 0

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
        from runners.shell import launch_processes

        left += [f"process {pid} of the launch" for pid in launch_processes(handle.get("launch", ""))]
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

    survives_restart = False  # in-process: a crash ends it, nothing is left to find

    def runs(self, uid):
        return self._runner.launches(uid)

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
        return {
            "type": "dmss://WorkflowDS/Blueprints/LocalContainer",
            "name": "contract",
            "image": {"registryName": "localhost", "imageName": "busybox", "version": "test"},
            "customCommand": ["sh", "-c", self.script(job, "/tmp/job-result")],
            "network": "none",
            "computeResource": {"cpu": 0.5, "memory": 0.25},
        }

    def leftovers(self, handle):
        found = self.docker.containers.list(all=True, filters={"name": handle["container"]})
        return [f"container {c.name}" for c in found if c.name == handle["container"]]

    def runs(self, uid):
        return len(self.docker.containers.list(all=True, filters={"label": f"dm-job.uid={uid}"}))

    def throttle_cleanup(self, on):
        """An engine that does not answer (restarting): the client of the runner points at a dead socket."""
        import docker

        if on:
            self._real_client = self._runner._docker()
            self._runner._client = docker.DockerClient(base_url="unix:///nonexistent/podman.sock", version="1.41")
        else:
            self._runner._client = self._real_client
        return True


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
            credential=request.getfixturevalue("credential")
        )

    def runner(self):
        return self._runner

    def script(self, job, result_target):  # ACI has no file channel: the result is the output's tail
        parts = [f"echo '{job.output}'", f"sleep {job.sleep:g}"]
        if job.result is not None:
            parts.append(f"echo '{job.result}'")
        parts.append(f"exit {job.exit_code}")
        return "; ".join(parts)

    def config(self, job):
        return {
            "type": "dmss://WorkflowDS/Blueprints/AzureContainer",
            "name": "main",
            "image": {"registryName": "registry.example.invalid", "imageName": "jobs/worker", "version": "1.2"},
            "customCommand": ["sh", "-c", self.script(job, "")],
            "computeResource": {"cpu": 1, "memory": 2},
        }

    def leftovers(self, handle):
        return [f"container group {name}" for name in self.arm.group_names() if name == handle["group"]]

    def fresh_runner(self):
        return type(self._runner)(credential=self.request.getfixturevalue("credential"))

    def runs(self, uid):
        """PUTs of the job's group (the first creates it; another would update it, which may restart it)."""
        from runners.azure_container import group_name

        suffix = f"/containerGroups/{group_name(uid)}"
        return sum(
            1
            for method, path, status in self.arm.requests
            if method == "PUT" and path.endswith(suffix) and status < 300
        )

    def throttle_cleanup(self, on):
        """ACI's documented delete rate (100 per 5 minutes), here reached."""
        if on:
            self.arm.delete_throttle_windows = ((1, 300.0),)
            self.arm.delete_times.append(self.clock.now())
        else:
            self.arm.delete_throttle_windows = ()
        return True


class OmniaAdapter(AciAdapter):
    name = "omnia-classic"
    runner_module_class = "OmniaClassicRunner"

    def config(self, job):
        return {
            "type": "dmss://DMT-Internal/DMT/AzureContainerInstanceJobClassic",
            "image": "registry.example.invalid/jobs/worker:1.2",
            "command": ["sh", "-c", self.script(job, "")],
            "subnetId": "/subscriptions/x/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/v/subnets/aci",
        }


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
        return {
            "type": "dmss://WorkflowDS/Blueprints/Radix",
            "jobName": "compute",
            "schedulerPort": str(self.scheduler.port),
            "imageTagName": "v1",
        }

    def environment(self, job):
        # TRAPS_SIGTERM: the job ends on the SIGTERM Radix sends at its time limit, as radix-config advises
        # (otherwise Kubernetes kills it 30 s later)
        return {
            **super().environment(job),
            "SLEEP_SECONDS": f"{job.sleep:g}",
            "EXIT_CODE": str(job.exit_code),
            "TRAPS_SIGTERM": "1",
        }

    def leftovers(self, handle):
        return [
            f"radix job {name}"
            for name, job in self.scheduler.jobs.items()
            if name == handle["name"] or job.job_id == handle.get("jobId")
        ]

    def runs(self, uid):
        return sum(1 for job in self.scheduler.jobs.values() if job.job_id == uid)

    def throttle_cleanup(self, on):
        self.scheduler.fail_next_deletes = [(429, "too many requests")] * 3 if on else []
        return True


ADAPTERS = {
    a.name: a for a in (ShellAdapter, SimulatedAdapter, LocalContainerAdapter, AciAdapter, OmniaAdapter, RadixAdapter)
}


@pytest.fixture(params=list(ADAPTERS))
def adapter(request) -> Adapter:
    return ADAPTERS[request.param](request)


# --- helpers -----------------------------------------------------------------------------------------------


def job_spec(adapter: Adapter, job: Job, time_limit: int = 3600) -> JobSpec:
    config = adapter.config(job)
    adapter.runner().validate(config)
    return JobSpec(
        uid=str(uuid.uuid4()), config=config, environment=adapter.environment(job), time_limit_seconds=time_limit
    )


def start(adapter: Adapter, job: Job, time_limit: int = 3600) -> tuple[Runner, dict[str, Any], JobSpec]:
    runner = adapter.runner()
    spec = job_spec(adapter, job, time_limit)
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


# --- idempotent starts -------------------------------------------------------------------------------------


def _run_once_to_the_end(adapter: Adapter, runner: Runner, handle: dict[str, Any], spec: JobSpec) -> None:
    status, _ = poll(adapter, runner, handle, finished)
    assert status.state == JobStatus.COMPLETED, status
    assert adapter.runs(spec.uid) == 1, f"{adapter.name}: the job ran {adapter.runs(spec.uid)} times"
    if adapter.has_log:
        assert adapter.expected_log(Job()) in runner.logs(handle)
    runner.cleanup(handle)
    assert adapter.leftovers(handle) == []


def test_start_twice_runs_once(adapter):
    job = Job(sleep=1.0)
    runner, first, spec = start(adapter, job)
    second = runner.start(spec)  # an activity retried: same job, same handle, nothing launched
    assert second == first
    assert runner.find(spec) == first
    _run_once_to_the_end(adapter, runner, second, spec)


def test_two_starts_at_once_run_once(adapter):
    runner = adapter.runner()
    spec = job_spec(adapter, Job(sleep=1.0))
    handles: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def one_start():
        try:
            handles.append(runner.start(spec))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=one_start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert len(handles) == 2 and handles[0] == handles[1]
    _run_once_to_the_end(adapter, runner, handles[0], spec)


def test_start_after_a_crash_that_lost_the_handle_runs_once(adapter):
    """The start activity launched the job and died before the handle was stored; the host restarts (a fresh
    runner, no memory) and the activity runs again: it must find the job, not launch a second copy."""
    if not adapter.survives_restart:
        pytest.skip(f"{adapter.name} runs in the process: a crash takes the job with it")
    runner, lost, spec = start(adapter, Job(sleep=1.0))
    restarted = adapter.fresh_runner()
    assert restarted.find(spec) == lost
    handle = restarted.start(spec)
    assert handle == lost
    _run_once_to_the_end(adapter, restarted, handle, spec)


def test_stop_after_a_crash_reaches_the_job(adapter):
    """A job whose handle was lost is stopped through the handle `find` answers: nothing of it is left."""
    if not adapter.survives_restart:
        pytest.skip(f"{adapter.name} runs in the process: a crash takes the job with it")
    runner, lost, spec = start(adapter, Job(sleep=300, result=None))
    poll(adapter, runner, lost, lambda s: s.state == JobStatus.RUNNING)
    restarted = adapter.fresh_runner()
    handle = restarted.find(spec)
    assert handle == lost
    restarted.stop(handle)
    status, _ = poll(adapter, restarted, handle, finished, limit=15)
    assert status.state == JobStatus.FAILED
    restarted.cleanup(handle)
    restarted.cleanup(handle)  # again: harmless
    assert adapter.leftovers(handle) == []
    assert adapter.runs(spec.uid) <= 1


def test_find_launches_nothing(adapter):
    spec = job_spec(adapter, Job(sleep=0.2))
    assert adapter.runner().find(spec) is None
    assert adapter.runs(spec.uid) == 0


def test_a_throttled_cleanup_is_retry_later_and_can_be_called_again(adapter):
    runner, handle, _ = start(adapter, Job(sleep=0.2))
    poll(adapter, runner, handle, finished)
    runner.logs(handle)
    if not adapter.throttle_cleanup(True):
        runner.cleanup(handle)  # never throttled: cleanup just works, also twice
    else:
        with pytest.raises(RunnerError) as refused:
            runner.cleanup(handle)
        assert isinstance(refused.value, RetryLater), f"{type(refused.value).__name__}: {refused.value}"
        assert refused.value.retry_after >= 1
        adapter.throttle_cleanup(False)
        runner.cleanup(handle)
    runner.cleanup(handle)
    assert adapter.leftovers(handle) == []
