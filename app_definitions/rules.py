"""Cross-field rules of an app definition, with Marathon's messages and paths.

Each rule is a small function from a completed :class:`AppDefinition` to the
violations it finds; :func:`check_rules` runs them all so one answer lists
every problem. Rules that concern the whole app report at ``/`` as Marathon
does; the others name the field a user has to change. The rules that depend on
how an image is run live in ``container_rules.py``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from .app import AppDefinition
from .checks import MESOS_PROTOCOLS
from .container_rules import CONTAINER_RULES
from .errors import Violation
from .resources import EnvSecretRef
from .strategies import canary_violations

__all__ = ["CMD_ARGS_CONTAINER_MESSAGE", "HEALTH_CHECK_PORT_MESSAGE", "check_rules"]

CMD_ARGS_CONTAINER_MESSAGE = "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."
HEALTH_CHECK_PORT_MESSAGE = (
    "Health check port indices must address an element of the ports array or container port mappings."
)
CHECK_PORT_MESSAGE = "Check port indices must address an element of the ports array or container port mappings."
NETWORK_MODES_MESSAGE = "May specify a single host network, single bridge network, or else 1-to-n container networks"
IPV6_MESSAGE = "IPv6 can only be used for container type DOCKER and Mesos http/https/tcp health checks"
DOCKER_SINGLE_NETWORK_MESSAGE = "may only specify a single container network when using the Docker container engine"
NETWORK_NAMES_MESSAGE = (
    "networkNames must be a single item list when hostPort is specified and more than 1 container network is defined"
)

Rule = Callable[[AppDefinition], Iterable[Violation]]


def _duplicates(values: Iterable[object]) -> bool:
    return any(count > 1 for count in Counter(values).values())


def _port_count(app: AppDefinition) -> int:
    """Number of addressable ports (port mappings when there are any, else port definitions)."""
    mappings = app.container.port_mappings if app.container else []
    return len(mappings) if mappings else len(app.port_definitions)


def command_rule(app: AppDefinition) -> Iterable[Violation]:
    """Something must run: exactly one of cmd/args, or an image container (which may use neither)."""
    has_cmd, has_args = app.cmd is not None, bool(app.args)
    has_image_container = app.container is not None and app.container.docker is not None
    if (has_cmd and has_args) or not (has_cmd or has_args or has_image_container):
        yield Violation("/", CMD_ARGS_CONTAINER_MESSAGE)


def container_rule(app: AppDefinition) -> Iterable[Violation]:
    """A Docker image where one is needed; engine-specific options on the right engine."""
    container = app.container
    if container is None:
        return
    docker = container.docker
    if container.type == "DOCKER" and docker is None:
        yield Violation("/container/docker", "not defined")
    elif docker is not None and not docker.image:
        yield Violation("/container/docker/image", "must not be empty")
    if docker and docker.pull_config:
        if container.type == "DOCKER":
            yield Violation("/container/docker/pullConfig", "pullConfig is not supported with Docker containerizer")
        elif docker.pull_config.secret not in app.secrets:
            yield Violation("/container/docker/pullConfig", "pullConfig.secret must refer to an existing secret")
    if app.gpus > 0 and container.type == "DOCKER":
        yield Violation("/", "GPU resources only work with the Mesos containerizer")


def volume_rule(app: AppDefinition) -> Iterable[Violation]:
    """Each volume has one kind; persistent volumes are sized, named by a plain path and writable."""
    for i, volume in enumerate(app.container.volumes if app.container else []):
        at = f"/container/volumes({i})"
        if len(volume.kinds) != 1:
            yield Violation(at, "must declare exactly one of hostPath, persistent, external or secret")
        persistent = volume.persistent
        if persistent is not None:
            if persistent.size <= 0:
                yield Violation(f"{at}/persistent/size", f"got {persistent.size}, expected more than 0")
            if persistent.max_size is not None and persistent.type != "mount":
                yield Violation(f"{at}/persistent/maxSize", "Only mount volumes can have maxSize")
            elif persistent.max_size is not None and persistent.max_size <= persistent.size:
                yield Violation(f"{at}/persistent/maxSize", "Max size must be larger than size")
            if "/" in volume.container_path or volume.container_path in (".", ".."):
                yield Violation(f"{at}/containerPath", 'value must not contain "/"')
            if volume.mode != "RW":
                yield Violation(f"{at}/mode", "got 'RO', expected 'RW' for a persistent volume")
        if volume.secret is not None and volume.secret not in app.secrets:
            yield Violation(f"{at}/secret", "volume.secret must refer to an existing secret")


def network_rule(app: AppDefinition) -> Iterable[Violation]:
    """Networks do not mix modes and carry only what their mode can use."""
    modes = Counter(n.mode for n in app.networks)
    host, bridge, container = modes["host"], modes["container/bridge"], modes["container"]
    if not (
        (host <= 1 and bridge == 0 and container == 0)
        or (host == 0 and bridge <= 1 and container == 0)
        or (host == 0 and bridge == 0 and container > 0)
    ):
        yield Violation("/networks", NETWORK_MODES_MESSAGE)
    if any(n.mode == "host" and (n.name or n.labels) for n in app.networks):
        yield Violation("/networks", "Host networks may not have names or labels")
    if any(n.mode == "container/bridge" and n.name for n in app.networks):
        yield Violation("/networks", "Bridge networks may not have names")
    if _duplicates(n.name for n in app.networks if n.name):
        yield Violation("/networks", "Duplicate networks are not allowed")
    if app.container is not None and app.container.type == "DOCKER" and container > 1:
        yield Violation("/", DOCKER_SINGLE_NETWORK_MESSAGE)


def port_rule(app: AppDefinition) -> Iterable[Violation]:
    """Ports are declared where the networking mode reads them, with unique names and numbers.

    Port definitions outside host networking never get here: normalisation
    drops them in favour of the port mappings, as Marathon does. Port mappings
    under host networking are refused, where Marathon drops them silently:
    mappings are what a user writes to choose container ports, and a port a
    user wrote and Pacer ignored would be a surprise.
    """
    mode = app.networking_mode
    mappings = app.container.port_mappings if app.container else []
    if mode == "host" and mappings:
        yield Violation("/", "portMappings are not allowed with host-networking")
    if _duplicates(d.name for d in app.port_definitions if d.name):
        yield Violation("/portDefinitions", "Port names must be unique.")
    if _duplicates(d.port for d in app.port_definitions if d.port != 0):
        yield Violation("/portDefinitions", "Ports must be unique.")
    if _duplicates(m.name for m in mappings if m.name):
        yield Violation("/container/portMappings", "Port names must be unique.")
    names = app.network_names
    for i, mapping in enumerate(mappings):
        unknown = [n for n in mapping.network_names if n not in names]
        if unknown:
            yield Violation(
                f"/container/portMappings({i})/networkNames",
                f"unknown network(s) {', '.join(unknown)}: must name container networks of this app",
            )
        if len(names) > 1 and mapping.host_port is not None and len(mapping.network_names) != 1:
            yield Violation(f"/container/portMappings({i})", NETWORK_NAMES_MESSAGE)


def health_check_rule(app: AppDefinition) -> Iterable[Violation]:
    """Checks address an existing port, carry a command exactly when they are COMMAND checks,
    and use one family: at most one Mesos check (Marathon allows several COMMAND checks
    for old definitions; Pacer does not) and no mixing with Marathon-level checks.
    """
    port_count = _port_count(app)
    docker = app.container is not None and app.container.type == "DOCKER"
    for i, check in enumerate(app.health_checks):
        at = f"/healthChecks({i})"
        if check.protocol == "COMMAND" and check.command is None:
            yield Violation(f"{at}/command", "is required for COMMAND health checks")
        if check.protocol != "COMMAND" and check.command is not None:
            yield Violation(f"{at}/command", "is only used by COMMAND health checks")
        if check.protocol != "COMMAND" and check.port is None:
            if check.port_index is None or check.port_index >= port_count:
                yield Violation(f"{at}/portIndex", HEALTH_CHECK_PORT_MESSAGE)
        if check.ip_protocol == "IPv6" and not (docker and check.protocol in MESOS_PROTOCOLS - {"COMMAND"}):
            yield Violation(f"{at}/ipProtocol", IPV6_MESSAGE)
    mesos = sum(1 for check in app.health_checks if check.is_mesos)
    if mesos > 1:
        yield Violation("/healthChecks", "AppDefinition can contain at most one Mesos health check")
    if mesos and mesos < len(app.health_checks):
        yield Violation("/healthChecks", "AppDefinition cannot mix Mesos and Marathon health checks")


def readiness_check_rule(app: AppDefinition) -> Iterable[Violation]:
    """At most one readiness check, on a named port, timing out before the next interval."""
    if len(app.readiness_checks) > 1:
        yield Violation("/readinessChecks", "AppDefinition can contain at most one readiness check")
    mappings = app.container.port_mappings if app.container else []
    port_names = {p.name for p in (mappings or app.port_definitions) if p.name}
    for i, check in enumerate(app.readiness_checks):
        if check.port_name not in port_names:
            yield Violation(
                f"/readinessChecks({i})/portName", f"No port definition reference for portName {check.port_name}"
            )
        if check.timeout_seconds >= check.interval_seconds:
            yield Violation(
                f"/readinessChecks({i})/timeoutSeconds",
                f"got {check.timeout_seconds}, expected less than intervalSeconds ({check.interval_seconds})",
            )


def mesos_check_rule(app: AppDefinition) -> Iterable[Violation]:
    """A Mesos ``check`` has exactly one kind and addresses an existing port."""
    check = app.check
    if check is None:
        return
    if sum(part is not None for part in (check.http, check.tcp, check.exec)) != 1:
        yield Violation("/check", "Must specify a single type of check, http, tcp, or exec")
    port_count = _port_count(app)
    for name, part in (("http", check.http), ("tcp", check.tcp)):
        if part is not None and part.port_index >= port_count:
            yield Violation(f"/check/{name}/portIndex", CHECK_PORT_MESSAGE)
    if check.exec is not None and (check.exec.command.shell is None) == (not check.exec.command.argv):
        yield Violation("/check/exec/command", "must define either shell or a non-empty argv")


def scheduling_rule(app: AppDefinition) -> Iterable[Violation]:
    """Single-instance and resident apps restrict the strategies; roles must be a non-empty set."""
    strategy = app.upgrade_strategy
    if app.is_single_instance:
        if app.instances > 1:
            yield Violation("/", "Single instance app may only have one instance")
        for name, value in (
            ("minimumHealthCapacity", strategy.minimum_health_capacity),
            ("maximumOverCapacity", strategy.maximum_over_capacity),
        ):
            if value != 0.0:
                yield Violation(f"/upgradeStrategy/{name}", f"got {value}, expected 0.0 for a single instance app")
    if app.is_resident:
        if strategy.maximum_over_capacity != 0.0:
            yield Violation(
                "/upgradeStrategy/maximumOverCapacity",
                f"got {strategy.maximum_over_capacity}, expected 0.0 for a resident app",
            )
        if not app.unreachable_strategy.is_disabled:
            yield Violation("/unreachableStrategy", "unreachableStrategy must be disabled for resident tasks")
    elif app.residency is not None:
        yield Violation("/", "App must contain persistent volumes and define residency")
    unreachable = app.unreachable_strategy
    if not unreachable.is_disabled and unreachable.inactive_after_seconds > unreachable.expunge_after_seconds:
        yield Violation(
            "/unreachableStrategy/inactiveAfterSeconds",
            f"got {unreachable.inactive_after_seconds}, expected expungeAfterSeconds "
            f"({unreachable.expunge_after_seconds}) or less",
        )
    roles = app.accepted_resource_roles
    if roles is not None and not roles:
        yield Violation("/acceptedResourceRoles", "must not be empty")
    if roles and _duplicates(roles):
        yield Violation("/acceptedResourceRoles", "must not contain duplicates")


def canary_rule(app: AppDefinition) -> Iterable[Violation]:
    """A canary block is consistent, and only on apps that may run old and new side by side.

    A canary starts new instances beside the old ones, which a single-instance app forbids
    and a resident app cannot do (its instances own their volumes: no over capacity).
    """
    canary = app.upgrade_strategy.canary
    if canary is None:
        return
    yield from canary_violations(canary)
    if app.is_single_instance:
        yield Violation("/upgradeStrategy/canary", "a single instance app cannot run a canary beside its instance")
    if app.is_resident:
        yield Violation("/upgradeStrategy/canary", "a resident app cannot run a canary (it needs over capacity)")


def secret_and_limit_rule(app: AppDefinition) -> Iterable[Violation]:
    """Secret references name defined secrets; resource limits are at least the request."""
    for name, value in app.env.items():
        if isinstance(value, EnvSecretRef) and value.secret not in app.secrets:
            yield Violation(f"/env/{name}", f"references an undefined secret named '{value.secret}'")
    limits = app.resource_limits
    if limits is None:
        return
    for name, requested, limit in (("cpus", app.cpus, limits.cpus), ("mem", app.mem, limits.mem)):
        if isinstance(limit, float) and limit < requested:
            yield Violation(f"/resourceLimits/{name}", f"got {limit}, expected {requested} (the requested {name}) or more")


RULES: tuple[Rule, ...] = (
    command_rule,
    container_rule,
    volume_rule,
    network_rule,
    port_rule,
    health_check_rule,
    readiness_check_rule,
    mesos_check_rule,
    scheduling_rule,
    canary_rule,
    secret_and_limit_rule,
    *CONTAINER_RULES,
)


def check_rules(app: AppDefinition) -> list[Violation]:
    """Every cross-field violation of ``app`` (empty when the app is valid)."""
    return [violation for rule in RULES for violation in rule(app)]
