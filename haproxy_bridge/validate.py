"""Before a reload: a configuration HAProxy accepts, and the apps left out to get it.

One bad app must not keep every other app's change from HAProxy, so a failing configuration is
narrowed: the apps `haproxy -c` (or a refused reload) names, else the ones bisection finds, are
left out and the rest is loaded. What remains between refreshes is the exclusions (app id ->
the app's fingerprint, reason): an app stays out until its definition changes (a new
fingerprint) or a full resync, so a broken app costs one narrowing, not one per event.
Pure in the same sense as narrow.py: no I/O of its own, only the awaited checker it is given
(it logs each new exclusion). The applier decides when to check and reload.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from .errors import ConfigRejected
from .model import INCLUDED, Model
from .narrow import apps_blamed, error_lines, find_bad_apps
from .render import RenderSettings, render_haproxy_config, render_lines

log = logging.getLogger(__name__)

_DEFINITION_KEYS = ("id", "labels", "portDefinitions", "ports", "container", "networks", "ipAddress", "healthChecks")


def fingerprint(app: Mapping[str, Any]) -> str:
    """What of an app decides its config (tasks and counters excluded)."""
    relevant = {k: app.get(k) for k in _DEFINITION_KEYS}
    return hashlib.sha1(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()


class Fingerprints:
    """App id -> fingerprint, computed only for the apps asked about (few: the excluded ones)."""

    def __init__(self, apps: list[dict[str, Any]]) -> None:
        self._apps = {a.get("id"): a for a in apps if isinstance(a, dict)}
        self._done: dict[Any, str] = {}

    def get(self, app_id: Any, default: str | None = None) -> str | None:
        if app_id not in self._done:
            app = self._apps.get(app_id)
            if app is None:
                return default
            self._done[app_id] = fingerprint(app)
        return self._done[app_id]


class CheckOutcome(Protocol):
    @property
    def ok(self) -> bool: ...

    @property
    def output(self) -> str: ...


class ConfigValidator:
    """The exclusions, and the `haproxy -c` narrowing that adds to them."""

    def __init__(self, settings: RenderSettings, check: Callable[[str], Awaitable[CheckOutcome]]) -> None:
        self.settings = settings
        self._check = check
        self._exclusions: dict[str, tuple[str, str]] = {}    # app id -> (fingerprint, reason)
        self._prints = Fingerprints([])

    def start_refresh(self, apps: list[dict[str, Any]], *, full: bool) -> None:
        """A new app list: forget every exclusion on a full resync, else those of changed apps."""
        if full:
            self._exclusions.clear()
        self._prints = Fingerprints(apps)
        self._exclusions = {k: v for k, v in self._exclusions.items() if self._prints.get(k) == v[0]}

    def reasons(self) -> dict[str, str]:
        """App id -> why it is left out (build_model's `exclude`)."""
        return {k: v[1] for k, v in self._exclusions.items()}

    def exclude(self, app_id: str, reason: str) -> None:
        if self._exclusions.get(app_id, ("", ""))[1] != reason:
            log.warning("leaving app %s out of HAProxy: %s", app_id, reason)
        self._exclusions[app_id] = ((self._prints.get(app_id) or ""), reason)

    def blame_reload(self, message: str, model: Model) -> bool:
        """Exclude the apps a failed reload's message names; False when it names none."""
        owners = [owner for _, owner in render_lines(model, self.settings)]
        blamed = apps_blamed(message, owners, model)
        for app_id, line in blamed.items():
            self.exclude(app_id, f"HAProxy refused it at reload: {line}")
        return bool(blamed)

    async def validated(self, model: Model, rebuild: Callable[[], Model]) -> tuple[Model, str]:
        """A model whose config passes `haproxy -c`, leaving out the apps that break it."""
        output = ""
        for _ in range(4):
            lines = render_lines(model, self.settings)
            text = "\n".join(t for t, _ in lines) + "\n"
            result = await self._check(text)
            if result.ok:
                return model, text
            output = result.output
            blamed = apps_blamed(output, [o for _, o in lines], model)
            if not blamed:
                break
            for app_id, line in blamed.items():
                self.exclude(app_id, f"haproxy -c rejected its configuration: {line}")
            model = rebuild()

        async def valid(keep: frozenset[str]) -> bool:
            sub = Model(services=tuple(s for s in model.services if s.app_id in keep), apps=model.apps)
            return (await self._check(render_haproxy_config(sub, self.settings))).ok

        if not await valid(frozenset()):
            raise ConfigRejected("the bridge's own configuration does not pass haproxy -c", output)
        included = [a.app_id for a in model.apps if a.state == INCLUDED]
        first_error = next(iter(error_lines(output)), output.strip()[-300:])
        for app_id in sorted(await find_bad_apps(included, valid)):
            self.exclude(app_id, f"haproxy -c rejects the configuration with this app (found by bisection): {first_error}")
        model = rebuild()
        text = render_haproxy_config(model, self.settings)
        result = await self._check(text)
        if not result.ok:
            raise ConfigRejected("haproxy -c still fails after leaving out the offending apps", result.output)
        return model, text
