"""Who may read or stop a job whose entity lives in DMSS: DMSS decides, asked with the caller's own credential.

The DM web app lets several people open one job entity; each polls `GET /api/jobs/{uid}` with their own token.
The old service let anyone with a uid do anything; owner-only (the rule for inline jobs) would lock out everyone
but the starter. Here the rights are the entity's, as DMSS keeps them:

- **read** (status, log, result, schedule preview): `GET /api/documents/{job address}?depth=0` as the caller,
  i.e. DMSS's own READ check on that very entity (`assert_user_has_access(acl, READ, user)` in
  DataSource.get / get_lookup, src/storage/data_source_class.py).
- **write** (stop, suspend, resume; starting it again is a POST of the address, which DMSS checks itself when
  the entity is read and written back): `GET /api/whoami` (the caller as DMSS sees them: user_id, roles,
  scope; src/features/whoami/whoami_feature.py) and `GET /api/acl/{document}` (the document's ACL, which
  needs READ; src/features/access_control/access_control_feature.py), evaluated with DMSS's rule
  (`has_access`, after src/authentication/access_control.py).
- A refusal by DMSS (401, 403, 404) is the caller's answer here, with DMSS's status and message; a DMSS that
  fails or does not answer is a 502/503, never "allowed".
- Answers are remembered per (caller credential, job entity, level) for DMSS_ACCESS_CACHE_SECONDS (60 s): the
  web app polling every 5 s costs DMSS one call a minute per user and job (per app instance). The key holds
  the credential's SHA-256, never the credential; nothing here logs or returns it.

The starter (same caller id) and the job itself (its token) are allowed by `shared.jobs.access` before DMSS is
asked; progress reports stay theirs alone. A run of a recurring job started from DMSS has no entity of its
own: the RecurringJob's rights are its rights (`ACCESS_ADDRESS`, set by shared.schedules.runs).

ACLs are kept per stored document: the one a job entity is checked against is the entity's own when it is a
stored document (it has an `_id`), else the document its address starts from (`$id`), else (a package path)
the document the path names, looked up once by id. (DMSS sets ACLs recursively by default, so a contained
entity behind a storage reference normally shares its parent's.)
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Mapping

from shared.dmss import client as dmss
from shared.dmss.address import ID, parse_address
from shared.jobs.access import READ, WRITE, Caller
from shared.jobs.record import JobRecord
from shared.platform import clock, settings
from shared.platform.errors import ApiError, BadGateway, Forbidden, Unauthorized
from shared.platform.identity import Credential

log = logging.getLogger(__name__)

ACL_DOCUMENT = "dmssAclDocument"  # record.extra: the `dmss://DS/$id` whose ACL decides (set at start)
ACCESS_ADDRESS = "dmssAccessAddress"  # record.extra of a scheduled run: the RecurringJob entity whose rights it has
ORDER = {"NONE": 0, "READ": 1, "WRITE": 2}  # DMSS's AccessLevel (src/authentication/models.py)
DMSS_LEVEL = {READ: "READ", WRITE: "WRITE"}
NO_LOGIN = "nologin"  # the user DMSS reports when its authentication is off (User.default()): all allowed
REMEMBERED_REFUSALS = (401, 403, 404)  # DMSS's own answers; 5xx and timeouts are asked again next time
MAX_REMEMBERED = 10_000


# ---- DMSS's rule ------------------------------------------------------------------------------------------
def _level(value: Any, default: str = "NONE") -> int:
    return ORDER.get(str(value).upper() if value is not None else default, 0)


def has_access(acl: Mapping[str, Any], user: Mapping[str, Any], level: str) -> bool:
    """DMSS's `assert_user_has_access` (src/authentication/access_control.py) as a yes/no, for `level` READ or
    WRITE: the user's scope first (a personal access token's limit), then `others`, the owner, the user's roles,
    the users named; NONE < READ < WRITE. Missing values take the defaults of DMSS's models (scope WRITE,
    others READ)."""
    if user.get("user_id") == NO_LOGIN:
        return True
    need = ORDER[level]
    if _level(user.get("scope"), "WRITE") < need:
        return False
    if _level(acl.get("others"), "READ") >= need or acl.get("owner") == user.get("user_id"):
        return True
    roles = acl.get("roles") or {}
    if any(_level(roles.get(role)) >= need for role in user.get("roles") or []):
        return True
    return _level((acl.get("users") or {}).get(user.get("user_id"))) >= need


def acl_document_of(address: str, entity: Mapping[str, Any]) -> str | None:
    """The document whose ACL decides for the job entity at `address` (PURE): the entity itself when it is a
    stored document, else the `$id` its address starts from; None for a package path (looked up later)."""
    parsed = parse_address(address)
    if isinstance(entity.get("_id"), str) and entity["_id"]:
        return f"dmss://{parsed.data_source}/${entity['_id']}"
    head = parsed.document
    if len(head.items) == 1 and head.items[0].kind == ID:
        return str(head)
    return None


# ---- remembered answers -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Answer:
    refusal: dict[str, Any] | None = None  # None: allowed; else the ApiError's fields, to raise again

    def give(self) -> None:
        if self.refusal is not None:
            raise ApiError(**self.refusal)


ALLOWED = _Answer()


class _Remembered:
    """Answers by key until they expire (app clock), at most MAX_REMEMBERED (the oldest go first)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, ...], tuple[datetime, Any]] = {}

    def get(self, key: tuple[str, ...], now: datetime) -> Any | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= now:
                del self._entries[key]
                return None
            return entry[1]

    def put(self, key: tuple[str, ...], value: Any, now: datetime, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._lock:
            if len(self._entries) >= MAX_REMEMBERED:
                for stale in [k for k, (until, _) in self._entries.items() if until <= now] or list(self._entries)[
                    : MAX_REMEMBERED // 10
                ]:
                    del self._entries[stale]
            self._entries[key] = (now + timedelta(seconds=seconds), value)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_answers = _Remembered()
_documents = _Remembered()  # package path -> `dmss://DS/$id` (not secret, not per caller)


def forget() -> None:
    """Drop every remembered answer (tests; an operator changing ACLs can also just wait the TTL out)."""
    _answers.clear()
    _documents.clear()


def remember_seconds() -> float:
    return settings.get_float("DMSS_ACCESS_CACHE_SECONDS")


# ---- the checks -------------------------------------------------------------------------------------------
def entity_address(record: JobRecord) -> str | None:
    """The DMSS entity whose rights decide for this job: its own, or, for a run of a recurring job started from
    DMSS (which has none of its own), the RecurringJob's."""
    return record.dmss_address or record.extra.get(ACCESS_ADDRESS) or None


def check(record: JobRecord, credential: Credential, level: str) -> None:
    """Raise DMSS's refusal unless the caller with `credential` may `level` (READ or WRITE) the job's entity."""
    address = entity_address(record)
    if not address:
        raise ValueError(f"job {record.uid} has no DMSS entity")
    key = (credential.fingerprint, address, level)
    now = clock.now()
    answer = _answers.get(key, now)
    if answer is not None:
        answer.give()
        return
    try:
        if level == READ:
            dmss.client().get_document_as(address, 0, credential=credential)
        else:
            _check_write(record, address, credential)
    except ApiError as refusal:
        if refusal.status in REMEMBERED_REFUSALS:
            _answers.put(
                key,
                _Answer(
                    {
                        "message": refusal.message,
                        "status": refusal.status,
                        "type": refusal.type,
                        "debug": refusal.debug,
                        "data": refusal.data,
                    }
                ),
                now,
                remember_seconds(),
            )
        log.info("DMSS refused %s on job %s (%s)", DMSS_LEVEL[level], record.uid, refusal.status)
        raise
    _answers.put(key, ALLOWED, now, remember_seconds())


def _check_write(record: JobRecord, address: str, credential: Credential) -> None:
    user = dmss.client().whoami(credential=credential)
    document = _acl_document(record, address, credential)
    acl = dmss.client().get_acl(document, credential=credential)
    if not has_access(acl, user, "WRITE"):
        raise Forbidden(
            "The requested operation requires 'WRITE' privileges",
            debug=f"DMSS's access control list of {document} gives the caller no WRITE",
            data={"address": address},
        )


def _acl_document(record: JobRecord, address: str, credential: Credential) -> str:
    known = record.extra.get(ACL_DOCUMENT) or acl_document_of(address, {})
    if known:
        return known
    head = str(parse_address(address).document)
    now = clock.now()
    found = _documents.get((head,), now)
    if found is None:
        document = dmss.client().get_document_as(head, 0, credential=credential)
        doc_id = document.get("_id") if isinstance(document, dict) else None
        if not isinstance(doc_id, str) or not doc_id:
            raise BadGateway(f"DMSS gave the document at {head} without an _id: its access control list cannot be read")
        found = f"dmss://{parse_address(head).data_source}/${doc_id}"
        _documents.put((head,), found, now, max(remember_seconds(), 3600.0))
    return found


class DmssAccess:
    """The `shared.jobs.access` delegate for jobs whose entity lives in DMSS (added by function_app)."""

    def allows(self, record: JobRecord, caller: Caller | None, level: str) -> bool:
        address = entity_address(record)
        if not address:
            return False
        credential = getattr(caller, "credential", None)
        if credential is None:
            raise Unauthorized(
                f"job {record.uid} belongs to the DMSS entity {address}: who may "
                f"{'read' if level == READ else 'stop or change'} it is DMSS's to say; send your "
                "DMSS credentials (Access-Key, or Authorization: Bearer)"
            )
        check(record, credential, level)
        return True
