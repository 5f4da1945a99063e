"""The ``container`` block: engine, Docker image options, volumes, port mappings.

Only the canonical shape lives here. The deprecated spellings
(``container.docker.network``, ``container.docker.portMappings``) are
translated before these models see the input (see ``deprecated.py``), so code
reading a :class:`Container` never meets them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ._base import Int, Labels, Model, NonEmptyStr, NonNegInt
from .networking import PortMapping

__all__ = [
    "Container",
    "DockerContainer",
    "DockerParameter",
    "DockerPullConfig",
    "ExternalVolume",
    "PersistentVolume",
    "Volume",
]


class DockerParameter(Model):
    """One ``docker run`` option, ``{"key": "memory-swap", "value": "1g"}``."""

    key: NonEmptyStr
    value: str


class DockerPullConfig(Model):
    """Registry credentials taken from a secret (Mesos containerizer only)."""

    secret: NonEmptyStr


class DockerContainer(Model):
    """``container.docker``. ``image`` is required whenever this block is used."""

    image: str | None = None
    force_pull_image: bool = False
    privileged: bool = False
    parameters: list[DockerParameter] = Field(default_factory=list)
    pull_config: DockerPullConfig | None = None


class PersistentVolume(Model):
    """A local persistent volume (makes the app *resident*: pinned to the agent holding it)."""

    type: Literal["root", "path", "mount"] | None = None
    size: Int
    max_size: Int | None = None
    profile_name: NonEmptyStr | None = None
    constraints: list[list[str]] = Field(default_factory=list)


class ExternalVolume(Model):
    """A volume provided by an external driver (DVDI/CSI)."""

    name: NonEmptyStr | None = None
    provider: NonEmptyStr | None = None
    size: NonNegInt | None = None
    options: Labels = Field(default_factory=dict)


class Volume(Model):
    """One volume; exactly one of ``host_path``, ``persistent``, ``external``, ``secret`` says its kind."""

    container_path: NonEmptyStr
    host_path: NonEmptyStr | None = None
    persistent: PersistentVolume | None = None
    external: ExternalVolume | None = None
    secret: NonEmptyStr | None = None
    mode: Literal["RO", "RW"] = "RW"

    @property
    def kinds(self) -> list[str]:
        """The kinds this volume declares (valid volumes declare exactly one)."""
        declared = {
            "host": self.host_path,
            "persistent": self.persistent,
            "external": self.external,
            "secret": self.secret,
        }
        return [kind for kind, value in declared.items() if value is not None]


class Container(Model):
    """``container``: ``type`` DOCKER (Marathon's default) or MESOS.

    ``port_mappings`` is always a list after parsing: the default mapping is
    added for bridge/container networking when none was given, ``[]`` means
    "no ports".
    """

    type: Literal["DOCKER", "MESOS"] = "DOCKER"
    docker: DockerContainer | None = None
    volumes: list[Volume] = Field(default_factory=list)
    port_mappings: list[PortMapping] = Field(default_factory=list)
    linux_info: dict[str, Any] | None = None

    @property
    def image(self) -> str | None:
        """The Docker image, if this container runs one."""
        return self.docker.image if self.docker else None

    @property
    def is_resident(self) -> bool:
        """True when a persistent volume pins instances to agents."""
        return any(v.persistent is not None for v in self.volumes)
