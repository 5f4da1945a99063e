"""The blocking side of the Docker runtime: one engine, reached through the docker SDK.

:class:`DockerEngine` wraps a ``docker.APIClient`` and holds every synchronous call the
runtime makes: create and start a container, check or pull an image, send a signal, inspect a
container believed dead, copy its logs and remove it, stats, listings, ping, and the dedicated
connection that follows ``GET /events``. Each method blocks on HTTP and turns the SDK's errors
into Pacer's (``LaunchFailed``, :class:`ImageUnavailable`) or into plain results (``False``,
``None``) where a missing container is an ordinary outcome.

Why the split is here: this module knows the SDK and nothing of asyncio; it has no state but
the connection. :mod:`executor.docker_runtime` is the other half: it knows asyncio and the
tasks, keeps all the bookkeeping on the event loop and runs every method of this class on its
private thread pool. So a method here may block for as long as the engine takes, and none may
touch the loop or a task's bookkeeping; anything the runtime must learn comes back as a return
value or an exception.

Errors (all under ``executor.errors.ExecutorError``; re-exported by ``executor.docker_runtime``)::

    ExecutorError
    ├── EngineUnavailable        the engine does not answer (connect)
    ├── RuntimeClosed            a call after close()
    └── LaunchFailed             the engine refused the container (message = daemon's message)
        └── ImageUnavailable     the image is missing and could not be pulled

Methods may be called from any thread, concurrently (the client pools ``pool_size`` connections).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
from docker import errors as docker_errors
from docker.utils import parse_repository_tag

from executor.docker_spec import LABEL_SCOPE, ContainerHandle, ContainerOptions
from executor.errors import ExecutorError, LaunchFailed, RuntimeClosed

__all__ = ["DockerEngine", "EngineEvents", "EngineUnavailable", "ImageUnavailable", "explain", "is_not_found"]

LOG_TAIL_LINES = 1000
"""How many of a finished container's last log lines are copied into its sandbox."""


class EngineUnavailable(ExecutorError):
    """The Docker engine does not answer; the message names its address and the error."""


class ImageUnavailable(LaunchFailed):
    """The image is not on the engine and could not be pulled (message = the daemon's)."""

    def __init__(self, image: str, message: str) -> None:
        super().__init__(message)
        self.image = image


def explain(exc: BaseException) -> str:
    """The daemon's own words for an SDK error (``No such image: x``), else the error text."""
    if isinstance(exc, docker_errors.APIError) and exc.explanation:
        text = exc.explanation
        return text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    return str(exc) or type(exc).__name__


def is_not_found(exc: BaseException | None) -> bool:
    """Whether ``exc`` is the engine's 404 (no such container, image or network)."""
    return isinstance(exc, docker_errors.NotFound)


class EngineEvents:
    """``die`` events of one scope on a connection of their own; iterate for decoded events.

    Blocks between events for as long as none come; :meth:`interrupt`, from any thread, ends
    the iteration. :meth:`close` releases the connection once the iteration is over.
    """

    def __init__(self, base_url: str, api_version: str | None, filters: dict[str, list[str]]) -> None:
        self._client = docker.APIClient(base_url=base_url, version=api_version, timeout=None)
        try:
            self._stream: Any = self._client.events(decode=True, filters=filters)
        except BaseException:
            self.close()
            raise

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._stream)

    def interrupt(self) -> None:
        """Close the stream: a blocked iteration ends (with an error or at once)."""
        self._stream.close()

    def close(self) -> None:
        """Release the connection; never raises."""
        try:
            self._client.close()
        except Exception:
            pass


class DockerEngine:
    """One connection to one engine, seen through one scope label; every method blocks."""

    def __init__(self, api: docker.APIClient, *, base_url: str, scope: str) -> None:
        self._api: docker.APIClient | None = api
        self.base_url = base_url
        self.api_version: str | None = api.api_version
        self._scope_filter = {"label": [f"{LABEL_SCOPE}={scope}"]}

    @classmethod
    def connect(cls, base_url: str, *, scope: str, timeout: float, pool_size: int) -> DockerEngine:
        """Connect, negotiating the API version, and ping; ``EngineUnavailable`` when nothing answers."""
        try:
            api = docker.APIClient(base_url=base_url, version="auto", timeout=timeout, max_pool_size=pool_size)
            api.ping()
        except Exception as exc:
            raise EngineUnavailable(f"the Docker engine at {base_url} does not answer: {explain(exc)}") from exc
        return cls(api, base_url=base_url, scope=scope)

    def close(self) -> None:
        """Close the connection; later calls raise ``RuntimeClosed``."""
        api, self._api = self._api, None
        if api is not None:
            api.close()

    def _client(self) -> docker.APIClient:
        if self._api is None:
            raise RuntimeClosed("the Docker runtime is not connected")
        return self._api

    # -- containers of tasks -------------------------------------------------------------

    def create(self, options: ContainerOptions) -> str:
        """Create the container, replacing a leftover of the same name once; returns its id.

        ``LaunchFailed`` with the daemon's reason otherwise; when the image is gone its
        ``__cause__`` satisfies :func:`is_not_found`.
        """
        api = self._client()
        try:
            host_config = api.create_host_config(**options.host_config)
        except (docker_errors.DockerException, TypeError, ValueError) as exc:
            raise LaunchFailed(f"invalid container settings: {explain(exc)}") from exc
        for attempt in (1, 2):
            try:
                return str(api.create_container(host_config=host_config, **options.create)["Id"])
            except docker_errors.APIError as exc:
                if exc.status_code == 409 and attempt == 1:  # a leftover of an interrupted launch
                    self.stop_and_remove(options.create["name"], 0.0)
                    continue
                raise LaunchFailed(f"cannot create container: {explain(exc)}") from exc
        raise AssertionError("unreachable")

    def start(self, handle: ContainerHandle) -> None:
        """Start a created container; ``LaunchFailed`` with the daemon's reason."""
        api = self._client()
        try:
            api.start(handle.container_id)
        except docker_errors.APIError as exc:
            raise LaunchFailed(f"container for task {handle.task_id} did not start: {explain(exc)}") from exc

    def ensure_image(self, image: str, force_pull: bool) -> None:
        """Pull ``image`` when it is missing (always with ``force_pull``); ``ImageUnavailable`` on failure."""
        api = self._client()
        if not force_pull:
            try:
                api.inspect_image(image)
                return
            except docker_errors.NotFound:
                pass
            except docker_errors.APIError as exc:
                raise ImageUnavailable(image, f"cannot inspect image '{image}': {explain(exc)}") from exc
        repository, tag = parse_repository_tag(image)
        what = (f"pulling image '{image}' failed (forcePullImage)" if force_pull
                else f"image '{image}' is not on the Docker engine and pulling it failed")
        try:
            for item in api.pull(repository, tag=tag or "latest", stream=True, decode=True):
                if isinstance(item, dict) and item.get("error"):
                    raise ImageUnavailable(image, f"{what}: {item['error']}")
        except docker_errors.APIError as exc:
            raise ImageUnavailable(image, f"{what}: {explain(exc)}") from exc
        except docker_errors.DockerException as exc:
            raise ImageUnavailable(image, f"{what}: {explain(exc)}") from exc

    def signal(self, container_id: str, signal: str) -> bool:
        """Send ``signal``; False when the container is not running (or gone)."""
        try:
            self._client().kill(container_id, signal=signal)
            return True
        except docker_errors.NotFound:
            return False
        except docker_errors.APIError as exc:
            if exc.status_code == 409:  # "is not running"
                return False
            raise

    def finish(self, container_id: str, sandbox: Path | None) -> tuple[bool, dict[str, Any] | None]:
        """Inspect a container believed dead: ``(still_running, State)``; copy logs and remove it if dead."""
        api = self._client()
        try:
            state = api.inspect_container(container_id).get("State") or {}
        except docker_errors.NotFound:
            return False, None
        if state.get("Running") or state.get("Restarting"):
            return True, state
        self.discard(container_id, sandbox)
        return False, state

    def discard(self, container_id: str, sandbox: Path | None) -> None:
        """Copy the container's logs into the sandbox, then remove it with its anonymous volumes."""
        api = self._client()
        if sandbox is not None and sandbox.is_dir():
            for stream in ("stdout", "stderr"):
                try:
                    data = api.logs(container_id, stdout=stream == "stdout", stderr=stream == "stderr",
                                    tail=LOG_TAIL_LINES)
                    (sandbox / stream).write_bytes(data if isinstance(data, bytes) else b"")
                except (docker_errors.APIError, OSError):
                    pass
        try:
            api.remove_container(container_id, v=True, force=True)
        except docker_errors.NotFound:
            pass
        except docker_errors.APIError as exc:
            if exc.status_code != 409:  # 409: removal already in progress
                raise

    def stop_and_remove(self, container_id: str, stop_timeout: float) -> None:
        """Stop (signal, then SIGKILL after ``stop_timeout``; none when 0) and remove; a missing one is fine."""
        api = self._client()
        try:
            if stop_timeout > 0:
                api.stop(container_id, timeout=int(max(1, round(stop_timeout))))
            api.remove_container(container_id, v=True, force=True)
        except docker_errors.NotFound:
            pass

    def stats(self, container_id: str) -> dict[str, Any] | None:
        """One stats sample of a container; None when it is gone."""
        api = self._client()
        try:
            return api.stats(container_id, stream=False, one_shot=True)
        except docker_errors.InvalidVersion:  # engines before API 1.41: a two-sample read (~1 s)
            return api.stats(container_id, stream=False)
        except docker_errors.NotFound:
            return None

    # -- engine-wide -----------------------------------------------------------------------

    def containers(self) -> list[dict[str, Any]]:
        """Summaries (``GET /containers/json``) of every container of the scope, running or not."""
        return self._client().containers(all=True, filters=self._scope_filter)

    def running_ids(self) -> set[str]:
        """Ids of the scope's running containers."""
        summaries = self._client().containers(filters={**self._scope_filter, "status": ["running"]})
        return {s["Id"] for s in summaries}

    def networks(self) -> list[str]:
        """Names of the engine's networks."""
        return [n["Name"] for n in self._client().networks()]

    def ping(self) -> None:
        """Return when the engine answers; raise the SDK's error when it does not."""
        self._client().ping()

    def events(self) -> EngineEvents:
        """Open a connection following the scope's container ``die`` events."""
        filters = {"type": ["container"], "event": ["die"], **self._scope_filter}
        return EngineEvents(self.base_url, self.api_version, filters)
