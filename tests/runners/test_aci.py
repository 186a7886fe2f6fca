"""ACI runners: names, validation (422), state mapping, Retry-After, failure modes, registry credentials, Omnia
classic, through the real SDK against the ARM stand-in."""

from __future__ import annotations

import email.utils
import json
import re
import uuid
from datetime import timedelta

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance import models as aci

from runners.aci_state import map_group
from runners.azure_container import (
    AzureContainerRunner,
    OmniaClassicRunner,
    container_name,
    group_name,
    retry_after_seconds,
)
from runners.base import ConfigError, JobSpec, RetryLater, RunnerError
from shared.jobs.status import JobStatus

SECRET = "s3cr3t-Value-never-shown"
ACI_TYPE = "dmss://WorkflowDS/Blueprints/AzureContainer"


def spec(config, uid=None, env=None):
    return JobSpec(
        uid=uid or str(uuid.uuid4()), config=config, environment=env or {"TOKEN": SECRET}, time_limit_seconds=3600
    )


BEARER = {"Authorization": "Bearer t"}


def group_url(arm, handle):
    return (
        f"{arm.url}/subscriptions/{handle['subscription']}/resourceGroups/{handle['resourceGroup']}/providers/"
        f"Microsoft.ContainerInstance/containerGroups/{handle['group']}?api-version=2023-05-01"
    )


def config(**extra):
    return {
        "type": ACI_TYPE,
        "name": "main",
        "containerImage": "registry.example.invalid/worker:1",
        "customCommand": ["sh", "-c", "echo hi; sleep 1; exit 0"],
        **extra,
    }


@pytest.fixture
def runner(arm, credential):
    return AzureContainerRunner(credential=credential)


# --- names -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uid", ["3f2b7c1e-1111-4222-8333-444455556666", "ABC", "weird_uid/with space", "x" * 200, "--", "a--b", "ÆØÅ"]
)
def test_group_name_is_a_valid_aci_name(uid):
    name = group_name(uid)
    assert re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", name), name
    assert "--" not in name and name.startswith("job")


def test_group_name_keeps_uuids_readable_and_distinct():
    uid = "3f2b7c1e-1111-4222-8333-444455556666"
    assert group_name(uid) == f"job-{uid}"
    assert group_name("a_b") != group_name("a-b")  # a changed uid gains a hash
    assert group_name("x" * 100) != group_name("x" * 101)
    assert container_name("My Container!") == "my-container"
    assert container_name(None) == "job"


# --- validation (the API answers 422) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "compute,fragment",
    [
        ({"cpu": 8}, "cpu 8 is outside"),
        ({"cpu": 0.05}, "cpu 0.05 is outside"),
        ({"memory": 32}, "memory 32 GB is outside"),
        ({"memory": 0.05}, "memory 0.05 GB is outside"),
        ({"memory": 1.55}, "steps of 0.1 GB"),
        ({"cpu": -1}, "greater than 0"),
        ({"cpu": "lots"}, "valid number"),
    ],
)
def test_resources_are_validated_never_clamped(compute, fragment):
    with pytest.raises(ConfigError) as caught:
        AzureContainerRunner().validate(config(computeResource=compute))
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    "bad,fragment",
    [
        ({"containerImage": None, "image": None}, "an image is required"),
        ({"containerImage": None, "image": {"registryName": "r", "version": "1"}}, "runner.image.imageName"),
        ({"containerImage": "has space"}, "invalid image reference"),
        ({"customCommand": [1, {"a": 2}]}, "runner.customCommand"),
    ],
)
def test_config_errors_name_the_attribute(bad, fragment):
    with pytest.raises(ConfigError) as caught:
        AzureContainerRunner().validate({**config(), **bad})
    assert fragment in str(caught.value)


def test_limits_and_defaults_accepted(arm, runner):
    runner.validate(config(computeResource={"cpu": 4, "memory": 16}))
    runner.validate(config(computeResource={"cpu": 0.1, "memory": 0.1}))
    handle = runner.start(spec(config()))
    requests = arm.last_put_bodies[handle["group"]]["properties"]["containers"][0]["properties"]["resources"]
    assert requests == {"requests": {"cpu": 1.0, "memoryInGB": 1.5}}


def test_omnia_needs_a_subnet(arm):
    with pytest.raises(ConfigError, match="subnetId"):
        OmniaClassicRunner().validate(
            {"type": "dmss://DMT-Internal/DMT/AzureContainerInstanceJobClassic", "image": "x/y:1"}
        )


# --- state mapping -----------------------------------------------------------------------------------------


def group_json(
    provisioning="Succeeded", state=None, exit_code=None, events=(), detail=None, group_state=None, group_events=()
):
    container = {"name": "main", "properties": {"image": "i", "resources": {"requests": {"cpu": 1, "memoryInGB": 1}}}}
    if state:
        current = {"state": state}
        if exit_code is not None:
            current["exitCode"] = exit_code
        if detail:
            current["detailStatus"] = detail
        container["properties"]["instanceView"] = {"currentState": current, "events": list(events)}
    props = {
        "provisioningState": provisioning,
        "containers": [container],
        "osType": "Linux",
        "instanceView": {"events": list(group_events), **({"state": group_state} if group_state else {})},
    }
    return aci.ContainerGroup.deserialize({"properties": props, "location": "x"})


PULL_FAILED = {
    "name": "Failed",
    "type": "Warning",
    "count": 1,
    "message": 'Failed to pull image "x": rpc error: not found',
}
PULLING = {"name": "Pulling", "type": "Normal", "count": 1, "message": 'pulling image "x"'}
PULLED = {"name": "Pulled", "type": "Normal", "count": 1, "message": 'Successfully pulled image "x"'}
BACKOFF = {"name": "BackOff", "type": "Normal", "count": 1, "message": 'Back-off pulling image "x"'}
# azure-rest-api-specs containerinstance 2023-05-01 example ContainerGroupsGet_Failed: provisioning Failed, the group
# Pending, its container Waiting with detailStatus "", and the reason in a *Normal* FailedMount event of the group
FAILED_MOUNT = {
    "name": "FailedMount",
    "type": "Normal",
    "count": 1,
    "firstTimestamp": "2017-10-08T00:19:10Z",
    "lastTimestamp": "2017-10-08T00:19:10Z",
    "message": "Output: mount error(2): Permission denied",
}


@pytest.mark.parametrize(
    "group,state,message",
    [
        (group_json("Pending"), JobStatus.STARTING, "container group pending"),
        (
            group_json("Creating", "Waiting", detail="", events=[PULLING]),
            JobStatus.STARTING,
            "container group creating, container waiting",
        ),
        (group_json("Succeeded"), JobStatus.STARTING, "container group succeeded"),
        (group_json("Succeeded", "Running"), JobStatus.RUNNING, "container running"),
        (group_json("Succeeded", "Terminated", 0), JobStatus.COMPLETED, "container exited with code 0"),
        (
            group_json("Succeeded", "Terminated", 2, detail="Error"),
            JobStatus.FAILED,
            "container exited with code 2 (Error)",
        ),
        (
            group_json("Succeeded", "Terminated", 137, group_state="Stopped"),
            JobStatus.FAILED,
            "stopped (container exited with code 137)",
        ),
        # troubleshooting page: Pulling (Normal), Failed (Warning), BackOff (Normal) while ACI retries the pull
        (
            group_json("Creating", "Waiting", events=[PULLING, PULL_FAILED, BACKOFF], detail=""),
            JobStatus.FAILED,
            'image could not be pulled: Failed to pull image "x": rpc error: not found',
        ),
        (
            group_json(
                "Failed",
                "Waiting",
                detail="",
                events=[PULLING, PULLED],
                group_state="Pending",
                group_events=[FAILED_MOUNT],
            ),
            JobStatus.FAILED,
            "ACI could not start the container group: (FailedMount) Output: mount error(2): Permission denied",
        ),
        (
            group_json(
                "Failed", group_events=[{"name": "Failed", "type": "Warning", "message": "Subnet not delegated"}]
            ),
            JobStatus.FAILED,
            "ACI could not start the container group: (Failed) Subnet not delegated",
        ),
        (
            group_json("Canceled"),
            JobStatus.FAILED,
            "ACI could not start the container group: provisioning state Canceled",
        ),
        # a stopped group keeps no container state (container-instances-stop-start.md)
        (group_json("Succeeded", group_state="Stopped"), JobStatus.FAILED, "stopped (container group stopped)"),
        (
            group_json("Unhealthy", "Running"),
            JobStatus.RUNNING,
            "container running; container group unhealthy (ACI repairs it by moving it)",
        ),
        (
            group_json("Repairing", "Waiting"),
            JobStatus.STARTING,
            "container group repairing (ACI is moving it after it became unhealthy), container waiting",
        ),
        (group_json("Deleting"), JobStatus.UNKNOWN, "container group state Deleting"),
    ],
)
def test_state_mapping(group, state, message):
    fields = map_group(group)
    assert (fields["state"], fields["message"]) == (state, message)
    assert fields.get("exit_code") is None or state != JobStatus.STARTING


def test_the_explaining_event_is_the_latest_non_routine_one():
    older = {**FAILED_MOUNT, "message": "first", "lastTimestamp": "2017-10-08T00:10:00Z"}
    group = group_json("Failed", "Waiting", events=[PULLING, PULLED], group_events=[FAILED_MOUNT, older])
    assert map_group(group)["message"].endswith("Output: mount error(2): Permission denied")


# --- Retry-After -------------------------------------------------------------------------------------------


def test_retry_after_parsing(manual_clock):
    assert retry_after_seconds({"Retry-After": "30"}, 60) == 30
    assert retry_after_seconds({"Retry-After": "0"}, 60) == 1  # at least a second
    assert retry_after_seconds({"Retry-After": "999999"}, 60) == 3600
    assert retry_after_seconds({}, 60) == 60
    assert retry_after_seconds({"Retry-After": "soon"}, 60) == 60
    assert retry_after_seconds({"x-ms-retry-after-ms": "2500"}, 60) == 2.5
    when = manual_clock.now() + timedelta(seconds=120)
    assert retry_after_seconds({"Retry-After": email.utils.format_datetime(when, usegmt=True)}, 60) == 120


def test_throttled_create_raises_retry_later_honouring_retry_after(arm, runner, manual_clock):
    arm.throttle_windows = ((2, 300.0),)
    runner.start(spec(config()))
    manual_clock.advance(100)
    runner.start(spec(config()))
    job = spec(config())
    with pytest.raises(RetryLater) as caught:
        runner.start(job)
    assert caught.value.retry_after == 200
    assert str(caught.value) == "ACI is throttling container group creation; retrying in 200 s"
    assert arm.counts["throttled"] == 1
    manual_clock.advance(caught.value.retry_after)
    handle = runner.start(job)
    assert handle["group"] in arm.group_names()


@pytest.mark.parametrize("status,retry_after,expected", [(503, "7", 7), (500, None, 15), (502, "120", 120)])
def test_server_errors_on_create_are_retry_later(arm, runner, status, retry_after, expected):
    arm.fail_next_creates, arm.fail_status = 1, status
    arm.fail_retry_after = retry_after
    job = spec(config())
    with pytest.raises(RetryLater) as caught:
        runner.start(job)
    assert caught.value.retry_after == expected
    assert f"HTTP {status}" in str(caught.value)
    runner.start(job)  # the retry works
    assert arm.counts["creates"] == 1


def test_unreachable_arm_is_retry_later(monkeypatch, credential, manual_clock):
    monkeypatch.setenv("AZURE_RESOURCE_MANAGER_URL", "http://127.0.0.1:9")  # nothing listens on discard
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "s")
    monkeypatch.setenv("ACI_RESOURCE_GROUP", "rg")
    with pytest.raises(RetryLater, match="not reachable"):
        AzureContainerRunner(credential=credential).start(spec(config()))


def test_refused_create_is_a_runner_error_with_arms_reason(arm, runner):
    arm.inaccessible_images.add("registry.example.invalid/worker:1")
    with pytest.raises(RunnerError) as caught:
        runner.start(spec(config()))
    assert not isinstance(caught.value, RetryLater)
    assert "InaccessibleImage" in str(caught.value) and "not accessible" in str(caught.value)


def test_missing_settings_are_reported(arm, runner, monkeypatch):
    monkeypatch.delenv("ACI_RESOURCE_GROUP")
    with pytest.raises(RunnerError, match="ACI_RESOURCE_GROUP"):
        runner.start(spec(config()))


# --- start failures end as failed with ACI's reason --------------------------------------------------------


def test_image_pull_failure_ends_failed(arm, runner, manual_clock):
    arm.pull_failure_images.add("registry.example.invalid/worker:1")
    handle = runner.start(spec(config()))
    assert runner.status(handle).state == JobStatus.STARTING
    manual_clock.advance(arm.start_delay + 1)
    status = runner.status(handle)
    assert status.state == JobStatus.FAILED and status.exit_code is None
    assert status.message == (
        'image could not be pulled: Failed to pull image "registry.example.invalid/worker:1": '
        "rpc error: code = NotFound desc = failed to resolve reference "
        '"registry.example.invalid/worker:1": not found'
    )


def test_provisioning_failure_carries_acis_own_reason(arm, runner, manual_clock):
    """As the spec's ContainerGroupsGet_Failed example: the reason is a Normal FailedMount event of the group."""
    arm.provisioning_failure = "Output: mount error(2): Permission denied"
    handle = runner.start(spec(config()))
    manual_clock.advance(arm.start_delay + 1)
    raw = requests.get(group_url(arm, handle), headers=BEARER, timeout=5).json()["properties"]
    assert raw["provisioningState"] == "Failed" and raw["instanceView"]["state"] == "Pending"
    assert raw["instanceView"]["events"][0]["type"] == "Normal"
    assert raw["containers"][0]["properties"]["instanceView"]["currentState"]["detailStatus"] == ""
    status = runner.status(handle)
    assert status.state == JobStatus.FAILED and status.exit_code is None
    assert (
        status.message == "ACI could not start the container group: (FailedMount) Output: mount error(2): "
        "Permission denied"
    )


def test_a_missing_resource_group_says_so(arm, runner, manual_clock):
    handle = runner.start(spec(config(customCommand=["sh", "-c", "sleep 100"])))
    manual_clock.advance(5)
    assert runner.status(handle).state == JobStatus.RUNNING
    arm.remove_resource_group("rg-jobs")
    status = runner.status(handle)
    assert status.state == JobStatus.FAILED
    assert status.message == (
        f"container group {handle['group']} no longer exists: its resource group rg-jobs was not "
        "found (ResourceGroupNotFound; deleted with everything in it?)"
    )
    assert runner.stop(handle) == f"container group {handle['group']} already gone"
    runner.cleanup(handle)
    with pytest.raises(RunnerError) as caught:
        runner.start(spec(config()))
    assert not isinstance(caught.value, RetryLater)
    assert "resource group rg-jobs does not exist (ResourceGroupNotFound)" in str(caught.value)


def test_unhealthy_and_repairing_are_shown(arm, runner, manual_clock):
    handle = runner.start(spec(config(customCommand=["sh", "-c", "sleep 100"])))
    manual_clock.advance(5)
    arm.make_unhealthy(handle["group"], unhealthy_seconds=10, repairing_seconds=10)
    assert runner.status(handle).message == "container running; container group unhealthy (ACI repairs it by moving it)"
    manual_clock.advance(10)
    assert runner.status(handle).message == (
        "container running; container group repairing (ACI is moving it after it became unhealthy)"
    )
    manual_clock.advance(10)
    assert runner.status(handle).message == "container running"


def test_a_stopped_group_keeps_no_container_state(arm, runner, manual_clock):
    handle = runner.start(spec(config(customCommand=["sh", "-c", "echo before; sleep 100"])))
    manual_clock.advance(5)
    runner.stop(handle)
    raw = requests.get(group_url(arm, handle), headers=BEARER, timeout=5).json()["properties"]
    assert raw["instanceView"]["state"] == "Stopped" and raw["provisioningState"] == "Succeeded"
    assert "instanceView" not in raw["containers"][0]["properties"]
    status = runner.status(handle)
    assert (status.state, status.message, status.exit_code) == (
        JobStatus.FAILED,
        "stopped (container group stopped)",
        None,
    )


def test_stopping_a_finished_group_changes_nothing(arm, runner, manual_clock):
    handle = runner.start(spec(config(customCommand=["sh", "-c", "echo done; exit 0"])))
    manual_clock.advance(5)
    other = AzureContainerRunner(credential=runner._credential)  # no memory of the finished job
    assert other.stop(handle).endswith("stopped")
    status = other.status(handle)
    assert (status.state, status.exit_code) == (JobStatus.COMPLETED, 0)


def test_throttled_delete_is_retry_later(arm, runner, manual_clock):
    arm.delete_throttle_windows = ((1, 300.0),)
    first, second = runner.start(spec(config())), runner.start(spec(config()))
    manual_clock.advance(10)
    runner.cleanup(first)
    with pytest.raises(RetryLater) as caught:
        runner.cleanup(second)
    assert str(caught.value) == "ACI is throttling requests (delete the container group); retrying in 300 s"
    assert arm.group_names() == [second["group"]]


# --- what is sent, and what never is -----------------------------------------------------------------------


def test_group_definition_and_secure_environment(arm, runner, credential):
    uid = str(uuid.uuid4())
    handle = runner.start(spec(config(), uid=uid, env={"TOKEN": SECRET, "DM_JOB_URL": "http://x"}))
    assert handle == {
        "subscription": "00000000-0000-0000-0000-0000000000aa",
        "resourceGroup": "rg-jobs",
        "group": f"job-{uid}",
        "container": "main",
    }
    body = arm.last_put_bodies[handle["group"]]
    props = body["properties"]
    assert props["restartPolicy"] == "Never" and props["osType"] == "Linux"
    assert body["tags"]["dm-job-uid"] == uid and body["location"] == "norwayeast"
    env = props["containers"][0]["properties"]["environmentVariables"]
    assert {"name": "TOKEN", "secureValue": SECRET} in env and all("value" not in e for e in env)
    assert "ipAddress" not in props  # no public IP
    # ARM never returns secure values; the stand-in does as Azure does
    status = runner.status(handle)
    assert SECRET not in json.dumps(status.__dict__, default=str)
    assert credential.scopes and credential.scopes[0] == (arm.url + "/.default",)


def test_registry_through_identity(arm, runner, monkeypatch):
    identity = "/subscriptions/s/resourceGroups/id/providers/Microsoft.ManagedIdentity/userAssignedIdentities/jobs"
    monkeypatch.setenv("ACI_REGISTRY_SERVER", "registry.example.invalid")
    monkeypatch.setenv("ACI_JOB_IDENTITY_ID", identity)
    handle = runner.start(spec(config(containerImage="simpos-omniats")))
    body = arm.last_put_bodies[handle["group"]]
    assert body["properties"]["containers"][0]["properties"]["image"] == "registry.example.invalid/simpos-omniats"
    assert body["properties"]["imageRegistryCredentials"] == [
        {"server": "registry.example.invalid", "identity": identity}
    ]
    assert body["identity"]["type"] == "UserAssigned" and identity in body["identity"]["userAssignedIdentities"]


def test_registry_with_password_never_read_back(arm, runner, monkeypatch):
    monkeypatch.setenv("ACI_REGISTRY_SERVER", "registry.example.invalid")
    monkeypatch.setenv("ACI_REGISTRY_USERNAME", "puller")
    monkeypatch.setenv("ACI_REGISTRY_PASSWORD", "registry-" + SECRET)
    handle = runner.start(spec(config()))
    cred = arm.last_put_bodies[handle["group"]]["properties"]["imageRegistryCredentials"][0]
    assert cred["username"] == "puller" and cred["password"] == "registry-" + SECRET
    read = requests.get(
        f"{arm.url}/subscriptions/{handle['subscription']}/resourceGroups/rg-jobs/providers/"
        f"Microsoft.ContainerInstance/containerGroups/{handle['group']}?api-version=2023-05-01",
        headers={"Authorization": "Bearer t"},
        timeout=5,
    ).json()
    assert read["properties"]["imageRegistryCredentials"] == [
        {"server": "registry.example.invalid", "username": "puller"}
    ]
    assert SECRET not in json.dumps(read)


def test_images_elsewhere_get_no_credentials(arm, runner, monkeypatch):
    monkeypatch.setenv("ACI_REGISTRY_SERVER", "registry.example.invalid")
    monkeypatch.setenv("ACI_REGISTRY_USERNAME", "puller")
    monkeypatch.setenv("ACI_REGISTRY_PASSWORD", "pw")
    handle = runner.start(spec(config(containerImage="other-registry.example.invalid/library/python:3.11")))
    assert "imageRegistryCredentials" not in arm.last_put_bodies[handle["group"]]["properties"]


def test_omnia_classic_group(arm, credential, monkeypatch):
    monkeypatch.setenv("OMNIA_SUBNET_ID", "/subscriptions/s/.../subnets/default")
    monkeypatch.setenv("OMNIA_LOG_ANALYTICS_WORKSPACE_ID", "ws-id")
    monkeypatch.setenv("OMNIA_LOG_ANALYTICS_WORKSPACE_KEY", "ws-" + SECRET)
    runner = OmniaClassicRunner(credential=credential)
    cfg = {
        "type": "dmss://WorkflowDS/Blueprints/OmniaClassicAzureContainer",
        "image": "registry.example.invalid/old:2",
        "command": "python -m job --fast",
        "logAnalyticsWorkspaceResourceId": "/subscriptions/s/.../workspaces/w",
    }
    handle = runner.start(spec(cfg))
    props = arm.last_put_bodies[handle["group"]]["properties"]
    assert props["subnetIds"] == [{"id": "/subscriptions/s/.../subnets/default"}]
    assert props["ipAddress"]["type"] == "Private"
    assert props["containers"][0]["properties"]["command"] == ["python", "-m", "job", "--fast"]
    assert props["diagnostics"]["logAnalytics"] == {
        "workspaceId": "ws-id",
        "workspaceKey": "ws-" + SECRET,
        "logType": "ContainerInstanceLogs",
        "workspaceResourceId": "/subscriptions/s/.../workspaces/w",
    }
    cfg["subnetId"] = "/subscriptions/s/.../subnets/mine"
    handle = runner.start(spec(cfg))
    assert arm.last_put_bodies[handle["group"]]["properties"]["subnetIds"] == [{"id": cfg["subnetId"]}]


def test_omnia_workspace_resource_needs_settings(arm):
    cfg = {
        "type": "dmss://DMT-Internal/DMT/AzureContainerInstanceJobClassic",
        "image": "x/y:1",
        "subnetId": "s",
        "logAnalyticsWorkspaceResourceId": "/w",
    }
    with pytest.raises(ConfigError, match="OMNIA_LOG_ANALYTICS_WORKSPACE_ID"):
        OmniaClassicRunner().validate(cfg)


# --- lifecycle details -------------------------------------------------------------------------------------


def test_start_twice_keeps_one_group(arm, runner):
    job = spec(config())
    assert runner.start(job) == runner.start(job)
    assert arm.counts["creates"] == 1


def test_logs_survive_group_deletion(arm, runner, manual_clock):
    handle = runner.start(spec(config(customCommand=["sh", "-c", "echo one; echo two; sleep 1; echo three"])))
    manual_clock.advance(10)
    assert runner.status(handle).state == JobStatus.COMPLETED
    runner.cleanup(handle)
    assert arm.group_names() == []
    assert runner.logs(handle) == "one\ntwo\nthree\n"
    assert runner.status(handle).state == JobStatus.COMPLETED  # remembered: a finished job never raises
    # a second runner instance (another host) that never saw the job: honest failure, no exception
    other = AzureContainerRunner(credential=runner._credential)
    assert other.status(handle).state == JobStatus.FAILED


def test_stop_captures_logs_first(arm, runner, manual_clock):
    handle = runner.start(spec(config(customCommand=["sh", "-c", "echo before; sleep 100"])))
    manual_clock.advance(5)
    assert runner.stop(handle).endswith("stopped")
    manual_clock.advance(1)
    status = runner.status(handle)
    assert status.state == JobStatus.FAILED
    assert status.log == ["before"]  # the group keeps no container state after a stop: the log is the copy kept
    assert "before" in runner.logs(handle)


def test_keep_failed_groups(arm, runner, manual_clock, monkeypatch):
    monkeypatch.setenv("ACI_KEEP_FAILED_GROUPS", "true")
    failed = runner.start(spec(config(customCommand=["sh", "-c", "exit 4"])))
    ok = runner.start(spec(config(customCommand=["sh", "-c", "exit 0"])))
    manual_clock.advance(10)
    runner.cleanup(failed)
    runner.cleanup(ok)
    assert arm.group_names() == [failed["group"]]


def test_stand_in_follows_the_lro_contract(arm, credential):
    """The SDK's own long-running-operation polling (Azure-AsyncOperation) and list work against the stand-in."""
    arm.start_delay = 0
    client = ContainerInstanceManagementClient(credential, "sub", base_url=arm.url, retry_total=0)
    group = aci.ContainerGroup(
        location="westeurope",
        os_type="Linux",
        restart_policy="Never",
        containers=[
            aci.Container(
                name="c",
                image="busybox",
                command=["sh", "-c", "echo x"],
                resources=aci.ResourceRequirements(requests=aci.ResourceRequests(cpu=1, memory_in_gb=1)),
            )
        ],
    )
    created = client.container_groups.begin_create_or_update(
        "rg", "lro-test", group, polling_interval=0, enforce_https=False
    ).result()
    assert created.provisioning_state == "Succeeded" and created.name == "lro-test"
    assert [g.name for g in client.container_groups.list_by_resource_group("rg", enforce_https=False)] == ["lro-test"]
    assert [g.name for g in client.container_groups.list(enforce_https=False)] == ["lro-test"]
    assert client.containers.list_logs("rg", "lro-test", "c", enforce_https=False).content == "x\n"
    client.container_groups.begin_delete("rg", "lro-test", polling_interval=0, enforce_https=False).result()
    assert arm.group_names() == []
    assert any(path.endswith("/operations/" + next(iter(arm.operations))) for _, path, _ in arm.requests)


def test_stand_in_requires_a_bearer_token(arm):
    response = requests.get(
        f"{arm.url}/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/"
        "containerGroups/x?api-version=2023-05-01",
        timeout=5,
    )
    assert response.status_code == 401 and response.json()["error"]["code"] == "AuthenticationFailed"


def test_https_enforced_off_loopback(monkeypatch):
    monkeypatch.setenv("AZURE_RESOURCE_MANAGER_URL", "http://management.example.com")
    assert AzureContainerRunner._call_options() == {}
    monkeypatch.setenv("AZURE_RESOURCE_MANAGER_URL", "http://127.0.0.1:1234")
    assert AzureContainerRunner._call_options() == {"enforce_https": False}


def test_stand_in_pins_the_api_version(arm, credential):
    base = f"{arm.url}/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/x"
    answers = {
        version: requests.get(base + (f"?api-version={version}" if version else ""), headers=BEARER, timeout=5).json()[
            "error"
        ]
        for version in ("", "banana", "2021-09-01")
    }
    assert answers[""]["code"] == "MissingApiVersionParameter"
    assert answers["banana"] == {
        "code": "InvalidApiVersionParameter",
        "message": "The api-version 'banana' is invalid. The supported versions are '2023-05-01'.",
    }
    assert answers["2021-09-01"]["code"] == "NoRegisteredProviderFound"
    assert answers["2021-09-01"]["message"].startswith(
        "No registered resource provider found for location 'norwayeast' and API version '2021-09-01' for type "
        "'containerGroups'."
    )
    old = ContainerInstanceManagementClient(credential, "s", base_url=arm.url, retry_total=0, api_version="2021-09-01")
    with pytest.raises(HttpResponseError) as caught:
        old.container_groups.get("rg", "x", enforce_https=False)
    assert caught.value.error.code == "NoRegisteredProviderFound"


def test_stand_in_answers_put_and_delete_as_long_running_operations(arm, manual_clock):
    url = (
        f"{arm.url}/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/lro"
        "?api-version=2023-05-01"
    )
    body = {
        "location": "norwayeast",
        "properties": {
            "osType": "Linux",
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "c",
                    "properties": {
                        "image": "busybox",
                        "command": ["sh", "-c", "sleep 60"],
                        "resources": {"requests": {"cpu": 1, "memoryInGB": 1}},
                    },
                }
            ],
        },
    }
    created = requests.put(url, json=body, headers=BEARER, timeout=5)
    assert created.status_code == 201 and created.json()["properties"]["provisioningState"] == "Pending"
    operation = created.headers["Azure-AsyncOperation"]
    assert "/providers/Microsoft.ContainerInstance/locations/norwayeast/operations/" in operation

    def read():
        return (
            requests.get(url, headers=BEARER, timeout=5).json()["properties"],
            requests.get(operation, headers=BEARER, timeout=5).json()["status"],
        )

    props, status = read()
    assert (props["provisioningState"], status, "instanceView" in props["containers"][0]["properties"]) == (
        "Pending",
        "InProgress",
        False,
    )
    manual_clock.advance(arm.start_delay / 2)
    props, status = read()
    assert (props["provisioningState"], status) == ("Creating", "InProgress")
    assert props["containers"][0]["properties"]["instanceView"]["currentState"] == {
        "state": "Waiting",
        "detailStatus": "",
        "startTime": props["containers"][0]["properties"]["instanceView"]["currentState"]["startTime"],
    }
    manual_clock.advance(arm.start_delay / 2)
    props, status = read()
    assert (props["provisioningState"], status, props["instanceView"]["state"]) == ("Succeeded", "Succeeded", "Running")
    deleted = requests.delete(url, headers=BEARER, timeout=5)
    assert deleted.status_code == 202 and "/resourceGroups/rg/" in deleted.headers["Azure-AsyncOperation"]
    assert (
        requests.get(deleted.headers["Azure-AsyncOperation"], headers=BEARER, timeout=5).json()["status"] == "Succeeded"
    )
    assert requests.delete(url, headers=BEARER, timeout=5).status_code == 204
