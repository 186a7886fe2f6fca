"""DM job service on Azure Functions: HTTP API, the job orchestration and its activities, the schedule timer.

Each function parses its request, delegates to `shared/` and shapes the reply; the logic lives there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.parse

import azure.durable_functions as df
import azure.functions as func

from shared.jobs.access import add_delegate
from shared.platform import clock, hooks, lazy, names, settings
from shared.platform.durable import ClientOrchestrations, purge_finished_history, run_sync
from shared.platform.identity import caller_from_headers
from shared.platform.replies import JSON, answer as _answer, page, reply as _reply
from shared.webhooks import functions as webhook_functions

# The code behind the functions loads with the first request that uses it, not at every cold start: the host
# imports this module only to learn the functions (shared.platform.lazy; bench/bench_cold_start.py).
service = lazy.module("shared.service")
dmss_start = lazy.module("shared.dmss.start")
activities = lazy.module("shared.jobs.activities")
orchestrator = lazy.module("shared.jobs.orchestrator")
reconcile = lazy.module("shared.jobs.reconcile")
schedule_runs = lazy.module("shared.schedules.runs")
dashboard = lazy.module("shared.dashboard")
openapi = lazy.module("shared.openapi")  # ~0.1 s of pydantic models of its own
swagger = lazy.module("shared.openapi.swagger")

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
log = logging.getLogger("function_app")
hooks.add("shared.dmss.writeback:DmssWriteBack")
hooks.add("shared.schedules.history:RUN_LISTENER")
hooks.add("shared.webhooks.events:LISTENER")  # status changes -> webhook deliveries (enqueued only)
app.register_functions(webhook_functions.bp)  # subscriptions, a job's delivery log, the delivery orchestration
add_delegate("shared.dmss.access:DmssAccess")  # who else may read or stop a DMSS job: DMSS decides, as the caller


def _job_token(req: func.HttpRequest) -> str | None:
    """A job reporting progress presents its DMSS token (Access-Key or Bearer), as the old job containers do."""
    token = req.headers.get("Access-Key")
    auth = req.headers.get("Authorization", "")
    if not token and auth.lower().startswith("bearer "):
        token = auth[7:].strip()
    return token or None


# ---- HTTP API ---------------------------------------------------------------------------------------------
def _started(result: service.StartResult) -> func.HttpResponse:
    return _reply(result.body(), 200 if result.existed else 202, {"Location": f"/api/jobs/{result.uid}"})


def _start_inline(req: func.HttpRequest, bridge: ClientOrchestrations) -> func.HttpResponse:
    return _started(
        service.start_job(
            service.parse_json(req.get_body()),
            caller=caller_from_headers(req.headers),
            orchestrations=bridge,
            idempotency_key=req.headers.get("Idempotency-Key"),
        )
    )


@app.route(route="jobs", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_job(req: func.HttpRequest, client) -> func.HttpResponse:
    bridge = ClientOrchestrations(client, asyncio.get_running_loop())
    return await run_sync(_answer, lambda: _start_inline(req, bridge))


# The real host tries routes in (case-insensitive) order of function name and takes the first whose template and
# method match (azure-functions-host #9876, #3153): this catch-all must sort after every other POST route under
# jobs/ (schedule_*, start_job), or it would take `POST jobs/{uid}/suspend`. tests/unit/test_route_rules.py checks.
@app.route(route="jobs/{*address}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_job_from_dmss(req: func.HttpRequest, client) -> func.HttpResponse:
    bridge = ClientOrchestrations(client, asyncio.get_running_loop())
    address = req.route_params.get("address", "")

    def work():
        if not address.strip("/"):  # some hosts route POST /api/jobs here (an empty catch-all)
            return _start_inline(req, bridge)
        result = dmss_start.start_from_address(
            address,
            req.headers,
            caller=caller_from_headers(req.headers),
            orchestrations=bridge,
            idempotency_key=req.headers.get("Idempotency-Key"),
        )
        return _started(result)

    return await run_sync(_answer, work)


@app.route(route="jobs", methods=["GET"])
@app.durable_client_input(client_name="client")
async def list_jobs(req: func.HttpRequest, client) -> func.HttpResponse:
    bridge = ClientOrchestrations(client, asyncio.get_running_loop())  # the page's running jobs are woken
    return await run_sync(
        _answer,
        lambda: service.list_jobs(
            req.params.get("status"),
            req.params.get("limit"),
            req.params.get("continuationToken"),
            caller_from_headers(req.headers),
            wake=bridge.wake,
        ),
    )


@app.route(route="jobs/{uid}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def get_job(req: func.HttpRequest, client) -> func.HttpResponse:
    bridge = ClientOrchestrations(client, asyncio.get_running_loop())
    return await run_sync(
        _answer,
        lambda: service.get_job(
            req.route_params["uid"], caller_from_headers(req.headers), _job_token(req), wake=bridge.wake
        ),
    )


@app.route(route="jobs/{uid}", methods=["PUT"], auth_level=func.AuthLevel.ANONYMOUS)  # jobs hold no key: token
@app.durable_client_input(client_name="client")
async def report_progress(req: func.HttpRequest, client) -> func.HttpResponse:
    bridge = ClientOrchestrations(client, asyncio.get_running_loop())
    return await run_sync(
        _answer,
        lambda: service.report_progress(
            req.route_params["uid"],
            req.get_body(),
            req.params.get("overwrite_log"),
            caller_from_headers(req.headers),
            _job_token(req),
            wake=bridge.wake_ended,  # the job's own final report, its process's exit notice
        ),
    )


@app.route(route="jobs/{uid}", methods=["DELETE"])
@app.durable_client_input(client_name="client")
async def stop_job(req: func.HttpRequest, client) -> func.HttpResponse:
    bridge = ClientOrchestrations(client, asyncio.get_running_loop())
    stop_running = req.params.get("stopRunning", "false").lower() in ("true", "1", "yes")
    return await run_sync(
        _answer,
        lambda: service.stop_job(
            req.route_params["uid"], caller_from_headers(req.headers), bridge, stop_running=stop_running
        ),
    )


@app.route(route="jobs/{uid}/result", methods=["GET"])
def get_result(req: func.HttpRequest) -> func.HttpResponse:
    return _answer(
        lambda: service.get_result(
            req.route_params["uid"], caller_from_headers(req.headers), attempt=req.params.get("attempt")
        )
    )


@app.route(route="jobs/{uid}/log", methods=["GET"])
async def get_job_log(req: func.HttpRequest) -> func.HttpResponse:  # async: a running job's log is a runner call
    return await run_sync(
        _answer,
        lambda: service.get_log(req.route_params["uid"], caller_from_headers(req.headers), req.params.get("tail")),
    )


@app.route(route="jobs/{uid}/suspend", methods=["POST"])
def schedule_suspend(req: func.HttpRequest) -> func.HttpResponse:
    return _answer(lambda: service.suspend_schedule(req.route_params["uid"], caller_from_headers(req.headers)))


@app.route(route="jobs/{uid}/resume", methods=["POST"])
def schedule_resume(req: func.HttpRequest) -> func.HttpResponse:
    return _answer(lambda: service.resume_schedule(req.route_params["uid"], caller_from_headers(req.headers)))


@app.route(route="jobs/{uid}/schedule", methods=["GET"])
def schedule_preview(req: func.HttpRequest) -> func.HttpResponse:
    return _answer(
        lambda: service.preview_schedule(
            req.route_params["uid"], req.params.get("next"), caller_from_headers(req.headers)
        )
    )


def _run_now(req: func.HttpRequest, bridge: ClientOrchestrations) -> func.HttpResponse:
    run = schedule_runs.run_now(
        bridge, req.route_params["uid"], caller_from_headers(req.headers), req.headers.get("Idempotency-Key")
    )
    return _reply(run.body(), 200 if run.existed else 202, {"Location": f"/api/jobs/{run.uid}"})


@app.route(route="jobs/{uid}/run", methods=["POST"])  # schedule_*: sorts before start_job_from_dmss
@app.durable_client_input(client_name="client")
async def schedule_run_now(req: func.HttpRequest, client) -> func.HttpResponse:
    bridge = ClientOrchestrations(client, asyncio.get_running_loop())
    return await run_sync(_answer, lambda: _run_now(req, bridge))


@app.route(route="jobs/{uid}/backfill", methods=["POST"])
@app.durable_client_input(client_name="client")
async def schedule_backfill(req: func.HttpRequest, client) -> func.HttpResponse:
    loop = asyncio.get_running_loop()
    bridge = ClientOrchestrations(client, loop)
    return await run_sync(
        _answer,
        lambda: schedule_runs.request_backfill(
            bridge,
            schedule_runs.Drivers(client, loop),
            req.route_params["uid"],
            req.get_body(),
            caller_from_headers(req.headers),
        ),
        202,
    )


@app.route(route="jobs/{uid}/backfill", methods=["DELETE"])
def schedule_backfill_cancel(req: func.HttpRequest) -> func.HttpResponse:
    return _answer(lambda: service.cancel_backfill(req.route_params["uid"], caller_from_headers(req.headers)))


@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    status, body = service.health()
    return _reply(body, status)


@app.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)  # routes only, no data
def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(openapi.document_json(), mimetype=JSON, headers={"Cache-Control": "no-cache"})


@app.route(route="docs/{*file}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)  # static HTML + JS
def swagger_ui(req: func.HttpRequest) -> func.HttpResponse:
    return page(swagger.serve(req.route_params.get("file"), urllib.parse.urlsplit(req.url).path))


@app.route(route="ui/{*file}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)  # static files, no data
def dashboard_ui(req: func.HttpRequest) -> func.HttpResponse:
    path = urllib.parse.urlsplit(req.url).path
    return page(dashboard.serve(req.route_params.get("file"), path, req.headers.get("If-None-Match")))


# ---- orchestration ----------------------------------------------------------------------------------------
@app.orchestration_trigger(context_name="context", orchestration=names.ORCHESTRATOR)
def job_orchestrator(context: df.DurableOrchestrationContext):
    return (yield from orchestrator.orchestrate(context))


@app.activity_trigger(input_name="uid", activity=names.START_ACTIVITY)
def start_job_activity(uid: str) -> dict:
    return activities.start(uid)


@app.activity_trigger(input_name="uid", activity=names.POLL_ACTIVITY)
def poll_job_activity(uid: str) -> dict:
    return activities.poll(uid)


@app.activity_trigger(input_name="request", activity=names.FINISH_ACTIVITY)
def finish_job_activity(request: dict) -> dict:
    return activities.finish(request)


@app.orchestration_trigger(context_name="context", orchestration=names.BACKFILL_DRIVER)
def schedule_backfill_driver(context: df.DurableOrchestrationContext):
    return (yield from schedule_runs.drive(context))


# An activity with the Durable client (it starts the backfill's runs): a pattern the extension's maintainers show
# (Azure/azure-functions-durable-extension issue #443); the local host binds it too (devhost/engine.py, _activity).
@app.activity_trigger(input_name="uid", activity=names.BACKFILL_STEP_ACTIVITY)
@app.durable_client_input(client_name="client")
async def schedule_backfill_step(uid: str, client) -> dict:
    bridge = ClientOrchestrations(client, asyncio.get_running_loop())
    return await run_sync(lambda: schedule_runs.safe_step(bridge, uid))  # loaded off the event loop


# ---- schedules --------------------------------------------------------------------------------------------
@app.timer_trigger(schedule="%SCHEDULE_TICK%", arg_name="timer", run_on_startup=False, use_monitor=True)
@app.durable_client_input(client_name="client")
async def schedule_tick(timer: func.TimerRequest, client) -> None:
    bridge = ClientOrchestrations(client, asyncio.get_running_loop())
    report = await run_sync(lambda: schedule_runs.tick(bridge))  # loaded off the event loop
    log.info("schedule tick: %s", json.dumps(report.as_dict()))


@app.timer_trigger(schedule="0 */5 * * * *", arg_name="timer", run_on_startup=False, use_monitor=True)
@app.durable_client_input(client_name="client")
async def reconcile_jobs(timer: func.TimerRequest, client) -> None:
    bridge = ClientOrchestrations(client, asyncio.get_running_loop())
    report = await run_sync(lambda: reconcile.reconcile(bridge))
    if report.restarted or report.closed or report.errors:
        log.warning("reconciliation: %s", json.dumps(report.as_dict()))


@app.timer_trigger(schedule="0 30 3 * * *", arg_name="timer", run_on_startup=False, use_monitor=True)
@app.durable_client_input(client_name="client")
async def purge_orchestration_history(timer: func.TimerRequest, client) -> None:
    purged = await purge_finished_history(client, settings.get_int("ORCHESTRATION_HISTORY_DAYS"), clock.now())
    log.info("purged the Durable history of %d finished job orchestrations", purged)
