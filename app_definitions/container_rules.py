"""Cross-field rules of the ``container`` block that depend on how an image is run.

Pacer runs every Docker image on the Docker engine, whichever ``container.type`` asks for it:
``DOCKER`` as Marathon's Docker containerizer does, ``MESOS`` with ``docker.image`` (Marathon's
Universal Container Runtime, "UCR") with the UCR's semantics. What the engine cannot do for a
UCR app is refused here, at submission, naming the field, rather than accepted and then run
differently: local persistent, external and secret volumes, registry credentials from a secret
(there is no secret store), seccomp profiles kept on the agent, and more than one container
network (a container joins one network here). Marathon's own rules for the same fields come
first, with Marathon's messages: a ``MESOS`` container takes no ``docker.parameters``, and the
``linuxInfo`` settings must be consistent.

Docker parameters get two rules of their own: the ``entrypoint`` parameter cannot be combined
with ``cmd`` (which replaces the entrypoint with ``/bin/sh -c``), and the parameters that
configure a network endpoint need a network that has one.
"""

from __future__ import annotations

from collections.abc import Iterable

from .app import AppDefinition
from .deprecated import MUST_BE_EMPTY
from .docker_parameters import canonical_docker_parameter
from .errors import Violation

__all__ = [
    "CONTAINER_RULES",
    "CONTEXT_DEPENDENT_DOCKER_PARAMETERS",
    "SECCOMP_PROFILE_MESSAGE",
    "UCR_SINGLE_NETWORK_MESSAGE",
    "docker_parameter_rule",
    "linux_info_rule",
    "mesos_image_rule",
]

UCR_SINGLE_NETWORK_MESSAGE = (
    "may only specify a single container network for a Docker image: Pacer runs images on the Docker "
    "engine and joins each container to one network"
)
PULL_CONFIG_MESSAGE = (
    "registry credentials from a secret cannot be honoured: Pacer has no secret store (images are "
    "pulled with the credentials in the Docker client configuration of the user running Pacer)"
)
SECCOMP_PROFILE_MESSAGE = (
    "seccomp profiles kept on the agent cannot be honoured: the Docker engine needs the profile's "
    "content; use unconfined, or the engine's default profile by leaving seccomp out"
)
_VOLUME_MESSAGES = {
    "persistent": "local persistent volumes cannot be honoured for a Docker image: the Docker runtime "
                  "mounts host volumes only",
    "external": "external volumes cannot be honoured for a Docker image: the Docker runtime mounts host "
                "volumes only",
    "secret": "secret volumes cannot be honoured: Pacer has no secret store",
}
_ENDPOINT_KEYS = frozenset({"ip", "ip6", "link-local-ip", "network-alias"})
"""Parameters that configure the container's endpoint on a user-defined (``container``) network."""
CONTEXT_DEPENDENT_DOCKER_PARAMETERS = _ENDPOINT_KEYS | {"entrypoint", "mac-address"}
"""Supported parameters that :func:`docker_parameter_rule` accepts only with some commands or networks."""


def mesos_image_rule(app: AppDefinition) -> Iterable[Violation]:
    """A ``MESOS`` container with a Docker image: Marathon's rules, then what Pacer cannot honour."""
    container = app.container
    if container is None or container.type != "MESOS" or container.docker is None:
        return
    docker = container.docker
    if docker.parameters:
        yield Violation("/container/docker/parameters", MUST_BE_EMPTY)
    if not docker.image:
        return  # container_rule reports the missing image
    if docker.pull_config is not None:
        yield Violation("/container/docker/pullConfig", PULL_CONFIG_MESSAGE)
    for i, volume in enumerate(container.volumes):
        for kind in volume.kinds:
            if kind in _VOLUME_MESSAGES:
                yield Violation(f"/container/volumes({i})/{kind}", _VOLUME_MESSAGES[kind])
    if sum(1 for n in app.networks if n.mode == "container") > 1:
        yield Violation("/networks", UCR_SINGLE_NETWORK_MESSAGE)
    linux = container.linux_info
    if linux is not None and linux.seccomp is not None and linux.seccomp.profile_name is not None:
        yield Violation("/container/linuxInfo/seccomp/profileName", SECCOMP_PROFILE_MESSAGE)


def linux_info_rule(app: AppDefinition) -> Iterable[Violation]:
    """Marathon's consistency rules of ``linuxInfo`` for ``MESOS`` containers (``DOCKER`` ones drop it)."""
    container = app.container
    if container is None or container.type != "MESOS" or container.linux_info is None:
        return
    seccomp, ipc = container.linux_info.seccomp, container.linux_info.ipc_info
    if seccomp is not None:
        if seccomp.profile_name is not None and seccomp.unconfined:
            yield Violation("/container/linuxInfo/seccomp", "Seccomp unconfined can NOT be true when Profile is defined")
        if seccomp.profile_name is None and not seccomp.unconfined:
            yield Violation("/container/linuxInfo/seccomp", "Seccomp unconfined must be true when Profile is NOT defined")
    if ipc is not None and ipc.mode == "SHARE_PARENT" and ipc.shm_size is not None:
        yield Violation("/container/linuxInfo/ipcInfo", "ipcInfo shmSize can NOT be set when mode is SHARE_PARENT")


def docker_parameter_rule(app: AppDefinition) -> Iterable[Violation]:
    """Parameters that contradict the rest of the definition (unknown keys are refused by the model)."""
    container = app.container
    if container is None or container.type != "DOCKER" or container.docker is None:
        return
    mode = app.networking_mode
    for i, parameter in enumerate(container.docker.parameters):
        key = canonical_docker_parameter(parameter.key)
        at = f"/container/docker/parameters({i})/key"
        if key == "entrypoint" and app.cmd is not None:
            yield Violation(at, "docker parameter 'entrypoint' cannot be combined with cmd, which runs as "
                                "/bin/sh -c <cmd> in place of the entrypoint; give the command as args")
        if key in _ENDPOINT_KEYS and mode != "container":
            yield Violation(at, f"docker parameter '{parameter.key}' needs container networking (a user-defined "
                                f"network); this app uses {mode} networking")
        if key == "mac-address" and mode == "host":
            yield Violation(at, "docker parameter 'mac-address' needs its own network interface; this app uses "
                                "host networking")


CONTAINER_RULES = (mesos_image_rule, linux_info_rule, docker_parameter_rule)
