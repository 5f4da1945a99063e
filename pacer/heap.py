"""glibc's malloc, asked now and then to hand back the memory `pacer serve` freed.

Why: CPython keeps small objects in its own arenas, but everything larger than 512 bytes
(JSON bodies, dict tables, encoded app definitions, numpy blocks under the mmap threshold)
comes from glibc's heap, and glibc returns freed heap pages to the kernel only from the
top of the heap. Between passes of the sampler, the autoscaler and the API's listings, the
free pages in the middle of it stay resident. Measured on the memory benchmark (1,000 apps,
5,000 tasks, embedded default, after 60 s idle): `malloc_trim(0)` gave back 4.9 MB of 118 MB.
It costs a walk of the heap's free lists (~1 ms here), so it runs on a slow beat, not after
every allocation burst.

One setting is made once, at start-up (`tune_malloc`): at most 2 malloc arenas
(``M_ARENA_MAX``). Every thread that allocates (the probe thread, the store's writer, the worker
threads of the sampler and the API's to_thread calls) otherwise gets an arena of its own, each
keeping its own free memory.

The mmap threshold is left to glibc's dynamic rule on purpose. Fixing it at 128 KB gave back a
further few MB (idle 118.3 -> 111.9 MB with both settings) but put every multi-megabyte API
body (`/v2/tasks` is 2 MB at 5,000 tasks) on fresh mmapped pages, faulted in on each request:
bench/api.py measured `GET /v2/tasks` at a p50 of 13.3 ms with it against 7.6 ms without, and
the writes' p50 at 26.4 ms against 17.6 ms.

A setting given in the environment (``MALLOC_ARENA_MAX``) is left
as the operator set it. Nothing here changes what the process computes; where the C library
has no ``mallopt``/``malloc_trim`` (musl, macOS) nothing is done.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Callable

from periodic import run_periodically

log = logging.getLogger(__name__)

TRIM_SECONDS = 30.0
M_ARENA_MAX = -8           # glibc's malloc.h
ARENA_MAX = 2
_SETTINGS = ((M_ARENA_MAX, ARENA_MAX, "MALLOC_ARENA_MAX"),)


def _libc_function(name: str) -> ctypes._CFuncPtr | None:
    """A function of the C library this process runs on, or None where it has none."""
    try:
        return getattr(ctypes.CDLL(None), name)  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, or None where the C library has none."""
    trim = _libc_function("malloc_trim")
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


def tune_malloc() -> list[str]:
    """Set the arena count (see the module's docstring), before the
    process starts its threads; returns the environment names of the settings made."""
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return []
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return [env for param, value, env in _SETTINGS if env not in os.environ and mallopt(param, value) == 1]


def trim_heap() -> bool:
    """Give the free pages of malloc's heaps back to the kernel; whether any were (False also
    where there is no `malloc_trim`)."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


async def trim_periodically(interval: float = TRIM_SECONDS) -> None:
    """`trim_heap` every `interval` seconds until cancelled (a service of `pacer serve`)."""
    trim = _malloc_trim()
    if trim is None:
        log.debug("no malloc_trim in this C library: the heap is left as it is")
        return

    def step() -> None:
        trim(0)

    await run_periodically("heap trim", step, interval, log=log, first_delay=True)
