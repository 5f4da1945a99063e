"""``AppDefinition``: one Marathon v2 app, canonical and immutable.

Build it with :func:`app_definitions.parse_app_definition`, which accepts every
spelling Marathon accepts (deprecated fields included), fills in defaults that
depend on other fields and checks the cross-field rules. A value of this class
is therefore always in canonical form: ids absolute, networks explicit, ports
normalised. Constructing it directly skips all of that and is meant for tests
and ``model_copy(update=...)`` of server-set fields (``instances``,
``version``, ``version_info``).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from ._base import Labels, Model, NonEmptyStr, NonNegFloat, NonNegInt
from .checks import AppCheck, HealthCheck, ReadinessCheck
from .constraints import ConstraintField
from .container import Container
from .networking import Network, NetworkMode, PortDefinition, PortSpec, port_specs_for
from .resources import EnvValue, ExecutorResources, FetchUri, ResourceLimits, SecretDef
from .strategies import (
    KillSelection,
    Residency,
    Timestamp,
    UnreachableStrategy,
    UnreachableStrategyField,
    UpgradeStrategy,
    VersionInfo,
)

__all__ = ["AppDefinition", "DEFAULT_TASK_KILL_GRACE_SECONDS", "SINGLE_INSTANCE_LABEL"]

DEFAULT_TASK_KILL_GRACE_SECONDS = 3.0
SINGLE_INSTANCE_LABEL = "MARATHON_SINGLE_INSTANCE_APP"


class AppDefinition(Model):
    """Every field of Marathon's ``App`` with Marathon's defaults (JSON names are camelCase)."""

    id: str
    cmd: NonEmptyStr | None = None
    args: list[str] | None = None
    user: str | None = None
    env: dict[str, EnvValue] = Field(default_factory=dict)
    instances: NonNegInt = 1
    cpus: Annotated[float, Field(ge=0.001)] = 1.0
    mem: NonNegFloat = 128.0
    disk: NonNegFloat = 0.0
    gpus: NonNegInt = 0
    executor: str = ""
    constraints: list[ConstraintField] = Field(default_factory=list)
    accepted_resource_roles: list[NonEmptyStr] | None = None
    role: NonEmptyStr | None = None
    container: Container | None = None
    networks: list[Network] = Field(default_factory=lambda: [Network(mode="host")])
    port_definitions: list[PortDefinition] = Field(default_factory=list)
    require_ports: bool = False
    health_checks: list[HealthCheck] = Field(default_factory=list)
    readiness_checks: list[ReadinessCheck] = Field(default_factory=list)
    check: AppCheck | None = None
    dependencies: list[str] = Field(default_factory=list)
    upgrade_strategy: UpgradeStrategy = Field(default_factory=UpgradeStrategy)
    backoff_seconds: NonNegInt = 1
    backoff_factor: Annotated[float, Field(ge=1.0)] = 1.15
    max_launch_delay_seconds: NonNegInt = 300
    fetch: list[FetchUri] = Field(default_factory=list)
    labels: Labels = Field(default_factory=dict)
    task_kill_grace_period_seconds: NonNegInt | None = None
    kill_selection: KillSelection = "YOUNGEST_FIRST"
    unreachable_strategy: UnreachableStrategyField = Field(
        default_factory=lambda: UnreachableStrategy(inactive_after_seconds=0, expunge_after_seconds=0)
    )
    residency: Residency | None = None
    secrets: dict[str, SecretDef] = Field(default_factory=dict)
    tty: bool | None = None
    resource_limits: ResourceLimits | None = None
    executor_resources: ExecutorResources | None = None
    version: Timestamp | None = None
    version_info: VersionInfo | None = None

    def to_json(self) -> dict[str, Any]:
        """Marathon's GET form: camelCase, defaults present, None-valued optionals left out.

        Pacer's extensions (``upgradeStrategy.progressDeadlineSeconds``/``autoRollback``)
        appear only when set to a non-default value, so the field set is Marathon's for
        every app that does not use them: strict clients reject keys they do not know.
        A fresh, ``json.dumps``-able dict; ``parse_app_definition(app.to_json()) == app``.
        """
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    @property
    def networking_mode(self) -> NetworkMode:
        """``host``, ``container/bridge`` or ``container`` (networks never mix modes)."""
        return self.networks[0].mode if self.networks else "host"

    @property
    def network_names(self) -> list[str]:
        """Names of the ``container`` networks the task joins (``[]`` in host and bridge mode)."""
        return [n.name for n in self.networks if n.mode == "container" and n.name]

    @property
    def task_kill_grace_seconds(self) -> float:
        """Seconds between SIGTERM and SIGKILL: the app's setting or Pacer's default of 3 s."""
        if self.task_kill_grace_period_seconds is None:
            return DEFAULT_TASK_KILL_GRACE_SECONDS
        return float(self.task_kill_grace_period_seconds)

    @property
    def is_resident(self) -> bool:
        """True when persistent volumes pin instances to the agents that hold them."""
        return self.container is not None and self.container.is_resident

    @property
    def is_single_instance(self) -> bool:
        """True when ``MARATHON_SINGLE_INSTANCE_APP=true``: never two instances at once."""
        return self.labels.get(SINGLE_INSTANCE_LABEL) == "true"

    def port_specs(self) -> list[PortSpec]:
        """One :class:`PortSpec` per port of a task, in index order (``$PORT0``, ``$PORT1``...)."""
        mappings = self.container.port_mappings if self.container else []
        return port_specs_for(self.networking_mode, self.port_definitions, mappings, self.require_ports)
