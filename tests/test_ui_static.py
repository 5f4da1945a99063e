"""The web UI's files as the API serves them, and `GET /v2/auth/whoami`, without a browser.

Browsers refuse ES modules served with a non-JavaScript type, so every packaged file is
checked with the type it is served with; names that are not flat file names (a path out of
the directory) are 404s; the files are open with authentication on (the page must load to
ask for credentials) while the data stays closed.
"""

from __future__ import annotations

import tomllib

import pytest

from scheduler.api.proxy_rules import answers_locally
from scheduler.api.ui import CONTENT_TYPES, STATIC_DIR, static_file
from scheduler.auth.policy import Grant, User
from scheduler.auth.routes import requirement
from scheduler.auth.whoami import whoami_body

from .support import REPO, InProcessApi, http

STATIC = sorted(p.name for p in STATIC_DIR.iterdir() if p.is_file())


def test_the_ui_files_are_package_data() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "static/*" in config["tool"]["setuptools"]["package-data"]["scheduler.api"]
    assert {"index.html", "app.js", "style.css", "favicon.svg"} <= set(STATIC)


@pytest.mark.parametrize("name", [n for n in STATIC if n != "index.html"])
def test_each_file_is_served_with_its_type(api: InProcessApi, name: str) -> None:
    status, body, headers = http("GET", api.url, f"/ui/static/{name}")
    assert status == 200
    assert headers["content-type"].split(";")[0] == CONTENT_TYPES["." + name.rsplit(".", 1)[1]]
    assert headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("path", ["/", "/ui", "/ui/"])
def test_the_page(api: InProcessApi, path: str) -> None:
    status, body, headers = http("GET", api.url, path)
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="/ui/static/app.js">' in body


def test_favicon(api: InProcessApi) -> None:
    status, _, headers = http("GET", api.url, "/favicon.ico")
    assert status == 200 and headers["content-type"] == "image/svg+xml"


@pytest.mark.parametrize("name", ["..%2Fsystem.py", "%2E%2E%2F__init__.py", "index.html", "app.py", "x.js",
                                  "App.js", ".hidden.js"])
def test_other_names_are_not_served(api: InProcessApi, name: str) -> None:
    assert http("GET", api.url, f"/ui/static/{name}")[0] == 404
    assert static_file(name.replace("%2F", "/").replace("%2E", ".")) is None


def test_the_page_needs_no_credentials_but_the_data_does() -> None:
    for path in ("/", "/ui", "/favicon.ico", "/ui/static/app.js"):
        assert requirement("GET", path).kind == "open", path
    assert requirement("POST", "/").kind != "open"
    assert requirement("GET", "/v2/auth/whoami").kind == "authenticated"
    assert requirement("GET", "/v2/apps").kind == "authenticated"


def test_every_instance_serves_the_ui_itself() -> None:
    """A follower serves the page and its files from its own package, never through the leader."""
    for path in ("/", "/ui", "/ui/", "/favicon.ico", "/ui/static/app.js"):
        assert answers_locally("GET", path), path
    assert not answers_locally("POST", "/ui/static/app.js")
    assert not answers_locally("GET", "/v2/auth/whoami")


def test_whoami_without_authentication(api: InProcessApi) -> None:
    status, body, headers = http("GET", api.url, "/v2/auth/whoami")
    assert status == 200
    assert body == {"authEnabled": False, "user": None, "grants": [{"role": "admin", "pattern": "/**"}]}
    assert headers["cache-control"] == "no-store"


def test_whoami_bodies() -> None:
    user = User("team-a", password_hash="scrypt$x", token_hashes=("sha256$y",),
                grants=(Grant("deployer", "/team-a/**"), Grant("viewer", "/shared/**")))
    assert whoami_body(user, True) == {"authEnabled": True, "user": "team-a", "grants": [
        {"role": "deployer", "pattern": "/team-a/**"}, {"role": "viewer", "pattern": "/shared/**"}]}
    assert whoami_body(None, True) == {"authEnabled": True, "user": None, "grants": []}
