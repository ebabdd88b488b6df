"""Resident memory of a service process (issue 21: at most 150 MB per service under ``max``).

glibc's malloc gives every thread that allocates under contention an arena of its own, up to
8 per core; a service runs a dozen threads (gRPC, the PyMongo monitors, asyncio's executor, the
Kafka client), and each arena keeps the pages its batches once touched. Measured under ``max``
(2,000 tickets, ``bench/compare.py 1d3fa02``): intake 177 -> 107 MB, routing 182 -> 110 MB with two
arenas (and the lazy imports); CPU-ms per ticket stayed within this shared machine's noise (0.5-1.1 ms
per service across three runs: the threads mostly wait on the GIL and the store).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_ARENA_MAX = -8  # mallopt's parameter (malloc.h)
ARENAS = 2


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas for the threads this process starts from now on (call it before
    they start). ``MALLOC_ARENA_MAX`` in the environment wins; True if the cap was set here."""
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to cap
        return False
