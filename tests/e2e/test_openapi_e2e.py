"""The OpenAPI document: valid OpenAPI 3.1, in step with the app's routes, compatible with the old DM-Job clients,
served at /api/openapi.json, and Swagger UI at /api/docs.

The old service's contract is re-declared here from its source, equinor/dm-job v1.7.0 (its FastAPI models in
src/features/jobs/use_cases/{start,status,delete,get_result,update}_job*.py, src/domain_classes/progress.py,
src/restful/responses.py ErrorResponse, src/services/job_handler_interface.py JobStatus; its router with the
operationIds in src/features/jobs/jobs.py), and from the DM web app's client generated from it
(equinor/dm-core-packages, packages/dm-core/src/services/api/configs/gen-job/api/dmjobs-api.ts: methods
`startJob(jobDmssId)`, `jobStatus(jobUid)`, `removeJob(jobUid)`, `jobResult(jobUid)`,
`updateJobProgress(jobUid, overwriteLog, progress)`, the class named after the router's tag `DMJobs`). The old
models' schemas are made by pydantic, as FastAPI made them; the comparison then asks what a generated client
needs: the same operationIds and tag, paths (under `/jobs`), parameter names and places, body and reply model
names, and reply schemas an old reader can read.
"""

from __future__ import annotations

import json
import re
from enum import Enum
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests
from openapi_spec_validator import validate
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from devhost.functions import FunctionIndex, load_app
from shared.openapi import API_VERSION, document, swagger
from shared.openapi.build import ROUTE_PREFIX, document_path
from shared.openapi.registry import OPERATIONS

ROOT = Path(__file__).resolve().parents[2]


# ---- the old service's models (equinor/dm-job v1.7.0), re-declared ------------------------------------------
class JobStatus(str, Enum):
    REGISTERED = "registered"
    NOT_STARTED = "not started"
    STARTING = "starting"
    RUNNING = "running"
    FAILED = "failed"
    COMPLETED = "completed"
    REMOVED = "removed"
    UNKNOWN = "unknown"


class StartJobResponse(BaseModel):
    uid: str
    message: str
    status: JobStatus


class StatusJobResponse(BaseModel):
    status: JobStatus
    log: list[str] | None
    percentage: float | None


class DeleteJobResponse(BaseModel):
    status: JobStatus
    response: str


class GetJobResultResponse(BaseModel):
    message: str
    result: str


class UpdateJobProgressResponse(BaseModel):
    response: str


class Progress(BaseModel):
    percentage: float | None
    logs: list[str] | str | None
    status: JobStatus | None


class ErrorResponse(BaseModel):
    status: int = 500
    type: str = "ApplicationException"
    message: str = "The requested operation failed"
    debug: str = "An unknown and unhandled exception occurred in the API"
    data: dict | None = None


OLD_MODELS = [
    StartJobResponse,
    StatusJobResponse,
    DeleteJobResponse,
    GetJobResultResponse,
    UpdateJobProgressResponse,
    Progress,
    ErrorResponse,
]
# (method, old path, operationId, the generated client's method and its parameters, body model, 200 model)
OLD_OPERATIONS = [
    ("post", "/{job_dmss_id}", "start_job", "startJob", ["jobDmssId"], None, "StartJobResponse"),
    ("get", "/{job_uid}", "job_status", "jobStatus", ["jobUid"], None, "StatusJobResponse"),
    ("delete", "/{job_uid}", "remove_job", "removeJob", ["jobUid"], None, "DeleteJobResponse"),
    ("get", "/{job_uid}/result", "job_result", "jobResult", ["jobUid"], None, "GetJobResultResponse"),
    (
        "put",
        "/{job_uid}",
        "update_job_progress",
        "updateJobProgress",
        ["jobUid", "overwriteLog", "progress"],
        "Progress",
        "UpdateJobProgressResponse",
    ),
]
OLD_PARAMETERS = {
    "job_dmss_id": ("path", True, {"string"}),
    "job_uid": ("path", True, {"string"}),
    "overwrite_log": ("query", True, {"boolean"}),
}
# Deliberate differences, each with its reason; anything else must match.
KNOWN = {
    # the error's details are the invalid attributes, a list: the old client types `data` as TS `object`,
    # which arrays are
    ("ErrorResponse", "data"): "a list of the invalid attributes, or an object, or null",
    # progress is a fraction from 0 to 1, as the DM web app shows it (Math.round(percentage * 100)%): the type
    # is the same number, its range is narrower and a value outside is a 422
    ("Progress", "percentage"): "a fraction 0..1",
}


def _old_schemas() -> dict:
    _, definitions = models_json_schema(
        [(m, "validation") for m in OLD_MODELS], ref_template="#/components/schemas/{model}"
    )
    return definitions["$defs"]


def _camel(name: str) -> str:
    head, *rest = re.split(r"[_\-\s]+", name)
    return head[:1].lower() + head[1:] + "".join(p[:1].upper() + p[1:] for p in rest)


class Schemas:
    def __init__(self, components: dict):
        self.components = components

    def resolve(self, schema: dict) -> dict:
        while "$ref" in schema:
            schema = self.components[schema["$ref"].rsplit("/", 1)[-1]]
        return schema

    def kinds(self, schema: dict) -> set[str]:
        """What values a schema takes, coarsely: JSON types, enum values, array item kinds; `any` for {}."""
        schema = self.resolve(schema)
        if "anyOf" in schema or "oneOf" in schema:
            return set().union(*(self.kinds(s) for s in schema.get("anyOf") or schema["oneOf"]))
        if "enum" in schema:
            return {f"enum:{v}" for v in schema["enum"]}
        kind = schema.get("type")
        if kind is None:
            return {"any"}
        out = set()
        for k in kind if isinstance(kind, list) else [kind]:
            if k == "array":
                out.add("array<" + ",".join(sorted(self.kinds(schema.get("items", {})))) + ">")
            else:
                out.add("number" if k == "integer" else k)
        return out


def _reply_compatible(old: Schemas, new: Schemas, old_name: str, new_schema: dict) -> list[str]:
    """An old reader of `old_name` can read what the new schema allows: each old attribute there, required when
    the old one was, taking no value the old one did not."""
    problems = []
    old_model, new_model = old.resolve({"$ref": old_name}), new.resolve(new_schema)
    for attr, old_attr in old_model["properties"].items():
        if attr not in new_model.get("properties", {}):
            problems.append(f"{old_name}.{attr} is gone")
            continue
        if attr in old_model.get("required", []) and attr not in new_model.get("required", []):
            problems.append(f"{old_name}.{attr} is no longer required")
        old_kinds, new_kinds = old.kinds(old_attr), new.kinds(new_model["properties"][attr])
        if "any" not in old_kinds and not new_kinds <= old_kinds and (old_name, attr) not in KNOWN:
            problems.append(f"{old_name}.{attr}: {sorted(new_kinds - old_kinds)} was not possible")
    return problems


def _body_compatible(old: Schemas, new: Schemas, old_name: str, new_schema: dict) -> list[str]:
    """What an old writer sends is still accepted: nothing newly required, each old attribute's values taken."""
    problems = []
    old_model, new_model = old.resolve({"$ref": old_name}), new.resolve(new_schema)
    for attr in new_model.get("required", []):
        if attr not in old_model.get("required", []):
            problems.append(f"{old_name}.{attr} is newly required")
    for attr, old_attr in old_model["properties"].items():
        new_attr = new_model.get("properties", {}).get(attr)
        if new_attr is None:
            if new_model.get("additionalProperties") is False:
                problems.append(f"{old_name}.{attr} is refused")
            continue
        old_kinds, new_kinds = old.kinds(old_attr), new.kinds(new_attr)
        if "any" not in new_kinds and not old_kinds <= new_kinds and (old_name, attr) not in KNOWN:
            problems.append(f"{old_name}.{attr}: {sorted(old_kinds - new_kinds)} no longer taken")
    return problems


# ---- the document ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def doc() -> dict:
    return document()


def test_the_document_is_valid_openapi_3_1(doc):
    validate(doc)  # openapi-spec-validator: the 3.1 meta-schema, references, parameters of each path
    assert doc["openapi"] == "3.1.0"
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)), "operationIds are unique"


def test_the_registry_is_the_apps_http_functions_both_ways():
    """Each HTTP function of function_app.py (as the worker indexes it) is documented with its own route, methods
    and auth level, and the registry names no function the app does not have."""
    app = {
        (f.name, f.trigger["route"], method.upper(), f.trigger.get("authLevel", "FUNCTION").lower())
        for f in FunctionIndex.from_app(load_app(ROOT)).of_type("httpTrigger")
        for method in f.trigger.get("methods") or []
    }
    documented = {(op.function, op.route, op.method, op.auth_level) for op in OPERATIONS}
    assert documented == app


def test_paths_are_the_route_templates_under_the_route_prefix(doc):
    host_json = json.loads((ROOT / "host.json").read_text())
    assert host_json["extensions"]["http"]["routePrefix"] == ROUTE_PREFIX
    assert doc["servers"][0]["url"] == "/" + ROUTE_PREFIX

    def shape(template: str) -> str:  # parameters anonymous: `jobs/{}/result`
        return re.sub(r"\{[^}]+\}", "{}", template.strip("/"))

    for op in OPERATIONS:
        path = document_path(op)
        assert doc["paths"][path][op.method.lower()]["operationId"] == op.operation_id
        route = shape(op.route)
        catch_all_left_out = "{*" in op.route and route.removesuffix("/{}") == shape(path)
        assert shape(path) == route or catch_all_left_out, (op.operation_id, path, op.route)


def test_every_operation_documents_its_replies_errors_and_security(doc):
    schemes = doc["components"]["securitySchemes"]
    assert schemes["functionKey"] == {
        **schemes["functionKey"],
        "type": "apiKey",
        "in": "header",
        "name": "x-functions-key",
    }
    assert schemes["functionKeyQuery"]["in"] == "query" and schemes["functionKeyQuery"]["name"] == "code"
    assert schemes["bearer"]["scheme"] == "bearer"
    assert schemes["accessKey"]["name"] == "Access-Key"
    for path, item in doc["paths"].items():
        for method, op in item.items():
            codes = set(op["responses"])
            assert any(c.startswith("2") for c in codes), (path, method)
            assert "security" in op, (path, method)
            if any("functionKey" in requirement for requirement in op["security"]):
                assert "401" in codes, (path, method)
            for code, reply in op["responses"].items():
                if code == "401" and "content" not in reply:
                    assert "function key" in reply["description"], "only the host's own 401 has no body"
                elif code.startswith(("4", "5")) and op["operationId"] != "health":
                    schema = reply["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (path, method, code)
            if path.startswith("/jobs/{job_uid}"):
                assert {"400", "404", "403"} <= codes, (path, method)
    anonymous = {op["operationId"] for item in doc["paths"].values() for op in item.values() if not op["security"]}
    assert anonymous == {"health", "openapi_document", "swagger_ui", "swagger_ui_file", "dashboard", "dashboard_file"}
    progress = doc["paths"]["/jobs/{job_uid}"]["put"]["security"]
    assert progress == [{"bearer": []}, {"accessKey": []}], "the job's own token, no function key"


def test_the_old_clients_operations_and_models_are_there_compatible(doc):
    old, new = Schemas(_old_schemas()), Schemas(doc["components"]["schemas"])
    assert old.kinds({"$ref": "JobStatus"}) == new.kinds({"$ref": "JobStatus"}), "the same statuses"
    problems: list[str] = []
    for method, old_path, operation_id, client_method, client_params, body, reply in OLD_OPERATIONS:
        op = doc["paths"]["/jobs" + old_path][method]
        assert op["operationId"] == operation_id and _camel(operation_id) == client_method
        assert op["tags"] == ["DMJobs"], "the generator names the client class after the tag: DMJobsApi"
        params = [p for p in op.get("parameters", []) if p["in"] in ("path", "query")]
        for p in params:
            if p["name"] in OLD_PARAMETERS:
                where, required, kinds = OLD_PARAMETERS[p["name"]]
                assert (p["in"], p["required"]) == (where, required), (operation_id, p["name"])
                assert new.kinds(p["schema"]) == kinds, (operation_id, p["name"])
            else:
                assert not p.get("required"), f"{operation_id}: a new required parameter {p['name']}"
        names = [_camel(p["name"]) for p in params if p["name"] in OLD_PARAMETERS]
        if body:
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            assert schema == {"$ref": f"#/components/schemas/{body}"}, "the body keeps its model (and name)"
            assert op["requestBody"]["required"] is True
            names.append(_camel(body))
            problems += _body_compatible(old, new, body, schema)
        assert names == client_params, operation_id
        successes = {c: r for c, r in op["responses"].items() if c.startswith("2")}
        assert "200" in successes or operation_id == "start_job"
        for code, success in successes.items():
            schema = success["content"]["application/json"]["schema"]
            assert schema == {"$ref": f"#/components/schemas/{reply}"}, (operation_id, code)
            problems += _reply_compatible(old, new, reply, schema)
        for code, error in op["responses"].items():
            if code.startswith("4") and "content" in error:  # (the host's own 401 has no body)
                problems += _reply_compatible(old, new, "ErrorResponse", error["content"]["application/json"]["schema"])
    assert sorted(set(problems)) == []


def test_the_comparison_catches_an_incompatible_change(doc):
    """The check above is not vacuous: a reply without `log`, `log` turned into a string, a new required body
    attribute and a refused old attribute are each reported."""
    old = Schemas(_old_schemas())
    components = json.loads(json.dumps(doc["components"]["schemas"]))
    status = components["StatusJobResponse"]
    del status["properties"]["percentage"]
    status["properties"]["log"] = {"type": "string"}
    components["Progress"]["required"] = ["status", "token"]
    components["Progress"]["additionalProperties"] = False
    del components["Progress"]["properties"]["logs"]
    new = Schemas(components)
    reply = _reply_compatible(old, new, "StatusJobResponse", {"$ref": "StatusJobResponse"})
    body = _body_compatible(old, new, "Progress", {"$ref": "Progress"})
    assert any("percentage is gone" in p for p in reply) and any("StatusJobResponse.log" in p for p in reply)
    assert any("token is newly required" in p for p in body) and any("logs is refused" in p for p in body)


def test_versions_agree():
    import dmjob

    pyproject = (ROOT / "pyproject.toml").read_text()
    assert dmjob.__version__ == API_VERSION
    assert (
        re.search(r'(?m)^version = "([^"]+)"', pyproject) is None
        or re.search(r'(?m)^version = "([^"]+)"', pyproject).group(1) == API_VERSION
    )


# ---- served by the app -------------------------------------------------------------------------------------
def test_the_app_serves_the_document_anonymously(host, doc):
    response = requests.get(f"{host.url}/api/openapi.json", timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == doc


def test_swagger_ui_is_served_from_the_shipped_files_on_the_document(host):
    assert swagger.installed(), "scripts/bootstrap.sh copies swagger-ui-dist into static/swagger-ui"
    for page_url in (f"{host.url}/api/docs", f"{host.url}/api/docs/"):
        page = requests.get(page_url, timeout=30)
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
        csp = page.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "<script>" not in page.text, "no inline script: the CSP allows none"
        spec = re.search(r'data-url="([^"]+)"', page.text).group(1)
        assert urljoin(page_url, spec) == f"{host.url}/api/openapi.json"
        for src in re.findall(r'(?:src|href)="([^"]+)"', page.text):
            asset = requests.get(urljoin(page_url, src), timeout=30)
            assert asset.status_code == 200, src
            assert asset.headers["X-Content-Type-Options"] == "nosniff"
    bundle = requests.get(f"{host.url}/api/docs/swagger-ui-bundle.js", timeout=30)
    assert bundle.headers["Content-Type"].startswith("text/javascript") and b"SwaggerUIBundle" in bundle.content
    init = requests.get(f"{host.url}/api/docs/init.js", timeout=30).text
    assert "validatorUrl: null" in init, "no call to the online validator"
    for name in ("../host.json", "..%2Fhost.json", "swagger-ui.js.map", "package.json", "..%2F..%2Ffunction_app.py"):
        refused = requests.get(f"{host.url}/api/docs/{name}", timeout=30)
        assert refused.status_code == 404, name
        assert set(refused.json()) == {"status", "type", "message", "debug", "data"}
        assert b"extensionBundle" not in refused.content and b"DFApp" not in refused.content
