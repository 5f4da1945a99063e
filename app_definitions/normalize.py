"""Completing a validated app into canonical form: defaults that depend on other fields.

Some of Marathon's defaults are not constants: the default ports depend on the
networking mode, a health check's port index on whether the app has ports,
the upgrade strategy on the single-instance label and on persistent volumes.
They are filled in here, on typed models, using ``model_fields_set`` to tell
"absent" from "given" (``portMappings: []`` means "no ports", absent means
"the default one"). Ids are canonicalised here too.

Outside host networking, ``portDefinitions`` (and the deprecated ``ports`` they
were translated from) are dropped and the port mappings kept, as Marathon's
``AppNormalization`` does: definitions exported from Marathon carry both for
bridged Docker apps. When there were more port definitions than mappings,
plain mappings are appended until the counts match (Marathon's
``maybeAddPortMappings``), so ``$PORT1`` still exists for an app that declared
two ports.
"""

from __future__ import annotations

from typing import Any

from .app import AppDefinition
from .checks import HTTP_PATH_PROTOCOLS, HealthCheck, ReadinessCheck
from .container import Container
from .errors import Violation
from .networking import DEFAULT_NETWORK_NAME, DEFAULT_PORT_NAME, Network, PortDefinition, PortMapping
from .path_id import app_id_violations, parent_of, path_id_violations
from .strategies import Residency, UnreachableStrategy, UpgradeStrategy

__all__ = ["complete"]


def _networks(app: AppDefinition) -> list[Network]:
    """Explicit networks; ``[]`` or absent means host. Unnamed container networks get the default name."""
    networks = list(app.networks) if app.networks else [Network(mode="host")]
    return [
        n.model_copy(update={"name": DEFAULT_NETWORK_NAME}) if n.mode == "container" and n.name is None else n
        for n in networks
    ]


def _container(app: AppDefinition, mode: str) -> Container | None:
    """The container with its port mappings completed for ``mode``.

    Non-host networking without a container gets an empty MESOS container (as
    in Marathon) so the port mappings have a home; it also gets at least as
    many mappings as the (dropped) port definitions declared ports.
    """
    container = app.container
    if container is None:
        if mode == "host":
            return None
        container = Container(type="MESOS")
    mappings = list(container.port_mappings)
    if mode != "host":
        if "port_mappings" not in container.model_fields_set:
            mappings = [PortMapping(name=DEFAULT_PORT_NAME)]
        mappings += [PortMapping() for _ in range(len(app.port_definitions) - len(mappings))]
        if mode == "container/bridge":
            mappings = [m.model_copy(update={"host_port": 0}) if m.host_port is None else m for m in mappings]
    return container.model_copy(update={"port_mappings": mappings})


def _health_checks(checks: list[HealthCheck], port_count: int) -> list[HealthCheck]:
    """Default ``path`` for HTTP-like checks; ``portIndex`` 0 when no port is named and one exists."""
    completed = []
    for check in checks:
        update: dict[str, Any] = {}
        if check.protocol in HTTP_PATH_PROTOCOLS and check.path is None:
            update["path"] = "/"
        if check.protocol != "COMMAND" and check.port is None and check.port_index is None and port_count:
            update["port_index"] = 0
        completed.append(check.model_copy(update=update) if update else check)
    return completed


def _readiness_checks(checks: list[ReadinessCheck]) -> list[ReadinessCheck]:
    """An empty ``httpStatusCodesForReady`` means the default ``[200]`` (Marathon)."""
    return [c if c.http_status_codes_for_ready else c.model_copy(update={"http_status_codes_for_ready": [200]})
            for c in checks]


def _ids(app: AppDefinition, parent: str) -> tuple[dict[str, Any], list[Violation]]:
    """Canonical ``id`` and ``dependencies`` (dependencies resolve against the app's group)."""
    update: dict[str, Any] = {}
    app_id, violations = app_id_violations(app.id, parent)
    if app_id is not None:
        update["id"] = app_id
    group = parent_of(app_id) if app_id else parent
    dependencies = []
    for i, raw in enumerate(app.dependencies):
        dependency, errors = path_id_violations(raw, group, path=f"/dependencies({i})", within_parent=False)
        violations += errors
        dependencies.append(dependency or raw)
    update["dependencies"] = dependencies
    return update, violations


def complete(app: AppDefinition, parent: str = "/") -> tuple[AppDefinition, list[Violation]]:
    """``app`` with every context-dependent default filled in, plus id violations."""
    update, violations = _ids(app, parent)
    given = app.model_fields_set
    networks = _networks(app)
    mode = networks[0].mode
    container = _container(app, mode)
    mappings = container.port_mappings if container else []
    port_definitions = list(app.port_definitions)
    if mode != "host":
        port_definitions = []     # the port mappings declare the ports here
    elif "port_definitions" not in given:
        port_definitions = [PortDefinition(name=DEFAULT_PORT_NAME)]
    resident = container is not None and container.is_resident
    update.update(
        networks=networks,
        container=container,
        port_definitions=port_definitions,
        require_ports=app.require_ports and mode == "host",
        health_checks=_health_checks(app.health_checks, len(mappings) or len(port_definitions)),
        readiness_checks=_readiness_checks(app.readiness_checks),
        args=app.args or None,
    )
    if "upgrade_strategy" not in given:
        if app.is_single_instance:
            update["upgrade_strategy"] = UpgradeStrategy(minimum_health_capacity=0.0, maximum_over_capacity=0.0)
        elif resident:
            update["upgrade_strategy"] = UpgradeStrategy(minimum_health_capacity=0.5, maximum_over_capacity=0.0)
    if resident and "unreachable_strategy" not in given:
        update["unreachable_strategy"] = UnreachableStrategy.disabled()
    if resident and app.residency is None:
        update["residency"] = Residency()
    return app.model_copy(update=update), violations
