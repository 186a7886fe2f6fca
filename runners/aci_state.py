"""What an ACI container group says about its job: a container group (the SDK model of ARM's GET) -> RunnerStatus
fields (`state`, `message`, `exit_code`). Used by runners.azure_container.

Read from ACI's public contract (Azure/azure-rest-api-specs containerinstance 2023-05-01 and its examples, and
azure-docs container-instances/container-state.md):
  - three independent states: provisioningState (the last operation: Pending, Creating, Succeeded, Unhealthy,
    Repairing, Failed; Succeeded after a stop or delete too), the group's instanceView.state (Running, Stopped,
    Pending, Succeeded, Failed) and each container's currentState (Waiting, Running, Terminated + exit code);
  - a failed provisioning keeps the group Pending and its container Waiting with detailStatus "": the reason is in
    an event, and not necessarily a Warning one (ContainerGroupsGet_Failed: {name: FailedMount, type: Normal,
    message: "Output: mount error(2): Permission denied"});
  - a failed image pull shows as events Pulling (Normal), Failed (Warning) "Failed to pull image ...", BackOff
    (Normal) while ACI retries (container-instances-troubleshooting.md), provisioning staying Creating;
  - a stopped group recycles its containers and keeps no container state (container-instances-stop-start.md).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Optional

from shared.jobs.status import JobStatus

from .base import FailureReason

_PULL_FAILURE = re.compile(r"pull|ErrImage|ImagePull|InaccessibleImage|manifest", re.IGNORECASE)
#: events that report progress, never why something failed (the troubleshooting page's Pulling/Pulled/Created/Started)
ROUTINE_EVENTS = ("pulling", "pulled", "created", "started", "killing")
_EPOCH = datetime.min.replace(tzinfo=timezone.utc)


def _events(view: Any) -> list[Any]:
    return list(getattr(view, "events", None) or []) if view is not None else []


def _when(event: Any) -> datetime:
    when = getattr(event, "last_timestamp", None) or getattr(event, "first_timestamp", None)
    if isinstance(when, datetime):
        return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return _EPOCH


def explaining_event(group: Any, container: Any) -> Optional[Any]:
    """The event that explains a failure, whatever its type: of the container's and the group's events that are not
    routine progress, a Warning one if any, the latest (by lastTimestamp; the later in the list on a tie)."""
    events = _events(getattr(container, "instance_view", None)) + _events(getattr(group, "instance_view", None))
    candidates = [e for e in events if e.message and (e.name or "").lower() not in ROUTINE_EVENTS]
    warnings = [e for e in candidates if (e.type or "").lower() == "warning"]
    chosen = warnings or candidates
    if not chosen:
        return None
    return max(enumerate(chosen), key=lambda pair: (_when(pair[1]), pair[0]))[1]


def _pull_failure(view: Any, detail: str) -> str:
    """ACI's words for an image it cannot pull, or "" (a Warning event Failed about the pull; or a detailStatus
    such as ErrImagePull/ImagePullBackOff, which the spec's examples do not show but Kubernetes uses)."""
    failures = [
        e
        for e in _events(view)
        if (e.type or "").lower() == "warning"
        and (e.name or "").lower() in ("failed", "err", "errimagepull")
        and _PULL_FAILURE.search(e.message or "")
    ]
    if failures:
        return max(enumerate(failures), key=lambda pair: (_when(pair[1]), pair[0]))[1].message
    if re.search(r"ErrImage|ImagePull", detail):
        return detail
    return ""


class _Seen:
    """The fields of a group that decide its job's state."""

    def __init__(self, group: Any):
        self.group = group
        self.provisioning = (group.provisioning_state or "").capitalize()
        self.container = (group.containers or [None])[0]
        self.view = getattr(self.container, "instance_view", None)
        self.current = getattr(self.view, "current_state", None)
        self.state = (getattr(self.current, "state", None) or "").capitalize()
        self.detail = getattr(self.current, "detail_status", None) or ""
        self.group_state = (getattr(getattr(group, "instance_view", None), "state", None) or "").capitalize()

    @property
    def repair(self) -> str:
        """STATE: Unhealthy ("a job is automatically triggered to repair the container group by moving it") and
        Repairing ("getting moved in order to repair an unhealthy state")."""
        if self.provisioning == "Unhealthy":
            return "container group unhealthy (ACI repairs it by moving it)"
        if self.provisioning == "Repairing":
            return "container group repairing (ACI is moving it after it became unhealthy)"
        return ""


def _terminated(seen: _Seen) -> dict[str, Any]:
    code = getattr(seen.current, "exit_code", None)
    if code == 0:
        return {"state": JobStatus.COMPLETED, "message": "container exited with code 0", "exit_code": 0}
    message = f"container exited with code {code}"
    if seen.group_state == "Stopped":
        message = f"stopped ({message})"
    elif seen.detail:
        message += f" ({seen.detail})"
    reason = FailureReason.OUT_OF_MEMORY if "oomkilled" in seen.detail.lower() else None
    return {"state": JobStatus.FAILED, "message": message, "exit_code": code, "reason": reason}


def _provisioning_failed(seen: _Seen) -> dict[str, Any]:
    event = explaining_event(seen.group, seen.container)
    if event is not None:
        reason = f"({event.name}) {event.message}" if event.name else event.message
    else:
        reason = seen.detail or f"provisioning state {seen.provisioning or seen.state}"
    return {"state": JobStatus.FAILED, "message": f"ACI could not start the container group: {reason}"[:1000]}


def map_group(group: Any) -> dict[str, Any]:
    """A container group (SDK model) -> RunnerStatus fields:

    container Running -> running (saying so when the group is Unhealthy/Repairing); Terminated exit 0 ->
    completed, else failed with the exit code; provisioning Failed/Canceled or container Failed/Canceled -> failed
    with the event that explains it ("ACI could not start the container group: (FailedMount) Output: mount
    error(2): Permission denied"); Waiting with an image pull failure -> failed (ACI would retry the pull for its
    30-minute provisioning timeout); a group stopped before its container ended (no container state left) ->
    failed ("stopped"); Unhealthy/Repairing -> starting, saying so; Waiting/Pending or a group not yet started
    (Pending/Creating/Succeeded/Updating without container state) -> starting; anything else -> unknown.
    """
    seen = _Seen(group)
    if seen.state == "Running":
        repair = f"; {seen.repair}" if seen.repair else ""
        return {"state": JobStatus.RUNNING, "message": "container running" + repair}
    if seen.state == "Terminated":
        return _terminated(seen)
    if seen.provisioning in ("Failed", "Canceled") or seen.state in ("Failed", "Canceled"):
        return _provisioning_failed(seen)
    pull = _pull_failure(seen.view, seen.detail) if seen.state == "Waiting" else ""
    if pull:
        message = f"image could not be pulled: {pull}"[:1000]
        return {"state": JobStatus.FAILED, "message": message, "reason": FailureReason.IMAGE_PULL}
    if seen.group_state == "Stopped":
        return {"state": JobStatus.FAILED, "message": "stopped (container group stopped)"}
    if seen.repair:
        return {
            "state": JobStatus.STARTING,
            "message": seen.repair + (f", container {seen.state.lower()}" if seen.state else ""),
        }
    if seen.state in ("Waiting", "Pending") or seen.provisioning in ("Pending", "Creating", "Succeeded", "Updating"):
        return {
            "state": JobStatus.STARTING,
            "message": f"container group {seen.provisioning.lower() or 'pending'}"
            + (f", container {seen.state.lower()}" if seen.state else ""),
        }
    return {"state": JobStatus.UNKNOWN, "message": f"container group state {seen.provisioning or 'unknown'}"}
