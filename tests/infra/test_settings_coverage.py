"""One list of settings: shared/platform/settings.py is the list; the Bicep app settings, the code's reads and
local.settings.json.example must agree with it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from shared.platform import settings
from tests.infra.bicep_support import (
    API,
    FLEX,
    MAIN,
    ROOT,
    app_setting_sources,
    app_settings_set,
    module_params,
    parse,
    string_literal,
)

#: Declared settings the template deliberately does not set, with the reason.
NOT_SET_IN_AZURE = {
    "AzureWebJobsStorage": "connection string with a key; Azure uses the identity-based AzureWebJobsStorage__* "
    "settings (shared keys are disabled on the account)",
    "JOB_ORCHESTRATION_STORE_PREFIX": "read by the local host (devhost) only; in Azure the Durable extension keeps "
    "its own history (task hub)",
    "DOCKER_HOST": "local container runner only; local runners are off in Azure",
    "JOB_WORK_DIR": "shell/local runners' working directories only; local runners are off in Azure",
}

#: Declared settings the template sets in another place than the app settings.
SET_ELSEWHERE = {
    "FUNCTIONS_WORKER_RUNTIME": "Flex Consumption rejects it as an app setting: functionAppConfig.runtime.name",
}

#: Cloud values the template must use although shared/platform/settings.py declares none (propose adding `cloud=`).
CLOUD_VALUES_NOT_DECLARED = {
    "AzureWebJobsStorage__credential": "managedidentity",
}

#: Environment variables the code may read directly although they are not app settings, with the reason.
PLATFORM_VARIABLES = {
    "WEBSITE_SITE_NAME": "set by App Service: tells shared/platform/identity.py it runs on App Service",
    "WEBSITE_AUTH_ENABLED": "set by App Service when App Service Authentication is on (shared/platform/identity.py)",
}

CODE_PATHS = [ROOT / "shared", ROOT / "runners", ROOT / "function_app.py"]

SETTINGS_READ = re.compile(r"""\bsettings\.get(?:_bool|_int|_float|_list)?\(\s*["']([^"']+)["']""")
ENV_READ = re.compile(
    r"""\bos\.(?:environ\.get|environ\.setdefault|getenv|environ\.pop)\(\s*["']([^"']+)["']"""
    r"""|\bos\.environ\[\s*["']([^"']+)["']\s*\]"""
)


def code_files() -> list[Path]:
    files: list[Path] = []
    for path in CODE_PATHS:
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(sorted(path.rglob("*.py")))
    return [f for f in files if f != ROOT / "shared" / "settings.py"]


# --- (b) every declared setting is set by the template ----------------------------------------------------------


def test_exemptions_are_declared_settings():
    for name in {**NOT_SET_IN_AZURE, **SET_ELSEWHERE}:
        assert name in settings.BY_NAME, f"exemption {name} is not declared in shared/platform/settings.py"


def test_every_declared_setting_is_set_by_the_template():
    set_by_template = app_settings_set()
    missing = [
        s.name
        for s in settings.SETTINGS
        if s.name not in set_by_template and s.name not in NOT_SET_IN_AZURE and s.name not in SET_ELSEWHERE
    ]
    assert not missing, (
        f"settings declared in shared/platform/settings.py but not set in infra/app/api.bicep: {missing}"
    )


def test_exempt_settings_are_not_set():
    set_by_template = app_settings_set()
    assert not set(NOT_SET_IN_AZURE) & set_by_template
    assert "FUNCTIONS_WORKER_RUNTIME" not in set_by_template
    assert "AzureWebJobsStorage" not in set_by_template  # the connection string must not exist in Azure
    for path in (API, FLEX, MAIN):
        assert not re.search(r"\bAzureWebJobsStorage\s*:", path.read_text()), path


def test_worker_runtime_is_set_through_function_app_config():
    flex = FLEX.read_text()
    assert re.search(r"runtime:\s*\{\s*name:\s*runtimeName\s*version:\s*runtimeVersion\s*\}", flex)
    params = module_params(parse(MAIN), "api")
    assert params["runtimeName"] == settings.BY_NAME["FUNCTIONS_WORKER_RUNTIME"].default == "python"


def test_plain_values_are_the_declared_cloud_or_default_values():
    """A setting given as a plain string literal must carry `cloud` (when declared) or else the default."""
    sources = app_setting_sources()
    checked = 0
    for name, expression in sources.items():
        literal = string_literal(expression)
        setting = settings.BY_NAME.get(name)
        if literal is None or setting is None:
            continue
        expected = (
            setting.cloud if setting.cloud is not None else (CLOUD_VALUES_NOT_DECLARED.get(name, setting.default or ""))
        )
        assert literal == expected, f"{name}: template sets {literal!r}, shared/platform/settings.py says {expected!r}"
        checked += 1
    assert checked >= 10


def test_settings_with_a_cloud_value_use_it():
    sources = app_setting_sources()
    for setting in settings.SETTINGS:
        if setting.cloud:  # "" means: left to a parameter
            assert string_literal(sources.get(setting.name, "")) == setting.cloud, setting.name


def _param_defaults(path: Path) -> dict[str, str]:
    """{parameter: its default expression as written} (pycep cannot tell 'x' from the identifier x)."""
    return dict(re.findall(r"^param (\w+) \w+ = (.+?)\s*$", path.read_text(), re.M))


def test_parameter_defaults_match_declared_defaults():
    """Settings passed through a parameter keep the declared default (or "", or the deployment's location)."""
    api_defaults = _param_defaults(API)
    main_defaults = _param_defaults(MAIN)
    checked = 0
    for name, expression in app_setting_sources().items():
        setting = settings.BY_NAME.get(name)
        if setting is None or setting.secret or not re.fullmatch(r"[a-z]\w*", expression):
            continue
        assert expression in api_defaults or expression in parse(API)["parameters"], f"{name}: {expression}?"
        for defaults in (api_defaults, main_defaults):
            default = defaults.get(expression)
            if default is None or string_literal(default) is None:
                continue  # no default, or an expression (e.g. the deployment's location)
            assert string_literal(default) in (setting.default or "", ""), (
                f"{name}: parameter {expression} defaults to {default}, "
                f"shared/platform/settings.py says {setting.default!r}"
            )
            checked += 1
    assert checked >= 5


def test_secret_settings_are_key_vault_references_or_empty():
    sources = app_setting_sources()
    for setting in settings.SETTINGS:
        if not setting.secret or setting.name in NOT_SET_IN_AZURE:
            continue
        expression = sources[setting.name]
        literal = string_literal(expression)
        assert literal in (None, ""), f"{setting.name}: a secret must not be a literal"
        assert "@Microsoft.KeyVault(" in expression or "kvPrefix" in expression, setting.name
        assert re.search(r"\?\s*'\$\{kvPrefix\}\$\{\w+SecretName\}\)'\s*:\s*''$", expression), setting.name


# --- (g) local runners are off in Azure --------------------------------------------------------------------------


def test_local_runners_are_off_and_cannot_be_overridden():
    sources = app_setting_sources()
    assert string_literal(sources["ENABLE_LOCAL_RUNNERS"]) == "false"
    union = re.search(r"var allAppSettings = union\((.*?)\)\n", API.read_text(), re.S).group(1)
    parts = [p.strip() for p in union.split(",") if p.strip()]
    assert parts[-1] == "enforcedAppSettings", "ENABLE_LOCAL_RUNNERS must win over every other group"
    assert parts.index("appSettingsOverrides") < parts.index("hostAppSettings")
    enforced = parse(API)["variables"]["enforcedAppSettings"]["value"]
    assert enforced == {"ENABLE_LOCAL_RUNNERS": "false"}
    assert settings.BY_NAME["ENABLE_LOCAL_RUNNERS"].cloud == "false"


def test_dm_job_url_is_the_apps_own_jobs_route():
    expression = app_setting_sources()["DM_JOB_URL"]
    assert "'https://${functionApp.outputs.defaultHostName}/api/jobs'" in expression


def test_identity_based_storage_settings():
    sources = app_setting_sources()
    assert string_literal(sources["AzureWebJobsStorage__credential"]) == "managedidentity"
    assert sources["AzureWebJobsStorage__clientId"] == "identityClientId"
    assert sources["AzureWebJobsStorage__accountName"] == "stg.name"
    for service in ("blob", "queue", "table"):
        assert f"AzureWebJobsStorage__{service}ServiceUri" in sources
    assert "Authorization=AAD" in sources["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]


def test_durable_task_scheduler_settings():
    variables = parse(API)["variables"]
    dts = variables["durableTaskSchedulerAppSettings"]["value"]
    assert {
        "DURABLE_TASK_SCHEDULER_CONNECTION_STRING",
        "TASKHUB_NAME",
        "AzureFunctionsJobHost__extensions__durableTask__storageProvider__type",
    } <= set(dts)
    assert dts["AzureFunctionsJobHost__extensions__durableTask__storageProvider__type"] == "azureManaged"
    assert "Authentication=ManagedIdentity" in dts["DURABLE_TASK_SCHEDULER_CONNECTION_STRING"]


# --- (c) every name the code reads is declared --------------------------------------------------------------------


def test_code_reads_only_declared_settings():
    unknown: list[str] = []
    for path in code_files():
        for name in SETTINGS_READ.findall(path.read_text(encoding="utf-8")):
            if name not in settings.BY_NAME:
                unknown.append(f"{path.relative_to(ROOT)}: settings.get*({name!r})")
    assert not unknown, "read but not declared in shared/platform/settings.py:\n" + "\n".join(unknown)


def test_code_reads_no_undeclared_environment_variables():
    unknown: list[str] = []
    for path in code_files():
        for match in ENV_READ.finditer(path.read_text(encoding="utf-8")):
            name = match.group(1) or match.group(2)
            if name not in settings.BY_NAME and name not in PLATFORM_VARIABLES:
                unknown.append(f"{path.relative_to(ROOT)}: os.environ/os.getenv {name!r}")
    assert not unknown, "environment read directly, not declared in shared/platform/settings.py:\n" + "\n".join(unknown)


def test_the_code_scan_finds_reads():
    """Guard against a scan that silently matches nothing."""
    names = set()
    for path in code_files():
        names |= set(SETTINGS_READ.findall(path.read_text(encoding="utf-8")))
    assert "JOB_STORE_PREFIX" in names
    assert SETTINGS_READ.findall('settings.get_bool("ENABLE_LOCAL_RUNNERS")') == ["ENABLE_LOCAL_RUNNERS"]
    assert [m.group(1) or m.group(2) for m in ENV_READ.finditer('os.environ["A"]; os.getenv("B")')] == ["A", "B"]


# --- (d) local.settings.json.example lists every setting (generated) -------------------------------------------


def generated_example() -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_local_settings.py")],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return result.stdout


def test_generator_lists_every_setting_once_in_order():
    document = json.loads(generated_example())
    assert document["IsEncrypted"] is False
    assert list(document["Values"]) == [s.name for s in settings.SETTINGS]
    values = document["Values"]
    assert values["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    assert values["ENABLE_LOCAL_RUNNERS"] == "true"
    for setting in settings.SETTINGS:
        if setting.secret and setting.local is None:
            assert values[setting.name] == "", setting.name


def test_local_settings_example_is_generated_from_the_list():
    example = ROOT / "local.settings.json.example"
    assert example.is_file(), "local.settings.json.example is missing: python scripts/gen_local_settings.py --write"
    assert example.read_text(encoding="utf-8") == generated_example(), (
        "local.settings.json.example is out of date: python scripts/gen_local_settings.py --write"
    )
