"""The core tests' kernel policy: tests that need the compiled kernels fail without them.

Mark such a test (or a module-level ``needs_kernels = ...``) with
``pytest.mark.needs_kernels(library)``, ``library`` being a
:class:`spikeforge.core.kernels.KernelLibrary` (``fused.LIBRARY``, ``spike_linear.LIBRARY``), and
a test that compiles C++ itself with ``pytest.mark.needs_compiler``. The library is built when
the first such test is set up. If it is unavailable (no compiler, a failed build,
``SPIKEFORGE_NO_FUSED=1``), the test *fails* with the library's reason, so that CI cannot pass
without testing the kernels; with ``SPIKEFORGE_ALLOW_NO_KERNELS=1`` (a machine without a
compiler) it is skipped with that reason instead.

This file imports neither torch nor spikeforge, so tests can copy it next to a generated test.
"""

from __future__ import annotations

import os
import shlex
import subprocess

import pytest

ALLOW_ENV = "SPIKEFORGE_ALLOW_NO_KERNELS"


def kernels_allowed_missing() -> bool:
    """Whether ``SPIKEFORGE_ALLOW_NO_KERNELS`` turns the kernel tests' failures into skips."""
    return os.environ.get(ALLOW_ENV, "") not in ("", "0")


def compiler_problem() -> str:
    """Empty if ``$CXX`` (default ``g++``) runs, else why not."""
    cxx = shlex.split(os.environ.get("CXX") or "g++")
    try:
        proc = subprocess.run([*cxx, "--version"], capture_output=True, check=False, timeout=60)
    except (OSError, subprocess.SubprocessError, IndexError) as e:
        return f"no C++ compiler: CXX={shlex.join(cxx)!r}: {type(e).__name__}: {e}"
    if proc.returncode != 0:
        return f"no C++ compiler: '{shlex.join(cxx)} --version' exited with {proc.returncode}"
    return ""


def _missing(message: str) -> None:
    if kernels_allowed_missing():
        pytest.skip(message)
    pytest.fail(
        f"{message}\n(set {ALLOW_ENV}=1 to skip the kernel tests on a machine that cannot "
        "build them)",
        pytrace=False,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "needs_kernels(library): the test needs this KernelLibrary; it fails when the library "
        f"is unavailable (skips with the reason when {ALLOW_ENV}=1)",
    )
    config.addinivalue_line(
        "markers",
        "needs_compiler: the test runs $CXX; it fails without a compiler (skips when "
        f"{ALLOW_ENV}=1)",
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("needs_compiler") is not None:
        problem = compiler_problem()
        if problem:
            _missing(problem)
    for marker in item.iter_markers("needs_kernels"):
        library = marker.args[0]
        if library.get() is None:
            _missing(f"{library.name} kernels unavailable: {library.reason}")
