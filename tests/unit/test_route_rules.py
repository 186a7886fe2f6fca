"""Every request of the API reaches the intended function under both route-matching rules.

The two rules, computed from the app's own function metadata (`app.get_functions()`, the bindings the worker
hands the host):
- the real Functions host: routes are tried in case-insensitive order of function name and the first whose
  template and method match wins (azure-functions-host issues #9876 and #3153; the ordering change proposed in
  azure-webjobs-sdk-extensions PR #842 was never merged);
- ASP.NET Core endpoint routing: the most specific template wins, by `RoutePrecedence.ComputeInbound`
  (dotnet/aspnetcore src/Http/Routing/src/Template/RoutePrecedence.cs: one digit per segment, literal 1,
  multi-part 2, constrained parameter 3, parameter 4, catch-all 5; the lower decimal wins).
Template matching itself is devhost.routing.RouteTemplate's (literal segments case-insensitive, catch-all may be
empty, `%2F` kept encoded in a segment).
"""

from __future__ import annotations

import functools
import importlib.util
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from devhost.functions import FunctionIndex
from devhost.routing import RouteTemplate

ROOT = Path(__file__).resolve().parents[2]

UID = str(uuid.uuid4())


@functools.lru_cache(maxsize=1)
def _http_functions() -> tuple[tuple[str, RouteTemplate, frozenset[str]], ...]:
    # a private copy of the app module: the SDK refuses a second get_functions() on one app object ("not a
    # unique function name"), and other tests index the shared one (the sample app is a `function_app` too)
    spec = importlib.util.spec_from_file_location(f"_route_rules_app_{uuid.uuid4().hex[:8]}", ROOT / "function_app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    index = FunctionIndex.from_app(module.app)
    return tuple(
        (
            info.name,
            RouteTemplate(info.trigger["route"]),
            frozenset(m.upper() for m in info.trigger.get("methods") or []),
        )
        for info in index.of_type("httpTrigger")
    )


def _segments(path: str) -> list[str]:
    path = path.split("?", 1)[0]
    assert path.startswith("/api/")
    rest = path[len("/api/") :]
    return rest.split("/") if rest else []


def _digit(segment) -> int:
    if segment.literal is not None:
        return 1
    if segment.param is None:
        return 2  # a segment mixing literal text and parameters
    if segment.param.catch_all:
        return 5
    return 3 if segment.param.checks else 4


def _inbound_precedence(template: RouteTemplate) -> Decimal:
    return sum((Decimal(_digit(s)) / (Decimal(10) ** i) for i, s in enumerate(template.segments)), Decimal(0))


def by_function_name(method: str, path: str) -> str | None:
    for name, template, methods in sorted(_http_functions(), key=lambda r: r[0].lower()):
        if method in methods and template.match(_segments(path)) is not None:
            return name
    return None


def by_specificity(method: str, path: str) -> str | None:
    matches = [
        (_inbound_precedence(t), name)
        for name, t, methods in _http_functions()
        if method in methods and t.match(_segments(path)) is not None
    ]
    return min(matches)[1] if matches else None


REQUESTS = [
    ("POST", "/api/jobs", "start_job"),
    ("POST", "/api/jobs/", "start_job"),
    ("POST", "/api/jobs/dmss%3A%2F%2FDS%2F%24abc", "start_job_from_dmss"),  # the web app: encodeURIComponent
    ("POST", "/api/jobs/dmss:%2F%2FDS%2F%24abc", "start_job_from_dmss"),
    ("POST", "/api/jobs/DS/$abc", "start_job_from_dmss"),  # a plain address with slashes
    ("POST", "/api/jobs/DS/%24abc.applicationInput", "start_job_from_dmss"),
    ("POST", "/api/jobs/DS/root/package/entity/", "start_job_from_dmss"),  # trailing slash
    ("POST", "/api/jobs/dmss://DS/$abc", "start_job_from_dmss"),
    ("GET", "/api/jobs", "list_jobs"),
    ("GET", "/api/jobs?status=running&limit=5", "list_jobs"),
    ("GET", f"/api/jobs/{UID}", "get_job"),
    ("PUT", f"/api/jobs/{UID}?overwrite_log=true", "report_progress"),
    ("DELETE", f"/api/jobs/{UID}", "stop_job"),
    ("DELETE", f"/api/jobs/{UID}?stopRunning=true", "stop_job"),
    ("GET", f"/api/jobs/{UID}/result", "get_result"),
    ("GET", f"/api/jobs/{UID}/log", "get_job_log"),
    ("GET", f"/api/jobs/{UID}/log?tail=100", "get_job_log"),
    ("POST", f"/api/jobs/{UID}/suspend", "schedule_suspend"),
    ("POST", f"/api/jobs/{UID}/SUSPEND", "schedule_suspend"),  # literals match case-insensitively
    ("POST", f"/api/jobs/{UID}/resume", "schedule_resume"),
    ("GET", f"/api/jobs/{UID}/schedule", "schedule_preview"),
    ("GET", f"/api/jobs/{UID}/schedule?next=3", "schedule_preview"),
    ("POST", f"/api/jobs/{UID}/run", "schedule_run_now"),
    ("POST", f"/api/jobs/{UID}/backfill", "schedule_backfill"),
    ("DELETE", f"/api/jobs/{UID}/backfill", "schedule_backfill_cancel"),
    ("GET", "/api/health", "health"),
    ("GET", "/api/openapi.json", "openapi_document"),
    ("GET", "/api/docs", "swagger_ui"),  # the catch-all may be empty: the page
    ("GET", "/api/docs/", "swagger_ui"),
    ("GET", "/api/docs/swagger-ui-bundle.js", "swagger_ui"),
    ("GET", "/api/ui", "dashboard_ui"),  # the dashboard's page
    ("GET", "/api/ui/", "dashboard_ui"),
    ("GET", "/api/ui/app.js", "dashboard_ui"),
    ("POST", "/api/subscriptions", "subscription_create"),
    ("GET", "/api/subscriptions", "subscription_list"),
    ("GET", "/api/subscriptions/sub_0123456789abcdef01234567", "subscription_get"),
    ("DELETE", "/api/subscriptions/sub_0123456789abcdef01234567", "subscription_delete"),
    ("POST", "/api/subscriptions/sub_0123456789abcdef01234567/rotate", "subscription_rotate"),
    ("GET", f"/api/jobs/{UID}/events", "job_events"),
    ("POST", "/api/deliveries/dlv_abc/redeliver", "webhook_redeliver"),
]


@pytest.mark.parametrize("method,path,expected", REQUESTS, ids=[f"{m} {p}" for m, p, _ in REQUESTS])
def test_request_reaches_the_intended_function_under_both_rules(method, path, expected):
    assert by_function_name(method, path) == expected, "the real host's rule (name order, first match)"
    assert by_specificity(method, path) == expected, "ASP.NET Core's rule (most specific template)"


def test_every_post_route_under_jobs_sorts_before_the_catch_all():
    """The rule that keeps future literal sub-routes of a job (run, backfill, ...) reachable in Azure."""
    catch_all = "start_job_from_dmss"
    for name, template, methods in _http_functions():
        if "POST" in methods and template.template.startswith("jobs") and name != catch_all:
            assert name.lower() < catch_all, (
                f"{name} sorts after {catch_all}: the real host would route its requests to the catch-all"
            )


def test_every_http_function_is_listed_here():
    listed = {expected for _, _, expected in REQUESTS}
    assert listed == {name for name, _, _ in _http_functions()}
