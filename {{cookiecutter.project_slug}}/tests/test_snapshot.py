"""Run-folder snapshots: the git revision recorded is the project's own, never a parent folder's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.training.snapshot import git_revision, write_snapshot

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git, found none")


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` as a throwaway identity, ignoring the user's git configuration."""
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def repository(folder: Path, *tracked: str) -> str:
    """A git repository at ``folder`` with one commit holding ``tracked`` files; its hash."""
    folder.mkdir(parents=True, exist_ok=True)
    git(folder, "init", "-q")
    for name in tracked:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("x\n", encoding="utf-8")
    git(folder, "add", *tracked)
    git(folder, "commit", "-q", "-m", "first")
    return git(folder, "rev-parse", "HEAD")


def test_a_project_that_is_its_own_repository_records_its_commit(tmp_path: Path) -> None:
    commit = repository(tmp_path / "project", "pyproject.toml")
    assert git_revision(tmp_path / "project") == commit
    (tmp_path / "project" / "pyproject.toml").write_text("changed\n", encoding="utf-8")
    assert git_revision(tmp_path / "project") == f"{commit}-dirty"


def test_a_project_inside_someone_elses_checkout_is_not_a_git_repository(tmp_path: Path) -> None:
    # e.g. a project baked inside the template's checkout: that commit says nothing about it.
    repository(tmp_path / "template", "README.md")
    project = tmp_path / "template" / "build" / "shop"
    project.mkdir(parents=True)
    (project / "pyproject.toml").write_text("x\n", encoding="utf-8")
    assert git_revision(project).startswith("not a git repository")


def test_a_project_tracked_in_a_larger_repository_records_that_commit(tmp_path: Path) -> None:
    commit = repository(tmp_path / "mono", "README.md", "recs/pyproject.toml")
    assert git_revision(tmp_path / "mono" / "recs") == commit
    (tmp_path / "mono" / "README.md").write_text("elsewhere\n", encoding="utf-8")
    assert git_revision(tmp_path / "mono" / "recs") == commit  # changes outside do not count


def test_the_snapshot_does_not_record_the_repository_of_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = repository(tmp_path / "elsewhere", "README.md")
    monkeypatch.chdir(tmp_path / "elsewhere")
    write_snapshot(tmp_path / "run", {"seed": 0})
    assert json.loads((tmp_path / "run" / "config.json").read_text()) == {"seed": 0}
    assert elsewhere not in (tmp_path / "run" / "git.txt").read_text()
