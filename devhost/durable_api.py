"""The Durable Functions HTTP/RPC API (`/runtime/webhooks/durabletask/...`) served from the local engine.

Local/test host only. The Python SDK's `DurableOrchestrationClient` talks to `rpcBaseUrl` with the URLs and
expects the status codes below (see its DurableOrchestrationClient.py); the same endpoints serve the public
management URLs (`statusQueryGetUri`, `sendEventPostUri`, ...) that `create_check_status_response` hands out.

* POST orchestrators/{name}[/{id}]          -> 202 + management payload (400 {"ExceptionMessage"} unknown name)
* GET  instances/{id}                       -> 200 completed, 202 running/pending/suspended, 400 failed/terminated,
                                               404 unknown (empty body)
* GET  instances/?createdTimeFrom&...       -> 200 [status, ...]
* POST instances/{id}/raiseEvent/{event}    -> 202, 404 unknown, 410 finished
* POST instances/{id}/terminate|suspend|resume?reason= -> 202, 404, 410
* DELETE instances/{id}                     -> 200 {"instancesDeleted": 1}, 404
* DELETE instances/?createdTimeFrom&...     -> 200 {"instancesDeleted": n}, 404 when none

Payload conventions copied from the real extension (azure-functions-durable-extension
src/WebJobs.Extensions.DurableTask/HttpApiHandler.cs). The SDK posts the orchestrator input and event data as a
JSON *string* holding JSON text (`json=json.dumps(value)`: encoded twice).
* Start: the extension deserializes the body once and starts the orchestration with that .NET string; the
  context JSON then carries it as the `input` string, which the SDK's `get_input()` parses: the orchestrator sees
  the value. The engine stores the inner JSON text, which gives the same. The status `input` is that text (as the
  real host returns it to Python), `output` and `customStatus` are JSON values.
* Raise event (HandleRaiseEventRequestAsync): only `application/json` is accepted (else 400), the body becomes a
  JToken and is stored as the event's JSON, *keeping* the SDK's extra layer: an orchestrator waiting for an
  event the SDK raised gets JSON text (a str), not the value (azure-functions-durable-python issue #295). The
  engine does the same; a plain JSON body (curl) arrives as its value.
* Start of an existing instance id: replaced when finished, refused with 500 while it runs (engine.py).
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web

from .engine import Engine, Gone, InstanceExists, NotFound, UnknownOrchestrator
from .history import parse_ts

BASE_PATH = "/runtime/webhooks/durabletask"
_STATUS_CODES = {"Completed": 200, "Failed": 400, "Terminated": 400, "Canceled": 400}


def client_binding(port: int, hub: str, connection: str = "Storage") -> dict:
    """The JSON the host passes for a `durableClient` input binding (what `DurableOrchestrationClient` parses)."""
    base = f"http://127.0.0.1:{port}{BASE_PATH}"
    q = f"taskHub={quote(hub)}&connection={connection}"
    inst = f"{base}/instances/INSTANCEID"
    return {
        "taskHubName": hub,
        "creationUrls": {
            "createNewInstancePostUri": f"{base}/orchestrators/{{functionName}}[/{{instanceId}}]",
            "createAndWaitOnNewInstancePostUri": (
                f"{base}/orchestrators/{{functionName}}[/{{instanceId}}]?timeout={{timeoutInSeconds}}"
                f"&pollingInterval={{intervalInSeconds}}"
            ),
        },
        "managementUrls": {
            "id": "INSTANCEID",
            "statusQueryGetUri": f"{inst}?{q}",
            "sendEventPostUri": f"{inst}/raiseEvent/{{eventName}}?{q}",
            "terminatePostUri": f"{inst}/terminate?reason={{text}}&{q}",
            "rewindPostUri": f"{inst}/rewind?reason={{text}}&{q}",
            "purgeHistoryDeleteUri": f"{inst}?{q}",
            "restartPostUri": f"{inst}/restart?{q}",
            "suspendPostUri": f"{inst}/suspend?reason={{text}}&{q}",
            "resumePostUri": f"{inst}/resume?reason={{text}}&{q}",
        },
        "baseUrl": base,
        "requiredQueryStringParameters": "",
        "rpcBaseUrl": base + "/",
        "httpBaseUrl": "",
        "maxGrpcMessageSizeInBytes": 0,
        "grpcHttpClientTimeout": "00:01:40",
    }


def management_payload(binding: dict, instance_id: str) -> dict:
    return {key: url.replace("INSTANCEID", instance_id) for key, url in binding["managementUrls"].items()}


def _event_json(body: bytes) -> str | None:
    """An event body as the extension stores it: the body's JSON, one layer parsed and written back (so a JSON
    string stays a string); no body is null."""
    if not body or not body.strip():
        return None
    return json.dumps(json.loads(body))


def _json_text_from_body(body: bytes) -> str | None:
    """Body -> the JSON text to store: the SDK double-encodes (a JSON string of JSON text); curl does not."""
    if not body or not body.strip():
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return json.dumps(body.decode("utf-8", "replace"))
    if isinstance(value, str):
        try:
            json.loads(value)
            return value
        except ValueError:
            return json.dumps(value)
    return json.dumps(value)


def _error(status: int, message: str, exc: BaseException | None = None) -> web.Response:
    """`request.CreateErrorResponse(status, message, exception)` of ASP.NET Web API, which the extension uses."""
    body: dict[str, Any] = {"Message": message}
    if exc is not None:
        body.update(ExceptionMessage=str(exc), ExceptionType=type(exc).__name__, StackTrace=None)
    return web.json_response(body, status=status)


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return parse_ts(text)


class DurableApi:
    """aiohttp handlers; blocking engine/storage calls run in `executor`."""

    def __init__(self, engine: Engine, binding: dict, executor):
        self.engine = engine
        self.binding = binding
        self.executor = executor

    async def _call(self, fn, *args, **kwargs) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, lambda: fn(*args, **kwargs))

    async def handle(self, request: web.Request, rest: str) -> web.Response:
        parts = [p for p in rest.split("/") if p != ""]
        method = request.method.upper()
        try:
            if parts and parts[0] == "orchestrators" and method == "POST" and len(parts) in (2, 3):
                return await self._start(request, parts[1], parts[2] if len(parts) == 3 else None)
            if parts and parts[0] == "instances":
                return await self._instances(request, parts, method)
            if parts and parts[0] == "entities":
                return web.json_response("devhost does not support durable entities", status=501)
        except NotFound:
            return web.Response(status=404)
        except Gone:
            return web.Response(status=410)
        return web.Response(status=404)

    async def _instances(self, request: web.Request, parts: list[str], method: str) -> web.Response:
        """`instances/...`: one instance by id (status, purge, events, control requests) or a filtered query."""
        q = request.query
        if len(parts) == 1 and method in ("GET", "DELETE"):
            return await (self._list(q) if method == "GET" else self._purge_by(q))
        if len(parts) == 2 and method == "GET":
            return await self._status(request, parts[1], q)
        if len(parts) == 2 and method == "DELETE":
            deleted = await self._call(self.engine.purge, parts[1])
            if not deleted:
                return web.Response(status=404)
            return web.json_response({"instancesDeleted": deleted})
        if len(parts) == 4 and parts[2] == "raiseEvent" and method == "POST":
            return await self._raise_event(request, parts[1], parts[3])
        if len(parts) == 3 and method == "POST" and parts[2] in ("terminate", "suspend", "resume"):
            await self._call(getattr(self.engine, parts[2]), parts[1], q.get("reason"))
            return web.Response(status=202)
        if len(parts) == 3 and parts[2] in ("rewind", "restart"):
            return web.json_response(f"devhost does not support {parts[2]}", status=501)
        return web.Response(status=404)

    async def _raise_event(self, request: web.Request, instance_id: str, name: str) -> web.Response:
        status = await self._call(self.engine.status, instance_id, False, False)
        if status is None:
            return web.Response(status=404)
        if status["runtimeStatus"] in ("Failed", "Canceled", "Terminated", "Completed"):
            return web.Response(status=410)
        if request.content_type.lower() != "application/json":
            return _error(400, "Only application/json request content is supported")
        try:
            text = _event_json(await request.read())
        except ValueError as exc:
            return _error(400, "Invalid JSON content", exc)
        await self._call(self.engine.raise_event, instance_id, name, text)
        return web.Response(status=202)

    async def _start(self, request: web.Request, name: str, instance_id: str | None) -> web.Response:
        text = _json_text_from_body(await request.read())
        try:
            instance_id = await self._call(self.engine.start_new, name, instance_id, text)
        except UnknownOrchestrator as exc:
            return web.json_response(
                {"Message": "One or more of the arguments submitted is incorrect", "ExceptionMessage": str(exc)},
                status=400,
            )
        except InstanceExists as exc:  # OrchestrationAlreadyExistsException: the HTTP API's catch-all 500
            return _error(500, "Something went wrong while processing your request", exc)
        except ValueError as exc:  # invalid instance id: an ArgumentException, 400
            return _error(400, "One or more of the arguments submitted is incorrect", exc)
        payload = management_payload(self.binding, instance_id)
        body = {"id": instance_id, **{k: v for k, v in payload.items() if k != "id"}}
        return web.json_response(body, status=202, headers={"Location": payload["statusQueryGetUri"]})

    async def _status(self, request: web.Request, instance_id: str, q) -> web.Response:
        show_history = q.get("showHistory", "").lower() == "true"
        show_input = q.get("showInput", "true").lower() != "false"
        status = await self._call(self.engine.status, instance_id, show_history, show_input)
        if status is None:
            return web.Response(status=404)
        code = _STATUS_CODES.get(status["runtimeStatus"], 202)
        headers = {}
        if code == 202:
            headers["Location"] = management_payload(self.binding, instance_id)["statusQueryGetUri"]
            headers["Retry-After"] = "1"
        return web.json_response(status, status=code, headers=headers)

    def _filters(self, q) -> tuple:
        statuses = {s.strip() for s in q.get("runtimeStatus", "").split(",") if s.strip()} or None
        return _parse_time(q.get("createdTimeFrom")), _parse_time(q.get("createdTimeTo")), statuses

    async def _list(self, q) -> web.Response:
        created_from, created_to, statuses = self._filters(q)
        items = await self._call(
            self.engine.list_status,
            created_from,
            created_to,
            statuses,
            q.get("instanceIdPrefix"),
            q.get("showInput", "").lower() == "true",
        )
        return web.json_response(items)

    async def _purge_by(self, q) -> web.Response:
        created_from, created_to, statuses = self._filters(q)
        deleted = await self._call(self.engine.purge_by, created_from, created_to, statuses)
        if not deleted:
            return web.Response(status=404)
        return web.json_response({"instancesDeleted": deleted})
