"""Giving the memory a finished run freed back to the operating system."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys


def release_freed_memory() -> bool:
    """Collect garbage, then return the heap's free pages to the OS (glibc's ``malloc_trim``).

    glibc keeps memory that a run freed (the backbone's dropped layers, transient activations) for
    reuse, so the process stays as large as its busiest moment. Trimming after a run lowers what the
    process holds for the rest of its life: the next sweep point, and torch's own teardown at exit,
    which touches about 150 MB of library pages on top of whatever is still resident then.
    Returns whether anything was trimmed (False on platforms without glibc).
    """
    gc.collect()
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # musl and other C libraries have no malloc_trim
        return False
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return bool(trim(0))
