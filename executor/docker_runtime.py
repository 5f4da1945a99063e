"""Running tasks as Docker containers through the docker SDK, on the process runtime's lifecycle.

The shape is ``ProcessRuntime``'s: ``launch`` returns a handle the scheduler persists, ``on_exit``
is called exactly once per task for every way it ends (its own exit, our kill, an OOM kill),
``adopt`` re-attaches after a scheduler restart, ``kill`` waits for the end, ``close(kill=False)``
leaves containers running for the next scheduler to adopt. Differences: ``launch`` takes a
:class:`~executor.docker_spec.ContainerLaunch` and returns a
:class:`~executor.docker_spec.ContainerHandle`, and ``start`` must be awaited first (it connects).

How, and why:

* **No blocking call on the event loop.** The SDK is synchronous; every engine call runs on a
  private thread pool (``workers`` threads, default 16, and as many pooled HTTP connections),
  so the scheduler loop never waits on the engine and the default executor stays free.
* **Exits come from the engine's event stream**: one thread follows ``GET /events`` filtered to
  ``die`` events of this Pacer's containers (label ``pacer.home``) and hands each event to the
  loop. One thread and one connection serve any number of containers, where a blocking
  ``wait`` per container would need one thread each. Events missed while the stream was down
  are caught by a *reconcile*: one ``GET /containers/json`` compared with the watched set, run
  on every (re)connection of the stream, after adoptions, and every ``reconcile_seconds`` as a
  safety net. A reported death is always confirmed with ``inspect`` before it is reported.
* **Kill** sends the stop signal (SIGTERM, or the ``stop-signal`` parameter) through the API,
  waits on the loop for the death (no thread is held during the grace period), then SIGKILL;
  ``taskKillGracePeriodSeconds`` is the grace period. As with ``docker stop``, a PID 1 that does
  not handle SIGTERM (``busybox httpd``, ``sh``) is only stopped by the SIGKILL.
* **After an exit** the container's last log lines are copied to the task sandbox
  (``stdout``/``stderr``, Mesos' layout) and the container is removed with its anonymous
  volumes: nothing is left behind by a task that ended.
* **Images**: pulled only with ``forcePullImage`` (or the ``pull=always`` parameter) or when
  missing. Concurrent launches of one image share one check or pull; a present image is
  remembered for ``IMAGE_CACHE_SECONDS``.
  A failed pull raises :class:`ImageUnavailable` with the daemon's message.

Why two modules: this one is the asynchronous half, everything that runs on the event loop
(the per-task bookkeeping, launch/adopt/kill, exit collection, the reconciler) plus the thread
that follows the event stream and hands events to the loop. Every blocking engine call lives
in :mod:`executor.docker_engine` (``DockerEngine``, a small wrapper of ``docker.APIClient`` that
knows nothing of asyncio or of tasks) and is run here on the runtime's thread pool. The cut is
where the threads change: state on this side is only touched from the loop, and nothing on the
other side needs the loop. This half stays above 400 lines on purpose: launch, kill, exit
collection and close race one another over the same per-task ``_Watch`` flags, and those
invariants are easier to check kept in one class than spread over modules.

Errors (all under ``executor.errors.ExecutorError``; ``EngineUnavailable`` and
``ImageUnavailable`` are defined in :mod:`executor.docker_engine` and re-exported here)::

    ExecutorError
    ├── EngineUnavailable        the engine does not answer (start)
    └── LaunchFailed             the engine refused the container (message = daemon's message)
        └── ImageUnavailable     the image is missing and could not be pulled

All methods must be called from the event loop thread.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from executor.docker_engine import (
    DockerEngine,
    EngineEvents,
    EngineUnavailable,
    ImageUnavailable,
    explain,
    is_not_found,
)
from executor.docker_spec import (
    LABEL_SCOPE,
    ContainerExit,
    ContainerHandle,
    ContainerInfo,
    ContainerLaunch,
    ContainerUsage,
    container_exit,
    container_info,
    container_options,
    usage_from_stats,
)
from executor.errors import ExecutorError, LaunchFailed, RuntimeClosed, TaskAlreadyRunning
from periodic import run_periodically

__all__ = ["DockerRuntime", "EngineUnavailable", "ImageUnavailable"]

log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")

DEFAULT_WORKERS = 16
DEFAULT_RECONCILE_SECONDS = 15.0
API_TIMEOUT_SECONDS = 60.0
IMAGE_CACHE_SECONDS = 30.0
KILL_CONFIRM_SECONDS = 20.0
"""After SIGKILL, how long to wait for the engine's ``die`` before checking the container directly."""
COLLECT_RETRIES = 5
EVENTS_RECONNECT_SECONDS = 1.0


@dataclass(slots=True, eq=False)
class _Watch:
    """Per-task bookkeeping."""

    task_id: str
    container_id: str | None        # None until the container is created
    grace: float
    stop_signal: str
    mem_mb: float | None
    sandbox: Path | None
    host_network: bool
    ended: asyncio.Future[None]     # resolved once the end is reported (or on detach)
    launched: asyncio.Future[None]  # resolved once launch() is done with the task, either way
    launching: bool = False
    died_while_launching: bool = False
    killing: bool = False
    collecting: bool = False

    @property
    def handle(self) -> ContainerHandle:
        assert self.container_id is not None
        return ContainerHandle(self.task_id, self.container_id)


class DockerRuntime:
    """Starts tasks as containers on one engine and reports each task's end exactly once."""

    def __init__(self, on_exit: Callable[[ContainerExit], None], *, base_url: str, scope: str,
                 workers: int = DEFAULT_WORKERS, reconcile_seconds: float = DEFAULT_RECONCILE_SECONDS,
                 api_timeout: float = API_TIMEOUT_SECONDS) -> None:
        self.base_url = base_url
        self.scope = scope
        self._scope_labels = {LABEL_SCOPE: scope}
        self._on_exit = on_exit
        self._workers = workers
        self._reconcile_seconds = reconcile_seconds
        self._api_timeout = api_timeout
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pacer-docker")
        self._engine: DockerEngine | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: dict[str, _Watch] = {}
        self._by_container: dict[str, _Watch] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._image_checks: dict[tuple[str, bool], asyncio.Task[None]] = {}
        self._images_seen: dict[str, float] = {}
        self._stopping = threading.Event()
        self._stream: EngineEvents | None = None
        self._stream_lock = threading.Lock()
        self._events_thread: threading.Thread | None = None
        self._reconciler: asyncio.Task[None] | None = None
        self._reconcile_soon: asyncio.Event | None = None
        self._started = False
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (negotiating the API version), start the event follower and the reconciler.

        Raises ``EngineUnavailable`` when the engine does not answer.
        """
        self._check_open()
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        engine = await self._call(DockerEngine.connect, self.base_url, scope=self.scope,
                                  timeout=self._api_timeout, pool_size=self._workers)
        self._engine = engine
        self._started = True
        self._reconcile_soon = asyncio.Event()
        self._events_thread = threading.Thread(target=self._follow_events, args=(engine,),
                                               name="pacer-docker-events", daemon=True)
        self._events_thread.start()
        self._reconciler = self._loop.create_task(self._reconcile_forever(), name="docker-reconcile")

    async def close(self, kill: bool = False) -> None:
        """Stop watching; ``kill=True`` kills (and removes) every container first.

        With ``kill=False`` the containers keep running, as tasks outlive a Mesos agent
        restart, and a later runtime adopts them; kills and exit reports in progress finish first.
        """
        if self._closed:
            return
        self._closed = True  # no launch or adoption from now on; exits are still collected
        if kill:
            await asyncio.gather(*(self.kill(task_id) for task_id in list(self._tasks)), return_exceptions=True)
        else:
            pending = [w.launched if w.launching else w.ended
                       for w in self._tasks.values() if w.killing or w.collecting or w.launching]
            await asyncio.gather(*(asyncio.shield(f) for f in pending), return_exceptions=True)
        self._stopping.set()
        with self._stream_lock:
            stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.interrupt()
            except Exception:  # the stream may already be broken
                pass
        if self._reconciler is not None:
            self._reconciler.cancel()
            await asyncio.gather(self._reconciler, return_exceptions=True)
        for task in list(self._background):
            if not task.done():
                await asyncio.gather(asyncio.shield(task), return_exceptions=True)
        for watch in list(self._tasks.values()):
            self._forget(watch)
            if not watch.ended.done():
                watch.ended.set_result(None)
        if self._events_thread is not None:
            thread = self._events_thread
            await asyncio.get_running_loop().run_in_executor(None, thread.join, 5.0)
        engine, self._engine = self._engine, None
        self._pool.shutdown(wait=False, cancel_futures=True)
        if engine is not None:
            engine.close()

    # -- tasks -------------------------------------------------------------------------

    async def launch(self, spec: ContainerLaunch) -> ContainerHandle:
        """Pull if needed, create and start the container; raises ``LaunchFailed`` with the daemon's reason.

        The task is watched from the start of the launch, so a ``kill`` arriving meanwhile
        waits for the container to exist and then stops it.
        """
        self._check_started()
        if spec.task_id in self._tasks:
            raise TaskAlreadyRunning(f"task {spec.task_id} is already running")
        options = container_options(spec, self._scope_labels)  # InvalidTaskSpec on bad parameter values
        loop = asyncio.get_running_loop()
        watch = _Watch(task_id=spec.task_id, container_id=None, grace=spec.kill_grace_seconds,
                       stop_signal=options.stop_signal, mem_mb=spec.mem_mb or None, sandbox=spec.sandbox,
                       host_network=spec.network == "host", ended=loop.create_future(),
                       launched=loop.create_future(), launching=True)
        self._tasks[spec.task_id] = watch
        try:
            if spec.sandbox is not None:
                await self._call(spec.sandbox.mkdir, parents=True, exist_ok=True)
            await self._ensure_image(spec.image, options.force_pull)
            if watch.killing:
                raise LaunchFailed(f"task {spec.task_id} was killed while its image was prepared")
            try:
                watch.container_id = await self._engine_call(DockerEngine.create, options)
            except LaunchFailed as exc:
                if is_not_found(exc.__cause__):  # the image went away since it was checked
                    self._images_seen.pop(options.create["image"], None)
                raise
            self._by_container[watch.container_id] = watch
            await self._engine_call(DockerEngine.start, watch.handle)
        except BaseException as exc:
            self._forget(watch)
            if watch.container_id is not None:  # created but not started: remove it
                cleanup = loop.create_task(self._engine_call(DockerEngine.discard, watch.container_id, watch.sandbox))
                self._background.add(cleanup)
                cleanup.add_done_callback(self._background.discard)
                if not isinstance(exc, asyncio.CancelledError):
                    await asyncio.gather(cleanup, return_exceptions=True)
            watch.ended.set_result(None)
            watch.launched.set_result(None)
            if isinstance(exc, Exception) and not isinstance(exc, ExecutorError):
                raise LaunchFailed(f"cannot launch task {spec.task_id}: {explain(exc)}") from exc
            raise
        watch.launching = False
        watch.launched.set_result(None)
        if watch.died_while_launching:
            self._begin_collect(watch)
        return watch.handle

    def adopt(self, handle: ContainerHandle, *, grace_seconds: float = 3.0, stop_signal: str = "SIGTERM",
              mem_mb: float | None = None, sandbox: Path | None = None, host_network: bool = True) -> bool:
        """Watch a container started by an earlier scheduler (listed running by ``containers``).

        A container that died between the listing and this call is found by the reconcile
        that adoption schedules, and reported then. Adopting a handle that is already watched
        returns True; the same container under another task id, False.
        """
        self._check_started()
        existing = self._tasks.get(handle.task_id)
        if existing is not None:
            return existing.container_id == handle.container_id
        if handle.container_id in self._by_container:
            return False
        loop = asyncio.get_running_loop()
        watch = _Watch(task_id=handle.task_id, container_id=handle.container_id, grace=grace_seconds,
                       stop_signal=stop_signal, mem_mb=mem_mb, sandbox=sandbox, host_network=host_network,
                       ended=loop.create_future(), launched=loop.create_future())
        watch.launched.set_result(None)
        self._tasks[handle.task_id] = watch
        self._by_container[handle.container_id] = watch
        self.request_reconcile()
        return True

    async def kill(self, task_id: str, grace_seconds: float | None = None) -> None:
        """Stop signal, then SIGKILL after the grace period; returns once the end is reported.

        Idempotent and safe to call concurrently; unknown ids are a no-op.
        """
        watch = self._tasks.get(task_id)
        if watch is None:
            return
        grace = watch.grace if grace_seconds is None else grace_seconds
        watch.killing = True
        if watch.launching:
            await asyncio.shield(watch.launched)
            if self._tasks.get(task_id) is not watch:
                return  # the launch failed: nothing runs
        if not watch.collecting:
            await self._signal(watch, watch.stop_signal if grace > 0 else "SIGKILL")
        try:
            await asyncio.wait_for(asyncio.shield(watch.ended), timeout=max(grace, 0.0))
            return
        except TimeoutError:
            pass
        if not watch.collecting:
            await self._signal(watch, "SIGKILL")
        try:
            await asyncio.wait_for(asyncio.shield(watch.ended), timeout=KILL_CONFIRM_SECONDS)
        except TimeoutError:
            log.warning("task %s: no exit seen %.0f s after SIGKILL; checking the container", task_id,
                        KILL_CONFIRM_SECONDS)
            self._begin_collect(watch)
            await asyncio.shield(watch.ended)

    def is_running(self, task_id: str) -> bool:
        """Whether the task is watched (launching or running) and its end has not been reported."""
        return task_id in self._tasks

    def running(self) -> list[ContainerHandle]:
        """Handles of all watched, started tasks."""
        return [w.handle for w in self._tasks.values() if w.container_id is not None and not w.launching]

    # -- engine-wide queries -------------------------------------------------------------

    async def containers(self) -> list[ContainerInfo]:
        """Every container of this Pacer (its scope label), running or not."""
        summaries = await self._engine_call(DockerEngine.containers)
        return [info for info in map(container_info, summaries) if info is not None]

    async def remove(self, container_id: str, stop_timeout: float = 1.0) -> None:
        """Stop (signal, then SIGKILL after ``stop_timeout``) and remove a container we do not watch."""
        await self._engine_call(DockerEngine.stop_and_remove, container_id, stop_timeout)

    async def networks(self) -> list[str]:
        """Names of the engine's networks (``bridge``, ``host``, ``none`` and user-defined ones)."""
        return await self._engine_call(DockerEngine.networks)

    async def ping(self) -> str | None:
        """None when the engine answers, else why not."""
        try:
            await self._engine_call(DockerEngine.ping)
            return None
        except Exception as exc:
            return explain(exc)

    async def usages(self, task_ids: Iterable[str] | None = None) -> dict[str, ContainerUsage]:
        """One-shot stats of the watched running containers (or of ``task_ids``); missing ones are absent."""
        wanted = set(task_ids) if task_ids is not None else None
        watches = [w for w in self._tasks.values()
                   if w.container_id and not w.launching and not w.collecting
                   and (wanted is None or w.task_id in wanted)]
        results = await asyncio.gather(*(self._engine_call(DockerEngine.stats, w.handle.container_id) for w in watches),
                                       return_exceptions=True)
        usages: dict[str, ContainerUsage] = {}
        for watch, stats in zip(watches, results):
            if isinstance(stats, BaseException) or not stats:
                continue
            usage = usage_from_stats(stats, host_network=watch.host_network)
            if usage is not None:
                usages[watch.task_id] = usage
        return usages

    def request_reconcile(self) -> None:
        """Compare the watched containers with the engine's list soon (on the reconciler task)."""
        if self._reconcile_soon is not None:
            self._reconcile_soon.set()

    async def reconcile(self) -> None:
        """Report every watched container the engine no longer lists as running."""
        running = await self._engine_call(DockerEngine.running_ids)
        for watch in list(self._tasks.values()):
            if watch.container_id and not watch.launching and watch.container_id not in running:
                self._begin_collect(watch)

    # -- internals: engine calls (on the worker threads) ---------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    async def _engine_call(self, method: Callable[Concatenate[DockerEngine, P], T],
                           *args: P.args, **kwargs: P.kwargs) -> T:
        """Run an engine method on the pool; the engine is looked up there, when the call runs.

        So a call queued before ``close`` and run after it raises ``RuntimeClosed`` from
        the worker (and is reported through the awaited future) like any other engine error.
        """
        def run() -> T:
            return method(self._engine_or_fail(), *args, **kwargs)
        return await self._call(run)

    def _engine_or_fail(self) -> DockerEngine:
        if self._engine is None:
            raise RuntimeClosed("the Docker runtime is not connected")
        return self._engine

    # -- internals: loop side ----------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeClosed("the Docker runtime is closed")

    def _check_started(self) -> None:
        self._check_open()
        if not self._started:
            raise RuntimeClosed("the Docker runtime is not started")

    async def _ensure_image(self, image: str, force_pull: bool) -> None:
        if not force_pull:
            seen = self._images_seen.get(image)
            if seen is not None and time.monotonic() - seen < IMAGE_CACHE_SECONDS:
                return
        key = (image, force_pull)
        check = self._image_checks.get(key)
        if check is None:
            check = asyncio.get_running_loop().create_task(
                self._engine_call(DockerEngine.ensure_image, image, force_pull))
            self._image_checks[key] = check
            check.add_done_callback(lambda _t: self._image_checks.pop(key, None))
        await asyncio.shield(check)
        self._images_seen[image] = time.monotonic()

    async def _signal(self, watch: _Watch, signal: str) -> None:
        assert watch.container_id is not None
        try:
            alive = await self._engine_call(DockerEngine.signal, watch.container_id, signal)
        except Exception as exc:  # the engine hiccupped: the deadline logic retries with SIGKILL
            log.warning("task %s: sending %s failed: %s", watch.task_id, signal, explain(exc))
            return
        if not alive:
            self._begin_collect(watch)

    def _forget(self, watch: _Watch) -> None:
        if self._tasks.get(watch.task_id) is watch:
            del self._tasks[watch.task_id]
        if watch.container_id and self._by_container.get(watch.container_id) is watch:
            del self._by_container[watch.container_id]

    def _begin_collect(self, watch: _Watch) -> None:
        if watch.collecting or watch.ended.done() or self._tasks.get(watch.task_id) is not watch:
            return
        watch.collecting = True
        task = asyncio.get_running_loop().create_task(self._collect(watch), name=f"docker-exit-{watch.task_id}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _collect(self, watch: _Watch) -> None:
        """Confirm the death, clean up, report. Retries while the engine does not answer."""
        assert watch.container_id is not None
        state: dict[str, Any] | None = None
        for attempt in range(COLLECT_RETRIES):
            try:
                running, state = await self._engine_call(DockerEngine.finish, watch.container_id, watch.sandbox)
                break
            except Exception as exc:
                if self._engine is None:
                    watch.collecting = False
                    return
                log.warning("task %s: cannot inspect its container (%s); retrying", watch.task_id, explain(exc))
                await asyncio.sleep(1.0 * (attempt + 1))
        else:
            running, state = False, None
        if running:  # a false alarm (listed before it started): keep watching
            watch.collecting = False
            return
        self._finish(watch, container_exit(watch.task_id, state, killed=watch.killing, mem_mb=watch.mem_mb))

    def _finish(self, watch: _Watch, report: ContainerExit) -> None:
        self._forget(watch)
        if not watch.ended.done():
            watch.ended.set_result(None)
        try:
            self._on_exit(report)
        except Exception:  # one failing consumer must not stop the reports of others
            log.exception("on_exit callback failed for %s", report)

    def _on_event(self, event: dict[str, Any]) -> None:
        container_id = event.get("id") or (event.get("Actor") or {}).get("ID")
        watch = self._by_container.get(container_id) if container_id else None
        if watch is None:
            return
        if watch.launching:
            watch.died_while_launching = True
            return
        self._begin_collect(watch)

    async def _reconcile_forever(self) -> None:
        """Reconcile every ``reconcile_seconds``, or soon after ``request_reconcile``."""
        assert self._reconcile_soon is not None
        await run_periodically("docker reconcile", self._reconcile_round, self._reconcile_seconds,
                               log=log, wake=self._reconcile_soon, first_delay=True)

    async def _reconcile_round(self) -> None:
        # `close` cancels the reconciler; the flag also ends it should a cancellation be lost
        # in an engine call on the way
        if self._stopping.is_set():
            raise asyncio.CancelledError
        await self.reconcile()

    # -- internals: event stream (its own thread) --------------------------------------

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop closed meanwhile
            pass

    def _follow_events(self, engine: DockerEngine) -> None:
        while not self._stopping.is_set():
            stream: EngineEvents | None = None
            try:
                stream = engine.events()
                with self._stream_lock:
                    if self._stopping.is_set():
                        stream.interrupt()
                        break
                    self._stream = stream
                self._post(self.request_reconcile)  # catches deaths while the stream was down
                for event in stream:
                    self._post(self._on_event, event)
            except Exception as exc:
                if not self._stopping.is_set():
                    log.warning("docker event stream from %s broke (%s); reconnecting", self.base_url, explain(exc))
            finally:
                with self._stream_lock:
                    self._stream = None
                if stream is not None:
                    stream.close()
            self._stopping.wait(EVENTS_RECONNECT_SECONDS)
