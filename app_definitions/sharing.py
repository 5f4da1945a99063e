"""One copy of what many definitions hold alike: field sets and small nested models.

A parsed definition is a tree of frozen models, and most of it is the same in every app: each
model carries the set of field names it was given (``model_fields_set``: 38 names for an app
read back from its stored JSON, a 2 KB set), and the upgrade and unreachable strategies and
the host network are the defaults in nearly every app. Held once per app, those were about
half of an app's ~6 KB; a scheduler holding thousands of apps kept thousands of equal copies.

``share_parts`` replaces them, in a freshly parsed definition, with one canonical object per
distinct value. Nothing observable changes: the replacements are equal (same type, same field
values with the same value types, same fields set), the models are frozen, and their list and
dict fields are treated as immutable throughout the package. Pydantic itself never mutates a
model's field set in place (``model_copy`` copies it first).

The tables are bounded (``MAX_SHARED`` entries each); past that, parts are left as they are.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from pydantic import BaseModel

__all__ = ["MAX_SHARED", "share_parts"]

MAX_SHARED = 4096

_field_sets: dict[frozenset[str], set[str]] = {}
_models: dict[Hashable, BaseModel] = {}


def _shared_field_set(fields: set[str]) -> set[str]:
    key = frozenset(fields)
    shared = _field_sets.get(key)
    if shared is None:
        if len(_field_sets) >= MAX_SHARED:
            return fields
        shared = _field_sets[key] = set(fields)
    return shared


def _scalar_items(values: dict[str, Any]) -> tuple[tuple[str, type, Any], ...] | None:
    """`values` as hashable (name, type, value) items when each is a scalar (str, int, float,
    bool, None) or an empty list or dict; else None."""
    items = []
    for name, value in values.items():
        kind = type(value)
        if kind is float:
            value = value.hex()     # -0.0 and 0.0 are equal but not the same JSON
        elif kind in (list, dict):
            if value:
                return None
            value = ()
        elif value is not None and kind not in (str, int, bool):
            return None
        items.append((name, kind, value))
    return tuple(items)


def _model_key(model: BaseModel) -> Hashable | None:
    """The identity of a model made only of scalars and empty containers, else None."""
    if model.__pydantic_extra__:
        return None
    fields = _scalar_items(model.__dict__)
    private = _scalar_items(model.__pydantic_private__ or {})
    if fields is None or private is None:
        return None
    return type(model), fields, private, frozenset(model.__pydantic_fields_set__)


def _shared_model(model: BaseModel) -> BaseModel:
    key = _model_key(model)
    if key is None:
        return model
    shared = _models.get(key)
    if shared is None:
        if len(_models) >= MAX_SHARED:
            return model
        shared = _models[key] = model
    return shared


def _share_inside(model: BaseModel) -> None:
    """Share `model`'s field set and, recursively, the models among its fields (in place)."""
    object.__setattr__(model, "__pydantic_fields_set__", _shared_field_set(model.__pydantic_fields_set__))
    fields: dict[str, Any] = model.__dict__
    for name, value in fields.items():
        if isinstance(value, BaseModel):
            fields[name] = _share(value)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, BaseModel):
                    value[index] = _share(item)
        elif isinstance(value, dict):
            for item_key, item in value.items():
                if isinstance(item, BaseModel):
                    value[item_key] = _share(item)


def _share(model: BaseModel) -> BaseModel:
    _share_inside(model)
    return _shared_model(model)


def share_parts(model: BaseModel) -> BaseModel:
    """Swap the parts of a freshly parsed `model` for equal shared ones (see the module doc);
    returns `model` itself (the top level is never swapped: its identity is the caller's)."""
    _share_inside(model)
    return model
