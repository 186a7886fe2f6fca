"""A small threaded HTTP server on 127.0.0.1 (free port) that stand-ins build on."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlparse


class Request:
    def __init__(self, method: str, handler: BaseHTTPRequestHandler):
        self.method = method
        url = urlparse(handler.path)
        self.path = url.path
        self.query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        self.headers = handler.headers
        length = int(handler.headers.get("Content-Length") or 0)
        self.body = handler.rfile.read(length) if length else b""

    def json(self) -> Any:
        return json.loads(self.body or b"null")


class Response:
    """A JSON answer, or with `raw` bytes sent as they are (`content_type`, default text/plain)."""

    def __init__(
        self,
        status: int,
        body: Any = None,
        headers: Optional[dict[str, str]] = None,
        raw: Optional[bytes] = None,
        content_type: str = "text/plain; charset=utf-8",
    ):
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.raw = raw
        self.content_type = content_type


Handler = Callable[[Request], Response]


class StandInServer:
    """Calls `handle(request) -> Response` for every request; JSON bodies."""

    def __init__(self, handle: Handler):
        self._handle = handle
        outer = self

        class _RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

            def _serve(self) -> None:
                request = Request(self.command, self)
                try:
                    response = outer._handle(request)
                except Exception as error:  # a bug in the stand-in: say so loudly
                    response = Response(500, {"error": {"code": "StandInBug", "message": repr(error)}})
                if response.raw is not None:
                    data, content_type = response.raw, response.content_type
                else:
                    data = b"" if response.body is None else json.dumps(response.body).encode()
                    content_type = "application/json; charset=utf-8"
                self.send_response(response.status)
                for key, value in response.headers.items():
                    self.send_header(key, value)
                if data or response.status not in (202, 204, 304):
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if data:
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _serve

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _RequestHandler)
        self._server.daemon_threads = True
        self._thread: Optional[threading.Thread] = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "StandInServer":
        self._thread = threading.Thread(target=self._server.serve_forever, name="stand-in", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)
