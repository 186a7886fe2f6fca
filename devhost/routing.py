"""Route templates of HTTP-triggered functions, matched the way the Functions host (ASP.NET Core routing) does.

Local/test host only: production runs on the real Functions host. What is copied from the real host:

* templates `{name}`, constraints `{id:guid}` / `{n:int:min(1)}`, defaults `{name=x}`, optional `{name?}`
  and catch-all `{*rest}` / `{**rest}`; literal segments match case-insensitively;
* the order routes are tried in: the host maps one route per function in the order of its function list, which
  FunctionMetadataManager sorts by name, case-insensitively (azure-functions-host
  src/WebJobs.Script/Host/FunctionMetadataManager.cs, `OrderBy(f => f.Name, StringComparer.OrdinalIgnoreCase)`;
  src/WebJobs.Script.WebHost/WebScriptHostHttpRoutesManager.cs maps them in that order), and the route collection
  takes the first route whose template and method constraint (`HttpMethodRouteConstraint`) match (host issues
  #9876, #3153): not the most specific template. `Router.most_specific` gives ASP.NET Core's endpoint-routing
  precedence for tests that compare the two rules;
* a path whose template matches but whose method does not is 404, like any unmatched path (a failed method
  constraint is just a route that does not match; the host has no 405);
* route values are percent-decoded except `%2F`, which stays encoded (Kestrel decodes the request path but not
  an encoded slash: the app decodes it itself); a catch-all value is the rest of the path as it came, a trailing
  slash included (ASP.NET Core's RoutePatternMatcher captures `path.Substring(offset)`), and an empty catch-all
  or an unused optional parameter is not passed at all (the host drops null route values:
  src/WebJobs.Script.Grpc/MessageExtensions/GrpcMessageConversionExtensions.cs, PopulateHttpRouteDataAsParams).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable
from urllib.parse import unquote

_PARAM = re.compile(r"\{([^{}]+)\}")


def decode_segment(raw: str) -> str:
    """Percent-decode one path segment but keep `%2F` (an encoded slash) as it is, like ASP.NET Core."""
    parts = re.split(r"(%2[fF])", raw)
    return "".join(p if re.fullmatch(r"%2[fF]", p) else unquote(p) for p in parts)


def _parses(kind: Callable[[str], Any]) -> Callable[[str], bool]:
    def check(v: str) -> bool:
        try:
            kind(v)
            return True
        except ValueError:
            return False

    return check


def _is_datetime(v: str) -> bool:
    return _parses(datetime.fromisoformat)(v.replace("Z", "+00:00"))


def _integer_in(kind: str, args: list[str]) -> Callable[[str], bool]:
    """`min(n)`, `max(n)`, `range(a,b)` on integers; a malformed bound fails the match, not the host's start."""

    def check(v: str) -> bool:
        if not re.fullmatch(r"-?\d+", v):
            return False
        n = int(v)
        if kind == "min":
            return n >= int(args[0])
        if kind == "max":
            return n <= int(args[0])
        return int(args[0]) <= n <= int(args[1])

    return check


def _length(args: list[str]) -> Callable[[str], bool]:
    if len(args) == 1:
        return lambda v: len(v) == int(args[0])
    return lambda v: int(args[0]) <= len(v) <= int(args[1])


# Constraints without an argument, and builders of those with one (from the text between the parentheses).
_SIMPLE: dict[str, Callable[[str], bool]] = {
    "int": lambda v: bool(re.fullmatch(r"-?\d+", v)) and -(2**31) <= int(v) < 2**31,
    "long": lambda v: bool(re.fullmatch(r"-?\d+", v)) and -(2**63) <= int(v) < 2**63,
    "bool": lambda v: v.lower() in ("true", "false"),
    "guid": _parses(uuid.UUID),
    "alpha": lambda v: bool(re.fullmatch(r"[A-Za-z]+", v)),
    "datetime": _is_datetime,
    "decimal": _parses(float),
    "double": _parses(float),
    "float": _parses(float),
    "required": lambda v: v != "",
}
_WITH_ARGS: dict[str, Callable[[list[str], str], Callable[[str], bool]]] = {
    "minlength": lambda args, _: lambda v: len(v) >= int(args[0]),
    "maxlength": lambda args, _: lambda v: len(v) <= int(args[0]),
    "length": lambda args, _: _length(args),
    "min": lambda args, _: _integer_in("min", args),
    "max": lambda args, _: _integer_in("max", args),
    "range": lambda args, _: _integer_in("range", args),
    "regex": lambda _, raw: re.compile(raw, re.IGNORECASE).search,
}


def _constraint(spec: str) -> Callable[[str], bool]:
    """One inline route constraint (`int`, `guid`, `min(3)`, `regex(^a+$)`, ...) as a predicate."""
    name, _, arg = spec.partition("(")
    arg = arg[:-1] if arg.endswith(")") else arg
    name = name.strip().lower()
    if name in _SIMPLE:
        return _SIMPLE[name]
    if name in _WITH_ARGS:
        check = _WITH_ARGS[name]([a.strip() for a in arg.split(",")] if arg else [], arg)
        return lambda v: bool(check(v))
    # Unknown constraint: accept (the real host would refuse to start; a local host should not be stricter).
    return lambda v: True


@dataclass
class _Param:
    name: str
    optional: bool = False
    catch_all: bool = False
    default: str | None = None
    checks: list = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> "_Param":
        catch_all = text.startswith("*")
        text = text.lstrip("*")
        default = None
        optional = False
        # constraints may contain ':' inside regex(...) arguments; split on ':' outside parentheses.
        parts, depth, cur = [], 0, ""
        for ch in text:
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            if ch == ":" and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        parts.append(cur)
        name = parts[0]
        if "=" in name:
            name, default = name.split("=", 1)
        if name.endswith("?"):
            name, optional = name[:-1], True
        return cls(
            name=name,
            optional=optional or default is not None or catch_all,
            catch_all=catch_all,
            default=default,
            checks=[_constraint(c) for c in parts[1:]],
        )

    def accepts(self, value: str) -> bool:
        return all(check(value) for check in self.checks)


@dataclass
class _Segment:
    literal: str | None = None  # a plain literal segment
    param: _Param | None = None  # a whole-segment parameter
    regex: re.Pattern | None = None  # a complex segment like `{a}.{b}`
    params: list = field(default_factory=list)

    @property
    def rank(self) -> int:
        """Lower is more specific (ASP.NET Core route precedence, per segment)."""
        if self.literal is not None:
            return 0
        if self.regex is not None:
            return 1
        p = self.param
        if p.catch_all:
            return 5
        if p.optional:
            return 4
        return 2 if p.checks else 3


class RouteTemplate:
    """A parsed route template; `match(segments)` gives route values or None."""

    def __init__(self, template: str):
        self.template = template.strip("/")
        self.segments: list[_Segment] = []
        for raw in self.template.split("/") if self.template else []:
            whole = _PARAM.fullmatch(raw)
            if whole:
                self.segments.append(_Segment(param=_Param.parse(whole.group(1))))
            elif "{" in raw:
                params = []
                pattern = ""
                pos = 0
                for m in _PARAM.finditer(raw):
                    pattern += re.escape(raw[pos : m.start()])
                    p = _Param.parse(m.group(1))
                    params.append(p)
                    pattern += f"(?P<{re.sub(r'[^A-Za-z0-9_]', '_', p.name)}>.+?)"
                    pos = m.end()
                pattern += re.escape(raw[pos:])
                self.segments.append(_Segment(regex=re.compile(pattern, re.IGNORECASE), params=params))
            else:
                self.segments.append(_Segment(literal=raw.lower()))

    @property
    def precedence(self) -> tuple:
        return tuple(s.rank for s in self.segments) + (9,)

    def match(self, segments: list[str]) -> dict[str, Any] | None:
        values: dict[str, Any] = {}
        i = 0
        for index, seg in enumerate(self.segments):
            if seg.param is not None and seg.param.catch_all:
                rest = "/".join(decode_segment(s) for s in segments[i:])
                if rest == "" and seg.param.default is None:
                    values[seg.param.name] = None
                else:
                    if rest and not seg.param.accepts(rest):
                        return None
                    values[seg.param.name] = rest or seg.param.default
                return values
            if i >= len(segments) or segments[i] == "":
                # no segment left: only optional parameters (and nothing after them) may remain
                if seg.param is not None and seg.param.optional and i >= len(segments):
                    values[seg.param.name] = seg.param.default
                    continue
                return None
            raw = segments[i]
            if seg.literal is not None:
                if decode_segment(raw).lower() != seg.literal:
                    return None
            elif seg.param is not None:
                value = decode_segment(raw)
                if not seg.param.accepts(value):
                    return None
                values[seg.param.name] = value
            else:
                m = seg.regex.fullmatch(decode_segment(raw))
                if not m:
                    return None
                for p in seg.params:
                    v = m.group(re.sub(r"[^A-Za-z0-9_]", "_", p.name))
                    if not p.accepts(v):
                        return None
                    values[p.name] = v
            i += 1
        if i < len(segments) and any(s != "" for s in segments[i:]):
            return None
        return values


@dataclass
class Route:
    function_name: str
    template: RouteTemplate
    methods: set[str] | None  # None: any method
    auth_level: str
    order: int
    handler: Any = None

    def allows(self, method: str) -> bool:
        return self.methods is None or method.upper() in self.methods


class Router:
    """All HTTP routes of an app under one prefix (`extensions.http.routePrefix`)."""

    def __init__(self, prefix: str = "api"):
        self.prefix = prefix.strip("/")
        self.routes: list[Route] = []

    def add(
        self, function_name: str, template: str | None, methods, auth_level: str = "function", handler: Any = None
    ) -> Route:
        methods_set = {m.upper() for m in methods} if methods else None
        route = Route(
            function_name,
            RouteTemplate(template if template is not None else function_name),
            methods_set,
            str(auth_level).lower(),
            len(self.routes),
            handler,
        )
        self.routes.append(route)
        return route

    def public_path(self, route: Route) -> str:
        parts = [p for p in (self.prefix, route.template.template) if p]
        return "/" + "/".join(parts)

    def in_host_order(self) -> list[Route]:
        """Routes in the order the real host tries them: by function name, case-insensitively (stable)."""
        return sorted(self.routes, key=lambda r: (r.function_name.lower(), r.order))

    def _segments(self, raw_path: str) -> list[str] | None:
        """The path's segments after the prefix, a trailing empty one kept (a catch-all keeps the slash)."""
        path = raw_path.lstrip("/")
        segments = path.split("/") if path else []
        if self.prefix:
            prefix_segments = self.prefix.split("/")
            if [s.lower() for s in segments[: len(prefix_segments)]] != [s.lower() for s in prefix_segments]:
                return None
            segments = segments[len(prefix_segments) :]
        return segments

    def resolve(self, method: str, raw_path: str) -> tuple[Route | None, dict[str, Any] | None]:
        """(route, route values) of the first route in host order whose template and method match, else
        (None, None): the caller answers 404 either way."""
        segments = self._segments(raw_path)
        if segments is None:
            return None, None
        for route in self.in_host_order():
            if not route.allows(method):
                continue
            values = route.template.match(segments)
            if values is not None:
                return route, values
        return None, None

    def most_specific(self, method: str, raw_path: str) -> Route | None:
        """ASP.NET Core endpoint routing's choice (most specific template): for comparing the two rules."""
        segments = self._segments(raw_path)
        if segments is None:
            return None
        matches = [r for r in self.routes if r.allows(method) and r.template.match(segments) is not None]
        return min(matches, key=lambda r: (r.template.precedence, r.order)) if matches else None
