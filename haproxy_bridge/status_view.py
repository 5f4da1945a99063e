"""The bridge's status document: what GET /v2/haproxy returns (and `HaproxyBridge.status()`).

Split out of service.py because it only reads the bridge's state and shapes it for people and
tools; nothing in the apply step depends on it. status_api.py serves the document over HTTP;
this module builds it, without aiohttp, so the bridge can offer `status()` on its own.
"""

from __future__ import annotations

import hashlib
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .service import HaproxyBridge


def iso(epoch: float | None) -> str | None:
    """Marathon's timestamp form: 2024-01-31T12:00:00.000Z."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def status_document(bridge: "HaproxyBridge") -> dict[str, Any]:
    process = bridge.process
    info = process.info
    o = bridge.options
    stats_host = "127.0.0.1" if o.bind_address in ("*", "0.0.0.0") else o.bind_address
    config = bridge.live_config or ""
    reload = bridge.last_reload
    apps = [a.as_json() for a in bridge.model.apps]
    return {
        "master": o.master, "group": o.group,
        "haproxy": {"running": process.alive(), "masterPid": process.pid,
                    "workerPids": list(info.workers) if info else [],
                    "configPath": str(bridge.config_path), "masterSocket": str(process.master_socket),
                    "adminSocket": str(process.admin_socket),
                    "statsUrl": f"http://{stats_host}:{o.stats_port}/haproxy?stats",
                    "ports": {"http": o.http_port, "https": o.https_port, "stats": o.stats_port}},
        "config": {"sha256": hashlib.sha256(config.encode()).hexdigest(), "lines": config.count("\n")},
        "lastReload": None if reload is None else {
            "at": iso(reload.at), "ok": reload.ok, "message": reload.message[-1000:],
            "seconds": round(reload.seconds, 4), "workerPid": reload.worker_pid},
        "lastUpdate": bridge.last_update, "lastError": bridge.last_error,
        "counters": dict(bridge.counters), "stream": bridge.watcher.state.as_json(),
        "apps": apps,
        "summary": {"included": sum(a["state"] == "included" for a in apps),
                    "rejected": sum(a["state"] == "rejected" for a in apps),
                    "skipped": sum(a["state"] == "skipped" for a in apps)},
        "draining": [{"backend": b, "server": n, "address": d.server.endpoint,
                      "secondsLeft": round(max(0.0, d.deadline - time.monotonic()), 1)}
                     for (b, n), d in sorted(bridge.draining.items())],
        "history": list(bridge.history)[-20:],
    }
