"""release_freed hands free heap pages back to the system and leaves live memory alone."""

from __future__ import annotations

import os
import platform

import pytest

from sim.heap import release_freed

glibc = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's"
)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@glibc
def test_free_blocks_inside_the_heap_are_returned() -> None:
    big = bytearray(8 << 20)
    del big  # glibc now keeps blocks below 8 MB in its heap
    blocks = [bytearray(1 << 20) for _ in range(64)]  # 64 MB of touched heap pages
    keep = blocks[-1]  # holds the heap's top, so freeing the rest cannot shrink it by itself
    del blocks
    before = _rss_mb()
    assert release_freed() is True
    after = _rss_mb()
    assert before - after > 32, (before, after)
    assert keep == bytearray(1 << 20)  # live memory is untouched


@glibc
def test_live_blocks_stay() -> None:
    blocks = [bytearray(b"x" * (1 << 20)) for _ in range(16)]
    before = _rss_mb()
    release_freed()
    assert _rss_mb() > before - 8
    assert all(block.count(b"x") == 1 << 20 for block in blocks)
