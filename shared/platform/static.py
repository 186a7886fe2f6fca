"""Answers for the app's static pages (the dashboard, Swagger UI): files from the deployment, never data."""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


def not_found(message: str, headers: dict[str, str]) -> Answer:
    """The app's JSON 404 body (the old service's error shape), with the page's security headers."""
    body = {"status": 404, "type": "NotFoundException", "message": message, "debug": "", "data": None}
    return Answer(404, json.dumps(body).encode("utf-8"), "application/json", dict(headers))
