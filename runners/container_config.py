"""The Container runner entity, shared by the container runners (LocalContainer, AzureContainer, Omnia classic).

  - `image` {registryName, imageName, version} -> `{registryName}/{imageName}:{version}` (registryName may be
    empty, version defaults to `latest`), a string `image` taken as is, or a flat `containerImage` string;
  - `customCommand`: list of strings (a single string is split like a shell would, see `split_command`);
  - `computeResource` {cpu, memory (GB)}: each runner applies its own limits;
  - `name`, `label`: informational; `environmentVariables`: resolved by the core into the job's environment.
Unknown attributes are kept (`extra="allow"`): runners subclass `ContainerConfig` to add their own.
"""

from __future__ import annotations

import re
import shlex
from typing import Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

IMAGE_REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")


class ContainerImage(BaseModel):
    model_config = ConfigDict(extra="allow")

    registryName: Optional[str] = ""
    imageName: str = Field(min_length=1)
    version: Optional[str] = "latest"

    def reference(self) -> str:
        registry = (self.registryName or "").strip().rstrip("/")
        name = self.imageName.strip()
        version = (self.version or "latest").strip() or "latest"
        return f"{registry}/{name}:{version}" if registry else f"{name}:{version}"


class ComputeResource(BaseModel):
    model_config = ConfigDict(extra="allow")

    cpu: Optional[float] = Field(default=None, gt=0)
    memory: Optional[float] = Field(default=None, gt=0, description="GB")


def split_command(value: Any) -> Any:
    """A command given as one string is split like a shell would; lists (and None) pass unchanged."""
    if value is None:
        return None
    if isinstance(value, str):
        return shlex.split(value)
    return value


class ContainerConfig(BaseModel):
    """A Container runner entity: the blueprint's attributes plus the flat `containerImage` in use."""

    model_config = ConfigDict(extra="allow")

    type: str
    name: Optional[str] = None
    label: Optional[str] = None
    image: Optional[Union[ContainerImage, str]] = None
    containerImage: Optional[str] = None
    computeResource: Optional[ComputeResource] = None
    customCommand: Optional[list[str]] = None
    environmentVariables: list[str] = Field(default_factory=list)

    @field_validator("customCommand", mode="before")
    @classmethod
    def _command(cls, value: Any) -> Any:
        return split_command(value)

    @field_validator("environmentVariables", mode="before")
    @classmethod
    def _env(cls, value: Any) -> Any:
        return [] if value is None else value

    @model_validator(mode="after")
    def _has_image(self) -> "ContainerConfig":
        ref = self.image_reference()
        if not ref:
            raise ValueError("an image is required: `image` {registryName, imageName, version} or `containerImage`")
        if not IMAGE_REFERENCE.match(ref):
            raise ValueError(f"invalid image reference {ref!r}")
        return self

    def image_reference(self) -> str:
        if isinstance(self.image, ContainerImage):
            return self.image.reference()
        if isinstance(self.image, str) and self.image.strip():
            return self.image.strip()
        return (self.containerImage or "").strip()

    def command_list(self) -> Optional[list[str]]:
        return list(self.customCommand) if self.customCommand else None
