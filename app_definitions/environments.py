"""Per-environment definition files for ``pacer deploy -f app.json --env prod``.

Teams keep one definition per environment, either as full files or as a base
file plus small overlays. The rule, kept deliberately simple:

* no ``--env``: ``app.json`` as is;
* ``--env prod``: ``app.prod.json`` beside ``app.json`` is a JSON Merge Patch
  (RFC 7386) applied to ``app.json``; if it does not exist that is an error
  naming the file that was expected (a typo in an environment name must not
  deploy the base definition to production);
* ``--env path/to/prod.json`` (ends in ``.json``): that file alone is the full
  definition.

The result is plain JSON for :func:`app_definitions.parse_app_definition`.
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any

from .errors import EnvironmentFileError
from .json_body import parse_json_body
from .update import merge_patch

__all__ = ["ENV_NAME", "definition_diff", "environment_definition", "load_environment_definition", "overlay_path"]

ENV_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_STATUS_FIELDS = ("version", "versionInfo", "tasks", "tasksStaged", "tasksRunning", "tasksHealthy",
                  "tasksUnhealthy", "deployments", "lastTaskFailure")
"""What the API adds to an app that is not part of its definition: left out of `definition_diff`."""


def _read_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; errors name the file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise EnvironmentFileError("file not found", source=str(path)) from None
    except OSError as exc:
        raise EnvironmentFileError(f"cannot read: {exc.strerror or exc}", source=str(path)) from None
    document = parse_json_body(raw, source=str(path))
    if not isinstance(document, dict):
        raise EnvironmentFileError("must hold a JSON object (one app definition)", source=str(path))
    return document


def overlay_path(base: Path, env: str) -> Path:
    """Where the overlay of ``env`` lives: ``app.json`` + ``prod`` -> ``app.prod.json``."""
    return base.with_name(f"{base.stem}.{env}{base.suffix or '.json'}")


def load_environment_definition(path: Path, env: str | None) -> dict:
    """The definition to deploy for ``env`` (see the module docstring for the rule).

    Raises :class:`InvalidJSON` (undecodable file) or
    :class:`EnvironmentFileError` (missing file, not an object, bad env name),
    both naming the file.
    """
    path = Path(path)
    if env is None:
        return _read_object(path)
    if env.endswith(".json"):
        return _read_object(Path(env))
    if not ENV_NAME.fullmatch(env):
        raise EnvironmentFileError(
            f"invalid environment name {env!r}: use letters, digits, '-', '_' or '.', or a path ending in .json",
            source=str(path),
        )
    overlay = overlay_path(path, env)
    base = _read_object(path)
    if not overlay.is_file():
        raise EnvironmentFileError(
            f"no definition for environment {env!r}: expected {overlay} beside {path}", source=str(overlay)
        )
    return environment_definition(base, _read_object(overlay))


def environment_definition(base: dict[str, Any], overlay: dict[str, Any] | None) -> dict[str, Any]:
    """An environment's definition from the base and its overlay (None: the base alone). The one
    merge rule of ``pacer deploy --env`` and of the API's dry run (``POST /v2/deploy/dry-run``)."""
    return dict(base) if overlay is None else merge_patch(base, overlay)


def definition_diff(deployed: dict[str, Any] | None, target: dict[str, Any]) -> str:
    """Unified diff of the deployed definition against the target, both in normalised form: what
    ``pacer deploy --dry-run`` prints and the web UI shows."""
    def lines(data: dict[str, Any] | None) -> list[str]:
        if data is None:
            return []
        clean = {k: v for k, v in data.items() if k not in _STATUS_FIELDS}
        return json.dumps(clean, indent=2, sort_keys=True).splitlines(keepends=True)
    diff = difflib.unified_diff(lines(deployed), lines(target), "deployed", "target")
    return "".join(diff) or "(no changes)\n"
