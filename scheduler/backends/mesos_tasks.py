"""What an instance becomes on Mesos (a `TaskInfo`), and what a `TaskStatus` means for Pacer.

Pure mapping, table-testable without a master. The TaskInfo follows Marathon's `TaskBuilder`:
the task is named after the app (`/shop/web` → `web.shop`), runs `cmd` through the shell or
`args` as argv, gets Marathon's task environment (`executor.marathon_task_env`), the app's
labels, a `DiscoveryInfo` with its ports, the kill grace period when the app sets one, its
container (DOCKER on the Docker containerizer, MESOS with a Docker image on the Mesos one) and
its first Mesos health check (`MESOS_HTTP`, `MESOS_HTTPS`, `MESOS_TCP`, `COMMAND`).

Status updates can repeat (a retried update, a reconciliation answer) and arrive out of order
(reconciliation racing the agent); `supersedes` says whether an update moves a task forward,
so only those reach the scheduler.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from app_definitions import AppDefinition
from executor import marathon_task_env

from scheduler.backends import StatusUpdate
from scheduler.state.model import TERMINAL_STATES, Instance

Json = dict[str, Any]
MESOS_CHECKS = {"MESOS_HTTP": "HTTP", "MESOS_HTTPS": "HTTP", "MESOS_TCP": "TCP", "COMMAND": "COMMAND"}
_EXIT = re.compile(r"exited with status (\d+)")
PACER_EXECUTOR = "pacer"     # an app's `executor` choosing `pacer executor` over Mesos's own
PACER_EXECUTOR_RESOURCES = {"cpus": 0.01, "mem": 32.0}
_RANK = {"TASK_STAGING": 0, "TASK_STARTING": 1, "TASK_RUNNING": 2, "TASK_UNREACHABLE": 2, "TASK_KILLING": 3}


def task_name(app_id: str) -> str:
    """Marathon's `PathId.toHostname`: the path segments reversed, joined by dots."""
    return ".".join(reversed([s for s in app_id.split("/") if s]))


def _labels(labels: Mapping[str, str]) -> Json:
    return {"labels": [{"key": k, "value": v} for k, v in labels.items()]}


def _duration(seconds: float) -> Json:
    return {"nanoseconds": int(round(seconds * 1e9))}


def kill_policy(grace_seconds: float) -> Json:
    return {"grace_period": _duration(grace_seconds)}


def _protocols(protocol: str) -> list[str]:
    return [p for p in protocol.split(",") if p] or ["tcp"]


def unsupported(app: AppDefinition) -> str | None:
    """What of `app` this backend cannot express as a TaskInfo (None: everything)."""
    if app.executor not in ("", "//cmd", PACER_EXECUTOR):
        return (f"executor {app.executor!r}: only Mesos's own executors and {PACER_EXECUTOR!r} are supported "
                "on a Mesos cluster")
    if app.container is not None:
        for i, volume in enumerate(app.container.volumes):
            if volume.host_path is None:
                return (f"container.volumes[{i}]: only host volumes are supported on a Mesos cluster "
                        "(persistent, external and secret volumes are not)")
        if app.container.type == "MESOS" and (app.container.docker is None or not app.container.docker.image):
            return "container type MESOS needs container.docker.image on a Mesos cluster"
    return None


def _image(app: AppDefinition) -> str | None:
    container = app.container
    return container.docker.image if container is not None and container.docker is not None else None


def command_info(app: AppDefinition, env: Mapping[str, str]) -> Json:
    """`cmd` runs through `/bin/sh -c`; `args` is the argv (with a Docker image: the entrypoint's)."""
    command: Json = {"environment": {"variables": [{"name": k, "value": v} for k, v in env.items()]}}
    in_image = _image(app) is not None
    if app.cmd:
        command.update(shell=True, value=app.cmd)
    elif app.args:
        command["shell"] = False
        if not in_image:
            command["value"] = app.args[0]
        command["arguments"] = list(app.args)
    else:
        command["shell"] = False
    if app.user:
        command["user"] = app.user
    uris = []
    for fetch in app.fetch:
        uri: Json = {"value": fetch.uri, "extract": fetch.extract, "executable": fetch.executable,
                     "cache": fetch.cache}
        if fetch.dest_path:
            uri["output_file"] = fetch.dest_path
        uris.append(uri)
    if uris:
        command["uris"] = uris
    return command


def _port_mappings(app: AppDefinition, ports: Sequence[int]) -> list[Json]:
    with_host_port = [s for s in app.port_specs() if s.host_port is not None]
    mappings = []
    for spec, host_port in zip(with_host_port, ports):
        for protocol in _protocols(spec.protocol):
            mappings.append({"host_port": host_port, "container_port": spec.container_port or host_port,
                             "protocol": protocol})
    return mappings


def container_info(app: AppDefinition, instance: Instance) -> Json | None:
    container = app.container
    image = _image(app)
    if container is None or image is None:
        return None
    mode = app.networking_mode
    volumes = [{"container_path": v.container_path, "host_path": v.host_path, "mode": v.mode}
               for v in container.volumes if v.host_path is not None]
    info: Json = {"type": container.type}
    if volumes:
        info["volumes"] = volumes
    mappings = _port_mappings(app, instance.ports) if mode != "host" else []
    if container.type == "DOCKER":
        assert container.docker is not None
        docker: Json = {"image": image, "network": {"host": "HOST", "container/bridge": "BRIDGE"}.get(mode, "USER"),
                        "privileged": container.docker.privileged,
                        "force_pull_image": container.docker.force_pull_image}
        if mappings:
            docker["port_mappings"] = mappings
        if container.docker.parameters:
            docker["parameters"] = [{"key": p.key, "value": p.value} for p in container.docker.parameters]
        info["docker"] = docker
        if mode == "container":
            info["network_infos"] = [{"name": n} for n in app.network_names]
        return info
    info["mesos"] = {"image": {"type": "DOCKER", "docker": {"name": image}}}
    if mode == "container/bridge":
        info["network_infos"] = [{"name": "mesos-bridge", **({"port_mappings": mappings} if mappings else {})}]
    elif mode == "container":
        info["network_infos"] = [{"name": n, **({"port_mappings": mappings} if mappings else {})}
                                 for n in app.network_names]
    return info


def discovery_info(app: AppDefinition, instance: Instance) -> Json:
    specs = [s for s in app.port_specs() if s.host_port is not None]
    ports = []
    for spec, number in zip(specs, instance.ports):
        for protocol in _protocols(spec.protocol):
            port: Json = {"number": number, "protocol": protocol}
            if spec.name:
                port["name"] = spec.name
            if spec.labels:
                port["labels"] = _labels(spec.labels)
            ports.append(port)
    return {"visibility": "FRAMEWORK", "name": task_name(app.id), "ports": {"ports": ports}}


def health_check_info(app: AppDefinition, instance: Instance) -> Json | None:
    """The app's first Mesos-run health check, as Mesos's HealthCheck (Marathon's checks run in Pacer)."""
    check = next((c for c in app.health_checks if c.protocol in MESOS_CHECKS), None)
    if check is None:
        return None
    out: Json = {"type": MESOS_CHECKS[check.protocol], "delay_seconds": float(check.delay_seconds),
                 "interval_seconds": float(check.interval_seconds), "timeout_seconds": float(check.timeout_seconds),
                 "consecutive_failures": check.max_consecutive_failures,
                 "grace_period_seconds": float(check.grace_period_seconds)}
    if check.protocol == "COMMAND":
        assert check.command is not None
        out["command"] = {"shell": True, "value": check.command.value}
        return out
    port = check.port
    if port is None and check.port_index is not None and check.port_index < len(instance.ports):
        spec = [s for s in app.port_specs() if s.host_port is not None][check.port_index]
        port = spec.container_port if app.networking_mode != "host" and spec.container_port else \
            instance.ports[check.port_index]
    if port is None:
        return None
    if out["type"] == "HTTP":
        out["http"] = {"port": port, "path": check.path or "/", "protocol": check.ip_protocol,
                       **({"scheme": "https"} if check.protocol == "MESOS_HTTPS" else {})}
    else:
        out["tcp"] = {"port": port, "protocol": check.ip_protocol}
    return out


def executor_needs(app: AppDefinition) -> dict[str, float]:
    """What `pacer executor` itself takes from the offers (nothing for Mesos's own executors):
    the app's `executorResources`, else a small default."""
    if app.executor != PACER_EXECUTOR:
        return {}
    res = app.executor_resources
    if res is None:
        return dict(PACER_EXECUTOR_RESOURCES)
    return {"cpus": res.cpus, "mem": res.mem, "disk": res.disk}


def launch_needs(app: AppDefinition) -> dict[str, float]:
    """The task's resources plus its executor's: what its agent's offers must hold."""
    total = needs(app)
    for name, amount in executor_needs(app).items():
        total[name] = total.get(name, 0.0) + amount
    return total


def executor_command() -> list[str]:
    """`pacer executor` of this very install: the interpreter running Pacer, with `-m pacer.cli`
    (no reliance on a `pacer` script on the agent's PATH)."""
    return [sys.executable or "python3", "-m", "pacer.cli", "executor"]


def executor_info(task_id: str, app: AppDefinition, resources: list[Json]) -> Json:
    """The ExecutorInfo of a task run by `pacer executor` (one executor per task, named after it)."""
    argv = executor_command()
    return {"type": "CUSTOM", "executor_id": {"value": f"pacer-{task_id}"},
            "name": f"pacer executor for {task_name(app.id)}", "resources": resources,
            "command": {"shell": False, "value": argv[0], "arguments": argv}}


def task_info(instance: Instance, app: AppDefinition, resources: list[Json],
              executor_resources: list[Json] | None = None) -> Json:
    """The TaskInfo launching `instance` of `app` with `resources` taken from its agent's offers.

    With `"executor": "pacer"` the task names `pacer executor` in an `executor` ExecutorInfo (with
    `executor_resources`). Mesos refuses a TaskInfo with both a command and an executor, so the
    task's CommandInfo then travels as JSON in `data` (bytes Mesos passes on untouched), where
    `executor.mesos_protocol.task_command_info` reads it."""
    specs = [s for s in app.port_specs() if s.host_port is not None]
    env = marathon_task_env(
        app_id=app.id, app_version=instance.version, task_id=instance.instance_id, host=instance.host,
        ports=instance.ports, port_names=[s.name for s in specs], cpus=app.cpus, mem=app.mem, disk=app.disk,
        gpus=app.gpus, labels=app.labels, user_env={k: v for k, v in app.env.items() if isinstance(v, str)},
        docker_image=_image(app))
    info: Json = {"name": task_name(app.id), "task_id": {"value": instance.instance_id},
                  "agent_id": {"value": instance.agent_id}, "resources": resources,
                  "command": command_info(app, env), "discovery": discovery_info(app, instance)}
    if app.executor == PACER_EXECUTOR:
        info["data"] = base64.b64encode(json.dumps(info.pop("command")).encode()).decode()
        info["executor"] = executor_info(instance.instance_id, app, executor_resources or [])
    if app.labels:
        info["labels"] = _labels(app.labels)
    if app.task_kill_grace_period_seconds is not None:
        info["kill_policy"] = kill_policy(float(app.task_kill_grace_period_seconds))
    container = container_info(app, instance)
    if container is not None:
        info["container"] = container
    check = health_check_info(app, instance)
    if check is not None:
        info["health_check"] = check
    return info


def needs(app: AppDefinition) -> dict[str, float]:
    return {"cpus": app.cpus, "mem": app.mem, "disk": app.disk, "gpus": float(app.gpus)}


# -- status updates -------------------------------------------------------------------------

def supersedes(previous: str | None, new: str) -> bool:
    """Whether `new` moves a task on from `previous`: repeats and regressions do not."""
    if previous is None:
        return True
    if previous in TERMINAL_STATES or new == previous:
        return False
    if new in TERMINAL_STATES:
        return True
    return _RANK.get(new, 0) >= _RANK.get(previous, 0)


def acknowledge_call(agent_id: str, task_id: str, update_uuid: str) -> Json:
    """The ACKNOWLEDGE of one status update (its uuid as the update carried it: base64)."""
    return {"type": "ACKNOWLEDGE", "acknowledge": {"agent_id": {"value": agent_id}, "task_id": {"value": task_id},
                                                   "uuid": update_uuid}}


def status_update(status: Mapping[str, Any]) -> StatusUpdate:
    message = status.get("message") or status.get("reason") or ""
    found = _EXIT.search(message)
    healthy = status.get("healthy")
    return StatusUpdate(status["task_id"]["value"], status["state"], message,
                        int(found.group(1)) if found else None,
                        healthy=healthy if isinstance(healthy, bool) else None)
