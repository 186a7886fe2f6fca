"""What the document says about each HTTP function of function_app.py: one `Operation` per function and method.

Each entry names its function and repeats its route template, methods and auth level exactly as the
`@app.route` decorator gives them; tests/e2e/test_openapi_e2e.py compares this registry with the app's own
function metadata (the bindings the worker hands the host), both ways, so neither can change alone. The rest is
what the decorators cannot say: parameters, bodies (pydantic models), replies with their status codes, security.

The five operations of the old DM-Job service keep its operationIds (`start_job`, `job_status`, `remove_job`,
`job_result`, `update_job_progress`: its FastAPI router, equinor/dm-job src/features/jobs/jobs.py), its
parameter names (`job_dmss_id`, `job_uid`, `overwrite_log` and the body `Progress`) and its models, so that
openapi-generator gives the DM web app's client (`DMJobsApi` in equinor/dm-core-packages,
packages/dm-core/src/services/api/configs/gen-job/api/dmjobs-api.ts: `startJob`, `jobStatus`, `removeJob`,
`jobResult`, `updateJobProgress`) the same methods and parameters again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from shared.jobs.models import Job, RecurringJob
from shared.jobs.status import JobStatus
from shared.openapi import models as m

JSON = "application/json"
UID_SCHEMA = {"type": "string", "format": "uuid"}
STATUSES = [s.value for s in JobStatus]


@dataclass(frozen=True)
class Param:
    name: str  # as the document names it
    location: str  # path | query | header
    schema: dict[str, Any]
    description: str = ""
    required: bool = False
    route_name: str | None = None  # a path parameter's name in the route template, when the document's differs
    example: Any = None

    @property
    def allows_empty(self) -> bool:
        """An optional query parameter may be sent empty: the Functions host drops empty query values (its
        ToRpcHttp), so the function sees none."""
        return self.location == "query" and not self.required


@dataclass(frozen=True)
class Reply:
    description: str
    model: type[BaseModel] | dict[str, Any] | None = m.ErrorResponse  # a model, a JSON schema, or None: no body
    media_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)  # name -> description (string values)
    links: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Body:
    models: tuple[type[BaseModel], ...]  # one, or the alternatives (anyOf)
    description: str
    examples: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"summary", "value"}
    required: bool = True


@dataclass(frozen=True)
class Operation:
    function: str  # the function's name in function_app.py
    route: str  # its route template, as `@app.route(route=...)` has it
    method: str
    operation_id: str
    summary: str
    description: str
    tag: str
    replies: dict[str, Reply]
    auth_level: str = "function"  # as the worker reports it: function | anonymous
    params: tuple[Param, ...] = ()
    body: Body | None = None
    security: tuple[dict[str, list[str]], ...] | None = None  # None: what auth_level implies

    def all_replies(self) -> dict[str, Reply]:
        """Its replies, and for a function-key route the host's own 401 (unless the operation says more)."""
        if self.auth_level == "anonymous" or "401" in self.replies:
            return dict(self.replies)
        return dict(sorted({**self.replies, "401": KEY_REFUSED}.items()))

    def requirements(self) -> list[dict[str, list[str]]]:
        if self.security is not None:
            return [dict(s) for s in self.security]
        return [] if self.auth_level == "anonymous" else [dict(s) for s in FUNCTION_KEY]


# ---- security ----------------------------------------------------------------------------------------------
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "functionKey": {
        "type": "apiKey",
        "in": "header",
        "name": "x-functions-key",
        "description": "A function key of the app (`az functionapp keys list`). Needed in Azure on "
        "every route but health, progress, the document and Swagger UI; the local "
        "host ignores keys unless DEVHOST_REQUIRE_KEYS=true.",
    },
    "functionKeyQuery": {
        "type": "apiKey",
        "in": "query",
        "name": "code",
        "description": "The same function key as a query parameter (it then shows in URLs "
        "and logs: prefer the header).",
    },
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An Entra ID token. Required besides the key when the app has Entra ID "
        "authentication on; it identifies the caller (`triggeredBy`, the job's owner). "
        "The DMSS start exchanges it at DMSS for the job's token; a job reporting "
        "progress may send its own token (JOB_TOKEN or DMSS_TOKEN) this way.",
    },
    "accessKey": {
        "type": "apiKey",
        "in": "header",
        "name": "Access-Key",
        "description": "A DMSS personal access token: the DMSS start uses it as the job's token; a job "
        "may present its own token (JOB_TOKEN or DMSS_TOKEN) this way.",
    },
}
FUNCTION_KEY = (
    {"functionKey": [], "bearer": []},
    {"functionKeyQuery": [], "bearer": []},
    {"functionKey": []},
    {"functionKeyQuery": []},
)
DMSS_CREDENTIALS = (
    {"functionKey": [], "accessKey": []},
    {"functionKey": [], "bearer": []},
    {"functionKeyQuery": [], "accessKey": []},
    {"functionKeyQuery": [], "bearer": []},
)
JOB_OR_OWNER = FUNCTION_KEY + ({"functionKey": [], "accessKey": []}, {"functionKeyQuery": [], "accessKey": []})
JOB_TOKEN = ({"bearer": []}, {"accessKey": []})


# ---- replies -----------------------------------------------------------------------------------------------
_ERRORS = {
    "400": "the request is malformed: a uid that is not a UUID, a body that is not JSON, a bad query value",
    "401": "no credentials where they are needed",
    "403": "the caller may not do this (only the job's starter may; progress needs the job's token)",
    "404": "no job with this uid",
    "409": "the job is not in a state for this",
    "413": "the body is over 1 MiB",
    "422": "a valid request whose content is refused: an invalid entity or value (`data` names what)",
    "502": "DMSS failed",
    "503": "storage (or DMSS) is not reachable for now; try again after Retry-After seconds",
}
RETRY_AFTER = {"Retry-After": "seconds to wait before trying again"}
KEY_REFUSED = Reply(
    "no valid function key (Azure; the local host checks keys only with DEVHOST_REQUIRE_KEYS=true): "
    "the Functions host answers before the app runs, with an empty body; with Entra ID "
    "authentication on, a missing or invalid token too",
    None,
)


def errors(*codes: str, **described: str) -> dict[str, Reply]:
    """The error replies of an operation: `errors("400", "404", e409="...")` (a keyword overrides the wording)."""
    out = {code: Reply(_ERRORS[code], headers=RETRY_AFTER if code == "503" else {}) for code in codes}
    for key, text in described.items():
        code = key.lstrip("e")
        out[code] = Reply(text, headers=RETRY_AFTER if code in ("409", "503") else {})
    return dict(sorted(out.items()))


def _links(*operation_ids: str) -> dict[str, dict[str, Any]]:
    """From a reply naming a job (`uid`) to what can be done with it next (the stateful tests follow these)."""
    return {op: {"operationId": op, "parameters": {"job_uid": "$response.body#/uid"}} for op in operation_ids}


JOB_LINKS = _links(
    "job_status",
    "job_result",
    "job_log",
    "remove_job",
    "update_job_progress",
    "schedule_preview",
    "suspend_schedule",
    "resume_schedule",
)
STARTED = "the job was accepted and is starting (a recurring job: registered)"
REPEATED = "a start with this Idempotency-Key was made before by the same caller: its job, nothing started"
LOCATION = {"Location": "the job's status URL, /api/jobs/{uid}"}


def _started(model: type[BaseModel]) -> dict[str, Reply]:
    return {
        "200": Reply(REPEATED, model, links=JOB_LINKS),
        "202": Reply(STARTED, model, headers=LOCATION, links=JOB_LINKS),
    }


# ---- parameters --------------------------------------------------------------------------------------------
JOB_UID = Param(
    "job_uid", "path", UID_SCHEMA, "the job's uid (from the start's reply)", required=True, route_name="uid"
)
IDEMPOTENCY_KEY = Param(
    "Idempotency-Key",
    "header",
    {"type": "string", "maxLength": 200},
    "a repeated start with the same key (same caller, 24 h) answers 200 with the first "
    "job and starts nothing; empty: no key",
)
DMSS_EXAMPLE_ADDRESS = "dmss://DemoDS/$3f1c2b9e-0d5a-4c1e-9b7a-6f2e8d4c1a00"
ECHO_JOB = {
    "type": "dmss://WorkflowDS/Blueprints/Job",
    "label": "Say hello",
    "runner": {"type": "dmss://Example/Blueprints/Echo", "message": "hello", "seconds": 1},
}
SHELL_JOB = {
    "type": "dmss://WorkflowDS/Blueprints/Job",
    "label": "Say hello",
    "runner": {"type": "JOBCORE:Shell", "script": "echo hello from $JOB_UID"},
}
RECURRING_JOB = {
    "type": "dmss://WorkflowDS/Blueprints/RecurringJob",
    "label": "Say hello every morning",
    "runner": {"type": "dmss://WorkflowDS/Blueprints/RecurringJobHandler"},
    "applicationInput": ECHO_JOB,
    "schedule": {
        "type": "dmss://WorkflowDS/Blueprints/CronJob",
        "cron": "30 7 * * mon-fri",
        "timezone": "Europe/Oslo",
        "runs": [],
    },
}

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "start_job",
        "jobs",
        "POST",
        "start_job_from_entity",
        "Start a job from the entity in the body",
        "Validates, stores and starts a Job entity (`dmss://WorkflowDS/Blueprints/Job`; `JOBCORE:` stands for "
        "`dmss://WorkflowDS/Blueprints/`), or registers a RecurringJob. Unknown attributes are kept. A refused "
        "start stores and starts nothing.",
        "jobs",
        params=(IDEMPOTENCY_KEY,),
        body=Body(
            (Job, RecurringJob),
            "a Job or a RecurringJob entity",
            {
                "echo": {
                    "summary": "a job on the Echo example runner (JOB_RUNNER_MODULES=examples.third_party_runner)",
                    "value": ECHO_JOB,
                },
                "shell": {"summary": "a shell job (local runners only: ENABLE_LOCAL_RUNNERS=true)", "value": SHELL_JOB},
                "recurring": {"summary": "a recurring job, weekday mornings in Oslo", "value": RECURRING_JOB},
            },
        ),
        replies={
            **_started(m.StartJobResponse),
            **errors(
                "400",
                "413",
                "503",
                e403="a local runner while ENABLE_LOCAL_RUNNERS is false",
                e409="a start with this Idempotency-Key is still in progress; ask again after Retry-After seconds",
                e422="the entity is invalid: a missing or wrong attribute, an invalid runner "
                "configuration or schedule, or no runner for `runner.type` (`data` lists the "
                "attributes)",
            ),
        },
    ),
    Operation(
        "start_job_from_dmss",
        "jobs/{*address}",
        "POST",
        "start_job",
        "Start a job from its DMSS address",
        "The old service's start: reads the Job (or RecurringJob) entity at the address from DMSS with the "
        "caller's DMSS credentials (an Access-Key, or a Bearer token exchanged at DMSS for a job token), "
        "runs it and writes its state back to the entity. The address is URL-encoded as the DM web app sends "
        "it (`dmss%3A%2F%2FDS%2F%24id`); plain, encoded twice and `DS/$id` forms work too.",
        "DMJobs",
        params=(
            Param(
                "job_dmss_id",
                "path",
                {"type": "string", "minLength": 1},
                "the job entity's DMSS address: `dmss://DS/$id`, `DS/$id.attr`, `DS/RootPackage/Sub/Entity`",
                required=True,
                route_name="address",
                example=DMSS_EXAMPLE_ADDRESS,
            ),
            IDEMPOTENCY_KEY,
        ),
        security=DMSS_CREDENTIALS,
        replies={
            **_started(m.StartJobResponse),
            **errors(
                "413",
                "502",
                "503",
                e400="a malformed address, or the entity is not a Job or RecurringJob",
                e401="no DMSS credentials (Access-Key or Bearer), or DMSS refused them (without a "
                "valid function key the Functions host answers 401 itself, with an empty body)",
                e403="DMSS refused access to the entity, or a local runner is disabled",
                e404="DMSS has no entity at this address",
                e409="a start with this Idempotency-Key is still in progress",
                e422="the entity is invalid (`data` lists the attributes)",
            ),
            "4XX": Reply("another refusal by DMSS, passed through with DMSS's status and message"),
        },
    ),
    Operation(
        "list_jobs",
        "jobs",
        "GET",
        "list_jobs",
        "List jobs, newest first",
        "One page of jobs (plain and recurring), newest first; pass `continuationToken` back for the next.",
        "jobs",
        params=(
            Param("status", "query", {"type": "string", "enum": STATUSES}, "only jobs with this status"),
            Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "page size"),
            Param("continuationToken", "query", {"type": "string"}, "from the previous page"),
        ),
        replies={
            "200": Reply("a page of jobs", m.ListJobsResponse),
            **errors("503", e400="an unknown status, a limit out of 1..1000, or a malformed token"),
        },
    ),
    Operation(
        "get_job",
        "jobs/{uid}",
        "GET",
        "job_status",
        "A job's status, log and progress",
        "One table read; it never calls the runner. The starter may read it, and so may the job itself with "
        "its token. `percentage` is a fraction from 0 to 1.",
        "DMJobs",
        params=(JOB_UID,),
        security=JOB_OR_OWNER,
        replies={"200": Reply("the job's status", m.StatusJobResponse), **errors("400", "403", "404", "503")},
    ),
    Operation(
        "report_progress",
        "jobs/{uid}",
        "PUT",
        "update_job_progress",
        "Progress reported by the job itself",
        "What the job containers send with their own token (JOB_TOKEN or DMSS_TOKEN, as Bearer or Access-Key); "
        "takes no function key. `percentage` and `status` apply when not null; `logs` are appended, or replace "
        "the reported log with `overwrite_log=true`. A refused report stores nothing.",
        "DMJobs",
        auth_level="anonymous",
        params=(
            JOB_UID,
            Param(
                "overwrite_log",
                "query",
                {"type": "boolean"},
                "true: `logs` replace the reported log; false: they are appended",
                required=True,
            ),
        ),
        body=Body(
            (m.Progress,),
            "the job's progress",
            {
                "progress": {
                    "summary": "40 %, one more log line",
                    "value": {"percentage": 0.4, "logs": "step 2 of 5", "status": "running"},
                }
            },
        ),
        security=JOB_TOKEN,
        replies={
            "200": Reply("stored", m.UpdateJobProgressResponse),
            **errors(
                "400",
                "404",
                "413",
                "503",
                e403="neither the job's token nor its starter",
                e422="overwrite_log missing or not a boolean, a percentage outside 0..1, a status "
                "that is not a job status (or a final one other than completed and failed), "
                "logs that are not a string or list of strings",
            ),
        },
    ),
    Operation(
        "stop_job",
        "jobs/{uid}",
        "DELETE",
        "remove_job",
        "Stop a job",
        "Stops the job on its runner and marks it `removed`; harmless to repeat, and a finished job stays as it "
        "is. For a recurring job: no further runs (`stopRunning=true` also stops the runs going on). Only the "
        "starter may.",
        "DMJobs",
        params=(
            JOB_UID,
            Param(
                "stopRunning",
                "query",
                {"type": "boolean", "default": False},
                "a recurring job: stop its runs going on too",
            ),
        ),
        replies={"200": Reply("stopped (or already ended)", m.DeleteJobResponse), **errors("400", "403", "404", "503")},
    ),
    Operation(
        "get_result",
        "jobs/{uid}/result",
        "GET",
        "job_result",
        "A finished job's result",
        "What the job wrote to $JOB_RESULT_FILE, or else the tail of its output. Only the starter may. With "
        "`attempt`, one attempt of a job with a retry policy: its result and its full log.",
        "DMJobs",
        params=(
            JOB_UID,
            Param(
                "attempt",
                "query",
                {"type": "integer", "minimum": 1, "maximum": 999},
                "an attempt of a job with a retry policy (1, 2, ...)",
            ),
        ),
        replies={
            "200": Reply("the result", m.GetJobResultResponse),
            **errors(
                "403",
                "503",
                e400="malformed uid or attempt",
                e404="no such job, or no such attempt",
                e409="the job (or the attempt) has not finished yet",
            ),
        },
    ),
    Operation(
        "get_job_log",
        "jobs/{uid}/log",
        "GET",
        "job_log",
        "A job's whole log",
        "The status shows a job's last lines; this is the whole log: the one stored when the job ended, or, while "
        "it runs, the runner's, read at this request (one runner call; the job's secret values scrubbed as in "
        "every log). Whoever may read the job may.",
        "DMJobs",
        params=(
            JOB_UID,
            Param(
                "tail",
                "query",
                {"type": "integer", "minimum": 1, "maximum": 100000},
                "only the last this many lines (default: all, up to 100,000)",
            ),
        ),
        replies={
            "200": Reply("the log", m.GetJobLogResponse),
            **errors("403", "404", "503", e400="malformed uid or tail"),
        },
    ),
    Operation(
        "schedule_preview",
        "jobs/{uid}/schedule",
        "GET",
        "schedule_preview",
        "Next fire times of a recurring job",
        "The next fire times in UTC and in the schedule's zone, each with its weekday there.",
        "schedules",
        params=(
            JOB_UID,
            Param("next", "query", {"type": "integer", "minimum": 1, "maximum": 100, "default": 5}, "how many"),
        ),
        replies={
            "200": Reply("the next fire times", m.SchedulePreview),
            **errors("403", "404", "503", e400="not a recurring job, or `next` out of 1..100"),
        },
    ),
    Operation(
        "schedule_suspend",
        "jobs/{uid}/suspend",
        "POST",
        "suspend_schedule",
        "Suspend a recurring job",
        "Stops firing; runs going on continue. Idempotent. Only the starter may.",
        "schedules",
        params=(JOB_UID,),
        replies={
            "200": Reply("the schedule", m.ScheduleView),
            **errors(
                "403",
                "404",
                "503",
                e400="a malformed uid, or not a recurring job",
                e409="the recurring job has ended or was removed",
            ),
        },
    ),
    Operation(
        "schedule_resume",
        "jobs/{uid}/resume",
        "POST",
        "resume_schedule",
        "Resume a recurring job",
        "Fires again from now on (fire times that fell while suspended are not run). Idempotent.",
        "schedules",
        params=(JOB_UID,),
        replies={
            "200": Reply("the schedule", m.ScheduleView),
            **errors(
                "403",
                "404",
                "503",
                e400="a malformed uid, or not a recurring job",
                e409="the recurring job has ended or was removed",
            ),
        },
    ),
    Operation(
        "schedule_run_now",
        "jobs/{uid}/run",
        "POST",
        "run_schedule_now",
        "Run a recurring job now",
        "Starts a run at once, for the schedule's owner, under its concurrencyPolicy (Forbid and BufferOne: 409 "
        "while a run is going, naming it; Replace stops the runs going on; Allow starts). The run history records "
        "it as `trigger: manual` with `requestedBy`. Only the starter (or whoever may write a DMSS job) may.",
        "schedules",
        params=(JOB_UID, IDEMPOTENCY_KEY),
        replies={
            "200": Reply(
                "a run was started with this Idempotency-Key before: that run, nothing started", m.StartJobResponse
            ),
            "202": Reply("the run is starting", m.StartJobResponse, headers={"Location": "the run's status URL"}),
            **errors(
                "403",
                "404",
                "503",
                e400="a malformed uid, not a recurring job, or an Idempotency-Key over 200 characters",
                e409="concurrencyPolicy Forbid or BufferOne and a run is going (`data.run` names it), or the "
                "recurring job has ended or was removed",
            ),
        },
    ),
    Operation(
        "schedule_backfill",
        "jobs/{uid}/backfill",
        "POST",
        "backfill_schedule",
        "Backfill a recurring job",
        "Queues one run per fire time in [from, to] (naive times in the schedule's zone), at most 1,000; a time a "
        "backfill queued or ran before, or the schedule ran already, is not started again. The runs follow the "
        "concurrencyPolicy (Forbid and BufferOne: one after another; Allow: up to 10 at once; Replace: only the "
        "last time). Progress shows in the schedule's `backfill`.",
        "schedules",
        params=(JOB_UID,),
        body=Body(
            (m.BackfillRequest,),
            "the range",
            {
                "day": {
                    "summary": "a day, in the schedule's zone",
                    "value": {"from": "2026-03-01T00:00", "to": "2026-03-01T23:59"},
                }
            },
        ),
        replies={
            "202": Reply("queued (and the first run started)", m.BackfillResponse),
            **errors(
                "403",
                "404",
                "413",
                "503",
                e400="a malformed uid, a body that is not JSON, or not a recurring job",
                e409="the recurring job has ended or was removed, or too many separate ranges are queued",
                e422="from or to missing or not a date-time, from after to, or more than 1,000 fire times",
            ),
        },
    ),
    Operation(
        "schedule_backfill_cancel",
        "jobs/{uid}/backfill",
        "DELETE",
        "cancel_backfill",
        "Cancel a recurring job's backfill",
        "Drops the fire times still queued; runs already started go on (stop one with DELETE /api/jobs/{run}).",
        "schedules",
        params=(JOB_UID,),
        replies={
            "200": Reply("cancelled", m.BackfillCancelResponse),
            **errors("403", "404", "503", e400="a malformed uid, or not a recurring job"),
        },
    ),
    Operation(
        "health",
        "health",
        "GET",
        "health",
        "Is storage reachable?",
        "Anonymous.",
        "service",
        auth_level="anonymous",
        replies={"200": Reply("healthy", m.HealthResponse), "503": Reply("storage is not reachable", m.HealthResponse)},
    ),
    Operation(
        "openapi_document",
        "openapi.json",
        "GET",
        "openapi_document",
        "This document",
        "OpenAPI 3.1, built from the app's route metadata and pydantic models. Anonymous: it shows routes only.",
        "service",
        auth_level="anonymous",
        replies={"200": Reply("the OpenAPI document", {"type": "object"})},
    ),
    Operation(
        "swagger_ui",
        "docs/{*file}",
        "GET",
        "swagger_ui",
        "Swagger UI",
        "Swagger UI (the swagger-ui-dist files shipped with the app) on this document. Anonymous: the page "
        "holds no data; calls made from it need the same keys and tokens as any other.",
        "service",
        auth_level="anonymous",
        replies={
            "200": Reply("the Swagger UI page", {"type": "string"}, media_type="text/html"),
            "404": Reply("the Swagger UI files are not installed (scripts/bootstrap.sh copies them)"),
        },
    ),
    Operation(
        "swagger_ui",
        "docs/{*file}",
        "GET",
        "swagger_ui_file",
        "Swagger UI's files",
        "The page's scripts, style sheet and icons.",
        "service",
        auth_level="anonymous",
        params=(
            Param(
                "file",
                "path",
                {"type": "string", "minLength": 1},
                "a file of Swagger UI",
                required=True,
                example="swagger-ui.css",
            ),
        ),
        replies={
            "200": Reply("the file", {"type": "string"}, media_type="*/*"),
            "404": Reply("no such file of Swagger UI"),
        },
    ),
    Operation(
        "dashboard_ui",
        "ui/{*file}",
        "GET",
        "dashboard",
        "The dashboard",
        "A web page of jobs, a job's log and schedules (static files shipped with the app). Anonymous: the page "
        "holds no data; the API calls it makes carry the caller's function key or sign-in like any other.",
        "service",
        auth_level="anonymous",
        replies={
            "200": Reply("the dashboard page", {"type": "string"}, media_type="text/html"),
            "304": Reply("unchanged since the ETag sent in If-None-Match", None),
        },
    ),
    Operation(
        "dashboard_ui",
        "ui/{*file}",
        "GET",
        "dashboard_file",
        "The dashboard's files",
        "Its ES modules, style sheet and icon, and config.json (where DMSS is, for links to a DMSS job's entity).",
        "service",
        auth_level="anonymous",
        params=(
            Param(
                "file",
                "path",
                {"type": "string", "minLength": 1},
                "a file of the dashboard",
                required=True,
                example="app.js",
            ),
        ),
        replies={
            "200": Reply("the file", {"type": "string"}, media_type="*/*"),
            "304": Reply("unchanged since the ETag sent in If-None-Match", None),
            "404": Reply("no such file of the dashboard"),
        },
    ),
)

# the webhooks' routes are declared next to them and build on the names above (hence imported last)
from shared.webhooks.openapi import OPERATIONS as _WEBHOOK_OPERATIONS  # noqa: E402

OPERATIONS = OPERATIONS + _WEBHOOK_OPERATIONS
