"""Shared helpers for the plugin's own tests: run an inner pytest with only pytest-recenv loaded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

REPORTS = Path(__file__).resolve().parents[1] / "data" / "reports"
# Autoload off and the plugin named explicitly: inner runs skip every other installed plugin's
# import, which is most of their start-up time, and cannot be affected by them.
PLUGIN_ARGS = ("-p", "no:cacheprovider", "-p", "pytest_recenv.plugin")


@pytest.fixture
def run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., pytest.RunResult]:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    for name in ("RECENV_GPU", "CUDA_VISIBLE_DEVICES", "PYTEST_XDIST_WORKER"):
        monkeypatch.delenv(name, raising=False)

    def _run(*args: str, subprocess: bool = False) -> pytest.RunResult:
        if subprocess:
            return pytester.runpytest_subprocess(*PLUGIN_ARGS, *args)
        return pytester.runpytest_inprocess(*PLUGIN_ARGS, *args)

    return _run


@pytest.fixture
def report_arg() -> Callable[[str], str]:
    """``--recenv-probe-file=<recorded report>`` for a file of tests/data/reports."""
    return lambda name: f"--recenv-probe-file={REPORTS / name}"
