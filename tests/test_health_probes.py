"""The probe thread's HTTP client against a real aiohttp server: statuses, bodies of every
framing, redirects not followed, timeouts, connections kept alive and re-opened."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web

from scheduler.health.http_probe import ConnectionPool
from scheduler.health.probes import Probe, run_probe

Handler = Callable[[web.Request], Awaitable[web.Response]]


async def _chunked(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(status=200)
    response.enable_chunked_encoding()
    await response.prepare(request)
    for part in (b"a" * 10, b"b" * 70_000, b"c"):
        await response.write(part)
    await response.write_eof()
    return response


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(1)
    return web.Response(text="late")


def _answer(status: int, text: str | None = None, headers: dict[str, str] | None = None) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, text=text, headers=headers)
    return handler


def _app() -> web.Application:
    app = web.Application()
    app.router.add_get("/ok", _answer(200, "ok" * 1000))
    app.router.add_get("/chunked", _chunked)
    app.router.add_get("/missing", _answer(404, "no"))
    app.router.add_get("/moved", _answer(302, headers={"Location": "/missing"}))
    app.router.add_get("/empty", _answer(204))
    app.router.add_get("/slow", _slow)
    return app


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


def _probe(port: int | None, path: str, timeout: float = 2.0, protocol: str = "HTTP") -> Probe:
    return Probe(key=("task", 0), protocol=protocol, host="127.0.0.1", port=port, path=path, timeout=timeout)


def test_statuses_bodies_and_keep_alive() -> None:
    async def scenario() -> None:
        runner, port = await _serve(_app())
        pool = ConnectionPool(ssl.create_default_context())
        try:
            for _ in range(3):      # each framing twice over, on kept-alive connections
                for path, ok, status in (("/ok", True, 200), ("/chunked", True, 200), ("/empty", True, 204),
                                         ("/moved", True, 302), ("/missing", False, 404)):
                    verdict = await run_probe(pool, _probe(port, path))
                    assert (verdict.ok, verdict.status) == (ok, status), path
                    await asyncio.sleep(0.01)       # let the body drain so the connection goes idle
            assert "HTTP 404 from http://127.0.0.1:" in (await run_probe(pool, _probe(port, "/missing"))).cause
            assert pool._idle_count == 1            # one connection served every check
        finally:
            pool.close()
            await runner.cleanup()

    asyncio.run(scenario())


def test_timeout_refused_and_server_restart() -> None:
    async def scenario() -> None:
        runner, port = await _serve(_app())
        pool = ConnectionPool(ssl.create_default_context())
        try:
            slow = await run_probe(pool, _probe(port, "/slow", timeout=0.2))
            assert not slow.ok and slow.cause is not None and slow.cause.endswith("timed out")
            assert (await run_probe(pool, _probe(port, "/ok"))).ok
            await asyncio.sleep(0.01)
            await runner.cleanup()                  # closes the kept-alive connection
            refused = await run_probe(pool, _probe(port, "/ok"))
            assert not refused.ok and refused.cause is not None and refused.cause.startswith("GET http://")
            assert (await run_probe(pool, _probe(None, "/ok"))).cause == "the task has no port for this check"
        finally:
            pool.close()

    asyncio.run(scenario())


def test_http10_answer_read_to_the_close() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nno length, ends at the close")
        await writer.drain()
        writer.close()

    async def scenario() -> None:
        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        pool = ConnectionPool(ssl.create_default_context())
        try:
            for _ in range(2):
                verdict = await run_probe(pool, _probe(port, "/"))
                assert (verdict.ok, verdict.status) == (True, 200)
            garbage = await asyncio.start_server(_garbage, "127.0.0.1", 0)
            bad = await run_probe(pool, _probe(garbage.sockets[0].getsockname()[1], "/"))
            assert not bad.ok and bad.cause is not None and "not an HTTP response" in bad.cause
            garbage.close()
        finally:
            pool.close()
            server.close()

    asyncio.run(scenario())


async def _garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
    await writer.drain()
    writer.close()
