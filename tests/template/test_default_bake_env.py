"""A bake with no answers at all resolves its environment with the machine's own pip config.

The user's first hour: `cookiecutter <template>` taking every default (Python 3.10, compute=cpu),
then `nox -s tests`, whose first step is `recenv build`. Where the pip config offers a CPU torch
wheel only for another Python (as on our CI machine) and PyPI offers none for Linux, the build
must still go ahead, with PyPI's CUDA torch and a warning that says so and how to get a CPU one
(pytest_recenv/env/variants.py). This resolves (`recenv lock`, metadata only, seconds) rather
than installs the gigabytes; docs/measurements.md has a full default-bake `nox -s tests` run.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from bakery import Bake
from test_runtime_env import recenv

pytestmark = pytest.mark.slow


def test_a_default_bake_locks_its_environment_with_the_users_pip_config(
    bake: Bake, tmp_path: Path
) -> None:
    project = bake()
    assert "  - python=3.10\n" in (project / "environment.yml").read_text()
    env = {**os.environ, "RECENV_CACHE_DIR": str(tmp_path / "envs")}
    done = subprocess.run(
        [recenv(), "lock", "environment.yml"],
        cwd=project, capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    if done.returncode != 0 and "which is not installed" in done.stderr:
        pytest.skip(f"needs CPython 3.10 (the template's default); {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr[-3000:]
    lock = json.loads((project / "environment.lock.json").read_text())
    assert lock["python"].startswith("3.10."), lock["python"]
    torch = lock["packages"]["torch"]
    if not torch.endswith("+cpu"):  # no CPU build offered for 3.10: built anyway, and said
        assert done.stderr.startswith(
            "recenv lock: warning: environment.yml:19: 'pytorch=2.13=cpu*' resolved to "
            f"torch {torch} (a CUDA "
        ), done.stderr
        assert "Offer a CPU build: " in done.stderr
