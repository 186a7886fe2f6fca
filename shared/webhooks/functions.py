"""The webhooks' functions, in a Blueprint that function_app.py registers: HTTP routes, the delivery orchestrator,
its activities and the dispatch timer. Each parses, delegates to shared.webhooks and shapes the reply.

Function names: `subscription_*`, `job_events` (GET jobs/{uid}/events: no GET catch-all under jobs/ can take it),
`webhook_*`; tests/unit/test_route_rules.py checks that each request reaches its function under both of the
host's route-matching rules.
"""

from __future__ import annotations

import asyncio
import json
import logging

import azure.durable_functions as df
import azure.functions as func

from shared.platform import durable, lazy, names
from shared.platform.durable import run_sync
from shared.platform.identity import caller_from_headers
from shared.platform.parsing import parse_json
from shared.platform.replies import answer as _answer

# loaded by the first request or delivery that uses them, not at every cold start (shared.platform.lazy)
delivery = lazy.module("shared.webhooks.delivery")
dispatch = lazy.module("shared.webhooks.dispatch")
operations = lazy.module("shared.webhooks.operations")

bp = df.Blueprint()
log = logging.getLogger(__name__)
KEY = func.AuthLevel.FUNCTION


# ---- subscriptions ---------------------------------------------------------------------------------------
@bp.route(route="subscriptions", methods=["POST"], auth_level=KEY)
@bp.durable_client_input(client_name="client")
async def subscription_create(req: func.HttpRequest, client) -> func.HttpResponse:
    durable.remember_endpoint(client)
    caller = caller_from_headers(req.headers)
    return await run_sync(_answer, lambda: operations.create_subscription(parse_json(req.get_body()), caller), 201)


@bp.route(route="subscriptions", methods=["GET"], auth_level=KEY)
def subscription_list(req: func.HttpRequest) -> func.HttpResponse:
    return _answer(lambda: operations.list_subscriptions(caller_from_headers(req.headers)))


@bp.route(route="subscriptions/{id}", methods=["GET"], auth_level=KEY)
def subscription_get(req: func.HttpRequest) -> func.HttpResponse:
    return _answer(lambda: operations.get_subscription(req.route_params["id"], caller_from_headers(req.headers)))


@bp.route(route="subscriptions/{id}", methods=["DELETE"], auth_level=KEY)
def subscription_delete(req: func.HttpRequest) -> func.HttpResponse:
    return _answer(lambda: operations.delete_subscription(req.route_params["id"], caller_from_headers(req.headers)))


@bp.route(route="subscriptions/{id}/rotate", methods=["POST"], auth_level=KEY)
@bp.durable_client_input(client_name="client")
async def subscription_rotate(req: func.HttpRequest, client) -> func.HttpResponse:
    durable.remember_endpoint(client)
    caller = caller_from_headers(req.headers)
    return await run_sync(_answer, lambda: operations.rotate_secret(req.route_params["id"], caller))


# ---- the delivery log ------------------------------------------------------------------------------------
@bp.route(route="jobs/{uid}/events", methods=["GET"], auth_level=KEY)
def job_events(req: func.HttpRequest) -> func.HttpResponse:
    return _answer(lambda: operations.job_events(req.route_params["uid"], caller_from_headers(req.headers)))


@bp.route(route="deliveries/{id}/redeliver", methods=["POST"], auth_level=KEY)
@bp.durable_client_input(client_name="client")
async def webhook_redeliver(req: func.HttpRequest, client) -> func.HttpResponse:
    durable.remember_endpoint(client)
    caller = caller_from_headers(req.headers)
    return await run_sync(_answer, lambda: operations.redeliver(req.route_params["id"], caller), 202)


# ---- delivery ----------------------------------------------------------------------------------------------
@bp.orchestration_trigger(context_name="context", orchestration=names.WEBHOOK_ORCHESTRATOR)
def webhook_delivery_orchestrator(context: df.DurableOrchestrationContext):
    return (yield from delivery.orchestrate(context))


@bp.activity_trigger(input_name="key", activity=names.WEBHOOK_NEXT_ACTIVITY)
def webhook_delivery_next(key: dict) -> dict | None:
    return delivery.next_delivery(key)


@bp.activity_trigger(input_name="item", activity=names.WEBHOOK_ATTEMPT_ACTIVITY)
def webhook_delivery_attempt(item: dict) -> dict:
    return delivery.attempt(item)


# at second 0 of every minute, with the schedule tick: a ManualClock stops there anyway
@bp.timer_trigger(schedule="0 * * * * *", arg_name="timer", run_on_startup=False, use_monitor=False)
@bp.durable_client_input(client_name="client")
async def webhook_dispatch(timer: func.TimerRequest, client) -> None:
    """Start what listeners could not start themselves (no client known yet, a busy or lost start)."""
    durable.remember_endpoint(client)
    loop = asyncio.get_running_loop()

    def start(instance_id: str, value: dict) -> None:
        coroutine = client.start_new(names.WEBHOOK_ORCHESTRATOR, instance_id, value)
        asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=30)

    report = await run_sync(lambda: dispatch.dispatch_due(start))  # loaded off the event loop
    if report["started"] or report["refused"]:
        log.info("webhook dispatch: %s", json.dumps(report))
