"""The OpenAPI 3.1 document, built from the registry (`shared.openapi.registry`) and the pydantic models.

Nothing here is written by hand but prose: paths come from the route templates (a parameter renamed where the
old service named it differently, an empty catch-all dropped), schemas from `pydantic.json_schema`, every
operation's replies, parameters and security from its registry entry.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.openapi.registry import JSON, OPERATIONS, SECURITY_SCHEMES, Body, Operation, Param, Reply

OPENAPI_VERSION = "3.1.0"
ROUTE_PREFIX = "api"  # host.json extensions.http.routePrefix (tests/e2e/test_openapi_e2e.py checks)
REF = "#/components/schemas/{model}"
_SEGMENT = re.compile(r"^\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}$")

DESCRIPTION = """\
Jobs of Equinor's Development Framework on Azure Functions: start a job from its entity (or, as the old DM-Job \
service did, from its DMSS address), follow its status and progress, stop it, fetch its result; recurring jobs \
on a cron schedule.

Every error is the old service's body `{"status", "type", "message", "debug", "data"}` (`ErrorResponse`). \
`percentage` is a fraction from 0 to 1. In Azure every route but health, progress, this document and Swagger UI \
needs a function key (`x-functions-key` header or `?code=`), and an Entra ID token when the app has Entra ID \
authentication on; the local host asks for neither.

Clients generated from the old service's document keep working with their base URL set to `<app>/api/jobs`; a \
client generated from this one takes `<app>/api`.
"""

TAGS = [
    {"name": "DMJobs", "description": "the old DM-Job service's operations, with its operationIds"},
    {"name": "jobs", "description": "starting jobs from an entity, listing them"},
    {"name": "schedules", "description": "recurring jobs"},
    {"name": "service", "description": "health, this document, Swagger UI"},
]


def document_path(operation: Operation) -> str:
    """The operation's path in the document: its route template, each parameter named as the document names it;
    a catch-all the operation documents no parameter for is dropped (it matches an empty rest)."""
    names = {p.route_name or p.name: p.name for p in operation.params if p.location == "path"}
    parts = []
    for segment in operation.route.strip("/").split("/"):
        match = _SEGMENT.match(segment)
        if match is None:
            parts.append(segment)
        elif match.group(2) in names:
            parts.append("{" + names[match.group(2)] + "}")
        elif not match.group(1):
            raise ValueError(f"{operation.operation_id}: route parameter {match.group(2)!r} is not documented")
    return "/" + "/".join(parts)


def _models(operations: Iterable[Operation]) -> list[tuple[type[BaseModel], str]]:
    wanted: dict[tuple[type[BaseModel], str], None] = {}
    for op in operations:
        for model in op.body.models if op.body else ():
            wanted[(model, "validation")] = None
        for reply in op.all_replies().values():
            if isinstance(reply.model, type):
                wanted[(reply.model, "serialization")] = None
    return list(wanted)


def _schemas(operations: Iterable[Operation]) -> tuple[dict[tuple[type[BaseModel], str], dict], dict[str, Any]]:
    refs, definitions = models_json_schema(_models(operations), ref_template=REF)
    return refs, definitions.get("$defs", {})


def _parameter(param: Param) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": param.name,
        "in": param.location,
        "required": param.required or param.location == "path",
        "schema": dict(param.schema),
    }
    if param.description:
        out["description"] = param.description
    if param.example is not None:
        out["example"] = param.example
    if param.allows_empty:
        out["allowEmptyValue"] = True
    return out


def _schema_of(model: Any, refs: dict, mode: str) -> dict[str, Any]:
    if isinstance(model, type):
        return dict(refs[(model, mode)])
    return dict(model)


def _reply(reply: Reply, refs: dict) -> dict[str, Any]:
    out: dict[str, Any] = {"description": reply.description}
    if reply.headers:
        out["headers"] = {
            name: {"description": text, "schema": {"type": "string"}} for name, text in reply.headers.items()
        }
    if reply.model is not None:
        out["content"] = {reply.media_type: {"schema": _schema_of(reply.model, refs, "serialization")}}
    if reply.links:
        out["links"] = {name: dict(link) for name, link in reply.links.items()}
    return out


def _body(body: Body, refs: dict) -> dict[str, Any]:
    schemas = [_schema_of(model, refs, "validation") for model in body.models]
    media: dict[str, Any] = {"schema": schemas[0] if len(schemas) == 1 else {"anyOf": schemas}}
    if body.examples:
        media["examples"] = {name: dict(example) for name, example in body.examples.items()}
    return {"description": body.description, "required": body.required, "content": {JSON: media}}


def _operation(op: Operation, refs: dict) -> dict[str, Any]:
    out: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "description": op.description,
        "tags": [op.tag],
    }
    if op.params:
        out["parameters"] = [_parameter(p) for p in op.params]
    if op.body is not None:
        out["requestBody"] = _body(op.body, refs)
    out["responses"] = {code: _reply(reply, refs) for code, reply in op.all_replies().items()}
    out["security"] = op.requirements()
    return out


def build(operations: Iterable[Operation] = OPERATIONS, *, version: str, title: str = "DM Job API") -> dict:
    operations = list(operations)
    refs, definitions = _schemas(operations)
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        item = paths.setdefault(document_path(op), {})
        method = op.method.lower()
        if method in item:
            raise ValueError(f"two operations for {op.method} {document_path(op)}")
        item[method] = _operation(op, refs)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version, "description": DESCRIPTION},
        "servers": [{"url": "/" + ROUTE_PREFIX, "description": "this app"}],
        "tags": TAGS,
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": dict(sorted(definitions.items())), "securitySchemes": SECURITY_SCHEMES},
    }
