"""``POST /v2/deploy/dry-run``: what ``pacer deploy -f app.json --env NAME --dry-run`` prints, for
the web UI (a Pacer extension).

The body holds the files the command would read: ``{"definition": <app.json>, "env": "prod",
"overlay": <app.prod.json>}`` (``env`` and ``overlay`` together, or neither: the definition
alone, as ``--env path/to/full.json`` or no ``--env``). The answer is ``{"id", "env",
"definition"}`` (the merged JSON to deploy), ``"target"`` (it normalised, as the API stores
it), ``"deployed"`` (the app as ``GET /v2/apps/{id}`` shows it, or null) and ``"diff"`` (the
command's unified diff, byte for byte). The merge and the diff are `app_definitions`' own, the
ones the command uses, so the page and the command cannot drift apart. Nothing is changed.

Authentication: the caller must be able to view the app (the diff shows its definition);
anyone signed in may ask, as the app id is only known from the body.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from app_definitions import ValidationFailed, definition_diff, environment_definition, parse_app_definition
from app_definitions.environments import ENV_NAME

from scheduler.api.params import json_body, json_response, scheduler_of
from scheduler.api.render import render_app
from scheduler.auth.middleware import app_filter
from scheduler.errors import Forbidden

FIELDS = frozenset({"definition", "env", "overlay"})


def read_request(body: Any) -> tuple[dict[str, Any], str | None, dict[str, Any] | None]:
    """(definition, env, overlay) from the body, or a 422 naming the field and the fix."""
    if not isinstance(body, dict):
        raise ValidationFailed([("/", 'the body must be {"definition": {…}, "env": "prod", "overlay": {…}}')])
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise ValidationFailed([(f"/{unknown[0]}", "unknown field; use definition, env and overlay")])
    definition, env, overlay = body.get("definition"), body.get("env"), body.get("overlay")
    problems: list[tuple[str, str]] = []
    if not isinstance(definition, dict):
        problems.append(("/definition", "must be the app definition (a JSON object), as in app.json"))
    if env is not None and (not isinstance(env, str) or not ENV_NAME.fullmatch(env)):
        problems.append(("/env", "must be an environment name: letters, digits, '-', '_' or '.'"))
    if overlay is not None and not isinstance(overlay, dict):
        problems.append(("/overlay", "must be the environment's file (a JSON object), as in app.<env>.json"))
    elif env is not None and overlay is None:
        problems.append(("/overlay", f"no definition for environment {env!r}: give app.{env}.json as overlay "
                                     "(a typo in an environment name must not deploy the base definition)"))
    elif env is None and overlay is not None:
        problems.append(("/env", "name the environment the overlay is for"))
    if problems:
        raise ValidationFailed(problems)
    return definition, env, overlay


async def dry_run(request: web.Request) -> web.Response:
    definition, env, overlay = read_request(await json_body(request))
    merged = environment_definition(definition, overlay)
    target = parse_app_definition(merged).to_json()
    app_id = target["id"]
    visible = app_filter(request)
    if visible is not None and not visible(app_id):
        raise Forbidden(f"Not Authorized to perform this action: viewer on {app_id} is needed to compare with it")
    record = scheduler_of(request).view.apps.get(app_id)
    deployed = render_app(scheduler_of(request), record, set()) if record is not None else None
    return json_response({"id": app_id, "env": env, "definition": merged, "target": target, "deployed": deployed,
                          "diff": definition_diff(deployed, target)})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/v2/deploy/dry-run", dry_run)
