"""The API's OpenAPI 3.1 document and Swagger UI.

- `registry.py`: one entry per HTTP function of function_app.py and method: its route (as the decorator has
  it), operationId, parameters, body, replies, security;
- `models.py`: the pydantic models of the replies and of the progress report (the job entities are
  `shared.jobs.models`');
- `build.py`: the document, from the two;
- `swagger.py`: Swagger UI's page and files (from the npm package swagger-ui-dist, copied into
  static/swagger-ui by scripts/bootstrap.sh).

`document_json()` is what `GET /api/openapi.json` answers, built once per process.
"""

from __future__ import annotations

import copy
import functools
import json

from shared.openapi.build import build

API_VERSION = "2.0.0"  # the old DM-Job service was 1.7.0; pyproject.toml and dmjob carry the same


@functools.lru_cache(maxsize=1)
def _document() -> dict:
    return build(version=API_VERSION)


def document() -> dict:
    """The OpenAPI document (a copy: callers may change it)."""
    return copy.deepcopy(_document())


@functools.lru_cache(maxsize=1)
def document_json() -> bytes:
    """The document as `GET /api/openapi.json` sends it."""
    return json.dumps(_document(), indent=1).encode("utf-8")


__all__ = ["API_VERSION", "document", "document_json"]
