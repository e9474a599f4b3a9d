"""The conda family (micromamba, mamba, conda).

This machine may have no conda: the command-construction tests below check only the commands
recenv would run (labelled as such); the real build runs where a conda binary and its channel
are available.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from recenv_helpers import write_env

from pytest_recenv.env.backends import CondaFamilyBackend, backend_chain, select_backend
from pytest_recenv.env.builders import ensure_env, make_plan
from pytest_recenv.errors import RecenvError


def test_command_construction_micromamba_creates_from_the_file_without_the_pip_part() -> None:
    backend = CondaFamilyBackend("micromamba")
    backend.exe = "micromamba"
    assert backend.create_command(Path("/c/k"), Path("/c/.k.environment.yml"), None) == [
        "micromamba",
        "create",
        "--yes",
        "--prefix",
        "/c/k",
        "--file",
        "/c/.k.environment.yml",
    ]


def test_command_construction_conda_uses_env_create_and_a_lock_when_there_is_one() -> None:
    backend = CondaFamilyBackend("conda")
    backend.exe = "conda"
    assert backend.create_command(Path("/c/k"), Path("/c/e.yml"), None) == [
        "conda",
        "env",
        "create",
        "--prefix",
        "/c/k",
        "--file",
        "/c/e.yml",
    ]
    assert backend.create_command(Path("/c/k"), Path("/c/e.yml"), Path("/p/e.linux-64.lock")) == [
        "conda",
        "create",
        "--yes",
        "--prefix",
        "/c/k",
        "--file",
        "/p/e.linux-64.lock",
    ]


def test_command_construction_pip_section_runs_without_upgrade(tmp_path: Path) -> None:
    backend = CondaFamilyBackend("mamba")
    cmd = backend.pip_command(
        Path("/c/k"), ["rich>=13", f"-e {tmp_path}", "--extra-index-url https://m.example/simple"]
    )
    assert cmd == [
        "/c/k/bin/python",
        "-m",
        "pip",
        "install",
        "--no-input",
        "rich>=13",
        "-e",
        str(tmp_path),
        "--extra-index-url",
        "https://m.example/simple",
    ]
    assert "-U" not in cmd and "--upgrade" not in cmd


def test_command_construction_conda_only_file_drops_the_pip_section(
    tmp_path: Path, offline_pip: Path, cache_dir: Path
) -> None:
    spec = write_env(tmp_path, "  - numpy>=1.26\n", "      - rich\n")
    plan = make_plan(spec, backends=["uv"])
    out = CondaFamilyBackend("micromamba").conda_only_file(plan, tmp_path)
    text = out.read_text()
    assert "numpy>=1.26" in text and "pip:" not in text and "rich" not in text


def test_the_chain_skips_missing_binaries_and_says_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CONDA_EXE", raising=False)
    monkeypatch.delenv("MAMBA_EXE", raising=False)
    with pytest.raises(
        RecenvError,
        match="no usable backend: micromamba: 'micromamba' not found "
        "on PATH; mamba: 'mamba' not found on PATH",
    ):
        select_backend(["micromamba", "mamba"])
    assert select_backend(["micromamba", "uv"]).name == "uv"  # uv comes from the uv package


def test_the_chain_comes_from_recenv_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECENV_BACKENDS", "uv, micromamba")
    assert backend_chain() == ["uv", "micromamba"]
    with pytest.raises(RecenvError, match="unknown backend 'pixi'"):
        select_backend(["pixi"])


def test_a_given_chain_is_read_like_recenv_backends_and_an_unknown_name_says_where_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # --backend 'micromamba, uv' or ini recenv_backends = micromamba, uv: spaces as in the env var
    assert backend_chain(["micromamba", " uv"]) == ["micromamba", "uv"]
    assert select_backend(["micromamba", " uv"]).name == "uv"
    monkeypatch.setenv("RECENV_BACKENDS", "uv,pixi")
    with pytest.raises(RecenvError) as err:
        select_backend()
    assert str(err.value) == (
        "unknown backend 'pixi' (from RECENV_BACKENDS='uv,pixi'); "
        "expected some of micromamba, mamba, conda, uv"
    )


CONDA = next((shutil.which(n) for n in ("micromamba", "mamba", "conda") if shutil.which(n)), None)


@pytest.mark.slow
@pytest.mark.skipif(CONDA is None, reason="needs micromamba, mamba or conda on PATH; found none")
def test_real_conda_family_build(tmp_path: Path, cache_dir: Path) -> None:
    name = Path(CONDA).name
    backend = CondaFamilyBackend(name)
    usable, why = backend.available()
    if not usable:
        pytest.skip(f"needs a reachable conda-forge channel for {name}; {why}")
    spec = write_env(tmp_path, "  - six\n", "      - packaging\n")
    env = ensure_env(spec, backends=[name], progress=False)
    assert env.backend == name and env.created
    env.run(["python", "-c", "import six, packaging"])
