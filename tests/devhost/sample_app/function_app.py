"""Sample Durable Functions app used by the devhost tests (not shipped)."""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)

# Observations the tests read (the app runs in the test process).
TICKS: list = []
GATE = threading.Event()  # the `gated` activity blocks until a test sets it
ACTIVITY_CALLS: list = []
_lock = threading.Lock()


@app.route(route="orchestrators/{name}/{instance_id?}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client) -> func.HttpResponse:
    body = req.get_body()
    payload = json.loads(body) if body else None
    instance_id = await client.start_new(req.route_params["name"], req.route_params.get("instance_id"), payload)
    return client.create_check_status_response(req, instance_id)


@app.route(route="status/{instance_id}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def http_status(req: func.HttpRequest, client) -> func.HttpResponse:
    status = await client.get_status(req.route_params["instance_id"])
    if not status:
        return func.HttpResponse("not found", status_code=404)
    return func.HttpResponse(json.dumps(status.to_json(), default=str), mimetype="application/json")


@app.route(route="items/{id:guid}", methods=["GET"])
def item_by_guid(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({"route": "guid", "id": req.route_params["id"]}), mimetype="application/json")


@app.route(route="items/special", methods=["GET"])
def item_special(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({"route": "special"}), mimetype="application/json")


@app.route(route="items/{*rest}", methods=["GET", "DELETE"])
def item_catch_all(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps({"route": "catchall", "rest": req.route_params.get("rest")}), mimetype="application/json"
    )


@app.route(route="echo/{name}", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
def echo(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(
            {
                "method": req.method,
                "name": req.route_params["name"],
                "params": dict(req.params),
                "body": req.get_body().decode(),
                "header": req.headers.get("x-test"),
            }
        ),
        status_code=201,
        headers={"X-Echo": "yes"},
        mimetype="application/json",
    )


@app.route(route="ping", methods=["GET"])
async def ping(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("pong")


@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext):
    data = context.get_input() or {}
    a = yield context.call_activity("add_one", data.get("start", 0))
    b = yield context.call_activity("add_one", a)
    parallel = yield context.task_all([context.call_activity("add_one", b), context.call_activity("add_one", b + 10)])
    context.set_custom_status({"step": "done"})
    return {"a": a, "b": b, "parallel": parallel}


@app.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext):
    """Wait for an 'approve' event for at most `timeout` seconds."""
    timeout = (context.get_input() or {}).get("timeout", 60)
    timer = context.create_timer(context.current_utc_datetime + timedelta(seconds=timeout))
    event = context.wait_for_external_event("approve")
    winner = yield context.task_any([timer, event])
    if winner == event:
        timer.cancel()
        return {"result": "approved", "by": event.result}
    return {"result": "timeout"}


@app.orchestration_trigger(context_name="context")
def monitor(context: df.DurableOrchestrationContext):
    """A loop that waits for 'ping' events (or 10 s) and continues as new each round."""
    state = context.get_input() or {"round": 0, "pings": []}
    if state["round"] >= state.get("max_rounds", 3):
        return state
    timer = context.create_timer(context.current_utc_datetime + timedelta(seconds=10))
    event = context.wait_for_external_event("ping")
    winner = yield context.task_any([timer, event])
    if winner == event:
        timer.cancel()
        state["pings"].append(event.result)
    else:
        yield context.call_activity("gated" if state.get("gated") else "add_one", state["round"])
    state["round"] += 1
    context.continue_as_new(state)


@app.orchestration_trigger(context_name="context")
def failing(context: df.DurableOrchestrationContext):
    try:
        yield context.call_activity("explode", "boom")
    except Exception as exc:  # noqa: BLE001
        if (context.get_input() or {}).get("catch"):
            return {"caught": str(exc)}
        raise
    return "unreachable"


@app.orchestration_trigger(context_name="context")
def slow_chain(context: df.DurableOrchestrationContext):
    """Activities separated by timers: used by the restart test."""
    total = 0
    for i in range(3):
        total = yield context.call_activity("add_one", total)
        yield context.create_timer(context.current_utc_datetime + timedelta(seconds=30))
    return total


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):
    n = context.get_input() or 10
    results = yield context.task_all([context.call_activity("add_one", i) for i in range(n)])
    return sum(results)


@app.orchestration_trigger(context_name="context")
def waiter(context: df.DurableOrchestrationContext):
    first = yield context.wait_for_external_event("go")
    second = yield context.wait_for_external_event("go2")
    return [first, second]


@app.activity_trigger(input_name="value")
def add_one(value: int) -> int:
    with _lock:
        ACTIVITY_CALLS.append(value)
    return int(value) + 1


@app.activity_trigger(input_name="value")
def gated(value: int) -> int:
    GATE.wait(20)
    return value


@app.activity_trigger(input_name="message")
def explode(message: str) -> str:
    raise ValueError(f"activity failed: {message}")


@app.timer_trigger(schedule="%SCHEDULE_TICK%", arg_name="timer", run_on_startup=False, use_monitor=False)
def tick(timer: func.TimerRequest) -> None:
    from shared.platform import clock

    with _lock:
        TICKS.append({"at": clock.now().isoformat(), "past_due": timer.past_due})
    logging.info("tick")


@app.route(route="inspect/{*rest}", methods=["GET", "POST", "PUT"], auth_level=func.AuthLevel.ANONYMOUS)
def inspect_request(req: func.HttpRequest) -> func.HttpResponse:
    """What the function got, as the worker hands it over (headers, query, route values, body, thread)."""
    return func.HttpResponse(
        json.dumps(
            {
                "method": req.method,
                "url": req.url,
                "headers": dict(req.headers),
                "params": dict(req.params),
                "route": dict(req.route_params),
                "body": req.get_body().decode("utf-8", "replace"),
                "thread": threading.current_thread().name,
            }
        ),
        mimetype="application/json",
    )


@app.route(route="level/admin", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
def admin_only(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("admin")


@app.orchestration_trigger(context_name="context")
def long_sleep(context: df.DurableOrchestrationContext):
    """One durable timer of `days` days (the SDK splits it into 3-day timers past 6 days)."""
    days = context.get_input() or 10
    yield context.create_timer(context.current_utc_datetime + timedelta(days=days))
    return context.current_utc_datetime.isoformat()


@app.orchestration_trigger(context_name="context")
def race_then_wait(context: df.DurableOrchestrationContext):
    """An event beats a timer; then a second wait: the cancelled timer still wakes the orchestrator once."""
    timer = context.create_timer(context.current_utc_datetime + timedelta(seconds=30))
    first = context.wait_for_external_event("first")
    winner = yield context.task_any([timer, first])
    if winner == first:
        timer.cancel()
    THREADS.append(("orchestrator", threading.current_thread().name))
    second = yield context.wait_for_external_event("second")
    return {"first": first.result, "second": second}


@app.orchestration_trigger(context_name="context")
def call_sleepy(context: df.DurableOrchestrationContext):
    try:
        return (yield context.call_activity("sleepy", context.get_input()))
    except Exception as exc:  # noqa: BLE001
        return {"failed": str(exc)}


@app.orchestration_trigger(context_name="context")
def many_sleepy(context: df.DurableOrchestrationContext):
    n, seconds = context.get_input()
    return (yield context.task_all([context.call_activity("sleepy", seconds) for _ in range(n)]))


@app.activity_trigger(input_name="seconds")
def sleepy(seconds: float) -> float:
    with _lock:
        THREADS.append(("activity", threading.current_thread().name))
        RUNNING[0] += 1
        RUNNING[1] = max(RUNNING[1], RUNNING[0])
    try:
        SLEEPY_RELEASE.wait(seconds)
    finally:
        with _lock:
            RUNNING[0] -= 1
    return seconds


RUNNING = [0, 0]  # sleepy activities running now, at most


THREADS: list = []
SLEEPY_RELEASE = threading.Event()
