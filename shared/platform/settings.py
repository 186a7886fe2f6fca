"""The one list of app settings.

Every setting the code reads is declared here, with its default and meaning. `local.settings.json.example`,
the README's settings table and the Bicep app settings are checked against this list by tests, so a setting
cannot go missing in one of them. Code reads settings through `get()`/`get_bool()`/`get_int()`/`get_float()`
at call time (never at import), so the local host and tests can change them per process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | None
    description: str
    group: str
    secret: bool = False
    local: str | None = None  # value in local.settings.json.example when it differs from the default
    cloud: str | None = None  # value Bicep sets when it differs from the default ("" = left to a parameter)


_S = Setting

SETTINGS: tuple[Setting, ...] = (
    # --- Functions host and storage -----------------------------------------------------------------
    _S("FUNCTIONS_WORKER_RUNTIME", "python", "Functions language worker.", "host"),
    _S(
        "AzureWebJobsStorage",
        None,
        "Storage connection string (Azurite locally: `UseDevelopmentStorage=true`). In Azure the identity-based "
        "`AzureWebJobsStorage__*` settings are used instead.",
        "host",
        secret=True,
        local="UseDevelopmentStorage=true",
    ),
    _S(
        "AzureWebJobsStorage__accountName",
        None,
        "Storage account name for identity-based access (Azure; set by Bicep).",
        "host",
    ),
    _S(
        "AzureWebJobsStorage__credential",
        None,
        "`managedidentity` for identity-based storage access (Azure; set by Bicep).",
        "host",
        cloud="managedidentity",
    ),
    _S(
        "AzureWebJobsStorage__clientId",
        None,
        "Client id of the user-assigned identity used for storage (Azure; set by Bicep).",
        "host",
    ),
    _S(
        "JOB_STORE_PREFIX",
        "dmjob",
        "Prefix of the app's tables and blob container; lets several apps or test runs share one account.",
        "host",
    ),
    _S(
        "JOB_ORCHESTRATION_STORE_PREFIX",
        "devhost",
        "Local host only: prefix of the tables/blobs where its Durable engine keeps orchestration history.",
        "host",
    ),
    # --- Jobs ---------------------------------------------------------------------------------------
    _S(
        "ENABLE_LOCAL_RUNNERS",
        "false",
        "Allow runners that execute on the app's own host (shell, local container, in-process). Remote code "
        "execution in a cloud app: keep false there.",
        "jobs",
        local="true",
        cloud="false",
    ),
    _S(
        "DM_JOB_URL",
        "http://127.0.0.1:7071/api/jobs",
        "Public base URL of this API's job routes; given to every job as `DM_JOB_URL` for progress PUTs.",
        "jobs",
    ),
    _S(
        "JOB_ENV_PASSTHROUGH",
        "",
        "Comma-separated names a job may take from the app's environment with a bare `NAME` item. Nothing else "
        "is ever read from the app's environment.",
        "jobs",
    ),
    _S(
        "JOB_ENV_EXPORT",
        "",
        "Comma-separated names of app settings exported into every job (operators' choice).",
        "jobs",
    ),
    _S(
        "JOB_MAX_RUN_SECONDS",
        "172800",
        "Default maximum run time of a job (a job or runner `timeLimitSeconds` overrides it).",
        "jobs",
    ),
    _S("POLL_INTERVAL_MIN_SECONDS", "1", "First (and post-change) interval between runner polls.", "jobs"),
    _S("POLL_INTERVAL_MAX_SECONDS", "60", "Cap of the backed-off poll interval.", "jobs"),
    _S("POLL_BACKOFF_FACTOR", "2", "Growth factor of the poll interval while nothing changes.", "jobs"),
    _S(
        "JOB_FRESHNESS_SECONDS",
        "5",
        "A status read of a running job (its GET, or the list) wakes its orchestration, at most once per this many "
        "seconds per job; a woken job polls its runner once per this many seconds (never more often) for the next "
        "3 windows, then goes back to its backoff; 0 turns reads' wakes off.",
        "jobs",
    ),
    _S(
        "LOG_TAIL_LINES", "200", "Log lines kept in the table for status replies (the full log goes to a blob).", "jobs"
    ),
    _S("JOB_WORK_DIR", "", "Local runners: base directory of job working directories (default: system temp).", "jobs"),
    _S(
        "ORCHESTRATION_HISTORY_DAYS",
        "30",
        "Durable history of finished job orchestrations older than this many days is purged nightly (the "
        "job's own record, log and result stay).",
        "jobs",
    ),
    _S(
        "JOB_RUNNER_MODULES",
        "",
        "Comma-separated Python modules that register extra runners (besides the `dm_job.runners` entry points).",
        "jobs",
    ),
    # --- Callers ------------------------------------------------------------------------------------
    _S(
        "CALLER_IDENTITY_SOURCE",
        "auto",
        "Where the caller's identity comes from: `easyauth` (the X-MS-CLIENT-PRINCIPAL headers of App Service "
        "Authentication), `bearer` (unverified claims of a Bearer JWT: local development only), `auto` (easyauth "
        "headers when present, else bearer claims) or `none`.",
        "callers",
        cloud="easyauth",
    ),
    # --- DMSS ---------------------------------------------------------------------------------------
    _S("DMSS_URL", "http://127.0.0.1:5000", "DMSS base URL the app calls.", "dmss"),
    _S("PUBLIC_DMSS_URL", "", "DMSS URL given to jobs as `DMSS_URL` (default: `DMSS_URL`).", "dmss"),
    _S("DMSS_TOKEN_TTL_SECONDS", "2592000", "Lifetime asked for job tokens exchanged at DMSS (30 days).", "dmss"),
    _S("DMSS_TIMEOUT_SECONDS", "10", "Timeout of one DMSS request.", "dmss"),
    _S(
        "DMSS_ACCESS_CACHE_SECONDS",
        "60",
        'How long DMSS\'s answer to "may this caller read (or stop) this DMSS job" is remembered, per caller and '
        "job entity (the DM web app polls every 5 s: one DMSS call a minute per user and job); 0: ask every "
        "time.",
        "dmss",
    ),
    _S(
        "DMSS_APP_ACCESS_KEY",
        "",
        "Optional DMSS access key of the app itself, used to renew job tokens for recurring jobs (a Key Vault "
        "reference in Azure).",
        "dmss",
        secret=True,
    ),
    # --- Containers and clouds ----------------------------------------------------------------------
    _S("DOCKER_HOST", "", "Docker Engine API socket for the local container runner (podman's works).", "containers"),
    _S("AZURE_SUBSCRIPTION_ID", "", "Subscription where ACI container groups are created.", "containers"),
    _S("ACI_RESOURCE_GROUP", "", "Resource group for the jobs' container groups.", "containers"),
    _S("ACI_LOCATION", "norwayeast", "Azure region of the jobs' container groups.", "containers"),
    _S(
        "AZURE_RESOURCE_MANAGER_URL",
        "https://management.azure.com",
        "Azure Resource Manager endpoint (sovereign clouds use their own; tests point it at a stand-in).",
        "containers",
    ),
    _S(
        "AZURE_CLIENT_ID", "", "Client id of the user-assigned managed identity (DefaultAzureCredential).", "containers"
    ),
    _S(
        "ACI_JOB_IDENTITY_ID",
        "",
        "Resource id of the user-assigned identity attached to container groups for registry pulls.",
        "containers",
    ),
    _S("ACI_REGISTRY_SERVER", "", "Default registry server for images given without one.", "containers"),
    _S("ACI_REGISTRY_USERNAME", "", "Registry user name when not pulling through the identity.", "containers"),
    _S("ACI_REGISTRY_PASSWORD", "", "Registry password (a Key Vault reference in Azure).", "containers", secret=True),
    _S("ACI_KEEP_FAILED_GROUPS", "false", "Keep the container groups of failed jobs for debugging.", "containers"),
    _S("OMNIA_SUBNET_ID", "", "Default delegated subnet for Omnia classic jobs.", "containers"),
    _S(
        "OMNIA_LOG_ANALYTICS_WORKSPACE_ID",
        "",
        "Log Analytics workspace id for Omnia classic diagnostics.",
        "containers",
    ),
    _S(
        "OMNIA_LOG_ANALYTICS_WORKSPACE_KEY",
        "",
        "Log Analytics workspace key (a Key Vault reference).",
        "containers",
        secret=True,
    ),
    _S(
        "RADIX_SCHEDULER_URL_TEMPLATE",
        "http://{jobName}:{schedulerPort}",
        "URL of a Radix job scheduler, from the runner's `jobName` and `schedulerPort`.",
        "containers",
    ),
    # --- Schedules ----------------------------------------------------------------------------------
    _S("SCHEDULE_TICK", "0 * * * * *", "NCRONTAB of the timer that fires due schedules.", "schedules"),
    _S(
        "SCHEDULE_WEEKDAY_DIALECT",
        "unix",
        "Default day-of-week dialect of inline schedules: `unix` (0 = Sunday) or `dmjob` (0 = Monday, the old "
        "service's). A RecurringJob started from DMSS that names none runs in `dmjob`.",
        "schedules",
    ),
    _S("SCHEDULE_CONCURRENCY_POLICY", "Allow", "Default concurrency policy: Allow, Forbid or Replace.", "schedules"),
    _S(
        "SCHEDULE_STARTING_DEADLINE_SECONDS",
        "3600",
        "Default window in which a missed run is still started (once, for the latest missed time).",
        "schedules",
    ),
    _S("SCHEDULE_HISTORY_LIMIT", "100", "Runs kept per schedule; older ones are summarised as counts.", "schedules"),
    _S(
        "SCHEDULE_SUSPEND_AFTER_FAILURES",
        "0",
        "Suspend a schedule after this many failed runs in a row (0: never).",
        "schedules",
    ),
    # --- Webhooks -----------------------------------------------------------------------------------
    _S(
        "WEBHOOK_ALLOW_LOCAL",
        "false",
        "Local development: subscription URLs may use `http` and loopback addresses (127.0.0.1, ::1). Keep false "
        "in Azure (https only, public addresses only).",
        "webhooks",
        local="true",
        cloud="false",
    ),
    _S(
        "WEBHOOK_ALLOWED_HOSTS",
        "",
        "Comma-separated host names or networks (CIDR) a subscription may name although they are private, "
        "link-local or loopback (an internal receiver in the VNet).",
        "webhooks",
    ),
    _S("WEBHOOK_TIMEOUT_SECONDS", "10", "Timeout of one delivery attempt (connect and answer).", "webhooks"),
    _S(
        "WEBHOOK_RETRY_HOURS",
        "24",
        "A delivery is retried for this long after its first attempt, then marked failed.",
        "webhooks",
    ),
    _S("WEBHOOK_RETRY_FIRST_SECONDS", "5", "Wait before the first retry; doubled per retry, with jitter.", "webhooks"),
    _S("WEBHOOK_RETRY_MAX_SECONDS", "3600", "Longest wait between two attempts.", "webhooks"),
    _S(
        "WEBHOOK_SECRET_GRACE_SECONDS",
        "86400",
        "After a secret is rotated the previous one still signs (besides the new one) for this long.",
        "webhooks",
    ),
)

BY_NAME = {s.name: s for s in SETTINGS}


def _declared(name: str) -> Setting:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"setting {name!r} is not declared in shared/platform/settings.py") from None


def get(name: str) -> str:
    """The setting's value from the environment, else its default ("" when it has none)."""
    setting = _declared(name)
    value = os.environ.get(name)
    if value is None or value == "":
        return setting.default or ""
    return value


def get_bool(name: str) -> bool:
    return get(name).strip().lower() in {"1", "true", "yes", "on"}


def get_int(name: str) -> int:
    return int(get(name))


def get_float(name: str) -> float:
    return float(get(name))


def get_list(name: str) -> list[str]:
    return [item.strip() for item in get(name).split(",") if item.strip()]
