"""pytest hooks of pytest-recenv, in lifecycle order: the one ``pytest11`` entry point, hooks only.

The work lives in :mod:`pytest_recenv.hardware` (why a test is skipped: ``skipping``; the run's
state and its end: ``session``; xdist: ``xdist``; the printed text: ``text``) and, for
environments, in :mod:`pytest_recenv.env.fixtures`, registered below with this module.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

# Fixtures are registered by being importable from the plugin module.
from pytest_recenv.hardware import session as run
from pytest_recenv.hardware import skipping, text, xdist
from pytest_recenv.hardware.fixtures import faiss_gpu_resources, hardware, torch_device
from pytest_recenv.hardware.state import MODES, STATE_KEY

# Environment hooks and fixtures live in their own plugin module, registered with this one.
pytest_plugins = ["pytest_recenv.env.fixtures"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("recenv", "pytest-recenv: hardware-honest tests")
    group.addoption(
        "--recenv-gpu",
        choices=MODES,
        default=None,
        help="auto: run what the hardware allows, skip the rest with a reason; require: a skipped "
        "hardware test is an error and a run with no hardware test fails; skip: skip hardware "
        "tests even where hardware exists. Also RECENV_GPU or ini recenv_gpu (default auto).",
    )
    group.addoption(
        "--recenv-expect-gpus",
        type=int,
        default=None,
        metavar="N",
        help="fail at start unless exactly N CUDA devices are visible.",
    )
    group.addoption(
        "--recenv-probe-file",
        default=None,
        metavar="REPORT.json",
        help="use a recorded hardware report instead of probing (for testing the plugin; refused "
        "by --recenv-gpu=require).",
    )
    group.addoption(
        "--recenv-slots-per-gpu",
        type=int,
        default=1,
        metavar="K",
        help="under xdist, K consecutive workers share each visible GPU (default 1).",
    )
    group.addoption(
        "--recenv-only-hardware",
        action="store_true",
        default=False,
        help="deselect tests without a cuda/multi_gpu/faiss_gpu marker (a GPU-only lane).",
    )
    parser.addini(
        "recenv_gpu", "hardware mode: auto, require or skip (see --recenv-gpu)", default=""
    )
    parser.addini(
        "recenv_markers",
        "recenv marker names to give meaning even where the project registers them itself in "
        "ini markers (by default such a name is left to the project), e.g. cuda faiss",
        type="args",
        default=[],
    )


@pytest.hookimpl(tryfirst=True)  # first: ini `markers` still holds only the project's own lines
def pytest_configure(config: pytest.Config) -> None:
    left_to_project = run.register_markers(config)
    state = run.configure(config)
    state.project_markers = left_to_project
    config.stash[STATE_KEY] = state
    if hasattr(config.hook, "pytest_configure_node"):  # xdist loaded (by any name) added its hooks
        config.pluginmanager.register(XdistHooks(), "recenv-xdist-hooks")


def pytest_itemcollected(item: pytest.Item) -> None:
    skipping.imply_markers(item)


@pytest.hookimpl(trylast=True)  # after -k/-m deselection: probe only for what will run
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    skipping.evaluate_items(config, items)
    # Per-test hooks cost every test a few microseconds; register them only where they matter.
    state = config.stash[STATE_KEY]
    if state.hardware_ids or state.has_markers:
        config.pluginmanager.register(ReportHooks(), "recenv-report-hooks")
    if state.tier1_dir is not None and state.has_wide:
        config.pluginmanager.register(MultiGpuLock(), "recenv-multi-gpu-lock")


class ReportHooks:
    """Require mode and the hardware tally: look at each test report of a marked test."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        return skipping.after_test_report(item, (yield))  # it passes unmarked tests through


class MultiGpuLock:
    """Under xdist: a test needing several GPUs runs holding a run-wide lock."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> Generator[None]:
        with xdist.multi_gpu_lock(item):
            return (yield)


class XdistHooks:
    """pytest-xdist's controller hooks; registered only where xdist is loaded."""

    def pytest_configure_node(self, node: Any) -> None:
        xdist.configure_node(node.config, node)

    @pytest.hookimpl(tryfirst=True)  # before xdist prints the worker's traceback
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        xdist.node_down(node.config, getattr(node, "workeroutput", {}), node.gateway.id, error)


def pytest_report_header(config: pytest.Config) -> list[str]:
    return text.header_lines(config.stash[STATE_KEY])


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    run.finish(session)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    for line in text.summary_lines(config):
        terminalreporter.write_line(line)


def pytest_unconfigure(config: pytest.Config) -> None:
    run.unconfigure(config)


__all__ = ["MODES", "faiss_gpu_resources", "hardware", "torch_device"]
