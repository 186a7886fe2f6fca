"""The webhooks API as function_app sees it: subscriptions, a job's delivery log, redelivery.

Owners see and manage only their own subscriptions: each is kept in its owner's partition (store.py), so another
caller's id is not found (404, as for an id that never existed). The signing secret is in the answer of the
create and of a rotation only; GET and the list never show it, and no log line does.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

from shared.jobs.access import Caller, authorize
from shared.jobs.operations import get_record
from shared.platform import clock, settings
from shared.platform.errors import NotFound, ValidationFailed
from shared.webhooks import dispatch, safety, signing, store
from shared.webhooks.models import (
    MAX_SUBSCRIPTIONS_PER_OWNER,
    PENDING,
    Subscription,
    check_subscription_id,
    parse_subscription,
)


def _owner(caller: Caller | None) -> str:
    return (caller.id if caller is not None else None) or ""


def _own(sub_id: str, caller: Caller | None) -> Subscription:
    sub = None
    if check_subscription_id(sub_id):
        sub = store.get_subscription(store.owner_key(_owner(caller)), sub_id)
    if sub is None:
        raise NotFound(f"no subscription {sub_id[:40]!r} of this caller")
    return sub


def create_subscription(data: Any, caller: Caller | None) -> dict[str, Any]:
    body = parse_subscription(data)
    safety.check_url(body.url)
    owner = _owner(caller)
    if len(store.subscriptions_of(owner)) >= MAX_SUBSCRIPTIONS_PER_OWNER:
        raise ValidationFailed(f"a caller may have at most {MAX_SUBSCRIPTIONS_PER_OWNER} subscriptions")
    secret = signing.new_secret()
    sub = Subscription(
        id="sub_" + uuid.uuid4().hex[:24],
        owner=owner,
        url=body.url,
        events=body.events,
        filter=body.filter.model_dump(exclude_none=True),
        description=body.description,
        created=clock.iso(clock.now()),
        secrets=[{"value": secret, "expires": None}],
    )
    store.save_subscription(sub)
    return {**sub.view(), "secret": secret}


def get_subscription(sub_id: str, caller: Caller | None) -> dict[str, Any]:
    return _own(sub_id, caller).view()


def list_subscriptions(caller: Caller | None) -> dict[str, Any]:
    subs = sorted(store.subscriptions_of(_owner(caller)), key=lambda s: (s.created or "", s.id))
    return {"subscriptions": [s.view() for s in subs]}


def delete_subscription(sub_id: str, caller: Caller | None) -> dict[str, Any]:
    sub = _own(sub_id, caller)
    store.delete_subscription(sub.owner, sub.id)
    return {"id": sub.id, "deleted": True}


def rotate_secret(sub_id: str, caller: Caller | None) -> dict[str, Any]:
    """A new secret; the previous ones stay valid for WEBHOOK_SECRET_GRACE_SECONDS (both sign meanwhile)."""
    sub = _own(sub_id, caller)
    now = clock.now()
    grace = clock.iso(now + timedelta(seconds=settings.get_int("WEBHOOK_SECRET_GRACE_SECONDS")))
    kept = [
        {"value": item["value"], "expires": min(item.get("expires") or grace, grace)}
        for item in sub.secrets
        if item.get("expires") is None or item["expires"] > clock.iso(now)
    ]
    secret = signing.new_secret()
    sub.secrets = [{"value": secret, "expires": None}] + kept
    store.save_subscription(sub)
    return {**sub.view(), "secret": secret, "previousSecretsExpire": grace if kept else None}


# ---- the delivery log ----------------------------------------------------------------------------------------
def _delivery_view(job_uid: str, row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": store.delivery_id(job_uid, row["RowKey"]),
        "subscription": row.get("subscription"),
        "state": row.get("state"),
        "attempts": json.loads(row.get("attempts") or "[]"),
        "nextAttemptAt": row.get("nextAttemptAt") or None,
        "deliveredAt": row.get("deliveredAt") or None,
        "endReason": row.get("endReason") or None,
    }


def job_events(uid: str, caller: Caller | None) -> dict[str, Any]:
    """A job's events and, per subscription, every attempt (who may read the job may read this)."""
    record = get_record(uid)
    authorize(record, caller, "read")
    deliveries: dict[str, list[dict[str, Any]]] = {}
    for row in store.deliveries_of(record.uid):
        deliveries.setdefault(row.get("eventKey", ""), []).append(_delivery_view(record.uid, row))
    events = [
        {
            "id": row.get("id"),
            "type": row.get("type"),
            "timestamp": row.get("timestamp"),
            "deliveries": deliveries.get(row["RowKey"], []),
        }
        for row in sorted(store.events_of(record.uid), key=lambda r: r["RowKey"])
    ]
    return {"uid": record.uid, "events": events}


def redeliver(delivery_id: str, caller: Caller | None) -> dict[str, Any]:
    """Send a delivery again (whatever its state), with a fresh retry window; the same webhook-id."""
    found = store.parse_delivery_id(delivery_id)
    row = store.get_delivery(*found) if found else None
    if row is None or row.get("ownerKey") != store.owner_key(_owner(caller)):
        raise NotFound(f"no delivery {delivery_id[:60]!r} of this caller's subscriptions")
    sub = store.get_subscription(row["ownerKey"], row["subscription"])
    if sub is None or sub.disabled:
        raise ValidationFailed("the delivery's subscription is deleted or disabled: nothing to redeliver to")
    job_uid = found[0]
    row.update(state=PENDING, attemptCount=0, firstAttemptAt="", nextAttemptAt="", endReason="")
    row["redeliveredAt"] = clock.iso(clock.now())
    if not store.replace_delivery(row):
        raise ValidationFailed("the delivery changed meanwhile; ask again")
    dispatch.enqueue(sub.id, job_uid)
    return _delivery_view(job_uid, row)
