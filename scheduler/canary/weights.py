"""HAProxy server weights that send W% of an app's traffic to its canary servers. Pure.

HAProxy balances by per-server weight (0..256, changed at run time with ``set server
<backend>/<server> weight N``, no reload), so the share of a version is
``n_version * w_version / sum(n * w)``. Every server of a version gets the same weight: the
versions' instances stay evenly loaded, and one weight per version is all a step has to set.

With both versions present and 0 < W < 100 the search is exact: for each canary weight the
best stable weight is the floor or ceiling of its ideal value (the share is monotonic in it),
so trying all 256 canary weights finds the pair closest to W; ties go to the smaller pair.
That lands within one point of W whenever integers up to 256 can (not, say, 99% with ten
stable servers and one canary: 256 / (256 + 10) is the most there is).

Traffic is never sent nowhere: when only one version has servers it gets weight 1 whatever
W asks, and ``canary_percent`` says what the weights really give.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .errors import InvalidCounts

__all__ = ["MAX_WEIGHT", "ServerWeights", "canary_share", "canary_weights", "weight_commands"]

MAX_WEIGHT = 256
"""HAProxy's largest server weight."""


@dataclass(frozen=True)
class ServerWeights:
    """The weight to set on every stable and every canary server, and the canary share it gives.

    ``canary_percent`` is None when no server has a weight (neither version has servers).
    """

    stable: int
    canary: int
    canary_percent: float | None


def canary_share(stable_servers: int, canary_servers: int, stable_weight: int, canary_weight: int) -> float | None:
    """Percent of the traffic the canary servers get with these weights (None: no traffic at all)."""
    canary_total = canary_servers * canary_weight
    total = stable_servers * stable_weight + canary_total
    return None if total == 0 else 100.0 * canary_total / total


def _check(stable_servers: int, canary_servers: int, percent: int) -> None:
    if stable_servers < 0 or canary_servers < 0:
        raise InvalidCounts(f"server counts must not be negative (stable {stable_servers}, canary {canary_servers})")
    if not 0 <= percent <= 100:
        raise InvalidCounts(f"a canary weight is a percentage 0..100, got {percent}")


def canary_weights(stable_servers: int, canary_servers: int, percent: int) -> ServerWeights:
    """The per-server weights that give the canary ``percent`` % of the traffic, or as near as can be.

    Raises :class:`InvalidCounts` for negative counts or a percent outside 0..100.
    """
    _check(stable_servers, canary_servers, percent)
    if stable_servers == 0 and canary_servers == 0:
        return ServerWeights(0, 0, None)
    if canary_servers == 0:
        return ServerWeights(1, 0, 0.0)
    if stable_servers == 0:
        return ServerWeights(0, 1, 100.0)
    if percent == 0:
        return ServerWeights(1, 0, 0.0)
    if percent == 100:
        return ServerWeights(0, 1, 100.0)
    best: tuple[float, int, int, int] | None = None
    for canary_weight in range(1, MAX_WEIGHT + 1):
        ideal = canary_servers * canary_weight * (100 - percent) / (stable_servers * percent)
        low = min(MAX_WEIGHT, max(1, int(ideal)))
        for stable_weight in {low, min(MAX_WEIGHT, low + 1)}:
            share = canary_share(stable_servers, canary_servers, stable_weight, canary_weight)
            assert share is not None  # both counts and weights are positive here
            key = (round(abs(share - percent), 9), stable_weight + canary_weight, canary_weight, stable_weight)
            if best is None or key < best:
                best = key
    assert best is not None
    _, _, canary_weight, stable_weight = best
    return ServerWeights(stable_weight, canary_weight,
                         canary_share(stable_servers, canary_servers, stable_weight, canary_weight))


def weight_commands(backend: str, stable: Iterable[str], canary: Iterable[str], weights: ServerWeights) -> list[str]:
    """The Runtime API commands that apply ``weights`` to the named servers of ``backend``.

    One ``set server`` line per server, the version that gets weight 0 last: whatever the
    weights were before, no moment between two commands leaves every server at weight 0
    (which would make HAProxy answer 503).
    """
    canary_lines = [f"set server {backend}/{name} weight {weights.canary}" for name in canary]
    stable_lines = [f"set server {backend}/{name} weight {weights.stable}" for name in stable]
    return stable_lines + canary_lines if weights.canary == 0 else canary_lines + stable_lines
