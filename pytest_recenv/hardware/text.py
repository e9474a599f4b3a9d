"""What pytest-recenv prints: the ``recenv:`` header lines and the terminal summary."""

from __future__ import annotations

import dataclasses
import os
import sys

import pytest

from pytest_recenv.env.names import canonical
from pytest_recenv.hardware.report import (
    FaissInfo,
    HardwareReport,
    TorchInfo,
    arch_supported,
    read_tier1_dir,
)
from pytest_recenv.hardware.state import STATE_KEY, State


def devices_text(report: HardwareReport) -> str:
    if not report.devices:
        return report.why_no_devices
    return "; ".join(f"{d.ordinal}: {d.describe(memory=True)}" for d in report.devices)


def _unavailable_text(lib: str, info: TorchInfo | FaissInfo | None) -> str:
    """``torch=not probed`` or ``faiss=missing (error)``: a library with no version to show."""
    if info is None:
        return f"{lib}=not probed"
    return f"{lib}=missing{f' ({info.error})' if info.error else ''}"


def _torch_text(report: HardwareReport) -> str:
    torch = report.torch
    if torch is None or torch.version is None:
        return _unavailable_text("torch", torch)
    if not torch.cuda:
        return f"torch={torch.version} ({'ROCm' if torch.hip else 'CPU'} build)"
    if not report.devices:
        return f"torch={torch.version} (CUDA {torch.cuda})"
    lacking = sorted(
        {d.sm for d in report.devices if not arch_supported(torch.arch_list, d.capability)}
    )
    verdict = (
        f"arch list lacks {', '.join(lacking)} (has {' '.join(torch.arch_list) or 'nothing'})"
        if lacking
        else f"arch list covers {', '.join(sorted({d.sm for d in report.devices}))}"
    )
    return f"torch={torch.version} (CUDA {torch.cuda}; {verdict})"


def _faiss_text(report: HardwareReport) -> str:
    faiss = report.faiss
    if faiss is None or faiss.version is None:
        return _unavailable_text("faiss", faiss)
    both = "; faiss-cpu AND faiss-gpu installed" if faiss.cpu_and_gpu_both_installed else ""
    return f"faiss={faiss.version} ({faiss.build} build, {faiss.num_gpus} GPUs{both})"


def torch_and_faiss_on_path() -> dict[str, str]:
    """Installed torch and faiss distributions, from ``*.dist-info`` names on ``sys.path``.

    One directory listing per path entry (~0.6 ms in all), where ``importlib.metadata.version``
    costs ~3 ms for the first name (it scans every distribution): every run pays for the header.
    """
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info") and name.startswith(("torch", "faiss")):
                dist, _, version = name[: -len(".dist-info")].partition("-")
                dist = canonical(dist)
                if dist == "torch" or dist.startswith("faiss"):
                    found.setdefault(dist, version)  # the first on sys.path is what imports
    return found


def header_lines(state: State) -> list[str]:
    report = state.report
    visible = report.visible_env
    cvd = "" if visible is None else f" CUDA_VISIBLE_DEVICES={visible!r}"
    first = (
        f"recenv: gpu={state.mode} probe={report.source} driver={report.driver or 'none'}"
        f" cuda={len(report.devices)} devices ({devices_text(report)}){cvd}"
    )
    if report.torch is not None or report.faiss is not None:
        second = f"recenv: {_torch_text(report)} {_faiss_text(report)}"
    else:
        found = torch_and_faiss_on_path()
        libs = " ".join(
            f"{k}={v}" for k, v in sorted(found.items(), key=lambda kv: kv[0] != "torch")
        )
        libs = libs or "neither torch nor faiss installed"
        second = f"recenv: {libs} (checked in a child process only if a selected test needs it)"
    return [first, second, *_project_markers_lines(state.project_markers)]


def _project_markers_lines(names: tuple[str, ...]) -> list[str]:
    """One line: the recenv markers the project registers itself, and how to hand them over."""
    if not names:
        return []
    listed = ", ".join(names)
    subject = f"marker {listed} is" if len(names) == 1 else f"markers {listed} are"
    pronoun = "it" if len(names) == 1 else "them"
    return [
        f"recenv: {subject} the project's own (ini markers): pytest-recenv leaves {pronoun} "
        f"alone; to hand {pronoun} over, set ini recenv_markers = {' '.join(names)}"
    ]


def summary_lines(config: pytest.Config) -> list[str]:
    state = config.stash.get(STATE_KEY, None)
    if state is None or hasattr(config, "workerinput"):
        return []
    lines = [
        f"recenv: worker {w} pinned to CUDA_VISIBLE_DEVICES={p}" for w, p in state.pins.items()
    ]
    if state.only_hardware_deselected is not None:
        lines.append(
            f"recenv: --recenv-only-hardware deselected "
            f"{state.only_hardware_deselected} non-hardware tests"
        )
    if config.option.collectonly:
        chars = str(getattr(config.option, "reportchars", ""))
        if any(c in chars for c in "saA"):
            lines += [f"recenv: SKIP {nodeid}: {reason}" for nodeid, reason in state.collect_skips]
    elif state.tally.selected or state.mode == "require":
        t = state.tally
        lines.append(
            f"recenv: hardware tests: {t.selected} selected, {t.ran} ran, {t.passed} passed, "
            f"{t.failed} failed, {sum(t.skipped.values())} skipped"
        )
        lines += [f"recenv:   {n} skipped: {reason}" for reason, n in sorted(t.skipped.items())]
    report = state.report
    if state.tier1_dir:  # under xdist the controller learns tier 1 from the workers' files
        report = dataclasses.replace(report, **read_tier1_dir(state.tier1_dir))
    if report.source == "live" and (report.torch is not None or report.faiss is not None):
        parts = [
            _torch_text(report) if report.torch else "",
            _faiss_text(report) if report.faiss else "",
        ]
        lines.append(f"recenv: tier-1 probe: {' '.join(p for p in parts if p)}")
    if state.require_failed:
        lines.append(
            "recenv: FAILED: --recenv-gpu=require and no hardware test ran; a GPU lane "
            "must run GPU tests (check the markers, -m/-k and the machine)"
        )
    return lines
