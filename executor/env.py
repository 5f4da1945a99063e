"""Pure builders for what a task process gets: its environment and its argv.

Everything here takes plain values and returns plain values, so the table of
Marathon's task variables can be tested exhaustively without starting
anything; ``executor.process`` is the only place that acts on the result.

Marathon's rules (``EnvironmentHelper`` / ``TaskBuilder``) reproduced here:

* ``PORT0..PORT{n-1}``, ``PORT`` (= ``PORT0``) and ``PORTS`` (comma list), all
  only when the task has at least one port; ``PORT_<NAME>`` for named ports.
  Marathon upper-cases the name only; we also replace every run of characters
  outside ``[A-Za-z0-9_]`` with ``_`` (``http-api`` -> ``PORT_HTTP_API``), because
  ``PORT_HTTP-API`` cannot be read from a shell.
* ``HOST``, ``MESOS_TASK_ID``, ``MARATHON_APP_ID``, ``MARATHON_APP_VERSION``,
  ``MARATHON_APP_DOCKER_IMAGE`` (only with an image), and
  ``MARATHON_APP_RESOURCE_CPUS|MEM|DISK|GPUS`` formatted as the JVM prints them
  (``1.0``, ``128.0``, ``0.1``; gpus is an integer: ``0``).
* ``MARATHON_APP_LABELS`` (always set, space-separated sanitised keys) and
  ``MARATHON_APP_LABEL_<KEY>``. Sanitising: runs of characters outside
  ``[A-Za-z0-9_]`` become one ``_``, then upper case. A label is dropped when
  the variable would not fit Marathon's 512-character limit: the key must be
  shorter than ``512 - len("MARATHON_APP_LABEL_")`` = 493 characters and the
  value shorter than 512 characters (Marathon's exact bounds).
* ``PORT_<declared port>`` (Marathon's variable for a fixed non-zero declared
  port) is not produced: the contract passes only the effective host ports.

Precedence between the app's ``env`` and these variables (a decision):
the app's ``env`` is applied first and Marathon's variables are written on top,
so an app cannot override ``PORT0``, ``HOST`` or ``MESOS_TASK_ID``; user keys
that Marathon does not set pass through unchanged. This protects the values
the scheduler itself relies on (health checks and the load balancer use the
assigned port). Note that Marathon 1.x itself merges the other way round
(``taskContextEnv ++ portsEnv ++ runSpec.env``, so a user ``PORT`` wins there).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal

from executor.errors import InvalidTaskSpec

MAX_ENV_VAR_LENGTH = 512
"""Marathon's ceiling for a label variable's name and for its value."""

LABEL_PREFIX = "MARATHON_APP_LABEL_"
MAX_LABEL_KEY_LENGTH = MAX_ENV_VAR_LENGTH - len(LABEL_PREFIX)

INHERITED_VARIABLES = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR"}
)
"""Scheduler variables a task inherits (plus every ``LC_*``).

An allowlist rather than the whole scheduler environment: the scheduler's own
variables (credentials for InfluxDB or Docker, test runner state) must not leak
into every task, while ``PATH`` is needed so ``python3`` or ``sh`` resolve.
"""

_NOT_NAME_CHARS = re.compile(r"[^A-Za-z0-9_]+")


def env_name(raw: str) -> str:
    """Turn a label key or port name into an env-var-safe suffix.

    Same rule as Marathon's label escaping, so ``MARATHON_APP_LABELS`` lists
    exactly the suffixes of the ``MARATHON_APP_LABEL_*`` variables.
    """
    return _NOT_NAME_CHARS.sub("_", raw).upper()


def jvm_number(value: float) -> str:
    """Format a float as ``Double.toString`` does, which Marathon's variables use.

    Tasks parse these (``MARATHON_APP_RESOURCE_MEM=128.0``); printing them the
    way Marathon did keeps scripts written for Marathon working. The JVM writes
    positional notation for magnitudes in [1e-3, 1e7) and ``d.dddE<n>`` outside,
    with the shortest digits that round-trip (as Python's ``repr``).
    """
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    value = float(value)
    if value == 0.0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    if 1e-3 <= abs(value) < 1e7:
        return repr(value)
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    assert isinstance(exponent, int)
    power = exponent + len(digits) - 1
    mantissa = text[0] + "." + (text[1:] or "0")
    return f"{'-' if sign else ''}{mantissa}E{power}"


def label_variables(labels: Mapping[str, str]) -> dict[str, str]:
    """``MARATHON_APP_LABELS`` plus one ``MARATHON_APP_LABEL_<KEY>`` per kept label.

    Labels too long for an environment variable are dropped silently, as in
    Marathon: they exist for the load balancer and tools, not for the task.
    """
    kept = {
        env_name(key): value
        for key, value in labels.items()
        if len(key) < MAX_LABEL_KEY_LENGTH and len(value) < MAX_ENV_VAR_LENGTH
    }
    result = {"MARATHON_APP_LABELS": " ".join(kept)}
    result.update({LABEL_PREFIX + key: value for key, value in kept.items()})
    return result


def port_variables(ports: Sequence[int], port_names: Sequence[str | None]) -> dict[str, str]:
    """``PORT<i>``, ``PORT``, ``PORTS`` and ``PORT_<NAME>``; empty for a portless task.

    ``port_names`` is parallel to ``ports``; it may be shorter (missing names
    are unnamed ports, so callers without names can pass ``()``), never longer.
    """
    if len(port_names) > len(ports):
        raise InvalidTaskSpec(
            f"{len(port_names)} port names given for {len(ports)} ports"
        )
    if not ports:
        return {}
    result = {f"PORT{index}": str(port) for index, port in enumerate(ports)}
    for port, name in zip(ports, port_names, strict=False):  # names may be shorter
        if name:
            result[f"PORT_{env_name(name)}"] = str(port)
    result["PORT"] = str(ports[0])
    result["PORTS"] = ",".join(str(port) for port in ports)
    return result


def marathon_task_env(
    *,
    app_id: str,
    app_version: str,
    task_id: str,
    host: str,
    ports: Sequence[int],
    port_names: Sequence[str | None],
    cpus: float,
    mem: float,
    disk: float,
    gpus: int,
    labels: Mapping[str, str],
    user_env: Mapping[str, str],
    docker_image: str | None = None,
) -> dict[str, str]:
    """The environment Marathon gives a task: the app's ``env`` under Marathon's own.

    See the module docstring for the table and the precedence decision.
    """
    marathon: dict[str, str] = {
        "MESOS_TASK_ID": task_id,
        "MARATHON_APP_ID": app_id,
        "MARATHON_APP_VERSION": app_version,
        "MARATHON_APP_RESOURCE_CPUS": jvm_number(cpus),
        "MARATHON_APP_RESOURCE_MEM": jvm_number(mem),
        "MARATHON_APP_RESOURCE_DISK": jvm_number(disk),
        "MARATHON_APP_RESOURCE_GPUS": str(gpus),
    }
    if docker_image is not None:
        marathon["MARATHON_APP_DOCKER_IMAGE"] = docker_image
    marathon.update(label_variables(labels))
    marathon.update(port_variables(ports, port_names))
    marathon["HOST"] = host
    return {**user_env, **marathon}


def task_command(cmd: str | None, args: Sequence[str] | None) -> list[str]:
    """The argv for a task, as Mesos' command executor would build it.

    ``cmd`` runs through ``/bin/sh -c`` (so ``$PORT0`` and pipes work); ``args``
    is exec'd as given. An empty ``cmd`` or ``args`` counts as absent, and when
    both are present ``args`` wins, as in Marathon's ``TaskBuilder`` (app
    validation rejects that combination before it gets here).
    """
    if args:
        return [str(arg) for arg in args]
    if cmd:
        return ["/bin/sh", "-c", cmd]
    raise InvalidTaskSpec("a task needs a non-empty cmd or args")


def process_environment(
    task_env: Mapping[str, str], inherited: Mapping[str, str]
) -> dict[str, str]:
    """The full environment of the process: allowlisted scheduler vars, then the task's.

    ``inherited`` is the scheduler's ``os.environ`` (passed in, so this stays
    pure). The task's variables win, so an app may set its own ``PATH``.
    ``PATH`` falls back to ``os.defpath`` when the scheduler has none, because
    ``/bin/sh -c 'python3 ...'`` must resolve commands.
    """
    env = {
        key: value
        for key, value in inherited.items()
        if key in INHERITED_VARIABLES or key.startswith("LC_")
    }
    env.setdefault("PATH", os.defpath)
    env.update(task_env)
    return env
