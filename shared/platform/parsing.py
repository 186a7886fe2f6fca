"""What every route checks first: a strict JSON body within limits, a well-formed uid.

Kept apart from the job entity's validation (shared.jobs.validation, with its pydantic models and the runner
registry) so that a status read, which needs only these, does not load those on a cold instance.
"""

from __future__ import annotations

import json
import re
from typing import Any

from shared.platform.errors import BadRequest, PayloadTooLarge

MAX_BODY_BYTES = 1024 * 1024
_UID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


MAX_JSON_DEPTH = 64  # nesting of arrays/objects; far beyond any job entity, far below Python's recursion limit
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259 has no NaN or Infinity)")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _depth(text: str) -> int:
    """The deepest nesting of arrays and objects, outside strings; found before parsing, whose recursion would
    fail on hostile input long before the body's size limit."""
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _check_text(value: Any) -> None:
    """Lone surrogates (from `\\ud800` escapes) cannot be stored or passed to a process as UTF-8."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(
            "request body holds a lone UTF-16 surrogate (an unpaired \\uD800-\\uDFFF escape); "
            "text must be valid Unicode"
        ) from None


def parse_json(body: bytes | None, what: str = "request body") -> Any:
    """Strict JSON: UTF-8, no NaN/Infinity, finite numbers, bounded size and depth, valid Unicode."""
    if body is not None and len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"{what} is {len(body)} bytes; the limit is {MAX_BODY_BYTES} bytes (1 MiB)")
    if not body:
        raise BadRequest(f"{what} is empty; expected a JSON object")
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else str(body)
    except UnicodeDecodeError as error:
        raise BadRequest(f"{what} is not valid UTF-8 (byte {error.start})") from None
    if _depth(text) > MAX_JSON_DEPTH:
        raise BadRequest(f"{what} nests arrays/objects deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except ValueError as error:
        raise BadRequest(f"{what} is not valid JSON: {getattr(error, 'msg', None) or str(error)[:100]}") from None
    _check_text(value)
    return value


def check_uid(uid: str) -> str:
    if not _UID.match(uid or ""):
        raise BadRequest(f"malformed job uid {uid[:80]!r}: expected a UUID")
    return uid.lower()
