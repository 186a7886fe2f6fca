"""What the OpenAPI document says about the webhooks' routes (shared/webhooks/functions.py).

shared/openapi/registry.py appends these to its OPERATIONS (its last lines import this module), so the document,
tests/e2e/test_openapi_e2e.py (registry = the app's functions, both ways) and the Schemathesis run cover them.
Import it only through the registry.
"""

from __future__ import annotations

from typing import Any

from shared.openapi.registry import JOB_UID, Body, Operation, Param, Reply, errors
from shared.webhooks.models import DELIVERY_STATES, EVENT_TYPES, SubscriptionCreate

_STRING_OR_NULL = {"type": ["string", "null"]}
SUBSCRIPTION: dict[str, Any] = {
    "type": "object",
    "required": ["id", "url", "events", "filter", "disabled"],
    "properties": {
        "id": {"type": "string"},
        "url": {"type": "string"},
        "events": {"type": "array", "items": {"type": "string", "enum": list(EVENT_TYPES)}},
        "filter": {"type": "object"},
        "description": _STRING_OR_NULL,
        "created": _STRING_OR_NULL,
        "disabled": {"type": "boolean"},
        "disabledReason": _STRING_OR_NULL,
    },
}
WITH_SECRET: dict[str, Any] = {
    **SUBSCRIPTION,
    "required": [*SUBSCRIPTION["required"], "secret"],
    "properties": {
        **SUBSCRIPTION["properties"],
        "secret": {"type": "string", "description": "the signing secret (whsec_...): shown here only"},
        "previousSecretsExpire": _STRING_OR_NULL,
    },
}
ATTEMPT = {
    "type": "object",
    "properties": {
        "at": {"type": "string"},
        "statusCode": {"type": ["integer", "null"]},
        "latencyMs": {"type": ["number", "null"]},
        "error": _STRING_OR_NULL,
        "response": {**_STRING_OR_NULL, "description": "the first 1 KB of the receiver's answer"},
    },
}
DELIVERY = {
    "type": "object",
    "required": ["id", "subscription", "state", "attempts"],
    "properties": {
        "id": {"type": "string"},
        "subscription": {"type": "string"},
        "state": {"type": "string", "enum": list(DELIVERY_STATES)},
        "attempts": {"type": "array", "items": ATTEMPT},
        "nextAttemptAt": _STRING_OR_NULL,
        "deliveredAt": _STRING_OR_NULL,
        "endReason": _STRING_OR_NULL,
    },
}
EVENTS = {
    "type": "object",
    "required": ["uid", "events"],
    "properties": {
        "uid": {"type": "string"},
        "events": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "description": "the webhook-id"},
                    "type": {"type": "string"},
                    "timestamp": {"type": "string"},
                    "deliveries": {"type": "array", "items": DELIVERY},
                },
            },
        },
    },
}
SUBSCRIPTION_ID = Param(
    "subscription_id",
    "path",
    {"type": "string", "minLength": 1},
    "the subscription's id",
    required=True,
    route_name="id",
)
DELIVERY_ID = Param(
    "delivery_id",
    "path",
    {"type": "string", "minLength": 1},
    "a delivery's id (from the events log)",
    required=True,
    route_name="id",
)
NOT_YOURS = "no such subscription of this caller (another owner's is not found either)"
EXAMPLE = {"url": "https://example.com/hooks/dm-job", "events": ["job.completed", "job.failed"]}
TAG = "webhooks"

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "subscription_create",
        "subscriptions",
        "POST",
        "create_subscription",
        "Subscribe to job events",
        "Events of the caller's own jobs are POSTed to `url`, signed by the Standard Webhooks specification. The "
        "answer holds the signing secret: shown here once, never again. In Azure the URL must be https and must "
        "not resolve to a loopback, link-local or private address (unless WEBHOOK_ALLOWED_HOSTS names it).",
        TAG,
        body=Body(
            (SubscriptionCreate,),
            "the receiver, the event types and an optional filter",
            {"hook": {"summary": "completed or failed", "value": EXAMPLE}},
        ),
        replies={
            "201": Reply("the subscription, with its secret", WITH_SECRET),
            **errors(
                "413",
                "503",
                e400="the body is not JSON",
                e422="an invalid subscription: unknown event type, bad filter, or a URL the safety rules refuse",
            ),
        },
    ),
    Operation(
        "subscription_list",
        "subscriptions",
        "GET",
        "list_subscriptions",
        "The caller's subscriptions",
        "Never with their secrets.",
        TAG,
        replies={
            "200": Reply(
                "the subscriptions",
                {"type": "object", "properties": {"subscriptions": {"type": "array", "items": SUBSCRIPTION}}},
            ),
            **errors("503"),
        },
    ),
    Operation(
        "subscription_get",
        "subscriptions/{id}",
        "GET",
        "get_subscription",
        "A subscription",
        "Without its secret; `disabled` after a receiver answered 410 Gone.",
        TAG,
        params=(SUBSCRIPTION_ID,),
        replies={"200": Reply("the subscription", SUBSCRIPTION), **errors("503", e404=NOT_YOURS)},
    ),
    Operation(
        "subscription_delete",
        "subscriptions/{id}",
        "DELETE",
        "delete_subscription",
        "Delete a subscription",
        "Its pending deliveries end as cancelled.",
        TAG,
        params=(SUBSCRIPTION_ID,),
        replies={
            "200": Reply(
                "deleted", {"type": "object", "properties": {"id": {"type": "string"}, "deleted": {"type": "boolean"}}}
            ),
            **errors("503", e404=NOT_YOURS),
        },
    ),
    Operation(
        "subscription_rotate",
        "subscriptions/{id}/rotate",
        "POST",
        "rotate_subscription_secret",
        "Rotate the signing secret",
        "A new secret (shown once). The previous one keeps signing besides it for WEBHOOK_SECRET_GRACE_SECONDS: "
        "each request then carries both signatures.",
        TAG,
        params=(SUBSCRIPTION_ID,),
        replies={"200": Reply("the subscription, with its new secret", WITH_SECRET), **errors("503", e404=NOT_YOURS)},
    ),
    Operation(
        "job_events",
        "jobs/{uid}/events",
        "GET",
        "job_events",
        "A job's events and their deliveries",
        "Each event (its webhook-id, type, time) and, per subscription, the delivery's state and every attempt "
        "(time, status code, latency, error, the first 1 KB of the answer). Whoever may read the job may read this.",
        TAG,
        params=(JOB_UID,),
        replies={"200": Reply("the events", EVENTS), **errors("400", "403", "404", "503")},
    ),
    Operation(
        "webhook_redeliver",
        "deliveries/{id}/redeliver",
        "POST",
        "redeliver",
        "Send a delivery again",
        "The same event under the same webhook-id, with a fresh retry window; to the subscription's owner only.",
        TAG,
        params=(DELIVERY_ID,),
        replies={
            "202": Reply("the delivery, pending again", DELIVERY),
            **errors(
                "503",
                e404="no such delivery of this caller's subscriptions",
                e422="its subscription is deleted or disabled",
            ),
        },
    ),
)
