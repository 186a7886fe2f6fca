"""Delivering a (subscription, job)'s events: the orchestration, its two activities, the backoff.

Why an orchestration per (subscription, job), apart from the job's own: it survives host restarts (its timers
and progress are in the Durable history, the deliveries' states in the table), its retries wait on durable
timers that cost nothing while they wait, a slow receiver occupies only its own activity (10 s at most), never
the job or the API, and one instance per pair at a time delivers a job's events to a receiver in order: the
next event waits until the one before is delivered or has failed for good.

The orchestration (replayed: deterministic and small): ask `next_delivery` for the earliest pending delivery;
none: done. Else `attempt` it; until the answer is final, wait the delay it gives (a durable timer) and attempt
again. Then continue as new for the next pending delivery, so the history stays short whatever the number of
events. Both activities are safe to run twice: an attempt reads the delivery's state first (delivered or failed
is not sent again) and writes its outcome ETag-guarded; at least once means a receiver may see an event twice
(a crash after its 2xx, before the write), never with another `webhook-id`.

An attempt: POST the stored body with fresh Standard Webhooks headers (same `webhook-id`), no redirects followed,
a timeout of WEBHOOK_TIMEOUT_SECONDS. 2xx: delivered. 410 Gone: the subscription is disabled (and its other
pending deliveries end as cancelled when their turn comes). Anything else (another status, a timeout, a refused
connection, a URL the safety rules refuse now): retried after `backoff(n)`, exponential from
WEBHOOK_RETRY_FIRST_SECONDS, doubling, capped at WEBHOOK_RETRY_MAX_SECONDS, with jitter (a random share of up to
half the delay, drawn in the activity so replays see the same), until WEBHOOK_RETRY_HOURS after the first
attempt; then failed. Each attempt is logged in the delivery (time, status code, latency, error, the first
1 KB of the response body).
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Generator

import requests

from shared.platform import clock, settings
from shared.platform.errors import ApiError
from shared.platform.names import WEBHOOK_ATTEMPT_ACTIVITY, WEBHOOK_NEXT_ACTIVITY
from shared.webhooks import safety, signing, store
from shared.webhooks.models import CANCELLED, DELIVERED, FAILED, GONE, PENDING, Subscription

log = logging.getLogger(__name__)

NEXT_ACTIVITY, ATTEMPT_ACTIVITY = WEBHOOK_NEXT_ACTIVITY, WEBHOOK_ATTEMPT_ACTIVITY
RESPONSE_CHARS = 1024
MAX_ATTEMPT_WRITES = 10


# ---- orchestration ---------------------------------------------------------------------------------------
def orchestrate(context) -> Generator[Any, Any, str]:
    key = context.get_input() or {}
    item = yield context.call_activity(NEXT_ACTIVITY, key)
    if not item:
        return "idle"
    while True:
        outcome = yield context.call_activity(ATTEMPT_ACTIVITY, item)
        if outcome.get("final"):
            break
        fire_at = context.current_utc_datetime + timedelta(seconds=float(outcome.get("retryIn") or 1))
        yield context.create_timer(fire_at)
    context.continue_as_new(key)
    return outcome.get("state", "")


# ---- activities ------------------------------------------------------------------------------------------
def next_delivery(key: dict[str, Any]) -> dict[str, str] | None:
    """The earliest pending delivery of (subscription, job), or None."""
    sub_id, job_uid = str(key.get("subscription") or ""), str(key.get("job") or "")
    if not sub_id or not job_uid or "'" in sub_id + job_uid:
        return None
    for row in store.deliveries_of(job_uid, sub_id):
        if row.get("state") == PENDING:
            return {"job": job_uid, "row": row["RowKey"]}
    return None


def backoff(attempt: int, rng: random.Random | None = None) -> float:
    """Seconds before attempt `attempt + 1` (`attempt` >= 1 made so far): exponential, capped, jittered."""
    first = settings.get_float("WEBHOOK_RETRY_FIRST_SECONDS")
    cap = settings.get_float("WEBHOOK_RETRY_MAX_SECONDS")
    delay = min(cap, first * (2 ** max(0, attempt - 1)))
    return round(delay / 2 + (rng or random).uniform(0, delay / 2), 3)


def _post(sub: Subscription, event: dict[str, Any]) -> dict[str, Any]:
    """One HTTP attempt; the log entry (no secret, no request header in it)."""
    started, at = time.perf_counter(), clock.iso(clock.now())
    entry: dict[str, Any] = {"at": at, "statusCode": None, "latencyMs": None, "error": None, "response": None}
    try:
        safety.check_url(sub.url)
        secrets = signing.valid_secrets(sub.secrets, clock.now())
        headers = signing.headers(event["id"], event["payload"], secrets)
        response = requests.post(
            sub.url,
            data=event["payload"].encode("utf-8"),
            headers=headers,
            timeout=settings.get_float("WEBHOOK_TIMEOUT_SECONDS"),
            allow_redirects=False,
            stream=True,
        )
        try:
            body = response.raw.read(RESPONSE_CHARS, decode_content=True) or b""
        finally:
            response.close()
        entry["statusCode"] = response.status_code
        entry["response"] = body.decode("utf-8", "replace")[:RESPONSE_CHARS] or None
    except ApiError as error:
        entry["error"] = error.message
    except requests.Timeout:
        entry["error"] = "timeout"
    except requests.ConnectionError:
        entry["error"] = "connection failed"
    except (requests.RequestException, ValueError, OSError) as error:
        entry["error"] = type(error).__name__
    entry["latencyMs"] = round((time.perf_counter() - started) * 1000, 1)
    return entry


def _verdict(row: dict[str, Any], entry: dict[str, Any], now: datetime) -> tuple[str, float | None]:
    """(new state, seconds until the next attempt or None)."""
    code = entry.get("statusCode")
    if code is not None and 200 <= code < 300:
        return DELIVERED, None
    if code == 410:
        return GONE, None
    first = datetime.fromisoformat(row.get("firstAttemptAt") or clock.iso(now))
    delay = backoff(int(row.get("attemptCount") or 0) + 1)
    window = timedelta(hours=settings.get_float("WEBHOOK_RETRY_HOURS"))
    if now + timedelta(seconds=delay) > first + window:
        return FAILED, None
    return PENDING, delay


def _end(row: dict[str, Any], state: str, reason: str) -> dict[str, Any]:
    row["state"], row["endReason"] = state, reason
    store.replace_delivery(row)
    return {"final": True, "state": state}


def _apply(row: dict[str, Any], entry: dict[str, Any]) -> tuple[str, float | None]:
    now = clock.now()
    state, retry_in = _verdict(row, entry, now)
    attempts = json.loads(row.get("attempts") or "[]") + [entry]
    row.update(attempts=json.dumps(attempts), attemptCount=int(row.get("attemptCount") or 0) + 1, state=state)
    row["firstAttemptAt"] = row.get("firstAttemptAt") or clock.iso(now)
    row["deliveredAt"] = clock.iso(now) if state == DELIVERED else ""
    row["nextAttemptAt"] = clock.iso(now + timedelta(seconds=retry_in)) if retry_in is not None else ""
    return state, retry_in


def attempt(item: dict[str, str]) -> dict[str, Any]:
    """Attempt one delivery once. {"final": True, "state"} or {"final": False, "retryIn": seconds}."""
    job_uid, row_key = item["job"], item["row"]
    row = store.get_delivery(job_uid, row_key)
    if row is None or row.get("state") != PENDING:
        return {"final": True, "state": (row or {}).get("state", "missing")}
    sub = store.get_subscription(row["ownerKey"], row["subscription"])
    if sub is None:
        return _end(row, CANCELLED, "the subscription was deleted")
    if sub.disabled:
        return _end(row, CANCELLED, "the subscription is disabled")
    signer = store.get_subscription(row["ownerKey"], sub.sign_with) if sub.sign_with else sub
    if signer is None:  # a job's notify target is signed with the secrets of the owner's subscription it names
        return _end(row, CANCELLED, "the subscription that signs this notify target was deleted")
    event = store.get_event(job_uid, row["eventKey"])
    if event is None:
        return _end(row, CANCELLED, "the event is gone")
    entry = _post(replace(sub, secrets=signer.secrets), event)
    for _ in range(MAX_ATTEMPT_WRITES):
        state, retry_in = _apply(row, entry)
        if store.replace_delivery(row):
            if state == GONE:
                disable(sub, "the receiver answered 410 Gone")
            return {"final": retry_in is None, "state": state, "retryIn": retry_in}
        row = store.get_delivery(job_uid, row_key)  # changed meanwhile (a redelivery request): decide again
        if row is None:
            return {"final": True, "state": "missing"}
    return {"final": False, "state": PENDING, "retryIn": backoff(1)}


def disable(sub: Subscription, reason: str) -> None:
    sub.disabled, sub.disabled_reason = True, reason
    store.save_subscription(sub)
