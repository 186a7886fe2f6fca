"""(a) Every Bicep file parses (pycep-parser; there is no Bicep compiler here), and the modules fit together:
module paths exist, module parameters are declared and required ones given, referenced outputs exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.infra.bicep_support import INFRA, MAIN, bicep_files, load_parameters, parse

FILES = bicep_files()


def _id(path: Path) -> str:
    return str(path.relative_to(INFRA))


def test_templates_exist():
    names = {_id(p) for p in FILES}
    assert {"main.bicep", "app/api.bicep", "core/host/functions-flexconsumption.bicep"} <= names


@pytest.mark.parametrize("path", FILES, ids=_id)
def test_parses(path):
    parsed = parse(path)
    assert parsed.get("resources") or parsed.get("modules"), f"{_id(path)} declares nothing"


@pytest.mark.parametrize("path", FILES, ids=_id)
def test_no_spread_operator(path):
    """pycep-parser (and older Bicep) reject `...`; use union() instead."""
    code = "\n".join(re.sub(r"(^|\s)//.*$", "", line) for line in path.read_text().splitlines())
    assert "..." not in code


@pytest.mark.parametrize("path", FILES, ids=_id)
def test_resources_have_api_versions(path):
    for name, resource in parse(path).get("resources", {}).items():
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?", resource.get("api_version") or ""), (_id(path), name)


def _modules(path: Path):
    for name, module in parse(path).get("modules", {}).items():
        yield name, module


@pytest.mark.parametrize("path", FILES, ids=_id)
def test_modules_are_local_and_exist(path):
    """Local modules only: deployable without a registry, and testable here."""
    for name, module in _modules(path):
        assert module["type"] == "local", f"{_id(path)}: module {name} is not a local file"
        target = (path.parent / module["detail"]["path"]).resolve()
        assert target.is_file(), f"{_id(path)}: module {name} -> missing {target}"


def _module_params(module) -> dict:
    config = module["config"]
    if "condition" in config and "config" in config:
        config = config["config"]
    return config.get("params", {})


@pytest.mark.parametrize("path", FILES, ids=_id)
def test_module_parameters_match(path):
    for name, module in _modules(path):
        target = parse((path.parent / module["detail"]["path"]).resolve())
        declared = target.get("parameters", {})
        given = set(_module_params(module))
        unknown = given - set(declared)
        assert not unknown, f"{_id(path)}: module {name} gets undeclared parameters {sorted(unknown)}"
        required = {p for p, spec in declared.items() if "default" not in spec}
        missing = required - given
        assert not missing, f"{_id(path)}: module {name} lacks required parameters {sorted(missing)}"


@pytest.mark.parametrize("path", FILES, ids=_id)
def test_module_outputs_exist(path):
    modules = {name: (path.parent / m["detail"]["path"]).resolve() for name, m in _modules(path)}
    for symbol, output in re.findall(r"\b(\w+)\.outputs\.\??(\w+)", path.read_text()):
        assert symbol in modules, f"{_id(path)}: {symbol}.outputs.{output}: {symbol} is not a module"
        outputs = parse(modules[symbol]).get("outputs", {})
        assert output in outputs, f"{_id(path)}: module {symbol} has no output {output}"


def test_main_is_subscription_scoped_and_creates_the_resource_group():
    parsed = parse(MAIN)
    assert parsed["globals"]["scope"]["value"] == "subscription"
    groups = [r for r in parsed["resources"].values() if r["type"] == "Microsoft.Resources/resourceGroups"]
    assert groups


def test_parameters_file_matches_main():
    declared = parse(MAIN)["parameters"]
    given = load_parameters()
    assert not set(given) - set(declared), f"unknown parameters: {sorted(set(given) - set(declared))}"
    required = {p for p, spec in declared.items() if "default" not in spec}
    assert required <= set(given), f"required parameters missing: {sorted(required - set(given))}"
    assert given["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert given["location"]["value"] == "${AZURE_LOCATION}"
    for name, spec in given.items():
        value = spec.get("value")
        if isinstance(value, str) and "$" in value:
            assert re.fullmatch(r"\$\{[A-Z][A-Z0-9_]*(=[^}]*)?\}", value), f"{name}: not an azd ${{VAR}}: {value}"


def test_allowed_values_of_switches():
    params = parse(MAIN)["parameters"]

    def allowed(name):
        return next(d["argument"] for d in params[name]["decorators"] if d["type"] == "allowed")

    assert allowed("durableBackend") == ["AzureStorage", "DurableTaskScheduler"]
    assert params["durableBackend"]["default"] == "AzureStorage"
    assert params["enableEntraAuth"]["default"] is False
    assert params["vnetEnabled"]["default"] is False
