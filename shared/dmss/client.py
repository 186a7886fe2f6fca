"""A small DMSS client: the five endpoints dm-job.md lists, and the two that say who may do what (`whoami`,
`acl`), errors mapped to `shared.platform.errors`.

- One `requests.Session` per process (connection pooling), created on first use; the base URL
  (`DMSS_URL`) and the timeout (`DMSS_TIMEOUT_SECONDS`) are read at call time, so tests can change them.
- Every document call sends the token both as `Authorization: Bearer <token>` and `Access-Key: <token>`
  (DMSS reads `Access-Key` first, personal access tokens live there; the old service sent both).
  The token exchange sends only the credential being exchanged (a Bearer JWT, or the app's access key):
  sending a JWT as `Access-Key` would make DMSS look it up as an access key and refuse it.
- Bodies of PUT/POST are multipart form fields (`data` / `document` = JSON string), what DMSS's own generated
  client sends; DMSS parses the fields with FastAPI `Form`, which also accepts urlencoded forms.
- Error mapping: DMSS 4xx -> the same status with DMSS's message (401 Unauthorized, 403 Forbidden,
  404 NotFound, 400 BadRequest, 409 Conflict, 422 ValidationFailed, others ApiError with that status);
  DMSS 5xx -> 502 BadGateway; timeout, refused or dropped connection -> 503 ServiceUnavailable
  "DMSS did not answer within N s".
- Asking as the caller (`get_document_as`, `whoami`, `get_acl`): the caller's own credential
  (`shared.platform.identity.Credential`) is sent as the caller sent it, `Access-Key` or `Authorization:
  Bearer`, never both (DMSS would take a JWT sent as Access-Key for an unknown access key).
- Secrets: tokens are never stored on the client, never logged and never put in a message; DMSS's own
  error text is scrubbed of the token before it is used; exceptions are raised `from None` so the
  underlying `requests` exception (which holds the prepared request, headers included) is not chained.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any
from urllib.parse import quote

import requests

from shared.platform import settings
from shared.platform.identity import Credential
from shared.platform.errors import (
    ApiError,
    BadGateway,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
)

log = logging.getLogger(__name__)

_STATUS_ERRORS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: ValidationFailed,
}
_MAX_MESSAGE = 500
REDACTED = "***"

_session: requests.Session | None = None
_session_lock = threading.Lock()


def get_session() -> requests.Session:
    """The process-wide session (created once, thread-safe creation)."""
    global _session
    if _session is None:
        with _session_lock:
            if _session is None:
                session = requests.Session()
                session.trust_env = False  # no proxy/netrc surprises: DMSS_URL is the one place it is set
                _session = session
    return _session


def reset_session() -> None:
    """Close and forget the session (tests; after a fork)."""
    global _session
    with _session_lock:
        if _session is not None:
            _session.close()
        _session = None


def base_url() -> str:
    return settings.get("DMSS_URL").rstrip("/")


def timeout_seconds() -> float:
    return settings.get_float("DMSS_TIMEOUT_SECONDS")


def _fmt_seconds(value: float) -> str:
    return f"{value:g}"


def _auth_headers(token: str) -> dict[str, str]:
    if not token or not isinstance(token, str):
        raise Unauthorized("No DMSS token for this call")
    return {"Authorization": f"Bearer {token}", "Access-Key": token}


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text


def _dmss_message(response: requests.Response) -> tuple[str, str | None, Any]:
    """(message, DMSS error type, data) from a DMSS error response."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = body.get("message") or body.get("detail") or body.get("debug") or ""
        if not isinstance(message, str):
            message = json.dumps(message)[:_MAX_MESSAGE]
        etype = body.get("type") if isinstance(body.get("type"), str) else None
        return message, etype, body.get("data")
    text = (response.text or "").strip()
    return text, None, None


def _error_for(response: requests.Response, what: str, secrets: tuple[str, ...]) -> ApiError:
    status = response.status_code
    message, etype, data = _dmss_message(response)
    message = _scrub(message, secrets)[:_MAX_MESSAGE] or response.reason or "no message"
    if isinstance(data, (dict, list, str)):
        data = json.loads(_scrub(json.dumps(data), secrets)) if data else None
    else:
        data = None
    debug = f"DMSS answered {status} to {what}"
    if status >= 500:
        return BadGateway(f"DMSS failed ({status}) on {what}: {message}", debug=debug, data=data)
    cls = _STATUS_ERRORS.get(status)
    if cls is not None:
        err = cls(message, debug=debug, data=data)
    else:
        err = ApiError(message, debug=debug, data=data, status=status, type=etype or "DMSSException")
    return err


class DmssClient:
    """Stateless apart from the shared session; safe from several threads. Holds no token."""

    def __init__(self, url: str | None = None, timeout: float | None = None, session: requests.Session | None = None):
        self._url = url.rstrip("/") if url else None
        self._timeout = timeout
        self._session = session

    def __repr__(self) -> str:
        return f"DmssClient(url={self.url!r})"

    @property
    def url(self) -> str:
        return self._url or base_url()

    @property
    def timeout(self) -> float:
        return self._timeout if self._timeout is not None else timeout_seconds()

    @property
    def session(self) -> requests.Session:
        return self._session or get_session()

    # --- transport ----------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        secrets: tuple[str, ...],
        headers: dict[str, str],
        params: dict[str, Any] | None = None,
        files: dict[str, Any] | None = None,
    ) -> requests.Response:
        timeout = self.timeout
        started = time.monotonic()
        failure: ApiError | None = None
        try:
            response = self.session.request(
                method,
                self.url + path,
                headers=headers,
                params=params,
                files=files,
                timeout=timeout,
                allow_redirects=False,
            )
        except requests.Timeout:
            log.warning("DMSS %s: no answer within %s s", what, _fmt_seconds(timeout))
            failure = ServiceUnavailable(
                f"DMSS did not answer within {_fmt_seconds(timeout)} s", debug=f"timeout on {what}"
            )
        except requests.RequestException as exc:
            log.warning("DMSS %s: %s", what, type(exc).__name__)
            failure = ServiceUnavailable(
                f"DMSS did not answer within {_fmt_seconds(timeout)} s (connection failed or dropped)",
                debug=f"{type(exc).__name__} on {what}",
            )
        if failure is not None:
            # raised outside the except block: no __context__ pointing at the request (and its headers)
            raise failure
        elapsed = time.monotonic() - started
        log.debug("DMSS %s -> %s in %.3f s", what, response.status_code, elapsed)
        if response.status_code >= 400:
            raise _error_for(response, what, secrets)
        return response

    @staticmethod
    def _documents_path(address: str) -> str:
        # the whole address in one path segment, fully encoded (`dmss%3A%2F%2FDS%2F%24id`)
        return "/api/documents/" + quote(address, safe="")

    @staticmethod
    def _json(response: requests.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            pass
        raise BadGateway(f"DMSS answered {what} with something that is not JSON")

    # --- endpoints ----------------------------------------------------------------------------------

    def get_document(self, address: str, depth: int = 1, *, token: str) -> Any:
        """`GET /api/documents/{address}?depth=N`: the document JSON."""
        if not 0 <= int(depth) <= 999:
            raise ValueError("depth must be within 0..999")
        what = f"GET {address}"
        response = self._request(
            "GET",
            self._documents_path(address),
            what,
            secrets=(token,),
            headers=_auth_headers(token),
            params={"depth": int(depth)},
        )
        return self._json(response, what)

    def update_document(self, address: str, data: Any, partial_update: bool = False, *, token: str) -> Any:
        """`PUT /api/documents/{address}?partial_update=..` with form field `data`; returns DMSS's `data`."""
        what = f"PUT {address}"
        response = self._request(
            "PUT",
            self._documents_path(address),
            what,
            secrets=(token,),
            headers=_auth_headers(token),
            params={"partial_update": "true" if partial_update else "false"},
            files={"data": (None, json.dumps(data))},
        )
        body = self._json(response, what)
        return body.get("data", body) if isinstance(body, dict) else body

    def add_document(self, address: str, document: dict[str, Any], *, token: str) -> str:
        """`POST /api/documents/{address}` with form field `document`; returns the new `uid` (an address)."""
        what = f"POST {address}"
        response = self._request(
            "POST",
            self._documents_path(address),
            what,
            secrets=(token,),
            headers=_auth_headers(token),
            files={"document": (None, json.dumps(document))},
        )
        body = self._json(response, what)
        uid = body.get("uid") if isinstance(body, dict) else body
        if not isinstance(uid, str) or not uid:
            raise BadGateway(f"DMSS answered {what} without a uid")
        return uid

    # --- as the caller: who may do what ---------------------------------------------------------------

    def get_document_as(self, address: str, depth: int = 0, *, credential: Credential) -> Any:
        """`GET /api/documents/{address}?depth=N` with the caller's credential: DMSS's own READ check on it."""
        what = f"GET {address}"
        response = self._request(
            "GET",
            self._documents_path(address),
            what,
            secrets=(credential.secret(),),
            headers=credential.headers(),
            params={"depth": int(depth)},
        )
        return self._json(response, what)

    def whoami(self, *, credential: Credential) -> dict[str, Any]:
        """`GET /api/whoami`: the caller as DMSS sees them, `{user_id, roles, scope, ...}`."""
        what = "GET /api/whoami"
        response = self._request(
            "GET", "/api/whoami", what, secrets=(credential.secret(),), headers=credential.headers()
        )
        body = self._json(response, what)
        if not isinstance(body, dict) or not isinstance(body.get("user_id"), str):
            raise BadGateway("DMSS answered GET /api/whoami without a user_id")
        return body

    def get_acl(self, address: str, *, credential: Credential) -> dict[str, Any]:
        """`GET /api/acl/{address}` (a document by id, `dmss://DS/$id`): its access control list
        `{owner, roles, users, others}`. DMSS answers it only to a caller who may read the document."""
        what = f"GET acl {address}"
        response = self._request(
            "GET",
            "/api/acl/" + quote(address, safe=""),
            what,
            secrets=(credential.secret(),),
            headers=credential.headers(),
        )
        body = self._json(response, what)
        if not isinstance(body, dict):
            raise BadGateway(f"DMSS answered {what} with something that is not an access control list")
        return body

    def _token(self, headers: dict[str, str], ttl_seconds: int, scope: str, secret: str) -> str:
        what = "POST /api/token"
        response = self._request(
            "POST",
            "/api/token",
            what,
            secrets=(secret,),
            headers=headers,
            params={"scope": scope, "time_to_live": int(ttl_seconds)},
        )
        token = (response.text or "").strip()
        if token.startswith('"'):
            try:
                token = json.loads(token)
            except ValueError:
                pass
        if not isinstance(token, str) or not token or any(c.isspace() for c in token):
            raise BadGateway("DMSS answered the token exchange without a token")
        return token

    def exchange_token(self, bearer: str, ttl_seconds: int, scope: str = "WRITE") -> str:
        """`POST /api/token?scope=..&time_to_live=..` with `Authorization: Bearer <JWT>`: a personal
        access token (plain text, `DMSS_<key>`)."""
        if not bearer:
            raise Unauthorized("No bearer token to exchange at DMSS")
        return self._token({"Authorization": f"Bearer {bearer}"}, ttl_seconds, scope, bearer)

    def renew_with_access_key(self, access_key: str, ttl_seconds: int, scope: str = "WRITE") -> str:
        """Like `exchange_token`, authenticated by an access key (`Access-Key` header): a new token of
        the same identity with a fresh lifetime."""
        if not access_key:
            raise Unauthorized("No DMSS access key to renew a token with")
        return self._token({"Access-Key": access_key}, ttl_seconds, scope, access_key)

    def healthcheck(self) -> bool:
        """`GET /api/healthcheck`: True when DMSS answers 2xx; the mapped error otherwise."""
        self._request("GET", "/api/healthcheck", "GET /api/healthcheck", secrets=(), headers={})
        return True


_default_client: DmssClient | None = None


def client() -> DmssClient:
    """The process-wide client (configured from settings at call time)."""
    global _default_client
    if _default_client is None:
        _default_client = DmssClient()
    return _default_client


# module-level shortcuts -------------------------------------------------------------------------------


def get_document(address: str, depth: int = 1, *, token: str) -> Any:
    return client().get_document(address, depth, token=token)


def update_document(address: str, data: Any, partial_update: bool = False, *, token: str) -> Any:
    return client().update_document(address, data, partial_update, token=token)


def add_document(address: str, document: dict[str, Any], *, token: str) -> str:
    return client().add_document(address, document, token=token)


def exchange_token(bearer: str, ttl_seconds: int, scope: str = "WRITE") -> str:
    return client().exchange_token(bearer, ttl_seconds, scope)


def renew_with_access_key(access_key: str, ttl_seconds: int, scope: str = "WRITE") -> str:
    return client().renew_with_access_key(access_key, ttl_seconds, scope)


def healthcheck() -> bool:
    return client().healthcheck()
