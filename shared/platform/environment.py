"""The environment a job gets, and keeping its values out of everything we show.

A runner's `environmentVariables` items are `K=V`, or a bare `K` that is taken from the app's environment only
when `K` is on the JOB_ENV_PASSTHROUGH allow-list (the old service passed any variable: a leak). Values are
secrets as far as this service is concerned: responses and logs show `K=***`, and job output is scrubbed of
them before it is stored.

`secret_values` is the one list of what to scrub: every value a job receives (its `K=V` values, passthrough
values, the JOB_ENV_EXPORT values, and the tokens the caller adds), each also as its single lines (a value with a
newline is printed over several lines, or joined by spaces by an unquoted `echo $V`) and as it looks inside a
JSON string. `scrub` replaces them, multi-line values across line breaks, longest first. Values shorter than
MIN_SECRET_LENGTH (and such lines of a multi-line value) are not scrubbed: they would take ordinary words out of
logs. The service's own non-secret values (JOB_UID, DM_JOB_URL, DMSS addresses) are not scrubbed.
"""

from __future__ import annotations

import json
import os
import re
from typing import Iterable

from shared.platform import settings
from shared.platform.errors import ValidationFailed

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MIN_SECRET_LENGTH = 4  # shorter values would scrub ordinary words out of logs


def parse_items(items: Iterable[str]) -> dict[str, str]:
    """Resolve `K=V` and allow-listed bare `K` items; raise 422 for anything else."""
    allowed = set(settings.get_list("JOB_ENV_PASSTHROUGH"))
    env: dict[str, str] = {}
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise ValidationFailed(f"runner.environmentVariables[{index}] must be a string `NAME=value`")
        name, sep, value = item.partition("=")
        name = name.strip()
        if not _NAME.match(name):
            raise ValidationFailed(
                f"runner.environmentVariables[{index}]: {name[:40]!r} is not a valid environment variable name"
            )
        if sep:
            env[name] = value
        elif name in allowed:
            if name in os.environ:
                env[name] = os.environ[name]
        else:
            raise ValidationFailed(
                f"runner.environmentVariables[{index}]: bare {name!r} takes its value from the app's environment, "
                "which is only allowed for names listed in the app setting JOB_ENV_PASSTHROUGH"
            )
    return env


def exported() -> dict[str, str]:
    """App settings the operator exports into every job (JOB_ENV_EXPORT)."""
    return {name: os.environ[name] for name in settings.get_list("JOB_ENV_EXPORT") if name in os.environ}


def build(uid: str, items: Iterable[str], service_values: dict[str, str] | None = None) -> dict[str, str]:
    """The full environment of a job: exports, then service values (JOB_UID, DM_JOB_URL, DMSS_*), then the
    runner's own items, which may not override the service's."""
    env = exported()
    env.update(parse_items(items))
    env.update({"JOB_UID": uid, "DM_JOB_URL": settings.get("DM_JOB_URL")})
    env.update(service_values or {})
    return env


def redacted(items: Iterable[str]) -> list[str]:
    return [f"{str(item).partition('=')[0]}=***" for item in items]


def _forms(value: str) -> set[str]:
    """The ways a value shows up in output: itself, each of its lines (stripped), and JSON-escaped."""
    forms = {value, value.strip()}
    if "\n" in value or "\r" in value:
        forms.update(line.strip() for line in value.splitlines())
    forms.update({json.dumps(form)[1:-1] for form in list(forms)})
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def secret_values(items: Iterable[str], extra: Iterable[str | None] = ()) -> list[str]:
    """Values to scrub from job output, longest first: the declared `K=V` values, passthrough values, the values
    exported into every job (JOB_ENV_EXPORT), and `extra` secrets (tokens), each in all its forms (`_forms`)."""
    values = []
    for item in items:
        name, sep, value = str(item).partition("=")
        if not sep:
            value = os.environ.get(name.strip(), "")
        values.append(value)
    values.extend(exported().values())
    values.extend(v for v in extra if v)
    forms: set[str] = set()
    for value in values:
        forms |= _forms(value)
    return sorted(forms, key=lambda form: (-len(form), form))


#: Values the service gives every job that are not secret (they name the job and the services it talks to).
PUBLIC_NAMES = frozenset({"JOB_UID", "DM_JOB_URL", "DMSS_URL", "JOB_DMSS_ID", "JOB_INPUT_ADDRESS"})


def environment_secrets(env: dict[str, str]) -> list[str]:
    """`secret_values` of a job's built environment (what a runner gets in JobSpec.environment): every value but
    those named in PUBLIC_NAMES."""
    values = [value for name, value in env.items() if name not in PUBLIC_NAMES]
    forms: set[str] = set()
    for value in values:
        forms |= _forms(value)
    return sorted(forms, key=lambda form: (-len(form), form))


def scrub(lines: list[str], secrets: list[str]) -> list[str]:
    """`lines` with every secret replaced by `***`. A multi-line secret is matched across the line breaks first
    (the result may then have fewer lines), then every secret within each line."""
    if not secrets or not lines:
        return lines
    multi = [secret for secret in secrets if "\n" in secret]
    if multi:
        text = "\n".join(lines)
        for secret in multi:
            text = text.replace(secret, "***")
        lines = text.split("\n")
    single = [secret for secret in secrets if "\n" not in secret]
    out = []
    for line in lines:
        for secret in single:
            if secret in line:
                line = line.replace(secret, "***")
        out.append(line)
    return out


def scrub_text(text: str, secrets: list[str]) -> str:
    """`scrub` for one text (a message, a whole log)."""
    return "\n".join(scrub(text.split("\n"), secrets))
