"""The run-time work behind the hardware hooks in :mod:`pytest_recenv.plugin`.

One :class:`~pytest_recenv.hardware.fixtures.State` per pytest config: the mode, the report (tier 0 at
configure; tier 1 added after collection when a selected test needs it), xdist pinning and the tally
of hardware outcomes. Under xdist the controller probes, sends the report to each worker in
``workerinput`` and pins it; workers evaluate their own collection and send their tally back in
``workeroutput``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from pytest_recenv import RecenvPinningWarning
from pytest_recenv.hardware.fixtures import (
    FIXTURE_MARKERS,
    MODES,
    REQS_KEY,
    SKIP_KEY,
    STATE_KEY,
    State,
)
from pytest_recenv.hardware.markers import (
    ALL_MARKERS,
    MarkerError,
    Skip,
    evaluate_requirements,
    requirements,
    tier1_needed,
)
from pytest_recenv.hardware.probe_child import probe_tier1
from pytest_recenv.hardware.report import (
    HardwareReport,
    load_probe_file,
    probe_tier0,
    read_tier1_dir,
    visible_tokens,
)
from pytest_recenv.hardware.text import devices_text

MULTI_GPU_GROUP = "recenv-multi-gpu"


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


def register_markers(config: pytest.Config, help_lines: dict[str, str]) -> tuple[str, ...]:
    """Register the recenv markers, except a name the project registers itself (ini ``markers``)
    and has not handed over in ini ``recenv_markers``; return the names left to the project.

    Read before adding ours: the ini's ``markers`` is all that is registered at this point (the
    hook runs first), so a line already there is the project's own.
    """
    handed = [str(name) for name in config.getini("recenv_markers")]
    for name in handed:
        if name not in help_lines:
            raise pytest.UsageError(
                f"ini option recenv_markers: {name!r} is not a pytest-recenv marker; "
                f"expected names among {', '.join(help_lines)}"
            )
    own = {re.split(r"[(:]", str(line), maxsplit=1)[0].strip() for line in config.getini("markers")}
    left = tuple(name for name in help_lines if name in own and name not in handed)
    for name, line in help_lines.items():
        if name not in left:
            config.addinivalue_line("markers", line)
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
            _warn(
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


def _warn(config: pytest.Config, message: str) -> None:
    """A pinning warning; where the warning filters make it an error (as the generated project's
    ``error::pytest_recenv.RecenvWarning`` does), a usage error with the same text, not a crash."""
    try:
        config.issue_config_time_warning(RecenvPinningWarning(message), stacklevel=3)
    except RecenvPinningWarning:
        raise pytest.UsageError(
            f"{message} (RecenvPinningWarning is turned into an error by this run's warning "
            "filters; to let it pass, add 'default::pytest_recenv.RecenvPinningWarning')"
        ) from None


def configure_node(config: pytest.Config, node: Any) -> None:
    """On the xdist controller: give a starting worker the report, the mode and its GPU."""
    state = config.stash[STATE_KEY]
    if state.tier1_dir is None:
        state.tier1_dir = tempfile.mkdtemp(prefix="recenv-tier1-")
    node.workerinput["recenv_report"] = state.report.to_json()
    node.workerinput["recenv_mode"] = state.mode
    node.workerinput["recenv_tier1_dir"] = state.tier1_dir
    tokens = visible_tokens(state.report)
    if not tokens:
        return
    worker = str(node.gateway.id)
    index = int(worker[2:]) if worker[2:].isdigit() else len(state.pins)
    slots = config.getoption("recenv_slots_per_gpu")
    first = (index // slots) % len(tokens)
    if index == slots * len(tokens):
        _warn(
            config,
            f"xdist worker {worker} is beyond {len(tokens)} GPU(s) x "
            f"--recenv-slots-per-gpu={slots}: GPUs get more workers than that; lower -n "
            "or raise --recenv-slots-per-gpu",
        )
    # The worker's own GPU first, the rest after it: cuda:0 is its device, and a multi_gpu test
    # (grouped, so one at a time) can still reach the others.
    pin = ",".join(tokens[first:] + tokens[:first])
    node.workerinput["recenv_pin"] = pin
    state.pins[worker] = pin


def unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE_KEY, None)
    if state and state.tier1_dir and not hasattr(config, "workerinput"):
        shutil.rmtree(state.tier1_dir, ignore_errors=True)


# -- collection -----------------------------------------------------------------------------------


def _is_wide(item: pytest.Item) -> bool:
    """Does a test need several GPUs: multi_gpu(n), or cuda/faiss_gpu with min_devices > 1?"""
    reqs = item.stash.get(REQS_KEY, None)
    if reqs is None:  # at collection, before evaluate_items; bad arguments are reported there
        try:
            reqs = requirements(item, _marker_names(item.config))
        except MarkerError:
            return False
    return any(r.is_gpu and r.min_devices > 1 for r in reqs)


def _marker_names(config: pytest.Config) -> tuple[str, ...]:
    state = config.stash.get(STATE_KEY, None)
    return ALL_MARKERS if state is None else state.marker_names


def imply_markers(item: pytest.Item) -> None:
    """Markers implied at collection, before ``-m`` selection sees the item.

    A hardware fixture implies its marker; under xdist, a test needing several GPUs joins one
    ``xdist_group`` (for ``--dist loadgroup``).
    """
    names = getattr(item, "fixturenames", ())
    ours = _marker_names(item.config)
    for fixture, marker in FIXTURE_MARKERS.items():
        if fixture in names and marker in ours and item.get_closest_marker(marker) is None:
            item.add_marker(marker)
    on_worker = hasattr(item.config, "workerinput")
    if on_worker and item.get_closest_marker("xdist_group") is None and _is_wide(item):
        item.add_marker(pytest.mark.xdist_group(MULTI_GPU_GROUP))


def multi_gpu_lock(item: pytest.Item) -> contextlib.AbstractContextManager[object]:
    """Under xdist, a test needing several GPUs holds a run-wide lock while it runs.

    Workers see every GPU (their own first), so two multi-GPU tests on two workers would share
    devices. The lock serialises them whatever the scheduler does: pytest-xdist 3.8 under pytest 9
    ignores ``xdist_group`` (it rewrites ``item._nodeid``, which pytest 9 no longer reads).
    """
    state = item.config.stash.get(STATE_KEY, None)
    if state is None or state.tier1_dir is None or not _is_wide(item):
        return contextlib.nullcontext()
    from filelock import FileLock

    return FileLock(str(Path(state.tier1_dir) / "multi-gpu.lock"))


def _is_hardware(item: pytest.Item) -> bool:
    """Does a selected test need a GPU (a cuda, multi_gpu or faiss_gpu requirement)?"""
    return any(r.is_gpu for r in item.stash[REQS_KEY])


def evaluate_items(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash[STATE_KEY]
    errors = []
    for item in items:
        try:
            item.stash[REQS_KEY] = requirements(item, state.marker_names)
        except MarkerError as exc:
            path, line, _ = item.location
            errors.append(f"{path}:{(line or 0) + 1}: {item.nodeid}: {exc}")
    if errors:
        message = "bad hardware marker arguments:\n  " + "\n  ".join(errors)
        if hasattr(config, "workerinput"):  # the controller raises it again (see node_down)
            config.workeroutput["recenv_usage_error"] = message
        raise pytest.UsageError(message)
    if config.getoption("recenv_only_hardware"):
        dropped = [i for i in items if not _is_hardware(i)]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = [i for i in items if _is_hardware(i)]
        state.only_hardware_deselected = len(dropped)
    state.hardware_ids = {i.nodeid for i in items if _is_hardware(i)}
    state.has_markers = any(i.stash[REQS_KEY] for i in items)
    state.has_wide = any(_is_wide(i) for i in items if i.stash[REQS_KEY])
    state.tally.selected = len(state.hardware_ids)

    pending: list[pytest.Item] = []
    needed: set[str] = set()
    for item in items:
        reqs = item.stash[REQS_KEY]
        if state.mode == "skip" and _is_hardware(item):
            _skip(
                state,
                item,
                Skip(
                    f"hardware test skipped by --recenv-gpu=skip ({devices_text(state.report)})",
                    next(r.marker for r in reqs if r.is_gpu),
                ),
            )
            continue
        skip = evaluate_requirements(reqs, state.report)
        if skip is not None:
            _skip(state, item, skip)
            continue
        need = tier1_needed(reqs, state.report)
        if "torch_device" in getattr(item, "fixturenames", ()) and state.report.devices:
            need |= {"torch"} if state.report.torch is None else set()
        if need:
            pending.append(item)
            needed |= need
    if needed:
        try:
            _run_tier1(state, needed)
        except ValueError as exc:  # a bad RECENV_PROBE_TIMEOUT
            raise pytest.UsageError(str(exc)) from None
    for item in pending:
        skip = evaluate_requirements(item.stash[REQS_KEY], state.report)
        if skip is not None:
            _skip(state, item, skip)


def _skip(state: State, item: pytest.Item, skip: Skip) -> None:
    item.stash[SKIP_KEY] = skip
    item.add_marker(pytest.mark.skip(reason=skip.reason))
    state.collect_skips.append((item.nodeid, skip.reason))


def _run_tier1(state: State, needed: set[str]) -> None:
    """Probe torch/faiss once per run: directly, or under xdist once for all workers via a lock."""
    if state.tier1_dir is None:
        state.report = probe_tier1(state.report, needed)
        state.parent_report = state.report
        return
    from filelock import FileLock

    folder = Path(state.tier1_dir)
    with FileLock(str(folder / "tier1.lock")):
        missing = {lib for lib in needed if not (folder / f"{lib}.json").exists()}
        if missing:
            probed = probe_tier1(state.parent_report, missing)
            for lib in missing:
                value = dataclasses.asdict(getattr(probed, lib))
                (folder / f"{lib}.json").write_text(json.dumps(value))
        # Read back even what this worker probed: every worker gets the same JSON round trip.
        updates = read_tier1_dir(folder, tuple(needed))
    state.report = dataclasses.replace(state.report, **updates)
    state.parent_report = dataclasses.replace(state.parent_report, **updates)


# -- running --------------------------------------------------------------------------------------


def _reason_of(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


def after_report(item: pytest.Item, report: pytest.TestReport) -> pytest.TestReport:
    state = item.config.stash.get(STATE_KEY, None)
    if state is None or not item.stash.get(REQS_KEY, ()):
        return report
    if state.mode == "require" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = (
            f"--recenv-gpu=require: a hardware test may not skip; it would have skipped because: "
            f"{_reason_of(report)}"
        )
    if item.nodeid not in state.hardware_ids:
        return report
    tally = state.tally
    if report.when == "call":
        tally.ran += 1
        tally.passed += report.passed
    if report.failed and (item.nodeid, "failed") not in state.counted:
        state.counted.add((item.nodeid, "failed"))
        tally.failed += 1
    if report.skipped:
        reason = _reason_of(report)
        if hasattr(report, "wasxfail"):
            reason = f"xfail: {report.wasxfail or 'expected failure'}"
        tally.skipped[reason] = tally.skipped.get(reason, 0) + 1
    return report


def node_down(
    config: pytest.Config, workeroutput: dict[str, Any], worker: str, error: object
) -> None:
    """On the controller: merge a finished worker's tally (every worker collects every test).

    A worker that died of a usage error (a pinning warning the filters make an error, say)
    stops the run with that message: xdist would otherwise print the worker's traceback and
    start a replacement, which fails the same way or trips a different, misleading check.
    A usage error found at a worker's collection (bad marker arguments) is raised here as it is
    serially: the worker's own stderr is lost, and xdist would end on an INTERNALERROR.
    """
    if workeroutput.get("recenv_usage_error"):
        raise pytest.UsageError(workeroutput["recenv_usage_error"])
    usage = _usage_error_of(error)
    if usage is not None:
        pytest.exit(f"xdist worker {worker} could not start: {usage}", pytest.ExitCode.USAGE_ERROR)
    state = config.stash[STATE_KEY]
    if workeroutput.get("recenv_tally"):
        state.tally.merge(workeroutput["recenv_tally"])
    if workeroutput.get("recenv_deselected") is not None:
        state.only_hardware_deselected = workeroutput["recenv_deselected"]


def _usage_error_of(error: object) -> str | None:
    """The message of a ``pytest.UsageError`` that ended a worker, from xdist's crash report
    (execnet's ``RemoteError``, whose text is the worker's traceback)."""
    if error is None:
        return None
    for line in reversed(str(error).strip().splitlines()):
        for prefix in ("pytest.UsageError: ", "_pytest.config.exceptions.UsageError: "):
            if line.startswith(prefix):
                return line[len(prefix) :]
    return None


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
