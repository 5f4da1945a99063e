"""The pipelined HTTP/1.1 connection the Mesos backend makes its calls on (`mesos_http`), against
a hand-written server that answers exactly what each case needs: answers in order, chunked and
sized bodies, a connection closed with calls waiting, a master that does not answer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from scheduler.backends.mesos_client import MesosClient
from scheduler.backends.mesos_errors import CallRejected, MasterUnreachable, NotSubscribed
from scheduler.backends.mesos_http import CallChannel

pytestmark = pytest.mark.timeout(30)

Reply = Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]    # False: close the connection


async def _serve(reply: Reply, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length"))
            if not await reply(await reader.readexactly(length), writer):
                break
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def server() -> AsyncIterator[Callable[[Reply], Awaitable[str]]]:
    servers = []

    async def start(reply: Reply) -> str:
        srv = await asyncio.start_server(lambda r, w: _serve(reply, r, w), "127.0.0.1", 0)
        servers.append(srv)
        return f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"
    yield start
    for srv in servers:
        srv.close()


def answer(status: int, body: bytes = b"", *, chunked: bool = False, extra: str = "") -> bytes:
    if chunked:
        payload = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:3], body[3:]) if part) + b"0\r\n\r\n"
        return f"HTTP/1.1 {status} X\r\nTransfer-Encoding: chunked\r\n{extra}\r\n".encode() + payload
    return f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


async def test_pipelined_calls_each_get_their_own_answer(server: Callable[[Reply], Awaitable[str]]) -> None:
    seen: list[int] = []

    async def reply(body: bytes, writer: asyncio.StreamWriter) -> bool:
        n = json.loads(body)["n"]
        seen.append(n)
        writer.write(answer(202) if n % 3 else answer(400, f"bad {n}".encode(), chunked=n % 2 == 0))
        return True
    channel = CallChannel(await server(reply))
    answers = await asyncio.gather(*(channel.post("/api/v1/scheduler", json.dumps({"n": n}).encode(), {})
                                     for n in range(30)))
    assert seen == list(range(30))                                # one connection, in the order sent
    assert [(a.status, a.body) for a in answers] == [(202, b"") if n % 3 else (400, f"bad {n}".encode())
                                                    for n in range(30)]
    await channel.close()


async def test_a_closed_connection_fails_the_waiting_calls_and_the_next_call_reconnects(
        server: Callable[[Reply], Awaitable[str]]) -> None:
    calls = 0

    async def reply(body: bytes, writer: asyncio.StreamWriter) -> bool:
        nonlocal calls
        calls += 1
        if calls == 2:
            return False                     # the master goes away with the second call unanswered
        writer.write(answer(202))
        return True
    channel = CallChannel(await server(reply))
    first = await channel.post("/p", b"{}", {})
    results = await asyncio.gather(channel.post("/p", b"{}", {}), channel.post("/p", b"{}", {}),
                                   return_exceptions=True)
    assert first.status == 202
    assert all(isinstance(r, ConnectionError) for r in results), results
    assert (await channel.post("/p", b"{}", {})).status == 202      # a new connection
    await channel.close()


async def test_no_answer_within_the_call_timeout_fails_the_call(server: Callable[[Reply], Awaitable[str]]) -> None:
    async def reply(body: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(10)
        return True
    channel = CallChannel(await server(reply), call_timeout=0.5)
    with pytest.raises(TimeoutError):
        await channel.post("/p", b"{}", {})
    await channel.close()


@pytest.mark.parametrize("reply_bytes, error", [
    (answer(202), None),
    (answer(307, extra="Location: //127.0.0.1:1/api/v1/scheduler\r\n"), NotSubscribed),
    (answer(400, b"Framework cannot be found"), CallRejected),
    (answer(503, b"No leader elected"), MasterUnreachable),
])
async def test_the_client_maps_the_masters_answers(server: Callable[[Reply], Awaitable[str]], reply_bytes: bytes,
                                                   error: type[Exception] | None) -> None:
    async def reply(body: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(reply_bytes)
        return True
    client = MesosClient([await server(reply)])
    try:
        if error is None:
            await client.call({"type": "REVIVE"}, "stream-1")
        else:
            with pytest.raises(error):
                await client.call({"type": "REVIVE"}, "stream-1")
    finally:
        await client.close()


async def test_an_unreachable_master_is_a_master_unreachable() -> None:
    client = MesosClient(["http://127.0.0.1:9"], connect_timeout=1)
    with pytest.raises(MasterUnreachable):
        await client.call({"type": "REVIVE"}, "stream-1")
    await client.close()
