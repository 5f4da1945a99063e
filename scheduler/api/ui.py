"""The web UI's files: ``/`` (and ``/ui``) is the page, ``/ui/static/<name>`` its modules and style.

Everything comes from the package (``scheduler/api/static``), never from a CDN, so the UI
works on a host without internet access. Names are checked against one flat pattern rather
than joined to a path, so no request can reach a file outside the directory; the content
type is set from a fixed table because browsers refuse ES modules served as anything but
JavaScript, and the system's ``mimetypes`` table differs between hosts.

The files are public (they hold no data: every datum comes from the API, which checks
credentials), so `scheduler.auth.routes` lets them through without authentication: the
page has to load before it can ask for a user and password.
"""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).with_name("static")
CONTENT_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\.(?:js|css|svg)$")
_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}


def static_file(name: str) -> Path | None:
    """The packaged file called ``name``, or None when the name is not one the UI may serve."""
    if not _NAME.fullmatch(name):
        return None
    path = STATIC_DIR / name
    return path if path.is_file() else None


def _file_response(path: Path) -> web.FileResponse:
    response = web.FileResponse(path, headers=_HEADERS)
    response.content_type = CONTENT_TYPES[path.suffix]
    if path.suffix in (".html", ".js", ".css"):
        response.charset = "utf-8"
    return response


async def page(request: web.Request) -> web.FileResponse:
    return _file_response(STATIC_DIR / "index.html")


async def asset(request: web.Request) -> web.FileResponse:
    path = static_file(request.match_info["name"])
    if path is None:
        raise web.HTTPNotFound()
    return _file_response(path)


async def favicon(request: web.Request) -> web.FileResponse:
    return _file_response(STATIC_DIR / "favicon.svg")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/", page)
    router.add_get("/ui", page)
    router.add_get("/ui/", page)
    router.add_get("/ui/static/{name}", asset)
    router.add_get("/favicon.ico", favicon)
