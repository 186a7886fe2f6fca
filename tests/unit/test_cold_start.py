"""What importing function_app loads: the two SDKs and the declarations, not the code behind them.

The Functions host imports function_app.py at every cold start only to learn the functions; the code behind
them loads with the first request that uses it (shared.platform.lazy). bench/bench_cold_start.py measures the
time; this checks the cause, in a fresh interpreter.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shared.platform import lazy

ROOT = Path(__file__).resolve().parents[2]
#: loaded by requests, never by the import: pydantic models, the storage SDKs, cron, HTTP clients, the service
NOT_AT_IMPORT = [
    "pydantic",
    "azure.core",
    "azure.data.tables",
    "azure.storage.blob",
    "requests",
    "croniter",
    "standardwebhooks",
    "docker",
    "shared.service",
    "shared.jobs.models",
    "shared.jobs.activities",
    "shared.schedules.tick",
    "shared.webhooks.delivery",
    "runners.registry",
    "shared.openapi",
]


@pytest.fixture(scope="module")
def loaded_by_import() -> set[str]:
    code = "import sys, json, function_app; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.splitlines()[-1]))


@pytest.mark.parametrize("name", NOT_AT_IMPORT)
def test_importing_the_app_does_not_load(loaded_by_import, name):
    assert name not in loaded_by_import


def test_every_lazy_module_and_named_plugin_of_the_app_exists():
    """A misspelt name would otherwise show only at the first request that uses it."""
    import function_app
    from shared.jobs import access
    from shared.platform import hooks
    from shared.webhooks import functions as webhook_functions

    proxies = [v for m in (function_app, webhook_functions) for v in vars(m).values() if isinstance(v, lazy.LazyModule)]
    assert len(proxies) >= 10
    for proxy in proxies:
        assert proxy.__name__  # imports it
    specs = [*hooks._listeners._specs, *access._delegates._specs]
    for spec in specs:
        lazy.resolve(spec)
    names = {type(o).__name__ for o in [*hooks._listeners.all(), *access._delegates.all()]}
    assert {"DmssWriteBack", "DmssAccess"} <= names
