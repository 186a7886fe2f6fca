"""Who is calling: the caller's identity from the request headers, recorded as a job's `triggeredBy`.

Where the identity comes from is the setting CALLER_IDENTITY_SOURCE:

- `easyauth`: the headers App Service Authentication ("Easy Auth") adds after it has validated the caller's
  token: `X-MS-CLIENT-PRINCIPAL` (base64 JSON `{"auth_typ", "name_typ", "role_typ", "claims": [{"typ", "val"}]}`),
  `X-MS-CLIENT-PRINCIPAL-ID` and `X-MS-CLIENT-PRINCIPAL-NAME`. The cloud setting (Bicep sets it).
- `bearer`: the claims of the `Authorization: Bearer <JWT>` token, decoded WITHOUT verifying it (local
  development only: anyone can write such a token).
- `auto`: the Easy Auth headers when present, else the bearer claims (the local default).
- `none`: every caller is anonymous.

Whatever the source, a caller that sends an `Access-Key` header (a DMSS personal access token, as the old
service took it) and has no other identity is recorded as `access-key:<first 12 hex digits of its SHA-256>`:
stable per key, and never the key itself. Nothing here stores or prints a token or key: `Caller` holds
identifiers and claims (its repr leaves the claims out) and, for the length of the request, the DMSS
`credential` the request carried (`Credential`: an `Access-Key`, else a Bearer token, what DMSS itself reads),
so that DMSS can be asked what this caller may do with a job whose entity it holds. A `Credential` never shows
its value (repr, str, copies); only its `fingerprint` (SHA-256) may be kept.

On App Service (WEBSITE_SITE_NAME set by the platform) the Easy Auth headers are trusted only while the platform
says App Service Authentication is on (WEBSITE_AUTH_ENABLED): without it nothing guarantees that a client did
not send such headers itself.

This module identifies; it does not authorize. In Azure, function keys and (optionally) Easy Auth decide who may
call at all.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.platform import settings

log = logging.getLogger(__name__)

SOURCES = ("easyauth", "bearer", "auto", "none")

PRINCIPAL_HEADER = "X-MS-CLIENT-PRINCIPAL"
PRINCIPAL_ID_HEADER = "X-MS-CLIENT-PRINCIPAL-ID"
PRINCIPAL_NAME_HEADER = "X-MS-CLIENT-PRINCIPAL-NAME"
ACCESS_KEY_HEADER = "Access-Key"
AUTHORIZATION_HEADER = "Authorization"

MAX_HEADER_CHARS = 32 * 1024  # ignore absurdly large identity headers instead of decoding them
ACCESS_KEY_HASH_CHARS = 12

# Claim types, most specific first (Entra ID v1/v2 tokens as Easy Auth reports them, and raw JWT names).
_ID_CLAIMS = (
    "http://schemas.microsoft.com/identity/claims/objectidentifier",
    "oid",
    "sub",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier",
)
_NAME_CLAIMS = (
    "preferred_username",
    "upn",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
    "email",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    "name",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
    "appid",
    "azp",
)


class Credential:
    """The DMSS credential of a request, as DMSS reads it (src/authentication/authentication.py
    auth_w_jwt_or_pat): an `Access-Key` (a personal access token) first, else an `Authorization: Bearer`
    token. Its value is shown nowhere: repr and str are redacted, and `fingerprint` is what a cache may key on."""

    __slots__ = ("kind", "_value")
    ACCESS_KEY, BEARER = "access-key", "bearer"

    def __init__(self, kind: str, value: str):
        if kind not in (self.ACCESS_KEY, self.BEARER) or not value:
            raise ValueError("a credential is an access key or a bearer token, with a value")
        self.kind = kind
        self._value = value

    def headers(self) -> dict[str, str]:
        """The header DMSS is to get: the one the caller sent (a JWT sent as Access-Key would be refused)."""
        if self.kind == self.ACCESS_KEY:
            return {ACCESS_KEY_HEADER: self._value}
        return {AUTHORIZATION_HEADER: f"Bearer {self._value}"}

    def secret(self) -> str:
        """The value itself, to scrub it from DMSS's answers (never to store or print)."""
        return self._value

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self.kind}:{self._value}".encode("utf-8")).hexdigest()

    def __repr__(self) -> str:
        return f"Credential({self.kind}, ***)"

    __str__ = __repr__


@dataclass(frozen=True)
class Caller:
    """A caller as far as the request tells. `source`: easyauth, bearer, access-key or anonymous.
    `credential`: the request's DMSS credential (not part of equality, never shown)."""

    id: str | None
    name: str | None
    source: str
    claims: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    credential: Credential | None = field(default=None, repr=False, compare=False)

    @property
    def display(self) -> str:
        """What a job records as `triggeredBy`: the name, else the id, else `anonymous`."""
        return self.name or self.id or "anonymous"

    @property
    def authenticated(self) -> bool:
        return self.source != "anonymous"

    def __str__(self) -> str:
        return self.display


ANONYMOUS = Caller(id=None, name=None, source="anonymous", claims={})


def caller_from_headers(headers: Mapping[str, str], source: str | None = None) -> Caller:
    """The caller of a request with these headers (any mapping; names are matched case-insensitively).

    `source` overrides the setting CALLER_IDENTITY_SOURCE (tests, tools).
    """
    mode = (source if source is not None else settings.get("CALLER_IDENTITY_SOURCE")).strip().lower()
    if mode not in SOURCES:
        log.warning("CALLER_IDENTITY_SOURCE %r is not one of %s: treating every caller as anonymous", mode, SOURCES)
        return ANONYMOUS
    if mode == "none":
        return ANONYMOUS
    lookup = _HeaderLookup(headers)
    return _with_credential(_identified(lookup, mode) or ANONYMOUS, lookup)


def _identified(lookup: _HeaderLookup, mode: str) -> Caller | None:
    if mode in ("easyauth", "auto"):
        caller = _from_easyauth(lookup)
        if caller is not None:
            return caller
    if mode in ("bearer", "auto"):
        caller = _from_bearer(lookup)
        if caller is not None:
            return caller
    return _from_access_key(lookup)


def credential_from_headers(headers: Mapping[str, str]) -> Credential | None:
    """The request's DMSS credential: `Access-Key`, else the token of `Authorization: Bearer`, else None."""
    return _credential(_HeaderLookup(headers))


def _credential(lookup: _HeaderLookup) -> Credential | None:
    key = (lookup.get(ACCESS_KEY_HEADER) or "").strip()
    if key:
        return Credential(Credential.ACCESS_KEY, key)
    scheme, _, token = (lookup.get(AUTHORIZATION_HEADER) or "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return Credential(Credential.BEARER, token.strip())
    return None


def _with_credential(caller: Caller, lookup: _HeaderLookup) -> Caller:
    credential = _credential(lookup)
    if credential is None:
        return caller
    return Caller(id=caller.id, name=caller.name, source=caller.source, claims=caller.claims, credential=credential)


def access_key_id(key: str) -> str:
    """The pseudonymous id of an access key: `access-key:` + the first hex digits of its SHA-256."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    return f"access-key:{digest[:ACCESS_KEY_HASH_CHARS]}"


# --- sources -----------------------------------------------------------------------------------------------


def easyauth_trusted() -> bool:
    """Whether X-MS-CLIENT-PRINCIPAL* headers can come from App Service Authentication only.

    Reads two variables the platform sets (they are not app settings): off App Service (local host, tests) the
    headers are taken as given; on App Service only while authentication is enabled.
    """
    if not os.environ.get("WEBSITE_SITE_NAME"):
        return True
    return os.environ.get("WEBSITE_AUTH_ENABLED", "").strip().lower() in ("true", "1")


def _from_easyauth(headers: _HeaderLookup) -> Caller | None:
    if not easyauth_trusted():
        if headers.get(PRINCIPAL_HEADER) or headers.get(PRINCIPAL_ID_HEADER) or headers.get(PRINCIPAL_NAME_HEADER):
            log.warning("ignoring X-MS-CLIENT-PRINCIPAL headers: App Service Authentication is not enabled")
        return None
    encoded = headers.get(PRINCIPAL_HEADER)
    header_id = _clean(headers.get(PRINCIPAL_ID_HEADER))
    header_name = _clean(headers.get(PRINCIPAL_NAME_HEADER))
    principal = _decode_principal(encoded) if encoded else None
    if principal is None and not header_id and not header_name:
        return None
    claims: dict[str, Any] = {}
    name_type = None
    if principal is not None:
        claims = _claims_dict(principal.get("claims"))
        auth_type = principal.get("auth_typ")
        if isinstance(auth_type, str):
            claims.setdefault("auth_typ", auth_type)
        name_type = principal.get("name_typ") if isinstance(principal.get("name_typ"), str) else None
    caller_id = header_id or _first_claim(claims, _ID_CLAIMS)
    names = ((name_type,) if name_type else ()) + _NAME_CLAIMS
    caller_name = header_name or _first_claim(claims, names)
    if not caller_id and not caller_name:
        return None
    return Caller(id=caller_id, name=caller_name, source="easyauth", claims=claims)


def _from_bearer(headers: _HeaderLookup) -> Caller | None:
    value = headers.get(AUTHORIZATION_HEADER)
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    claims = _unverified_jwt_claims(token.strip())
    if claims is None:
        return None
    caller_id = _first_claim(claims, ("oid", "sub"))
    caller_name = _first_claim(claims, ("preferred_username", "upn", "name", "email", "appid", "azp"))
    if not caller_id and not caller_name:
        return None
    return Caller(id=caller_id, name=caller_name, source="bearer", claims=claims)


def _from_access_key(headers: _HeaderLookup) -> Caller | None:
    key = (headers.get(ACCESS_KEY_HEADER) or "").strip()
    if not key:
        return None
    return Caller(id=access_key_id(key), name=None, source="access-key", claims={})


# --- helpers -----------------------------------------------------------------------------------------------


class _HeaderLookup:
    """Case-insensitive, read-only view of a header mapping (plain dicts are case-sensitive)."""

    def __init__(self, headers: Mapping[str, str]):
        self._headers: dict[str, str] = {}
        for key, value in (headers or {}).items():
            if isinstance(key, str) and isinstance(value, str):
                self._headers.setdefault(key.lower(), value)

    def get(self, name: str) -> str | None:
        value = self._headers.get(name.lower())
        if value is None or len(value) > MAX_HEADER_CHARS:
            return None
        return value


def _clean(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _b64decode(text: str, urlsafe: bool) -> bytes:
    text = text.strip()
    padded = text + "=" * (-len(text) % 4)
    if urlsafe:
        return base64.urlsafe_b64decode(padded)
    return base64.b64decode(padded, validate=False)


def _decode_principal(encoded: str) -> dict[str, Any] | None:
    for urlsafe in (False, True):
        try:
            data = json.loads(_b64decode(encoded, urlsafe).decode("utf-8"))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            continue
        if isinstance(data, dict):
            return data
    log.warning("ignoring an undecodable %s header", PRINCIPAL_HEADER)
    return None


def _claims_dict(raw: Any) -> dict[str, Any]:
    """[{typ, val}, ...] -> {typ: val}; a type given several times keeps all its values in a list."""
    claims: dict[str, Any] = {}
    if not isinstance(raw, list):
        return claims
    for item in raw:
        if not isinstance(item, dict):
            continue
        typ, val = item.get("typ"), item.get("val")
        if not isinstance(typ, str) or val is None:
            continue
        if typ in claims:
            existing = claims[typ]
            claims[typ] = (existing if isinstance(existing, list) else [existing]) + [val]
        else:
            claims[typ] = val
    return claims


def _first_claim(claims: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = claims.get(name)
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, (str, int)) and str(value).strip():
            return str(value).strip()
    return None


def _unverified_jwt_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT (header.payload.signature) without checking anything; None if it is not one."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[1]:
        return None
    try:
        payload = json.loads(_b64decode(parts[1], urlsafe=True).decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    return payload if isinstance(payload, dict) else None
