"""Local container runner: one container per job on a Docker Engine API (Docker, or podman's compatible service).

Config (`dmss://WorkflowDS/Blueprints/LocalContainer`, a Container plus `network`):
  - `image` {registryName, imageName, version} -> `{registryName}/{imageName}:{version}` (registryName may be
    empty), or a flat `containerImage` string (also accepted as a string `image`);
  - `customCommand`: list of strings (a single string is split like a shell would);
  - `computeResource` {cpu, memory (GB)} -> nano_cpus / memory limit;
  - `network`: a Docker network name or `none`/`host`/`bridge` (default `none`: no network at all);
  - `name`, `label`: informational.
The job's environment (JobSpec.environment) is passed as container environment, plus `JOB_RESULT_FILE`.

Result: the content of `/tmp/job-result` in the container (copied out with the archive API) when the job wrote
one, else the tail of its output. Stop kills and removes the container (its log and result are kept in memory
first, so the final record still has them); cleanup removes it (idempotent; an engine that does not answer is
RetryLater).

Starting is idempotent: the container is named after the job (`dm-job-<uid>`, labelled `dm-job.uid`), so a start
that finds it (an activity retried, or one that died after the engine created the container) answers a handle to
that container and creates nothing; a container created but never started (the start died between the two
calls) is started then. Two starts at once in this process take turns; one that loses the race to another
process (the engine answers 409 for the name) takes the winner's container.

The Container entity itself (image, command, resources) is `runners.container_config`, shared with the Azure
container runners.

Exits are noticed by the engine, not only by polls: a start also sets a watcher, a daemon thread blocked in the
engine's wait (`POST /containers/{id}/wait`, on a connection of its own so that it holds none of the runner's),
that when the container stops sends the app the job's exit notice (`{"exited": true}` on the job's own progress
route, `DM_JOB_URL`, with its `JOB_TOKEN`), which wakes the orchestration to poll now (shared.jobs.freshness).
It cannot outlive or leak: one per container in this process (a start repeated adds none), it ends when the
container stops or is removed, at the job's time limit, or with the process (a daemon thread; a sidecar
`docker wait` process would outlive a host that dies). Best effort: a watcher lost with its process, or an engine
that does not answer, leaves the job to its polls. The token travels only in the request's header; nothing of
the notice is logged but its outcome's type.
"""

from __future__ import annotations

import io
import logging
import re
import tarfile
import threading
import time
from typing import Any

import requests

from shared.jobs.status import JobStatus
from shared.platform import settings

from .base import FailureReason, JobSpec, RetryLater, Runner, RunnerError, RunnerStatus, UidLocks, no_secrets_in_errors
from .config import parse_config
from .container_config import ContainerConfig
from .output import Memo, log_tail_lines

try:  # an optional dependency, imported once here: the runner is simply absent when the Docker SDK is missing
    import docker
    from docker import errors as docker_errors
except ImportError:  # pragma: no cover
    docker = None
    docker_errors = None

log = logging.getLogger(__name__)

RESULT_PATH = "/tmp/job-result"
RESULT_COPY_ATTEMPTS = 4
RESULT_MAX_BYTES = 1024 * 1024
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
DOCKER_API_VERSION = "1.41"
ENGINE_RETRY_SECONDS = 5.0
NEVER_STARTED = ("created", "configured", "initialized")
EXIT_NOTICE_SECONDS = 10
WATCH_MARGIN_SECONDS = 60  # a watcher gives up this long after the job's time limit (the orchestration stops it)


class LocalContainerConfig(ContainerConfig):
    network: str = "none"


# --- the runner --------------------------------------------------------------------------------------------


def container_name(uid: str) -> str:
    safe = re.sub(r"[^a-zA-Z0-9_.-]+", "-", uid).strip("-.") or "job"
    return f"dm-job-{safe}"[:128]


class LocalContainerRunner(Runner):
    type_names = ("dmss://WorkflowDS/Blueprints/LocalContainer",)
    local = True

    def __init__(self, client: Any = None):
        self._client = client
        self._own_engine = client is None  # the watchers open the same engine (DOCKER_HOST) on their own
        self._client_lock = threading.Lock()
        self._ended = Memo()  # container name -> {"status", "log", "result"} captured before removal
        self._starting = UidLocks()
        self._watched: set[str] = set()  # containers with a watcher in this process
        self._watch_lock = threading.Lock()

    # -- plumbing
    def _docker(self) -> Any:
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    if docker is None:  # pragma: no cover
                        raise RunnerError("the Docker SDK is not installed")
                    base_url = settings.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
                    self._client = docker.DockerClient(base_url=base_url, version=DOCKER_API_VERSION, timeout=60)
        return self._client

    def _container(self, handle: dict[str, Any]) -> Any:
        """The container, or None when it no longer exists."""
        try:
            return self._docker().containers.get(handle.get("id") or handle["container"])
        except docker_errors.NotFound:
            return None
        except docker_errors.APIError as error:
            if _gone(error):
                return None
            raise RunnerError(f"container engine error: {_explain(error)}") from None
        except Exception as error:  # connection refused, socket missing
            raise RunnerError(f"container engine not reachable: {type(error).__name__}") from None

    # -- Runner interface
    def validate(self, config: dict[str, Any]) -> None:
        parse_config(LocalContainerConfig, config)

    def _existing(self, name: str, uid: str) -> Any:
        """The job's container if it exists (None if not); a container of that name of another job is an error."""
        try:
            existing = self._docker().containers.get(name)
        except docker_errors.NotFound:
            return None
        except docker_errors.APIError as error:
            if _gone(error):
                return None
            raise _engine_error(error) from None
        except Exception as error:
            raise RunnerError(f"container engine not reachable: {type(error).__name__}") from None
        if (existing.labels or {}).get("dm-job.uid") != uid:
            raise RunnerError(f"a container named {name} already exists and belongs to another job")
        return existing

    def _adopt(self, container: Any, name: str) -> dict[str, Any]:
        """The handle of a container an earlier start made; started now if that start died before starting it."""
        status = ((container.attrs.get("State") or {}).get("Status") or "").lower()
        if status in NEVER_STARTED:
            try:
                container.start()
            except docker_errors.APIError as error:
                if error.status_code not in (304, 409):  # 304: started meanwhile (by the other start)
                    raise RunnerError(f"container for job could not start: {_explain(error)}") from None
        return {"container": name, "id": container.id}

    def find(self, job: JobSpec) -> dict[str, Any] | None:
        name = container_name(job.run_id)
        existing = self._existing(name, job.uid)
        return {"container": name, "id": existing.id} if existing is not None else None

    def start(self, job: JobSpec) -> dict[str, Any]:
        cfg: LocalContainerConfig = parse_config(LocalContainerConfig, job.config)
        name = container_name(job.run_id)  # dm-job-<uid>, or dm-job-<uid>-a<n> for attempt n of a retried job
        with self._starting.hold(job.uid), no_secrets_in_errors(job):
            existing = self._existing(name, job.uid)
            if existing is not None:  # start called again for the same job (an activity retried): same container
                handle = self._adopt(existing, name)
            else:
                handle = self._create(cfg, job, name)
        self._watch(handle, job)
        return handle

    # -- noticing an exit
    def _watch(self, handle: dict[str, Any], job: JobSpec) -> None:
        """Set the container's watcher (once per container in this process), when the job can be told about."""
        env = job.environment
        if not self._own_engine:
            return  # a client given by the caller: its engine may not be the one DOCKER_HOST names
        if not (env.get("JOB_TOKEN") and env.get("DM_JOB_URL") and env.get("JOB_UID")):
            return
        with self._watch_lock:
            if handle["container"] in self._watched:
                return
            self._watched.add(handle["container"])
        limit = job.time_limit_seconds + WATCH_MARGIN_SECONDS if job.time_limit_seconds else None
        notice = (f"{env['DM_JOB_URL'].rstrip('/')}/{env['JOB_UID']}", env["JOB_TOKEN"])
        threading.Thread(
            target=self._await_exit, args=(handle, notice, limit), name=f"exit-{handle['container']}", daemon=True
        ).start()

    def _await_exit(self, handle: dict[str, Any], notice: tuple[str, str], limit: float | None) -> None:
        try:
            if _wait_for_exit(handle["id"], limit):
                _send_exit_notice(*notice)
        finally:
            with self._watch_lock:
                self._watched.discard(handle["container"])

    def _run_options(self, cfg: LocalContainerConfig, job: JobSpec, name: str) -> dict[str, Any]:
        environment = dict(job.environment)
        environment.setdefault("JOB_RESULT_FILE", RESULT_PATH)
        kwargs: dict[str, Any] = {
            "image": cfg.image_reference(),
            "command": cfg.command_list(),
            "name": name,
            "detach": True,
            "environment": environment,
            "labels": {
                "dm-job.uid": job.uid,
                "dm-job.runner": "local-container",
                "dm-job.name": (cfg.name or "")[:200],
            },
        }
        if cfg.network in ("none", "host", "bridge"):
            kwargs["network_mode"] = cfg.network
        else:
            kwargs["network"] = cfg.network
        if cfg.computeResource and cfg.computeResource.cpu:
            kwargs["nano_cpus"] = int(cfg.computeResource.cpu * 1e9)
        if cfg.computeResource and cfg.computeResource.memory:
            kwargs["mem_limit"] = int(cfg.computeResource.memory * 1024**3)
        return kwargs

    def _create(self, cfg: LocalContainerConfig, job: JobSpec, name: str) -> dict[str, Any]:
        try:
            container = self._docker().containers.run(**self._run_options(cfg, job, name))
        except docker_errors.ImageNotFound as error:
            self._remove_quietly(name)
            raise RunnerError(
                f"image {cfg.image_reference()} not found: {_explain(error)}", FailureReason.IMAGE_PULL
            ) from None
        except docker_errors.APIError as error:
            if _name_taken(error):  # meanwhile, by another start of this job? (Docker: 409, podman: 500)
                existing = self._existing(name, job.uid)
                if existing is not None:
                    return self._adopt(existing, name)
            self._remove_quietly(name)  # created but not started (e.g. command not found)
            raise RunnerError(f"container for job could not start: {_explain(error)}") from None
        except Exception as error:
            self._remove_quietly(name)
            raise RunnerError(f"container engine not reachable: {type(error).__name__}") from None
        return {"container": name, "id": container.id}

    def status(self, handle: dict[str, Any]) -> RunnerStatus:
        container = self._container(handle)
        if container is None:
            ended = self._ended.get(handle["container"])
            if ended is not None:
                return ended["status"]
            return RunnerStatus(JobStatus.FAILED, message=f"container {handle['container']} no longer exists")
        state = container.attrs.get("State") or {}
        lines = self._log_lines(container, log_tail_lines())
        return RunnerStatus(log=lines, **map_container_state(state))

    def stop(self, handle: dict[str, Any]) -> str:
        container = self._container(handle)
        if container is None:
            return f"container {handle['container']} already gone"
        killed = False
        try:
            container.reload()
            if (container.attrs.get("State") or {}).get("Running"):
                container.kill()
                killed = True
                container.reload()
        except docker_errors.NotFound:
            return f"container {handle['container']} already gone"
        except docker_errors.APIError:  # not running any more: fine
            pass
        state = container.attrs.get("State") or {}
        text = self._log_text(container)
        fields = map_container_state(state)
        if killed:
            fields = {
                "state": JobStatus.FAILED,
                "message": "stopped: container killed and removed",
                "exit_code": state.get("ExitCode"),
            }
        snapshot = {
            "log": text,
            "result": self._read_result(container),
            "status": RunnerStatus(log=text.splitlines()[-log_tail_lines() :], **fields),
        }
        self._ended.put(handle["container"], snapshot)
        self._remove_quietly(container.id)
        return f"container {handle['container']} killed and removed"

    def logs(self, handle: dict[str, Any]) -> str:
        container = self._container(handle)
        if container is None:
            ended = self._ended.get(handle["container"])
            return ended["log"] if ended else ""
        return self._log_text(container)

    def result(self, handle: dict[str, Any]) -> str | None:
        container = self._container(handle)
        if container is None:
            ended = self._ended.get(handle["container"])
            return ended["result"] if ended else None
        return self._read_result(container)

    def cleanup(self, handle: dict[str, Any]) -> None:
        self._remove_quietly(handle.get("id") or handle["container"])
        self._ended.pop(handle["container"])

    # -- helpers
    def _remove_quietly(self, ref: str) -> None:
        """Remove a container if it exists. Engine trouble is RetryLater (cleanup is asked again)."""
        try:
            self._docker().containers.get(ref).remove(force=True)
        except docker_errors.NotFound:
            pass
        except docker_errors.APIError as error:
            if error.status_code == 409 and "in progress" in _explain(error).lower():
                return  # another cleanup is removing it
            if not _gone(error):
                raise _engine_error(error, "could not remove container") from None
        except RunnerError:
            raise
        except Exception as error:  # connection refused, socket missing
            raise RetryLater(f"container engine not reachable: {type(error).__name__}", ENGINE_RETRY_SECONDS) from None

    @staticmethod
    def _log_text(container: Any, tail_lines: Any = "all") -> str:
        try:
            data = container.logs(stdout=True, stderr=True, tail=tail_lines)
        except Exception:  # vanished between calls
            return ""
        return data.decode("utf-8", errors="replace")

    def _log_lines(self, container: Any, count: int) -> list[str]:
        return self._log_text(container, count).splitlines()

    def _read_result(self, container: Any) -> str | None:
        for attempt in range(RESULT_COPY_ATTEMPTS):
            try:
                bits, _stat = container.get_archive(RESULT_PATH)
                data = b"".join(bits)
                with tarfile.open(fileobj=io.BytesIO(data)) as archive:
                    member = next((m for m in archive.getmembers() if m.isfile()), None)
                    if member is not None:
                        handle = archive.extractfile(member)
                        if handle is not None:
                            return handle.read(RESULT_MAX_BYTES).decode("utf-8", errors="replace")
                break
            except docker_errors.NotFound:  # the job wrote no result file
                break
            except Exception:  # noqa: BLE001 - a busy engine may fail a copy from a stopped container: retry
                time.sleep(0.2 * (attempt + 1))
        text = self._log_text(container, log_tail_lines())
        return text if text else None


def _wait_for_exit(container_id: str, limit: float | None) -> bool:
    """Block until the container stops (True), or the engine fails or the limit passes (False)."""
    base_url = settings.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
    try:
        with docker.APIClient(base_url=base_url, version=DOCKER_API_VERSION, timeout=limit) as api:
            api.wait(container_id, timeout=limit)
        return True
    except docker_errors.NotFound:
        return True  # removed already (stopped, or finished and cleaned up): a notice is harmless
    except Exception as error:  # noqa: BLE001 - engine gone, time limit passed: the polls go on
        log.info("exit watcher of a container gave up: %s", type(error).__name__)
        return False


def _send_exit_notice(url: str, token: str) -> None:
    try:
        requests.put(
            url,
            params={"overwrite_log": "false"},
            json={"exited": True},
            headers={"Authorization": f"Bearer {token}"},
            timeout=EXIT_NOTICE_SECONDS,
        )
    except requests.RequestException as error:
        log.info("exit notice not delivered: %s", type(error).__name__)


def map_container_state(state: dict[str, Any]) -> dict[str, Any]:
    """Docker `State` -> RunnerStatus fields (state, message, exit_code)."""
    status = (state.get("Status") or "").lower()
    if status in ("created", "configured", "initialized"):
        return {"state": JobStatus.STARTING, "message": "container created"}
    if status in ("running", "paused", "restarting"):
        return {"state": JobStatus.RUNNING, "message": f"container {status}"}
    if status in ("exited", "stopped", "dead"):
        code = state.get("ExitCode")
        if code == 0 and status != "dead":
            return {"state": JobStatus.COMPLETED, "message": "container exited with code 0", "exit_code": 0}
        message = f"container exited with code {code}"
        reason = None
        if state.get("OOMKilled"):
            message += " (out of memory: raise computeResource.memory)"
            reason = FailureReason.OUT_OF_MEMORY
        if state.get("Error"):
            message += f": {str(state['Error'])[:300]}"
        return {"state": JobStatus.FAILED, "message": message, "exit_code": code, "reason": reason}
    if status == "removing":
        return {"state": JobStatus.FAILED, "message": "container is being removed"}
    return {"state": JobStatus.UNKNOWN, "message": f"container state {status or 'unknown'}"}


def _name_taken(error: Any) -> bool:
    return error.status_code == 409 or "already in use" in _explain(error).lower()


def _engine_error(error: Any, what: str = "container engine error") -> RunnerError:
    """An engine APIError: 5xx is RetryLater (a busy or restarting engine), anything else RunnerError."""
    if (error.status_code or 0) >= 500:
        return RetryLater(f"{what}: {_explain(error)}", ENGINE_RETRY_SECONDS)
    return RunnerError(f"{what}: {_explain(error)}")


def _gone(error: Exception) -> bool:
    """A container that no longer exists. Podman's compat API answers 404 for an unknown id, but 500 "container
    ... does not exist in database: no such container" for one removed while the request was in flight (seen
    in CI: an inspect racing the finish's removal), so the text decides as well as the status."""
    return getattr(error, "status_code", None) == 404 or "no such container" in _explain(error).lower()


def _explain(error: Exception) -> str:
    explanation = getattr(error, "explanation", None) or str(error)
    if isinstance(explanation, bytes):
        explanation = explanation.decode("utf-8", errors="replace")
    return str(explanation)[:500]


RUNNERS = [LocalContainerRunner] if docker is not None else []
