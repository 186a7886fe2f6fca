"""Azure Container Instances runners: one container group per job.

Types:
  - `dmss://WorkflowDS/Blueprints/AzureContainer` (AzureContainerRunner): a Container entity (`image` object or
    string, or flat `containerImage`; `customCommand`; `computeResource` {cpu, memory GB}).
  - `dmss://WorkflowDS/Blueprints/OmniaClassicAzureContainer` and `dmss://DMT-Internal/DMT/AzureContainerInstanceJobClassic`
    (OmniaClassicRunner): the same plus the old attribute names `image` (string) and `command`, a delegated
    subnet (`subnetId`, default OMNIA_SUBNET_ID), a private IP address and Log Analytics diagnostics
    (OMNIA_LOG_ANALYTICS_WORKSPACE_ID/KEY, `logAnalyticsWorkspaceResourceId`).

Behaviour:
  - group name `job-<uid>` (lowercase, <= 63 chars; see `group_name`), restart policy Never, Linux;
  - cpu/memory validated against ACI's Linux group limits (0.1..4 vCPU, 0.1..16 GB in 0.1 GB steps): a
    ConfigError, never clamped; defaults 1 vCPU / 1.5 GB;
  - the job's environment goes in as `secure_value`s (ARM never returns them);
  - registry credentials for images on ACI_REGISTRY_SERVER: the user-assigned identity ACI_JOB_IDENTITY_ID
    when set, else ACI_REGISTRY_USERNAME/PASSWORD;
  - `start` sends the PUT and returns at once (no LRO wait); 429/5xx/connection errors -> RetryLater honouring
    Retry-After; other refusals -> RunnerError with ARM's code and message. It is idempotent: it GETs the group
    first and, when the job's group exists (an activity retried, or one that died after the PUT), answers its
    handle without a PUT (a PUT on an existing group is an update, which may restart it); starts of one job in
    this process take turns;
  - `status` maps the group's provisioning state and the container's instance view (runners.aci_state.map_group):
    an image that cannot be pulled or a provisioning failure ends the job as failed with ACI's reason (the event
    that explains it, whatever its type); Unhealthy/Repairing groups say so; a group gone with its resource group
    (404 ResourceGroupNotFound) says that;
  - the full log is captured when a poll first sees the job finished, and before `stop` (ACI keeps only 16 KB
    after a group stops, nothing after it is deleted); `logs()` serves that copy once the group is gone;
  - `cleanup` deletes the group (ACI_KEEP_FAILED_GROUPS keeps the groups of failed jobs); a throttled delete (100
    per 5 minutes) is RetryLater, a group already gone is fine, so it can be called again;
  - `result`: ACI has no file channel, so the result is the tail of the job's output (LOG_TAIL_LINES lines).

The ARM client is the real `ContainerInstanceManagementClient`, created once per (subscription, endpoint), with
the SDK's own retries off (the orchestrator owns waiting, on its replaceable clock). Plain-http endpoints are
allowed only on loopback (the test stand-in).
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import math
import re
import threading
from contextlib import contextmanager
from typing import Any, Iterator, Optional
from urllib.parse import urlparse

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError, ServiceResponseError
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance import models as aci
from pydantic import model_validator

from shared.jobs.status import JobStatus
from shared.platform import clock, settings

from .aci_state import map_group
from .base import ConfigError, JobSpec, RetryLater, Runner, RunnerError, RunnerStatus, UidLocks, no_secrets_in_errors
from .config import parse_config
from .container_config import ContainerConfig, split_command
from .output import Memo, log_tail_lines

log = logging.getLogger(__name__)

ACI_MIN_CPU, ACI_MAX_CPU = 0.1, 4.0
ACI_MIN_MEMORY_GB, ACI_MAX_MEMORY_GB = 0.1, 16.0
DEFAULT_CPU, DEFAULT_MEMORY_GB = 1.0, 1.5
DEFAULT_429_RETRY_SECONDS = 60.0
DEFAULT_5XX_RETRY_SECONDS = 15.0
MAX_RETRY_SECONDS = 3600.0
OMNIA_PRIVATE_PORT = 80
_NAME_OK = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


# --- names -------------------------------------------------------------------------------------------------


def _dns_label(value: str, max_length: int) -> str:
    label = re.sub(r"[^a-z0-9-]+", "-", value.lower())
    label = re.sub(r"-{2,}", "-", label).strip("-")
    return label[:max_length].strip("-")


def group_name(uid: str) -> str:
    """`job-<uid>`: lowercase letters, digits and single dashes, <= 63 chars. A uid that had to be changed
    (other characters, too long) gains a short hash of the original, so two uids never share a name."""
    label = _dns_label(uid, 63)
    name = f"job-{label}" if label else "job"
    if label != uid.lower() or len(name) > 63:
        digest = hashlib.sha256(uid.encode()).hexdigest()[:10]
        name = f"job-{label[:48].strip('-')}-{digest}" if label else f"job-{digest}"
    assert _NAME_OK.match(name), name
    return name


def container_name(name: Optional[str]) -> str:
    return _dns_label(name or "", 63) or "job"


# --- configuration -----------------------------------------------------------------------------------------


class AzureContainerConfig(ContainerConfig):
    @model_validator(mode="after")
    def _aci_limits(self) -> "AzureContainerConfig":
        cpu, memory = self.resources()
        if cpu < ACI_MIN_CPU or cpu > ACI_MAX_CPU:
            raise ValueError(
                f"computeResource.cpu {cpu:g} is outside what ACI allows for a Linux container group "
                f"({ACI_MIN_CPU:g} to {ACI_MAX_CPU:g} vCPU)"
            )
        if memory < ACI_MIN_MEMORY_GB or memory > ACI_MAX_MEMORY_GB:
            raise ValueError(
                f"computeResource.memory {memory:g} GB is outside what ACI allows for a Linux container group "
                f"({ACI_MIN_MEMORY_GB:g} to {ACI_MAX_MEMORY_GB:g} GB)"
            )
        if abs(memory * 10 - round(memory * 10)) > 1e-6:
            raise ValueError(f"computeResource.memory {memory:g} GB: ACI takes memory in steps of 0.1 GB")
        return self

    def resources(self) -> tuple[float, float]:
        res = self.computeResource
        cpu = res.cpu if res and res.cpu is not None else DEFAULT_CPU
        memory = res.memory if res and res.memory is not None else DEFAULT_MEMORY_GB
        return float(cpu), float(memory)


class OmniaClassicConfig(AzureContainerConfig):
    command: Optional[list[str]] = None
    subnetId: Optional[str] = None
    logAnalyticsWorkspaceResourceId: Optional[str] = None

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("command") is not None:
            data = {**data, "command": split_command(data["command"])}
        return data

    def command_list(self) -> Optional[list[str]]:
        """`customCommand` (the Container blueprint's name) wins over the old `command`."""
        if self.customCommand:
            return list(self.customCommand)
        return list(self.command) if self.command else None


# --- Retry-After -------------------------------------------------------------------------------------------


def retry_after_seconds(headers: Any, default: float) -> float:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date, relative to the app clock); default when
    absent or unreadable; at least 1 s, at most an hour."""
    value = None
    if headers is not None:
        value = headers.get("Retry-After") or headers.get("retry-after") or headers.get("x-ms-retry-after-ms")
        if value is not None and headers.get("Retry-After") is None and headers.get("retry-after") is None:
            try:
                return min(max(float(value) / 1000.0, 1.0), MAX_RETRY_SECONDS)
            except ValueError:
                value = None
    if value is None:
        return default
    value = str(value).strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return default
        seconds = (when - clock.now()).total_seconds()
    if math.isnan(seconds):
        return default
    return min(max(seconds, 1.0), MAX_RETRY_SECONDS)


def _arm_error(error: HttpResponseError) -> tuple[str, str]:
    inner = getattr(error, "error", None)
    code = getattr(inner, "code", None) or getattr(error, "reason", None) or "Error"
    message = getattr(inner, "message", None) or ""
    if not message:
        message = str(error.message or error).splitlines()[0] if (error.message or str(error)) else ""
    return str(code), str(message)[:500]


def _transient(error: Exception, action: str) -> Optional[RetryLater]:
    """429 / 5xx / network trouble -> RetryLater with a message that says why."""
    if isinstance(error, (ServiceRequestError, ServiceResponseError)):
        return RetryLater(
            f"Azure Resource Manager not reachable while trying to {action}; retrying in "
            f"{DEFAULT_5XX_RETRY_SECONDS:g} s",
            DEFAULT_5XX_RETRY_SECONDS,
        )
    if not isinstance(error, HttpResponseError):
        return None
    status = error.status_code or 0
    headers = getattr(error.response, "headers", None)
    if status == 429:
        wait = retry_after_seconds(headers, DEFAULT_429_RETRY_SECONDS)
        if action == "create the container group":
            return RetryLater(f"ACI is throttling container group creation; retrying in {wait:g} s", wait)
        return RetryLater(f"ACI is throttling requests ({action}); retrying in {wait:g} s", wait)
    if status >= 500:
        wait = retry_after_seconds(headers, DEFAULT_5XX_RETRY_SECONDS)
        code, _message = _arm_error(error)
        return RetryLater(f"ACI answered HTTP {status} ({code}) when asked to {action}; retrying in {wait:g} s", wait)
    if status == 409:
        code, message = _arm_error(error)
        if "quota" in code.lower() or "quota" in message.lower():
            wait = retry_after_seconds(headers, DEFAULT_429_RETRY_SECONDS)
            return RetryLater(f"ACI container group quota reached ({code}); retrying in {wait:g} s", wait)
    return None


ARM_ERRORS = (HttpResponseError, ServiceRequestError, ServiceResponseError)


def translate_arm_error(error: Exception, action: str, refused: str) -> RunnerError:
    """An ARM error -> RetryLater (429, 5xx, a quota 409, network trouble; the message says why) or RunnerError
    `<refused>: <ARM code>: <ARM message>`."""
    retry = _transient(error, action)
    if retry is not None:
        return retry
    if isinstance(error, HttpResponseError):
        code, message = _arm_error(error)
        return RunnerError(f"{refused}: {code}: {message}")
    return RunnerError(f"{refused}: {type(error).__name__}")


@contextmanager
def arm_errors(action: str, refused: str) -> Iterator[None]:
    """Translate what an ARM call raises (see `translate_arm_error`). ResourceNotFoundError passes through
    unchanged: what a 404 means depends on the call (nothing to stop, nothing to delete, a group that went)."""
    try:
        yield
    except ResourceNotFoundError:
        raise
    except ARM_ERRORS as error:
        raise translate_arm_error(error, action, refused) from None


def resource_group_missing(error: ResourceNotFoundError) -> bool:
    """ARM answers 404 ResourceGroupNotFound (not ResourceNotFound) for anything in a resource group that is gone."""
    return _arm_error(error)[0] == "ResourceGroupNotFound"


# --- credentials -------------------------------------------------------------------------------------------


def default_credential() -> Any:
    # Imported here, not at the top: azure.identity (and msal under it) costs start-up time on every cold start,
    # and only a host that runs ACI jobs without an injected credential needs it.
    from azure.identity import DefaultAzureCredential

    client_id = settings.get("AZURE_CLIENT_ID") or None
    return DefaultAzureCredential(managed_identity_client_id=client_id)


def _registry_of(image: str) -> str:
    first = image.split("/", 1)[0]
    if "/" in image and ("." in first or ":" in first or first == "localhost"):
        return first.lower()
    return ""


# --- the runners -------------------------------------------------------------------------------------------


class AzureContainerRunner(Runner):
    type_names = ("dmss://WorkflowDS/Blueprints/AzureContainer",)
    local = False
    config_model: type[AzureContainerConfig] = AzureContainerConfig
    runner_label = "azure-container"

    def __init__(self, credential: Any = None, client: Any = None):
        self._credential = credential
        self._clients: dict[tuple[str, str], Any] = {}
        if client is not None:
            self._clients[("*", "*")] = client
        self._lock = threading.Lock()
        self._captured = Memo()  # group name -> full log captured before the group stops or goes
        self._starting = UidLocks()

    def use_credential(self, credential: Any) -> None:
        """Injection point: make this runner (e.g. the instance the registry holds, which is created without
        arguments) authenticate with `credential`, a `TokenCredential`; None goes back to the default
        `DefaultAzureCredential`. The ARM clients built with the previous credential are dropped.

        For tests and benchmarks that run the whole app against the ARM stand-in:
        `default_registry().get(ACI_TYPE).use_credential(StaticTokenCredential())`."""
        with self._lock:
            self._credential = credential
            for key in [k for k in self._clients if k != ("*", "*")]:
                del self._clients[key]

    # -- plumbing
    def _client(self, subscription: str) -> Any:
        if ("*", "*") in self._clients:
            return self._clients[("*", "*")]
        base_url = settings.get("AZURE_RESOURCE_MANAGER_URL").rstrip("/")
        key = (subscription, base_url)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                if self._credential is None:
                    self._credential = default_credential()
                client = ContainerInstanceManagementClient(
                    self._credential,
                    subscription,
                    base_url=base_url,
                    credential_scopes=[base_url + "/.default"],
                    retry_total=0,  # the orchestrator waits (RetryLater), not the SDK with time.sleep
                )
                self._clients[key] = client
            return client

    @staticmethod
    def _call_options() -> dict[str, Any]:
        url = urlparse(settings.get("AZURE_RESOURCE_MANAGER_URL"))
        if url.scheme == "http" and url.hostname in ("127.0.0.1", "localhost", "::1"):
            return {"enforce_https": False}  # the loopback stand-in only
        return {}

    def _where(self) -> tuple[str, str]:
        subscription = settings.get("AZURE_SUBSCRIPTION_ID")
        resource_group = settings.get("ACI_RESOURCE_GROUP")
        missing = [
            n for n, v in (("AZURE_SUBSCRIPTION_ID", subscription), ("ACI_RESOURCE_GROUP", resource_group)) if not v
        ]
        if missing:
            raise RunnerError(f"the service is not configured for ACI jobs: set {', '.join(missing)}")
        return subscription, resource_group

    def _parse(self, config: dict[str, Any]) -> AzureContainerConfig:
        return parse_config(self.config_model, config)

    # -- Runner interface
    def validate(self, config: dict[str, Any]) -> None:
        self._extra_checks(self._parse(config))

    def _extra_checks(self, cfg: AzureContainerConfig) -> None:
        pass

    def _handle(self, cfg: AzureContainerConfig, job: JobSpec) -> dict[str, Any]:
        subscription, resource_group = self._where()
        return {
            "subscription": subscription,
            "resourceGroup": resource_group,
            "group": group_name(job.run_id),  # job-<uid>, or job-<uid>-a<n> for attempt n of a retried job
            "container": container_name(cfg.name),
        }

    def _existing(self, handle: dict[str, Any], uid: str) -> bool:
        """The job's container group exists (GET, never PUT: a PUT on an existing group may restart it)."""
        name, resource_group = handle["group"], handle["resourceGroup"]
        try:
            with arm_errors("look up the container group", f"ACI refused to look up container group {name}"):
                existing = self._client(handle["subscription"]).container_groups.get(
                    resource_group, name, **self._call_options()
                )
        except ResourceNotFoundError as error:
            if resource_group_missing(error):
                raise self._no_resource_group(name, resource_group) from None
            return False
        if (existing.tags or {}).get("dm-job-uid") != uid:
            raise RunnerError(f"container group {name} exists and belongs to another job")
        return True

    def find(self, job: JobSpec) -> dict[str, Any] | None:
        cfg = self._parse(job.config)
        handle = self._handle(cfg, job)
        return handle if self._existing(handle, job.uid) else None

    def start(self, job: JobSpec) -> dict[str, Any]:
        cfg = self._parse(job.config)
        self._extra_checks(cfg)
        handle = self._handle(cfg, job)
        with self._starting.hold(job.uid), no_secrets_in_errors(job):
            if self._existing(handle, job.uid):  # started before (an activity retried): keep the group as it is
                return handle
            self._create(handle, self._build_group(cfg, job, handle["container"]))
        return handle

    def _create(self, handle: dict[str, Any], group: Any) -> None:
        name, resource_group = handle["group"], handle["resourceGroup"]
        client = self._client(handle["subscription"])
        try:
            with arm_errors("create the container group", f"ACI refused container group {name}"):
                client.container_groups.begin_create_or_update(
                    resource_group, name, group, polling=False, **self._call_options()
                )
        except ResourceNotFoundError as error:  # the resource group went between the two calls
            code, message = _arm_error(error)
            if code == "ResourceGroupNotFound":
                raise self._no_resource_group(name, resource_group) from None
            raise RunnerError(f"ACI refused container group {name}: {code}: {message}") from None

    @staticmethod
    def _no_resource_group(name: str, resource_group: str) -> RunnerError:
        return RunnerError(
            f"ACI cannot create container group {name}: resource group {resource_group} does not exist "
            "(ResourceGroupNotFound); ACI_RESOURCE_GROUP must name an existing resource group"
        )

    def status(self, handle: dict[str, Any]) -> RunnerStatus:
        # A job seen finished stays finished (restart policy Never): answer from memory, without asking ARM
        # again. Besides saving a read, this keeps the Runner contract "never raises for a finished job": the
        # core's finish step reads the status once more, and a 429/5xx there used to fail it after cleanup.
        captured = self._captured.get(handle["group"])
        if captured is not None and captured.get("status") is not None:
            return captured["status"]
        client = self._client(handle["subscription"])
        options = self._call_options()
        try:
            with arm_errors("read the container group", f"ACI refused to read container group {handle['group']}"):
                group = client.container_groups.get(handle["resourceGroup"], handle["group"], **options)
        except ResourceNotFoundError as error:
            captured = self._captured.get(handle["group"])
            if captured is not None and captured.get("status") is not None:
                return captured["status"]
            message = f"container group {handle['group']} no longer exists"
            if resource_group_missing(error):
                message += (
                    f": its resource group {handle['resourceGroup']} was not found (ResourceGroupNotFound; "
                    "deleted with everything in it?)"
                )
            return RunnerStatus(JobStatus.FAILED, message=message)
        fields = map_group(group)
        lines: list[str] = []
        if fields["state"] in (JobStatus.COMPLETED, JobStatus.FAILED):
            # the copy `stop` captured, if any: a stopped group keeps no container state (its view has no container
            # instance view left), so its log is only what was kept before the stop
            lines = self._capture(handle).splitlines()[-log_tail_lines() :]
        elif self._container_started(group):
            lines = self._fetch_logs(handle, tail=log_tail_lines()).splitlines()
        status = RunnerStatus(log=lines, **fields)
        if status.finished:
            captured = self._captured.get(handle["group"]) or {}
            self._captured.put(handle["group"], {**captured, "status": status})
        return status

    def stop(self, handle: dict[str, Any]) -> str:
        client = self._client(handle["subscription"])
        self._capture(handle)
        try:
            with arm_errors("stop the container group", f"ACI refused to stop container group {handle['group']}"):
                client.container_groups.stop(handle["resourceGroup"], handle["group"], **self._call_options())
        except ResourceNotFoundError:  # the group, or its whole resource group (ResourceGroupNotFound)
            return f"container group {handle['group']} already gone"
        return f"container group {handle['group']} stopped"

    def logs(self, handle: dict[str, Any]) -> str:
        captured = self._captured.get(handle["group"])
        if captured and captured.get("log") is not None:
            return captured["log"]
        return self._capture(handle)

    def result(self, handle: dict[str, Any]) -> str | None:
        text = self.logs(handle)
        if not text:
            return None
        return "\n".join(text.splitlines()[-log_tail_lines() :])

    def cleanup(self, handle: dict[str, Any]) -> None:
        client = self._client(handle["subscription"])
        options = self._call_options()
        if settings.get_bool("ACI_KEEP_FAILED_GROUPS"):
            try:
                if self.status(handle).state == JobStatus.FAILED:
                    log.info("keeping container group %s of a failed job (ACI_KEEP_FAILED_GROUPS)", handle["group"])
                    return
            except RetryLater:
                raise
            except RunnerError:
                pass
        try:
            with arm_errors("delete the container group", f"ACI refused to delete container group {handle['group']}"):
                client.container_groups.begin_delete(handle["resourceGroup"], handle["group"], polling=False, **options)
        except ResourceNotFoundError:
            pass  # already gone (alone, or with its resource group: ResourceGroupNotFound)

    # -- helpers
    @staticmethod
    def _container_started(group: Any) -> bool:
        container = (group.containers or [None])[0]
        current = getattr(getattr(container, "instance_view", None), "current_state", None)
        return (getattr(current, "state", None) or "").capitalize() in ("Running", "Terminated")

    def _fetch_logs(self, handle: dict[str, Any], tail: Optional[int] = None) -> str:
        client = self._client(handle["subscription"])
        try:
            kwargs: dict[str, Any] = dict(self._call_options())
            if tail is not None:
                kwargs["tail"] = tail
            logs = client.containers.list_logs(handle["resourceGroup"], handle["group"], handle["container"], **kwargs)
            return logs.content or ""
        except ARM_ERRORS:  # a log is a courtesy: the status poll reports what matters
            return ""

    def _capture(self, handle: dict[str, Any]) -> str:
        """Fetch the full log once and keep it (ACI loses it when the group stops or is deleted)."""
        captured = self._captured.get(handle["group"]) or {}
        if captured.get("log") is not None:
            return captured["log"]
        text = self._fetch_logs(handle)
        if text:
            self._captured.put(handle["group"], {**captured, "log": text})
        return text

    def _image(self, cfg: AzureContainerConfig) -> str:
        image = cfg.image_reference()
        default_registry = settings.get("ACI_REGISTRY_SERVER").strip().rstrip("/")
        if default_registry and not _registry_of(image):
            image = f"{default_registry}/{image}"
        return image

    def _registry_credentials(self, image: str) -> tuple[list[Any], Any]:
        server = settings.get("ACI_REGISTRY_SERVER").strip().rstrip("/").lower()
        registry = _registry_of(image)
        if not registry or not server or registry != server:
            return [], None
        identity_id = settings.get("ACI_JOB_IDENTITY_ID")
        if identity_id:
            identity = aci.ContainerGroupIdentity(
                type="UserAssigned", user_assigned_identities={identity_id: aci.UserAssignedIdentities()}
            )
            return [aci.ImageRegistryCredential(server=registry, identity=identity_id)], identity
        username, password = settings.get("ACI_REGISTRY_USERNAME"), settings.get("ACI_REGISTRY_PASSWORD")
        if username and password:
            return [aci.ImageRegistryCredential(server=registry, username=username, password=password)], None
        return [], None

    def _build_group(self, cfg: AzureContainerConfig, job: JobSpec, cname: str) -> Any:
        cpu, memory = cfg.resources()
        image = self._image(cfg)
        environment = [aci.EnvironmentVariable(name=key, secure_value=value) for key, value in job.environment.items()]
        container = aci.Container(
            name=cname,
            image=image,
            command=cfg.command_list(),
            environment_variables=environment,
            resources=aci.ResourceRequirements(requests=aci.ResourceRequests(cpu=cpu, memory_in_gb=memory)),
        )
        credentials, identity = self._registry_credentials(image)
        return aci.ContainerGroup(
            location=settings.get("ACI_LOCATION"),
            containers=[container],
            os_type="Linux",
            restart_policy="Never",
            image_registry_credentials=credentials or None,
            identity=identity,
            tags={"dm-job-uid": job.uid, "dm-job-runner": self.runner_label},
        )


class OmniaClassicRunner(AzureContainerRunner):
    """ACI in a delegated subnet with a private IP and Log Analytics: the Omnia classic set-up."""

    type_names = (
        "dmss://WorkflowDS/Blueprints/OmniaClassicAzureContainer",
        "dmss://DMT-Internal/DMT/AzureContainerInstanceJobClassic",
    )
    config_model = OmniaClassicConfig
    runner_label = "omnia-classic"

    def _extra_checks(self, cfg: AzureContainerConfig) -> None:
        assert isinstance(cfg, OmniaClassicConfig)
        if not (cfg.subnetId or settings.get("OMNIA_SUBNET_ID")):
            raise ConfigError(
                "Omnia classic jobs run in a delegated subnet: give runner.subnetId "
                "(or ask the operator to set OMNIA_SUBNET_ID)"
            )
        if cfg.logAnalyticsWorkspaceResourceId and not self._workspace():
            raise ConfigError(
                "runner.logAnalyticsWorkspaceResourceId needs the service's Log Analytics settings "
                "(OMNIA_LOG_ANALYTICS_WORKSPACE_ID and OMNIA_LOG_ANALYTICS_WORKSPACE_KEY)"
            )

    @staticmethod
    def _workspace() -> Optional[tuple[str, str]]:
        workspace_id = settings.get("OMNIA_LOG_ANALYTICS_WORKSPACE_ID")
        workspace_key = settings.get("OMNIA_LOG_ANALYTICS_WORKSPACE_KEY")
        return (workspace_id, workspace_key) if workspace_id and workspace_key else None

    def _build_group(self, cfg: AzureContainerConfig, job: JobSpec, cname: str) -> Any:
        assert isinstance(cfg, OmniaClassicConfig)
        group = super()._build_group(cfg, job, cname)
        group.subnet_ids = [aci.ContainerGroupSubnetId(id=cfg.subnetId or settings.get("OMNIA_SUBNET_ID"))]
        group.ip_address = aci.IpAddress(type="Private", ports=[aci.Port(port=OMNIA_PRIVATE_PORT, protocol="TCP")])
        group.containers[0].ports = [aci.ContainerPort(port=OMNIA_PRIVATE_PORT, protocol="TCP")]
        workspace = self._workspace()
        if workspace:
            group.diagnostics = aci.ContainerGroupDiagnostics(
                log_analytics=aci.LogAnalytics(
                    workspace_id=workspace[0],
                    workspace_key=workspace[1],
                    log_type="ContainerInstanceLogs",
                    workspace_resource_id=cfg.logAnalyticsWorkspaceResourceId or None,
                )
            )
        return group


RUNNERS = [AzureContainerRunner, OmniaClassicRunner]
