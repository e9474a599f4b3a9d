"""Lock files next to environment.yml: where they live, how fresh they are."""

from __future__ import annotations

import sysconfig
from pathlib import Path


def conda_subdir() -> str:
    plat = sysconfig.get_platform()  # e.g. linux-x86_64, macosx-11.0-arm64, win-amd64
    if plat.startswith("linux"):
        return "linux-aarch64" if plat.endswith("aarch64") else "linux-64"
    if plat.startswith("macosx"):
        return "osx-arm64" if plat.endswith("arm64") else "osx-64"
    return "win-64"


def conda_lock_path(env_file: Path) -> Path:
    """An explicit conda lock (``conda list --explicit --md5``) for this platform."""
    return env_file.with_name(f"{env_file.stem}.{conda_subdir()}.conda.lock")


def uv_lock_path(env_file: Path) -> Path:
    return env_file.with_name(f"{env_file.stem}.lock.json")
