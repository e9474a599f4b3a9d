"""The pre-commit configuration is valid and its recenv hooks really run through pre-commit.

Only the `repo: local` hooks are run here: they call the `recenv` command that environment.yml
installs, so they need no network. Remote hook repositories (ruff, check-jsonschema) would be
cloned by pre-commit, so the tests hand pre-commit a copy of the config that keeps only the
local repo, in a scratch git repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".pre-commit-config.yaml"
PRE_COMMIT = [sys.executable, "-m", "pre_commit"]


def _need(module: str, command: str | None = None) -> None:
    try:
        __import__(module)
    except ImportError:
        pytest.skip(f"needs the {module} module (in environment.yml); not installed")
    if command and shutil.which(command) is None:
        pytest.skip(f"needs `{command}` on PATH; found none (PATH={os.environ.get('PATH', '')})")


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return yaml.safe_load(CONFIG.read_text(encoding="utf-8"))


def local_hooks(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        hook["id"]: hook
        for repo in config["repos"]
        if repo["repo"] == "local"
        for hook in repo["hooks"]
    }


def test_pre_commit_accepts_the_config() -> None:
    _need("pre_commit")
    result = subprocess.run(
        [*PRE_COMMIT, "validate-config", str(CONFIG)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_recenv_hooks_are_local_and_run_the_recenv_command(config: dict[str, Any]) -> None:
    hooks = local_hooks(config)
    recenv = {hook_id: hook for hook_id, hook in hooks.items() if hook_id.startswith("recenv-")}
    expected = {"recenv-check", "recenv-lock"}
    if (ROOT / "Dockerfile").is_file():
        expected.add("recenv-dockerfile")
    assert set(recenv) == expected
    for hook_id, hook in recenv.items():
        assert hook["entry"].split()[0] == "recenv", hook_id
        assert hook["language"] == "system", f"{hook_id}: must use the env's recenv, not a copy"


def test_remote_hook_repos_are_pinned_to_a_release(config: dict[str, Any]) -> None:
    remotes = [repo for repo in config["repos"] if repo["repo"] not in {"local", "meta"}]
    ids = {hook["id"] for repo in remotes for hook in repo["hooks"]}
    assert {"ruff-check", "ruff-format"} <= ids
    assert ("check-github-workflows" in ids) == (ROOT / ".github").is_dir()
    assert ("hadolint" in local_hooks(config)) == (ROOT / "Dockerfile").is_file()
    for repo in remotes:
        assert repo["rev"] not in {"main", "master", "HEAD"}, f"{repo['repo']} follows a branch"


@pytest.fixture(scope="module")
def scratch_repo(tmp_path_factory: pytest.TempPathFactory, config: dict[str, Any]) -> Path:
    """A git repo holding the project's checked files and a local-hooks-only config."""
    _need("pre_commit", "recenv")
    if shutil.which("git") is None:
        pytest.skip("needs git on PATH (pre-commit runs inside a git repository); found none")
    repo = tmp_path_factory.mktemp("precommit")
    for name in ("environment.yml", "Dockerfile", "pyproject.toml"):
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, repo / name)
    local_only = {"repos": [r for r in config["repos"] if r["repo"] == "local"]}
    (repo / "local-hooks.yaml").write_text(yaml.safe_dump(local_only), encoding="utf-8")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return repo


def run_hook(repo: Path, hook_id: str, *files: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PRE_COMMIT_HOME": str(repo / ".pre-commit-home"), "NO_COLOR": "1"}
    return subprocess.run(
        [*PRE_COMMIT, "run", "--config", "local-hooks.yaml", hook_id, "--files", *files],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_recenv_check_hook_passes_on_this_projects_environment(scratch_repo: Path) -> None:
    result = run_hook(scratch_repo, "recenv-check", "environment.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Passed" in result.stdout


def test_the_recenv_lock_hook_passes_before_a_lock_exists(scratch_repo: Path) -> None:
    result = run_hook(scratch_repo, "recenv-lock", "environment.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Passed" in result.stdout


@pytest.mark.parametrize("changed", ["environment.lock.json", "environment.yml"])
def test_the_recenv_lock_hook_checks_a_lock_once_there_is_one(
    scratch_repo: Path, changed: str
) -> None:
    # Either file can stale the lock, so a commit touching either one runs the hook.
    lock = scratch_repo / "environment.lock.json"
    lock.write_text("{}", encoding="utf-8")  # a lock that locks nothing cannot be fresh
    try:
        result = run_hook(scratch_repo, "recenv-lock", changed)
    finally:
        lock.unlink()
    assert result.returncode == 1, result.stdout + result.stderr
    assert "environment.lock.json" in result.stdout and "Failed" in result.stdout


def test_the_recenv_check_hook_blocks_a_broken_environment_with_file_and_line(
    scratch_repo: Path,
) -> None:
    broken = scratch_repo / "environment-broken.yml"
    text = (scratch_repo / "environment.yml").read_text(encoding="utf-8")
    broken.write_text(text.replace("  - nodefaults\n", "  - defaults\n"), encoding="utf-8")
    result = run_hook(scratch_repo, "recenv-check", broken.name)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Failed" in result.stdout
    assert f"{broken.name}:" in result.stdout and "defaults" in result.stdout
{%- if cookiecutter.include_docker %}


def test_the_recenv_dockerfile_hook_passes_on_this_projects_dockerfile(
    scratch_repo: Path,
) -> None:
    result = run_hook(scratch_repo, "recenv-dockerfile", "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_recenv_dockerfile_hook_blocks_an_unpinned_root_image(scratch_repo: Path) -> None:
    bad = scratch_repo / "Dockerfile.bad"
    bad.write_text(
        'FROM python:3.11\nCOPY . /app\nRUN pip install -e /app\nCMD ["python"]\n',
        encoding="utf-8",
    )
    result = run_hook(scratch_repo, "recenv-dockerfile", bad.name)
    assert result.returncode == 1, result.stdout + result.stderr
    assert bad.name in result.stdout
{%- endif %}
