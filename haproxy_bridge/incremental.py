"""The model and haproxy.cfg kept between refreshes, redone only where apps changed (pure).

A bridge in front of 5,000 apps sees one of them change at a time (a task started, a label
edited), yet `build_model` + `render_haproxy_config` redo all 5,000. `IncrementalRenderer` gives
the same model and the same bytes while redoing only what the change touches:

    app parts      each app's `AppPart` (app_model.py) is kept under its JSON text, and reused
                   while the outside facts it read (its task hosts' addresses, whether its
                   unchecked tasks were seen healthy) answer the same
    settling       the competition between apps (model.py `settle_parts`) is redone only when a
                   changed app's footprint (ports, backend names, route keys, claims, vhosts,
                   certificates) differs, or when anything else it reads differs (reserved
                   binds, exclusions, the vhost record, or — when some app lost a port last time
                   — the previous model). Whether a port's requests are logged (a latency-judged
                   canary) is part of the footprint: it decides the `global` log line and the
                   shared frontends' log lines. Otherwise each changed app keeps its old fate (left
                   out and why, or notes added), applied to its new verdict
    sections       each service's frontend/backend text (and userlist) is kept with the service
                   it was rendered from and rendered again only when that service differs; the
                   shared frontends are rendered again only after a full settling, since they
                   read nothing outside the footprints
    the file       joined from the pieces in the order `render_haproxy_config` writes them

Why the shortcut is exact: settling reads only the footprints (`AppPart.footprint`) and the
inputs compared above, so equal footprints and inputs give every app the fate it had; the
order of apps in the model (by backend, by id) depends on nothing else either. The property
test in tests/test_haproxy_incremental.py holds it to `render_haproxy_config(build_model(...))`
byte for byte over random sequences of changes.

Apps are JSON values (dicts, lists, strings, numbers, booleans, None): their `repr` is what
tells a changed app from an unchanged one, so nothing is kept by object identity and a caller
may mutate or rebuild its dicts freely between calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .app_model import ABSENT, AppPart, Service, app_part
from .labels import bridge_groups
from .model import NO_FATE, Fate, Model, Settled, backend_of, finalize, settle_parts
from .ownership import Claim, RouteKey
from .render import (RenderSettings, assemble, head_text, lines_text, logs_requests, service_text, shared_lines,
                     userlist_text)

SectionRenderer = Callable[[Service, RenderSettings], str]


class Rendered(NamedTuple):
    model: Model
    text: str


@dataclass
class RenderStats:
    """What the renderer redid, counted since it was made (for tests, benchmarks and the status page)."""

    renders: int = 0
    parts_built: int = 0            # apps turned into parts (the others were kept)
    full_settles: int = 0           # competitions settled over every app
    patched: int = 0                # renders that put changed parts in place without settling
    sections_rendered: int = 0      # service sections rendered (the others were kept)


@dataclass(frozen=True)
class _SettleInputs:
    """Everything besides the parts that settling reads."""

    reserved: Mapping[tuple[str, int], str]
    default_bind: str
    exclude: Mapping[str, str]
    record: Mapping[RouteKey, Claim]
    previous: Model | None

    def same_as(self, other: "_SettleInputs", port_conflicts: bool) -> bool:
        """Would settling with these give what `other` gave? `previous` only orders apps that
        compete for a port, so it matters only when some app lost one."""
        return (self.default_bind == other.default_bind and dict(self.reserved) == dict(other.reserved)
                and dict(self.exclude) == dict(other.exclude)
                and (self.record is other.record or dict(self.record) == dict(other.record))
                and (not port_conflicts or self.previous is other.previous))


@dataclass
class _Last:
    """The previous render: its parts, its outcome, and the pieces its text was joined from."""

    inputs: _SettleInputs
    parts: dict[str, AppPart]
    model: Model
    fates: Mapping[str, Fate]
    port_conflicts: bool
    duplicates: bool                # an app id was listed twice: the parts by id are not the input
    userlists: list[str]
    sections: list[str]
    shared: str
    head: str                       # `global`..stats: with the request log's line or without
    spots: dict[str, list[int]] = field(default_factory=dict)      # app id -> its indexes in model.services
    app_position: dict[str, int] = field(default_factory=dict)     # app id -> index in model.apps


class IncrementalRenderer:
    """`build_model` + `render_haproxy_config`, kept between calls and redone where apps changed.

    `render(apps, ...)` takes the whole app list (as a refresh fetches it) and finds what
    changed; `update(changed, removed, ...)` takes only the change (as an event tells it). Both
    answer exactly what `build_model(apps, ...)` and `render_haproxy_config` would.
    `section_renderer` renders one service's sections (replaceable, so tests can count)."""

    def __init__(self, settings: RenderSettings, *, section_renderer: SectionRenderer = service_text) -> None:
        self.settings = settings
        self.stats = RenderStats()
        self._render_section = section_renderer
        self._heads = (head_text(settings), head_text(settings, request_log=True))
        self._groups: frozenset[str] | None = None
        self._by_text: dict[str, AppPart] = {}        # app JSON text -> its part (apps of the last render)
        self._last: _Last | None = None
        self._pieces: dict[str, tuple[Service, str, str]] = {}    # backend -> (service, userlist, sections)

    def forget(self) -> None:
        """Drop everything kept: the next render starts from nothing."""
        self._groups, self._by_text, self._last, self._pieces = None, {}, None, {}

    def render(self, apps: Iterable[Mapping[str, Any]], group: str = "*", *,
               reserved: Mapping[tuple[str, int], str] | None = None,
               host_addresses: Mapping[str, str] | None = None,
               known_healthy: Iterable[str] = (),
               default_bind: str = "*",
               exclude: Mapping[str, str] | None = None,
               previous: Model | None = None,
               owners: Mapping[RouteKey, Claim] | None = None) -> Rendered:
        """The model and text of `apps`, as `build_model(apps, group, ...)` then
        `render_haproxy_config` would give them."""
        groups, hosts, healthy = self._facts(group, host_addresses, known_healthy)
        by_text: dict[str, AppPart] = {}
        parts: list[AppPart] = []
        for app in apps:
            text = repr(app)
            part = by_text.get(text) or self._part(app, text, groups, hosts, healthy)
            by_text[text] = part
            parts.append(part)
        self._by_text = by_text
        by_id = {p.app_id: p for p in parts}
        last = self._last
        changed = None
        if last is not None and len(by_id) == len(parts):
            changed = [i for i, p in by_id.items() if last.parts.get(i) is not p]
            changed += [i for i in last.parts if i not in by_id]
        return self._settle(parts, by_id, changed, _SettleInputs(
            reserved or {}, default_bind, exclude or {}, _record(owners, previous), previous))

    def update(self, changed: Iterable[Mapping[str, Any]], removed: Iterable[str] = (), group: str = "*", *,
               reserved: Mapping[tuple[str, int], str] | None = None,
               host_addresses: Mapping[str, str] | None = None,
               known_healthy: Iterable[str] = (),
               default_bind: str = "*",
               exclude: Mapping[str, str] | None = None,
               previous: Model | None = None,
               owners: Mapping[RouteKey, Claim] | None = None) -> Rendered:
        """The last render's apps with `changed` put in (by app id: added or replaced) and the ids
        in `removed` taken out. The kept parts are checked against `host_addresses` and
        `known_healthy` only for the changed apps: a change of those facts for other apps is a
        change of those apps, to be passed in `changed` (or use `render`)."""
        groups, hosts, healthy = self._facts(group, host_addresses, known_healthy)
        last = self._last
        by_id = dict(last.parts) if last is not None else {}
        touched: list[str] = []
        for app_id in removed:
            if by_id.pop(app_id, None) is not None:
                touched.append(app_id)
        for app in changed:
            text = repr(app)
            part = self._by_text[text] = self._part(app, text, groups, hosts, healthy)
            by_id[part.app_id] = part
            touched.append(part.app_id)
        if len(self._by_text) > 2 * len(by_id) + 64:      # texts of apps since replaced
            self._by_text = {t: p for t, p in self._by_text.items() if by_id.get(p.app_id) is p}
        return self._settle(list(by_id.values()), by_id, touched if last is not None else None, _SettleInputs(
            reserved or {}, default_bind, exclude or {}, _record(owners, previous), previous))

    # -- parts --------------------------------------------------------------------------------
    def _facts(self, group: str, host_addresses: Mapping[str, str] | None,
               known_healthy: Iterable[str]) -> tuple[frozenset[str], dict[str, str], frozenset[str]]:
        groups = bridge_groups(group)
        if groups != self._groups:
            self.forget()
            self._groups = groups
        healthy = known_healthy if isinstance(known_healthy, frozenset) else frozenset(known_healthy)
        return groups, dict(host_addresses or {}), healthy

    def _part(self, app: Mapping[str, Any], text: str, groups: frozenset[str], hosts: Mapping[str, str],
              healthy: frozenset[str]) -> AppPart:
        kept = self._by_text.get(text)
        if kept is not None and kept.still_valid(hosts, healthy):
            return kept
        self.stats.parts_built += 1
        return app_part(app, groups, hosts, healthy)

    # -- settling and text --------------------------------------------------------------------
    def _settle(self, parts: list[AppPart], by_id: dict[str, AppPart], changed: list[str] | None,
                inputs: _SettleInputs) -> Rendered:
        self.stats.renders += 1
        last = self._last
        if last is not None and changed is not None and not last.duplicates \
                and inputs.same_as(last.inputs, last.port_conflicts) \
                and all(_footprint(last.parts.get(i)) == _footprint(by_id.get(i)) for i in changed):
            return self._patch(last, by_id, changed, inputs)
        self.stats.full_settles += 1
        settled = settle_parts(parts, reserved=inputs.reserved, default_bind=inputs.default_bind,
                               exclude=inputs.exclude, previous=inputs.previous, owners=inputs.record)
        return self._full(settled, by_id, inputs)

    def _full(self, settled: Settled, by_id: dict[str, AppPart], inputs: _SettleInputs) -> Rendered:
        model = settled.model
        old, pieces = self._pieces, {}
        userlists, sections = [], []
        for s in model.services:
            piece = old.get(s.backend)
            if piece is None or piece[0] != s:
                piece = self._piece(s)
            pieces[s.backend] = piece
            userlists.append(piece[1])
            sections.append(piece[2])
        self._pieces = pieces
        shared = lines_text(shared_lines(model.services, self.settings))
        head = self._heads[logs_requests(model.services, self.settings)]
        self._last = _Last(inputs, by_id, model, settled.fates, settled.port_conflicts, settled.duplicates,
                           userlists, sections, shared, head,
                           _spots(model), {a.app_id: i for i, a in enumerate(model.apps)})
        return Rendered(model, assemble(head, userlists, shared, sections))

    def _patch(self, last: _Last, by_id: dict[str, AppPart], changed: list[str], inputs: _SettleInputs) -> Rendered:
        """Put the changed parts in place of the old: same footprints, so same fates and places."""
        self.stats.patched += 1
        services = list(last.model.services)
        userlists, sections = list(last.userlists), list(last.sections)
        apps = list(last.model.apps)
        app_position = last.app_position
        present = [i for i in changed if i in by_id]
        if any(i not in app_position for i in present) or any(i not in by_id for i in changed):
            # an app without footprint came or went: only the list of verdicts changes shape
            kept = {a.app_id: a for a in apps if a.app_id in by_id}
            for i in present:
                kept[i] = by_id[i].status
            apps = [kept[i] for i in sorted(kept)]
            app_position = {a.app_id: n for n, a in enumerate(apps)}
        for app_id in present:
            part = by_id[app_id]
            fate = last.fates.get(app_id, NO_FATE)
            apps[app_position[app_id]] = finalize(part.status, fate)
            if fate.rejected is not None:
                continue
            for n, s in zip(last.spots.get(app_id, ()), sorted(part.services, key=backend_of)):
                piece = self._pieces[s.backend]
                if piece[0] != s:
                    piece = self._pieces[s.backend] = self._piece(s)
                services[n], userlists[n], sections[n] = s, piece[1], piece[2]
        model = Model(services=tuple(services), apps=tuple(apps), owners=last.model.owners)
        self._last = _Last(inputs, by_id, model, last.fates, last.port_conflicts, False, userlists, sections,
                           last.shared, last.head, last.spots, app_position)
        return Rendered(model, assemble(last.head, userlists, last.shared, sections))

    def _piece(self, s: Service) -> tuple[Service, str, str]:
        self.stats.sections_rendered += 1
        return s, userlist_text(s), self._render_section(s, self.settings)


def _spots(model: Model) -> dict[str, list[int]]:
    """Where each app's services sit in the model: in backend order, as the model sorts them
    (stably, so an app naming one backend twice keeps its own order)."""
    spots: dict[str, list[int]] = {}
    for n, s in enumerate(model.services):
        spots.setdefault(s.app_id, []).append(n)
    return spots


def _footprint(part: AppPart | None) -> object:
    return ABSENT if part is None else part.footprint


def _record(owners: Mapping[RouteKey, Claim] | None, previous: Model | None) -> Mapping[RouteKey, Claim]:
    """The vhost record settling starts from (as `build_model` picks it)."""
    if owners is not None:
        return owners
    return dict(previous.owners) if previous else {}
