"""A small async client for Pacer's (and Marathon's) /v2 API.

The CLI, the autoscaler and the HAProxy bridge reach the scheduler only through this client,
exactly as marathon-autoscale and marathon-lb reached Marathon, so they run in-process or as
separate processes unchanged.
"""

from __future__ import annotations

import json
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp

from .access import NO_ACCESS, Access, redact_url


class ClientError(Exception):
    """The API answered with an error status, or could not be reached."""

    def __init__(self, status: int, body: Any, url: str) -> None:
        message = body.get("message") if isinstance(body, dict) else str(body)
        super().__init__(f"{status} from {redact_url(url)}: {message}")
        self.status = status
        self.body = body


class PacerClient:
    """`access`: credentials and the CA to trust for an https:// Pacer (see access.py)."""

    def __init__(self, base_url: str, *, timeout: float = 30.0, access: Access = NO_ACCESS) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session_for(access, aiohttp.ClientTimeout(total=timeout), {"Accept": "application/json"})

    async def __aenter__(self) -> "PacerClient":
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        await self._session.close()

    async def request(self, method: str, path: str, *, body: Any = None,
                      params: dict[str, str] | None = None) -> Any:
        url = self.base_url + path
        data = None if body is None else json.dumps(body)
        try:
            async with self._session.request(method, url, data=data, params=params,
                                             headers={"Content-Type": "application/json"}) as resp:
                text = await resp.text()
                payload: Any = json.loads(text) if text and resp.content_type == "application/json" else text
                if resp.status >= 400:
                    raise ClientError(resp.status, payload, url)
                return payload
        except aiohttp.ClientError as exc:
            raise ClientError(0, {"message": f"cannot reach {redact_url(self.base_url)}: {exc}"}, url) from exc

    @staticmethod
    def _app_path(app_id: str) -> str:
        return "/v2/apps/" + quote(app_id.strip("/"))

    async def list_apps(self, embed: str | None = "apps.tasks") -> list[dict[str, Any]]:
        params = {"embed": embed} if embed else None
        return (await self.request("GET", "/v2/apps", params=params))["apps"]

    async def get_app(self, app_id: str) -> dict[str, Any] | None:
        try:
            return (await self.request("GET", self._app_path(app_id)))["app"]
        except ClientError as exc:
            if exc.status == 404:
                return None
            raise

    async def put_app(self, app_id: str, body: dict[str, Any], *, force: bool = False,
                      partial: bool = True, at: str | None = None) -> dict[str, Any]:
        """`at`: Pacer's scheduled cutover (ISO 8601 with an offset): stored now, started then."""
        params = {"force": str(force).lower(), "partialUpdate": str(partial).lower()}
        if at is not None:
            params["at"] = at
        return await self.request("PUT", self._app_path(app_id), body=body, params=params)

    async def scale_app(self, app_id: str, instances: int, *, force: bool = False) -> dict[str, Any]:
        return await self.put_app(app_id, {"instances": instances}, force=force)

    async def deployments(self, *, pending: bool = False) -> list[dict[str, Any]]:
        """Running deployments; with ``pending``, also those waiting for their time or an approval."""
        return await self.request("GET", "/v2/deployments?embed=pending" if pending else "/v2/deployments")

    async def queue(self) -> list[dict[str, Any]]:
        return (await self.request("GET", "/v2/queue"))["queue"]

    async def tasks(self, status: str | None = None) -> list[dict[str, Any]]:
        """``GET /v2/tasks``: every task (``status``: ``running`` or ``staging`` only), by app."""
        return (await self.request("GET", "/v2/tasks", params={"status": status} if status else None))["tasks"]


def session_for(access: Access, timeout: aiohttp.ClientTimeout, headers: dict[str, str] | None = None
                ) -> aiohttp.ClientSession:
    """A session that authenticates every request and trusts the given CA; for the bridge's
    event stream as for the client's requests."""
    context = access.ssl_context()
    connector = aiohttp.TCPConnector(ssl=context) if context is not None else None
    return aiohttp.ClientSession(timeout=timeout, headers={**(headers or {}), **access.headers()},
                                 connector=connector)
