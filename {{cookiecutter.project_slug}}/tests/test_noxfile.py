"""The nox tasks keep their promises: the GPU lane cannot be talked out of require mode, and
`nox -s bench` reads a skipped benchmark as a skip (exit 0), not a failure."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Arguments after `nox -s gpu_tests --` that would let a CPU host pass with no hardware test run.
CONFLICTING = [
    pytest.param(["--recenv-gpu=skip"], id="--recenv-gpu=skip"),
    pytest.param(["-x", "--recenv-gpu", "auto"], id="--recenv-gpu auto"),
    pytest.param(["-p", "no:recenv"], id="-p no:recenv"),
    pytest.param(["-pno:recenv"], id="-pno:recenv"),
    pytest.param(["-o", "recenv_gpu=skip"], id="-o recenv_gpu=skip"),
]
ALLOWED = [
    pytest.param([], id="none"),
    pytest.param(["-x", "-k", "train"], id="-k"),
    pytest.param(["--recenv-gpu=require"], id="--recenv-gpu=require"),
    pytest.param(["-p", "no:cacheprovider"], id="-p no:cacheprovider"),
]


@pytest.fixture(scope="module")
def noxfile() -> ModuleType:
    pytest.importorskip("nox", reason="needs nox (in environment.yml)")
    spec = importlib.util.spec_from_file_location("project_noxfile", ROOT / "noxfile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("args", CONFLICTING)
def test_the_gpu_lane_refuses_arguments_that_leave_require_mode(
    noxfile: ModuleType, args: list[str]
) -> None:
    problem = noxfile.gpu_lane_conflict(args, {})
    assert problem is not None
    assert "require mode" in problem and "nox -s tests" in problem


@pytest.mark.parametrize("args", ALLOWED)
def test_the_gpu_lane_passes_other_pytest_arguments_through(
    noxfile: ModuleType, args: list[str]
) -> None:
    assert noxfile.gpu_lane_conflict(args, {}) is None


@pytest.mark.parametrize(
    "environ",
    [{"RECENV_GPU": "skip"}, {"RECENV_GPU": "auto"}, {"PYTEST_ADDOPTS": "-p no:recenv"}],
    ids=["RECENV_GPU=skip", "RECENV_GPU=auto", "PYTEST_ADDOPTS"],
)
def test_the_gpu_lane_refuses_an_environment_that_leaves_require_mode(
    noxfile: ModuleType, environ: dict[str, str]
) -> None:
    problem = noxfile.gpu_lane_conflict([], environ)
    assert problem is not None and "require mode" in problem


def test_nox_gpu_tests_with_skip_mode_fails_with_the_reason() -> None:
    pytest.importorskip("nox", reason="needs nox (in environment.yml)")
    env = {k: v for k, v in os.environ.items() if k not in {"RECENV_GPU", "PYTEST_ADDOPTS"}}
    result = subprocess.run(
        [sys.executable, "-m", "nox", "-s", "gpu_tests", "--", "--recenv-gpu=skip"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "always runs in require mode" in out and "nox -s tests" in out, out


def test_the_ml100k_benchmark_skips_with_exit_0_and_the_reason_without_recbole(
    tmp_path: Path, child_env: Callable[..., dict[str, str]]
) -> None:
    # A `recbole` that cannot be imported stands in for a missing one, installed or not.
    blocked = tmp_path / "blocked" / "recbole"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'recbole'\", name='recbole')\n",
        encoding="utf-8",
    )
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join([str(blocked.parent), env["PYTHONPATH"]])
    out = tmp_path / "ml100k.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_ml100k.py"), "--json", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output  # nox -s bench goes on to the next benchmark
    assert "skipped: " in output and "recbole" in output, output
    # The JSON says so too: an older run's figures are not left to look current.
    assert "recbole" in json.loads(out.read_text(encoding="utf-8"))["skipped"]
