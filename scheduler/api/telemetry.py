"""The HTTP side of Pacer's own metrics: timing every request, and serving the scrape.

`time_request` is the outermost middleware: it sees the final status of every
request (answered here, proxied to the leader, refused, or turned into Marathon's error body)
and labels it with the route's template (`/v2/apps/{app_id}`), never the raw path, so a
thousand apps do not make a thousand series.

`GET /metrics` speaks two formats. Marathon's clients read it as Dropwizard JSON (marathon-python
sends `Accept: application/json`), so a request that asks for JSON and not for text still gets
that document; everything else (Prometheus, which asks for OpenMetrics or text/plain, curl,
a browser) gets the Prometheus exposition, OpenMetrics when the scraper prefers it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from scheduler.api.params import SCHEDULER_KEY
from scheduler.telemetry import UNMATCHED_ROUTE, Telemetry

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def route_template(request: web.Request) -> str:
    """The matched route's canonical template, or `unmatched` (404/405 before any handler)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


@web.middleware
async def time_request(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Observe each request's duration into its scheduler's telemetry, by method, route, status."""
    started = time.perf_counter()
    status = 500    # a handler that raised something no inner middleware answered
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:    # redirects and the like leave as exceptions
        status = exc.status
        raise
    finally:
        request.app[SCHEDULER_KEY].telemetry.observe_request(request.method, route_template(request), status,
                                                             time.perf_counter() - started)


def wants_dropwizard_json(accept: str) -> bool:
    """True when the client asked for JSON and for neither Prometheus format: a Marathon client."""
    lowered = accept.lower()
    return "application/json" in lowered and "text/plain" not in lowered and "openmetrics" not in lowered


def prometheus_response(telemetry: Telemetry, accept: str) -> web.Response:
    """The scrape: every metric of `telemetry`'s registry, in the format `accept` prefers."""
    encode, content_type = choose_encoder(accept)
    response = web.Response(body=encode(telemetry.registry))
    response.headers["Content-Type"] = content_type
    return response
