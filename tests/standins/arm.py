"""An Azure Resource Manager stand-in for ACI container groups, for the real `azure-mgmt-containerinstance` SDK.

It follows the public REST contract the SDK uses (api-version 2023-05-01 and others are accepted):

  PUT    /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.ContainerInstance/containerGroups/{name}
         201 (new) / 200 (update) with the group, `Azure-AsyncOperation` header (LRO); 400 validation errors,
         429 + Retry-After when creates pass the rate windows, 5xx when told to
  GET    .../containerGroups/{name}                      the group with instance views; 404 ResourceNotFound
  DELETE .../containerGroups/{name}                      200 with the group / 204 when absent
  POST   .../containerGroups/{name}/stop                 204
  GET    .../containerGroups/{name}/containers/{c}/logs  {"content": ...} (`tail=` lines)
  GET    .../resourceGroups/{rg}/providers/Microsoft.ContainerInstance/containerGroups  {"value": [...]}
  GET    /subscriptions/{s}/providers/Microsoft.ContainerInstance/containerGroups        {"value": [...]}
  GET    /subscriptions/{s}/providers/Microsoft.ContainerInstance/locations/{l}/operations/{id}  LRO status
Errors have ARM's shape `{"error": {"code", "message"}}`; requests without `Authorization: Bearer` get 401.
Secure values (env `secureValue`, registry passwords, workspace keys) are never returned, as in Azure.

What a container does is read from its command, a tiny shell subset: `sh -c "echo X; sleep 2; exit 3"`
(`echo` lines become log lines at their time, `sleep` takes clock time, `exit` ends with a code; redirections and
other statements are ignored). A container without a command runs `default_run_seconds` and exits 0.
Timeline (on the stand-in's clock, by default `shared.clock.now()`, so a ManualClock drives it):
  created -> `start_delay` s Waiting (pulling) -> Running -> Terminated(exit code).
Failure modes, set per test: `throttle_windows` (default 100 creates per 300 s), `fail_next_creates` (5xx),
`pull_failure_images` (container stays Waiting with a "Failed to pull image" warning event),
`provisioning_failure` (provisioningState Failed with an event message), `inaccessible_images` (400 at PUT).
Exact ARM error codes for throttling/validation are plausible, not verified against Azure.
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
GROUP_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.ContainerInstance/"
    r"containerGroups/(?P<name>[^/]+)(?P<rest>/.*)?$", re.IGNORECASE)
LIST_RG_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.ContainerInstance/"
    r"containerGroups/?$", re.IGNORECASE)
LIST_SUB_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.ContainerInstance/containerGroups/?$", re.IGNORECASE)
OPERATION_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.ContainerInstance/locations/(?P<loc>[^/]+)/"
    r"operations/(?P<op>[^/]+)$", re.IGNORECASE)
NAME_OK = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
PROVISIONING_TIMEOUT = 30 * 60


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _error(status: int, code: str, message: str, headers: Optional[dict[str, str]] = None) -> Response:
    return Response(status, {"error": {"code": code, "message": message}}, headers)


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
    provisioning_failure: Optional[str] = None
    stopped_at: Optional[datetime] = None
    events: list[dict[str, Any]] = field(default_factory=list)


class ArmStandIn:
    def __init__(self, *, clock: Optional[Callable[[], datetime]] = None, start_delay: float = 2.0,
                 default_run_seconds: float = 1.0, throttle_windows: tuple[tuple[int, float], ...] = ((100, 300.0),),
                 require_auth: bool = True):
        self._now = clock or shared_clock.now
        self.start_delay = start_delay
        self.default_run_seconds = default_run_seconds
        self.throttle_windows = throttle_windows
        self.require_auth = require_auth
        self.fail_next_creates = 0  # answer this many PUTs with `fail_status`
        self.fail_status = 503
        self.fail_retry_after: Optional[int] = None
        self.pull_failure_images: set[str] = set()
        self.inaccessible_images: set[str] = set()
        self.provisioning_failure: Optional[str] = None
        self.groups: dict[tuple[str, str, str], Group] = {}
        self.operations: dict[str, Group] = {}
        self.create_times: deque[datetime] = deque()
        self.counts = {"creates": 0, "throttled": 0, "server_errors": 0, "deletes": 0, "requests": 0}
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

    # -- dispatch
    def handle(self, request: Request) -> Response:
        with self._lock:
            response = self._dispatch(request)
            self.counts["requests"] += 1
            self.requests.append((request.method, request.path, response.status))
            return response

    def _dispatch(self, request: Request) -> Response:
        if self.require_auth and not str(request.headers.get("Authorization", "")).startswith("Bearer "):
            return _error(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
        if "api-version" not in request.query:
            return _error(400, "MissingApiVersionParameter",
                          "The api-version query parameter (?api-version=) is required for all requests.")
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

    # -- create
    def _throttle(self, now: datetime) -> Optional[float]:
        """Seconds until a create would fit every window, or None when it fits now."""
        wait = 0.0
        for limit, seconds in self.throttle_windows:
            recent = [t for t in self.create_times if (now - t).total_seconds() < seconds]
            if len(recent) >= limit:
                oldest = recent[-limit]
                wait = max(wait, seconds - (now - oldest).total_seconds())
        return wait if wait > 0 else None

    def _put(self, key: tuple[str, str, str], request: Request) -> Response:
        sub, rg, name = key
        now = self._now()
        try:
            body = request.json()
        except ValueError:
            return _error(400, "InvalidRequestContent", "The request content was invalid and could not be deserialized.")
        if self.fail_next_creates > 0:
            self.fail_next_creates -= 1
            self.counts["server_errors"] += 1
            headers = {"Retry-After": str(self.fail_retry_after)} if self.fail_retry_after is not None else {}
            return _error(self.fail_status, "InternalServerError" if self.fail_status == 500 else "ServiceUnavailable",
                          "The service is temporarily unavailable.", headers)
        existing = self.groups.get(key)
        if existing is None:
            wait = self._throttle(now)
            if wait is not None:
                self.counts["throttled"] += 1
                seconds = int(math.ceil(wait))
                return _error(429, "TooManyRequests",
                              f"The container group creation rate limit of this subscription and region is reached. "
                              f"Please retry after {seconds} seconds.", {"Retry-After": str(seconds)})
        problem = self._validate(name, body)
        if problem:
            return problem
        props = body["properties"]
        for container in props["containers"]:
            image = container["properties"]["image"]
            if image in self.inaccessible_images:
                return _error(400, "InaccessibleImage",
                              f"The image '{image}' in container group '{name}' is not accessible. Please check the "
                              f"image and registry credential.")
        self.last_put_bodies[name] = copy.deepcopy(body)
        if existing is not None:
            existing.body = body
            return Response(200, self._render(existing, now), self._lro_headers(existing))
        operation = str(uuid.uuid4())
        scripts = {c["name"]: parse_script(c["properties"].get("command"), self.default_run_seconds)
                   for c in props["containers"]}
        group = Group(sub, rg, name, body, now, operation, scripts,
                      pull_failure=any(c["properties"]["image"] in self.pull_failure_images for c in props["containers"]),
                      provisioning_failure=self.provisioning_failure)
        self.groups[key] = group
        self.operations[operation] = group
        self.create_times.append(now)
        while len(self.create_times) > 10_000:
            self.create_times.popleft()
        self.counts["creates"] += 1
        return Response(201, self._render(group, now), self._lro_headers(group))

    def _lro_headers(self, group: Group) -> dict[str, str]:
        location = group.body.get("location", "norwayeast")
        url = (f"{self.url}/subscriptions/{group.sub}/providers/{PROVIDER}/locations/{location}/operations/"
               f"{group.operation}?api-version=2023-05-01")
        return {"Azure-AsyncOperation": url}

    def _validate(self, name: str, body: Any) -> Optional[Response]:
        if not NAME_OK.match(name):
            return _error(400, "ContainerGroupNameInvalid",
                          f"The container group name '{name}' is invalid. A container group name must contain no more "
                          f"than 63 characters and must match the regex '[a-z0-9]([-a-z0-9]*[a-z0-9])?'.")
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
        cpu = memory = 0.0
        ports = set()
        for container in containers:
            cprops = container.get("properties") or {}
            if not NAME_OK.match(container.get("name") or ""):
                return _error(400, "InvalidContainerName", f"The container name '{container.get('name')}' is invalid.")
            if not cprops.get("image"):
                return _error(400, "InvalidContainerImage", "The container image is required.")
            requests = (cprops.get("resources") or {}).get("requests") or {}
            if "cpu" not in requests or "memoryInGB" not in requests:
                return _error(400, "InvalidResourceRequests", "The container resource requests need cpu and memoryInGB.")
            cpu += float(requests["cpu"])
            memory += float(requests["memoryInGB"])
            ports |= {p.get("port") for p in cprops.get("ports") or []}
            for env in cprops.get("environmentVariables") or []:
                if not env.get("name"):
                    return _error(400, "InvalidEnvironmentVariable", "An environment variable has no name.")
        if cpu > 4 or memory > 16:
            return _error(400, "ResourceRequestsExceedLimits" if cpu > 4 else "MemoryRequestExceedsLimit",
                          f"The requested resource (cpu {cpu:g}, memory {memory:g} GB) exceeds the limit of a Linux "
                          f"container group (4 CPU, 16 GB).")
        ip = props.get("ipAddress")
        if ip:
            if ip.get("type") == "Private" and not props.get("subnetIds"):
                return _error(400, "PrivateIPAddressNotSupported",
                              "IP Address type in container group is 'Private' but no subnet is specified.")
            for port in ip.get("ports") or []:
                if port.get("port") not in ports:
                    return _error(400, "InvalidIpAddressPorts",
                                  f"The ports in the 'ipAddress' of container group '{name}' must be exposed by a "
                                  f"container.")
        for cred in props.get("imageRegistryCredentials") or []:
            if not cred.get("server"):
                return _error(400, "InvalidImageRegistryCredential", "The registry server is required.")
            if cred.get("identity") and cred["identity"] not in ((body.get("identity") or {}).get(
                    "userAssignedIdentities") or {}):
                return _error(400, "InvalidImageRegistryCredentialIdentity",
                              "The identity of an image registry credential must be assigned to the container group.")
        return None

    # -- read
    def _get(self, key: tuple[str, str, str]) -> Response:
        group = self.groups.get(key)
        if group is None:
            return self._not_found(key)
        return Response(200, self._render(group, self._now()))

    def _not_found(self, key: tuple[str, str, str]) -> Response:
        return _error(404, "ResourceNotFound",
                      f"The Resource '{PROVIDER}/containerGroups/{key[2]}' under resource group '{key[1]}' was not "
                      f"found. For more details please go to https://aka.ms/ARMResourceNotFoundFix")

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
        group = self.operations.get(op)
        if group is None:
            return _error(404, "OperationNotFound", f"Operation {op} not found.")
        now = self._now()
        status = self._provisioning(group, now)
        body: dict[str, Any] = {
            "id": f"/subscriptions/{group.sub}/providers/{PROVIDER}/locations/{group.body.get('location')}/"
                  f"operations/{op}",
            "name": op, "startTime": _iso(group.created),
            "status": {"Pending": "InProgress", "Creating": "InProgress"}.get(status, status),
        }
        if status == "Failed":
            body["error"] = {"code": "ContainerGroupProvisioningFailed",
                             "message": group.provisioning_failure or "Container group provisioning failed."}
        return Response(200, body)

    def _logs(self, key: tuple[str, str, str], container: str, tail: Optional[str]) -> Response:
        group = self.groups.get(key)
        if group is None:
            return self._not_found(key)
        script = group.scripts.get(container)
        if script is None:
            return _error(404, "ContainerNotFound", f"The container '{container}' could not be found in container "
                          f"group '{key[2]}'.")
        lines = self._visible_lines(group, script, self._now())
        if tail:
            lines = lines[-int(tail):] if int(tail) > 0 else []
        return Response(200, {"content": "".join(line + "\n" for line in lines)})

    # -- change
    def _delete(self, key: tuple[str, str, str]) -> Response:
        group = self.groups.pop(key, None)
        if group is None:
            return Response(204)
        self.counts["deletes"] += 1
        return Response(200, self._render(group, self._now()))

    def _stop(self, key: tuple[str, str, str]) -> Response:
        group = self.groups.get(key)
        if group is None:
            return self._not_found(key)
        if group.stopped_at is None:
            group.stopped_at = self._now()
        return Response(204)

    # -- the simulated life of a group
    def _start_time(self, group: Group) -> datetime:
        return group.created + timedelta(seconds=self.start_delay)

    def _provisioning(self, group: Group, now: datetime) -> str:
        if group.provisioning_failure and now >= self._start_time(group):
            return "Failed"
        if group.pull_failure:
            if (now - group.created).total_seconds() > PROVISIONING_TIMEOUT:
                return "Failed"
            return "Creating"
        if now >= self._start_time(group) and (group.stopped_at is None or group.stopped_at >= self._start_time(group)):
            return "Succeeded"
        return "Pending" if group.stopped_at is None else "Succeeded"

    def _end_time(self, group: Group, script: Script) -> datetime:
        return self._start_time(group) + timedelta(seconds=script.duration)

    def _visible_lines(self, group: Group, script: Script, now: datetime) -> list[str]:
        if group.pull_failure or group.provisioning_failure:
            return []
        start = self._start_time(group)
        limit = min(now, group.stopped_at) if group.stopped_at else now
        return [text for offset, text in script.lines if start + timedelta(seconds=offset) <= limit]

    def _container_view(self, group: Group, name: str, image: str, now: datetime) -> Optional[dict[str, Any]]:
        script = group.scripts[name]
        start = self._start_time(group)
        pulling = {"count": 1, "firstTimestamp": _iso(group.created), "lastTimestamp": _iso(group.created),
                   "name": "Pulling", "message": f'pulling image "{image}"', "type": "Normal"}
        if group.provisioning_failure:
            return None
        if group.pull_failure:
            events = [pulling]
            if now >= start:
                events.append({"count": 1, "firstTimestamp": _iso(start), "lastTimestamp": _iso(now), "name": "Failed",
                               "message": f'Failed to pull image "{image}": rpc error: code = NotFound desc = failed to '
                                          f'resolve reference "{image}": not found', "type": "Warning"})
                events.append({"count": 1, "firstTimestamp": _iso(start), "lastTimestamp": _iso(now),
                               "name": "BackOff", "message": f'Back-off pulling image "{image}"', "type": "Normal"})
            return {"restartCount": 0, "currentState": {"state": "Waiting", "detailStatus": "Pulling" if now < start
                                                        else "ErrImagePull"}, "events": events}
        if group.stopped_at is not None and group.stopped_at < start:
            return {"restartCount": 0, "currentState": {"state": "Terminated", "exitCode": 137,
                                                        "finishTime": _iso(group.stopped_at), "detailStatus": "Killed"},
                    "events": [pulling]}
        if now < start:
            return {"restartCount": 0, "currentState": {"state": "Waiting", "detailStatus": "Pulling"},
                    "events": [pulling]}
        events = [pulling,
                  {"count": 1, "firstTimestamp": _iso(start), "lastTimestamp": _iso(start), "name": "Pulled",
                   "message": f'Successfully pulled image "{image}"', "type": "Normal"},
                  {"count": 1, "firstTimestamp": _iso(start), "lastTimestamp": _iso(start), "name": "Started",
                   "message": "Started container", "type": "Normal"}]
        end = self._end_time(group, script)
        if group.stopped_at is not None and group.stopped_at < end:
            end, code, detail = group.stopped_at, 137, "Killed"
        else:
            code, detail = script.exit_code, "Completed" if script.exit_code == 0 else "Error"
        if now < end:
            return {"restartCount": 0, "currentState": {"state": "Running", "startTime": _iso(start),
                                                        "detailStatus": ""}, "events": events}
        return {"restartCount": 0,
                "currentState": {"state": "Terminated", "startTime": _iso(start), "exitCode": code,
                                 "finishTime": _iso(end), "detailStatus": detail},
                "previousState": None, "events": events}

    def _render(self, group: Group, now: datetime) -> dict[str, Any]:
        body = copy.deepcopy(group.body)
        props = body.setdefault("properties", {})
        provisioning = self._provisioning(group, now)
        props["provisioningState"] = provisioning
        states = []
        for container in props.get("containers") or []:
            cprops = container.setdefault("properties", {})
            for env in cprops.get("environmentVariables") or []:
                env.pop("secureValue", None)  # ARM never returns secure values
            view = self._container_view(group, container["name"], cprops.get("image", ""), now)
            if view is not None:
                cprops["instanceView"] = view
                states.append(view["currentState"])
        for cred in props.get("imageRegistryCredentials") or []:
            cred.pop("password", None)
        la = (props.get("diagnostics") or {}).get("logAnalytics")
        if la:
            la.pop("workspaceKey", None)
        group_events = []
        if provisioning == "Failed" and group.provisioning_failure:
            group_events.append({"count": 1, "firstTimestamp": _iso(self._start_time(group)),
                                 "lastTimestamp": _iso(self._start_time(group)), "name": "Failed",
                                 "message": group.provisioning_failure, "type": "Warning"})
        if group.stopped_at is not None:
            state = "Stopped"
        elif provisioning == "Failed":
            state = "Failed"
        elif states and all(s["state"] == "Terminated" for s in states):
            state = "Succeeded" if all(s.get("exitCode") == 0 for s in states) else "Failed"
        elif any(s["state"] == "Running" for s in states):
            state = "Running"
        else:
            state = "Pending"
        props["instanceView"] = {"events": group_events, "state": state}
        if body.get("identity"):
            identity = body["identity"]
            for value in (identity.get("userAssignedIdentities") or {}).values():
                value.setdefault("principalId", "00000000-0000-0000-0000-000000000001")
                value.setdefault("clientId", "00000000-0000-0000-0000-000000000002")
        body.update({
            "id": f"/subscriptions/{group.sub}/resourceGroups/{group.rg}/providers/{PROVIDER}/containerGroups/"
                  f"{group.name}",
            "name": group.name,
            "type": f"{PROVIDER}/containerGroups",
        })
        return body
