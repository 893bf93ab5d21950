"""Kernel cache faults: corrupt entries, no compiler, concurrent builds, stale build folders,
unusable cache folders, failed builds; and the CI policy of ``conftest.py``.

Every load runs in a fresh subprocess that imports ``kernels.py`` alone (no torch) and builds a
one-line C++ source, so a crash (a bus error in ``ctypes.CDLL``) cannot take pytest down and the
file stays fast. Each test has its own cache folder; the user's cache is never touched.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

KERNELS_PY = Path(__file__).resolve().parents[2] / "src" / "spikeforge" / "core" / "kernels.py"
CONFTEST = Path(__file__).with_name("conftest.py")
CXX = os.environ.get("CXX") or "g++"
TINY = 'extern "C" int sf_tiny(int x) { return x + 41; }\n'

# Loads kernels.py by path, builds/loads TINY (or argv's source) and prints the outcome as JSON.
# ``read_only`` makes os.access deny writing to that folder (the tests run as root, for whom
# chmod does not make a folder read-only).
_SCRIPT = textwrap.dedent(
    """
    import ctypes, importlib.util, json, os, sys
    args = json.loads(sys.argv[1])
    if args["read_only"]:
        real_access = os.access
        def access(path, mode, *a, **kw):
            if os.path.realpath(path) == os.path.realpath(args["read_only"]) and mode & os.W_OK:
                return False
            return real_access(path, mode, *a, **kw)
        os.access = access
    spec = importlib.util.spec_from_file_location("sf_kernels", args["kernels"])
    kernels = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kernels)
    def declare(lib):
        lib.sf_tiny.argtypes = [ctypes.c_int]
        lib.sf_tiny.restype = ctypes.c_int
    library = kernels.KernelLibrary("tiny", args["source"], declare)
    lib = library.get()
    print(json.dumps({
        "available": lib is not None,
        "value": lib.sf_tiny(1) if lib is not None else None,
        "reason": library.reason,
        "compiled": library.seconds is not None,
        "path": str(library.path) if library.path else None,
        "fallback": library.fallback,
        "notes": library.notes,
    }))
    """
)


def load(
    cache: Path,
    *,
    cxx: str = CXX,
    source: str = TINY,
    read_only: Path | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Load the tiny library in a subprocess with ``SPIKEFORGE_KERNEL_CACHE=cache``."""
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, json.dumps(_args(source, read_only))],
        env=_env(cache, cxx, env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _args(source: str, read_only: Path | None) -> dict[str, Any]:
    return {"kernels": str(KERNELS_PY), "source": source, "read_only": read_only and str(read_only)}


def _env(cache: Path, cxx: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SPIKEFORGE_NO_FUSED"}
    env |= {"SPIKEFORGE_KERNEL_CACHE": str(cache), "CXX": cxx, **(extra or {})}
    return env


def entry(cache: Path) -> Path:
    (so,) = cache.glob("spikeforge_tiny_*.so")
    return so


def assert_built(result: dict[str, Any], compiled: bool) -> None:
    assert result["available"], result["reason"]
    assert result["value"] == 42 and result["reason"] == ""
    assert result["compiled"] is compiled


def counting_compiler(tmp_path: Path, delay: float = 0.0) -> tuple[str, Path]:
    """A ``$CXX`` wrapper that appends a line to a file per compile (not per --version)."""
    count = tmp_path / "compiles.txt"
    wrapper = tmp_path / "counting-cxx"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" != "--version" ]; then echo compile >> {shlex.quote(str(count))}; '
        f"sleep {delay}; fi\n"
        f'exec {CXX} "$@"\n'
    )
    wrapper.chmod(0o755)
    return str(wrapper), count


def compiles(count: Path) -> int:
    return len(count.read_text().splitlines()) if count.exists() else 0


needs_compiler = pytest.mark.needs_compiler  # see conftest.py


@needs_compiler
def test_first_load_builds_and_records_a_manifest_then_the_cache_is_used(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert_built(load(cache), compiled=True)
    so = entry(cache)
    manifest = json.loads(so.with_suffix(".json").read_text())
    assert manifest["file"] == so.name and manifest["size"] == so.stat().st_size
    assert len(manifest["sha256"]) == 64 and manifest["compiler_version"]
    assert_built(load(cache), compiled=False)
    assert not list(cache.glob("spikeforge-build-*"))


@needs_compiler
@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage", "appended"])
def test_corrupt_library_is_rebuilt_not_loaded(tmp_path: Path, damage: str) -> None:
    cache = tmp_path / "cache"
    load(cache)
    so = entry(cache)
    data = so.read_bytes()
    so.write_bytes(
        {
            "truncated": data[: len(data) // 2],
            "empty": b"",
            "garbage": os.urandom(len(data)),  # same size: only the hash tells
            "appended": data + b"\0",
        }[damage]
    )
    result = load(cache)
    assert_built(result, compiled=True)
    assert any("rebuilt" in note for note in result["notes"]), result["notes"]
    assert_built(load(cache), compiled=False)


@needs_compiler
@pytest.mark.parametrize("damage", ["missing", "wrong hash", "not json", "other file"])
def test_manifest_mismatch_is_rebuilt(tmp_path: Path, damage: str) -> None:
    cache = tmp_path / "cache"
    load(cache)
    manifest = entry(cache).with_suffix(".json")
    content = json.loads(manifest.read_text())
    if damage == "missing":
        manifest.unlink()
    elif damage == "wrong hash":
        manifest.write_text(json.dumps(content | {"sha256": "0" * 64}))
    elif damage == "not json":
        manifest.write_text('{"size": ')
    else:
        manifest.write_text(json.dumps(content | {"file": "spikeforge_tiny_other.so"}))
    assert_built(load(cache), compiled=True)
    assert json.loads(manifest.read_text())["file"] == content["file"]
    assert_built(load(cache), compiled=False)


@needs_compiler
@pytest.mark.parametrize("missing_cxx", ["nonexistent", "/bin/false"])
def test_cached_library_loads_without_a_compiler(tmp_path: Path, missing_cxx: str) -> None:
    cache = tmp_path / "cache"
    load(cache)
    cxx = str(tmp_path / "no-such-g++") if missing_cxx == "nonexistent" else missing_cxx
    result = load(cache, cxx=cxx)
    assert_built(result, compiled=False)
    assert result["path"] == str(entry(cache))


def test_no_compiler_and_no_cache_is_unavailable_with_the_reason(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    result = load(cache, cxx=str(tmp_path / "no-such-g++"))
    assert not result["available"] and not result["compiled"]
    assert "no C++ compiler" in result["reason"] and "no-such-g++" in result["reason"]
    assert f"no valid cached build of 'tiny' in {cache}" in result["reason"]


@needs_compiler
def test_no_compiler_and_a_corrupt_cache_says_what_is_wrong(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    load(cache)
    so = entry(cache)
    so.write_bytes(so.read_bytes()[:100])
    result = load(cache, cxx="/bin/false")
    assert not result["available"]
    assert "no C++ compiler" in result["reason"]
    assert f"{so.name} has 100 bytes" in result["reason"]


@needs_compiler
def test_concurrent_first_builds_compile_once(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cxx, count = counting_compiler(tmp_path, delay=1.0)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _SCRIPT, json.dumps(_args(TINY, None))],
            env=_env(cache, cxx),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert all(r["available"] and r["value"] == 42 for r in results), results
    assert compiles(count) == 1
    assert sum(r["compiled"] for r in results) == 1


@needs_compiler
def test_a_compiler_upgrade_rebuilds_and_the_old_entry_stays(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    load(cache)
    cxx, count = counting_compiler(tmp_path)  # another compiler command: another entry
    assert_built(load(cache, cxx=cxx), compiled=True)
    assert_built(load(cache, cxx=cxx), compiled=False)
    assert compiles(count) == 1 and len(list(cache.glob("spikeforge_tiny_*.so"))) == 2


@needs_compiler
def test_stale_build_folders_are_removed_at_the_next_build(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    old, busy, fresh = (cache / f"spikeforge-build-{n}" for n in ("old", "busy", "fresh"))
    for folder in (old, busy, fresh):
        folder.mkdir()
        (folder / "tiny.cpp").write_text(TINY)
        (folder / "build.lock").touch()
    an_hour_ago = time.time() - 3600
    for folder in (old, busy):
        os.utime(folder, (an_hour_ago, an_hour_ago))
    with (busy / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a live (if slow) build
        result = load(cache)
    assert_built(result, compiled=True)
    assert not old.exists() and busy.exists() and fresh.exists()
    assert any(str(old) in note for note in result["notes"])


@needs_compiler
def test_uncreatable_cache_folder_falls_back_to_a_private_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cache, tmp = blocker / "kernels", tmp_path / "tmp"
    tmp.mkdir()
    result = load(cache, env={"TMPDIR": str(tmp)})
    assert_built(result, compiled=True)
    fallback = tmp / f"spikeforge-kernels-{os.getuid()}"
    assert result["path"].startswith(f"{fallback}/")
    assert "cannot be created" in result["fallback"] and str(fallback) in result["fallback"]
    assert fallback.stat().st_mode & 0o777 == 0o700
    assert_built(load(cache, env={"TMPDIR": str(tmp)}), compiled=False)


@needs_compiler
def test_read_only_cache_folder_uses_its_valid_entry_else_builds_in_the_fallback(
    tmp_path: Path,
) -> None:
    cache, tmp = tmp_path / "cache", tmp_path / "tmp"
    tmp.mkdir()
    load(cache)
    result = load(cache, read_only=cache, env={"TMPDIR": str(tmp)})
    assert_built(result, compiled=False)
    assert result["path"] == str(entry(cache)) and result["fallback"] == ""
    result = load(cache, source=TINY + "// changed\n", read_only=cache, env={"TMPDIR": str(tmp)})
    assert_built(result, compiled=True)
    assert "is read-only" in result["fallback"]
    assert result["path"].startswith(str(tmp / f"spikeforge-kernels-{os.getuid()}"))
    assert len(list(cache.glob("*.so"))) == 1


@needs_compiler
def test_fallback_folder_writable_by_others_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    tmp = tmp_path / "tmp"
    planted = tmp / f"spikeforge-kernels-{os.getuid()}"
    planted.mkdir(parents=True)
    planted.chmod(0o777)
    result = load(blocker / "kernels", env={"TMPDIR": str(tmp)})
    assert not result["available"]
    assert "no writable folder" in result["reason"]
    assert "owned and writable only by this user" in result["reason"]


@needs_compiler
def test_failed_build_reports_the_compiler_error_and_leaves_nothing(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    result = load(cache, source='extern "C" int sf_tiny(int x) { return x + ; }\n')
    assert not result["available"]
    assert result["reason"].startswith("kernel build failed: RuntimeError:")
    assert "exited with status" in result["reason"] and "error" in result["reason"]
    assert sorted(p.suffix for p in cache.iterdir()) == [".lock"]


_POLICY_TEST = """
import pytest

class Library:
    name = "demo"
    reason = "no compiler here"
    def get(self):
        return None

@pytest.mark.needs_kernels(Library())
def test_uses_kernels():
    pass
"""


@pytest.mark.parametrize("allow", ["", "1"])
def test_kernel_tests_fail_when_unavailable_unless_allowed(tmp_path: Path, allow: str) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST.read_text())
    (tmp_path / "test_policy.py").write_text(_POLICY_TEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    env["SPIKEFORGE_ALLOW_NO_KERNELS"] = allow
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "demo kernels unavailable: no compiler here" in proc.stdout, proc.stdout
    if allow:
        assert proc.returncode == 0 and "1 skipped" in proc.stdout, proc.stdout
    else:
        assert proc.returncode == 1 and "1 error" in proc.stdout, proc.stdout
        assert "SPIKEFORGE_ALLOW_NO_KERNELS=1" in proc.stdout


def test_kernel_sources_are_package_data() -> None:
    """The C++ lives in .cpp files of the package (spikeforge/core/csrc), declared as package
    data so that a wheel carries them, and the modules compile exactly those files."""
    import tomllib

    from spikeforge.core import fused, spike_linear
    from spikeforge.core.kernels import kernel_source

    root = Path(__file__).resolve().parents[2]
    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "csrc/*.cpp" in data["package-data"]["spikeforge.core"]
    assert fused.LIBRARY.source == kernel_source("neurons.cpp")
    assert spike_linear.LIBRARY.source == kernel_source("spike_linear.cpp")
    assert "sf_abi_version" in fused.LIBRARY.source
