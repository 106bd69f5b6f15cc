"""Process-level settings that make CPU inference faster; opt-in, never applied on import.

glibc's malloc hands large freed blocks back to the operating system (``munmap`` / heap trim)
and has to fault fresh zeroed pages in on the next allocation. A network that allocates tens
of MB of temporaries per call, as RNNPool on a big batch does, then spends a large share of its
time in page faults (we measured 31,000 minor faults and 70 ms per VWW-stem forward, against 0
faults and 29 ms with memory kept). PyTorch's CPU performance guide recommends jemalloc or
tcmalloc for this reason (``LD_PRELOAD``); :func:`keep_freed_memory` is the in-process
equivalent for glibc: it raises the trim and mmap thresholds with ``mallopt``.
"""
from __future__ import annotations

import ctypes
import ctypes.util

# from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(limit_bytes: int = 1 << 30) -> bool:
    """Ask glibc to keep up to ``limit_bytes`` of freed memory for reuse (process-wide).

    Returns ``False`` (and changes nothing) where the C library is not glibc. The process then
    keeps its peak memory instead of returning it; that is the trade.
    """
    if limit_bytes <= 0:
        raise ValueError(f"limit_bytes must be positive, got {limit_bytes}")
    path = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(path)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    value = min(limit_bytes, 2**31 - 1)
    return bool(mallopt(_M_TRIM_THRESHOLD, value)) and bool(mallopt(_M_MMAP_THRESHOLD, min(value, 1 << 30)))
