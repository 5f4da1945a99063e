"""The embedded backend: N agents inside `pacer serve`, tasks run as local processes or containers.

The agents behave like Mesos agents on one host: each has its own resources, a disjoint host
port range and attributes, and offers what is free. Apps run as processes in their own process
groups, or, for `container.type: DOCKER`, as containers on the Docker engine at `docker_host`
(the executor's Docker runtime). Both survive a crash of the scheduler and are re-adopted when
it comes back: processes by pid + start time, containers by their `pacer.task-id` label.

Where cgroups are writable (root, controllers mounted), each process task also gets a cgroup
at `pacer/<home hash>/<task id>` holding `mem` as its memory limit, `cpus` as CPU shares (a hard
quota with `cpu_quota`) and `pids_max`; killing it takes every descendant, escapees included.
Elsewhere tasks are process groups only, said once in the log; `isolation` names the mode.
Recovery finds an adopted task's cgroup again from its id and removes the cgroups of tasks it
does not adopt.

Disk: a task's stdout/stderr are capped and rotated by a logger process of its own (`logs`, lowered
per app by the `PACER_LOG_*` labels; for containers, the engine's json-file driver with the same
caps); below `disk.min_free_mb` free under the home every app waits in `/v2/queue` saying so; once
the tasks of an earlier run are adopted, the sandboxes of ended tasks are collected (`AgentDisk`).

Docker, as the backend sees it:

* No engine configured, or the engine does not answer: DOCKER apps wait in `/v2/queue` with
  that reason (`unsupported_reason`); the backend retries the connection every
  `DOCKER_RETRY_SECONDS` and runs DOCKER apps once it answers. Process apps are unaffected.
* An image that could not be pulled holds back the apps using it, with the daemon's message as
  the queue reason, for a delay doubling from `IMAGE_RETRY_SECONDS` to `IMAGE_RETRY_MAX_SECONDS`
  (the failed launch itself is a TASK_FAILED, as in Marathon). Any successful launch of the
  image lifts it.
* Recovery lists this Pacer's containers (label `pacer.home` = the home directory): running
  ones of remembered tasks are adopted with the ports and app version read back from their
  labels; exited ones are removed and their tasks reported lost; containers of tasks the store
  does not know (a deleted app, an interrupted launch) are stopped and removed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from app_definitions import AppDefinition
from executor import (
    DEFAULT_PIDS_MAX,
    CgroupOptions,
    LaunchFailed,
    ProcessHandle,
    ProcessRuntime,
    ResourceUsage,
    TaskExit,
    TaskLaunch,
    Unavailable,
    marathon_task_env,
    task_command,
)
from executor.docker_spec import ContainerHandle, ContainerInfo
from executor.sandbox_files import FileChunk, FileMissing, OpenedFile
from executor.sandboxes import DiskPolicy
from executor.task_logs import LogPolicy
from periodic import run_periodically

if TYPE_CHECKING:  # the runtime (and the docker SDK, ~0.1 s to import) load only when Docker is configured
    from executor.docker_runtime import DockerRuntime

from scheduler.state.model import Instance
from scheduler.state.usage import AgentUsage
from scheduler.decide.placement import AgentOffer
from scheduler.backends import DEFAULT_LAUNCH_CONCURRENCY, BackendInfo, Recovery, StatusCallback, StatusUpdate
from scheduler.backends.agents import (DEFAULT_CGROUP_ROOT, HOME_ENV, AgentDisk, AgentSpec, build_agents,
                                      OfferCache, compute_offers, detected_resources, find_task_processes, open_task_cgroups,
                                      remove_task_cgroups, task_cgroup_parent)
from scheduler.backends.containers import _ImageGate, container_launch, docker_unsupported, is_docker_app
from scheduler.backends.local_files import open_local_task_file, read_local_task_file

log = logging.getLogger(__name__)

DOCKER_RETRY_SECONDS = 5.0
IMAGE_RETRY_SECONDS = 5.0
IMAGE_RETRY_MAX_SECONDS = 300.0
STRAY_STOP_SECONDS = 1.0
NETWORK_REFRESH_SECONDS = 30.0
BUILTIN_DOCKER_NETWORKS = frozenset({"host", "none", "bridge"})


class LocalBackend:
    """Agents in this process; the executor's process and Docker runtimes do the running."""

    launch_concurrency = DEFAULT_LAUNCH_CONCURRENCY

    def __init__(self, agents: Sequence[AgentSpec], home: Path, on_status: StatusCallback,
                 docker_host: str | None = None, *, cpu_quota: bool = False,
                 pids_max: int | None = DEFAULT_PIDS_MAX, cgroup_root: Path | None = DEFAULT_CGROUP_ROOT,
                 logs: LogPolicy = LogPolicy(), disk: DiskPolicy = DiskPolicy()) -> None:
        self.agents = list(agents)
        self.home = home.resolve()
        self.sandboxes = self.home / "sandboxes"
        self._on_status = on_status
        cgroups = open_task_cgroups(cgroup_root, self.home, CgroupOptions(cpu_quota=cpu_quota, pids_max=pids_max))
        if isinstance(cgroups, Unavailable):
            log.warning("process tasks are isolated by process groups only (%s): app mem and cpus are not "
                        "enforced, and processes that leave a task's group outlive it", cgroups.reason)
            cgroups = None
        self.runtime = ProcessRuntime(on_exit=self._task_exited, cgroups=cgroups)
        self.isolation: str = self.runtime.isolation  # cgroups-v1, cgroups-v2 or process-group
        if cgroups is not None:
            log.info("process tasks run in %s cgroups under %s (cpu quota %s, pids limit %s)", self.isolation,
                     cgroups.parent, "on" if cpu_quota else "off", pids_max or "none")
        self.docker_host = docker_host or None
        self.docker: DockerRuntime | None = None
        self._docker_error: str | None = None
        self._docker_retry: asyncio.Task[None] | None = None
        self._image_gates: dict[str, _ImageGate] = {}
        self._engine_networks: frozenset[str] = frozenset()
        self._network_refresh: asyncio.Task[None] | None = None
        self._closed = False
        self.logs = logs
        self.disk = AgentDisk(self.home, self.sandboxes, disk)
        # launches in flight, by task id: their sandboxes are in use, and a kill waits for them
        self._launching: dict[str, asyncio.Future[None]] = {}
        self._sandbox_gc: asyncio.Task[None] | None = None
        self._offer_cache = OfferCache()

    def _task_exited(self, exit_: TaskExit) -> None:
        self.disk.task_ended(exit_.task_id, exit_.state)
        self._on_status(StatusUpdate(exit_.task_id, exit_.state, exit_.message, exit_.exit_code))

    def offers(self, usage: Mapping[str, AgentUsage]) -> list[AgentOffer]:
        offers = self._offer_cache.offers(self.agents, usage)
        if self._engine_networks:  # the engine's user-defined networks are on every agent of this host
            offers = [replace(o, networks=o.networks | self._engine_networks) for o in offers]
        return offers

    def pass_finished(self, launched: Sequence[Instance]) -> None:
        """Offers are computed from the agents each pass: nothing is held, nothing to decline."""

    def unsupported_reason(self, app: AppDefinition) -> str | None:
        reason = self.disk.launch_blocked() or self._log_label_problem(app)
        if reason is not None or not is_docker_app(app):
            return reason
        if self.docker_host is None:
            return ("container type DOCKER: no Docker engine is configured "
                    "(set DOCKER_HOST or start pacer serve with --docker-host)")
        if self.docker is None:
            return f"container type DOCKER: {self._docker_error or f'connecting to the Docker engine at {self.docker_host}'}"
        problem = docker_unsupported(app)
        if problem is not None:
            return problem
        assert app.container is not None and app.container.docker is not None
        gate = self._image_gates.get(app.container.docker.image or "")
        if gate is not None:
            left = gate.until - time.monotonic()
            if left > 0:
                return f"{gate.message} (next attempt in {left:.0f} s)"
        return None

    # -- Docker engine connection -----------------------------------------------------

    async def _start_docker(self) -> DockerRuntime | None:
        """A started Docker runtime, or None (with `_docker_error` saying why) when the engine is silent."""
        if self.docker_host is None or self._closed:
            return None
        from executor.docker_runtime import DockerRuntime, EngineUnavailable

        runtime = DockerRuntime(self._task_exited, base_url=self.docker_host, scope=str(self.home))
        try:
            await runtime.start()
        except EngineUnavailable as exc:
            if self._docker_error != str(exc):
                log.warning("%s; DOCKER apps wait until it does", exc)
            self._docker_error = str(exc)
            await runtime.close()
            return None
        self._docker_error = None
        log.info("Docker runtime connected to %s", self.docker_host)
        return runtime

    async def _use_docker(self, runtime: DockerRuntime) -> None:
        """From now on DOCKER apps run on `runtime`."""
        await self._refresh_networks(runtime)
        self._network_refresh = asyncio.get_running_loop().create_task(self._refresh_networks_forever(runtime),
                                                                       name="docker-networks")
        self.docker = runtime

    async def _refresh_networks(self, runtime: DockerRuntime) -> None:
        try:
            names = await runtime.networks()
        except Exception as exc:
            log.warning("cannot list the Docker engine's networks: %s", exc)
            return
        self._engine_networks = frozenset(names) - BUILTIN_DOCKER_NETWORKS

    async def _refresh_networks_forever(self, runtime: DockerRuntime) -> None:
        """Named container networks come and go with `docker network create/rm`: offer what exists."""
        await run_periodically("docker networks", lambda: self._refresh_networks(runtime), NETWORK_REFRESH_SECONDS,
                               log=log, first_delay=True)

    async def _retry_docker(self) -> None:
        """Connect once the engine answers; clear away what an earlier run left there, then run DOCKER apps."""
        while (runtime := await self._start_docker()) is None:
            await asyncio.sleep(DOCKER_RETRY_SECONDS)
        try:
            await self._remove_containers(runtime, await runtime.containers(), "left by an earlier run")
        except Exception as exc:  # pragma: no cover - the engine went away again
            log.warning("cannot list containers after connecting: %s", exc)
        await self._use_docker(runtime)

    @staticmethod
    async def _remove_containers(runtime: DockerRuntime, containers: Sequence[ContainerInfo], why: str) -> None:
        if not containers:
            return
        results = await asyncio.gather(
            *(runtime.remove(c.container_id, STRAY_STOP_SECONDS if c.running else 0.0) for c in containers),
            return_exceptions=True)
        for info, result in zip(containers, results):
            if isinstance(result, BaseException):
                log.warning("could not remove container %s (%s): %s", info.container_id[:12], info.task_id, result)
            else:
                log.warning("removed %s container %s of task %s %s", "running" if info.running else "exited",
                            info.container_id[:12], info.task_id, why)

    def _gate_image(self, image: str, message: str) -> None:
        previous = self._image_gates.get(image)
        delay = min(IMAGE_RETRY_MAX_SECONDS, previous.delay * 2) if previous else IMAGE_RETRY_SECONDS
        self._image_gates[image] = _ImageGate(message=message, until=time.monotonic() + delay, delay=delay)

    # -- tasks ------------------------------------------------------------------------

    def _log_label_problem(self, app: AppDefinition) -> str | None:
        try:
            self.logs.for_labels(app.labels)
        except ValueError as exc:
            return str(exc)
        return None

    def _live_tasks(self) -> set[str]:
        """Tasks whose sandboxes are in use: running, adopted, or being launched."""
        live = {h.task_id for h in self.runtime.running()} | set(self._launching)
        if self.docker is not None:
            live.update(h.task_id for h in self.docker.running())
        return live

    async def launch(self, instance: Instance, app: AppDefinition) -> Instance:
        # its sandbox exists before its task is watched
        launched = self._launching[instance.instance_id] = asyncio.get_running_loop().create_future()
        try:
            return await self._launch(instance, app)
        finally:
            del self._launching[instance.instance_id]
            launched.set_result(None)

    async def _launch(self, instance: Instance, app: AppDefinition) -> Instance:
        if is_docker_app(app):
            return await self._launch_container(instance, app)
        specs = app.port_specs()
        env = marathon_task_env(
            app_id=app.id, app_version=instance.version, task_id=instance.instance_id, host=instance.host,
            ports=instance.ports, port_names=[s.name for s in specs if s.host_port is not None],
            cpus=app.cpus, mem=app.mem, disk=app.disk, gpus=app.gpus, labels=app.labels,
            user_env={k: v for k, v in app.env.items() if isinstance(v, str)},
            docker_image=app.container.docker.image if app.container and app.container.docker else None)
        env[HOME_ENV] = str(self.home)
        launch = TaskLaunch(task_id=instance.instance_id, argv=task_command(app.cmd, app.args), env=env,
                            sandbox=self.sandboxes / instance.instance_id,
                            kill_grace_seconds=app.task_kill_grace_seconds, mem_mb=app.mem, cpus=app.cpus,
                            logs=self.logs.for_labels(app.labels))
        handle = await self.runtime.launch(launch)
        return instance.with_(pid=handle.pid, pid_start_time=handle.start_time)

    async def _launch_container(self, instance: Instance, app: AppDefinition) -> Instance:
        if self.docker is None:
            raise LaunchFailed(self._docker_error or "no Docker engine is configured")
        from executor.docker_runtime import ImageUnavailable

        logs = self.logs.for_labels(app.labels)
        spec = replace(container_launch(instance, app, self.sandboxes / instance.instance_id),
                       log_max_bytes=logs.max_bytes, log_files=logs.files)
        try:
            handle = await self.docker.launch(spec)
        except ImageUnavailable as exc:
            self._gate_image(exc.image, str(exc))
            raise
        self._image_gates.pop(spec.image, None)
        return instance.with_(container_id=handle.container_id)

    async def kill(self, instance: Instance, grace_seconds: float) -> None:
        task_id = instance.instance_id
        launching = self._launching.get(task_id)
        if launching is not None:  # "not running" now would orphan what the launch starts
            await asyncio.shield(launching)
        try:
            if self.docker is not None and self.docker.is_running(task_id):
                await self.docker.kill(task_id, grace_seconds)
                return
        except Exception:  # the engine failed us: the task keeps its killing state, nothing is reported
            log.exception("killing container of task %s failed", task_id)
            return
        if self.runtime.is_running(task_id):
            await self.runtime.kill(task_id, grace_seconds)
        else:
            self._on_status(StatusUpdate(task_id, "TASK_KILLED", "task was not running"))

    async def recover(self, instances: Sequence[Instance]) -> Recovery:
        containers: dict[str, ContainerInfo] = {}
        if self.docker_host is not None and self.docker is None:
            runtime = await self._start_docker()
            if runtime is not None:
                try:
                    containers = {c.task_id: c for c in await runtime.containers()}
                    await self._use_docker(runtime)
                except Exception as exc:  # answered the ping, failed the listing: retry from scratch
                    self._docker_error = f"cannot list the containers of the Docker engine at {self.docker_host}: {exc}"
                    log.warning("%s", self._docker_error)
                    await runtime.close()
            if self.docker is None:
                self._docker_retry = asyncio.get_running_loop().create_task(self._retry_docker(),
                                                                            name="docker-connect")
        alive, lost = [], []
        leftovers: list[ContainerInfo] = []
        for inst in instances:
            info = containers.pop(inst.instance_id, None)
            if info is not None:
                if info.running and self._adopt_container(inst, info):
                    ports = info.ports if info.ports is not None else inst.ports
                    alive.append(inst.with_(container_id=info.container_id, pid=None, pid_start_time=None,
                                            version=info.app_version or inst.version, ports=ports))
                else:
                    lost.append(inst)
                    leftovers.append(info)
            elif inst.container_id is None and inst.pid is not None and inst.pid_start_time is not None \
                    and self.runtime.adopt(ProcessHandle(task_id=inst.instance_id, pid=inst.pid,
                                                         start_time=inst.pid_start_time)):
                alive.append(inst)
            else:
                lost.append(inst)
        strays = list(containers.values())
        if self.docker is not None:
            await self._remove_containers(self.docker, leftovers, "(its task had ended)")
            await self._remove_containers(self.docker, strays,
                                          "(its task is unknown: a deleted app or an interrupted launch)")
        stray_cgroups = await self.runtime.remove_strays()
        for task_id, killed in stray_cgroups.items():
            log.warning("removed the cgroup of task %s (%d processes) left by an earlier run", task_id, killed)
        adopted = {inst.pid for inst in alive if inst.pid is not None}
        kept = {pid for inst in alive for pid in self.runtime.members(inst.instance_id)}  # escapees of live tasks
        stray_groups: dict[int, str] = {}
        for pid, task_id in find_task_processes(self.home).items():
            if pid in kept:
                continue
            try:
                pgid = os.getpgid(pid)
            except ProcessLookupError:
                continue
            if pgid not in adopted:
                stray_groups[pgid] = task_id
        for pgid, task_id in stray_groups.items():
            try:
                os.killpg(pgid, signal.SIGKILL)
                log.warning("killed stray task process group %s (%s) left by an earlier run", pgid, task_id)
            except ProcessLookupError:
                pass
        orphans = len(stray_groups) + sum(1 for c in strays if c.running) + sum(1 for n in stray_cgroups.values() if n)
        if self._sandbox_gc is None and not self._closed:  # what was not adopted has ended: collectable
            self._sandbox_gc = asyncio.get_running_loop().create_task(self.disk.run(self._live_tasks),
                                                                      name="sandbox-gc")
        return Recovery(alive=tuple(alive), lost=tuple(lost), orphans_killed=orphans)

    def _adopt_container(self, inst: Instance, info: ContainerInfo) -> bool:
        assert self.docker is not None
        return self.docker.adopt(ContainerHandle(inst.instance_id, info.container_id),
                                 mem_mb=inst.resources.get("mem") or None,
                                 sandbox=self.sandboxes / inst.instance_id,
                                 host_network=info.network == "host")

    async def usages(self) -> dict[str, ResourceUsage]:
        """Resource usage of every running task (processes and containers), by task id.

        Containers report a `ContainerUsage` (memory usage, working set and limit from the
        engine), and so do processes in a cgroup (from its counters); other processes a
        `ResourceUsage` summed over their process group.
        """
        result: dict[str, ResourceUsage] = await self.runtime.usages()
        if self.docker is not None:
            result.update(await self.docker.usages())
        return result

    def describe(self) -> list[dict[str, object]]:
        return [{"id": a.agent_id, "hostname": a.hostname, "resources": {"cpus": a.cpus, "mem": a.mem, "disk": a.disk},
                 "ports": f"[{a.port_range[0]}-{a.port_range[1]}]", "attributes": dict(a.attributes),
                 "isolation": self.isolation}
                for a in self.agents]

    def backend_info(self) -> BackendInfo:
        return BackendInfo()

    async def read_task_file(self, instance: Instance, name: str, offset: int, length: int) -> FileChunk | FileMissing:
        return await read_local_task_file(self.sandboxes, instance, name, offset, length)

    async def open_task_file(self, instance: Instance, name: str) -> OpenedFile | FileMissing:
        return await open_local_task_file(self.sandboxes, instance, name)

    async def close(self) -> None:
        self._closed = True
        for task in (self._docker_retry, self._network_refresh, self._sandbox_gc):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self.runtime.close(kill=False)
        if self.docker is not None:
            await self.docker.close(kill=False)


__all__ = ["DEFAULT_CGROUP_ROOT", "DEFAULT_PIDS_MAX", "AgentSpec", "LocalBackend", "build_agents", "compute_offers",
           "container_launch", "detected_resources", "docker_unsupported", "find_task_processes", "is_docker_app",
           "LaunchFailed", "open_task_cgroups", "remove_task_cgroups", "task_cgroup_parent"]
