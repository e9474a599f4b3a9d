"""Interpreter discovery: pyenv's real binaries (never shims), PATH, and the pin policy."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pytest_recenv.env.interpreters import (
    Interpreter,
    choose,
    discover,
)
from pytest_recenv.env.spec import parse_matchspec
from pytest_recenv.errors import RecenvError
from pytest_recenv.warning_types import InterpreterFallbackWarning


def _fake_pyenv(tmp_path: Path) -> Path:
    """A pyenv root whose version folder links to this machine's base interpreter, plus a shim
    that fails like pyenv's do outside an activated shell."""
    root = tmp_path / "pyenv"
    bin_dir = root / "versions" / "9.9.9" / "bin"
    bin_dir.mkdir(parents=True)
    base = Path(sys._base_executable).resolve()
    (bin_dir / "python3.99").symlink_to(base)
    shims = root / "shims"
    shims.mkdir()
    shim = shims / "python3.98"
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.98: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    return root


def test_discovery_finds_pyenv_versions_and_skips_shims(tmp_path: Path) -> None:
    root = _fake_pyenv(tmp_path)
    found = discover(
        environ={"PYENV_ROOT": str(root), "PATH": str(root / "shims"), "HOME": str(tmp_path)}
    )
    assert [i.source for i in found] == ["pyenv"]
    assert found[0].path == root / "versions" / "9.9.9" / "bin" / "python3.99"
    # the version comes from asking the binary, not from the folder name
    assert found[0].version == tuple(sys.version_info[:3])


def test_discovery_skips_virtualenv_pythons(tmp_path: Path) -> None:
    found = discover(
        environ={
            "PATH": str(Path(sys.executable).parent),
            "PYENV_ROOT": str(tmp_path),
            "HOME": str(tmp_path),
        }
    )
    if sys.prefix == sys.base_prefix:
        pytest.skip(f"needs pytest running inside a venv; found {sys.prefix}")
    assert all(Path(i.path).parent != Path(sys.executable).parent for i in found)


def test_discovery_caches_answers_by_binary(tmp_path: Path) -> None:
    root = _fake_pyenv(tmp_path)
    env = {"PYENV_ROOT": str(root), "PATH": "", "HOME": str(tmp_path)}
    cache = tmp_path / "interpreters.json"
    first = discover(cache, env)
    assert cache.is_file()
    assert discover(cache, env) == first


def test_this_machines_pyenv_versions_are_found() -> None:
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    versions = sorted(p.name for p in (root / "versions").glob("3.*"))
    if not versions:
        pytest.skip(f"needs pyenv CPythons under {root}/versions; found none")
    found = {i.version_str for i in discover() if i.source == "pyenv"}
    assert set(versions) <= found


FOUND = [
    Interpreter(Path("/x/3.12/bin/python3.12"), (3, 12, 1), "CPython", "pyenv"),
    Interpreter(Path("/x/3.11/bin/python3.11"), (3, 11, 7), "CPython", "pyenv"),
    Interpreter(Path("/usr/bin/python3.11"), (3, 11, 2), "CPython", "PATH"),
]


def test_choose_takes_the_newest_matching_the_pin() -> None:
    assert choose(parse_matchspec("python=3.11", 6), FOUND).version == (3, 11, 7)
    assert choose(parse_matchspec("python>=3.10,<3.13", 6), FOUND).version == (3, 12, 1)


def test_strict_policy_names_the_pin_and_what_was_found() -> None:
    with pytest.raises(RecenvError) as err:
        choose(parse_matchspec("python=3.9", 6), FOUND, "strict", where="environment.yml")
    msg = str(err.value)
    assert msg.startswith(
        "environment.yml:6: 'python=3.9' needs CPython ==3.9.*, which is not "
        "installed; found: CPython 3.12.1 (/x/3.12/bin/python3.12, pyenv);"
    )
    assert "pyenv install 3.9" in msg


def test_warn_policy_falls_back_with_a_warning() -> None:
    with pytest.warns(
        InterpreterFallbackWarning, match="'python=3.9' is not installed; using CPython 3.12.1"
    ):
        chosen = choose(parse_matchspec("python=3.9", 6), FOUND, "warn")
    assert chosen.version == (3, 12, 1)
