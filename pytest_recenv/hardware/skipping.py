"""Why a hardware test is skipped: the pure :func:`evaluate` (needs + hardware report -> a frozen
:class:`Skip` or None) and the collection step that applies it, the way pytest's ``skipping.py``
keeps ``evaluate_skip_marks`` next to the hooks that consume it.

Nothing here touches the machine: evaluation reads a
:class:`~pytest_recenv.hardware.report.HardwareReport` (live or injected), so every reason can be
unit-tested from a recorded report. A report whose ``torch``/``faiss`` is ``None`` has not been
through tier 1 yet: checks needing it are not decided (:func:`tier1_needed` says which probe would
decide them) and evaluation returns only what tier 0 already proves.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_recenv.hardware.markers import MarkerError, Need, needs_of
from pytest_recenv.hardware.probe_child import probe_tier1
from pytest_recenv.hardware.report import (
    Device,
    HardwareReport,
    arch_supported,
    format_size,
    read_tier1_dir,
)
from pytest_recenv.hardware.state import FIXTURE_MARKERS, NEEDS_KEY, STATE_KEY, State, marker_names
from pytest_recenv.hardware.text import devices_text
from pytest_recenv.hardware.xdist import MULTI_GPU_GROUP, is_wide


@dataclass(frozen=True)
class Skip:
    """The decision for one test: it cannot run here, and why (the skip reason as printed)."""

    reason: str


def evaluate(needs: Iterable[Need], report: HardwareReport) -> Skip | None:
    """Why a test with ``needs`` cannot run on the machine ``report`` describes, or None if it
    can (as far as ``report`` knows: see :func:`tier1_needed`)."""
    for need in needs:
        reason = (
            _faiss_reason(need, report) if need.library == "faiss" else _cuda_reason(need, report)
        )
        if reason:
            return Skip(reason)
    return None


def tier1_needed(needs: Iterable[Need], report: HardwareReport) -> set[str]:
    """Libraries a child probe must report on before ``needs`` are decided (empty when decided)."""
    needs = tuple(needs)
    if evaluate(needs, report) is not None:
        return set()  # tier 0 already proves it cannot run: no child process for this test
    return {n.library for n in needs if getattr(report, n.library) is None}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _found(report: HardwareReport, devices: tuple[Device, ...], memory: bool) -> str:
    if not devices:
        return report.why_no_devices
    text = "; ".join(d.describe(memory) for d in devices)
    return f"{text}; {report.visible_note}" if report.visible_note else text


def _cuda_reason(req: Need, report: HardwareReport) -> str | None:
    def fits(d: Device) -> bool:
        return (req.min_memory is None or d.memory >= req.min_memory) and (
            req.min_capability is None or d.capability >= req.min_capability
        )

    n = req.min_devices
    fitting = [d for d in report.devices if fits(d)]
    if len(fitting) < n:
        limits = []
        if req.min_memory is not None:
            limits.append(f">= {format_size(req.min_memory)}")
        if req.min_capability is not None:
            limits.append(f">= sm_{req.min_capability[0]}{req.min_capability[1]}")
        with_ = f" with {' and '.join(limits)}" if limits else ""
        found = _found(report, report.devices, req.min_memory is not None)
        return f"needs {_plural(n, 'CUDA device')}{with_}, found {len(fitting)} ({found})"
    torch = report.torch
    if torch is None or (torch.version is None and not torch.error):
        # Not probed yet, or torch is not installed: the driver's answer is all there is to check
        # (a suite without torch may drive CUDA through cupy or numba).
        return None
    if torch.version is None:
        return f"needs torch importable to use CUDA; found it failing: {torch.error}"
    if torch.error:
        return (
            f"needs a working torch to use CUDA; found torch {torch.version} failing: {torch.error}"
        )
    if not torch.cuda:
        build = "ROCm build" if torch.hip else "CPU build"
        return f"needs torch built with CUDA; found torch {torch.version} ({build})"
    unsupported = [d for d in fitting if not arch_supported(torch.arch_list, d.capability)]
    if len(fitting) - len(unsupported) < n:
        d = unsupported[0]
        archs = " ".join(torch.arch_list) or "empty"
        return (
            f"needs torch built for {d.sm}; found torch {torch.version} with arch list "
            f"{archs} ({d.describe()})"
        )
    errors = dict(torch.kernel_errors)
    broken = [d for d in fitting if d.uuid in errors]
    if len(fitting) - len(unsupported) - len(broken) < n:
        d = broken[0]
        return (
            f"needs a CUDA kernel to run; found it failing on cuda:{d.ordinal} "
            f"({d.describe()}): {errors[d.uuid]}"
        )
    return None


_BUILDS = {"cpu": "CPU", "cuda": "CUDA", "cuvs": "cuVS", "rocm": "ROCm", "metal": "Metal"}


def _faiss_reason(req: Need, report: HardwareReport) -> str | None:
    n = req.min_devices
    gpu = req.marker == "faiss_gpu"
    if gpu and len(report.devices) < n:
        found = _found(report, report.devices, memory=False)
        have = len(report.devices)
        return f"needs {_plural(n, 'CUDA device')} for faiss GPU, found {have} ({found})"
    faiss = report.faiss
    if faiss is None:
        return None
    if faiss.version is None:
        if faiss.error:
            dists = ", ".join(faiss.distributions) or "faiss"
            return f"needs faiss importable; found {dists} failing: {faiss.error}"
        return "needs faiss importable; found no faiss module (install faiss-cpu or faiss-gpu-cu12)"
    name = f"faiss {faiss.version} ({_BUILDS.get(faiss.build or '', 'unknown')} build)"
    if faiss.error:
        return f"needs a working faiss; found {name} failing: {faiss.error}"
    if not faiss.works:
        return f"needs a working faiss; found {name} whose flat search returned a wrong neighbour"
    if not gpu:
        return None
    if faiss.cpu_and_gpu_both_installed:
        gpu_dists = [d for d in faiss.distributions if d.startswith("faiss-gpu")]
        return (
            f"needs faiss-gpu installed alone; found faiss-cpu and {', '.join(gpu_dists)} both "
            f"installed, importing {name} that sees {_plural(faiss.num_gpus, 'GPU')}; "
            "uninstall faiss-cpu"
        )
    if faiss.build not in ("cuda", "cuvs"):
        return f"needs faiss built with GPU support; found {name}"
    if faiss.num_gpus < n:
        return f"needs faiss seeing {_plural(n, 'GPU')}; found {name} seeing {faiss.num_gpus}"
    if faiss.gpu_error:
        return f"needs a working faiss GPU search; found {name} failing on GPU 0: {faiss.gpu_error}"
    return None


# -- applying it: collection and reports -----------------------------------------------------


def imply_markers(item: pytest.Item) -> None:
    """Markers implied at collection, before ``-m`` selection sees the item.

    A hardware fixture implies its marker; under xdist, a test needing several GPUs joins one
    ``xdist_group`` (for ``--dist loadgroup``).
    """
    names = getattr(item, "fixturenames", ())
    ours = marker_names(item.config)
    for fixture, marker in FIXTURE_MARKERS.items():
        if fixture in names and marker in ours and item.get_closest_marker(marker) is None:
            item.add_marker(marker)
    on_worker = hasattr(item.config, "workerinput")
    if on_worker and item.get_closest_marker("xdist_group") is None and is_wide(item):
        item.add_marker(pytest.mark.xdist_group(MULTI_GPU_GROUP))


def _is_hardware(item: pytest.Item) -> bool:
    """Does a selected test need a GPU (a cuda, multi_gpu or faiss_gpu marker)?"""
    return any(need.is_gpu for need in item.stash[NEEDS_KEY])


def evaluate_items(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash[STATE_KEY]
    errors = []
    for item in items:
        try:
            item.stash[NEEDS_KEY] = needs_of(item, state.marker_names)
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
    state.has_markers = any(i.stash[NEEDS_KEY] for i in items)
    state.has_wide = any(is_wide(i) for i in items if i.stash[NEEDS_KEY])
    state.tally.selected = len(state.hardware_ids)

    pending: list[pytest.Item] = []
    needed: set[str] = set()
    for item in items:
        needs = item.stash[NEEDS_KEY]
        if state.mode == "skip" and _is_hardware(item):
            _skip(
                state,
                item,
                Skip(f"hardware test skipped by --recenv-gpu=skip ({devices_text(state.report)})"),
            )
            continue
        skip = evaluate(needs, state.report)
        if skip is not None:
            _skip(state, item, skip)
            continue
        libraries = tier1_needed(needs, state.report)
        if "torch_device" in getattr(item, "fixturenames", ()) and state.report.devices:
            libraries |= {"torch"} if state.report.torch is None else set()
        if libraries:
            pending.append(item)
            needed |= libraries
    if needed:
        try:
            _run_tier1(state, needed)
        except ValueError as exc:  # a bad RECENV_PROBE_TIMEOUT
            raise pytest.UsageError(str(exc)) from None
    for item in pending:
        skip = evaluate(item.stash[NEEDS_KEY], state.report)
        if skip is not None:
            _skip(state, item, skip)


def _skip(state: State, item: pytest.Item, skip: Skip) -> None:
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


def _reason_of(test_report: pytest.TestReport) -> str:
    longrepr = test_report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


def after_test_report(item: pytest.Item, test_report: pytest.TestReport) -> pytest.TestReport:
    if not item.stash.get(NEEDS_KEY, ()):  # an unmarked test: first, it is the cheap check
        return test_report
    state = item.config.stash.get(STATE_KEY, None)
    if state is None:
        return test_report
    if state.mode == "require" and test_report.skipped and not hasattr(test_report, "wasxfail"):
        test_report.outcome = "failed"
        test_report.longrepr = (
            f"--recenv-gpu=require: a hardware test may not skip; it would have skipped because: "
            f"{_reason_of(test_report)}"
        )
    if item.nodeid not in state.hardware_ids:
        return test_report
    tally = state.tally
    if test_report.when == "call":
        tally.ran += 1
        tally.passed += test_report.passed
    if test_report.failed and (item.nodeid, "failed") not in state.counted:
        state.counted.add((item.nodeid, "failed"))
        tally.failed += 1
    if test_report.skipped:
        reason = _reason_of(test_report)
        if hasattr(test_report, "wasxfail"):
            reason = f"xfail: {test_report.wasxfail or 'expected failure'}"
        tally.skipped[reason] = tally.skipped.get(reason, 0) + 1
    return test_report
