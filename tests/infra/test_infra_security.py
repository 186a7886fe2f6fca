"""(e) no secret literal in templates or parameter files, (f) shared keys off, (h) least-privilege roles present."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from shared.platform import settings
from tests.infra.bicep_support import (
    API,
    AZURE_YAML,
    INFRA,
    MAIN,
    PARAMETERS,
    bicep_files,
    load_parameters,
    module_params,
    parse,
    walk,
)

TEMPLATE_FILES = bicep_files() + sorted(INFRA.rglob("*.json")) + [AZURE_YAML]

ROLE_IDS = {
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "AcrPull": "7f951dda-4ed3-4680-a7ca-43fe172d538d",
    "Durable Task Data Contributor": "0ad04412-c4d5-4796-b79c-f76d14c8d402",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "Managed Identity Operator": "f1a07417-d97a-45cb-824c-7a7467783830",
}
BROAD_ROLE_IDS = {
    "Owner": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "User Access Administrator": "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    "Storage Account Contributor": "17d1049b-9a84-46fb-8f53-869881c3d3ab",
}
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
NETWORK_CONTRIBUTOR = "4d97b98b-1d4f-4787-a291-c67834d212e7"

SECRET_PATTERNS = [
    re.compile(r"AccountKey\s*=", re.I),
    re.compile(r"SharedAccessKey\s*=", re.I),
    re.compile(r"SharedAccessSignature\s*=", re.I),
    re.compile(r"[?&]sig=[A-Za-z0-9%]{10,}"),
    re.compile(r"InstrumentationKey\s*=\s*[0-9a-f]{8}-", re.I),
    re.compile(r"DefaultEndpointsProtocol=", re.I),
    re.compile(r"\blistKeys\s*\(", re.I),
    re.compile(r"\blist(?:Account)?Sas\s*\(", re.I),
    re.compile(r"\blistCredentials\s*\(", re.I),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),  # a JWT
]
SECRETISH_NAME = re.compile(r"(password|secret|(?<![a-z])key|token|credential|connectionstring)", re.I)
NOT_SECRET_NAMES = re.compile(
    r"(SecretName|KeyVault|keyVault|__credential|_KEY_SECRET_NAME|Credential$|connectionStringName$)"
)


def _rel(path: Path) -> str:
    return str(path.relative_to(INFRA.parent))


# --- (e) no secret literals ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", TEMPLATE_FILES, ids=_rel)
def test_no_secret_literals(path):
    text = path.read_text()
    for pattern in SECRET_PATTERNS:
        assert not pattern.search(text), f"{_rel(path)}: looks like a secret or key retrieval: {pattern.pattern}"


@pytest.mark.parametrize("path", bicep_files(), ids=_rel)
def test_secretish_bicep_assignments_are_not_literals(path):
    """`password: 'x'`, `clientSecret: 'x'`, `FOO_KEY: 'x'`...: only empty strings or expressions."""
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        match = re.match(r"^\s*'?([A-Za-z_][\w-]*)'?\s*:\s*'([^']*)'\s*$", line)
        if not match:
            continue
        name, value = match.groups()
        declared = settings.BY_NAME.get(name)
        if declared is not None and not declared.secret:
            continue  # e.g. DMSS_TOKEN_TTL_SECONDS: declared, and declared not secret
        if SECRETISH_NAME.search(name) and not NOT_SECRET_NAMES.search(name) and value:
            assert value in ("managedidentity",), f"{_rel(path)}:{line_no}: {name} has a literal value"


@pytest.mark.parametrize("path", bicep_files(), ids=_rel)
def test_secretish_parameters_have_no_literal_defaults(path):
    for name, spec in parse(path).get("parameters", {}).items():
        if SECRETISH_NAME.search(name) and not NOT_SECRET_NAMES.search(name):
            default = spec.get("default")
            assert default in (None, "", [], {}) or not isinstance(default, str), f"{_rel(path)}: {name}"


def test_parameter_file_holds_no_secret_values():
    for name, spec in load_parameters().items():
        value = spec.get("value")
        if SECRETISH_NAME.search(name) and not NOT_SECRET_NAMES.search(name):
            assert value in (None, "") or re.fullmatch(r"\$\{[A-Z0-9_]+=?\}", str(value)), name
        assert "reference" not in spec or "keyVault" in spec["reference"], name
    json.loads(PARAMETERS.read_text())


# --- (f) shared keys disabled, identity everywhere ------------------------------------------------------------


def test_storage_shared_key_access_disabled():
    storage = parse(INFRA / "core" / "storage" / "storage-account.bicep")
    assert storage["parameters"]["allowSharedKeyAccess"]["default"] is False
    assert storage["parameters"]["allowBlobPublicAccess"]["default"] is False
    params = module_params(parse(MAIN), "storage")
    assert params["allowSharedKeyAccess"] is False
    assert params["allowBlobPublicAccess"] is False
    for path in bicep_files():
        assert not re.search(r"allowSharedKeyAccess:\s*true", path.read_text()), _rel(path)
    props = storage["resources"]["storage"]["config"]["properties"]
    assert props["allowSharedKeyAccess"] == "allowSharedKeyAccess"
    assert props["minimumTlsVersion"] == "minimumTlsVersion"
    assert props["supportsHttpsTrafficOnly"] is True


def test_application_insights_local_auth_disabled():
    monitoring = parse(INFRA / "core" / "monitor" / "monitoring.bicep")
    assert module_params(parse(MAIN), "monitoring")["disableLocalAuth"] is True
    assert (
        monitoring["resources"]["applicationInsights"]["config"]["properties"]["DisableLocalAuth"] == "disableLocalAuth"
    )


def test_function_app_uses_the_user_assigned_identity_for_deployment_and_key_vault():
    site = parse(INFRA / "core" / "host" / "functions-flexconsumption.bicep")["resources"]["functions"]["config"]
    assert site["identity"]["type"] == "UserAssigned"
    assert site["properties"]["httpsOnly"] is True
    assert site["properties"]["keyVaultReferenceIdentity"] == "identityId"
    storage = site["properties"]["functionAppConfig"]["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"] == {"type": "UserAssignedIdentity", "userAssignedIdentityResourceId": "identityId"}


def test_plan_is_flex_consumption():
    params = module_params(parse(MAIN), "appServicePlan")
    assert params["sku"] == {"name": "FC1", "tier": "FlexConsumption"}


# --- (h) least-privilege role assignments --------------------------------------------------------------------


def _all_text() -> str:
    return "\n".join(p.read_text() for p in bicep_files())


@pytest.mark.parametrize("role", sorted(ROLE_IDS))
def test_role_is_assigned(role):
    role_id = ROLE_IDS[role]
    users = [p for p in bicep_files() if role_id in p.read_text()]
    assert users, f"{role} ({role_id}) is not assigned anywhere"
    for path in users:
        text = path.read_text()
        assert "Microsoft.Authorization/roleAssignments@" in text or "role-assignment" in text, _rel(path)


def test_storage_and_monitoring_roles_target_the_right_resources():
    rbac = parse(INFRA / "app" / "rbac.bicep")
    variables = {name: var["value"] for name, var in rbac["variables"].items()}
    assert {
        variables["storageBlobDataOwnerRoleId"],
        variables["storageQueueDataContributorRoleId"],
        variables["storageTableDataContributorRoleId"],
    } == {
        ROLE_IDS["Storage Blob Data Owner"],
        ROLE_IDS["Storage Queue Data Contributor"],
        ROLE_IDS["Storage Table Data Contributor"],
    }
    resources = rbac["resources"]
    assert resources["storageRoleAssignments"]["config"]["config"]["scope"] == "storageAccount"
    assert resources["appInsightsRoleAssignment"]["config"]["scope"] == "applicationInsights"


def test_no_broad_roles():
    text = _all_text()
    for role, role_id in BROAD_ROLE_IDS.items():
        assert role_id not in text, f"{role} must not be assigned"
    # Contributor / Network Contributor only as the documented fallbacks when custom roles are switched off
    for role_id, allowed in ((CONTRIBUTOR, {"app/jobs-access.bicep"}), (NETWORK_CONTRIBUTOR, {"main.bicep"})):
        users = {str(p.relative_to(INFRA)) for p in bicep_files() if role_id in p.read_text()}
        assert users <= allowed, users


def test_custom_container_group_role_is_narrow():
    role = parse(INFRA / "core" / "security" / "container-groups-role.bicep")["resources"]["role"]["config"]
    permissions = role["properties"]["permissions"]
    actions = [a for p in permissions for a in p["actions"]]
    assert "Microsoft.ContainerInstance/containerGroups/write" in actions
    assert "Microsoft.ContainerInstance/containerGroups/containers/logs/read" in actions
    assert "Microsoft.Network/virtualNetworks/subnets/join/action" in actions
    assert "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action" in actions
    assert not any("*" in a for a in actions), "no wildcards"
    assert not any(a.startswith("Microsoft.Authorization/") for a in actions)
    assert all(not p["dataActions"] for p in permissions)
    # assignable only in the jobs' resource group and the app's own
    params = module_params(parse(MAIN), "containerGroupsRole")
    assert len(params["assignableScopes"]) == 2


def test_jobs_rights_are_scoped_to_the_jobs_resource_group():
    main = MAIN.read_text()
    assert re.search(
        r"module jobsAccess './app/jobs-access.bicep' = \{\s*name: 'jobsAccess'\s*"
        r"scope: resourceGroup\(jobsRgName\)",
        main,
    )
    assert parse(MAIN)["parameters"]["useCustomJobsRole"]["default"] is True


def test_acr_pull_goes_to_the_jobs_identity_not_the_app():
    params = module_params(parse(MAIN), "registryAccess")
    assert "jobsUserAssignedIdentity" in json.dumps(params["principalId"])
    assert "ACI_JOB_IDENTITY_ID" in API.read_text()


def test_durable_task_scheduler_role_only_with_that_backend():
    main = parse(MAIN)
    for name in ("dts", "dtsAccess"):
        assert "condition" in main["modules"][name]["config"], name
    assert "useDts" in json.dumps(main["modules"]["dtsAccess"]["config"]["condition"])


def test_every_role_assignment_has_a_deterministic_name():
    for path in bicep_files():
        for name, resource in parse(path).get("resources", {}).items():
            if resource["type"] != "Microsoft.Authorization/roleAssignments":
                continue
            text = json.dumps(resource["config"])
            assert '"guid"' in text or "guid(" in path.read_text(), (_rel(path), name)
            nodes = list(walk(resource["config"]))
            assert any(isinstance(n, dict) and "principalType" in n for n in nodes), (_rel(path), name)


@pytest.mark.parametrize(
    "sample",
    [
        "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=abc",
        "Endpoint=sb://x/;SharedAccessKeyName=root;SharedAccessKey=abc",
        "value: stg.listKeys().keys[0].value",
        "InstrumentationKey=01234567-89ab-cdef-0123-456789abcdef",
        "https://x.blob.core.windows.net/c?sv=2022&sig=abcdefghijklmnop",
    ],
)
def test_secret_scan_catches_samples(sample):
    assert any(p.search(sample) for p in SECRET_PATTERNS)


def test_entra_authentication_is_a_switch():
    main = parse(MAIN)
    assert main["parameters"]["enableEntraAuth"]["default"] is False
    api = parse(API)
    assert "enableEntraAuth" in json.dumps(api["modules"]["auth"]["config"]["condition"])
    auth = parse(INFRA / "core" / "host" / "appservice-auth.bicep")["resources"]["authSettings"]
    assert auth["type"] == "Microsoft.Web/sites/config"
    config = auth["config"]
    assert config["name"] == "authsettingsV2"
    properties = config["properties"]
    assert properties["platform"]["enabled"] is True
    assert properties["globalValidation"]["requireAuthentication"] == "requireAuthentication"
    assert "Return401" in json.dumps(properties["globalValidation"]["unauthenticatedClientAction"])
    aad = properties["identityProviders"]["azureActiveDirectory"]
    assert aad["enabled"] is True and aad["registration"]["clientId"] == "clientId"
    assert "clientSecretSettingName" not in json.dumps(aad)  # token validation only: no client secret
