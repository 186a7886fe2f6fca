"""Container jobs end to end, over HTTP through the local host (the real app, the real Durable SDK, Azurite):

* LocalContainer jobs on a real podman engine (real time): a job that prints and writes a result, one that fails
  with its exit code, one stopped by DELETE whose container is gone afterwards;
* AzureContainer and Omnia classic jobs through the real ACI SDK against the ARM stand-in, on a ManualClock that
  drives both the orchestrations (`host.advance`) and the stand-in's simulated containers: completion with logs
  and result, ACI's reason for an image that cannot be pulled and for a failed provisioning, a refused image, a
  resource group deleted under a running job, a stop by DELETE that deletes the container group, and a start that
  waits out ACI's throttling.

The runner instances the app uses are the ones `runners.registry.default_registry()` holds; the ACI ones get the
test credential through `AzureContainerRunner.use_credential` (the stand-in only checks that a token is sent).
"""

from __future__ import annotations

import json
import time

import pytest

from devhost import DevHost
from runners.registry import default_registry
from shared.platform.clock import ManualClock
from tests.runners.conftest import StaticTokenCredential, TEST_IMAGE, docker_client, podman_host  # noqa: F401
from tests.standins.arm import ArmStandIn

from .conftest import ROOT, Api

LOCAL = "dmss://WorkflowDS/Blueprints/LocalContainer"
ACI = "dmss://WorkflowDS/Blueprints/AzureContainer"
OMNIA = "dmss://WorkflowDS/Blueprints/OmniaClassicAzureContainer"
SUBSCRIPTION = "00000000-0000-0000-0000-0000000000e2"
SUBNET = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet/subnets/aci"
)
ACI_IMAGE = "registry.example.invalid/jobs/worker:1"
CANARY = "CANARY-aci-e2e-77c1"
# the app's schedule timer is bound to %SCHEDULE_TICK%, which the local host resolves from the environment
HOST_SETTINGS = {"DM_JOB_URL": "http://127.0.0.1:0/api/jobs", "SCHEDULE_TICK": "0 * * * * *"}


def job(runner: dict, **extra) -> dict:
    return {"type": "dmss://WorkflowDS/Blueprints/Job", "label": "containers-e2e", "runner": runner, **extra}


# ---- LocalContainer on podman (real time) -------------------------------------------------------------------


@pytest.fixture
def podman_api(storage_env, podman_host):  # noqa: F811
    settings = {**HOST_SETTINGS, "DOCKER_HOST": podman_host, "ENABLE_LOCAL_RUNNERS": "true"}
    with DevHost(app_dir=ROOT, settings=settings) as host:
        yield Api(host.url)


def local_job(script: str, **runner) -> dict:
    return job(
        {
            "type": LOCAL,
            "name": "e2e",
            "containerImage": TEST_IMAGE,
            "network": "none",
            "customCommand": ["sh", "-c", script],
            **runner,
        }
    )


def containers_of(docker_client, uid: str) -> list:  # noqa: F811 - the fixture's value
    """The job's containers as the engine lists them (the low-level list: the SDK's `containers.list` inspects
    each one it found, and podman answers 500 for one removed in between)."""
    return docker_client.api.containers(all=True, filters={"label": f"dm-job.uid={uid}"})


def containers_left(docker_client, uid: str, timeout: float = 20.0) -> list:  # noqa: F811
    """The job's containers once cleanup has had its chance: the finish activity writes the final status first
    and removes the container after it (shared/jobs/activities.py), so a reader can see `failed` a moment before
    the container is gone."""
    deadline = time.monotonic() + timeout
    while (left := containers_of(docker_client, uid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def test_local_container_prints_writes_a_result_and_completes(podman_api, docker_client):  # noqa: F811
    script = 'echo "hello from $JOB_UID"; echo line two; printf \'{"answer": 42}\' > "$JOB_RESULT_FILE"'
    response = podman_api.start(local_job(script, computeResource={"cpu": 0.5, "memory": 0.25}))
    assert response.status_code == 202, response.text
    uid = response.json()["uid"]
    final = podman_api.wait(uid, timeout=60)
    assert final["status"] == "completed", final
    assert final["log"] == [f"hello from {uid}", "line two"]
    assert final["message"] == "container exited with code 0" and final["percentage"] == 1.0  # a fraction
    result = podman_api.http.get(f"{podman_api.base}/api/jobs/{uid}/result").json()
    assert result["status"] == "completed" and json.loads(result["result"]) == {"answer": 42}
    assert containers_left(docker_client, uid) == []  # cleanup removed it


def test_local_container_failure_reports_its_exit_code(podman_api, docker_client):  # noqa: F811
    uid = podman_api.start(local_job("echo about to fail; echo broken >&2; exit 3")).json()["uid"]
    final = podman_api.wait(uid, timeout=60)
    assert final["status"] == "failed" and final["message"] == "container exited with code 3", final
    assert "about to fail" in final["log"] and "broken" in final["log"]
    result = podman_api.http.get(f"{podman_api.base}/api/jobs/{uid}/result").json()
    assert result["status"] == "failed" and "about to fail" in result["result"]  # no result file: the output
    assert containers_left(docker_client, uid) == []


def test_local_container_stopped_by_delete_is_gone(podman_api, docker_client):  # noqa: F811
    uid = podman_api.start(local_job("echo started; sleep 600")).json()["uid"]
    podman_api.wait(uid, {"running"}, timeout=60)
    deadline = time.monotonic() + 20
    while "started" not in podman_api.get(uid)["log"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert containers_of(docker_client, uid), "the job's container should be there while it runs"
    stopped = podman_api.http.delete(f"{podman_api.base}/api/jobs/{uid}")
    assert stopped.status_code == 200 and stopped.json()["status"] == "removed", stopped.text
    # the route marks the job removed before it tells the runner, so a poll woken meanwhile may have stopped and
    # removed the container first: either way it is gone
    response = stopped.json()["response"]
    assert "killed and removed" in response or "already gone" in response, response
    assert containers_of(docker_client, uid) == []
    final = podman_api.wait(uid, {"removed"})
    deadline = time.monotonic() + 20  # the orchestration ends too (its finish keeps the log)
    while not final.get("ended") or final["log"] != ["started"]:
        assert time.monotonic() < deadline, final
        time.sleep(0.1)
        final = podman_api.get(uid)
    assert final["status"] == "removed" and final["message"].startswith("stopped")
    assert containers_of(docker_client, uid) == []
    assert podman_api.http.delete(f"{podman_api.base}/api/jobs/{uid}").json()["status"] == "removed"


# ---- ACI and Omnia classic against the ARM stand-in (ManualClock) -------------------------------------------


class AciApp:
    def __init__(self, host: DevHost, arm: ArmStandIn, credential: StaticTokenCredential):
        self.host, self.arm, self.credential = host, arm, credential
        self.api = Api(host.url)

    def start(self, body: dict) -> str:
        response = self.api.start(body)
        assert response.status_code == 202, response.text
        self.host.wait_idle()
        return response.json()["uid"]

    def run_until(self, uid: str, statuses, seconds: float = 600, step: float = 5) -> dict:
        """Advance the clock in steps until the job's status is in `statuses`."""
        for _ in range(int(seconds / step)):
            body = self.api.get(uid)
            if body["status"] in statuses:
                return body
            self.host.advance(step)
        body = self.api.get(uid)
        assert body["status"] in statuses, body
        return body

    def result(self, uid: str) -> dict:
        return self.api.http.get(f"{self.api.base}/api/jobs/{uid}/result").json()


@pytest.fixture
def aci(storage_env):
    clock = ManualClock()
    arm = ArmStandIn(clock=clock.now, start_delay=2.0).start()
    settings = {
        **HOST_SETTINGS,
        "AZURE_RESOURCE_MANAGER_URL": arm.url,
        "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
        "ACI_RESOURCE_GROUP": "rg-jobs",
        "ACI_LOCATION": "norwayeast",
        "OMNIA_SUBNET_ID": SUBNET,
        **{
            name: ""
            for name in (
                "ACI_REGISTRY_SERVER",
                "ACI_JOB_IDENTITY_ID",
                "ACI_REGISTRY_USERNAME",
                "ACI_REGISTRY_PASSWORD",
                "ACI_KEEP_FAILED_GROUPS",
                "OMNIA_LOG_ANALYTICS_WORKSPACE_ID",
                "OMNIA_LOG_ANALYTICS_WORKSPACE_KEY",
            )
        },
    }
    credential = StaticTokenCredential()
    runners = [default_registry().get(kind) for kind in (ACI, OMNIA)]
    for runner in runners:
        runner.use_credential(credential)
    try:
        with DevHost(app_dir=ROOT, clock=clock, settings=settings) as host:
            yield AciApp(host, arm, credential)
    finally:
        for runner in runners:
            runner.use_credential(None)
        arm.stop()


def aci_job(script: str, kind: str = ACI, env=(), **runner) -> dict:
    return job(
        {
            "type": kind,
            "name": "main",
            "containerImage": ACI_IMAGE,
            "customCommand": ["sh", "-c", script],
            "computeResource": {"cpu": 1, "memory": 1.5},
            "environmentVariables": list(env),
            **runner,
        }
    )


def test_aci_job_completes_with_log_and_result(aci):
    uid = aci.start(
        aci_job("echo hello; sleep 5; echo working; sleep 5; echo RESULT-LINE; exit 0", env=[f"SECRET={CANARY}"])
    )
    group = f"job-{uid}"
    assert group in aci.arm.group_names()
    assert aci.api.get(uid)["status"] == "starting"  # pulling for start_delay on the stand-in's clock
    running = aci.run_until(uid, {"running", "completed", "failed"}, step=1)
    assert running["status"] == "running"
    final = aci.run_until(uid, {"completed", "failed"})
    assert final["status"] == "completed", final
    assert final["log"] == ["hello", "working", "RESULT-LINE"] and final["percentage"] == 1.0  # a fraction
    assert final["message"] == "container exited with code 0"
    result = aci.result(uid)
    assert result["status"] == "completed" and result["result"].splitlines()[-1] == "RESULT-LINE"
    assert group not in aci.arm.group_names() and aci.arm.counts["deletes"] == 1  # cleanup deleted the group
    sent = aci.arm.last_put_bodies[group]["properties"]["containers"][0]["properties"]["environmentVariables"]
    assert {"name": "SECRET", "secureValue": CANARY} in sent  # secure values only, never `value`
    assert aci.credential.scopes and aci.credential.scopes[0] == (aci.arm.url + "/.default",)
    stats = aci.host.engine.stats(uid)
    assert stats["runtime_status"] == "Completed"


def test_aci_job_failing_with_its_exit_code(aci):
    uid = aci.start(aci_job("echo oops; exit 7"))
    final = aci.run_until(uid, {"completed", "failed"})
    assert final["status"] == "failed" and "exited with code 7" in final["message"], final
    assert final["log"] == ["oops"]
    assert f"job-{uid}" not in aci.arm.group_names()


def test_aci_image_pull_failure_fails_with_acis_reason(aci):
    aci.arm.pull_failure_images.add("registry.example.invalid/jobs/missing:1")
    uid = aci.start(aci_job("echo never", containerImage="registry.example.invalid/jobs/missing:1"))
    final = aci.run_until(uid, {"completed", "failed"}, seconds=120)
    assert final["status"] == "failed", final
    assert final["message"].startswith(
        'image could not be pulled: Failed to pull image "registry.example.invalid/jobs/missing:1"'
    ), final["message"]
    assert aci.host.engine.stats(uid)["runtime_status"] == "Completed"
    assert f"job-{uid}" not in aci.arm.group_names()  # not kept (ACI_KEEP_FAILED_GROUPS is false)


def test_aci_provisioning_failure_shows_acis_own_reason(aci):
    """ACI reports a failed provisioning in an event that need not be a Warning (the spec's ContainerGroupsGet_Failed
    example: a Normal FailedMount event of the group): the user reads that, not just "provisioning state Failed"."""
    aci.arm.provisioning_failure = "Output: mount error(2): Permission denied"
    uid = aci.start(aci_job("echo never"))
    final = aci.run_until(uid, {"completed", "failed"}, seconds=120)
    assert final["status"] == "failed", final
    assert final["message"] == (
        "ACI could not start the container group: (FailedMount) Output: mount error(2): Permission denied"
    ), final["message"]
    assert f"job-{uid}" not in aci.arm.group_names()


def test_aci_job_whose_resource_group_was_deleted(aci):
    uid = aci.start(aci_job("echo started; sleep 3600"))
    aci.run_until(uid, {"running"}, step=1)
    aci.arm.remove_resource_group("rg-jobs")
    final = aci.run_until(uid, {"completed", "failed"}, seconds=120)
    assert final["status"] == "failed", final
    assert final["message"].startswith(
        f"container group job-{uid} no longer exists: its resource group rg-jobs was not found (ResourceGroupNotFound"
    ), final["message"]
    assert aci.host.engine.stats(uid)["runtime_status"] == "Completed"


def test_aci_inaccessible_image_is_refused_at_start(aci):
    aci.arm.inaccessible_images.add("registry.example.invalid/jobs/private:1")
    uid = aci.start(aci_job("echo never", containerImage="registry.example.invalid/jobs/private:1"))
    final = aci.run_until(uid, {"completed", "failed"}, seconds=30)
    assert final["status"] == "failed" and "InaccessibleImage" in final["message"], final
    assert aci.arm.group_names() == []


def test_aci_job_stopped_by_delete_deletes_its_group(aci):
    uid = aci.start(aci_job("echo started; sleep 3600; echo never"))
    group = f"job-{uid}"
    running = aci.run_until(uid, {"running"}, step=1)
    assert running["log"] == ["started"]
    stopped = aci.api.http.delete(f"{aci.api.base}/api/jobs/{uid}")
    assert stopped.status_code == 200 and stopped.json() == {
        "status": "removed",
        "response": f"container group {group} stopped",
    }
    aci.host.wait_idle()
    aci.host.advance(5)
    final = aci.api.get(uid)
    assert final["status"] == "removed" and final["ended"] and final["message"].startswith("stopped"), final
    assert final["log"] == ["started"]
    assert group not in aci.arm.group_names()
    calls = [(method, path.rsplit("/", 1)[-1]) for method, path, status in aci.arm.requests if group in path]
    assert ("POST", "stop") in calls and ("DELETE", group) in calls
    assert aci.host.engine.stats(uid)["runtime_status"] == "Completed"


def test_omnia_classic_job_runs_in_the_subnet(aci):
    body = job({"type": OMNIA, "name": "omnia", "image": ACI_IMAGE, "command": "sh -c 'echo omnia says hi; exit 0'"})
    uid = aci.start(body)
    final = aci.run_until(uid, {"completed", "failed"})
    assert final["status"] == "completed" and final["log"] == ["omnia says hi"], final
    sent = aci.arm.last_put_bodies[f"job-{uid}"]
    assert sent["properties"]["subnetIds"] == [{"id": SUBNET}]
    assert sent["properties"]["ipAddress"]["type"] == "Private"
    assert sent["tags"] == {"dm-job-uid": uid, "dm-job-runner": "omnia-classic"}
    assert aci.result(uid)["result"] == "omnia says hi"


def test_aci_start_waits_out_throttling_and_says_why(aci):
    aci.arm.throttle_windows = ((1, 60.0),)  # one create a minute
    first = aci.start(aci_job("echo first; exit 0"))
    second = aci.start(aci_job("echo second; exit 0"))
    waiting = aci.api.get(second)
    assert waiting["status"] == "starting", waiting
    assert waiting["message"].startswith(
        "waiting to start: ACI is throttling container group creation; retrying in 60 s"
    ), waiting["message"]
    assert aci.arm.counts["throttled"] == 1
    for uid, line in ((first, "first"), (second, "second")):
        final = aci.run_until(uid, {"completed", "failed"}, seconds=300)
        assert final["status"] == "completed" and final["log"] == [line], final
    assert aci.arm.group_names() == []


def test_aci_job_ends_cleanly_when_arm_throttles_reads_after_it_finished(aci):
    """ARM throttles reads too. Once a poll has seen the container terminated, the finish must not need ARM to
    say so again: a 429 there used to fail the finish activity after cleanup had deleted the group, leaving the
    orchestration Failed and the job `running` for ever."""
    from tests.standins.arm import _error

    ended: set[str] = set()
    read_group = aci.arm._get

    def get_then_throttle(key):
        if key[2] in ended:
            return _error(429, "TooManyRequests", "Number of read requests exceeded the limit.", {"Retry-After": "17"})
        response = read_group(key)
        containers = (response.body or {}).get("properties", {}).get("containers", [])
        if (
            response.status == 200
            and containers
            and containers[0]["properties"].get("instanceView", {}).get("currentState", {}).get("state") == "Terminated"
        ):
            ended.add(key[2])
        return response

    aci.arm._get = get_then_throttle
    uid = aci.start(aci_job("echo one; sleep 3; echo two; exit 0"))
    final = aci.run_until(uid, {"completed", "failed"}, seconds=120)
    assert final["status"] == "completed" and final["log"] == ["one", "two"], final
    assert ended == {f"job-{uid}"} and aci.arm.group_names() == []
    assert aci.host.engine.stats(uid)["runtime_status"] == "Completed"
    assert aci.result(uid)["result"] == "one\ntwo"
