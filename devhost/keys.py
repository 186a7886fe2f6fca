"""Function keys, checked the way the Functions host checks them, when `DEVHOST_REQUIRE_KEYS` asks for it.

Local/test host only. `func start` ignores keys, and so does this host by default; with `DEVHOST_REQUIRE_KEYS`
true (devhost/settings.py) it enforces them as Azure does (azure-functions-host, src/WebJobs.Script.WebHost):

* the key comes from the `x-functions-key` header, else from the `code` query parameter; the header wins even
  when both are given (Security/Authentication/Keys/AuthenticationLevelHandler.cs, GetAuthorizationKeyInfoAsync);
* the master key gives the Admin level, a host function key or one of the function's own keys the Function
  level, a system key the System level (Security/KeyManagement/SecretManager.cs); a route is allowed with a
  key of exactly its level, or with the master key (Security/Authorization/AuthUtility.cs,
  PrincipalHasAuthLevelClaim);
* ANONYMOUS routes need no key at all; any other route without a valid key is answered 401 with an empty body
  before the function runs (Middleware/FunctionInvocationMiddleware.cs: `UnauthorizedResult`).

Keys are read from a JSON file named by `DEVHOST_KEYS_FILE`, in the shape `az functionapp keys list` prints
(`{"masterKey": "...", "functionKeys": {"default": "..."}, "systemKeys": {...}}`) plus, optionally,
`"functions": {"<function name>": {"<key name>": "<value>"}}` for per-function keys; and from the settings
`DEVHOST_MASTER_KEY` and `DEVHOST_FUNCTION_KEY` (a host function key named "default").
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

HEADER = "x-functions-key"
QUERY = "code"
ANONYMOUS, FUNCTION, SYSTEM, ADMIN = "anonymous", "function", "system", "admin"


@dataclass
class Keys:
    master: str | None = None
    host: dict[str, str] = field(default_factory=dict)  # host-level function keys
    system: dict[str, str] = field(default_factory=dict)
    functions: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, env: Mapping[str, str], app_dir: Path) -> "Keys":
        keys = cls()
        path = env.get("DEVHOST_KEYS_FILE")
        if path:
            file = Path(path) if Path(path).is_absolute() else Path(app_dir) / path
            data = json.loads(file.read_text(encoding="utf-8"))
            keys.master = data.get("masterKey") or None
            keys.host.update(data.get("functionKeys") or {})
            keys.system.update(data.get("systemKeys") or {})
            for name, own in (data.get("functions") or {}).items():
                keys.functions[name.lower()] = dict(own)
        if env.get("DEVHOST_MASTER_KEY"):
            keys.master = env["DEVHOST_MASTER_KEY"]
        if env.get("DEVHOST_FUNCTION_KEY"):
            keys.host["default"] = env["DEVHOST_FUNCTION_KEY"]
        return keys

    def level_of(self, value: str, function_name: str) -> str:
        """The level a key value grants for one function (SecretManager's lookup order)."""
        if self.master and hmac.compare_digest(value, self.master):
            return ADMIN
        if any(hmac.compare_digest(value, v) for v in self.host.values()):
            return FUNCTION
        if any(hmac.compare_digest(value, v) for v in self.functions.get(function_name.lower(), {}).values()):
            return FUNCTION
        if any(hmac.compare_digest(value, v) for v in self.system.values()):
            return SYSTEM
        return ANONYMOUS


def presented_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The header if present (even empty), else the query parameter: as GetAuthorizationKeyInfoAsync."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if HEADER in lowered:
        return lowered[HEADER] or None
    return query.get(QUERY) or None


def authorized(
    keys: Keys, auth_level: str, function_name: str, headers: Mapping[str, str], query: Mapping[str, str]
) -> bool:
    level = str(auth_level or FUNCTION).lower()
    if level == ANONYMOUS:
        return True
    value = presented_key(headers, query)
    if not value:
        return False
    granted = keys.level_of(value, function_name)
    return granted == ADMIN or granted == level
