"""The bridge's status document: what GET /v2/haproxy returns (and `HaproxyBridge.status()`).

It only reads the bridge's state and shapes it for people and tools; nothing in the apply step
depends on it. The JSON names (camelCase, an outcome's `kind`) are what scripts and dashboards
read, so they stay fixed whatever the Python names become. Built without aiohttp, so the bridge
offers `status()` on its own; status_api.py serves it over HTTP.
"""

from __future__ import annotations

import hashlib
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol, assert_never

from .outcomes import (Outcome, Rejected, ReloadDeferred, Reloaded, ReloadFailed, ServerChanges, ServersUpdated,
                       Started, Unchanged, Update)
from .ownership import record_json
from .state import BridgeState, Counters

if TYPE_CHECKING:
    from .config_files import ConfigFiles
    from .draining import Draining
    from .haproxy import HaproxyProcess
    from .options import BridgeOptions
    from .watch import Watcher
    from .watch import StreamState

HISTORY_SHOWN = 20


def iso(epoch: float | None) -> str | None:
    """Marathon's timestamp form: 2024-01-31T12:00:00.000Z."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def servers_json(changes: ServerChanges | None) -> dict[str, int] | None:
    if changes is None:
        return None
    return {"added": changes.added, "moved": changes.moved, "revived": changes.revived, "draining": changes.draining}


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    match outcome:
        case Unchanged(held=held):
            return {"kind": "unchanged", "held": True} if held else {"kind": "unchanged"}
        case ServersUpdated(runtime_seconds=seconds, servers=servers):
            return {"kind": "runtime", "runtimeSeconds": round(seconds, 4), "servers": servers_json(servers)}
        case ReloadDeferred(reload_in_seconds=seconds, servers=servers):
            return {"kind": "deferred", "reloadInSeconds": round(seconds, 3), "servers": servers_json(servers)}
        case Started():
            return {"kind": "started"}
        case Reloaded(worker_pid=pid, reload_seconds=seconds):
            return {"kind": "reload", "workerPid": pid, "reloadSeconds": round(seconds, 4)}
        case Rejected(error=error):
            return {"kind": "rejected", "error": error}
        case ReloadFailed(error=error):
            return {"kind": "failed", "error": error}
    assert_never(outcome)


def update_json(update: Update) -> dict[str, Any]:
    return {**outcome_json(update.outcome), "seconds": round(update.seconds, 4), "reasons": list(update.reasons),
            "at": iso(update.at)}


def counters_json(c: Counters) -> dict[str, int]:
    return {"refreshes": c.refreshes, "reloads": c.reloads, "failedReloads": c.failed_reloads,
            "runtimeUpdates": c.runtime_updates, "runtimeCommands": c.runtime_commands,
            "runtimeRefused": c.runtime_refused, "unchanged": c.unchanged,
            "checks": c.checks, "rejectedConfigs": c.rejected_configs, "haproxyRestarts": c.haproxy_restarts,
            "fetchErrors": c.fetch_errors, "drained": c.drained}


def stream_json(s: StreamState) -> dict[str, Any]:
    return {"mode": s.mode, "connected": s.connected, "connectedAt": iso(s.connected_at),
            "lastEventAt": iso(s.last_event_at), "lastByteAt": iso(s.last_byte_at),
            "lastError": s.last_error, "reconnects": s.reconnects, "events": s.events,
            "heartbeats": s.heartbeats, "nextAttemptAt": iso(s.next_attempt_at),
            "polls": s.polls, "resyncs": s.resyncs, "eventsByType": dict(s.by_type)}


class BridgeParts(Protocol):
    """What the status document reads of a bridge (the bridge itself passes as one)."""

    options: BridgeOptions
    files: ConfigFiles
    process: HaproxyProcess
    state: BridgeState
    draining: Draining
    watcher: Watcher


def status_document(bridge: BridgeParts) -> dict[str, Any]:
    process = bridge.process
    info = process.info
    o = bridge.options
    state = bridge.state
    stats_host = "127.0.0.1" if o.bind_address in ("*", "0.0.0.0") else o.bind_address
    config = state.live_config or ""
    reload = state.last_reload
    apps = [a.as_json() for a in state.model.apps]
    return {
        "master": o.master, "group": o.group,
        "haproxy": {"running": process.alive(), "masterPid": process.pid,
                    "workerPids": list(info.workers) if info else [],
                    "configPath": str(bridge.files.live), "masterSocket": str(process.master_socket),
                    "adminSocket": str(process.admin_socket),
                    "statsUrl": f"http://{stats_host}:{o.stats_port}/haproxy?stats",
                    "ports": {"http": o.http_port, "https": o.https_port, "stats": o.stats_port,
                              "apps": o.apps_port}},
        "config": {"sha256": hashlib.sha256(config.encode()).hexdigest(), "lines": config.count("\n")},
        "lastReload": None if reload is None else {
            "at": iso(reload.at), "ok": reload.ok, "message": reload.message[-1000:],
            "seconds": round(reload.seconds, 4), "workerPid": reload.worker_pid},
        "lastUpdate": None if state.last_update is None else update_json(state.last_update),
        "lastError": state.last_error,
        "counters": counters_json(state.counters), "refreshPending": bridge.refreshes.pending,
        "stream": stream_json(bridge.watcher.state),
        "apps": apps,
        "vhostOwners": record_json(dict(state.model.owners)),
        "summary": {"included": sum(a["state"] == "included" for a in apps),
                    "rejected": sum(a["state"] == "rejected" for a in apps),
                    "skipped": sum(a["state"] == "skipped" for a in apps)},
        "draining": [{"backend": b, "server": n, "address": d.server.endpoint,
                      "secondsLeft": round(max(0.0, d.deadline - time.monotonic()), 1)}
                     for (b, n), d in sorted(bridge.draining.items())],
        "history": [update_json(u) for u in list(state.history)[-HISTORY_SHOWN:]],
    }
