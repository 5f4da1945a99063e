"""``parse_app_definition``: decoded JSON in, canonical :class:`AppDefinition` out.

The steps, each in its own module:

0. values nested deeper than any definition needs are refused (``depth.py``);
1. nulls are dropped (``"mem": null`` means "default", as in Marathon);
2. deprecated spellings are translated (``deprecated.py``);
3. the models check shapes and types (``app.py`` and its parts);
4. context-dependent defaults are filled in and ids canonicalised (``normalize.py``);
5. cross-field rules are checked (``rules.py``);
6. parts equal to those of other definitions are shared with them (``sharing.py``).

All violations found are raised together as one :class:`ValidationFailed`;
nothing else ever escapes for any JSON input.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ._pydantic_errors import violations_from
from .app import AppDefinition
from .depth import MAX_DEFINITION_DEPTH, TOO_DEEP_DEFINITION_MESSAGE, too_deep_at
from .deprecated import translate_deprecated
from .errors import ValidationFailed, Violation
from .normalize import complete
from .path_id import app_id_violations
from .rules import check_rules
from .sharing import share_parts

__all__ = ["parse_app_definition", "strip_nulls"]


def _empty_like(value: dict | list) -> dict | list:
    return {} if isinstance(value, dict) else []


def strip_nulls(value: Any) -> Any:
    """A copy of ``value`` without null-valued object members (list items are kept as they are).

    Iterative, so no nesting depth can exhaust the stack.
    """
    if not isinstance(value, (dict, list)):
        return value
    result = _empty_like(value)
    pending: list[tuple[dict | list, dict | list]] = [(value, result)]
    while pending:
        source, target = pending.pop()
        items = source.items() if isinstance(source, dict) else enumerate(source)
        for key, item in items:
            if item is None and isinstance(source, dict):
                continue
            if isinstance(item, (dict, list)):
                child = _empty_like(item)
                pending.append((item, child))
                item = child
            if isinstance(target, dict):
                target[key] = item
            else:
                target.append(item)
    return result


def _renamed(violations: list[Violation], renames: dict[str, str]) -> list[Violation]:
    """Report paths under the spelling the user wrote (see ``translate_deprecated``)."""
    if not renames:
        return violations
    result = []
    for path, message in violations:
        for old, new in renames.items():
            if path == old or path.startswith((old + "/", old + "(")):
                path = new + path[len(old):]
                break
        result.append(Violation(path, message))
    return result


def parse_app_definition(data: Any, *, parent: str = "/") -> AppDefinition:
    """Validate and normalise one app definition (Marathon v2 JSON, already decoded).

    Relative ids resolve against ``parent`` (the group, ``/`` for
    ``POST /v2/apps``) and the app must lie below it. Server-set fields
    (``version``, ``versionInfo``) are accepted so stored definitions load
    back; the API decides whether a client may set them (see
    :func:`app_definitions.is_rollback_request`). Unknown fields are ignored.

    Raises :class:`ValidationFailed` listing every violation; a value nested
    deeper than :data:`~app_definitions.depth.MAX_DEFINITION_DEPTH` levels is
    the only one reported then, at the field it is under.
    """
    if not isinstance(data, dict):
        raise ValidationFailed([Violation("/", "must be a JSON object")])
    where = too_deep_at(data, MAX_DEFINITION_DEPTH)
    if where is not None:
        raise ValidationFailed([Violation(where, TOO_DEEP_DEFINITION_MESSAGE)])
    doc = strip_nulls(data)
    violations, renames = translate_deprecated(doc)
    try:
        app = AppDefinition.model_validate(doc)
    except ValidationError as exc:
        if isinstance(doc.get("id"), str):  # still worth reporting alongside the type errors
            violations += app_id_violations(doc["id"], parent)[1]
        raise ValidationFailed(_renamed(violations + violations_from(exc), renames)) from None
    app, id_violations = complete(app, parent)
    violations += id_violations + check_rules(app)
    if violations:
        raise ValidationFailed(_renamed(violations, renames))
    share_parts(app)    # a scheduler holds thousands of definitions that are mostly alike
    return app
