"""Where webhooks are kept: four tables (names prefixed by JOB_STORE_PREFIX).

- `WebhookSubscriptions`: PartitionKey = a hash of the owner's caller id, RowKey = subscription id. An owner's
  subscriptions are one partition: a listener reads them with one query, and a GET by id is a point read in the
  caller's own partition, so another owner's subscription is simply not found. A job's notify targets
  (notify.py, `ntf_` ids) are in `n` + that hash: the owner's, but not among the subscriptions.
- `WebhookEvents`: PartitionKey = job uid, RowKey = `<rank>-<type>`: a job's events in the order they happened.
  The row holds the exact body sent (`payload`), so every retry sends the same bytes.
- `WebhookDeliveries`: PartitionKey = job uid, RowKey = `<event row key>~<subscription id>`: one row per event and
  subscription, with its state and attempts (kept under the table's property limit).
- `WebhookOutbox`: PartitionKey = "due", RowKey = `<subscription id>~<job uid>`: a (subscription, job) whose
  delivery orchestration is to be started. Written before the start is tried and removed (ETag-guarded) once a
  start has been accepted, so a start that is lost is made by the minute timer.

Every insert that must happen once (an event, a delivery) is a create: a listener that runs twice gets 409 and
writes nothing the second time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any, Iterator

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.platform import storage
from shared.webhooks.models import Subscription

OUTBOX_PARTITION = "due"
MAX_ATTEMPTS_CHARS = 30_000  # the attempts' JSON stays under a table string property's limit


def owner_key(owner: str | None) -> str:
    return hashlib.sha256(f"owner:{owner or ''}".encode()).hexdigest()[:32]


def _table(suffix: str):
    return storage.table(suffix)


# ---- subscriptions -----------------------------------------------------------------------------------------
def partition(owner_partition: str, sub_id: str) -> str:
    """A job's notify targets (`ntf_` ids) are kept beside their owner's subscriptions, not among them (the
    listener's query and the API's list see only the owner's own)."""
    return "n" + owner_partition if sub_id.startswith("ntf_") else owner_partition


def _subscription_row(sub: Subscription) -> dict[str, Any]:
    return {
        "PartitionKey": partition(owner_key(sub.owner), sub.id),
        "RowKey": sub.id,
        "owner": sub.owner,
        "url": sub.url,
        "events": json.dumps(sub.events),
        "filter": json.dumps(sub.filter),
        "description": sub.description or "",
        "created": sub.created,
        "disabled": sub.disabled,
        "disabledReason": sub.disabled_reason or "",
        "secrets": json.dumps(sub.secrets),
        "signWith": sub.sign_with or "",
    }


def _subscription(row: dict[str, Any]) -> Subscription:
    return Subscription(
        id=row["RowKey"],
        owner=row.get("owner") or "",
        url=row["url"],
        events=json.loads(row.get("events") or "[]"),
        filter=json.loads(row.get("filter") or "{}"),
        description=row.get("description") or None,
        created=row.get("created"),
        disabled=bool(row.get("disabled")),
        disabled_reason=row.get("disabledReason") or None,
        secrets=json.loads(row.get("secrets") or "[]"),
        sign_with=row.get("signWith") or None,
    )


def save_subscription(sub: Subscription) -> None:
    _table("WebhookSubscriptions").upsert_entity(_subscription_row(sub), mode=UpdateMode.REPLACE)


def add_subscription(sub: Subscription) -> bool:
    """Insert once (a job's notify target: its first event writes it, later ones find it; a 410 since stays)."""
    try:
        _table("WebhookSubscriptions").create_entity(_subscription_row(sub))
    except ResourceExistsError:
        return False
    return True


def get_subscription(owner_partition: str, sub_id: str) -> Subscription | None:
    try:
        return _subscription(_table("WebhookSubscriptions").get_entity(partition(owner_partition, sub_id), sub_id))
    except ResourceNotFoundError:
        return None


def subscriptions_of(owner: str | None) -> list[Subscription]:
    query = f"PartitionKey eq '{owner_key(owner)}'"
    return [_subscription(row) for row in _table("WebhookSubscriptions").query_entities(query)]


def delete_subscription(owner: str | None, sub_id: str) -> bool:
    if get_subscription(owner_key(owner), sub_id) is None:
        return False
    try:
        _table("WebhookSubscriptions").delete_entity(owner_key(owner), sub_id)
    except ResourceNotFoundError:
        return False
    return True


# ---- events and deliveries ---------------------------------------------------------------------------------
def add_event(job_uid: str, row_key: str, values: dict[str, Any]) -> bool:
    """Insert the event once; False if it was there already."""
    try:
        _table("WebhookEvents").create_entity({"PartitionKey": job_uid, "RowKey": row_key, **values})
    except ResourceExistsError:
        return False
    return True


def get_event(job_uid: str, row_key: str) -> dict[str, Any] | None:
    try:
        return dict(_table("WebhookEvents").get_entity(job_uid, row_key))
    except ResourceNotFoundError:
        return None


def events_of(job_uid: str) -> list[dict[str, Any]]:
    return [dict(row) for row in _table("WebhookEvents").query_entities(f"PartitionKey eq '{job_uid}'")]


def add_delivery(job_uid: str, row_key: str, values: dict[str, Any]) -> bool:
    try:
        _table("WebhookDeliveries").create_entity({"PartitionKey": job_uid, "RowKey": row_key, **values})
    except ResourceExistsError:
        return False
    return True


def get_delivery(job_uid: str, row_key: str) -> dict[str, Any] | None:
    try:
        row = _table("WebhookDeliveries").get_entity(job_uid, row_key)
    except ResourceNotFoundError:
        return None
    out = dict(row)
    out["_etag"] = row.metadata.get("etag")
    return out


def replace_delivery(row: dict[str, Any]) -> bool:
    """Write a delivery read earlier, only if unchanged since (False: it changed; read it again)."""
    values = {k: v for k, v in row.items() if k != "_etag"}
    attempts = json.loads(values.get("attempts") or "[]")
    while len(json.dumps(attempts)) > MAX_ATTEMPTS_CHARS and len(attempts) > 1:
        attempts = attempts[1:]
    values["attempts"] = json.dumps(attempts)
    try:
        meta = _table("WebhookDeliveries").update_entity(
            values, mode=UpdateMode.REPLACE, etag=row["_etag"], match_condition=MatchConditions.IfNotModified
        )
    except (ResourceModifiedError, ResourceNotFoundError):
        return False
    row["_etag"] = meta.get("etag")
    return True


def deliveries_of(job_uid: str, sub_id: str | None = None) -> list[dict[str, Any]]:
    query = f"PartitionKey eq '{job_uid}'"
    if sub_id:
        query += f" and subscription eq '{sub_id}'"
    rows = _table("WebhookDeliveries").query_entities(query)
    return sorted((dict(row) for row in rows), key=lambda r: r["RowKey"])


def delivery_id(job_uid: str, row_key: str) -> str:
    """An opaque, URL-safe id naming the delivery's row."""
    return "dlv_" + base64.urlsafe_b64encode(f"{job_uid}|{row_key}".encode()).decode().rstrip("=")


def parse_delivery_id(value: str) -> tuple[str, str] | None:
    if not value.startswith("dlv_") or len(value) > 400:
        return None
    text = value[4:]
    try:
        decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    job_uid, sep, row_key = decoded.partition("|")
    if not sep or not job_uid or not row_key or "'" in job_uid:
        return None
    return job_uid, row_key


# ---- outbox --------------------------------------------------------------------------------------------------
def outbox_key(sub_id: str, job_uid: str) -> str:
    return f"{sub_id}~{job_uid}"


def mark_due(sub_id: str, job_uid: str) -> str | None:
    """Note that (subscription, job) has deliveries to make; returns the row's ETag."""
    meta = _table("WebhookOutbox").upsert_entity(
        {"PartitionKey": OUTBOX_PARTITION, "RowKey": outbox_key(sub_id, job_uid)}, mode=UpdateMode.REPLACE
    )
    return meta.get("etag")


def due(limit: int = 1000) -> Iterator[dict[str, Any]]:
    rows = _table("WebhookOutbox").query_entities(f"PartitionKey eq '{OUTBOX_PARTITION}'", results_per_page=limit)
    for count, row in enumerate(rows):
        if count >= limit:
            return
        out = dict(row)
        out["_etag"] = row.metadata.get("etag")
        yield out


def clear_due(row_key: str, etag: str | None) -> None:
    """Remove the outbox row if nobody marked it again since `etag` (then the next start picks that up)."""
    try:
        _table("WebhookOutbox").delete_entity(
            OUTBOX_PARTITION, row_key, etag=etag, match_condition=MatchConditions.IfNotModified
        )
    except (ResourceNotFoundError, ResourceModifiedError):
        pass
