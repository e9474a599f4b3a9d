"""The requirements table behind the hardware markers, and the pure ``evaluate(item, report)``.

Nothing here touches the machine: evaluation reads a :class:`~pytest_recenv.hardware.report.HardwareReport`
(live or injected), so every reason can be unit-tested from a recorded report. A report whose
``torch``/``faiss`` is ``None`` has not been through tier 1 yet: checks needing it are not decided
(:func:`tier1_needed` says which probe would decide them) and evaluation returns only what tier 0
already proves.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

import pytest

from pytest_recenv.hardware.report import (
    Device,
    HardwareReport,
    arch_supported,
    format_size,
)

GPU_MARKERS = ("cuda", "multi_gpu", "faiss_gpu")  # "hardware tests": counted, selected, required
ALL_MARKERS = (*GPU_MARKERS, "faiss")


class MarkerError(ValueError):
    """A hardware marker with arguments that cannot mean anything."""


@dataclass(frozen=True)
class Requirement:
    marker: str  # the marker as written: cuda, multi_gpu, faiss, faiss_gpu
    min_devices: int = 0
    min_memory: int | None = None  # bytes
    min_capability: tuple[int, int] | None = None

    @property
    def is_gpu(self) -> bool:
        return self.marker in GPU_MARKERS

    @property
    def library(self) -> str:
        """Which tier-1 probe decides the rest of this requirement."""
        return "faiss" if self.marker.startswith("faiss") else "torch"


@dataclass(frozen=True)
class Skip:
    reason: str
    marker: str


# -- parsing --------------------------------------------------------------------------------------

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)\s*$", re.IGNORECASE)
_UNITS = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}


def parse_size(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    m = _SIZE.match(value) if isinstance(value, str) else None
    if m is None:
        raise MarkerError(
            f"expected min_memory as a positive number of bytes or a size like '16GiB' or "
            f"'512MiB', got {value!r}"
        )
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def parse_capability(value: object) -> tuple[int, int]:
    if isinstance(value, str) and re.fullmatch(r"\d+\.\d", value.strip()):
        major, minor = value.strip().split(".")
        return int(major), int(minor)
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    ):
        return int(value[0]), int(value[1])
    raise MarkerError(f"expected min_capability like (8, 0) or '8.0', got {value!r}")


def _count(name: str, value: object, least: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= least:
        return value
    raise MarkerError(f"expected {name} as an integer >= {least}, got {value!r}")


def _cuda(
    min_devices: object = 1, min_memory: object = None, min_capability: object = None
) -> Requirement:
    return Requirement(
        "cuda",
        _count("min_devices", min_devices, 1),
        None if min_memory is None else parse_size(min_memory),
        None if min_capability is None else parse_capability(min_capability),
    )


def _multi_gpu(n: object) -> Requirement:
    return Requirement("multi_gpu", _count("n", n, 2))


def _faiss() -> Requirement:
    return Requirement("faiss")


def _faiss_gpu(min_devices: object = 1) -> Requirement:
    return Requirement("faiss_gpu", _count("min_devices", min_devices, 1))


_PARSERS = {"cuda": _cuda, "multi_gpu": _multi_gpu, "faiss": _faiss, "faiss_gpu": _faiss_gpu}


def parse(mark: pytest.Mark) -> Requirement:
    """One marker -> one requirement; a :class:`MarkerError` names the marker, args and rule."""
    args = ", ".join([*map(repr, mark.args), *(f"{k}={v!r}" for k, v in mark.kwargs.items())])
    written = f"@pytest.mark.{mark.name}({args})"
    try:
        return _PARSERS[mark.name](*mark.args, **mark.kwargs)
    except TypeError as exc:
        problem = re.sub(r"^_\w+\(\) ", "", str(exc))
        raise MarkerError(f"{written}: expected {MARKER_USAGE[mark.name]}; {problem}") from None
    except MarkerError as exc:
        raise MarkerError(f"{written}: {exc}") from None


MARKER_USAGE = {
    "cuda": "cuda(min_devices=1, min_memory=None, min_capability=None)",
    "multi_gpu": "multi_gpu(n) with n >= 2",
    "faiss": "faiss without arguments",
    "faiss_gpu": "faiss_gpu(min_devices=1)",
}


def requirements(
    item: pytest.Item, names: Collection[str] = ALL_MARKERS
) -> tuple[Requirement, ...]:
    """The requirements of ``item``'s markers among ``names`` (the ones this run gives meaning:
    a marker the project registers itself is left out)."""
    return tuple(parse(m) for m in item.iter_markers() if m.name in _PARSERS and m.name in names)


# -- evaluation -----------------------------------------------------------------------------------


def evaluate(item: pytest.Item, report: HardwareReport) -> Skip | None:
    """Why ``item`` cannot run on the machine ``report`` describes, or None if it can."""
    return evaluate_requirements(requirements(item), report)


def evaluate_requirements(reqs: Iterable[Requirement], report: HardwareReport) -> Skip | None:
    for req in reqs:
        reason = _faiss_reason(req, report) if req.library == "faiss" else _cuda_reason(req, report)
        if reason:
            return Skip(reason, req.marker)
    return None


def tier1_needed(reqs: Iterable[Requirement], report: HardwareReport) -> set[str]:
    """Libraries a child probe must report on before ``reqs`` are decided (empty when decided)."""
    if evaluate_requirements(reqs, report) is not None:
        return set()  # tier 0 already proves it cannot run: no child process for this test
    return {r.library for r in reqs if getattr(report, r.library) is None}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _found(report: HardwareReport, devices: tuple[Device, ...], memory: bool) -> str:
    if not devices:
        return report.why_no_devices
    text = "; ".join(d.describe(memory) for d in devices)
    return f"{text}; {report.visible_note}" if report.visible_note else text


def _cuda_reason(req: Requirement, report: HardwareReport) -> str | None:
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


def _faiss_reason(req: Requirement, report: HardwareReport) -> str | None:
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
