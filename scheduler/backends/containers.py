"""What a DOCKER app becomes on the engine: pure mapping from app + instance to a container.

Kept out of the backend so it is table-testable without an engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app_definitions import AppDefinition
from executor import marathon_task_env
from executor.docker_spec import ContainerLaunch, PortBinding, VolumeMount, task_labels

from scheduler.state.model import Instance


def is_docker_app(app: AppDefinition) -> bool:
    """Whether `app` runs as a Docker container (a DOCKER container block with an image)."""
    container = app.container
    return (container is not None and container.type == "DOCKER" and container.docker is not None
            and bool(container.docker.image))


def _docker_network(app: AppDefinition) -> str:
    mode = app.networking_mode
    if mode == "host":
        return "host"
    if mode == "container/bridge":
        return "bridge"
    names = app.network_names
    return names[0] if names else "bridge"


def docker_unsupported(app: AppDefinition) -> str | None:
    """What of a DOCKER app's definition the Docker runtime cannot honour (None: everything)."""
    assert app.container is not None
    for i, volume in enumerate(app.container.volumes):
        kinds = [k for k in volume.kinds if k != "host"]
        if kinds:
            return (f"container.volumes[{i}]: {kinds[0]} volumes are not supported by the Docker runtime "
                    "(host volumes are)")
    return None


def container_launch(instance: Instance, app: AppDefinition, sandbox: Path | None) -> ContainerLaunch:
    """The container for `instance` of the DOCKER app `app` (pure: no engine involved).

    Host ports are the instance's (placement chose them); in bridge and container networking
    each port mapping with a host port publishes `containerPort` (0: the host port itself) on it.
    """
    assert app.container is not None and app.container.docker is not None and app.container.docker.image
    docker = app.container.docker
    image = docker.image
    assert image is not None
    specs = app.port_specs()
    with_host_port = [s for s in specs if s.host_port is not None]
    env = marathon_task_env(
        app_id=app.id, app_version=instance.version, task_id=instance.instance_id, host=instance.host,
        ports=instance.ports, port_names=[s.name for s in with_host_port],
        cpus=app.cpus, mem=app.mem, disk=app.disk, gpus=app.gpus, labels=app.labels,
        user_env={k: v for k, v in app.env.items() if isinstance(v, str)}, docker_image=image)
    network = _docker_network(app)
    bindings: list[PortBinding] = []
    if network != "host":
        for spec, host_port in zip(with_host_port, instance.ports):
            bindings.append(PortBinding(container_port=spec.container_port or host_port, host_port=host_port,
                                        protocol=spec.protocol))
    volumes = tuple(VolumeMount(host_path=v.host_path, container_path=v.container_path, read_only=v.mode == "RO")
                    for v in app.container.volumes if v.host_path is not None)
    labels = {**app.labels, **task_labels(app_id=app.id, task_id=instance.instance_id, app_version=instance.version,
                                          agent_id=instance.agent_id, ports=instance.ports)}
    return ContainerLaunch(
        task_id=instance.instance_id, image=image, env=env, labels=labels,
        shell_command=app.cmd, args=tuple(app.args) if app.args else None, network=network,
        port_bindings=tuple(bindings), volumes=volumes, cpus=app.cpus, mem_mb=app.mem,
        privileged=docker.privileged, force_pull=docker.force_pull_image,
        parameters=tuple((p.key, p.value) for p in docker.parameters),
        kill_grace_seconds=app.task_kill_grace_seconds, sandbox=sandbox)


@dataclass
class _ImageGate:
    message: str
    until: float
    delay: float
