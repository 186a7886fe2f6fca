"""A cold instance's first status read loads the storage SDKs and the job's own code, nothing else.

The DM web app's plugin polls a job's status every few seconds, so after a scale-out the first request is most
often `GET /api/jobs/{uid}`: it must not wait for the pydantic models, the runners, cron or webhooks, which only
starting a job or a recurring one needs (bench/bench_cold_start.py times it). Checked in a fresh interpreter
against Azurite.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from shared import service

from tests.integration.test_lifecycle_shell import NoOrchestrations

ROOT = Path(__file__).resolve().parents[2]
NOT_FOR_A_STATUS_READ = ["pydantic", "croniter", "standardwebhooks", "runners.registry", "shared.jobs.models"]
NOT_FOR_A_STATUS_READ_PACKAGES = ["shared.schedules", "shared.webhooks."]
DECLARATIONS = {"shared.webhooks.functions"}  # the webhooks' Blueprint: function_app registers it at import


def test_the_first_status_read_of_a_cold_instance_loads_only_what_it_needs(storage_env):
    job = {"type": "JOBCORE:Job", "label": "cold", "runner": {"type": "JOBCORE:Simulated", "durationSeconds": 60}}
    uid = service.start_job(job, caller=None, orchestrations=NoOrchestrations()).uid
    code = (
        "import sys, json, function_app\n"
        f"body = function_app.service.get_job({uid!r})\n"
        "print(json.dumps({'status': body['status'], 'modules': sorted(sys.modules)}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, env={**os.environ}
    )
    answer = json.loads(out.stdout.splitlines()[-1])
    loaded = set(answer["modules"])
    assert answer["status"] == "starting"
    assert "azure.data.tables" in loaded  # it did read the store
    assert [name for name in NOT_FOR_A_STATUS_READ if name in loaded] == []
    others = [name for name in loaded - DECLARATIONS if name.startswith(tuple(NOT_FOR_A_STATUS_READ_PACKAGES))]
    assert others == []
