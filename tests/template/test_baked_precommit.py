"""A baked project's pre-commit hooks, run by a real `git commit` in a fresh repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from bakery import ROOT, Bake

from pytest_recenv.spec import load_spec

PRE_COMMIT = [sys.executable, "-m", "pre_commit"]


def git(project: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=project, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def committed_project(bake: Bake, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A baked project with a fresh lock, committed with its recenv hooks installed.

    Only the `repo: local` recenv hooks are kept: remote hook repositories (ruff, hadolint's
    PyPI package) would need the network.
    """
    pytest.importorskip("pre_commit", reason="needs pre-commit (the 'test' extra)")
    if shutil.which("git") is None:
        pytest.skip("needs git on PATH (pre-commit runs in a git repository); found none")
    project = bake(python_version="3.11")
    config_path = project / ".pre-commit-config.yaml"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    local = [r for r in config["repos"] if r["repo"] == "local"]
    for repo in local:
        repo["hooks"] = [h for h in repo["hooks"] if h["id"].startswith("recenv-")]
    config_path.write_text(yaml.safe_dump({**config, "repos": local}), encoding="utf-8")
    # A lock that is fresh for the spec as baked (its hash matches), for python 3.11.
    spec = load_spec(project / "environment.yml")
    lock = {"format": 1, "spec_hash": spec.digest(), "python": "3.11.9", "packages": {}}
    (project / "environment.lock.json").write_text(json.dumps(lock) + "\n", encoding="utf-8")
    env = {
        **os.environ,
        # `language: system` hooks run the recenv next to this interpreter.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
        "NO_COLOR": "1",
    }
    git(project, "init", "-q", env=env).check_returncode()
    subprocess.run([*PRE_COMMIT, "install"], cwd=project, env=env, check=True, capture_output=True)
    git(project, "add", ".", env=env).check_returncode()
    first = git(project, "commit", "-q", "-m", "baked", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    return project, env


def test_a_commit_that_stales_the_lock_through_environment_yml_alone_is_refused(
    committed_project: tuple[Path, dict[str, str]],
) -> None:
    project, env = committed_project
    spec_file = project / "environment.yml"
    text = spec_file.read_text(encoding="utf-8")
    assert "  - python=3.11\n" in text
    spec_file.write_text(text.replace("  - python=3.11\n", "  - python=3.12\n"), encoding="utf-8")
    result = git(project, "commit", "-q", "-m", "python 3.12", "--", "environment.yml", env=env)
    out = result.stdout + result.stderr
    assert result.returncode != 0, f"the commit went through with a stale lock:\n{out}"
    assert "recenv lock is fresh for environment.yml" in out and "Failed" in out, out
    assert "'python=3.12' is not met by the lock (python 3.11.9)" in out, out


def test_a_commit_that_keeps_the_lock_fresh_passes_the_lock_hook(
    committed_project: tuple[Path, dict[str, str]],
) -> None:
    project, env = committed_project
    spec_file = project / "environment.yml"
    spec_file.write_text(
        spec_file.read_text(encoding="utf-8") + "# a comment changes no requirement\n",
        encoding="utf-8",
    )
    result = git(project, "commit", "-q", "-m", "comment", "--", "environment.yml", env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_generated_recenv_hooks_match_the_hooks_other_repositories_use(bake: Bake) -> None:
    # Same entry and file patterns as .pre-commit-hooks.yaml: a rule fixed in one place
    # (recenv-lock firing on environment.yml too) must not stay broken in the other.
    project = bake()
    manifest = {
        hook["id"]: hook
        for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    }
    config = yaml.safe_load((project / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    local = [h for r in config["repos"] if r["repo"] == "local" for h in r["hooks"]]
    recenv = {h["id"]: h for h in local if h["id"].startswith("recenv-")}
    assert set(recenv) == set(manifest)
    for hook_id, hook in recenv.items():
        for key in ("entry", "files", "exclude"):
            assert hook.get(key) == manifest[hook_id].get(key), f"{hook_id}: {key}"
