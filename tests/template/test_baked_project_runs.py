"""A baked project's own test suite, run for real in the environment built from its
environment.yml by recenv (uv backend here; conda where present).

Python 3.11 is baked so the environment can take the CPU torch wheel offered by the user's pip
configuration; the 3.10 default is covered statically by the bake matrix.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from bakery import ROOT, bake_into
from pytest_recenv.builders import ensure_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def baked_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bake_into(
        tmp_path_factory.mktemp("baked"),
        python_version="3.11",
        recenv_requirement=f"pytest-recenv @ {ROOT.as_uri()}",
    )


def test_the_baked_projects_own_suite_passes_in_its_built_environment(
    baked_project: Path,
) -> None:
    env = ensure_env(baked_project / "environment.yml", progress=False)
    version = env.run(
        ["python", "-c", "import sys; print(sys.version_info[:2])"],
        cwd=baked_project, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert version.stdout.strip() == "(3, 11)"
    result = env.run(
        ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=baked_project, capture_output=True, text=True,
    )  # fmt: skip
    sys.stdout.write(result.stdout[-6000:])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout.splitlines()[-1]
    assert " failed" not in result.stdout.splitlines()[-1]
