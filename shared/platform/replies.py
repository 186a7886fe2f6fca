"""HTTP replies as every function gives them: JSON bodies, and the app's error body for every failure.

The one module of `shared/` that shapes `azure.functions.HttpResponse`: function_app.py and the webhooks'
Blueprint both answer through it, so an error looks the same on every route.
"""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any, Callable

import azure.functions as func

from shared.platform.errors import ApiError, from_exception

log = logging.getLogger("function_app")
JSON = "application/json"
INTERNAL_ERROR = {
    "status": 500,
    "type": "InternalServerError",
    "message": "internal error; see the app's logs",
    "debug": "",
    "data": None,
}


def reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype=JSON, headers=headers)


def error(failure: Exception) -> func.HttpResponse:
    """The app's JSON error body: an ApiError as it says, storage trouble as 503, anything else a bare 500."""
    known = failure if isinstance(failure, ApiError) else from_exception(failure)
    if known is not None:
        return reply(known.body(), known.status, known.headers)
    # the type and where it happened, never the message (it could hold a secret)
    log.error("unhandled %s at\n%s", type(failure).__name__, "".join(traceback.format_tb(failure.__traceback__)))
    return reply(INTERNAL_ERROR, 500)


def page(answer: Any) -> func.HttpResponse:
    """A static page's `shared.platform.static.Answer` as the host's response."""
    headers = {**answer.headers, "Content-Type": answer.content_type}
    return func.HttpResponse(answer.body, status_code=answer.status, headers=headers)


def answer(work: Callable[[], Any], status: int = 200) -> func.HttpResponse:
    """Run `work`; its result as JSON (or as it is, if it is already a response), any failure as `error` says."""
    try:
        result = work()
    except Exception as failure:  # noqa: BLE001 - every error gets the JSON error body
        return error(failure)
    return result if isinstance(result, func.HttpResponse) else reply(result, status)
