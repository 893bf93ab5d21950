"""glibc allocator settings shared by the benchmark scripts (applied to every contender)."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys


def _mallopt(settings: tuple[tuple[int, int], ...]) -> bool | None:
    """Apply glibc ``mallopt`` settings; ``None`` where there is no glibc ``mallopt``."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return None
    return all(mallopt(option, value) == 1 for option, value in settings)


M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3


def accounting_malloc() -> str:
    """Make the resident set follow live memory, for peak-memory measurements.

    Every allocation of 64 KiB or more becomes its own ``mmap`` (a fixed threshold also turns off
    glibc's dynamic threshold, which otherwise moves with the sizes freed before) and is returned
    to the OS when freed; the heap is trimmed above 128 KiB. The peak resident set of a step is
    then the peak of its live tensors plus small fixed costs, the same for every contender,
    instead of depending on which freed heap blocks happened to be reused.
    """
    ok = _mallopt(((M_MMAP_THRESHOLD, 64 << 10), (M_TRIM_THRESHOLD, 128 << 10), (M_TOP_PAD, 0)))
    if ok is None:
        return "default allocator (mallopt unavailable)"
    return "glibc malloc: mmap every block >= 64 KiB" if ok else "mallopt failed"


def tune_malloc() -> str:
    """Make glibc keep freed memory in the heap instead of returning it to the OS.

    By default every large tensor (a batch of activations is several MB) is a fresh ``mmap``
    whose pages fault in again on first touch; that kernel time (up to a third of the wall time
    on a small VM) makes timings vary by 2x between processes, and hits the TTFS networks (more
    intermediate tensors) harder than the ReLU network. Returns a description for the report.
    """
    ok = _mallopt(
        ((M_MMAP_THRESHOLD, 1 << 30), (M_TRIM_THRESHOLD, 2**31 - 1), (M_TOP_PAD, 64 << 20))
    )
    if ok is None:
        return "default allocator (mallopt unavailable)"
    return (
        "glibc malloc: no mmap / trim for tensors" if ok else "mallopt failed (default allocator)"
    )
