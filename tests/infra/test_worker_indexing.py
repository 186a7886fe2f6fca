"""function_app.py indexed as the Python worker indexes it, checked against what the worker and the host refuse.

The checks are devhost/indexing.py's, each taken from the worker's or the host's source (named there): one
top-level function app; parameters matching bindings; unique function names; no route under `admin` or
`runtime`; no two routes the host's HttpRoutesConflict calls conflicting; every `%SETTING%` an app setting that
shared/platform/settings.py declares; timer schedules that NCrontab (6 fields) parses, once resolved with the
values Azure gets. Each rule is also shown to catch a small app that breaks it.

The real worker, as far as it can be had: for Python >= 3.13 the worker is split in two, the gRPC "proxy
worker" (it owns the FunctionRpc protocol and its generated messages; shipped with the Functions host, not on
PyPI) and the library `azure-functions-runtime` (PyPI) whose handlers the proxy calls once per gRPC message
(worker_init_request, functions_metadata_request, function_load_request, invocation_request). The last test
installs that library on Python 3.13 and drives function_app.py through those very handlers (metadata, an HTTP
call, an orchestrator episode, an activity), with plain stand-ins for the protocol's message objects: everything
the worker does with the app is the real code; only the gRPC transport is missing. It is skipped when no Python
3.13 is found or the packages cannot be installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import azure.functions as func
import pytest

import function_app
from devhost import indexing
from shared.platform import settings

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = "azure-functions-runtime==1.3.0"
# The values Azure runs with: the template's (cloud) value where declared, else the default.
AZURE_VALUES = {s.name: (s.cloud if s.cloud else s.default) for s in settings.SETTINGS}


def _functions(app) -> list[indexing.Indexed]:
    return indexing.index(app)


_APP_FUNCTIONS = _functions(indexing.find_app(function_app))  # get_functions() may be called once per app


def test_the_app_has_one_top_level_function_app():
    assert indexing.find_app(function_app) is function_app.app


def test_the_worker_accepts_every_function():
    assert indexing.worker_problems(_APP_FUNCTIONS) == []


def test_the_host_accepts_every_function():
    assert indexing.host_problems(_APP_FUNCTIONS, AZURE_VALUES) == []


def test_every_setting_a_binding_names_is_declared_and_resolves_to_a_valid_schedule():
    names = {
        n
        for f in _APP_FUNCTIONS
        for b in f.bindings
        for v in b.values()
        if isinstance(v, str)
        for n in re.findall(r"%([^%]+)%", v)
    }
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
    app = _app_with(
        ("a", "jobs/{uid}", ["GET"]),
        ("b", "/JOBS/{uid}/", ["GET", "PUT"]),
        ("c", "jobs/{uid}", ["DELETE"]),
        ("d", "jobs/{id}", ["GET"]),
        ("e", "jobs/{uid}", None),
    )
    messages = _host_messages(app)
    assert set(messages) == {"b", "e"}  # c: no common method; d: other text (ASP.NET would still clash)
    assert "defined by function 'a'" in messages["b"]


@pytest.mark.parametrize(
    "schedule",
    ["*/5 * * * *", "0 0 25 * * *", "0 */0 * * * *", "0 0 * * * 7", "00:05:00", "0 0 12 ? * MON", "0 0 12 L * *"],
)
def test_invalid_ncrontab_is_refused(schedule):
    assert "not a valid CRON expression" in _host_messages(_app_with(timer=schedule))["tick"]


@pytest.mark.parametrize("schedule", ["0 */5 * * * *", "0 30 3 * * MON-FRI", "0 0 0 1 JAN,JUL *", "5-10/2 * * * * *"])
def test_valid_ncrontab_passes(schedule):
    assert _host_messages(_app_with(timer=schedule)) == {}


def test_a_setting_no_list_declares_is_refused():
    messages = _host_messages(_app_with(timer="%SCHEDULE_TIK%"))
    assert "'%SCHEDULE_TIK%' does not resolve" in messages["tick"]
    assert _host_messages(_app_with(timer="%SCHEDULE_TICK%")) == {}
    assert (
        "not a valid CRON"
        in _host_messages(_app_with(timer="%SCHEDULE_TICK%"), {**AZURE_VALUES, "SCHEDULE_TICK": "*/5 * * * *"})["tick"]
    )


def test_parameters_must_match_bindings():
    app = func.FunctionApp()

    @app.route(route="x")
    def wrong(request: func.HttpRequest) -> func.HttpResponse:  # the binding is named `req`
        return func.HttpResponse("")

    problems = indexing.worker_problems(_functions(app))
    assert problems and "declared in Python but not in function.json" in problems[0].message


def test_two_function_apps_in_one_script_are_refused():
    class Script:
        a = func.FunctionApp()
        b = func.FunctionApp()

    with pytest.raises(ValueError, match="More than one FunctionApp"):
        indexing.find_app(Script())


# ---- the real worker library (Python 3.13) drives function_app.py -----------------------------------------
DRIVER = r'''
"""Runs under Python 3.13 with azure-functions-runtime: the real worker library's handlers, one message each."""
import asyncio
import json
import os
import sys
import types
import uuid

ROOT, REQUESTS = sys.argv[1], json.loads(sys.argv[2])
sys.path.insert(0, ROOT)
os.chdir(ROOT)


class Msg:
    """A protobuf message stand-in: keyword fields; `WhichOneof` names the one field of a oneof that is set."""

    _oneofs = {"data": ("string", "json", "bytes", "stream", "http", "int", "double", "collection_bytes",
                        "collection_string", "collection_double", "collection_sint64", "model_binding_data",
                        "collection_model_binding_data"), "rpc_data": ("data", "rpc_shared_memory")}

    def __init__(self, **fields):
        self.__dict__.update(fields)

    def __getattr__(self, name):          # unset message fields read as empty, like protobuf's
        if name.startswith("__") or name[:1].isupper():
            raise AttributeError(name)
        return Msg()

    def WhichOneof(self, group):
        return next((f for f in self._oneofs[group] if f in self.__dict__), None)

    def items(self):
        return {}.items()


def message(name, **constants):
    return type(name, (Msg,), constants)


SameSite = types.SimpleNamespace(Strict=1, Lax=2, ExplicitNone=3, None_=0)
protos = types.SimpleNamespace(
    StatusResult=message("StatusResult", Success=1, Failure=0, Cancelled=2),
    BindingInfo=message("BindingInfo", in_=0, out=1, inout=2, undefined=0),
    RpcHttpCookie=message("RpcHttpCookie", SameSite=SameSite),
    **{n: message(n) for n in ("TypedData", "RpcHttp", "ParameterBinding", "RpcException", "WorkerInitResponse",
                               "WorkerMetadata", "FunctionMetadataResponse", "FunctionLoadResponse",
                               "InvocationResponse", "RpcFunctionMetadata", "RpcRetryOptions", "NullableDouble",
                               "NullableString", "NullableBool", "NullableTimestamp",
                               "FunctionEnvironmentReloadResponse")})

import azure_functions_runtime as runtime  # noqa: E402
import traceback  # noqa: E402
from azure_functions_runtime import handle_event  # noqa: E402
handle_event.serialize_exception = lambda ex, p: p.RpcException(message="".join(traceback.format_exception(ex)))


def envelope(**payload):
    return Msg(request=Msg(**payload), properties={"host": "127.0.0.1", "protos": protos})


def typed(value):
    kind, data = value
    if kind == "http":
        return protos.TypedData(http=protos.RpcHttp(
            method=data["method"], url=data["url"], headers=data.get("headers", {}), query=data.get("query", {}),
            params=data.get("params", {}), body=protos.TypedData(bytes=data.get("body", "").encode()),
            identities=[], cookies=[]))
    return protos.TypedData(**{kind: data})


def untyped(td):
    if td is None or not isinstance(td, Msg):
        return None
    kind = td.WhichOneof("data")
    value = getattr(td, kind) if kind else None
    if kind == "http":
        body = untyped(value.body) or {}
        return {"status": int(value.status_code), "headers": dict(value.headers),
                "body": next(iter(body.values()), None)}
    return {kind: value.decode() if isinstance(value, bytes) else value}


async def main():
    out = {}
    init = await runtime.worker_init_request(envelope(worker_init_request=Msg(
        capabilities={}, function_app_directory=ROOT, host_version="4", worker_directory=ROOT)))
    out["init"] = {"status": init.result.status, "capabilities": dict(init.capabilities),
                   "error": getattr(init.result, "exception", Msg()).__dict__.get("message")}
    meta = await runtime.functions_metadata_request(envelope(functions_metadata_request=Msg(
        function_app_directory=ROOT)))
    out["functions"] = {m.name: [json.loads(b) for b in m.raw_bindings] for m in meta.function_metadata_results}
    runtime.start_threadpool_executor()
    out["calls"] = []
    for name, inputs, trigger_metadata in REQUESTS:
        function_id = str(uuid.uuid5(uuid.NAMESPACE_OID, name))
        await runtime.function_load_request(envelope(function_load_request=Msg(function_id=function_id)))
        response = await runtime.invocation_request(envelope(invocation_request=Msg(
            invocation_id=str(uuid.uuid4()), function_id=function_id,
            input_data=[protos.ParameterBinding(name=k, data=typed(v)) for k, v in inputs.items()],
            trigger_metadata={k: typed(v) for k, v in trigger_metadata.items()},
            trace_context=Msg(trace_parent="", trace_state="", attributes={}),
            retry_context=Msg(retry_count=0, max_retry_count=0, exception=None))))
        exception = response.result.__dict__.get("exception")
        out["calls"].append({"function": name, "status": response.result.status,
                             "return": untyped(response.__dict__.get("return_value")),
                             "error": exception.message if exception is not None else None})
    print("RESULT " + json.dumps(out, default=str))


asyncio.run(main())
'''


def _python313() -> str | None:
    candidates = [shutil.which("python3.13")] + sorted(
        str(p) for p in Path.home().glob(".pyenv/versions/3.13*/bin/python3.13")
    )
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info >= (3, 13))"], capture_output=True, text=True
        )
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return candidate
    return None


@pytest.fixture(scope="module")
def worker313() -> Path:
    """A Python 3.13 venv with azure-functions-runtime and the app's requirements (cached by their digest)."""
    python = _python313()
    if python is None:
        pytest.skip("no Python 3.13 on this machine: azure-functions-runtime needs Python >= 3.13")
    digest = hashlib.sha256((RUNTIME + (ROOT / "requirements.txt").read_text()).encode()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dm-job" / f"worker313-{digest}"
    venv_python = cache / "bin" / "python"
    if not (cache / "ready").exists():
        shutil.rmtree(cache, ignore_errors=True)
        steps = [
            [python, "-m", "venv", str(cache)],
            [str(venv_python), "-m", "pip", "install", "-q", RUNTIME, "-r", str(ROOT / "requirements.txt")],
        ]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                pytest.skip(f"could not prepare the Python 3.13 worker environment: {done.stderr[-500:]}")
        (cache / "ready").write_text(RUNTIME)
    return venv_python


def _drive(venv_python: Path, tmp_path: Path, calls: list) -> dict:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    done = subprocess.run(
        [str(venv_python), str(script), str(ROOT), json.dumps(calls)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


class _NoOrchestrations:
    def start(self, uid, input):  # noqa: A002 - the Orchestrations protocol's name
        pass


def test_the_real_worker_library_indexes_and_invokes_the_app(worker313, storage_env, tmp_path):
    from devhost import history as h
    from devhost.engine import orchestration_context
    from shared import service
    from shared.jobs import activities
    from shared.jobs.orchestrator import START_ACTIVITY, initial_input
    from shared.jobs.polling import PollPolicy

    job = {
        "type": "dmss://WorkflowDS/Blueprints/Job",
        "label": "worker",
        "runner": {"type": "dmss://WorkflowDS/Blueprints/Simulated", "durationSeconds": 3600},
    }
    uid = service.start_job(job, caller=None, orchestrations=_NoOrchestrations()).uid
    activities.start(uid)
    now = datetime.now(timezone.utc)
    context = orchestration_context(
        [h.orchestrator_started(now), h.execution_started(now, "job_orchestrator", None, uid, "e1")],
        json.dumps(initial_input(uid, 60, PollPolicy())),
        uid,
    )
    out = _drive(
        worker313,
        tmp_path,
        [
            ["health", {"req": ["http", {"method": "GET", "url": "http://localhost/api/health"}]}, {}],
            ["job_orchestrator", {"context": ["string", json.dumps(context)]}, {}],
            ["poll_job_activity", {"uid": ["json", json.dumps(uid)]}, {}],
        ],
    )
    assert out["init"]["status"] == 1, out["init"]
    assert out["init"]["capabilities"]["RpcHttpBodyOnly"] == "true"
    # metadata: the same functions and bindings the 3.11 index (and devhost) reads
    assert out["functions"] == {f.name: f.bindings for f in _APP_FUNCTIONS}
    health, episode, poll = out["calls"]
    assert health["status"] == 1 and health["return"]["status"] == 200, health
    assert json.loads(health["return"]["body"])["status"] == "healthy"
    assert episode["status"] == 1, episode["error"]
    state = json.loads(next(iter(episode["return"].values())))
    actions = [a for group in state["actions"] for a in group]
    assert not state["isDone"] and actions[0]["functionName"] == START_ACTIVITY
    assert poll["status"] == 1, poll["error"]
    assert json.loads(next(iter(poll["return"].values())))["done"] is False
