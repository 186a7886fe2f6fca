"""The HTTP side of `dmjob`: where the API is, the credentials it is sent, and what its errors say.

Credentials go in headers only (`x-functions-key`, `Authorization: Bearer`), never in a URL, and never into
anything this module prints or raises: an error names the method, the path and the API's own message.
"""

from __future__ import annotations

import shutil
import subprocess
import urllib.parse
from dataclasses import dataclass
from typing import Any

import httpx

USER_AGENT = "dmjob"


class DmjobError(Exception):
    """Something the command reports and exits on (exit_code), with a message fit to print."""

    exit_code = 1

    def __init__(self, message: str, *, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ApiRefused(DmjobError):
    """The API answered with an error: its status and its own message."""

    exit_code = 3

    def __init__(self, status: int, message: str, kind: str = "", body: Any = None):
        super().__init__(f"{message} (HTTP {status}{' ' + kind if kind else ''})")
        self.status, self.api_message, self.kind, self.body = status, message, kind, body


class Unreachable(DmjobError):
    exit_code = 4


def api_base(url: str) -> str:
    """`http://localhost:7071`, `.../api` or `.../api/jobs` (what jobs get as DM_JOB_URL): the API's `/api`."""
    base = url.strip().rstrip("/")
    if not base:
        raise DmjobError("no API address: give --url or set DMJOB_URL (e.g. http://localhost:7071)", exit_code=2)
    if not base.startswith(("http://", "https://")):
        raise DmjobError(f"the API address must start with http:// or https://, not {base[:40]!r}", exit_code=2)
    if base.endswith("/api/jobs"):
        base = base[: -len("/jobs")]
    return base if base.endswith("/api") else base + "/api"


def azure_cli_token(resource: str) -> str:
    """A token for `resource` (e.g. `api://<client id>`) from `az account get-access-token`."""
    az = shutil.which("az")
    if az is None:
        raise DmjobError("--az-resource needs the Azure CLI (az), which is not on PATH", exit_code=2)
    try:
        done = subprocess.run(
            [az, "account", "get-access-token", "--resource", resource, "--query", "accessToken", "-o", "tsv"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise DmjobError(f"az account get-access-token did not run ({type(error).__name__})") from None
    token = done.stdout.strip()
    if done.returncode != 0 or not token:
        reason = (done.stderr or "").strip().splitlines()[-1:] or ["no token"]
        raise DmjobError(f"az account get-access-token failed: {reason[0][:300]} (try `az login`)")
    return token


@dataclass
class Credentials:
    key: str | None = None
    token: str | None = None

    def headers(self) -> dict[str, str]:
        out = {}
        if self.key:
            out["x-functions-key"] = self.key
        if self.token:
            out["Authorization"] = f"Bearer {self.token}"
        return out

    def __repr__(self) -> str:  # never the values
        return f"Credentials(key={'***' if self.key else None}, token={'***' if self.token else None})"


def _error_of(response: httpx.Response) -> ApiRefused:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return ApiRefused(response.status_code, body["message"], str(body.get("type") or ""), body)
    if response.status_code == 401 and not response.content:
        return ApiRefused(
            401,
            "the app refused the call: a missing or wrong function key (--key / DMJOB_KEY) "
            "or token (--token / DMJOB_TOKEN)",
        )
    text = response.text.strip()[:300] or response.reason_phrase or "no message"
    return ApiRefused(response.status_code, text)


def _segment(uid: str) -> str:
    return urllib.parse.quote(uid.strip(), safe="")


class Api:
    """The DM Job API at `base` (ending in /api)."""

    def __init__(
        self,
        base: str,
        credentials: Credentials,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ):
        self.base = base
        self._http = httpx.Client(
            base_url=base,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": USER_AGENT, **credentials.headers()},
        )

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise Unreachable(
                f"cannot reach the API at {self.base} ({type(error).__name__}: {str(error)[:200]})"
            ) from None
        if response.status_code >= 400:
            raise _error_of(response)
        try:
            return response.json()
        except ValueError:
            raise DmjobError(f"{method} {path}: the API answered {response.status_code} with no JSON") from None

    # ---- the operations ----------------------------------------------------------------------------------
    def start(self, entity: Any, idempotency_key: str | None = None) -> dict:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.call("POST", "/jobs", json=entity, headers=headers)

    def status(self, uid: str) -> dict:
        return self.call("GET", f"/jobs/{_segment(uid)}")

    def stop(self, uid: str, stop_running: bool = False) -> dict:
        params = {"stopRunning": "true"} if stop_running else None
        return self.call("DELETE", f"/jobs/{_segment(uid)}", params=params)

    def result(self, uid: str) -> dict:
        return self.call("GET", f"/jobs/{_segment(uid)}/result")

    def log(self, uid: str, tail: int | None = None) -> dict:
        return self.call("GET", f"/jobs/{_segment(uid)}/log", params={"tail": tail} if tail else None)

    def list(self, status: str | None = None, limit: int | None = None, token: str | None = None) -> dict:
        params = {k: v for k, v in (("status", status), ("limit", limit), ("continuationToken", token)) if v}
        return self.call("GET", "/jobs", params=params)

    def schedule(self, uid: str, count: int) -> dict:
        return self.call("GET", f"/jobs/{_segment(uid)}/schedule", params={"next": count})

    def suspend(self, uid: str) -> dict:
        return self.call("POST", f"/jobs/{_segment(uid)}/suspend")

    def resume(self, uid: str) -> dict:
        return self.call("POST", f"/jobs/{_segment(uid)}/resume")
