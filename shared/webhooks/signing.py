"""Secrets and signatures by the Standard Webhooks specification (standardwebhooks.com), with its own package.

Headers: `webhook-id` (the event's id: the same on every retry, so receivers de-duplicate on it),
`webhook-timestamp` (seconds, when this attempt is signed), `webhook-signature` (`v1,<base64 HMAC-SHA256 of
"id.timestamp.body">`). During a secret's rotation grace period the header carries one signature per valid
secret, space-separated, as the specification allows: a receiver still on the old secret verifies, and so does
one already on the new. The timestamp is wall time (`time.time()`), not the app's clock: receivers compare it
with their own clocks (the package refuses more than 5 minutes apart).
"""

from __future__ import annotations

import base64
import secrets as random_secrets
import time
from datetime import datetime, timezone
from typing import Any, Iterable

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    """`whsec_` + base64 of 32 random bytes: the form the standardwebhooks libraries take."""
    return SECRET_PREFIX + base64.b64encode(random_secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def valid_secrets(stored: Iterable[dict[str, Any]], now: datetime) -> list[str]:
    """The secrets to sign with now: the current one and any rotated one still within its grace period."""
    out = []
    for item in stored:
        expires = item.get("expires")
        if expires is None or datetime.fromisoformat(expires) > now:
            out.append(item["value"])
    return out


def headers(event_id: str, body: str, secrets: list[str], at: float | None = None) -> dict[str, str]:
    """The request headers of one attempt to deliver `body` (the exact bytes sent) signed with `secrets`."""
    if not secrets:
        raise ValueError("no valid signing secret")
    stamp = datetime.fromtimestamp(int(at if at is not None else time.time()), tz=timezone.utc)
    signatures = " ".join(Webhook(secret).sign(event_id, stamp, body) for secret in secrets)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(stamp.timestamp())),
        "webhook-signature": signatures,
        "Content-Type": "application/json",
    }
