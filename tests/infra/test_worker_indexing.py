"""function_app.py indexed as the Python worker indexes it, checked against what the worker and the host refuse.

The checks are devhost/indexing.py's, each taken from the worker's or the host's source (named there): one
top-level function app; parameters matching bindings; unique function names; no route under `admin` or
`runtime`; no two routes the host's HttpRoutesConflict calls conflicting; every `%SETTING%` an app setting that
shared/platform/settings.py declares; timer schedules that NCrontab (6 fields) parses, once resolved with the
values Azure gets. Each rule is also shown to catch a small app that breaks it.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import azure.functions as func
import pytest

import function_app
from devhost import indexing
from shared.platform import settings

ROOT = Path(__file__).resolve().parents[2]
# The values Azure runs with: the template's (cloud) value where declared, else the default.
AZURE_VALUES = {s.name: (s.cloud if s.cloud else s.default) for s in settings.SETTINGS}


def _functions(app) -> list[indexing.Indexed]:
    return indexing.index(app)


_APP_FUNCTIONS = _functions(indexing.find_app(function_app))   # get_functions() may be called once per app


def test_the_app_has_one_top_level_function_app():
    assert indexing.find_app(function_app) is function_app.app


def test_the_worker_accepts_every_function():
    assert indexing.worker_problems(_APP_FUNCTIONS) == []


def test_the_host_accepts_every_function():
    assert indexing.host_problems(_APP_FUNCTIONS, AZURE_VALUES) == []


def test_every_setting_a_binding_names_is_declared_and_resolves_to_a_valid_schedule():
    names = {n for f in _APP_FUNCTIONS for b in f.bindings for v in b.values() if isinstance(v, str)
             for n in re.findall(r"%([^%]+)%", v)}
    assert names, "the app's timer reads %SCHEDULE_TICK%: the scan must find it"
    assert names <= set(settings.BY_NAME)
    for f in _APP_FUNCTIONS:
        for b in f.bindings:
            if b.get("type") == "timerTrigger":
                schedule = re.sub(r"%([^%]+)%", lambda m: AZURE_VALUES[m.group(1)], b["schedule"])
                assert indexing.ncrontab_problems(schedule) == [], f.name


def test_the_worker_pool_leaves_threads_for_http():
    """Every sync function shares the worker's pool (devhost/worker.py): Durable work may take at most
    maxConcurrentActivityFunctions + maxConcurrentOrchestratorFunctions threads; keep some for HTTP."""
    durable = json.loads((ROOT / "host.json").read_text())["extensions"]["durableTask"]
    bicep = (ROOT / "infra" / "app" / "api.bicep").read_text()
    threads = int(re.search(r"\bPYTHON_THREADPOOL_THREAD_COUNT:\s*'(\d+)'", bicep).group(1))
    assert threads >= durable["maxConcurrentActivityFunctions"] + durable["maxConcurrentOrchestratorFunctions"] + 4


# ---- each rule catches an app that breaks it ---------------------------------------------------------------
def _app_with(*routes: tuple[str, str | None, list[str]], timer: str | None = None) -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    for name, route, methods in routes:
        def handler(req: func.HttpRequest) -> func.HttpResponse:
            return func.HttpResponse("")
        handler.__name__ = name
        app.route(route=route, methods=methods)(handler)
    if timer is not None:
        def tick(timer: func.TimerRequest) -> None:
            pass
        app.timer_trigger(schedule=timer, arg_name="timer")(tick)
    return app


def _host_messages(app, values=None) -> dict[str, str]:
    return {p.function: p.message for p in indexing.host_problems(_functions(app), values or AZURE_VALUES)}


def test_a_duplicate_function_name_is_refused():
    app = _app_with(("same", "a", ["GET"]), ("same", "b", ["GET"]))
    with pytest.raises(ValueError, match="unique"):
        app.get_functions()


@pytest.mark.parametrize("route", ["admin/things", "runtime/x", "/Administrators", "RUNTIMEstatus"])
def test_routes_under_admin_or_runtime_are_refused(route):
    assert "built in routes" in _host_messages(_app_with(("f", route, ["GET"])))["f"]


def test_a_function_without_a_route_gets_its_name_and_can_be_refused_for_it():
    assert "built in routes" in _host_messages(_app_with(("admin_panel", None, ["GET"])))["admin_panel"]


def test_route_conflicts_as_the_host_sees_them():
    app = _app_with(("a", "jobs/{uid}", ["GET"]), ("b", "/JOBS/{uid}/", ["GET", "PUT"]),
                    ("c", "jobs/{uid}", ["DELETE"]), ("d", "jobs/{id}", ["GET"]), ("e", "jobs/{uid}", None))
    messages = _host_messages(app)
    assert set(messages) == {"b", "e"}          # c: no common method; d: other text (ASP.NET would still clash)
    assert "defined by function 'a'" in messages["b"]


@pytest.mark.parametrize("schedule", ["*/5 * * * *", "0 0 25 * * *", "0 */0 * * * *", "0 0 * * * 7", "00:05:00",
                                      "0 0 12 ? * MON", "0 0 12 L * *"])
def test_invalid_ncrontab_is_refused(schedule):
    assert "not a valid CRON expression" in _host_messages(_app_with(timer=schedule))["tick"]


@pytest.mark.parametrize("schedule", ["0 */5 * * * *", "0 30 3 * * MON-FRI", "0 0 0 1 JAN,JUL *", "5-10/2 * * * * *"])
def test_valid_ncrontab_passes(schedule):
    assert _host_messages(_app_with(timer=schedule)) == {}


def test_a_setting_no_list_declares_is_refused():
    messages = _host_messages(_app_with(timer="%SCHEDULE_TIK%"))
    assert "'%SCHEDULE_TIK%' does not resolve" in messages["tick"]
    assert _host_messages(_app_with(timer="%SCHEDULE_TICK%")) == {}
    assert "not a valid CRON" in _host_messages(_app_with(timer="%SCHEDULE_TICK%"),
                                                {**AZURE_VALUES, "SCHEDULE_TICK": "*/5 * * * *"})["tick"]


def test_parameters_must_match_bindings():
    app = func.FunctionApp()

    @app.route(route="x")
    def wrong(request: func.HttpRequest) -> func.HttpResponse:   # the binding is named `req`
        return func.HttpResponse("")

    problems = indexing.worker_problems(_functions(app))
    assert problems and "declared in Python but not in function.json" in problems[0].message


def test_two_function_apps_in_one_script_are_refused():
    class Script:
        a = func.FunctionApp()
        b = func.FunctionApp()

    with pytest.raises(ValueError, match="More than one FunctionApp"):
        indexing.find_app(Script())
