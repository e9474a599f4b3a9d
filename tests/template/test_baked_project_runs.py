"""A baked project's own test suite, run for real in the environment built from its
environment.yml by recenv (uv backend here; conda where present).

The bake takes every default (Python 3.10, compute=cpu): the user's first hour. Where the pip
configuration offers a CPU torch wheel only for another Python (our CI machine: cp311), the
environment gets PyPI's CUDA torch and recenv says so (BuildFallbackWarning); it runs on the CPU
all the same. Until session 4 this baked Python 3.11 for the CPU wheel and left 3.10 to the bake
matrix's static checks, which missed a DDP teardown failure that only 3.10 showed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from bakery import ROOT, bake_into

from pytest_recenv import BuildFallbackWarning
from pytest_recenv.builders import ensure_env

pytestmark = pytest.mark.slow

RECBOLE = "recbole==1.2.1"


@pytest.fixture(scope="module")
def baked_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The user's path: no answer for recenv_requirement, so the default ("auto") resolves to
    # this checkout (CI's fresh clone) as `pytest-recenv @ file://...`, and the build must work.
    project = bake_into(tmp_path_factory.mktemp("baked"))
    assert f"pytest-recenv @ {ROOT.as_uri()}" in (project / "environment.yml").read_text()
    return project


@pytest.fixture(scope="module")
def recbole_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recbole wheel, which ships MovieLens-100K, unpacked beside the env (never into it: the
    cached env must stay what its environment.yml says). Its licence forbids copying the data,
    so it is installed from the package index each time, never committed."""
    target = tmp_path_factory.mktemp("recbole")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
         RECBOLE],
        capture_output=True, text=True,
    )  # fmt: skip
    if result.returncode != 0:
        pytest.fail(
            f"expected `pip install --no-deps {RECBOLE}` to succeed (the ML-100K quality check "
            f"needs it), found exit {result.returncode}:\n{result.stderr[-2000:]}"
        )
    return target


def test_the_baked_projects_own_suite_passes_in_its_built_environment(
    baked_project: Path, recbole_dir: Path, tmp_path: Path
) -> None:
    # A private env cache: the baked project's `-e .` lives in a fresh temp folder each run, so
    # its env is never reused; building it under tmp_path keeps CI from filling the user cache.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = ensure_env(
            baked_project / "environment.yml", cache_dir=tmp_path / "envs", progress=False
        )
    assert env.created
    version = env.run(
        ["python", "-c", "import sys, torch; print(sys.version_info[:2], torch.__version__)"],
        cwd=baked_project, capture_output=True, text=True, check=True,
    )  # fmt: skip
    python, torch = version.stdout.split(") ")
    assert python + ")" == "(3, 10)", version.stdout
    fallbacks = [w for w in caught if issubclass(w.category, BuildFallbackWarning)]
    # a CPU build where the pip config offers one; else the CUDA build, said exactly once
    assert len(fallbacks) == (0 if torch.strip().endswith("+cpu") else 1), (torch, fallbacks)
    # No -r here: the project's own addopts (-ra) lists failures, errors and skips in the short
    # summary (a command-line -rs replaced it and dropped the FAILED lines); --tb=short keeps
    # the tail printed below readable.
    result = env.run(
        ["python", "-m", "pytest", "-p", "no:cacheprovider", "--tb=short", "-q"],
        cwd=baked_project, capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONPATH": str(recbole_dir)},
    )  # fmt: skip
    sys.stdout.write(result.stdout[-8000:])  # pytest shows it under "Captured stdout" on failure
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-3000:]}"
    last = result.stdout.splitlines()[-1]
    assert " passed" in last and " failed" not in last and " error" not in last, last
    # The ML-100K quality bar must really have run here, not skipped.
    assert "test_ml100k.py" not in "\n".join(
        line for line in result.stdout.splitlines() if line.startswith("SKIPPED")
    )
