"""Compiled CPU kernels: build once with the system C++ compiler, cache, load with ctypes.

The fast paths of :mod:`spikeforge.core.fused` (neurons) and :mod:`spikeforge.core.spike_linear`
(event-driven synapses) are small C++ sources compiled with ``$CXX`` or ``g++``
(``-O3 -fopenmp -ffp-contract=off -fno-math-errno -march=native``) into shared libraries loaded with
:mod:`ctypes`: no Python headers, no torch headers, no ninja. OpenMP resolves to the
``libgomp.so.1`` torch has already loaded, so both share one runtime. A build takes 10-30 s, once
per machine.

**The cache.** Each library is cached under ``$SPIKEFORGE_KERNEL_CACHE`` or
``~/.cache/spikeforge/kernels`` as ``spikeforge_<name>_<base>_<compiler>.so`` with a manifest
``spikeforge_<name>_<base>_<compiler>.json`` beside it:

* ``<base>`` hashes what the machine code depends on and what is known without a compiler: the
  source, the flags, the CPU flags and the machine; ``<compiler>`` hashes the compiler command
  and its ``--version``. With a compiler, the entry for that exact compiler is used (a compiler
  upgrade rebuilds); without one (``$CXX`` missing or failing), the newest valid entry of any
  compiler for ``<base>`` is loaded, so a prepared cache works on a machine with no compiler.
* The manifest records the size and SHA-256 of the ``.so`` (and the compiler, its version, the
  flags). A ``.so`` is only ever loaded after its size and hash match its manifest: a truncated,
  empty or overwritten file (which ``ctypes.CDLL`` could crash on with a bus error) is deleted
  and rebuilt, or, without a compiler, reported in :attr:`KernelLibrary.reason`.
* Check, build and publish run under an exclusive ``fcntl.flock`` on
  ``spikeforge_<name>_<base>.lock`` in the cache folder, so concurrent first builds (several
  training ranks) compile once and the others load the result. The build happens in a
  ``spikeforge-build-*`` temporary folder of the cache; the ``.so`` and then the manifest are
  moved into place atomically. Temporary folders of killed builds (older than
  :data:`STALE_SECONDS` and not locked by a live build) are removed at the next build.
* If the cache folder cannot be created or written (read-only file system, no ``$HOME``), the
  valid entries already in it are still used; builds go to a private per-user folder
  ``<tempdir>/spikeforge-kernels-<uid>`` (mode 0700, checked to be owned by the user) and
  :attr:`KernelLibrary.fallback` says why.

**Environment variables.**

* ``SPIKEFORGE_KERNEL_CACHE``: the cache folder (default ``~/.cache/spikeforge/kernels``).
* ``CXX``: the compiler command (default ``g++``; may carry a launcher, e.g. ``ccache g++``).
* ``SPIKEFORGE_NO_FUSED=1``: never build or load the kernels; every caller takes its plain-torch
  path.
* ``SPIKEFORGE_ALLOW_NO_KERNELS=1`` (tests only): the test suite's kernel tests *fail* when the
  kernels are unavailable for any reason, ``SPIKEFORGE_NO_FUSED`` included, so that CI always
  tests them; with this set they skip with the reason instead (a machine without a compiler).

A :class:`KernelLibrary` builds on first use and remembers the outcome; it is unavailable (and
every caller takes its plain-torch path) when ``SPIKEFORGE_NO_FUSED=1``, on non-Linux platforms,
without a compiler and without a valid cached build, or when the build fails;
:attr:`KernelLibrary.reason` says why.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import platform
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["BUILD_PREFIX", "FLAGS", "STALE_SECONDS", "KernelLibrary", "kernel_source"]

#: ``-ffp-contract=off``: no fused multiply-adds but the kernels' explicit ones (the
#: reference's rounding); ``-fno-math-errno``: ``sqrt`` is the (correctly rounded) instruction,
#: with no libm call to set ``errno`` on a negative argument, so loops using it vectorise; the
#: values are unchanged
FLAGS = [
    "-O3",
    "-fPIC",
    "-shared",
    "-fopenmp",
    "-ffp-contract=off",
    "-fno-math-errno",
    "-march=native",
    "-std=c++17",
]
#: name prefix of the temporary build folders inside the cache folder
BUILD_PREFIX = "spikeforge-build-"
#: a build folder older than this (seconds) and not locked is a killed build's leftover (the
#: compile itself times out after 600 s)
STALE_SECONDS = 900.0
_COMPILE_TIMEOUT = 600
_MANIFEST_FORMAT = 1


class _Unavailable(RuntimeError):
    """The library cannot be loaded; the message is the whole reason."""


def kernel_source(name: str) -> str:
    """The C++ source ``name`` shipped with the package (``spikeforge/core/csrc/``, package
    data), e.g. ``"neurons.cpp"``."""
    return (Path(__file__).with_name("csrc") / name).read_text()


def _configured_cache_dir() -> Path:
    root = os.environ.get("SPIKEFORGE_KERNEL_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "spikeforge" / "kernels"


def _fallback_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"spikeforge-kernels-{os.getuid()}"


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return platform.processor() + platform.machine()


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _compiler_version(cxx: list[str]) -> tuple[str | None, str]:
    """``(first line of --version, "")`` or ``(None, why there is no usable compiler)``."""
    if not cxx:
        return None, "CXX is empty"
    try:
        proc = subprocess.run(
            [*cxx, "--version"], capture_output=True, text=True, check=False, timeout=60
        )
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"CXX={shlex.join(cxx)!r} cannot run: {type(e).__name__}: {e}"
    if proc.returncode != 0:
        return None, f"'{shlex.join(cxx)} --version' exited with status {proc.returncode}"
    lines = proc.stdout.strip().splitlines()
    return (lines[0] if lines else "unknown version"), ""


def _writable_dir(path: Path) -> tuple[bool, str]:
    """Create ``path`` if needed; ``(True, "")`` if files can be created in it, else
    ``(False, why)``."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return False, f"cannot be created ({type(e).__name__}: {e})"
    if not path.is_dir():
        return False, "is not a folder"
    if not os.access(path, os.W_OK | os.X_OK):
        return False, "is read-only"
    return True, ""


def _private_dir(path: Path) -> tuple[bool, str]:
    """Create ``path`` (mode 0700) if needed; usable only if it is a real folder owned by this
    user that nobody else can write (it lives in the shared temporary folder)."""
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError as e:
        return False, f"cannot be created ({type(e).__name__}: {e})"
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
        return False, "is not a folder owned and writable only by this user"
    if not os.access(path, os.W_OK | os.X_OK):
        return False, "is read-only"
    return True, ""


@contextlib.contextmanager
def _flock(path: Path, *, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``path`` (created if needed); yields ``False`` instead of
    waiting when ``blocking=False`` and another process holds it."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _remove_stale_builds(directory: Path, max_age: float = STALE_SECONDS) -> list[Path]:
    """Remove the ``spikeforge-build-*`` folders in ``directory`` left by killed builds: older
    than ``max_age`` seconds and not locked by a running build. Returns the removed folders."""
    removed = []
    now = time.time()
    for folder in directory.glob(BUILD_PREFIX + "*"):
        try:
            if not folder.is_dir() or now - folder.stat().st_mtime < max_age:
                continue
            lock = folder / "build.lock"
            if lock.exists():
                with _flock(lock, blocking=False) as free:
                    if not free:
                        continue
            shutil.rmtree(folder)
            removed.append(folder)
        except OSError:
            continue
    return removed


def _write_fsynced(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


class KernelLibrary:
    """One C++ source compiled on demand and cached (see the module docstring).

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
        #: why the library is unavailable (empty when it is loaded)
        self.reason = "not built yet"
        #: seconds the compile took in this process (``None``: loaded from the cache / not built)
        self.seconds: float | None = None
        #: the verified ``.so`` that was loaded
        self.path: Path | None = None
        #: why the private fallback folder is used instead of the cache folder (empty if not)
        self.fallback = ""
        #: problems met on the way (corrupt entries rebuilt, stale build folders removed)
        self.notes: list[str] = []

    # -- naming ---------------------------------------------------------------------------------

    def _base_key(self) -> str:
        return _digest(self.source, " ".join(FLAGS), _cpu_flags(), platform.machine())[:16]

    def _stem(self, base: str, tag: str) -> str:
        return f"spikeforge_{self.name}_{base}_{tag}"

    # -- verification ---------------------------------------------------------------------------

    def _check(self, so: Path) -> str:
        """Empty if ``so`` matches its manifest (size and SHA-256), else what is wrong."""
        manifest_path = so.with_suffix(".json")
        try:
            manifest: Any = json.loads(manifest_path.read_text())
            size, digest = int(manifest["size"]), str(manifest["sha256"])
            if manifest.get("file") != so.name:
                return f"{manifest_path.name} describes {manifest.get('file')!r}"
        except FileNotFoundError:
            return f"{so.name} has no manifest" if so.exists() else "not built"
        except (OSError, ValueError, KeyError, TypeError) as e:
            return f"unreadable manifest {manifest_path.name} ({type(e).__name__}: {e})"
        try:
            actual = so.stat().st_size
            if actual != size:
                return f"{so.name} has {actual} bytes, its manifest says {size}"
            if _sha256_file(so) != digest:
                return f"{so.name} does not match the SHA-256 in its manifest"
        except FileNotFoundError:
            return f"{so.name} is missing"
        except OSError as e:
            return f"{so.name} is unreadable ({type(e).__name__}: {e})"
        return ""

    def _find(self, directory: Path, base: str, tag: str | None) -> tuple[Path | None, list[str]]:
        """The verified entry for ``tag`` (``None``: any compiler, newest first) in
        ``directory``, and the problems of the entries that failed the check."""
        if tag is not None:
            candidates = [directory / f"{self._stem(base, tag)}.so"]
        else:
            found = directory.glob(self._stem(base, "*") + ".so")

            def mtime(p: Path) -> float:
                try:
                    return p.stat().st_mtime
                except OSError:
                    return 0.0

            candidates = sorted(found, key=mtime, reverse=True)
        problems = []
        for so in candidates:
            problem = self._check(so)
            if not problem:
                return so, problems
            if problem != "not built":
                problems.append(f"{directory}: {problem}")
        return None, problems

    # -- building -------------------------------------------------------------------------------

    def _compile(self, directory: Path, cxx: list[str], version: str, target: Path) -> None:
        """Compile into a build folder of ``directory``; publish ``target`` and its manifest."""
        for folder in _remove_stale_builds(directory):
            self.notes.append(f"removed the stale build folder {folder}")
        start = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(prefix=BUILD_PREFIX, dir=directory))
        try:
            with _flock(tmp / "build.lock"):
                src = tmp / f"{self.name}.cpp"
                src.write_text(self.source)
                out = tmp / f"{self.name}.so"
                proc = subprocess.run(
                    [*cxx, *FLAGS, str(src), "-o", str(out)],
                    capture_output=True,
                    text=True,
                    timeout=_COMPILE_TIMEOUT,
                    check=False,
                )
                if proc.returncode != 0:
                    raise RuntimeError(
                        f"{shlex.join(cxx)} exited with status {proc.returncode}:\n"
                        f"{proc.stderr[-2000:]}"
                    )
                with out.open("rb") as f:
                    os.fsync(f.fileno())
                seconds = time.perf_counter() - start
                manifest = {
                    "format": _MANIFEST_FORMAT,
                    "library": self.name,
                    "file": target.name,
                    "size": out.stat().st_size,
                    "sha256": _sha256_file(out),
                    "compiler": shlex.join(cxx),
                    "compiler_version": version,
                    "flags": FLAGS,
                    "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "build_seconds": round(seconds, 3),
                }
                staged = tmp / "manifest.json"
                _write_fsynced(staged, (json.dumps(manifest, indent=1) + "\n").encode())
                os.replace(out, target)
                os.replace(staged, target.with_suffix(".json"))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.seconds = seconds

    def _folders(self) -> tuple[list[Path], Path | None, str]:
        """``(folders to look in, folder to build in, note)``: the cache folder if it is
        writable; else the cache folder (if it exists) to look in and the private fallback
        folder, with the note saying why (or, if the fallback is unusable too, why not)."""
        try:
            configured: Path | None = _configured_cache_dir()
        except RuntimeError as e:  # Path.home() without $HOME or a passwd entry
            configured, why = None, f"the default cache folder is unknown ({e})"
        if configured is not None:
            ok, why = _writable_dir(configured)
            if ok:
                return [configured], configured, ""
            why = f"the cache folder {configured} {why}"
        look = [configured] if configured is not None and configured.is_dir() else []
        fallback = _fallback_cache_dir()
        ok, fallback_why = _private_dir(fallback)
        if not ok:
            return look, None, f"{why}, and the fallback folder {fallback} {fallback_why}"
        return [*look, fallback], fallback, f"{why}; using {fallback} instead"

    def _load_verified(self, so: Path) -> ctypes.CDLL:
        lib = ctypes.CDLL(str(so))
        self.declare(lib)
        self.path = so
        return lib

    def _load(self) -> ctypes.CDLL:
        cxx = shlex.split(os.environ.get("CXX") or "g++")
        version, no_compiler = _compiler_version(cxx)
        base = self._base_key()
        tag = None if version is None else _digest(shlex.join(cxx), version)[:8]
        folders, build_dir, note = self._folders()
        problems: list[str] = []
        for folder in folders:
            so, found_problems = self._find(folder, base, tag)
            problems += found_problems
            if so is not None:
                if folder == build_dir and note:
                    self.fallback = note
                return self._load_verified(so)
        if version is None:
            detail = f" ({'; '.join(problems)})" if problems else ""
            where = ", ".join(str(f) for f in folders) or "no usable cache folder"
            raise _Unavailable(
                f"no C++ compiler ({no_compiler}) and no valid cached build of "
                f"{self.name!r} in {where}{detail}"
            )
        if build_dir is None:
            raise _Unavailable(f"no writable folder to build {self.name!r} in: {note}")
        self.fallback = note
        target = build_dir / f"{self._stem(base, tag or '')}.so"
        with _flock(build_dir / f"spikeforge_{self.name}_{base}.lock"):
            problem = self._check(target)  # again: another process may have built it meanwhile
            if problem:
                if problem != "not built":
                    self.notes.append(f"rebuilt {target}: {problem}")
                for stale in (target, target.with_suffix(".json")):
                    stale.unlink(missing_ok=True)
                self._compile(build_dir, cxx, version, target)
            return self._load_verified(target)

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
                        self.lib = self._load()
                        self.reason = ""
                    except _Unavailable as e:
                        self.reason = str(e)
                    except (
                        OSError,
                        RuntimeError,
                        ValueError,
                        subprocess.SubprocessError,
                        AttributeError,
                    ) as e:
                        self.reason = f"kernel build failed: {type(e).__name__}: {e}"
                self.tried = True
        return self.lib
