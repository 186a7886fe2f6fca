"""The environment a job gets, and keeping its values out of everything we show.

A runner's `environmentVariables` items are `K=V`, or a bare `K` that is taken from the app's environment only
when `K` is on the JOB_ENV_PASSTHROUGH allow-list (the old service passed any variable: a leak). Values are
secrets as far as this service is concerned: responses and logs show `K=***`, and job output is scrubbed of
them before it is stored.
"""
from __future__ import annotations

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
                f"runner.environmentVariables[{index}]: {name[:40]!r} is not a valid environment variable name")
        if sep:
            env[name] = value
        elif name in allowed:
            if name in os.environ:
                env[name] = os.environ[name]
        else:
            raise ValidationFailed(
                f"runner.environmentVariables[{index}]: bare {name!r} takes its value from the app's environment, "
                "which is only allowed for names listed in the app setting JOB_ENV_PASSTHROUGH")
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


def secret_values(items: Iterable[str], extra: Iterable[str | None] = ()) -> list[str]:
    """Values to scrub from job output: the declared `K=V` values, passthrough values, and extra secrets."""
    values = []
    for item in items:
        name, sep, value = str(item).partition("=")
        if not sep:
            value = os.environ.get(name.strip(), "")
        values.append(value)
    values.extend(v for v in extra if v)
    return sorted({v for v in values if len(v) >= MIN_SECRET_LENGTH}, key=len, reverse=True)


def scrub(lines: list[str], secrets: list[str]) -> list[str]:
    if not secrets:
        return lines
    out = []
    for line in lines:
        for secret in secrets:
            if secret in line:
                line = line.replace(secret, "***")
        out.append(line)
    return out
