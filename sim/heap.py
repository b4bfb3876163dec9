"""Hand heap pages the engine freed back to the operating system between run phases.

glibc keeps freed blocks of up to several MB inside its heap (it raises its mmap
threshold each time a large block is freed), so the run's numpy temporaries and grown
buffers leave free pages behind that still count as the process's memory. The KPI pass
that follows the run then asks the system for fresh pages, and the process's peak
becomes the engine's plus the KPIs'. :func:`release_freed` trims the heap
(``malloc_trim``) in between: ~8 MB of a year's run of 100 vehicles.

A full garbage collection would also free the finished engine's reference cycles at
once, but it costs 30-60 ms for ~1 MB more, and the cycles go at the next automatic one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from functools import cache


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (macOS, musl, Windows)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_freed() -> bool:
    """Return the heap's free pages to the system; True if the C library could trim.

    Only memory that is already free is returned: nothing live moves, and the call
    does nothing where the C library cannot trim.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
