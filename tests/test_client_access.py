"""How the clients (deploy, autoscaler, bridge) reach a secured Pacer: flags, environment, TLS.

The settings are checked as pure functions; the client is then pointed at a real HTTPS server
on 127.0.0.1 whose certificate is signed by a CA made in the test (trustme), and that answers
401 unless the request carries the expected credentials.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from pacer_client import Access, AccessError, ClientError, PacerClient, access_from, redact_url

from .support import free_port


def test_flags_win_over_the_environment(tmp_path: Path):
    token = tmp_path / "token"
    token.write_text("tok-from-file\n")
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    env = {"PACER_CREDENTIALS": "env:secret", "PACER_TOKEN": "tok-env", "PACER_CA_FILE": str(ca)}
    assert access_from(environ=env) == Access("env", "secret", "tok-env", str(ca))
    assert access_from("flag:pw:with:colons", str(token), None, environ=env) == \
        Access("flag", "pw:with:colons", "tok-from-file", str(ca))
    assert access_from(environ={}) == Access()


@pytest.mark.parametrize("kwargs, needle", [
    ({"credentials": "nocolon"}, "--credentials: expected USER:PASSWORD"),
    ({"credentials": ":pw"}, "--credentials: expected USER:PASSWORD"),
    ({"token_file": "/nonexistent/token"}, "--token-file /nonexistent/token"),
    ({"ca_file": "/nonexistent/ca.pem"}, "--ca-file /nonexistent/ca.pem: no such file"),
])
def test_bad_settings_name_the_flag(kwargs: dict[str, str], needle: str):
    with pytest.raises(AccessError) as info:
        access_from(environ={}, **kwargs)
    assert needle in str(info.value)


def test_an_empty_token_file_is_refused(tmp_path: Path):
    (tmp_path / "t").write_text("\n")
    with pytest.raises(AccessError, match="the file is empty"):
        access_from(token_file=str(tmp_path / "t"), environ={})


def test_headers_and_secrets_never_shown():
    basic = Access("ops", "s3cret")
    assert basic.headers() == {"Authorization": "Basic " + base64.b64encode(b"ops:s3cret").decode()}
    assert Access("ops", "s3cret", "tok").headers() == {"Authorization": "Bearer tok"}
    assert Access().headers() == {}
    assert "s3cret" not in repr(basic) and "tok" not in repr(Access(token="tok"))
    assert redact_url("https://ops:s3cret@pacer.example:8443/v2") == "https://pacer.example:8443/v2"
    assert redact_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"


# -- against a real HTTPS server --------------------------------------------------------------

@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """An HTTPS /v2 on 127.0.0.1 that wants `ops:s3cret` or the token `tok`; yields (url, CA file)."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    wanted = {"Basic " + base64.b64encode(b"ops:s3cret").decode(), "Bearer tok"}

    async def apps(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") not in wanted:
            return web.json_response({"message": "Invalid username or password."}, status=401,
                                     headers={"WWW-Authenticate": 'Basic realm="pacer"'})
        return web.json_response({"apps": [{"id": "/web"}]})

    app = web.Application()
    app.router.add_get("/v2/apps", apps)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    yield f"https://127.0.0.1:{port}", ca_file
    await runner.cleanup()


async def test_the_client_authenticates_over_tls_with_the_given_ca(secured: tuple[str, Path]):
    url, ca_file = secured
    for access in (Access("ops", "s3cret", ca_file=str(ca_file)), Access(token="tok", ca_file=str(ca_file))):
        async with PacerClient(url, access=access) as client:
            assert await client.list_apps() == [{"id": "/web"}]


async def test_wrong_credentials_are_a_401_and_an_unknown_ca_a_refusal(secured: tuple[str, Path]):
    url, ca_file = secured
    async with PacerClient(url, access=Access("ops", "wrong", ca_file=str(ca_file))) as client:
        with pytest.raises(ClientError) as info:
            await client.list_apps()
        assert info.value.status == 401 and "wrong" not in str(info.value)
    async with PacerClient(url, access=Access("ops", "s3cret")) as client:   # the system CAs do not know ours
        with pytest.raises(ClientError) as info:
            await client.list_apps()
        assert info.value.status == 0 and "certificate" in str(info.value).lower()
