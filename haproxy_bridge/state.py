"""What the bridge knows between refreshes (pure: no I/O, no clock).

The loops change it and the status view reads it; keeping it in one place, apart from both,
is what lets the status page show exactly what the apply step decided on. HAProxy's own state
(pids, sockets) stays with the process, the draining servers with `Draining`, and the apps left
out by `haproxy -c` with the validator, because each of those has rules of its own.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .model import Model
from .outcomes import ReloadResult, Unchanged, Update


HISTORY_SIZE = 50


@dataclass
class Counters:
    """Monotonic counts since the bridge started, for dashboards and tests."""

    refreshes: int = 0
    reloads: int = 0
    failed_reloads: int = 0
    runtime_updates: int = 0
    runtime_commands: int = 0
    runtime_refused: int = 0        # a Runtime API command HAProxy refused (or did not answer): a reload did it
    unchanged: int = 0
    checks: int = 0
    rejected_configs: int = 0
    haproxy_restarts: int = 0
    fetch_errors: int = 0
    drained: int = 0


class BridgeState:
    """The live configuration, the latest per-app verdicts, and what the last refreshes did."""

    def __init__(self) -> None:
        self.live_model: Model | None = None      # what HAProxy runs (draining servers aside)
        self.live_config: str | None = None
        self.model = Model()                      # the latest verdicts, even when not loaded
        self.held_config: str | None = None       # a rendered config that failed to load
        self.counters = Counters()
        self.last_reload: ReloadResult | None = None
        self.last_update: Update | None = None
        self.last_error: str | None = None
        self.history: deque[Update] = deque(maxlen=HISTORY_SIZE)

    def went_live(self, model: Model, text: str) -> None:
        """HAProxy now runs `text`, rendered from `model`."""
        self.live_model, self.live_config = model, text

    def record(self, update: Update) -> None:
        """Remember a refresh; the history keeps only those that changed something."""
        self.last_update = update
        if not isinstance(update.outcome, Unchanged):
            self.history.append(update)
