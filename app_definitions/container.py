"""The ``container`` block: engine, Docker image options, volumes, port mappings.

Only the canonical shape lives here. The deprecated spellings
(``container.docker.network``, ``container.docker.portMappings``) are
translated before these models see the input (see ``deprecated.py``), so code
reading a :class:`Container` never meets them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from ._base import Int, Labels, Model, NonEmptyStr, NonNegInt
from .docker_parameters import (
    DOCKER_PARAMETER_ALIASES,
    REFUSED_DOCKER_PARAMETERS,
    SUPPORTED_DOCKER_PARAMETERS,
    canonical_docker_parameter,
    docker_parameter_problem,
)
from .networking import PortMapping

__all__ = [
    "DOCKER_PARAMETER_ALIASES",
    "REFUSED_DOCKER_PARAMETERS",
    "SUPPORTED_DOCKER_PARAMETERS",
    "canonical_docker_parameter",
    "Container",
    "DockerContainer",
    "DockerParameter",
    "DockerPullConfig",
    "ExternalVolume",
    "IpcInfo",
    "LinuxInfo",
    "PersistentVolume",
    "Seccomp",
    "Volume",
]


class DockerParameter(Model):
    """One ``docker run`` option, ``{"key": "memory-swap", "value": "1g"}``.

    ``key`` is a long option name without dashes (dashes and the spellings of
    :data:`DOCKER_PARAMETER_ALIASES` are accepted too) from :data:`SUPPORTED_DOCKER_PARAMETERS`;
    a key that cannot be honoured is refused here, with the reason (see ``docker_parameters.py``).
    """

    key: NonEmptyStr
    value: str

    @field_validator("key")
    @classmethod
    def _supported_key(cls, key: str) -> str:
        problem = docker_parameter_problem(key)
        if problem is not None:
            raise ValueError(problem)
        return key


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


class Seccomp(Model):
    """``linuxInfo.seccomp``: run unconfined, or under a profile kept on the agent."""

    profile_name: NonEmptyStr | None = None
    unconfined: bool = False


class IpcInfo(Model):
    """``linuxInfo.ipcInfo``: a private IPC namespace (with ``shmSize`` MiB of /dev/shm) or the agent's."""

    mode: Literal["PRIVATE", "SHARE_PARENT"]
    shm_size: NonNegInt | None = None


class LinuxInfo(Model):
    """``container.linuxInfo`` (Mesos containerizer only): seccomp and IPC settings."""

    seccomp: Seccomp | None = None
    ipc_info: IpcInfo | None = None


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
    linux_info: LinuxInfo | None = None

    @property
    def image(self) -> str | None:
        """The Docker image, if this container runs one."""
        return self.docker.image if self.docker else None

    @property
    def is_resident(self) -> bool:
        """True when a persistent volume pins instances to agents."""
        return any(v.persistent is not None for v in self.volumes)

    @property
    def runs_image(self) -> bool:
        """True when the task runs a Docker image: ``DOCKER``, or ``MESOS`` with ``docker.image``
        (Marathon's Universal Container Runtime). Pacer runs both on the Docker engine."""
        return self.docker is not None and bool(self.docker.image)
