"""Compiled CPU kernels: build once with the system C++ compiler, cache, load with ctypes.

The fast paths of :mod:`spikeforge.core.fused` (neurons) and :mod:`spikeforge.core.spike_linear`
(event-driven synapses) are small C++ sources compiled with ``$CXX`` or ``g++``
(``-O3 -fopenmp -ffp-contract=off -march=native``) into shared libraries loaded with
:mod:`ctypes`: no Python headers, no torch headers, no ninja. Each library is cached under
``$SPIKEFORGE_KERNEL_CACHE`` or ``~/.cache/spikeforge/kernels``, keyed by a hash of its source,
the flags, the compiler version and the CPU flags (a build takes 10-30 s once per machine; the
rename into the cache is atomic, so concurrent builders race harmlessly). OpenMP resolves to the
``libgomp.so.1`` torch has already loaded, so both share one runtime.

A :class:`KernelLibrary` builds on first use and remembers the outcome; it is unavailable (and
every caller takes its plain-torch path) when ``SPIKEFORGE_NO_FUSED=1``, on non-Linux platforms,
without a compiler, or when the build fails; :attr:`KernelLibrary.reason` says why.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["FLAGS", "KernelLibrary"]

FLAGS = ["-O3", "-fPIC", "-shared", "-fopenmp", "-ffp-contract=off", "-march=native", "-std=c++17"]


def _cache_dir() -> Path:
    root = os.environ.get("SPIKEFORGE_KERNEL_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "spikeforge" / "kernels"


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return platform.processor() + platform.machine()


class KernelLibrary:
    """One C++ source compiled on demand (see the module docstring).

    ``declare(lib)`` sets the ctypes signatures and may raise ``RuntimeError`` (e.g. an ABI
    check); ``get()`` returns the loaded library or ``None``.
    """

    def __init__(self, name: str, source: str, declare: Callable[[ctypes.CDLL], None]) -> None:
        self.name = name
        self.source = source
        self.declare = declare
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget the outcome of the last load (the next :meth:`get` tries again)."""
        self.lib: ctypes.CDLL | None = None
        self.tried = False
        self.reason = "not built yet"
        #: seconds the compile took in this process (``None``: loaded from the cache / not built)
        self.seconds: float | None = None

    def _build(self) -> ctypes.CDLL:
        cxx = os.environ.get("CXX", "g++")
        version = subprocess.run(
            [cxx, "--version"], capture_output=True, text=True, check=True, timeout=60
        ).stdout
        key = hashlib.sha256(
            "\0".join([self.source, " ".join(FLAGS), version, _cpu_flags()]).encode()
        ).hexdigest()[:20]
        directory = _cache_dir()
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / f"spikeforge_{self.name}_{key}.so"
        if not target.exists():
            start = time.perf_counter()
            with tempfile.TemporaryDirectory(dir=directory) as tmp:
                src = Path(tmp) / f"{self.name}.cpp"
                src.write_text(self.source)
                out = Path(tmp) / f"{self.name}.so"
                proc = subprocess.run(
                    [cxx, *FLAGS, str(src), "-o", str(out)],
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
                if proc.returncode != 0:
                    raise RuntimeError(f"{cxx} failed:\n{proc.stderr[-2000:]}")
                os.replace(out, target)
            self.seconds = time.perf_counter() - start
        lib = ctypes.CDLL(str(target))
        self.declare(lib)
        return lib

    def get(self) -> ctypes.CDLL | None:
        """The loaded library, building it on the first call; ``None`` if unavailable."""
        if self.tried:
            return self.lib
        with self._lock:
            if not self.tried:
                if os.environ.get("SPIKEFORGE_NO_FUSED", "") not in ("", "0"):
                    self.reason = "disabled by SPIKEFORGE_NO_FUSED"
                elif not sys.platform.startswith("linux"):
                    self.reason = f"not built on {sys.platform} (Linux only for now)"
                else:
                    try:
                        self.lib = self._build()
                        self.reason = ""
                    except (OSError, RuntimeError, subprocess.SubprocessError, AttributeError) as e:
                        self.reason = f"kernel build failed: {type(e).__name__}: {e}"
                self.tried = True
        return self.lib
