"""Marathon health checks as HAProxy server checks (pure; part of `build_model`).

The first HTTP/HTTPS/TCP check (MESOS_* alike) aimed at a service port becomes that backend's
check: `inter` from intervalSeconds, `timeout check` from timeoutSeconds, and `fall` from
maxConsecutiveFailures + 1, as marathon-lb renders it (healthCheckFalls): HAProxy marks a
server down one failure after Pacer would have killed the task, so the two never disagree
about a task Pacer still counts as healthy. COMMAND checks have nothing HAProxy can run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_HC_PATH = re.compile(r"/[A-Za-z0-9._~%/:@+=,!*?&;-]{0,1023}")
HTTP_CHECKS = {"HTTP": "http", "MESOS_HTTP": "http", "HTTPS": "https", "MESOS_HTTPS": "https"}
TCP_CHECKS = {"TCP": "tcp", "MESOS_TCP": "tcp"}
DEFAULT_MAX_FAILURES = 3          # Marathon's default maxConsecutiveFailures


@dataclass(frozen=True, slots=True)
class HealthCheck:
    kind: str                   # http | https | tcp
    path: str | None = None
    interval_s: int = 60
    timeout_s: int = 20
    fall: int = DEFAULT_MAX_FAILURES + 1
    port: int | None = None     # a fixed check port (healthChecks[].port), else the server's


def health_for(app: Mapping[str, Any], index: int, warnings: list[str]) -> HealthCheck | None:
    """The check for service port `index`, or None; a path that cannot be rendered safely is
    reported in `warnings` and leaves the port unchecked by HAProxy."""
    for i, hc in enumerate(app.get("healthChecks") or []):
        protocol = str(hc.get("protocol", "HTTP")).upper()
        kind = HTTP_CHECKS.get(protocol) or TCP_CHECKS.get(protocol)
        if kind is None:
            continue
        fixed_port = hc.get("port")
        port_index = hc.get("portIndex")
        if fixed_port is None and port_index is None:
            port_index = 0
        if port_index is not None and port_index != index:
            continue
        path = None
        if kind != "tcp":
            path = hc.get("path") or "/"
            if not isinstance(path, str) or not _HC_PATH.fullmatch(path):
                warnings.append(f"healthChecks[{i}].path {path!r} cannot be rendered safely; "
                                "HAProxy does not check this port (Pacer's own check still gates tasks)")
                return None
        interval = hc.get("intervalSeconds", 60)
        timeout = hc.get("timeoutSeconds", 20)
        failures = hc.get("maxConsecutiveFailures", DEFAULT_MAX_FAILURES)
        if isinstance(failures, bool) or not isinstance(failures, int) or failures < 0:
            failures = DEFAULT_MAX_FAILURES
        return HealthCheck(
            kind=kind, path=path,
            interval_s=max(1, int(interval)) if isinstance(interval, (int, float)) else 60,
            timeout_s=max(1, int(timeout)) if isinstance(timeout, (int, float)) else 20,
            fall=min(failures, 1000) + 1,
            port=fixed_port if isinstance(fixed_port, int) and 0 < fixed_port < 65536 else None)
    return None
