"""aiohttp server that turns HTTP requests into `azure.functions.HttpRequest` calls, as the Functions host does.

Local/test host only. One handler dispatches to: the Durable API under `/runtime/webhooks/durabletask/`, a small
`/admin/host/status`, and the app's HTTP functions under the route prefix (see routing.py). What is copied from
the real host, and from where (azure-functions-host unless said otherwise):

* the request the function gets is built as `ToRpcHttp` builds it
  (src/WebJobs.Script.Grpc/MessageExtensions/GrpcMessageConversionExtensions.cs) for the capabilities the Python
  worker declares (RawHttpBodyBytes, RpcHttpBodyOnly; no nullable dictionaries: azure_functions_worker
  dispatcher.py): header names lower-cased, a repeated header's values joined with "," (`StringValues.ToString()`
  joins the non-empty values with a comma, no space); query keys case-insensitive (ASP.NET Core's
  QueryCollection), a repeated key's values joined with "," and a key whose value is empty left out; the body
  only when `Content-Length` > 0, so a chunked body arrives empty; the URL is scheme, host, the *decoded* path
  (`Request.Path`, `%2F` kept) and the raw query string;
* function keys when `DEVHOST_REQUIRE_KEYS` is on (keys.py): 401 with an empty body before the function runs;
* sync functions run on the worker's one thread pool (worker.py), `async def` ones on the loop; an unhandled
  exception becomes an empty 500, as in Azure;
* the request limits are Kestrel's defaults (request line 8 KB, 100 headers, header fields up to the 32 KB total;
  the host's 100 MB body limit).

Deliberate differences (README "The local host"): a request that matches no route, and a request the server
itself rejects (a header with CR, LF or NUL, a bad Content-Length, a header past the limits) are answered with
the app's JSON error body `{"status", "type", "message", "debug", "data"}`, where Kestrel and the host answer
with an empty body.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from typing import Any

import azure.functions as func
from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler

from .durable_api import BASE_PATH, DurableApi
from .functions import FunctionInfo, build_kwargs
from .keys import Keys, authorized
from .routing import Router, decode_segment
from .worker import WorkerPool

log = logging.getLogger("devhost.http")

# Kestrel's defaults (KestrelServerLimits): MaxRequestLineSize 8 KB, MaxRequestHeaderCount 100,
# MaxRequestHeadersTotalSize 32 KB (aiohttp limits each field, so a single field may use the whole 32 KB).
MAX_LINE = 8 * 1024
MAX_HEADERS = 100
MAX_FIELD = 32 * 1024
MAX_BODY = 100 * 1024 * 1024  # the Functions host's limit on an HTTP trigger's request body


def error_body(status: int, kind: str, message: str) -> dict[str, Any]:
    """The app's error body shape (function_app.py `_error`)."""
    return {"status": status, "type": kind, "message": message, "debug": "", "data": None}


def error_response(status: int, kind: str, message: str) -> web.Response:
    return web.json_response(error_body(status, kind, message), status=status)


def _joined(values: list[str]) -> str:
    """`StringValues.ToString()`: the non-empty values joined with ','."""
    return ",".join(v for v in values if v)


def rpc_headers(request: web.BaseRequest) -> dict[str, str]:
    grouped: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        grouped.setdefault(name.lower(), []).append(value)
    return {name: _joined(values) for name, values in grouped.items()}


def rpc_query(request: web.BaseRequest) -> dict[str, str]:
    grouped: dict[str, tuple[str, list[str]]] = {}
    for key, value in request.query.items():
        grouped.setdefault(key.lower(), (key, []))[1].append(value)
    out = {}
    for key, values in grouped.values():
        joined = _joined(values)
        if joined:
            out[key] = joined
    return out


def has_body(request: web.BaseRequest) -> bool:
    """`request.Body != null && request.ContentLength > 0`: a chunked request (no Content-Length) has none."""
    return (request.content_length or 0) > 0


def to_http_request(request: web.BaseRequest, body: bytes, route_params: dict[str, Any]) -> func.HttpRequest:
    path = "/".join(decode_segment(s) for s in request.rel_url.raw_path.split("/"))
    query = request.rel_url.raw_query_string
    url = f"{request.scheme}://{request.host}{path}" + (f"?{query}" if query else "")
    return func.HttpRequest(
        method=request.method.upper(),
        url=url,
        headers=rpc_headers(request),
        params=rpc_query(request),
        route_params={k: v for k, v in route_params.items() if v is not None},
        body=body if has_body(request) else b"",
    )


def to_web_response(result: Any) -> web.Response:
    if isinstance(result, func.HttpResponse):
        headers = {k: v for k, v in result.headers.items()}
        if not any(k.lower() == "content-type" for k in headers) and result.mimetype:
            charset = f"; charset={result.charset}" if result.charset and result.mimetype.startswith("text") else ""
            headers["Content-Type"] = f"{result.mimetype}{charset}"
        return web.Response(status=result.status_code, body=result.get_body(), headers=headers)
    if result is None:
        return web.Response(status=204)
    if isinstance(result, (bytes, bytearray)):
        return web.Response(body=bytes(result))
    if isinstance(result, str):
        return web.Response(text=result)
    return web.Response(text=json.dumps(result), content_type="application/json")


class _JsonErrors(RequestHandler):
    """aiohttp's protocol handler with the JSON error body for requests it cannot parse."""

    def handle_error(
        self, request, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        kind, text = "BadRequest", message or "the request could not be parsed"
        if isinstance(exc, LineTooLong):
            if f"more than {MAX_LINE} bytes" in str(exc):  # the request line (the parser names no part)
                status, kind = 414, "UriTooLong"
            else:
                status, kind = 431, "RequestHeaderFieldsTooLarge"
        elif status >= 500:
            kind, text = "InternalServerError", "internal error; see the host's log"
        else:
            status = status if 400 <= status < 500 else 400
        log.info("rejected a malformed request: %s", exc or message)
        response = error_response(status, kind, text)
        response.force_close()
        return response


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrors(self, loop=self._loop, **self._kwargs)


class HttpServer:
    """Serves one app on 127.0.0.1:port (0 picks a free port)."""

    def __init__(
        self,
        router: Router,
        durable: DurableApi | None,
        worker: WorkerPool,
        client_binding_json,
        keys: Keys | None = None,
    ):
        self.router = router
        self.durable = durable
        self.worker = worker
        self.client_binding_json = client_binding_json
        self.keys = keys  # None: keys are not enforced (like `func start`)
        self.runner: web.BaseRunner | None = None
        self.port: int | None = None

    def bind(self, port: int) -> int:
        """Reserve the port first (the durable client binding needs it) and serve only once all is ready."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        self._sock = sock
        self.port = sock.getsockname()[1]
        return self.port

    def _request(self, message, payload, protocol, writer, task) -> web.BaseRequest:
        return web.BaseRequest(
            message, payload, protocol, writer, task, asyncio.get_running_loop(), client_max_size=MAX_BODY
        )

    async def start(self) -> int:
        server = _Server(
            self.dispatch,
            request_factory=self._request,
            max_line_size=MAX_LINE,
            max_field_size=MAX_FIELD,
            max_headers=MAX_HEADERS,
            access_log=None,
        )
        self.runner = web.ServerRunner(server, handle_signals=False)
        await self.runner.setup()
        site = web.SockSite(self.runner, self._sock, backlog=1024)
        await site.start()
        return self.port

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        elif getattr(self, "_sock", None) is not None:
            self._sock.close()
        self._sock = None

    async def dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        raw_path = request.rel_url.raw_path
        if raw_path.startswith(BASE_PATH + "/") or raw_path == BASE_PATH:
            if self.durable is None:
                return error_response(404, "NotFound", "this app has no Durable functions")
            return await self.durable.handle(request, raw_path[len(BASE_PATH) :])
        if raw_path.rstrip("/") == "/admin/host/status":
            return web.json_response({"state": "Running", "version": "devhost"})
        route, values = self.router.resolve(request.method, raw_path)
        if route is None:
            return error_response(404, "NotFound", f"no function answers {request.method} {raw_path}")
        info: FunctionInfo = route.handler
        if self.keys is not None and not authorized(
            self.keys, route.auth_level, info.name, request.headers, request.query
        ):
            return web.Response(status=401)
        body = await request.read()
        trigger = info.binding("httpTrigger") or {}
        values_for_call = {trigger.get("name", "req"): to_http_request(request, body, values)}
        client = info.binding("durableClient")
        if client:
            values_for_call[client["name"]] = self.client_binding_json()
        try:
            result = await self.worker.invoke_async(info, build_kwargs(info, values_for_call))
        except Exception:  # noqa: BLE001 - the host answers 500 for an unhandled function exception
            log.exception("function %s failed", info.name)
            return web.Response(status=500)
        return to_web_response(result)
