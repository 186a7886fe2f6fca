"""A webhook receiver stand-in on 127.0.0.1: a small threaded HTTP server that verifies every request with the
`standardwebhooks` package (as a receiver following the specification would) and answers as it is told.

`script` is a list of answers for the next requests, used up in order: an int (that status), "timeout" (answer
only after `slow_seconds`), then `default` (200). `go_away()` closes the listening socket (connection refused)
and `come_back()` listens on the same port again. Every request is kept in `received` with its verification
result, so tests can de-duplicate by `webhook-id` and check the order and content of what arrived.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: str
    verified_with: list[str]  # the secrets that verified it
    answered: Any
    at: float = field(default_factory=time.monotonic)

    @property
    def id(self) -> str:
        return self.headers.get("webhook-id", "")

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)


class Receiver:
    def __init__(self, secrets: list[str] | None = None, slow_seconds: float = 3.0):
        self.secrets = list(secrets or [])
        self.script: list[Any] = []
        self.default: Any = 200
        self.slow_seconds = slow_seconds
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self.come_back()

    # ---- life -------------------------------------------------------------------------------------------
    def come_back(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                headers = {k.lower(): v for k, v in self.headers.items()}
                answer = receiver._next_answer()
                verified = receiver._verify(body, headers)
                with receiver.lock:
                    receiver.received.append(Received(self.path, headers, body, verified, answer))
                if answer == "timeout":
                    time.sleep(receiver.slow_seconds)
                    answer = 200
                self.send_response(int(answer))
                self.send_header("Content-Type", "text/plain")
                text = ("x" * 3000).encode()  # more than the 1 KB the delivery log keeps
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                try:
                    self.wfile.write(text)
                except OSError:
                    pass

            def log_message(self, *args) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def go_away(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    stop = go_away

    # ---- behaviour ----------------------------------------------------------------------------------------
    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _next_answer(self) -> Any:
        with self.lock:
            return self.script.pop(0) if self.script else self.default

    def _verify(self, body: str, headers: dict[str, str]) -> list[str]:
        ok = []
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
                ok.append(secret)
            except WebhookVerificationError:
                continue
        return ok

    # ---- what arrived -------------------------------------------------------------------------------------
    def delivered(self, path: str | None = None) -> list[Received]:
        """Requests answered 2xx, de-duplicated by webhook-id (first arrival kept), in arrival order."""
        seen, out = set(), []
        with self.lock:
            items = list(self.received)
        for item in items:
            if (path and item.path != path) or item.answered not in (200, "timeout") or item.id in seen:
                continue
            if item.answered == "timeout":
                continue  # the app gave up on it before the answer: it is retried
            seen.add(item.id)
            out.append(item)
        return out

    def wait_for(self, count: int, timeout: float = 30.0, path: str | None = None) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.delivered(path)
            if len(got) >= count:
                return got
            time.sleep(0.02)
        raise AssertionError(f"{len(self.delivered(path))} of {count} webhooks arrived within {timeout}s")
