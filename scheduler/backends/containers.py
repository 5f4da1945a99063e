"""What an app with a Docker image becomes on the engine: pure mapping from app + instance to a container.

Kept out of the backend so it is table-testable without an engine. Both container types that
name an image run here: ``DOCKER`` with the Docker containerizer's semantics, and ``MESOS`` with
``docker.image`` (Marathon's Universal Container Runtime) with the UCR's: ``cmd`` runs as
``/bin/sh -c cmd`` in the image, ``args`` follow the image's entrypoint, neither runs the image's
own entrypoint and command; the app's ``user`` and ``tty`` apply, and ``linuxInfo`` becomes the
engine's seccomp and IPC settings (``unconfined`` -> ``seccomp=unconfined``, ``PRIVATE`` -> a
private IPC namespace with ``shmSize`` MiB of /dev/shm, ``SHARE_PARENT`` -> the host's). What the
engine cannot do for a UCR app is refused when the app is submitted (see
``app_definitions.container_rules``), so it never reaches this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app_definitions import AppDefinition
from executor import marathon_task_env
from executor.docker_spec import ContainerLaunch, PortBinding, VolumeMount, task_labels

from scheduler.state.model import Instance


def is_docker_app(app: AppDefinition) -> bool:
    """Whether `app` runs as a container on the Docker engine: it names a Docker image, whichever
    `container.type` (DOCKER, or MESOS for Marathon's Universal Container Runtime)."""
    return app.container is not None and app.container.runs_image


def _ucr_parameters(app: AppDefinition) -> tuple[tuple[str, str], ...]:
    """The engine settings that carry a MESOS container's own fields (it takes no docker parameters)."""
    assert app.container is not None
    parameters: list[tuple[str, str]] = []
    if app.user:
        parameters.append(("user", app.user))
    if app.tty:
        parameters.append(("tty", "true"))
    linux = app.container.linux_info
    if linux is not None and linux.seccomp is not None and linux.seccomp.unconfined:
        parameters.append(("security-opt", "seccomp=unconfined"))
    if linux is not None and linux.ipc_info is not None:
        parameters.append(("ipc", "private" if linux.ipc_info.mode == "PRIVATE" else "host"))
        if linux.ipc_info.shm_size is not None:
            parameters.append(("shm-size", f"{linux.ipc_info.shm_size}m"))
    return tuple(parameters)


def _docker_network(app: AppDefinition) -> str:
    mode = app.networking_mode
    if mode == "host":
        return "host"
    if mode == "container/bridge":
        return "bridge"
    names = app.network_names
    return names[0] if names else "bridge"


def docker_unsupported(app: AppDefinition) -> str | None:
    """What of a DOCKER app's definition the Docker runtime cannot honour (None: everything).

    Marathon accepts these for the Docker containerizer, so the app is accepted and waits in the
    queue with this reason; for a MESOS container they are refused at submission instead.
    """
    assert app.container is not None
    for i, volume in enumerate(app.container.volumes):
        kinds = [k for k in volume.kinds if k != "host"]
        if kinds:
            return (f"container.volumes[{i}]: {kinds[0]} volumes are not supported by the Docker runtime "
                    "(host volumes are)")
    return None


def container_launch(instance: Instance, app: AppDefinition, sandbox: Path | None) -> ContainerLaunch:
    """The container for `instance` of `app`, which runs a Docker image (pure: no engine involved).

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
        parameters=(tuple((p.key, p.value) for p in docker.parameters) if app.container.type == "DOCKER"
                    else _ucr_parameters(app)),
        kill_grace_seconds=app.task_kill_grace_seconds, sandbox=sandbox)


@dataclass
class _ImageGate:
    message: str
    until: float
    delay: float
