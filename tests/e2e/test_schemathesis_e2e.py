"""Schemathesis against the local host, from the app's own OpenAPI document (GET /api/openapi.json).

Every operation, with a bounded number of examples each (positive and negative data: the document's examples,
its coverage cases and random ones), then stateful sequences that follow the document's links (a start's `uid`
into status, progress, result, stop, schedule). Each answer must be no 5xx, have a documented status code and
content type, match its documented schema and headers, and a request the document calls invalid must be refused;
a refused request (4xx) stores nothing: no job row, listing row, Idempotency-Key claim, due-schedule row or
spilled entity appears. Last, with function keys checked as in Azure, every function-key route answers a call
without a key with the 401 the document lists.

The host runs the Echo example runner (examples/third_party_runner.py, which runs nothing on the machine) with
local runners off, so no generated entity can start a script; the schedule timer is left for January, so no
recurring job fires a run while a refusal is counted; a stand-in DMSS holds the entity the document's example
address names. FUZZ_EXAMPLES (default 20) bounds the random examples of each operation and STATEFUL_EXAMPLES
(default 20) the stateful scenarios; run with -s for the figures (cases per operation, phase and status).
"""

from __future__ import annotations

import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import hypothesis
import pytest
import requests
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.checks import ensure_resource_availability, negative_data_rejection

from devhost import DevHost
from shared.openapi import document
from shared.openapi.registry import DMSS_EXAMPLE_ADDRESS, ECHO_JOB
from shared.platform import storage
from shared.schedules.due_index import DUE_TABLE
from tests.standins.dmss import DmssStandIn

ROOT = Path(__file__).resolve().parents[2]
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
STATEFUL_EXAMPLES = int(os.environ.get("STATEFUL_EXAMPLES", "20"))
# the answer: no 5xx, a documented status, content type, schema and headers; and what the document refuses
# (negative data: a value outside its schema) is refused
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]
STORED_BY_A_START = ("Jobs", "JobIndex", "Idempotency", DUE_TABLE)
ECHO = {"type": "dmss://Example/Blueprints/Echo", "message": "hello from DMSS", "seconds": 0.2}
TALLY: dict[str, tuple[int, float]] = {}


@pytest.fixture(scope="module", autouse=True)
def tally():
    yield
    for key, (count, spent) in sorted(TALLY.items()):
        print(f"{key}: {count} cases, {spent:.1f} s in calls")
    print(f"refusals checked to have stored nothing: {LEDGER.checked}")


def _rows(name: str) -> int:
    return sum(1 for _ in storage.table(name).list_entities(select=["RowKey"]))


def _spilled() -> int:
    return sum(1 for blob in storage.container().list_blobs() if blob.name.endswith("/entity.json"))


POOL = ThreadPoolExecutor(len(STORED_BY_A_START) + 1, thread_name_prefix="stored")


def stored() -> tuple[int, ...]:
    """How many rows a start can add, per table, and spilled entities (blobs named entity.json); read in
    parallel (Azurite takes some 10 ms a query)."""
    counts = [POOL.submit(_rows, name) for name in STORED_BY_A_START] + [POOL.submit(_spilled)]
    return tuple(c.result() for c in counts)


class Ledger:
    """What is stored after the last request that may write (POST, PUT, DELETE); one of them refused must leave it
    as it is. GETs are not read after (they never write: any row one added would show at the next check).
    Nothing else adds rows meanwhile: jobs started earlier only update theirs, the schedule timer does not fire."""

    def __init__(self) -> None:
        self.known: tuple[int, ...] | None = None
        self.checked = 0

    def check(self, case, response) -> None:
        if case.operation.method.upper() == "GET":
            return
        now = stored()
        if response.status_code >= 400:
            self.checked += 1
            assert now == self.known, (
                f"a refused request ({response.status_code}) stored something (rows "
                f"{self.known} -> {now}): {case.operation.label} {response.text[:300]}"
            )
        self.known = now


LEDGER = Ledger()


@pytest.fixture(scope="module")
def dmss_standin():
    server = DmssStandIn().start()
    data_source, doc_id = DMSS_EXAMPLE_ADDRESS.removeprefix("dmss://").split("/$")
    server.add_data_source(data_source)
    server.put(
        data_source,
        {"type": "dmss://WorkflowDS/Blueprints/Job", "name": "fuzzed", "label": "from DMSS", "runner": ECHO},
        doc_id=doc_id,
        owner="fuzzer",
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fuzz_host(azurite, dmss_standin):
    prefix = "st" + os.urandom(4).hex()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AzureWebJobsStorage": azurite.connection_string,
            "JOB_STORE_PREFIX": prefix,
            "JOB_ORCHESTRATION_STORE_PREFIX": prefix + "h",
            "ENABLE_LOCAL_RUNNERS": "false",
            "JOB_RUNNER_MODULES": "examples.third_party_runner",
            "DMSS_URL": dmss_standin.url,
            "DMSS_TIMEOUT_SECONDS": "2",
            "JOB_MAX_RUN_SECONDS": "30",
            "SCHEDULE_TICK": "0 0 0 1 1 *",
        }.items():
            patch.setenv(name, value)
        patch.delenv("PUBLIC_DMSS_URL", raising=False)
        patch.delenv("DMSS_APP_ACCESS_KEY", raising=False)
        with DevHost(app_dir=ROOT, settings={"SCHEDULE_TICK": "0 0 0 1 1 *"}) as host:
            yield host


@pytest.fixture(autouse=True)
def schedule_tick_setting():
    """(tests/e2e/conftest.py's every-minute tick is not wanted here: this module's host has its own)"""


# The document the app serves (the fixture below checks that it is this one), loaded when the tests are collected
schema = schemathesis.openapi.from_dict(document())
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=FUZZ_EXAMPLES,
    deterministic=True,
    allow_x00=False,
)


@pytest.fixture(scope="module")
def target(fuzz_host, dmss_standin) -> dict:
    """Where the cases go: the local host's /api; every request carries a DMSS token, which identifies the caller
    (the owner of what it starts) and lets the DMSS start read the example entity."""
    served = requests.get(f"{fuzz_host.url}/api/openapi.json", timeout=30).json()
    assert served == document()
    token = dmss_standin.issue_token(subject="fuzzer", ttl_seconds=3600)
    return {"base_url": f"{fuzz_host.url}/api", "headers": {"Access-Key": token}}


def _count(key: str, spent: float = 0.0) -> None:
    count, total = TALLY.get(key, (0, 0.0))
    TALLY[key] = (count + 1, total + spent)


def _call_and_check(case, target: dict):
    if LEDGER.known is None:
        LEDGER.known = stored()
    started = time.perf_counter()
    response = case.call(**target)
    meta = case.meta
    _count(
        f"{case.operation.label} {meta.phase.name.value} {meta.generation.mode.value}"
        if meta
        else case.operation.label,
        time.perf_counter() - started,
    )
    _count(f"status {case.operation.label} {response.status_code}")
    LEDGER.check(case, response)
    case.validate_response(response, checks=CHECKS)
    return response


@schema.parametrize()
@hypothesis.settings(deadline=None, suppress_health_check=list(hypothesis.HealthCheck), derandomize=True, database=None)
def test_every_operation_answers_as_documented(case, target):
    _call_and_check(case, target)


def test_stateful_sequences_follow_the_links(target):
    class Workflow(schema.as_state_machine()):
        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(
                response, checks=[*CHECKS, ensure_resource_availability], transport_kwargs=kwargs or None
            )

        def call(self, case, **kwargs):
            # A repeated Idempotency-Key answers 200 where its first use answered 202: the same steps would
            # fill other bundles when hypothesis runs them again (the one-shot tests above cover the key)
            (case.headers or {}).pop("Idempotency-Key", None)
            if LEDGER.known is None:
                LEDGER.known = stored()
            response = case.call(**{**kwargs, **target})
            _count("stateful " + case.operation.label)
            _count(f"status stateful {case.operation.label} {response.status_code}")
            LEDGER.check(case, response)
            return response

    Workflow.run(
        settings=hypothesis.settings(
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=6,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
    )
    assert any(key.startswith("stateful") for key in TALLY)


# ---- function keys, as in Azure -----------------------------------------------------------------------------
def _minimal_case(operation):
    """A request each operation would take, but for credentials."""
    path = {"job_uid": str(uuid.uuid4()), "job_dmss_id": DMSS_EXAMPLE_ADDRESS, "file": "swagger-ui.css"}
    path |= {"subscription_id": "sub_" + "0" * 24, "delivery_id": "dlv_none"}  # webhooks: ids that name nothing
    names = {p.name for p in operation.path_parameters}
    bodies = {"POST /jobs": ECHO_JOB, "PUT /jobs/{job_uid}": {"percentage": 0.5}}
    body = bodies.get(operation.label)
    kwargs = {"media_type": "application/json", "body": body} if body is not None else {}
    query = {"overwrite_log": "false"} if operation.label == "PUT /jobs/{job_uid}" else {}
    return operation.Case(path_parameters={k: v for k, v in path.items() if k in names}, query=query, **kwargs)


def test_without_a_function_key_every_key_route_answers_its_documented_401(azurite, dmss_standin):
    """With keys checked as in Azure (DEVHOST_REQUIRE_KEYS), a call without a key gets the host's 401, which the
    document lists for every function-key operation; the same call with the key gets past the host."""
    key = "k" + uuid.uuid4().hex
    with pytest.MonkeyPatch.context() as patch:
        prefix = "sk" + os.urandom(4).hex()
        for name, value in {
            "AzureWebJobsStorage": azurite.connection_string,
            "JOB_STORE_PREFIX": prefix,
            "JOB_ORCHESTRATION_STORE_PREFIX": prefix + "h",
            "ENABLE_LOCAL_RUNNERS": "false",
            "JOB_RUNNER_MODULES": "examples.third_party_runner",
            "DMSS_URL": dmss_standin.url,
        }.items():
            patch.setenv(name, value)
        settings = {"SCHEDULE_TICK": "0 0 0 1 1 *", "DEVHOST_REQUIRE_KEYS": "true", "DEVHOST_FUNCTION_KEY": key}
        with DevHost(app_dir=ROOT, settings=settings) as keyed:
            base = f"{keyed.url}/api"
            for result in schema.get_all_operations():
                operation = result.ok()
                case = _minimal_case(operation)
                keyless = case.call(base_url=base)
                keyed_call = case.call(base_url=base, headers={"x-functions-key": key})
                needs_key = "401" in operation.definition.raw["responses"] and any(
                    "functionKey" in r for r in operation.definition.raw["security"]
                )
                if needs_key:
                    assert keyless.status_code == 401 and not keyless.content, operation.label
                    assert keyed_call.status_code != 401 or keyed_call.content, "past the host"
                    # the DMSS start documents its own 401 (no DMSS credentials, a JSON body); the host's has none
                    own_401 = "content" in operation.definition.raw["responses"]["401"]
                    case.validate_response(keyless, checks=[status_code_conformance] if own_401 else CHECKS)
                else:
                    assert keyless.status_code != 401, operation.label
                case.validate_response(keyed_call, checks=CHECKS)
