"""aiohttp server that turns HTTP requests into `azure.functions.HttpRequest` calls, as the Functions host does.

Local/test host only. One catch-all aiohttp route dispatches to: the Durable API under
`/runtime/webhooks/durabletask/`, a small `/admin/host/status`, and the app's HTTP functions under the route
prefix (see routing.py). Function keys and auth levels are ignored, as `func start` ignores them. Sync functions
run in a thread pool, `async def` ones on the loop; an unhandled exception becomes an empty 500, as in Azure.
"""
from __future__ import annotations

import json
import logging
import socket
from typing import Any

import azure.functions as func
from aiohttp import web

from .durable_api import BASE_PATH, DurableApi
from .functions import FunctionInfo, build_kwargs, call_async
from .routing import Router

log = logging.getLogger("devhost.http")


def to_http_request(request: web.Request, body: bytes, route_params: dict[str, Any]) -> func.HttpRequest:
    params: dict[str, str] = {}
    for key, value in request.query.items():
        params.setdefault(key, value)
    url = f"{request.scheme}://{request.host}{request.rel_url}"
    return func.HttpRequest(method=request.method.upper(), url=url, headers=dict(request.headers),
                            params=params, route_params={k: v for k, v in route_params.items() if v is not None},
                            body=body)


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


class HttpServer:
    """Serves one app on 127.0.0.1:port (0 picks a free port)."""

    def __init__(self, router: Router, durable: DurableApi | None, executor, client_binding_json):
        self.router = router
        self.durable = durable
        self.executor = executor
        self.client_binding_json = client_binding_json
        self.runner: web.AppRunner | None = None
        self.port: int | None = None

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=100 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

    def bind(self, port: int) -> int:
        """Reserve the port first (the durable client binding needs it) and serve only once all is ready."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        self._sock = sock
        self.port = sock.getsockname()[1]
        return self.port

    async def start(self) -> int:
        self.runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False)
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

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        raw_path = request.rel_url.raw_path
        if raw_path.startswith(BASE_PATH + "/") or raw_path == BASE_PATH:
            if self.durable is None:
                return web.Response(status=404)
            return await self.durable.handle(request, raw_path[len(BASE_PATH):])
        if raw_path.rstrip("/") == "/admin/host/status":
            return web.json_response({"state": "Running", "version": "devhost"})
        route, values, allowed = self.router.resolve(request.method, raw_path)
        if route is None:
            if allowed:
                return web.Response(status=405, headers={"Allow": ", ".join(sorted(allowed))})
            return web.Response(status=404)
        info: FunctionInfo = route.handler
        body = await request.read()
        trigger = info.binding("httpTrigger") or {}
        values_for_call = {trigger.get("name", "req"): to_http_request(request, body, values)}
        client = info.binding("durableClient")
        if client:
            values_for_call[client["name"]] = self.client_binding_json()
        try:
            result = await call_async(info, build_kwargs(info, values_for_call), self.executor)
        except Exception:  # noqa: BLE001 - the host answers 500 for an unhandled function exception
            log.exception("function %s failed", info.name)
            return web.Response(status=500)
        return to_web_response(result)
