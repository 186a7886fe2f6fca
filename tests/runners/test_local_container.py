"""Local container runner: validation, state mapping, and details against real podman."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from docker import errors as docker_errors

from runners.base import ConfigError, JobSpec, RunnerError
from runners.local_container import LocalContainerRunner, _gone, container_name, map_container_state
from shared.jobs.status import JobStatus

LOCAL = "dmss://WorkflowDS/Blueprints/LocalContainer"
SECRET = "s3cr3t-Value-never-shown"


def config(command, **extra):
    return {
        "type": LOCAL,
        "name": "t",
        "containerImage": "localhost/busybox:test",
        "network": "none",
        "customCommand": ["sh", "-c", command],
        **extra,
    }


def spec(cfg):
    return JobSpec(uid=str(uuid.uuid4()), config=cfg, environment={"TOKEN": SECRET}, time_limit_seconds=60)


@pytest.mark.parametrize(
    "state,expected",
    [
        ({"Status": "created"}, JobStatus.STARTING),
        ({"Status": "running", "Running": True}, JobStatus.RUNNING),
        ({"Status": "exited", "ExitCode": 0}, JobStatus.COMPLETED),
        ({"Status": "exited", "ExitCode": 137, "OOMKilled": True}, JobStatus.FAILED),
        ({"Status": "dead", "ExitCode": 0}, JobStatus.FAILED),
        ({"Status": "weird"}, JobStatus.UNKNOWN),
    ],
)
def test_state_mapping(state, expected):
    assert map_container_state(state)["state"] == expected


def test_oom_is_explained():
    assert "out of memory" in map_container_state({"Status": "exited", "ExitCode": 137, "OOMKilled": True})["message"]


@pytest.mark.parametrize(
    "bad,fragment",
    [
        ({"containerImage": None}, "an image is required"),
        ({"computeResource": {"cpu": 0}}, "runner.computeResource.cpu"),
        ({"computeResource": {"memory": -1}}, "runner.computeResource.memory"),
        ({"customCommand": 5}, "runner.customCommand"),
    ],
)
def test_validation(bad, fragment):
    with pytest.raises(ConfigError) as caught:
        LocalContainerRunner().validate({**config("true"), **bad})
    assert fragment in str(caught.value)


def test_image_object_and_string_command():
    from runners.config import parse_config
    from runners.local_container import LocalContainerConfig

    cfg = parse_config(
        LocalContainerConfig,
        {"type": LOCAL, "image": {"registryName": "", "imageName": "busybox"}, "customCommand": "sh -c 'echo a b'"},
    )
    assert cfg.image_reference() == "busybox:latest"
    assert cfg.command_list() == ["sh", "-c", "echo a b"]
    assert cfg.network == "none"
    assert container_name("a/b c") == "dm-job-a-b-c"


def test_container_settings_and_labels(docker_env, docker_client):
    runner = LocalContainerRunner()
    job = spec(config("sleep 30", computeResource={"cpu": 0.5, "memory": 0.25}))
    handle = runner.start(job)
    try:
        assert SECRET not in json.dumps(handle)
        container = docker_client.containers.get(handle["id"])
        assert container.labels["dm-job.uid"] == job.uid
        host = container.attrs["HostConfig"]
        assert host["NanoCpus"] == 500_000_000 and host["Memory"] == 256 * 1024**2
        assert runner.start(job) == handle  # start again (an activity retried): the same container
    finally:
        runner.stop(handle)
        runner.cleanup(handle)


def test_result_falls_back_to_output_and_stop_keeps_log(docker_env):
    runner = LocalContainerRunner()
    handle = runner.start(spec(config("echo only-output; exit 0")))
    import time

    deadline = time.monotonic() + 20
    while not runner.status(handle).finished and time.monotonic() < deadline:
        time.sleep(0.1)
    assert runner.result(handle).strip() == "only-output"
    runner.cleanup(handle)

    handle = runner.start(spec(config("echo started; sleep 100")))
    while "started" not in runner.logs(handle) and time.monotonic() < deadline:
        time.sleep(0.1)
    runner.stop(handle)
    assert "started" in runner.logs(handle)  # kept after the container is removed
    assert runner.status(handle).state == JobStatus.FAILED
    runner.cleanup(handle)


def test_missing_image_is_a_runner_error(docker_env, docker_client):
    runner = LocalContainerRunner()
    job = spec({**config("true"), "containerImage": "localhost/does-not-exist:1"})
    with pytest.raises(RunnerError) as caught:
        runner.start(job)
    assert SECRET not in str(caught.value)
    assert not docker_client.containers.list(all=True, filters={"label": f"dm-job.uid={job.uid}"})


def test_a_container_created_but_never_started_is_started_once(docker_env, docker_client, tmp_path):
    """The start died between the engine's create and start: the next start starts that container."""
    job = spec(config("echo ran once"))
    name = container_name(job.uid)
    docker_client.containers.create(
        "localhost/busybox:test",
        ["sh", "-c", "echo ran once"],
        name=name,
        labels={"dm-job.uid": job.uid},
        network_mode="none",
    )
    runner = LocalContainerRunner()
    try:
        handle = runner.start(job)
        assert handle["container"] == name
        deadline = time.monotonic() + 30
        while not runner.status(handle).finished and time.monotonic() < deadline:
            time.sleep(0.1)
        assert runner.status(handle).state == JobStatus.COMPLETED
        assert runner.logs(handle).split() == ["ran", "once"]
        assert runner.start(job) == handle  # finished: adopted again, not restarted
        assert runner.logs(handle).split() == ["ran", "once"]
    finally:
        runner.cleanup(LocalContainerRunner().find(job) or {"container": name})


def test_a_start_that_loses_the_name_to_another_start_takes_its_container(docker_env, docker_client):
    job = spec(config("sleep 30"))
    name = container_name(job.uid)
    other = docker_client.containers.run(
        "localhost/busybox:test",
        ["sleep", "30"],
        name=name,
        detach=True,
        labels={"dm-job.uid": job.uid},
        network_mode="none",
    )
    runner = LocalContainerRunner()
    try:
        from runners.config import parse_config
        from runners.local_container import LocalContainerConfig

        handle = runner._create(parse_config(LocalContainerConfig, job.config), job, name)  # after its own look-up
        assert handle == {"container": name, "id": other.id}
        assert len(docker_client.containers.list(all=True, filters={"label": f"dm-job.uid={job.uid}"})) == 1
    finally:
        runner.cleanup({"container": name, "id": other.id})


def test_a_container_of_another_job_is_never_taken(docker_env, docker_client):
    job = spec(config("true"))
    name = container_name(job.uid)
    docker_client.containers.create("localhost/busybox:test", ["true"], name=name, labels={"dm-job.uid": "other"})
    try:
        with pytest.raises(RunnerError, match="belongs to another job"):
            LocalContainerRunner().start(job)
    finally:
        docker_client.containers.get(name).remove(force=True)


class _Notices:
    """A local HTTP server standing in for the app's progress route: records each PUT with the clock at arrival."""

    def __init__(self):
        self.received = []
        notices = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self):  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                notices.received.append((time.monotonic(), self.path, self.headers.get("Authorization"), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/jobs"


def test_the_engine_tells_of_an_exit_at_once(docker_env, docker_client):
    """A watcher waits on the engine and sends the exit notice when the container stops (once, however many
    starts), with the job's token in the header only; the container has no network of its own."""
    notices = _Notices()
    token = "tok-" + uuid.uuid4().hex
    job = JobSpec(
        uid=str(uuid.uuid4()),
        config=config("sleep 2; exit 4"),
        environment={"JOB_TOKEN": token, "DM_JOB_URL": notices.url, "JOB_UID": "job-9"},
        time_limit_seconds=60,
    )
    runner = LocalContainerRunner()
    try:
        handle = runner.start(job)
        assert runner.start(job) == handle  # a start repeated sets no second watcher
        deadline = time.monotonic() + 30
        while not notices.received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert notices.received, "no exit notice"
        arrived, path, authorization, body = notices.received[0]
        state = docker_client.api.inspect_container(handle["id"])["State"]
        assert state["Status"] == "exited" and state["ExitCode"] == 4  # sent after the exit, not before
        assert path == "/api/jobs/job-9?overwrite_log=false"
        assert authorization == f"Bearer {token}" and json.loads(body) == {"exited": True}
        time.sleep(1)
        assert len(notices.received) == 1
        assert runner.status(handle).exit_code == 4
    finally:
        runner.cleanup(runner.find(job) or {"container": container_name(job.uid)})
        notices.server.shutdown()


def test_no_watcher_without_a_token(docker_env):
    runner = LocalContainerRunner()
    handle = runner.start(spec(config("true")))
    try:
        assert not [t for t in threading.enumerate() if t.name == f"exit-{handle['container']}"]
    finally:
        runner.cleanup(handle)


def test_a_container_removed_mid_request_counts_as_gone():
    """Podman's 500 for a container removed while it was being inspected means gone, like a 404."""
    raced = "container 41c9 does not exist in database: no such container"
    assert _gone(docker_errors.APIError("500 Server Error", explanation=raced))
    assert not _gone(docker_errors.APIError("500 Server Error", explanation="disk full"))
