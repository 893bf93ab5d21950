"""glibc allocator settings shared by the benchmark scripts (applied to every contender)."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys


def tune_malloc() -> str:
    """Make glibc keep freed memory in the heap instead of returning it to the OS.

    By default every large tensor (a batch of activations is several MB) is a fresh ``mmap``
    whose pages fault in again on first touch; that kernel time (up to a third of the wall time
    on a small VM) makes timings vary by 2x between processes, and hits the TTFS networks (more
    intermediate tensors) harder than the ReLU network. Returns a description for the report.
    """
    if not sys.platform.startswith("linux"):
        return "default allocator"
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return "default allocator (mallopt unavailable)"
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    settings = ((m_mmap_threshold, 1 << 30), (m_trim_threshold, 2**31 - 1), (m_top_pad, 64 << 20))
    ok = all(mallopt(option, value) == 1 for option, value in settings)
    return (
        "glibc malloc: no mmap / trim for tensors" if ok else "mallopt failed (default allocator)"
    )
