"""pytest hooks of pytest-recenv, in lifecycle order. Glue only: the work lives elsewhere.

Probing (:mod:`pytest_recenv.hardware.report`), evaluation (:mod:`pytest_recenv.hardware.markers`), the run-time
state and xdist plumbing (:mod:`pytest_recenv.hardware.session`) and the printed text
(:mod:`pytest_recenv.hardware.text`) are imported inside the hooks.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

# Fixtures are registered by being importable from the plugin module.
from pytest_recenv.hardware.fixtures import (
    MODES,
    REQS_KEY,
    STATE_KEY,
    faiss_gpu_resources,
    hardware,
    torch_device,
)

MARKERS = {
    "cuda": "cuda(min_devices=1, min_memory=None, min_capability=None): skip unless enough CUDA "
    "devices are usable (driver, torch CUDA build whose arch list covers the device, a kernel "
    'runs). Example: @pytest.mark.cuda(min_memory="16GiB", min_capability=(8, 0))',
    "multi_gpu": "multi_gpu(n): sugar for cuda(min_devices=n), n >= 2; grouped under xdist so two "
    "multi-GPU tests never run at once. Example: @pytest.mark.multi_gpu(2)",
    "faiss": "faiss: skip unless faiss imports and a flat-index search works. "
    "Example: @pytest.mark.faiss",
    "faiss_gpu": "faiss_gpu(min_devices=1): skip unless faiss is a CUDA build (not Metal, not "
    "faiss-cpu installed beside faiss-gpu) seeing enough GPUs. Example: @pytest.mark.faiss_gpu",
}


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
    from pytest_recenv.hardware import session as hwsession

    left_to_project = hwsession.register_markers(config, MARKERS)
    state = hwsession.configure(config)
    state.project_markers = left_to_project
    config.stash[STATE_KEY] = state


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    from pytest_recenv.hardware import session as hwsession

    hwsession.configure_node(node.config, node)


def pytest_itemcollected(item: pytest.Item) -> None:
    from pytest_recenv.hardware import session as hwsession

    hwsession.imply_markers(item)


@pytest.hookimpl(trylast=True)  # after -k/-m deselection: probe only for what will run
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    from pytest_recenv.hardware import session as hwsession

    hwsession.evaluate_items(config, items)
    # Per-test hooks cost every test a few microseconds; register them only where they matter.
    state = config.stash[STATE_KEY]
    if state.hardware_ids or state.has_markers:
        config.pluginmanager.register(ReportHooks(), "recenv-report-hooks")
    if state.tier1_dir is not None and state.has_wide:
        config.pluginmanager.register(MultiGpuLock(), "recenv-multi-gpu-lock")


class ReportHooks:
    """Require mode and the hardware tally: look at each report of a marked test."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if not item.stash.get(REQS_KEY, ()):
            return report
        from pytest_recenv.hardware import session as hwsession

        return hwsession.after_report(item, report)


class MultiGpuLock:
    """Under xdist: a test needing several GPUs runs holding a run-wide lock."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> Generator[None]:
        from pytest_recenv.hardware import session as hwsession

        with hwsession.multi_gpu_lock(item):
            return (yield)


def pytest_report_header(config: pytest.Config) -> list[str]:
    from pytest_recenv.hardware import text as hwreport

    return hwreport.header_lines(config.stash[STATE_KEY])


@pytest.hookimpl(optionalhook=True, tryfirst=True)  # before xdist prints the worker's traceback
def pytest_testnodedown(node: Any, error: Any) -> None:
    from pytest_recenv.hardware import session as hwsession

    hwsession.node_down(node.config, getattr(node, "workeroutput", {}), node.gateway.id, error)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from pytest_recenv.hardware import session as hwsession

    hwsession.finish(session)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    from pytest_recenv.hardware import text as hwreport

    for line in hwreport.summary_lines(config):
        terminalreporter.write_line(line)


def pytest_unconfigure(config: pytest.Config) -> None:
    from pytest_recenv.hardware import session as hwsession

    hwsession.unconfigure(config)


# Environment hooks and fixtures live in their own plugin module, registered with this one.
pytest_plugins = ["pytest_recenv.env.fixtures"]

__all__ = ["MARKERS", "MODES", "faiss_gpu_resources", "hardware", "torch_device"]
