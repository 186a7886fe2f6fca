"""A stand-in DMSS: the five endpoints DM-Job used, in memory, on 127.0.0.1 and a free port.

    dmss = DmssStandIn().start()        # dmss.url -> "http://127.0.0.1:PORT"
    doc_id = dmss.put("DS", {"type": "...", ...})
    token = dmss.issue_token(subject="alice")
    ...
    dmss.stop()

What it does, after DMSS (data-modelling-storage-service):
- `GET /api/documents/{address}?depth=N`, `PUT /api/documents/{address}?partial_update=..` (form field
  `data`, JSON), `POST /api/documents/{address}` (form field `document`, JSON), `POST /api/token?scope=..&
  time_to_live=..` (plain text `DMSS_<key>`), `GET /api/healthcheck`. Forms may be urlencoded or multipart.
- Addresses: `dmss://DS/...` or `DS/...`, URL-encoded once in the path (the server decodes once, as uvicorn
  does). Items: `$id`, a root package name, `/Name` (package content by name, inline or storage reference),
  `.attr`, `[i]`, `(k=v,...)` (first list element matching, or a check on an object). Storage references
  (`referenceType: storage`) are followed while walking and expanded by `depth`; link references are data.
  Relative addresses (`~`, `^`) are rejected: clients resolve them before calling.
- PUT without `partial_update` replaces the target (a dict needs `type`, a document keeps its `_id`);
  `partial_update=true` merges the given top-level keys into the target object.
- POST: to a bare data source only root packages (like DMSS); to a package: stored as its own document and
  added to `content` (names unique); to a list: appended; to an object attribute (present or not): set.
  Returns `{"uid": "dmss://DS/$<new id>"}`.
- Auth: `Access-Key` (a token this stand-in issued, not expired) is checked first, else `Authorization:
  Bearer` (an unexpired JWT, signature not checked, or an issued token). 401 without or with a bad/expired
  credential; 403 when the subject is limited to other data sources (`limit(subject, [...])`).
- Users and access control, after DMSS (equinor/data-modelling-storage-service):
  - a caller is a User `{user_id, roles, scope}` (src/authentication/models.py): the JWT's `sub` (or `oid`)
    and `roles` claim (else the roles given with `set_roles`), or the subject, roles and scope a token was
    issued with (src/features/personal_access_token/use_cases/create_personal_access_token_use_case.py: a PAT
    keeps the user's roles and its own scope); `GET /api/whoami` returns it
    (src/features/whoami/whoami_feature.py);
  - a stored document may have an ACL `{owner, roles: {role: LEVEL}, users: {id: LEVEL}, others: LEVEL}`
    (`set_acl`, or `put(..., owner=...)` for DMSS's default_with_owner: owner, the admin role WRITE, others
    READ); `GET /api/acl/{address}` returns it and itself needs READ
    (src/features/access_control/access_control_feature.py, use_cases/get_acl_use_case.py: the lookup of
    `$<id>`, so the address must name a document by id);
  - the decision is DMSS's `assert_user_has_access` (src/authentication/access_control.py): the caller's
    scope first, then `others`, the owner, the roles, the users; NONE < READ < WRITE; a refusal is 403
    "The requested operation requires '<LEVEL>' privileges". GET of a document needs READ on every stored
    document its address passes through; PUT and POST need WRITE on the document they change (and a document
    added to a package inherits its ACL, as DataSource.update does);
  - a document stored without an ACL is open to every authenticated caller (others: WRITE), so tests that do
    not care about access control need none.
- Faults per endpoint (`get`, `put`, `post`, `token`, `health`, `whoami`, `acl` or `*`): `fail(...)`
  (status), `slow(...)` (delay, then normal processing: a write may land after the client gave up, as in real
  life), `drop(...)` (connection closed without an answer), each for `times` requests or for ever.
- Records: `requests` (every request: method, endpoint, address, params, status, auth headers seen) and
  `writes` (successful PUT/POST only), so tests can assert "polls alone do not write".
"""

from __future__ import annotations

import copy
import json
import secrets
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jwt

REFERENCE = "dmss://system/SIMOS/Reference"
PACKAGE = "dmss://system/SIMOS/Package"
JWT_TEST_KEY = "stand-in-signing-key-not-a-secret-0123456789"
ADMIN_ROLE = "dmss-admin"  # DMSS's config.DMSS_ADMIN_ROLE, WRITE in a default ACL
LEVELS = {"NONE": 0, "READ": 1, "WRITE": 2}  # src/authentication/models.py AccessLevel, in order
OPEN_ACL = {"owner": "", "roles": {}, "users": {}, "others": "WRITE"}  # a document stored without an ACL


class HttpError(Exception):
    def __init__(self, status: int, message: str, type_: str | None = None, data: Any = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_ or {
            400: "BadRequestException",
            401: "UnauthorizedException",
            403: "MissingPrivilegeException",
            404: "NotFoundException",
            422: "ValidationException",
        }.get(status, "ApplicationException")
        self.data = data


@dataclass
class Fault:
    endpoint: str
    kind: str  # "fail" | "slow" | "drop"
    status: int = 500
    message: str = "Internal server error (stand-in fault)"
    seconds: float = 0.0
    times: int | None = None  # None: for ever

    def take(self) -> bool:
        if self.times is None:
            return True
        if self.times <= 0:
            return False
        self.times -= 1
        return True


@dataclass
class RequestRecord:
    method: str
    endpoint: str
    address: str | None
    params: dict[str, str]
    bearer: str | None = field(repr=False)
    access_key: str | None = field(repr=False)
    status: int | None = None
    form: dict[str, str] = field(default_factory=dict)


@dataclass
class Write:
    method: str
    address: str
    data_source: str
    partial_update: bool
    data: Any
    uid: str | None = None


@dataclass
class TokenInfo:
    subject: str
    scope: str
    expires_at: float
    roles: tuple[str, ...] = ()


@dataclass
class Principal:
    """DMSS's User (src/authentication/models.py): user_id, roles, scope."""

    subject: str
    via: str  # "jwt" | "token"
    roles: tuple[str, ...] = ()
    scope: str = "WRITE"

    def user(self) -> dict[str, Any]:
        """What `GET /api/whoami` returns (the User model's fields)."""
        return {
            "user_id": self.subject,
            "email": None,
            "full_name": None,
            "roles": list(self.roles),
            "scope": self.scope,
        }


@dataclass
class _Loc:
    """Where an address points: the value, and how to write it."""

    ds: str
    value: Any
    exists: bool
    doc_id: str | None  # id of the stored document the value lives in
    parent: Any = None  # dict or list holding the value (None: the value is a stored document itself)
    key: Any = None


def make_jwt(subject: str = "alice", expires_in: float = 3600, **claims: Any) -> str:
    """A Bearer JWT as an identity provider would issue (HS256 with a test key; the stand-in does not check
    the signature, as DMSS tests do not have the IdP's keys)."""
    now = int(time.time())
    return jwt.encode(
        {"sub": subject, "iat": now, "exp": now + int(expires_in), **claims}, JWT_TEST_KEY, algorithm="HS256"
    )


class DmssStandIn:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.data_sources: dict[str, dict[str, dict]] = {}
        self.tokens: dict[str, TokenInfo] = {}
        self.rights: dict[str, set[str]] = {}
        self.roles: dict[str, tuple[str, ...]] = {}
        self.acls: dict[tuple[str, str], dict[str, Any]] = {}
        self._visited: list[tuple[str, str]] = []
        self.faults: list[Fault] = []
        self.requests: list[RequestRecord] = []
        self.writes: list[Write] = []
        self.token_requests: list[dict[str, Any]] = []
        self.time_offset = 0.0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:  # never the tokens
        return f"DmssStandIn(url={self.url if self._server else None!r}, data_sources={sorted(self.data_sources)})"

    # --- lifecycle --------------------------------------------------------------------------------------

    def start(self) -> "DmssStandIn":
        handler = _make_handler(self)
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="dmss-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "DmssStandIn":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- time and tokens --------------------------------------------------------------------------------

    def now(self) -> float:
        return time.time() + self.time_offset

    def advance(self, seconds: float) -> None:
        """Move the stand-in's clock (token and JWT expiry) forward."""
        self.time_offset += seconds

    def issue_token(
        self,
        subject: str = "alice",
        ttl_seconds: float = 3600,
        scope: str = "WRITE",
        roles: list[str] | tuple[str, ...] | None = None,
    ) -> str:
        """A personal access token of `subject` (with the roles given, else those of `set_roles`)."""
        token = "DMSS_" + secrets.token_hex(16)
        with self.lock:
            kept = tuple(roles) if roles is not None else self.roles.get(subject, ())
            self.tokens[token] = TokenInfo(subject, scope, self.now() + ttl_seconds, kept)
        return token

    def expire(self, token: str) -> None:
        with self.lock:
            self.tokens[token].expires_at = self.now() - 1

    def revoke(self, token: str) -> None:
        with self.lock:
            self.tokens.pop(token, None)

    def set_roles(self, subject: str, roles: list[str] | tuple[str, ...]) -> None:
        """The roles `subject` has (a JWT without a `roles` claim, tokens issued from now on)."""
        with self.lock:
            self.roles[subject] = tuple(roles)

    def set_acl(
        self,
        data_source: str,
        doc_id: str,
        owner: str,
        *,
        roles: dict[str, str] | None = None,
        users: dict[str, str] | None = None,
        others: str = "READ",
    ) -> dict[str, Any]:
        """Give a stored document an ACL (DMSS's AccessControlList; levels NONE, READ, WRITE)."""
        acl = {"owner": owner, "roles": dict(roles or {}), "users": dict(users or {}), "others": others}
        for level in [*acl["roles"].values(), *acl["users"].values(), others]:
            if level not in LEVELS:
                raise ValueError(f"unknown access level {level!r}")
        with self.lock:
            if doc_id not in self.data_sources.get(data_source, {}):
                raise KeyError(f"{data_source}/${doc_id}")
            self.acls[(data_source, doc_id)] = acl
        return copy.deepcopy(acl)

    def acl(self, data_source: str, doc_id: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.acls.get((data_source, doc_id), OPEN_ACL))

    def limit(self, subject: str, data_sources: list[str] | set[str]) -> None:
        """Allow `subject` (and every token issued to it) only these data sources (403 elsewhere)."""
        with self.lock:
            self.rights[subject] = set(data_sources)

    # --- faults -----------------------------------------------------------------------------------------

    def fail(
        self, endpoint: str = "*", status: int = 500, times: int | None = None, message: str | None = None
    ) -> Fault:
        fault = Fault(
            endpoint, "fail", status=status, times=times, message=message or f"Stand-in DMSS answers {status}"
        )
        with self.lock:
            self.faults.append(fault)
        return fault

    def slow(self, endpoint: str = "*", seconds: float = 1.0, times: int | None = None) -> Fault:
        fault = Fault(endpoint, "slow", seconds=seconds, times=times)
        with self.lock:
            self.faults.append(fault)
        return fault

    def drop(self, endpoint: str = "*", times: int | None = None) -> Fault:
        fault = Fault(endpoint, "drop", times=times)
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def _fault_for(self, endpoint: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.endpoint in (endpoint, "*") and fault.take():
                    return fault
        return None

    # --- data -------------------------------------------------------------------------------------------

    def add_data_source(self, name: str) -> None:
        with self.lock:
            self.data_sources.setdefault(name, {})

    def put(self, data_source: str, document: dict, doc_id: str | None = None, *, owner: str | None = None) -> str:
        """Store a document (test set-up, no auth, not recorded as a write); returns its id. With `owner`, it
        gets DMSS's default ACL for a new document (AccessControlList.default_with_owner): that owner, the
        admin role WRITE, others READ."""
        with self.lock:
            docs = self.data_sources.setdefault(data_source, {})
            doc = copy.deepcopy(document)
            doc_id = doc_id or doc.get("_id") or str(uuid.uuid4())
            doc["_id"] = doc_id
            docs[doc_id] = doc
            if owner is not None:
                self.acls[(data_source, doc_id)] = {
                    "owner": owner,
                    "roles": {ADMIN_ROLE: "WRITE"},
                    "users": {},
                    "others": "READ",
                }
            return doc_id

    def add_root_package(self, data_source: str, name: str, content: list | None = None) -> str:
        return self.put(data_source, {"type": PACKAGE, "name": name, "isRoot": True, "content": content or []})

    @staticmethod
    def storage_ref(doc_id: str) -> dict:
        return {"type": REFERENCE, "referenceType": "storage", "address": f"${doc_id}"}

    def document(self, data_source: str, doc_id: str) -> dict:
        with self.lock:
            return copy.deepcopy(self.data_sources[data_source][doc_id])

    def lookup(self, address: str) -> Any:
        """What GET depth=999 would return, without auth (for assertions)."""
        with self.lock:
            loc = self._located(address, None)
            if not loc.exists:
                raise KeyError(address)
            return self._expand(copy.deepcopy(loc.value), loc.ds, 999)

    def writes_to(self, address_prefix: str = "") -> list[Write]:
        with self.lock:
            return [w for w in self.writes if w.address.startswith(address_prefix)]

    # --- addresses --------------------------------------------------------------------------------------

    @staticmethod
    def _split(address: str) -> tuple[str, str]:
        value = address.strip()
        if value.lower().startswith("dmss://"):
            value = value[7:]
        value = value.strip("/")
        if not value:
            raise HttpError(400, "Empty address")
        if value[0] in "~^":
            raise HttpError(400, f"Relative address not allowed here: {address}")
        ds, _, path = value.partition("/")
        return ds, path

    @staticmethod
    def _tokens(path: str) -> list[tuple[str, Any]]:
        items: list[tuple[str, Any]] = []
        i, n = 0, len(path)
        stop = "./[("

        def word(start: int) -> tuple[str, int]:
            j = start
            while j < n and path[j] not in stop:
                j += 1
            return path[start:j], j

        if path.startswith("$"):
            value, i = word(1)
            items.append(("id", value))
        elif path:
            value, i = word(0)
            items.append(("name", value))
        while i < n:
            c = path[i]
            if c == ".":
                value, i = word(i + 1)
                items.append(("attr", value))
            elif c == "/":
                value, i = word(i + 1)
                items.append(("name", value))
            elif c == "[":
                j = path.index("]", i)
                items.append(("index", int(path[i + 1 : j])))
                i = j + 1
            elif c == "(":
                j = path.index(")", i)
                pairs = [part.split("=", 1) for part in path[i + 1 : j].split(",")]
                items.append(("query", [(k.strip(), v.strip()) for k, v in pairs]))
                i = j + 1
            else:
                raise HttpError(400, f"Cannot parse path {path!r}")
        if any(kind != "index" and kind != "query" and not value for kind, value in items):
            raise HttpError(400, f"Cannot parse path {path!r}")
        return items

    def _stored(self, ds: str, doc_id: str) -> dict:
        try:
            document = self.data_sources[ds][doc_id]
        except KeyError:
            raise HttpError(404, f"Document with id '{doc_id}' was not found in the '{ds}' data-source") from None
        self._visited.append((ds, doc_id))
        return document

    def _deref(self, ds: str, value: Any) -> tuple[Any, str | None]:
        """Follow a storage reference (returns the stored document and its id); other values unchanged."""
        if isinstance(value, dict) and value.get("type") == REFERENCE and value.get("referenceType") == "storage":
            target_ds, path = self._split(value["address"]) if "://" in value["address"] else (ds, value["address"])
            if not path.startswith("$"):
                raise HttpError(400, "Stand-in follows only storage references by id")
            doc_id = path[1:]
            return self._stored(target_ds, doc_id), doc_id
        return value, None

    @staticmethod
    def _matches(value: Any, query: list[tuple[str, str]]) -> bool:
        if not isinstance(value, dict):
            return False
        return all(str(value.get(k)) == v for k, v in query)

    def _locate(self, address: str) -> _Loc:
        ds, path = self._split(address)
        if ds not in self.data_sources:
            raise HttpError(404, f"Data source '{ds}' not found")
        if not path:
            return _Loc(ds, None, True, None)
        items = self._tokens(path)
        kind, first = items[0]
        if kind == "id":
            loc = _Loc(ds, self._stored(ds, first), True, first)
        else:
            roots = [d for d in self.data_sources[ds].values() if d.get("isRoot") and d.get("name") == first]
            if not roots:
                raise HttpError(404, f"Root package '{first}' not found in '{ds}'")
            loc = _Loc(ds, roots[0], True, roots[0]["_id"])
            self._visited.append((ds, roots[0]["_id"]))
        for kind, arg in items[1:]:
            if not loc.exists:
                raise HttpError(404, f"Could not find '{address}' (a parent is missing)")
            current = loc.value
            if kind == "name":
                content = current.get("content") if isinstance(current, dict) else None
                if not isinstance(content, list):
                    raise HttpError(404, f"'{address}': '/{arg}' needs a package")
                for index, element in enumerate(content):
                    resolved, stored_id = self._deref(ds, element)
                    if isinstance(resolved, dict) and resolved.get("name") == arg:
                        loc = (
                            _Loc(ds, resolved, True, stored_id)
                            if stored_id
                            else _Loc(ds, resolved, True, loc.doc_id, content, index)
                        )
                        break
                else:
                    raise HttpError(404, f"'{arg}' not found in package of '{address}'")
            elif kind == "attr":
                if not isinstance(current, dict):
                    raise HttpError(404, f"'{address}': '.{arg}' on something that is not an object")
                if arg not in current or current[arg] is None:
                    loc = _Loc(ds, None, False, loc.doc_id, current, arg)
                    continue
                resolved, stored_id = self._deref(ds, current[arg])
                loc = (
                    _Loc(ds, resolved, True, stored_id)
                    if stored_id
                    else _Loc(ds, resolved, True, loc.doc_id, current, arg)
                )
            elif kind == "index":
                if not isinstance(current, list):
                    raise HttpError(404, f"'{address}': [{arg}] on something that is not a list")
                if arg >= len(current):
                    raise HttpError(404, f"'{address}': index {arg} out of range")
                resolved, stored_id = self._deref(ds, current[arg])
                loc = (
                    _Loc(ds, resolved, True, stored_id)
                    if stored_id
                    else _Loc(ds, resolved, True, loc.doc_id, current, arg)
                )
            else:  # query
                if isinstance(current, list):
                    for index, element in enumerate(current):
                        resolved, stored_id = self._deref(ds, element)
                        if self._matches(resolved, arg):
                            loc = (
                                _Loc(ds, resolved, True, stored_id)
                                if stored_id
                                else _Loc(ds, resolved, True, loc.doc_id, current, index)
                            )
                            break
                    else:
                        raise HttpError(404, f"No element matches the query in '{address}'")
                elif not self._matches(current, arg):
                    raise HttpError(404, f"'{address}' does not match its query")
        return loc

    def _expand(self, value: Any, ds: str, depth: int) -> Any:
        if isinstance(value, dict):
            if value.get("type") == REFERENCE and value.get("referenceType") == "storage":
                if depth <= 0:
                    return value
                stored, _ = self._deref(ds, value)
                return self._expand(copy.deepcopy(stored), ds, depth - 1)
            return {k: self._expand(v, ds, depth) for k, v in value.items()}
        if isinstance(value, list):
            return [self._expand(v, ds, depth) for v in value]
        return value

    # --- operations (called with the lock held) -----------------------------------------------------------

    def _located(self, address: str, principal: Principal | None, level: str = "READ") -> _Loc:
        """`_locate`, then DMSS's checks for `principal` (None: test set-up, no checks): READ on every stored
        document the address passed through, `level` on the one the value lives in."""
        self._visited = []
        loc = self._locate(address)
        visited, self._visited = self._visited, []
        if principal is not None:
            for ds, doc_id in visited:
                self._require(principal, ds, doc_id, "READ")
            if level != "READ" and loc.doc_id is not None:
                self._require(principal, loc.ds, loc.doc_id, level)
        return loc

    def _get(self, address: str, depth: int, principal: Principal | None = None) -> Any:
        loc = self._located(address, principal)
        if not loc.exists or (loc.value is None and loc.doc_id is None):
            raise HttpError(404, f"Could not find '{address}'")
        return self._expand(copy.deepcopy(loc.value), loc.ds, depth)

    def _put(self, address: str, data: Any, partial: bool, principal: Principal | None = None) -> Any:
        loc = self._located(address, principal, "WRITE")
        if loc.value is None and loc.doc_id is None:
            raise HttpError(400, "Cannot update a data source")
        if partial:
            if not loc.exists or not isinstance(loc.value, dict):
                raise HttpError(400, f"partial_update needs an existing object at '{address}'")
            if not isinstance(data, dict):
                raise HttpError(422, "partial_update needs an object")
            data = {k: v for k, v in data.items() if k != "_id"}
            loc.value.update(copy.deepcopy(data))
            new = loc.value
        else:
            if isinstance(data, dict) and not data.get("type"):
                raise HttpError(400, "Entity is missing 'type'")
            new = copy.deepcopy(data)
            if loc.parent is None:  # a stored document: replace it in place, keep the id
                if not isinstance(new, dict):
                    raise HttpError(422, "A document must be an object")
                new["_id"] = loc.doc_id
                self.data_sources[loc.ds][loc.doc_id] = new
            else:
                loc.parent[loc.key] = new
        self.writes.append(Write("PUT", address, loc.ds, partial, copy.deepcopy(data)))
        return copy.deepcopy(new)

    def _post(self, address: str, document: Any, principal: Principal | None = None) -> str:
        if not isinstance(document, dict) or not document.get("type"):
            raise HttpError(422, "The document must be an object with a 'type'")
        loc = self._located(address, principal, "WRITE")
        ds = loc.ds
        new = copy.deepcopy(document)
        new.setdefault("_id", str(uuid.uuid4()))
        new_id = new["_id"]
        uid = f"dmss://{ds}/${new_id}"
        if loc.value is None and loc.doc_id is None:  # bare data source
            if new.get("type") != PACKAGE or not new.get("isRoot"):
                raise HttpError(400, "Only root packages may be added without a parent.")
            if any(d.get("isRoot") and d.get("name") == new.get("name") for d in self.data_sources[ds].values()):
                raise HttpError(422, f"A root package named '{new.get('name')}' already exists")
            self.data_sources[ds][new_id] = new
            uid = new_id
        elif loc.exists and isinstance(loc.value, dict) and loc.value.get("type") == PACKAGE:
            content = loc.value.setdefault("content", [])
            name = new.get("name")
            if not name:
                raise HttpError(400, "A document in a package needs a 'name'")
            for element in content:
                resolved, _ = self._deref(ds, element)
                if isinstance(resolved, dict) and resolved.get("name") == name:
                    raise HttpError(400, f"The document at '{address}' already has a child with name '{name}'")
            self.data_sources[ds][new_id] = new
            if (ds, loc.doc_id) in self.acls:  # a new document inherits its parent's ACL (DataSource.update)
                self.acls[(ds, new_id)] = copy.deepcopy(self.acls[(ds, loc.doc_id)])
            content.append(self.storage_ref(new_id))
        elif loc.exists and isinstance(loc.value, list):
            loc.value.append(new)
        elif loc.parent is not None and isinstance(loc.parent, dict):
            loc.parent[loc.key] = new
        else:
            raise HttpError(400, f"Cannot add a document at '{address}'")
        self.writes.append(Write("POST", address, ds, False, copy.deepcopy(document), uid))
        return uid

    # --- auth -------------------------------------------------------------------------------------------

    def _principal_for_token(self, token: str) -> Principal:
        info = self.tokens.get(token)
        if info is None:
            raise HttpError(401, "Invalid access key")
        if info.expires_at <= self.now():
            raise HttpError(401, "Access key has expired")
        return Principal(info.subject, "token", tuple(info.roles), info.scope)

    def _authenticate(self, bearer: str | None, access_key: str | None) -> Principal:
        with self.lock:
            if access_key:
                return self._principal_for_token(access_key)
            if bearer:
                if bearer.startswith("DMSS_"):
                    return self._principal_for_token(bearer)
                try:
                    claims = jwt.decode(bearer, options={"verify_signature": False, "verify_exp": False})
                except jwt.PyJWTError:
                    raise HttpError(401, "Token validation failed") from None
                exp = claims.get("exp")
                if exp is not None and float(exp) <= self.now():
                    raise HttpError(401, "Token has expired")
                subject = str(claims.get("sub") or claims.get("oid") or "unknown")
                roles = claims.get("roles")
                roles = tuple(roles) if isinstance(roles, list) else self.roles.get(subject, ())
                return Principal(subject, "jwt", roles)
        raise HttpError(401, "Not authenticated")

    @staticmethod
    def allows(acl: dict[str, Any], principal: Principal, level: str) -> bool:
        """DMSS's assert_user_has_access (src/authentication/access_control.py), as a yes/no: the caller's
        scope first (a PAT's limit), then others, the owner, the roles, the users."""
        need = LEVELS[level]
        if LEVELS.get(principal.scope, 0) < need:
            return False
        if LEVELS[acl.get("others", "READ")] >= need or acl.get("owner") == principal.subject:
            return True
        if any(LEVELS[acl.get("roles", {}).get(role, "NONE")] >= need for role in principal.roles):
            return True
        return LEVELS[acl.get("users", {}).get(principal.subject, "NONE")] >= need

    def _require(self, principal: Principal, ds: str, doc_id: str, level: str) -> None:
        if not self.allows(self.acls.get((ds, doc_id), OPEN_ACL), principal, level):
            raise HttpError(403, f"The requested operation requires '{level}' privileges")

    def _get_acl(self, address: str, principal: Principal) -> dict[str, Any]:
        """`GET /api/acl/{address}`: the lookup of `$<id>` (get_acl_use_case), which needs READ."""
        ds, path = self._split(address)
        if ds not in self.data_sources:
            raise HttpError(404, f"Data source '{ds}' not found")
        doc_id = path[1:] if path.startswith("$") else path
        if doc_id not in self.data_sources[ds]:
            raise HttpError(404, f"Document with id '{doc_id}' was not found in the '{ds}' data-source")
        self._require(principal, ds, doc_id, "READ")
        return copy.deepcopy(self.acls.get((ds, doc_id), OPEN_ACL))

    def _authorise(self, principal: Principal, ds: str) -> None:
        allowed = self.rights.get(principal.subject)
        if allowed is not None and ds not in allowed:
            raise HttpError(403, f"'{principal.subject}' is missing the privilege to access data source '{ds}'")


def _parse_form(content_type: str, body: bytes) -> dict[str, str]:
    ctype = (content_type or "").lower()
    if ctype.startswith("application/x-www-form-urlencoded"):
        return {k: v[0] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}
    if ctype.startswith("multipart/form-data"):
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
        )
        fields: dict[str, str] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name:
                payload = part.get_payload(decode=True) or b""
                fields[name] = payload.decode("utf-8")
        return fields
    return {}


def _make_handler(standin: DmssStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "DmssStandIn/1.0"

        def log_message(self, format: str, *args: Any) -> None:  # quiet; never logs headers
            pass

        def setup(self) -> None:
            super().setup()
            # answers go out in two writes (headers, body): without this, Nagle + delayed ACK add 40 ms
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_PUT(self) -> None:
            self._dispatch("PUT")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_DELETE(self) -> None:
            self._dispatch("DELETE")

        def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
            data = body.encode("utf-8") if isinstance(body, str) else json.dumps(body).encode("utf-8")
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the client gave up (timeout) and closed: nothing to answer to
                self.close_connection = True

        def _dispatch(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            split = urlsplit(self.path)
            params = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
            raw_path = split.path
            address: str | None = None
            if raw_path.startswith("/api/documents/") and method in ("GET", "PUT", "POST"):
                endpoint = {"GET": "get", "PUT": "put", "POST": "post"}[method]
                address = unquote(raw_path[len("/api/documents/") :])
            elif raw_path == "/api/token" and method == "POST":
                endpoint = "token"
            elif raw_path == "/api/healthcheck" and method == "GET":
                endpoint = "health"
            elif raw_path == "/api/whoami" and method == "GET":
                endpoint = "whoami"
            elif raw_path.startswith("/api/acl/") and method == "GET":
                endpoint = "acl"
                address = unquote(raw_path[len("/api/acl/") :])
            else:
                endpoint = "unknown"
            auth = self.headers.get("Authorization") or ""
            bearer = auth[7:].strip() if auth.lower().startswith("bearer ") else None
            access_key = self.headers.get("Access-Key")
            form = _parse_form(self.headers.get("Content-Type", ""), body) if body else {}
            record = RequestRecord(method, endpoint, address, params, bearer, access_key, form=form)
            with standin.lock:
                standin.requests.append(record)

            fault = standin._fault_for(endpoint)
            if fault is not None and fault.kind == "slow":
                time.sleep(fault.seconds)
            elif fault is not None and fault.kind == "drop":
                record.status = 0
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            elif fault is not None and fault.kind == "fail":
                record.status = fault.status
                self._send(
                    fault.status,
                    {
                        "status": fault.status,
                        "type": "ApplicationException",
                        "message": fault.message,
                        "debug": "",
                        "data": None,
                    },
                )
                return
            try:
                status, payload, ctype = self._handle(endpoint, method, address, params, bearer, access_key, form)
            except HttpError as exc:
                status, payload, ctype = (
                    exc.status,
                    {"status": exc.status, "type": exc.type, "message": exc.message, "debug": "", "data": exc.data},
                    "application/json",
                )
            record.status = status
            self._send(status, payload, ctype)

        def _handle(
            self,
            endpoint: str,
            method: str,
            address: str | None,
            params: dict[str, str],
            bearer: str | None,
            access_key: str | None,
            form: dict[str, str],
        ) -> tuple[int, Any, str]:
            if endpoint == "health":
                return 200, "OK", "text/plain"
            if endpoint == "unknown":
                raise HttpError(404, "Not Found")
            principal = standin._authenticate(bearer, access_key)
            if endpoint == "whoami":
                return 200, principal.user(), "application/json"
            if endpoint == "token":
                try:
                    ttl = int(params.get("time_to_live", 2592000))
                except ValueError:
                    raise HttpError(422, "time_to_live must be an integer") from None
                scope = params.get("scope", "READ")
                if scope not in ("READ", "WRITE", "NONE"):
                    raise HttpError(422, f"Unknown scope {scope}")
                token = "DMSS_" + secrets.token_hex(16)
                with standin.lock:
                    standin.tokens[token] = TokenInfo(principal.subject, scope, standin.now() + ttl, principal.roles)
                    standin.token_requests.append(
                        {"subject": principal.subject, "via": principal.via, "scope": scope, "time_to_live": ttl}
                    )
                return 200, token, "text/plain"
            assert address is not None
            ds, _ = standin._split(address)
            with standin.lock:
                standin._authorise(principal, ds)
                if endpoint == "acl":
                    return 200, standin._get_acl(address, principal), "application/json"
                if endpoint == "get":
                    try:
                        depth = int(params.get("depth", 1))
                    except ValueError:
                        raise HttpError(422, "depth must be an integer") from None
                    if not 0 <= depth < 1000:
                        raise HttpError(422, "depth must be within 0..999")
                    return 200, standin._get(address, depth, principal), "application/json"
                if endpoint == "put":
                    data = _json_field(form, "data")
                    partial = params.get("partial_update", "false").lower() == "true"
                    return 200, {"data": standin._put(address, data, partial, principal)}, "application/json"
                document = _json_field(form, "document")
                return 200, {"uid": standin._post(address, document, principal)}, "application/json"

    return Handler


def _json_field(form: dict[str, str], name: str) -> Any:
    if name not in form:
        raise HttpError(422, f"Field required: {name}")
    try:
        return json.loads(form[name])
    except ValueError:
        raise HttpError(422, f"Field {name} is not valid JSON") from None
