"""(i) azure.yaml points azd at this function app; (j) the Azure runtime is the Python the code runs on."""

from __future__ import annotations

import re
import sys

from tests.infra.bicep_support import AZURE_YAML, FLEX, MAIN, ROOT, module_params, parse


def azure_yaml() -> dict:
    """A small reader for azure.yaml's shape (no PyYAML dependency): top-level keys and the services map."""
    data: dict = {"services": {}}
    service = None
    section = None
    for raw in AZURE_YAML.read_text().splitlines():
        line = raw.split(" #", 1)[0].rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        key, _, value = line.strip().partition(":")
        value = value.strip().strip("'\"")
        if indent == 0:
            if value:
                data[key] = value
            else:
                data.setdefault(key, {})
            section = key
        elif section == "services" and indent == 2:
            service = data["services"].setdefault(key, {})
        elif section == "services" and indent == 4 and service is not None:
            service[key] = value
        elif section == "metadata" and indent == 2:
            data["metadata"][key] = value
    return data


def test_azure_yaml_describes_the_function_app():
    data = azure_yaml()
    assert data["name"]
    assert data["metadata"].get("template")
    api = data["services"]["api"]
    assert api == {"project": ".", "language": "python", "host": "function"}


def test_project_path_holds_the_function_app():
    project = (ROOT / azure_yaml()["services"]["api"]["project"]).resolve()
    assert (project / "function_app.py").is_file(), "azure.yaml project has no function_app.py"
    assert (project / "host.json").is_file()
    assert (project / "requirements.txt").is_file()
    assert "azure-functions-worker" not in (project / "requirements.txt").read_text()


def test_function_app_is_tagged_as_the_azd_service():
    api = (ROOT / "infra" / "app" / "api.bicep").read_text()
    assert "param serviceName string = 'api'" in api
    assert "'azd-service-name': serviceName" in api
    assert "api" in azure_yaml()["services"]


def test_runtime_is_python_3_11_like_the_code():
    params = module_params(parse(MAIN), "api")
    assert params["runtimeName"] == "python"
    version = params["runtimeVersion"]
    assert version == "3.11"
    assert version == f"{sys.version_info.major}.{sys.version_info.minor}", (
        "the tests run on another Python than the one deployed"
    )
    allowed = next(
        d["argument"] for d in parse(FLEX)["parameters"]["runtimeVersion"]["decorators"] if d["type"] == "allowed"
    )
    assert version in allowed
    requirements = (ROOT / "requirements.txt").read_text()
    match = re.search(r"azure-functions\s*>=[^,\n]*,\s*<\s*1\.(\d+)", requirements)
    if match:  # azure-functions 2.x needs Python 3.13: the pin must stay below it on 3.11
        assert int(match.group(1)) <= 27


def test_outputs_azd_needs():
    outputs = parse(MAIN)["outputs"]
    for name in (
        "AZURE_LOCATION",
        "AZURE_TENANT_ID",
        "AZURE_RESOURCE_GROUP",
        "SERVICE_API_NAME",
        "AZURE_FUNCTION_NAME",
        "SERVICE_API_URI",
    ):
        assert name in outputs
