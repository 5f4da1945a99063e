"""The ``container`` block: engine, Docker image options, volumes, port mappings.

Only the canonical shape lives here. The deprecated spellings
(``container.docker.network``, ``container.docker.portMappings``) are
translated before these models see the input (see ``deprecated.py``), so code
reading a :class:`Container` never meets them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from ._base import Int, Labels, Model, NonEmptyStr, NonNegInt
from .networking import PortMapping

__all__ = [
    "DOCKER_PARAMETER_ALIASES",
    "SUPPORTED_DOCKER_PARAMETERS",
    "canonical_docker_parameter",
    "Container",
    "DockerContainer",
    "DockerParameter",
    "DockerPullConfig",
    "ExternalVolume",
    "PersistentVolume",
    "Volume",
]


SUPPORTED_DOCKER_PARAMETERS: frozenset[str] = frozenset({
    "add-host", "cap-add", "cap-drop", "dns", "dns-search", "env", "hostname", "init", "label",
    "log-driver", "log-opt", "memory-reservation", "memory-swap", "pids-limit", "read-only",
    "security-opt", "shm-size", "stop-signal", "sysctl", "tmpfs", "ulimit", "user", "volume", "workdir",
})
"""The ``docker run`` options (long names) that Pacer's Docker runtime maps onto the engine's API.

Marathon hands ``parameters`` to the docker CLI verbatim; Pacer talks to the engine's API, so
each key needs a mapping, and a key without one is refused when the app is submitted rather
than failing every launch. The mapping itself lives in ``executor.docker_params``.
"""

DOCKER_PARAMETER_ALIASES: dict[str, str] = {
    "e": "env", "h": "hostname", "l": "label", "u": "user", "v": "volume", "w": "workdir",
}
"""The docker CLI's one-letter spellings of supported options (``-v`` is ``--volume``)."""


def canonical_docker_parameter(key: str) -> str | None:
    """``volume`` for ``volume``, ``--volume``, ``v`` or ``-v``; None for an unsupported key."""
    name = key.lstrip("-")
    name = DOCKER_PARAMETER_ALIASES.get(name, name)
    return name if name in SUPPORTED_DOCKER_PARAMETERS else None


class DockerParameter(Model):
    """One ``docker run`` option, ``{"key": "memory-swap", "value": "1g"}``.

    ``key`` is a long option name without dashes (dashes and the one-letter aliases of
    :data:`DOCKER_PARAMETER_ALIASES` are accepted too) from :data:`SUPPORTED_DOCKER_PARAMETERS`.
    """

    key: NonEmptyStr
    value: str

    @field_validator("key")
    @classmethod
    def _supported_key(cls, key: str) -> str:
        if canonical_docker_parameter(key) is None:
            supported = ", ".join(sorted(SUPPORTED_DOCKER_PARAMETERS))
            aliases = ", ".join(f"{short} ({long})" for short, long in sorted(DOCKER_PARAMETER_ALIASES.items()))
            raise ValueError(
                f"docker parameter '{key}' is not supported; supported keys: {supported}; "
                f"short forms: {aliases}"
            )
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
