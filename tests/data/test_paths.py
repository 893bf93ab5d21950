"""Tests for spikeforge.data.paths.resolve_data_dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from spikeforge.data import DATA_ENV_VAR, DataNotFoundError, paths, resolve_data_dir


@pytest.fixture
def no_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Unset SPIKEFORGE_DATA and point both fallbacks at empty temporary places."""
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    cwd = tmp_path / "work" / "checkout"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(paths, "_REPO_ROOT", tmp_path / "elsewhere" / "repo")
    return tmp_path


def test_explicit_argument_wins_over_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = tmp_path / "explicit"
    explicit.mkdir()
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    monkeypatch.setenv(DATA_ENV_VAR, str(env_dir))
    assert resolve_data_dir(explicit) == explicit.resolve()
    assert resolve_data_dir(str(explicit)) == explicit.resolve()


def test_env_var_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path))
    assert resolve_data_dir() == tmp_path.resolve()


def test_missing_explicit_dir_does_not_fall_back(no_fallback: Path) -> None:
    missing = no_fallback / "nope"
    (no_fallback / "work" / "shared" / "data").mkdir(parents=True)  # a valid fallback exists
    with pytest.raises(DataNotFoundError, match="nope") as info:
        resolve_data_dir(missing)
    assert "SPIKEFORGE_DATA" in str(info.value)


def test_missing_env_dir_is_an_error(no_fallback: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_ENV_VAR, str(no_fallback / "from-env"))
    with pytest.raises(DataNotFoundError, match="from-env"):
        resolve_data_dir()


def test_cwd_fallback(no_fallback: Path) -> None:
    shared = no_fallback / "work" / "shared" / "data"
    shared.mkdir(parents=True)
    assert resolve_data_dir() == shared.resolve()


def test_repo_root_fallback(no_fallback: Path) -> None:
    shared = no_fallback / "elsewhere" / "shared" / "data"
    shared.mkdir(parents=True)
    assert resolve_data_dir() == shared.resolve()


def test_nothing_found_names_every_place(no_fallback: Path) -> None:
    with pytest.raises(DataNotFoundError) as info:
        resolve_data_dir()
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert str(no_fallback / "work" / "shared" / "data") in message
    assert str(no_fallback / "elsewhere" / "shared" / "data") in message
    assert "SPIKEFORGE_DATA" in message
    assert "--data-dir" in message
    assert "zalandoresearch/fashion-mnist" in message
    assert "LeCun" in message


def test_repo_root_points_at_checkout() -> None:
    assert (paths._REPO_ROOT / "src" / "spikeforge" / "data" / "paths.py").is_file()
