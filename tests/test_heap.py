"""Memory a run freed goes back to the OS."""

from __future__ import annotations

import ctypes.util
import sys

import pytest

from nst_lightning.heap import release_freed_memory


def resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux") or not ctypes.util.find_library("c"), reason="needs glibc")
def test_freed_heap_memory_is_returned():
    # 200 MB in 32 KB blocks: below glibc's mmap threshold, so they live on the heap and stay
    # resident after they are freed, until the heap is trimmed. The first block is kept, as a run's
    # model is, so the heap cannot simply shrink from the top on its own.
    blocks = [bytearray(32 * 1024) for _ in range(6400)]
    keep = blocks[-1]
    before = resident_mb()
    del blocks
    after_free = resident_mb()
    assert release_freed_memory()
    after_trim = resident_mb()
    assert before - after_free < 50, "glibc kept the freed blocks: the premise of trimming"
    assert before - after_trim > 150, (before, after_free, after_trim)
    assert len(keep) == 32 * 1024
