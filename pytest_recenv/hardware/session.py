"""The run-time work behind the hardware hooks in :mod:`pytest_recenv.plugin`.

One :class:`~pytest_recenv.hardware.state.State` per pytest config: the mode, the hardware report
(tier 0 at configure; tier 1 added after collection when a selected test needs it, see
:mod:`~pytest_recenv.hardware.skipping`), and the end of the run. Under xdist the controller probes
and sends the report to each worker (:mod:`~pytest_recenv.hardware.xdist`), which pins it.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import sys
from typing import Any

import pytest

from pytest_recenv.hardware.markers import MARKERS
from pytest_recenv.hardware.nvml import probe_tier0
from pytest_recenv.hardware.report import HardwareReport, load_probe_file
from pytest_recenv.hardware.state import MODES, STATE_KEY, State
from pytest_recenv.hardware.text import devices_text
from pytest_recenv.hardware.xdist import warn

# -- configure ------------------------------------------------------------------------------------


def resolve_mode(config: pytest.Config) -> str:
    option = config.getoption("recenv_gpu")
    if option:
        return str(option)
    for source, value in (
        ("RECENV_GPU", os.environ.get("RECENV_GPU", "")),
        ("ini option recenv_gpu", str(config.getini("recenv_gpu"))),
    ):
        if value.strip():
            mode = value.strip().lower()
            if mode not in MODES:
                raise pytest.UsageError(
                    f"{source}={value!r}: expected one of auto, require, skip; "
                    f"set it to one of those or pass --recenv-gpu"
                )
            return mode
    return "auto"


def register_markers(config: pytest.Config) -> tuple[str, ...]:
    """Register the recenv markers, except a name the project registers itself (ini ``markers``)
    and has not handed over in ini ``recenv_markers``; return the names left to the project.

    Read before adding ours: the ini's ``markers`` is all that is registered at this point (the
    hook runs first), so a line already there is the project's own.
    """
    handed = [str(name) for name in config.getini("recenv_markers")]
    for name in handed:
        if name not in MARKERS:
            raise pytest.UsageError(
                f"ini option recenv_markers: {name!r} is not a pytest-recenv marker; "
                f"expected names among {', '.join(MARKERS)}"
            )
    own = {re.split(r"[(:]", str(line), maxsplit=1)[0].strip() for line in config.getini("markers")}
    left = tuple(name for name in MARKERS if name in own and name not in handed)
    for name, marker in MARKERS.items():
        if name not in left:
            config.addinivalue_line("markers", marker.help_line)
    return left


def configure(config: pytest.Config) -> State:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and "recenv_report" in workerinput:
        return _configure_worker(config, workerinput)
    mode = resolve_mode(config)
    probe_file = config.getoption("recenv_probe_file")
    if probe_file:
        if mode == "require":
            raise pytest.UsageError(
                f"--recenv-gpu=require refuses the injected report "
                f"--recenv-probe-file={probe_file}: "
                "a required GPU run must probe the real machine; drop --recenv-probe-file"
            )
        try:
            report = load_probe_file(probe_file, os.environ.get("CUDA_VISIBLE_DEVICES"))
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
    else:
        report = probe_tier0()
    expected = config.getoption("recenv_expect_gpus")
    if expected is not None and len(report.devices) != expected:
        raise pytest.UsageError(
            f"--recenv-expect-gpus={expected}: expected {expected} visible CUDA devices, found "
            f"{len(report.devices)} ({devices_text(report)}); "
            "check CUDA_VISIBLE_DEVICES and the driver"
        )
    slots = config.getoption("recenv_slots_per_gpu")
    if slots < 1:
        raise pytest.UsageError(f"--recenv-slots-per-gpu={slots}: expected an integer >= 1")
    return State(mode=mode, report=report, parent_report=report)


def _configure_worker(config: pytest.Config, workerinput: dict[str, Any]) -> State:
    parent = HardwareReport.from_json(workerinput["recenv_report"])
    report = parent
    pin = workerinput.get("recenv_pin")
    if pin is not None:
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_initialized():
            warn(
                config,
                f"CUDA was initialised before pytest-recenv could pin worker "
                f"{workerinput['workerid']} to {pin}; a conftest or plugin touches CUDA at "
                "import time, so this worker sees the parent's devices",
            )
        os.environ["CUDA_VISIBLE_DEVICES"] = pin
        report = dataclasses.replace(parent.with_visibility(pin), worker=workerinput["workerid"])
    return State(
        mode=workerinput["recenv_mode"],
        report=report,
        parent_report=parent,
        tier1_dir=workerinput.get("recenv_tier1_dir"),
    )


def unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE_KEY, None)
    if state and state.tier1_dir and not hasattr(config, "workerinput"):
        shutil.rmtree(state.tier1_dir, ignore_errors=True)


# -- the end of the run --------------------------------------------------------------------------


def finish(session: pytest.Session) -> None:
    config = session.config
    state = config.stash.get(STATE_KEY, None)
    if state is None:
        return
    if hasattr(config, "workerinput"):
        config.workeroutput["recenv_tally"] = dataclasses.asdict(state.tally)
        config.workeroutput["recenv_deselected"] = state.only_hardware_deselected
        return
    if (
        state.mode == "require"
        and not config.option.collectonly
        and state.tally.ran == 0
        and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
    ):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        state.require_failed = True
