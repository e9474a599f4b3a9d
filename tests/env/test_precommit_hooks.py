"""The hooks other repositories use, proven with pre-commit itself."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
MANIFEST = ROOT / ".pre-commit-hooks.yaml"
PRE_COMMIT = [sys.executable, "-m", "pre_commit"]


def _need_pre_commit() -> None:
    pytest.importorskip("pre_commit", reason="needs pre-commit (the 'test' extra)")


def test_the_hook_manifest_is_valid() -> None:
    _need_pre_commit()
    result = subprocess.run(
        [*PRE_COMMIT, "validate-manifest", str(MANIFEST)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_try_repo_runs_the_hooks_on_a_project(tmp_path: Path) -> None:
    _need_pre_commit()
    if shutil.which("git") is None:
        pytest.skip("needs git for pre-commit try-repo; found none on PATH")
    project = tmp_path / "project"
    project.mkdir()
    (project / "environment.yml").write_text(
        "name: shop-dev-me\nchannels:\n  - conda-forge\n  - defaults\ndependencies:\n"
        "  - python=3.11\n  - pip\n  - pip:\n      - faiss\n"
    )
    (project / "Dockerfile").write_text("FROM python:latest\nRUN echo hi\n")
    # a lock that no longer satisfies the spec (it predates the python=3.11 pin)
    (project / "environment.lock.json").write_text(
        '{"format": 1, "spec_hash": "old", "python": "3.10.13", "packages": {}}\n'
    )
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path / "pc-home"),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    subprocess.run(["git", "init", "-q"], cwd=project, check=True, env=env)
    subprocess.run(["git", "add", "."], cwd=project, check=True, env=env)
    result = subprocess.run(
        [*PRE_COMMIT, "try-repo", str(ROOT), "--all-files"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=900,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    for expected in (
        "environment.yml:4: channel 'defaults' is Anaconda's 'defaults'",
        "environment.yml:9: 'faiss' on PyPI is an unofficial 2019 release; use 'faiss-cpu' or "
        "'faiss-gpu'",
        "environment.yml:6: 'python=3.11' is not met by the lock (python 3.10.13); run "
        "'recenv lock'",
        "Dockerfile:1: base image 'python:latest' is not pinned",
        "Dockerfile:1: final stage 'python:latest' runs as root",
    ):
        assert expected in out, out
