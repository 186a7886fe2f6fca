"""Helpers for the infra tests: parse Bicep with pycep-parser and find what the templates set."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any, Iterator

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"
API = INFRA / "app" / "api.bicep"
FLEX = INFRA / "core" / "host" / "functions-flexconsumption.bicep"
PARAMETERS = INFRA / "main.parameters.json"
AZURE_YAML = ROOT / "azure.yaml"

#: the app settings of the function app are the keys of variables with this suffix in infra/app/api.bicep
APP_SETTINGS_VAR_SUFFIX = "AppSettings"


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@functools.lru_cache(maxsize=1)
def _parser() -> BicepParser:
    return BicepParser(cache=False)  # building the grammar takes a while: once per run


@functools.lru_cache(maxsize=None)
def parse(path: Path) -> dict[str, Any]:
    return _parser().parse(file_path=path)


def unquote(key: str) -> str:
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == "'" else key


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def object_keys(node: Any) -> set[str]:
    """Keys of an object literal (nested conditionals and unions included), quotes removed."""
    keys: set[str] = set()
    if isinstance(node, dict):
        if set(node) <= {"operator", "function"}:  # an expression: look inside
            for child in node.values():
                keys |= object_keys(child)
            return keys
        for key, value in node.items():
            if key in ("operator", "function", "operands", "parameters", "type"):
                keys |= object_keys(value)
            else:
                keys.add(unquote(key))
    elif isinstance(node, list):
        for item in node:
            keys |= object_keys(item)
    return keys


def app_setting_variables() -> dict[str, dict[str, Any]]:
    """{variable name: parsed value} of the app-settings variables of infra/app/api.bicep."""
    variables = parse(API)["variables"]
    return {name: var["value"] for name, var in variables.items() if name.endswith(APP_SETTINGS_VAR_SUFFIX)}


def app_settings_set() -> set[str]:
    """Names of every app setting the template can set (all groups, conditional ones included)."""
    names: set[str] = set()
    for value in app_setting_variables().values():
        if isinstance(value, dict) and not (set(value) <= {"operator", "function"}):
            names |= {unquote(k) for k in value}
    return names


_ASSIGNMENT = re.compile(r"^\s*'?(?P<name>[A-Za-z_][A-Za-z0-9_]*)'?\s*:\s*(?P<value>.+?)\s*$")


def app_setting_sources() -> dict[str, str]:
    """{setting: the Bicep expression assigned to it, as written} from the app-settings variables' source."""
    text = API.read_text()
    sources: dict[str, str] = {}
    block = None
    for line in text.splitlines():
        start = re.match(r"^var (\w+" + APP_SETTINGS_VAR_SUFFIX + r") = \{\s*$", line)
        if start:
            block = start.group(1)
            continue
        if block and line.strip() == "}":
            block = None
            continue
        if block:
            match = _ASSIGNMENT.match(line)
            if match:
                sources[match.group("name")] = match.group("value")
    return sources


def string_literal(expression: str) -> str | None:
    """The value of a plain Bicep string literal without interpolation ('x'), else None."""
    match = re.fullmatch(r"'((?:[^'\\$]|\\.)*)'", expression.strip())
    return match.group(1) if match else None


def module_params(parsed: dict[str, Any], module: str) -> dict[str, Any]:
    config = parsed["modules"][module]["config"]
    if "condition" in config and "config" in config:
        config = config["config"]
    return config["params"]


def load_parameters() -> dict[str, Any]:
    return json.loads(PARAMETERS.read_text())["parameters"]
