"""The local host refuses what the real host and worker refuse when they index an app (devhost/indexing.py)."""

from __future__ import annotations

import textwrap

import pytest
import requests

from devhost import DevHost

APP = """
import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="things", methods=["GET"])
def a_things(req):
    return func.HttpResponse("a")


@app.route(route="/Things/", methods=["GET", "POST"])
def b_things(req):
    return func.HttpResponse("b")


@app.route(route="runtime/x", methods=["GET"])
def c_reserved(req):
    return func.HttpResponse("c")


@app.route(route="things", methods=["DELETE"])
def d_things(req):
    return func.HttpResponse("d")


@app.timer_trigger(schedule="%NOT_SET_ANYWHERE%", arg_name="timer")
def e_timer(timer):
    pass
"""


def write_app(tmp_path, source: str):
    (tmp_path / "function_app.py").write_text(textwrap.dedent(source))
    (tmp_path / "host.json").write_text('{"version": "2.0"}')
    return tmp_path


def test_functions_the_host_refuses_are_left_out_with_their_error(tmp_path, clock):
    with DevHost(app_dir=write_app(tmp_path, APP), clock=clock) as host:
        assert set(host.function_errors) == {"b_things", "c_reserved", "e_timer"}
        assert "conflicts with the route defined by function 'a_things'" in host.function_errors["b_things"][0]
        assert "built in routes" in host.function_errors["c_reserved"][0]
        assert "%NOT_SET_ANYWHERE%" in host.function_errors["e_timer"][0]
        assert requests.get(f"{host.url}/api/things").text == "a"
        assert requests.post(f"{host.url}/api/things").status_code == 404  # b_things is not there
        assert requests.delete(f"{host.url}/api/things").text == "d"  # methods do not intersect


def test_an_app_the_worker_refuses_does_not_start(tmp_path, clock):
    source = APP.replace("def a_things(req):", "def a_things(request):")
    with pytest.raises(RuntimeError, match="declared in Python but not in function.json"):
        DevHost(app_dir=write_app(tmp_path, source), clock=clock).start()


def test_two_function_apps_in_one_script_are_refused(tmp_path, clock):
    source = APP + "\nother = func.FunctionApp()\n"
    with pytest.raises(RuntimeError, match="More than one FunctionApp"):
        DevHost(app_dir=write_app(tmp_path, source), clock=clock).start()
