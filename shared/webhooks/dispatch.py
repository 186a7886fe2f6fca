"""Starting delivery orchestrations: at once when this process can reach the Durable client, else from the timer.

A listener runs inside a job's activity (or an API request) and must only enqueue: it writes the events, the
deliveries and an outbox row (store.py), then asks here for the (subscription, job) orchestration to start.
Starting one is what the Durable client does: a POST to the extension's local RPC endpoint (`rpcBaseUrl` of the
client binding, `orchestrators/{name}/{instanceId}`, the body the input as JSON text: azure-functions-durable
models/DurableOrchestrationClient.py `start_new`/`_get_start_new_url`/`_get_json_input`). Activities have no
client binding of their own, so the endpoint is remembered from the last function of this module that had one
(the API's webhook routes and the dispatch timer); it holds no key. When it is not known yet, or the start is
refused (that orchestration is still busy with earlier events) or fails, the outbox row stays and the minute
timer (`dispatch_due`) starts the orchestration then; an accepted start removes the row (ETag-guarded, so a row
marked again meanwhile stays).

The instance id is deterministic, `webhook-<subscription>-<job>`: one orchestration per pair at a time, which
is what keeps a job's events in order for each receiver. Starting it again once it has finished is harmless:
it reads the pending deliveries from the table and finds none.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import requests

from shared.platform import durable
from shared.platform.names import WEBHOOK_ORCHESTRATOR
from shared.webhooks import store

log = logging.getLogger(__name__)

ORCHESTRATOR = WEBHOOK_ORCHESTRATOR
START_TIMEOUT_SECONDS = 5
_session = threading.local()


def instance_id(sub_id: str, job_uid: str) -> str:
    return f"webhook-{sub_id}-{job_uid}"


def remember(client: Any) -> None:
    """Keep the Durable client's local RPC endpoint for starts from listeners (shared.platform.durable)."""
    durable.remember_endpoint(client)


def forget() -> None:
    durable.forget_endpoint()


def _http() -> requests.Session:
    if not hasattr(_session, "value"):
        _session.value = requests.Session()
    return _session.value


def start(sub_id: str, job_uid: str) -> bool:
    """Start the (subscription, job) orchestration now if this process can; True if the start was accepted."""
    rpc = durable.rpc_endpoint()
    if not rpc:
        return False
    url = f"{rpc}orchestrators/{ORCHESTRATOR}/{instance_id(sub_id, job_uid)}"
    body = json.dumps({"subscription": sub_id, "job": job_uid})
    try:
        response = _http().post(url, json=body, timeout=START_TIMEOUT_SECONDS)
    except requests.RequestException as error:
        log.info("webhook delivery for job %s not started now (%s); the timer starts it", job_uid, type(error).__name__)
        return False
    return response.status_code in (200, 201, 202)


def enqueue(sub_id: str, job_uid: str) -> None:
    """Mark (subscription, job) due, then try to start its orchestration; the timer covers a start that fails."""
    etag = store.mark_due(sub_id, job_uid)
    if start(sub_id, job_uid):
        store.clear_due(store.outbox_key(sub_id, job_uid), etag)


def dispatch_due(client_start) -> dict[str, int]:
    """The timer's part: start the orchestration of every due (subscription, job). `client_start(instance_id,
    input)` starts through the timer's own Durable client; a refused start stays due for the next round."""
    started = refused = 0
    for row in store.due():
        sub_id, _, job_uid = row["RowKey"].partition("~")
        try:
            client_start(instance_id(sub_id, job_uid), {"subscription": sub_id, "job": job_uid})
        except Exception as error:  # noqa: BLE001 - still busy with earlier events, or a hiccup: next round
            log.info("webhook delivery for job %s not started (%s)", job_uid, type(error).__name__)
            refused += 1
            continue
        store.clear_due(row["RowKey"], row["_etag"])
        started += 1
    return {"started": started, "refused": refused}
