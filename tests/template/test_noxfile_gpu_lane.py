"""The template repo's GPU lane (`nox -s gpu_tests`) cannot be talked out of require mode."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from bakery import ROOT

import noxfile

# After `nox -s gpu_tests --`: each would let a CPU host pass with no hardware test run.
CONFLICTING = [
    pytest.param(["--recenv-gpu=skip"], id="--recenv-gpu=skip"),
    pytest.param(["-x", "--recenv-gpu", "auto"], id="--recenv-gpu auto"),
    pytest.param(["-p", "no:recenv"], id="-p no:recenv"),
    pytest.param(["-pno:recenv"], id="-pno:recenv"),
    pytest.param(["--override-ini=recenv_gpu=skip"], id="--override-ini=recenv_gpu=skip"),
]


@pytest.mark.parametrize("args", CONFLICTING)
def test_the_gpu_lane_refuses_arguments_that_leave_require_mode(args: list[str]) -> None:
    problem = noxfile.gpu_lane_conflict(args, {})
    assert problem is not None
    assert "require mode" in problem and "nox -s tests" in problem


@pytest.mark.parametrize(
    "args",
    [[], ["-x", "-k", "faiss"], ["--recenv-gpu=require"], ["-p", "no:cacheprovider"]],
    ids=["none", "-k", "--recenv-gpu=require", "-p no:cacheprovider"],
)
def test_the_gpu_lane_passes_other_pytest_arguments_through(args: list[str]) -> None:
    assert noxfile.gpu_lane_conflict(args, {}) is None


@pytest.mark.parametrize(
    "environ",
    [{"RECENV_GPU": "skip"}, {"PYTEST_ADDOPTS": "--recenv-gpu=skip"}],
    ids=["RECENV_GPU=skip", "PYTEST_ADDOPTS"],
)
def test_the_gpu_lane_refuses_an_environment_that_leaves_require_mode(
    environ: dict[str, str],
) -> None:
    problem = noxfile.gpu_lane_conflict([], environ)
    assert problem is not None and "require mode" in problem


def test_nox_gpu_tests_with_skip_mode_fails_with_the_reason() -> None:
    # --no-venv: the refusal comes before anything is installed or run.
    env = {k: v for k, v in os.environ.items() if k not in {"RECENV_GPU", "PYTEST_ADDOPTS"}}
    result = subprocess.run(
        [sys.executable, str(ROOT / "noxfile.py"), "-s", "gpu_tests", "--no-venv", "--",
         "--recenv-gpu=skip"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "always runs in require mode" in out and "nox -s tests" in out, out
