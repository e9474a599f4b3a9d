"""The GitHub Actions workflow is valid and runs what this project promises.

The schema check uses check-jsonschema's vendored GitHub workflow schema (offline). The other
tests read the workflow as data and cross-check it against the files it drives: every nox
session it calls exists, the image job exists exactly when there is a Dockerfile.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return job.get("steps", [])


def runs(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in steps(job))


def uses(job: dict[str, Any]) -> list[str]:
    return [step["uses"] for step in steps(job) if "uses" in step]


def test_the_workflow_matches_the_github_workflow_schema() -> None:
    try:
        import check_jsonschema  # noqa: F401
    except ImportError:
        pytest.skip("needs check-jsonschema (pip install check-jsonschema); not installed")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            str(WORKFLOW),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_template_syntax_survives_and_expressions_are_githubs() -> None:
    text = WORKFLOW.read_text(encoding="utf-8")
    # Spelled in pieces so the template engine that wrote this file leaves them alone.
    open_expression, open_tag = "{" * 2, "{" + "%"
    assert "cookiecutter" not in text
    assert open_tag not in text
    # Every opening double brace belongs to a GitHub expression (dollar sign first).
    assert text.count(open_expression) == text.count("$" + open_expression)


def test_every_action_is_pinned_to_a_release(workflow: dict[str, Any]) -> None:
    for name, job in workflow["jobs"].items():
        for action in uses(job):
            assert re.search(r"@v\d+$|@[0-9a-f]{40}$", action), f"{name}: {action} is not pinned"


def test_pre_commit_runs_every_hook_on_every_file(workflow: dict[str, Any]) -> None:
    assert "pre-commit run --all-files" in runs(workflow["jobs"]["pre-commit"])


def test_the_environment_is_built_with_micromamba_and_cached_by_its_recenv_key(
    workflow: dict[str, Any],
) -> None:
    env = workflow["jobs"]["env"]
    assert any(a.startswith("mamba-org/setup-micromamba@") for a in uses(env))
    assert "recenv key" in runs(env)
    cache = next(s for s in steps(env) if s.get("uses", "").startswith("actions/cache@"))
    assert "steps.key.outputs.key" in cache["with"]["key"]
    assert "nox -s env" in runs(env)
    # The tests job must restore exactly what the env job saved.
    tests = workflow["jobs"]["tests"]
    assert tests["needs"] == "env"
    restore = next(
        s for s in steps(tests) if s.get("uses", "").startswith("actions/cache/restore@")
    )
    assert "needs.env.outputs.key" in restore["with"]["key"]
    assert restore["with"]["fail-on-cache-miss"] is True
    assert "nox -s tests" in runs(tests)


def test_the_gpu_job_runs_on_a_self_hosted_gpu_runner_in_require_mode(
    workflow: dict[str, Any],
) -> None:
    gpu = workflow["jobs"]["gpu-tests"]
    assert {"self-hosted", "gpu"} <= set(gpu["runs-on"])
    assert "nox -s gpu_tests" in runs(gpu)
    assert "pull_request.head.repo.full_name == github.repository" in gpu["if"]
    noxfile = (ROOT / "noxfile.py").read_text(encoding="utf-8")
    assert "--recenv-gpu=require" in noxfile


def test_the_gpu_job_is_opt_in_so_a_repository_without_a_gpu_runner_never_queues_it(
    workflow: dict[str, Any],
) -> None:
    condition = " ".join(workflow["jobs"]["gpu-tests"]["if"].split())
    # The switch is ANDed with everything else: no variable, no job, whatever the event.
    assert condition.startswith("vars.GPU_RUNNER == 'true' && ("), condition
    assert condition.endswith(")") and condition.count("(") == condition.count(")"), condition
    # The CPU job says so where the lane is off, and the docs say how to turn it on.
    notice = next(s for s in steps(workflow["jobs"]["tests"]) if "GPU_RUNNER" in s.get("if", ""))
    assert notice["if"] == "vars.GPU_RUNNER != 'true'" and "::notice" in notice["run"]
    docs = " ".join((ROOT / "docs" / "ci.md").read_text(encoding="utf-8").split())
    assert "`GPU_RUNNER` = `true`" in docs and "gh variable set GPU_RUNNER --body true" in docs


def test_every_nox_session_the_workflow_calls_exists(workflow: dict[str, Any]) -> None:
    tree = ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    sessions = {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any("session" in ast.unparse(d) for d in node.decorator_list)
    }
    called = {
        name for job in workflow["jobs"].values() for name in re.findall(r"nox -s (\w+)", runs(job))
    }
    assert called, "the workflow calls no nox session"
    assert called <= sessions, f"missing nox sessions: {sorted(called - sessions)}"


def test_the_image_job_exists_exactly_when_there_is_a_dockerfile(
    workflow: dict[str, Any],
) -> None:
    has_dockerfile = (ROOT / "Dockerfile").is_file()
    assert ("image" in workflow["jobs"]) == has_dockerfile
    if has_dockerfile:
        image = workflow["jobs"]["image"]
        assert set(image["strategy"]["matrix"]["target"]) == {"runtime", "dev"}
        build = next(s for s in steps(image) if s["uses"].startswith("docker/build-push-action@"))
        assert build["with"]["push"] is False


def test_the_workflow_yaml_parses_with_a_strict_loader() -> None:
    """Duplicate keys are silently merged by most loaders; GitHub rejects them."""
    from yaml.constructor import ConstructorError

    class Strict(yaml.SafeLoader):
        pass

    def no_duplicates(loader: Strict, node: yaml.MappingNode, deep: bool = False) -> dict:
        keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
        duplicates = {k for k in keys if keys.count(k) > 1}
        if duplicates:
            raise ConstructorError(None, None, f"duplicate keys {duplicates}", node.start_mark)
        return loader.construct_mapping(node, deep=deep)

    Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, no_duplicates)
    yaml.load(WORKFLOW.read_text(encoding="utf-8"), Loader=Strict)
