"""Fixtures for the environment tests: real wheels built on the spot, isolated caches."""

from __future__ import annotations

from pathlib import Path

import pytest
from recenv_helpers import make_wheel


@pytest.fixture(autouse=True)
def verify_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Import-check records of this test only (builds would otherwise share the user's)."""
    folder = tmp_path / "verified"
    monkeypatch.setenv("RECENV_VERIFY_CACHE", str(folder))
    return folder


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Path:
    """A find-links folder with two tiny distributions (one depends on the other)."""
    house = tmp_path / "wheels"
    make_wheel(house, "recenv-tiny", "1.0")
    make_wheel(house, "recenv-tiny", "1.1")
    make_wheel(house, "recenv-dep", "2.0", requires=("recenv-tiny>=1.0",))
    return house


@pytest.fixture
def offline_pip(monkeypatch: pytest.MonkeyPatch, wheelhouse: Path, tmp_path: Path) -> Path:
    """pip configuration (the supported way: a PIP_CONFIG_FILE) pointing only at the wheelhouse.

    Machine-wide pip files are hidden so the test sees exactly this configuration.
    """
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nno-index = true\nfind-links = {wheelhouse}\n")
    empty = tmp_path / "no-xdg"
    empty.mkdir()
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(empty))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(empty))
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    for var in (
        "PIP_FIND_LINKS",
        "PIP_INDEX_URL",
        "PIP_EXTRA_INDEX_URL",
        "PIP_CONSTRAINT",
        "PIP_NO_INDEX",
        "PIP_TRUSTED_HOST",
    ):
        monkeypatch.delenv(var, raising=False)
    return wheelhouse


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("RECENV_CACHE_DIR", str(folder))
    return folder
