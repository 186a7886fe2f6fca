"""An Azure Resource Manager stand-in for ACI container groups, for the real `azure-mgmt-containerinstance` SDK,
written from the public contract rather than from what the runner expects. Sources (read, not copied):

  SPEC  Azure/azure-rest-api-specs specification/containerinstance/resource-manager/Microsoft.ContainerInstance/
        stable/2023-05-01/containerInstance.json (the index holds its examples under
        specification/containerinstance/ContainerInstance.Management/resource-manager/Microsoft.ContainerInstance/
        stable/2023-05-01/examples/: ContainerGroups_Get_Container_Groups_Get_Failed.json (title
        "ContainerGroupsGet_Failed"), ..._Get_Succeeded.json, ContainerGroups_CreateOrUpdate_Container_Groups_Create_
        Or_Update.json, ContainerGroups_Stop.json, Containers_ListLogs.json; and tsp-output/examples/2023-05-01/
        ContainerGroups_Delete.json)
  SDK   azure-mgmt-containerinstance 10.1.0 (_configuration.py: api_version default "2023-05-01")
  STATE MicrosoftDocs/azure-docs articles/container-instances/container-state.md
  STOP  MicrosoftDocs/azure-docs articles/container-instances/container-instances-stop-start.md
  PULL  MicrosoftDocs/azure-docs articles/container-instances/container-instances-troubleshooting.md
        ("Unable to pull image")
  QUOTA MicrosoftDocs/azure-docs articles/container-instances/container-instances-resource-and-quota-limits.md
  ASYNC MicrosoftDocs/azure-docs articles/azure-resource-manager/management/async-operations.md
  ERRS  ARM's error texts as reported in public threads: NoRegisteredProviderFound (Azure/azure-cli#28496),
        InvalidApiVersionParameter (Azure/azure-sdk-for-net#2276), ResourceGroupNotFound (pulumi/pulumi#3891),
        ResourceNotFound (ManageIQ/manageiq#8662); throttling: 429 + Retry-After (azure-docs
        articles/azure-resource-manager/troubleshooting/common-deployment-errors.md, "TooManyRequests").

Routes (api-version pinned to 2023-05-01; every other one is refused as ARM does):
  PUT    .../resourceGroups/{rg}/providers/Microsoft.ContainerInstance/containerGroups/{name}
         201 new (provisioningState Pending) / 200 update, with Azure-AsyncOperation; 400 validation; 429 +
         Retry-After past the create rate windows; 404 ResourceGroupNotFound for a missing group
  GET    .../containerGroups/{name}              the group with instance views; 404 ResourceNotFound
  DELETE .../containerGroups/{name}              202 + Azure-AsyncOperation / 204 when absent; 429 past the delete
         rate windows
  POST   .../containerGroups/{name}/stop         204
  GET    .../containerGroups/{name}/containers/{c}/logs   {"content": ...} (`tail=` lines)
  GET    .../resourceGroups/{rg}/providers/Microsoft.ContainerInstance/containerGroups, and the subscription list
  GET    /subscriptions/{s}[/resourceGroups/{rg}]/providers/Microsoft.ContainerInstance/locations/{l}/operations/{id}
Errors are ARM's CloudError `{"error": {"code", "message"}}`; requests without `Authorization: Bearer` get 401.
Secure values (env `secureValue`, registry passwords, workspace keys) are never returned.

What a container does is read from its command, a tiny shell subset: `sh -c "echo X; sleep 2; exit 3"`
(`echo` lines become log lines at their time, `sleep` takes clock time, `exit` ends with a code; redirections and
other statements are ignored). A container without a command runs `default_run_seconds` and exits 0.
Timeline (on the stand-in's clock, by default `shared.clock.now()`): PUT -> provisioning Pending (the first half
of `start_delay`: infrastructure) -> Creating (the second half: the image pull) -> Succeeded with the container
Running -> Terminated(exit code), group state Succeeded/Failed.
Failure modes, set per test: `throttle_windows` / `delete_throttle_windows` (the documented 100 per 5 minutes and
300 per hour), `fail_next_creates` (5xx), `pull_failure_images`, `provisioning_failure` (+ `_event`),
`inaccessible_images` (400 at PUT), `remove_resource_group(rg)`, `make_unhealthy(name, ...)`.
"""

from __future__ import annotations

import copy
import math
import re
import shlex
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Optional

from shared.platform import clock as shared_clock

from .base_server import Request, Response, StandInServer

PROVIDER = "Microsoft.ContainerInstance"
API_VERSION = "2023-05-01"  # SDK: the default api_version of azure-mgmt-containerinstance 10.1.0
GROUP_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.ContainerInstance/"
    r"containerGroups/(?P<name>[^/]+)(?P<rest>/.*)?$",
    re.IGNORECASE,
)
LIST_RG_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.ContainerInstance/"
    r"containerGroups/?$",
    re.IGNORECASE,
)
LIST_SUB_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.ContainerInstance/containerGroups/?$", re.IGNORECASE
)
OPERATION_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)(?:/resourceGroups/(?P<rg>[^/]+))?/providers/Microsoft\.ContainerInstance/"
    r"locations/(?P<loc>[^/]+)/operations/(?P<op>[^/]+)$",
    re.IGNORECASE,
)
RG_PATH = re.compile(r"^/subscriptions/[^/]+/resourceGroups/(?P<rg>[^/]+)/", re.IGNORECASE)
API_VERSION_SHAPE = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
NAME_OK = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
PROVISIONING_TIMEOUT = 30 * 60  # STATE: Failed "... timeout after 30 minutes"
STOPPED_LOG_LINES, STOPPED_LOG_BYTES = 1000, 16 * 1024  # QUOTA: "log size - stopped instance 16 KB or 1,000 lines"
DOCUMENTED_RATE = ((100, 300.0), (300, 3600.0))  # QUOTA: creates (and deletes) per 5 minutes, per hour
ROUTINE = ("Pulling", "Pulled", "Created", "Started")


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _error(status: int, code: str, message: str, headers: Optional[dict[str, str]] = None) -> Response:
    """SPEC: CloudError {"error": {"code", "message"}}."""
    return Response(status, {"error": {"code": code, "message": message}}, headers)


def _event(name: str, message: str, first: datetime, last: datetime, kind: str = "Normal", count: int = 1) -> dict:
    """SPEC Event: count, firstTimestamp, lastTimestamp, name, message, type."""
    return {
        "count": count,
        "firstTimestamp": _iso(first),
        "lastTimestamp": _iso(last),
        "name": name,
        "message": message,
        "type": kind,
    }


@dataclass
class Script:
    lines: list[tuple[float, str]]  # (seconds after start, text)
    duration: float
    exit_code: int


def parse_script(command: Optional[list[str]], default_run_seconds: float) -> Script:
    if not command:
        return Script([], default_run_seconds, 0)
    if len(command) >= 3 and command[0].rsplit("/", 1)[-1] in ("sh", "bash", "ash") and command[1] == "-c":
        text = command[2]
    else:
        text = " ".join(shlex.quote(part) for part in command)
    t, lines = 0.0, []
    for statement in re.split(r"[;\n]|&&", text):
        statement = statement.strip()
        if not statement:
            continue
        try:
            words = shlex.split(statement)
        except ValueError:
            continue
        if ">" in words:
            continue  # writes a file: no visible output
        if words[0] == "echo":
            lines.append((t, " ".join(words[1:])))
        elif words[0] == "sleep" and len(words) > 1:
            try:
                t += float(words[1])
            except ValueError:
                pass
        elif words[0] == "exit":
            return Script(lines, t, int(words[1]) if len(words) > 1 else 0)
    return Script(lines, t, 0)


@dataclass
class Group:
    sub: str
    rg: str
    name: str
    body: dict[str, Any]
    created: datetime
    operation: str
    scripts: dict[str, Script]
    pull_failure: bool = False
    provisioning_failure: Optional[tuple[str, str]] = None  # (event name, message)
    stopped_at: Optional[datetime] = None
    unhealthy: Optional[tuple[datetime, datetime, datetime]] = None  # Unhealthy from, Repairing from, healthy from


@dataclass
class Operation:
    """ASYNC: what GET on an Azure-AsyncOperation URL tells: InProgress until done, then Succeeded or Failed."""

    id: str
    kind: str  # "create" or "delete"
    sub: str
    location: str
    started: datetime
    group: Optional[Group] = None
    done_at: Optional[datetime] = None
    extra: dict[str, Any] = field(default_factory=dict)


class ArmStandIn:
    def __init__(
        self,
        *,
        clock: Optional[Callable[[], datetime]] = None,
        start_delay: float = 2.0,
        default_run_seconds: float = 1.0,
        throttle_windows: tuple[tuple[int, float], ...] = DOCUMENTED_RATE,
        delete_throttle_windows: tuple[tuple[int, float], ...] = DOCUMENTED_RATE,
        require_auth: bool = True,
        location: str = "norwayeast",
    ):
        self._now = clock or shared_clock.now
        self.start_delay = start_delay
        self.default_run_seconds = default_run_seconds
        self.throttle_windows = throttle_windows
        self.delete_throttle_windows = delete_throttle_windows
        self.require_auth = require_auth
        self.location = location
        self.fail_next_creates = 0  # answer this many PUTs with `fail_status`
        self.fail_status = 503
        self.fail_retry_after: Optional[int] = None
        self.pull_failure_images: set[str] = set()
        self.inaccessible_images: set[str] = set()
        self.provisioning_failure: Optional[str] = None  # the message of the event that explains it
        self.provisioning_failure_event = "FailedMount"  # SPEC ContainerGroupsGet_Failed: a Normal FailedMount
        self.missing_resource_groups: set[str] = set()
        self.groups: dict[tuple[str, str, str], Group] = {}
        self.operations: dict[str, Operation] = {}
        self.create_times: deque[datetime] = deque()
        self.delete_times: deque[datetime] = deque()
        self.counts = {
            "creates": 0,
            "throttled": 0,
            "delete_throttled": 0,
            "server_errors": 0,
            "deletes": 0,
            "requests": 0,
        }
        self.requests: list[tuple[str, str, int]] = []
        self.last_put_bodies: dict[str, dict[str, Any]] = {}  # name -> raw PUT body (tests check what was sent)
        self._lock = threading.RLock()
        self._server = StandInServer(self.handle)

    # -- lifecycle
    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> "ArmStandIn":
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def group_names(self) -> list[str]:
        with self._lock:
            return sorted(g.name for g in self.groups.values())

    # -- scenario switches
    def remove_resource_group(self, rg: str) -> None:
        """Someone deleted the resource group (and so every container group in it)."""
        with self._lock:
            self.missing_resource_groups.add(rg.lower())
            for key in [k for k in self.groups if k[1] == rg.lower()]:
                del self.groups[key]

    def make_unhealthy(self, name: str, unhealthy_seconds: float = 10.0, repairing_seconds: float = 10.0) -> None:
        """STATE: "Unhealthy: ... a job is automatically triggered to repair the container group by moving it";
        "Repairing: The container group is getting moved". The docs do not say what the containers show meanwhile:
        their instance view is left as it is."""
        with self._lock:
            now = self._now()
            for group in self.groups.values():
                if group.name == name:
                    group.unhealthy = (
                        now,
                        now + timedelta(seconds=unhealthy_seconds),
                        now + timedelta(seconds=unhealthy_seconds + repairing_seconds),
                    )

    # -- dispatch
    def handle(self, request: Request) -> Response:
        with self._lock:
            response = self._dispatch(request)
            self.counts["requests"] += 1
            self.requests.append((request.method, request.path, response.status))
            return response

    def _refusal(self, request: Request) -> Optional[Response]:
        """What ARM answers before the resource provider sees the request."""
        if self.require_auth and not str(request.headers.get("Authorization", "")).startswith("Bearer "):
            return _error(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
        version = request.query.get("api-version")
        if version is None:
            return _error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if not API_VERSION_SHAPE.match(version):  # ERRS: Azure/azure-sdk-for-net#2276
            return _error(
                400,
                "InvalidApiVersionParameter",
                f"The api-version '{version}' is invalid. The supported versions are '{API_VERSION}'.",
            )
        if version != API_VERSION:  # ERRS: Azure/azure-cli#28496
            kind = "locations/operations" if "/operations/" in request.path else "containerGroups"
            return _error(
                400,
                "NoRegisteredProviderFound",
                f"No registered resource provider found for location '{self.location}' and API version "
                f"'{version}' for type '{kind}'. The supported api-versions are '{API_VERSION}'. The "
                f"supported locations are '{self.location}'.",
            )
        rg = RG_PATH.match(request.path)
        if rg and rg["rg"].lower() in self.missing_resource_groups:  # ERRS: pulumi/pulumi#3891
            return _error(404, "ResourceGroupNotFound", f"Resource group '{rg['rg']}' could not be found.")
        return None

    def _dispatch(self, request: Request) -> Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        path = request.path
        if m := OPERATION_PATH.match(path):
            return self._operation(m["op"]) if request.method == "GET" else _error(405, "MethodNotAllowed", "")
        if m := LIST_SUB_PATH.match(path):
            return self._list(m["sub"], None)
        if m := LIST_RG_PATH.match(path):
            return self._list(m["sub"], m["rg"])
        m = GROUP_PATH.match(path)
        if not m:
            return _error(404, "InvalidResourceType", f"The resource type could not be found for {path}.")
        key = (m["sub"], m["rg"].lower(), m["name"])
        rest = m["rest"] or ""
        if rest == "":
            if request.method == "PUT":
                return self._put(key, request)
            if request.method == "GET":
                return self._get(key)
            if request.method == "DELETE":
                return self._delete(key)
        elif rest == "/stop" and request.method == "POST":
            return self._stop(key)
        elif (lm := re.match(r"^/containers/([^/]+)/logs$", rest)) and request.method == "GET":
            return self._logs(key, lm.group(1), request.query.get("tail"))
        return _error(405, "MethodNotAllowed", f"{request.method} {rest or '/'} is not supported")

    # -- rate limits (QUOTA: creates and deletes per 5 minutes and per hour)
    @staticmethod
    def _wait(times: deque[datetime], windows: tuple[tuple[int, float], ...], now: datetime) -> Optional[float]:
        """Seconds until one more would fit every window, or None when it fits now."""
        wait = 0.0
        for limit, seconds in windows:
            recent = [t for t in times if (now - t).total_seconds() < seconds]
            if len(recent) >= limit:
                oldest = recent[-limit]
                wait = max(wait, seconds - (now - oldest).total_seconds())
        return wait if wait > 0 else None

    @staticmethod
    def _record(times: deque[datetime], now: datetime) -> None:
        times.append(now)
        while len(times) > 10_000:
            times.popleft()

    # -- create
    def _put(self, key: tuple[str, str, str], request: Request) -> Response:
        sub, rg, name = key
        now = self._now()
        try:
            body = request.json()
        except ValueError:
            return _error(
                400, "InvalidRequestContent", "The request content was invalid and could not be deserialized."
            )
        if self.fail_next_creates > 0:
            self.fail_next_creates -= 1
            self.counts["server_errors"] += 1
            headers = {"Retry-After": str(self.fail_retry_after)} if self.fail_retry_after is not None else {}
            return _error(
                self.fail_status,
                "InternalServerError" if self.fail_status == 500 else "ServiceUnavailable",
                "The service is temporarily unavailable.",
                headers,
            )
        existing = self.groups.get(key)
        if existing is None:
            wait = self._wait(self.create_times, self.throttle_windows, now)
            if wait is not None:  # ERRS: 429 with Retry-After (the ACI code and text are not documented)
                self.counts["throttled"] += 1
                seconds = int(math.ceil(wait))
                return _error(
                    429,
                    "TooManyRequests",
                    f"The container group creation rate limit of this subscription and region is reached. "
                    f"Please retry after {seconds} seconds.",
                    {"Retry-After": str(seconds)},
                )
        problem = self._validate(name, body)
        if problem:
            return problem
        props = body["properties"]
        for container in props["containers"]:
            image = container["properties"]["image"]
            if image in self.inaccessible_images:
                return _error(
                    400,
                    "InaccessibleImage",
                    f"The image '{image}' in container group '{name}' is not accessible. Please check the "
                    f"image and registry credential.",
                )
        self.last_put_bodies[name] = copy.deepcopy(body)
        if existing is not None:
            existing.body = body
            return Response(200, self._render(existing, now), self._async_headers(existing.operation, sub, None))
        operation = str(uuid.uuid4())
        scripts = {
            c["name"]: parse_script(c["properties"].get("command"), self.default_run_seconds)
            for c in props["containers"]
        }
        failure = (self.provisioning_failure_event, self.provisioning_failure) if self.provisioning_failure else None
        group = Group(
            sub,
            rg,
            name,
            body,
            now,
            operation,
            scripts,
            pull_failure=any(c["properties"]["image"] in self.pull_failure_images for c in props["containers"]),
            provisioning_failure=failure,
        )
        self.groups[key] = group
        self.operations[operation] = Operation(
            operation, "create", sub, body.get("location") or self.location, now, group
        )
        self._record(self.create_times, now)
        self.counts["creates"] += 1
        # STATE: "PUT (create) operations are asynchronous. The returned value from the PUT's response body is not the
        # final state"; ASYNC: 201 with a provisioningState that is not final, and Azure-AsyncOperation
        return Response(201, self._render(group, now), self._async_headers(operation, sub, None))

    def _async_headers(self, operation: str, sub: str, rg: Optional[str]) -> dict[str, str]:
        """ASYNC: the operation URL is .../providers/{RP}/locations/{region}/operations/{id}; the SPEC's delete example
        has it under the resource group."""
        scope = f"/subscriptions/{sub}" + (f"/resourceGroups/{rg}" if rg else "")
        location = self.operations[operation].location if operation in self.operations else self.location
        return {
            "Azure-AsyncOperation": f"{self.url}{scope}/providers/{PROVIDER}/locations/{location}/operations/"
            f"{operation}?api-version={API_VERSION}"
        }

    def _validate(self, name: str, body: Any) -> Optional[Response]:
        if not NAME_OK.match(name):
            return _error(
                400,
                "ContainerGroupNameInvalid",
                f"The container group name '{name}' is invalid. A container group name must contain no more "
                f"than 63 characters and must match the regex '[a-z0-9]([-a-z0-9]*[a-z0-9])?'.",
            )
        if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
            return _error(400, "InvalidRequestContent", "The request content must have 'properties'.")
        if not body.get("location"):
            return _error(400, "LocationRequired", "The location property is required for this definition.")
        props = body["properties"]
        containers = props.get("containers") or []
        if not containers:
            return _error(400, "ContainerGroupContainersMissing", "The container group must have containers.")
        if props.get("osType") not in ("Linux", "Windows"):
            return _error(400, "InvalidOsType", "The osType must be 'Linux' or 'Windows'.")
        if props.get("restartPolicy", "Always") not in ("Always", "OnFailure", "Never"):
            return _error(400, "InvalidRestartPolicy", "The restartPolicy is invalid.")
        return self._validate_containers(name, props, body)

    def _validate_containers(self, name: str, props: dict[str, Any], body: dict[str, Any]) -> Optional[Response]:
        cpu = memory = 0.0
        ports = set()
        for container in props["containers"]:
            cprops = container.get("properties") or {}
            if not NAME_OK.match(container.get("name") or ""):
                return _error(400, "InvalidContainerName", f"The container name '{container.get('name')}' is invalid.")
            if not cprops.get("image"):
                return _error(400, "InvalidContainerImage", "The container image is required.")
            requests = (cprops.get("resources") or {}).get("requests") or {}
            if "cpu" not in requests or "memoryInGB" not in requests:  # SPEC ResourceRequests: both required
                return _error(
                    400, "InvalidResourceRequests", "The container resource requests need cpu and memoryInGB."
                )
            cpu += float(requests["cpu"])
            memory += float(requests["memoryInGB"])
            ports |= {p.get("port") for p in cprops.get("ports") or []}
            for env in cprops.get("environmentVariables") or []:
                if not env.get("name"):
                    return _error(400, "InvalidEnvironmentVariable", "An environment variable has no name.")
        if cpu > 4 or memory > 16:  # QUOTA: Linux container groups, 4 CPU and 16 GB
            return _error(
                400,
                "ResourceRequestsExceedLimits" if cpu > 4 else "MemoryRequestExceedsLimit",
                f"The requested resource (cpu {cpu:g}, memory {memory:g} GB) exceeds the limit of a Linux "
                f"container group (4 CPU, 16 GB).",
            )
        ip = props.get("ipAddress")
        if ip:
            if ip.get("type") == "Private" and not props.get("subnetIds"):
                return _error(
                    400,
                    "PrivateIPAddressNotSupported",
                    "IP Address type in container group is 'Private' but no subnet is specified.",
                )
            for port in ip.get("ports") or []:
                if port.get("port") not in ports:
                    return _error(
                        400,
                        "InvalidIpAddressPorts",
                        f"The ports in the 'ipAddress' of container group '{name}' must be exposed by a container.",
                    )
        for cred in props.get("imageRegistryCredentials") or []:
            if not cred.get("server"):
                return _error(400, "InvalidImageRegistryCredential", "The registry server is required.")
            if cred.get("identity") and cred["identity"] not in (
                (body.get("identity") or {}).get("userAssignedIdentities") or {}
            ):
                return _error(
                    400,
                    "InvalidImageRegistryCredentialIdentity",
                    "The identity of an image registry credential must be assigned to the container group.",
                )
        return None

    # -- read
    def _get(self, key: tuple[str, str, str]) -> Response:
        group = self.groups.get(key)
        if group is None:
            return self._not_found(key)
        return Response(200, self._render(group, self._now()))

    def _not_found(self, key: tuple[str, str, str]) -> Response:
        return _error(
            404,
            "ResourceNotFound",  # ERRS: ManageIQ/manageiq#8662
            f"The Resource '{PROVIDER}/containerGroups/{key[2]}' under resource group '{key[1]}' was not "
            f"found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
        )

    def _list(self, sub: str, rg: Optional[str]) -> Response:
        now = self._now()
        value = []
        for (s, r, _n), group in sorted(self.groups.items()):
            if s == sub and (rg is None or r == rg.lower()):
                rendered = self._render(group, now)
                rendered["properties"].pop("instanceView", None)
                for c in rendered["properties"]["containers"]:
                    c["properties"].pop("instanceView", None)
                value.append(rendered)
        return Response(200, {"value": value})

    def _operation(self, op: str) -> Response:
        operation = self.operations.get(op)
        if operation is None:
            return _error(404, "OperationNotFound", f"Operation {op} not found.")
        now = self._now()
        body: dict[str, Any] = {
            "id": f"/subscriptions/{operation.sub}/providers/{PROVIDER}/locations/{operation.location}/operations/{op}",
            "name": op,
            "startTime": _iso(operation.started),
        }
        if operation.kind == "delete":
            body["status"] = "Succeeded" if operation.done_at is None or now >= operation.done_at else "InProgress"
            return Response(200, body)
        group = operation.group
        failed = (group.provisioning_failure and now >= self._start_time(group)) or (
            group.pull_failure and (now - group.created).total_seconds() > PROVISIONING_TIMEOUT
        )
        # ASYNC: "Succeeded | Failed | Canceled | {resource provider values}"; STATE: Pending and Creating are not
        # final, Succeeded once the containers got to running
        if failed:
            body["status"] = "Failed"  # ASYNC: with an error object (ACI's code for it is not documented)
            body["error"] = {
                "code": "ContainerGroupProvisioningFailed",
                "message": (group.provisioning_failure or ("", "Container group provisioning failed."))[1],
            }
        elif group.pull_failure or group.provisioning_failure or now < self._start_time(group):
            body["status"] = "InProgress"
        else:
            body["status"] = "Succeeded"
        return Response(200, body)

    def _logs(self, key: tuple[str, str, str], container: str, tail: Optional[str]) -> Response:
        group = self.groups.get(key)
        if group is None:
            return self._not_found(key)
        script = group.scripts.get(container)
        if script is None:
            return _error(
                404,
                "ContainerNotFound",
                f"The container '{container}' could not be found in container group '{key[2]}'.",
            )
        now = self._now()
        lines = self._visible_lines(group, script, now)
        if group.stopped_at is not None or now >= self._end_time(group, script):
            lines = _stopped_log(lines)  # QUOTA: a stopped instance keeps 16 KB or 1,000 lines
        if tail:
            lines = lines[-int(tail) :] if int(tail) > 0 else []
        return Response(200, {"content": "".join(line + "\n" for line in lines)})  # SPEC Containers_ListLogs

    # -- change
    def _delete(self, key: tuple[str, str, str]) -> Response:
        group = self.groups.get(key)
        if group is None:
            return Response(204)  # SPEC: "204 No Content - the specified container group was not found."
        now = self._now()
        wait = self._wait(self.delete_times, self.delete_throttle_windows, now)
        if wait is not None:  # QUOTA: deletes per 5 minutes / per hour
            self.counts["delete_throttled"] += 1
            seconds = int(math.ceil(wait))
            return _error(
                429,
                "TooManyRequests",
                f"The container group deletion rate limit of this subscription and "
                f"region is reached. Please retry after {seconds} seconds.",
                {"Retry-After": str(seconds)},
            )
        del self.groups[key]
        self._record(self.delete_times, now)
        self.counts["deletes"] += 1
        operation = str(uuid.uuid4())
        self.operations[operation] = Operation(
            operation, "delete", key[0], group.body.get("location") or self.location, now, done_at=now
        )
        # SPEC delete example: 202 with azure-asyncoperation under the resource group
        return Response(202, None, self._async_headers(operation, key[0], group.rg))

    def _stop(self, key: tuple[str, str, str]) -> Response:
        group = self.groups.get(key)
        if group is None:
            return self._not_found(key)
        now = self._now()
        # STOP: "The stop action has no effect if the container group already terminated (is in either a Succeeded or
        # Failed state)"
        if group.stopped_at is None and self._group_state(group, now) not in ("Succeeded", "Failed"):
            group.stopped_at = now
        return Response(204)  # SPEC ContainerGroups_Stop: 204

    # -- the simulated life of a group
    def _start_time(self, group: Group) -> datetime:
        return group.created + timedelta(seconds=self.start_delay)

    def _creating_time(self, group: Group) -> datetime:
        return group.created + timedelta(seconds=self.start_delay / 2)

    def _provisioning(self, group: Group, now: datetime) -> str:
        """STATE, Provisioning: "Pending" (infrastructure), "Creating" (getting its resources, the image pull),
        "Succeeded" (its containers got to running), "Unhealthy"/"Repairing", "Failed"; after a stop, the state of
        that (last) operation: "Succeeded"."""
        if group.stopped_at is not None:
            return "Succeeded"
        if group.provisioning_failure and now >= self._start_time(group):
            return "Failed"
        if group.pull_failure and (now - group.created).total_seconds() > PROVISIONING_TIMEOUT:
            return "Failed"
        if group.unhealthy and group.unhealthy[0] <= now < group.unhealthy[2]:
            return "Unhealthy" if now < group.unhealthy[1] else "Repairing"
        if now < self._creating_time(group):
            return "Pending"
        if group.pull_failure or group.provisioning_failure or now < self._start_time(group):
            return "Creating"
        return "Succeeded"

    def _end_time(self, group: Group, script: Script) -> datetime:
        if group.pull_failure or group.provisioning_failure:
            return datetime.max.replace(tzinfo=group.created.tzinfo)
        return self._start_time(group) + timedelta(seconds=script.duration)

    def _visible_lines(self, group: Group, script: Script, now: datetime) -> list[str]:
        if group.pull_failure or group.provisioning_failure:
            return []
        start = self._start_time(group)
        limit = min(now, group.stopped_at) if group.stopped_at else now
        return [text for offset, text in script.lines if start + timedelta(seconds=offset) <= limit]

    def _container_state(self, group: Group, name: str, now: datetime) -> Optional[str]:
        """Waiting / Running / Terminated, or None when there is no instance view."""
        if group.stopped_at is not None or now < self._creating_time(group):
            return None
        if group.pull_failure or group.provisioning_failure or now < self._start_time(group):
            return "Waiting"
        return "Running" if now < self._end_time(group, group.scripts[name]) else "Terminated"

    def _container_view(self, group: Group, name: str, image: str, now: datetime) -> Optional[dict[str, Any]]:
        """SPEC Container instanceView {restartCount, currentState, previousState, events}. STOP: "When a container
        group enters the Stopped state, it terminates and recycles all the containers in the group. It does not
        preserve container state." -> no instance view after a stop."""
        state = self._container_state(group, name, now)
        if state is None:
            return None
        created, start = self._creating_time(group), self._start_time(group)
        pulling = _event("Pulling", f'pulling image "{image}"', created, created)  # SPEC Get_Failed example
        if group.pull_failure:
            # PULL: events Pulling (Normal), Failed (Warning) "Failed to pull image ...", BackOff (Normal); ACI
            # retries for a while. detailStatus as the SPEC's waiting container: ""
            tries = 1 + int((now - created).total_seconds() // 10)
            events = [
                _event("Pulling", f'pulling image "{image}"', created, now, count=tries),
                _event(
                    "Failed",
                    f'Failed to pull image "{image}": rpc error: code = NotFound desc = failed to '
                    f'resolve reference "{image}": not found',
                    created,
                    now,
                    "Warning",
                    tries,
                ),
                _event("BackOff", f'Back-off pulling image "{image}"', created, now, count=tries),
            ]
            return {"restartCount": 0, "currentState": {"state": "Waiting", "detailStatus": ""}, "events": events}
        if state == "Waiting":
            events = [pulling]
            if group.provisioning_failure:  # SPEC Get_Failed example: pulled, and waiting with detailStatus ""
                events.append(_event("Pulled", f'Successfully pulled image "{image}"', created, created))
            return {
                "restartCount": 0,
                "currentState": {"state": "Waiting", "detailStatus": "", "startTime": _iso(created)},
                "events": events,
            }
        events = [
            pulling,
            _event("Pulled", f'Successfully pulled image "{image}"', start, start),
            _event("Created", "Created container", start, start),
            _event("Started", "Started container", start, start),
        ]
        if state == "Running":
            return {
                "restartCount": 0,
                "currentState": {"state": "Running", "startTime": _iso(start), "detailStatus": ""},
                "events": events,
            }
        script = group.scripts[name]
        # STATE: "currentState ... contain additional information, such as an exit code or a reason"
        return {
            "restartCount": 0,
            "currentState": {
                "state": "Terminated",
                "startTime": _iso(start),
                "exitCode": script.exit_code,
                "finishTime": _iso(self._end_time(group, script)),
                "detailStatus": "Completed" if script.exit_code == 0 else "Error",
            },
            "previousState": None,
            "events": events,
        }

    def _group_state(self, group: Group, now: datetime) -> str:
        """STATE, Container Groups: Running, Stopped, Pending, Succeeded (Never/OnFailure), Failed (Never)."""
        if group.stopped_at is not None:
            return "Stopped"
        states = [self._container_state(group, c, now) for c in group.scripts]
        if states and all(s == "Terminated" for s in states):
            return "Succeeded" if all(s.exit_code == 0 for s in group.scripts.values()) else "Failed"
        if any(s == "Running" for s in states):
            return "Running"
        return "Pending"  # SPEC Get_Failed example: a group whose provisioning failed is still Pending

    def _group_events(self, group: Group, now: datetime) -> list[dict[str, Any]]:
        if group.provisioning_failure and now >= self._start_time(group):
            name, message = group.provisioning_failure
            at = self._start_time(group)
            return [_event(name, message, at, at)]  # SPEC Get_Failed example: type Normal, not Warning
        return []

    def _render(self, group: Group, now: datetime) -> dict[str, Any]:
        body = copy.deepcopy(group.body)
        props = body.setdefault("properties", {})
        props["provisioningState"] = self._provisioning(group, now)
        for container in props.get("containers") or []:
            cprops = container.setdefault("properties", {})
            for env in cprops.get("environmentVariables") or []:
                env.pop("secureValue", None)  # ARM never returns secure values
            view = self._container_view(group, container["name"], cprops.get("image", ""), now)
            if view is not None:
                cprops["instanceView"] = view
        for cred in props.get("imageRegistryCredentials") or []:
            cred.pop("password", None)
        la = (props.get("diagnostics") or {}).get("logAnalytics")
        if la:
            la.pop("workspaceKey", None)
        props["instanceView"] = {"events": self._group_events(group, now), "state": self._group_state(group, now)}
        if body.get("identity"):
            identity = body["identity"]
            for value in (identity.get("userAssignedIdentities") or {}).values():
                value.setdefault("principalId", "00000000-0000-0000-0000-000000000001")
                value.setdefault("clientId", "00000000-0000-0000-0000-000000000002")
        body.update(
            {
                "id": f"/subscriptions/{group.sub}/resourceGroups/{group.rg}/providers/{PROVIDER}/containerGroups/"
                f"{group.name}",
                "name": group.name,
                "type": f"{PROVIDER}/containerGroups",
            }
        )
        return body


def _stopped_log(lines: list[str]) -> list[str]:
    """The last 1,000 lines, and at most 16 KB of them."""
    kept, size = [], 0
    for line in reversed(lines[-STOPPED_LOG_LINES:]):
        size += len(line.encode()) + 1
        if size > STOPPED_LOG_BYTES:
            break
        kept.append(line)
    return list(reversed(kept))
