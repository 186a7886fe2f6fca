"""Runner configuration parsing: a pydantic model over the job's `runner` entity, problems as a ConfigError.

Every runner that validates with pydantic goes through `parse_config`, so a 422 reads the same whatever the
runner: `invalid runner configuration: runner.<path>: <why>; ...` (the paths and reasons, never the values).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from .base import ConfigError


def parse_config(model: type[BaseModel], config: dict[str, Any]) -> Any:
    """Validate with pydantic; ConfigError lists each problem as `runner.<path>: <why>` (never the values)."""
    try:
        return model.model_validate(config)
    except ValidationError as error:
        problems = []
        items = error.errors()
        if len(items) > 1:  # `image` is object-or-string: report the object's problems, not "not a string"
            items = [i for i in items if "str" not in i.get("loc", ())] or items
        for item in items:
            path = ".".join(str(p) for p in item.get("loc", ()) if p not in ("ContainerImage", "str"))
            message = item.get("msg", "invalid")
            if message.startswith("Value error, "):
                message = message[len("Value error, ") :]
            problems.append(f"runner.{path}: {message}" if path else f"runner: {message}")
        raise ConfigError("invalid runner configuration: " + "; ".join(problems)) from None
