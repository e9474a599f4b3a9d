"""Hardware probes -> one frozen :class:`HardwareReport`.

Tier 0 reads the NVIDIA driver through NVML (``nvidia-ml-py``) and applies ``CUDA_VISIBLE_DEVICES``
the way the CUDA runtime does. Tier 1 (``torch`` and ``faiss``) runs in a spawned child process, see
:mod:`pytest_recenv.hardware.probe_child`; nothing here imports torch or faiss, so probing can never
initialise CUDA in the pytest process (forks stay safe, CPU runs stay fast).

A report round-trips through JSON: that is how xdist workers receive the controller's report and
how a recorded report is injected with ``--recenv-probe-file``. A recorded file holds the *physical*
view (what NVML lists); ``CUDA_VISIBLE_DEVICES`` is applied again on load, so an injected report
exercises the same visibility rules as a live probe.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GIB = 1024**3


def format_size(n: int) -> str:
    return f"{n / GIB:.1f}".removesuffix(".0") + " GiB"


@dataclass(frozen=True)
class Gpu:
    """A physical GPU, or a MIG instance of one, as NVML lists it."""

    uuid: str
    name: str
    memory: int
    capability: tuple[int, int]
    mig_enabled: bool = False
    migs: tuple[Gpu, ...] = ()


@dataclass(frozen=True)
class Device:
    """One CUDA device as a process with the current ``CUDA_VISIBLE_DEVICES`` sees it."""

    ordinal: int  # what torch calls cuda:<ordinal>
    token: str  # the CUDA_VISIBLE_DEVICES entry selecting it (ordinal string or UUID)
    uuid: str
    name: str
    memory: int
    capability: tuple[int, int]
    is_mig: bool = False

    @property
    def sm(self) -> str:
        return f"sm_{self.capability[0]}{self.capability[1]}"

    def describe(self, memory: bool = False) -> str:
        return f"{self.name}, {self.sm}" + (f", {format_size(self.memory)}" if memory else "")


@dataclass(frozen=True)
class TorchInfo:
    """What a child process importing torch found. ``version`` is None when torch is missing."""

    version: str | None = None
    cuda: str | None = None  # torch.version.cuda; None for CPU (or ROCm) builds
    hip: str | None = None
    arch_list: tuple[str, ...] = ()
    device_count: int = 0
    kernel_errors: tuple[tuple[str, str], ...] = ()  # (device uuid, error of the 1-element kernel)
    error: str | None = None  # import or probe failure

    @property
    def build(self) -> str:
        if self.version is None:
            return "missing"
        return f"cuda{self.cuda}" if self.cuda else ("rocm" if self.hip else "cpu")


@dataclass(frozen=True)
class FaissInfo:
    """What a child process importing faiss found. ``version`` is None when faiss is missing."""

    version: str | None = None
    build: str | None = None  # "cpu" | "cuda" | "cuvs" | "rocm" | "metal"
    num_gpus: int = 0
    distributions: tuple[str, ...] = ()  # installed faiss distributions (faiss-cpu, faiss-gpu-cu12)
    works: bool = False  # a 2-vector flat index found the right neighbour on the CPU
    gpu_error: str | None = None  # failure of the same search on GPU 0, for GPU builds
    error: str | None = None

    @property
    def cpu_and_gpu_both_installed(self) -> bool:
        cpu = any(d == "faiss-cpu" for d in self.distributions)
        return cpu and any(d.startswith("faiss-gpu") for d in self.distributions)


@dataclass(frozen=True)
class HardwareReport:
    source: str = "live"  # "live" | "injected"
    driver: str | None = None
    driver_error: str | None = None  # why NVML could not answer, e.g. "no NVIDIA driver (...)"
    gpus: tuple[Gpu, ...] = ()
    visible_env: str | None = None  # CUDA_VISIBLE_DEVICES as applied; None = unset
    visible_note: str | None = None  # why the visible list is shorter than the tokens asked for
    devices: tuple[Device, ...] = ()
    torch: TorchInfo | None = None  # None = tier 1 not probed (yet)
    faiss: FaissInfo | None = None
    worker: str | None = field(default=None)  # xdist worker id once pinned

    @property
    def why_no_devices(self) -> str:
        if self.driver_error:
            return self.driver_error
        if self.visible_note:
            return self.visible_note
        return "the driver lists no GPU"

    def with_visibility(self, visible_env: str | None) -> HardwareReport:
        devices, note = apply_visible_devices(self.gpus, visible_env)
        return dataclasses.replace(
            self, visible_env=visible_env, devices=devices, visible_note=note
        )

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> HardwareReport:
        return report_from_dict(json.loads(text))


def _gpu_from_dict(d: Mapping[str, Any]) -> Gpu:
    return Gpu(
        uuid=str(d["uuid"]),
        name=str(d["name"]),
        memory=int(d["memory"]),
        capability=(int(d["capability"][0]), int(d["capability"][1])),
        mig_enabled=bool(d.get("mig_enabled", False)),
        migs=tuple(_gpu_from_dict(m) for m in d.get("migs", ())),
    )


def _pairs(value: Any) -> tuple[tuple[str, str], ...]:
    items = value.items() if isinstance(value, Mapping) else value
    return tuple((str(k), str(v)) for k, v in items)


def tier1_from_dict(lib: str, value: Mapping[str, Any]) -> TorchInfo | FaissInfo:
    """``TorchInfo`` or ``FaissInfo`` from its JSON form (``lib`` is ``"torch"`` or ``"faiss"``)."""
    if lib == "torch":
        return TorchInfo(
            **{
                **value,
                "arch_list": tuple(value.get("arch_list", ())),
                "kernel_errors": _pairs(value.get("kernel_errors", ())),
            }
        )
    return FaissInfo(**{**value, "distributions": tuple(value.get("distributions", ()))})


def read_tier1_dir(
    folder: str | os.PathLike[str], libs: tuple[str, ...] = ("torch", "faiss")
) -> dict[str, TorchInfo | FaissInfo]:
    """The tier-1 results an xdist run keeps in ``folder`` (one ``<lib>.json`` per library probed
    so far), by library; a library not probed yet is absent."""
    files = {lib: Path(folder) / f"{lib}.json" for lib in libs}
    return {
        lib: tier1_from_dict(lib, json.loads(f.read_text()))
        for lib, f in files.items()
        if f.exists()
    }


def report_from_dict(d: Mapping[str, Any]) -> HardwareReport:
    torch = d.get("torch")
    faiss = d.get("faiss")
    return HardwareReport(
        source=str(d.get("source", "live")),
        driver=d.get("driver"),
        driver_error=d.get("driver_error"),
        gpus=tuple(_gpu_from_dict(g) for g in d.get("gpus", ())),
        visible_env=d.get("visible_env"),
        visible_note=d.get("visible_note"),
        devices=tuple(
            Device(**{**dev, "capability": tuple(dev["capability"])})
            for dev in d.get("devices", ())
        ),
        torch=None if torch is None else tier1_from_dict("torch", torch),  # type: ignore[arg-type]
        faiss=None if faiss is None else tier1_from_dict("faiss", faiss),  # type: ignore[arg-type]
        worker=d.get("worker"),
    )


def load_probe_file(path: str | os.PathLike[str], visible_env: str | None) -> HardwareReport:
    """Read a recorded report; ``CUDA_VISIBLE_DEVICES`` is applied as on a live machine.

    A recorded report is a complete stand-in for the machine: ``torch`` and ``faiss`` must be
    present (``null`` = not installed), so no live child probe ever mixes with injected data.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"--recenv-probe-file {p}: cannot read it ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{p}:{exc.lineno}: expected a JSON hardware report, got invalid JSON ({exc.msg}); "
            "write one with HardwareReport.to_json() or start from tests/data/reports/cpu_only.json"
        ) from exc
    missing = [k for k in ("gpus", "torch", "faiss") if k not in data]
    if missing:
        raise ValueError(
            f"{p}: expected keys 'gpus', 'torch' and 'faiss' in a recorded report, "
            f"missing {missing}; use null for a library that is not installed"
        )
    try:
        report = report_from_dict(data)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"{p}: malformed hardware report ({exc!r})") from exc
    torch = report.torch if data["torch"] is not None else TorchInfo()
    faiss = report.faiss if data["faiss"] is not None else FaissInfo()
    report = dataclasses.replace(report, source="injected", torch=torch, faiss=faiss)
    return report.with_visibility(visible_env)


# -- CUDA_VISIBLE_DEVICES -------------------------------------------------------------------------


def apply_visible_devices(
    gpus: tuple[Gpu, ...], visible_env: str | None
) -> tuple[tuple[Device, ...], str | None]:
    """The devices a CUDA process sees, as the runtime resolves ``CUDA_VISIBLE_DEVICES``.

    Unset: every GPU in NVML order (a MIG-enabled GPU shows as its first MIG instance). Entries are
    ordinals, ``GPU-`` UUIDs (a unique prefix is enough) or ``MIG-`` UUIDs; like the runtime, the
    list stops at the first entry that matches nothing or repeats. The empty string hides all.
    """

    def device(ordinal: int, token: str, g: Gpu, is_mig: bool) -> Device:
        return Device(ordinal, token, g.uuid, g.name, g.memory, g.capability, is_mig)

    if visible_env is None:
        out = tuple(device(i, str(i), *_cuda_view(g)) for i, g in enumerate(gpus))
        single = _single_mig(out)
        return single, (
            None if len(single) == len(out) else "CUDA enumerates one MIG instance per process"
        )
    if visible_env.strip() == "":
        return (), "CUDA_VISIBLE_DEVICES is empty"
    matched, note = _walk_visible(gpus, visible_env)
    devices = tuple(device(i, token, g, is_mig) for i, (token, g, is_mig) in enumerate(matched))
    if not devices and note is None:
        note = f"CUDA_VISIBLE_DEVICES={visible_env!r} selects no GPU"
    single = _single_mig(devices)
    if len(single) < len(devices):
        note = "CUDA enumerates one MIG instance per process"
    return single, note


def _walk_visible(
    gpus: tuple[Gpu, ...], visible_env: str
) -> tuple[list[tuple[str, Gpu, bool]], str | None]:
    """(token, GPU or MIG instance, is_mig) per leading entry that resolves, and why the walk
    stopped early: like the CUDA runtime, at the first entry that matches nothing or repeats."""
    migs = {m.uuid: m for g in gpus for m in g.migs}
    matched: list[tuple[str, Gpu, bool]] = []
    for token in (t.strip() for t in visible_env.split(",")):
        match = _resolve(token, gpus, migs)
        if match is None or any(g.uuid == match[0].uuid for _, g, _ in matched):
            why = "repeats an earlier entry" if match else "matches no GPU"
            return matched, (
                f"CUDA_VISIBLE_DEVICES={visible_env!r}: {token!r} {why}; later entries ignored"
            )
        matched.append((token, *match))
    return matched, None


def _cuda_view(g: Gpu) -> tuple[Gpu, bool]:
    """What CUDA opens for a physical GPU: its first MIG instance when MIG is enabled."""
    return (g.migs[0], True) if g.mig_enabled and g.migs else (g, False)


def _resolve(token: str, gpus: tuple[Gpu, ...], migs: dict[str, Gpu]) -> tuple[Gpu, bool] | None:
    if token.isdigit():
        i = int(token)
        return _cuda_view(gpus[i]) if i < len(gpus) else None
    if token.startswith("MIG-"):
        # Legacy form MIG-GPU-<uuid>/<gi>/<ci> is not resolvable without NVML ids; exact UUIDs only.
        return (migs[token], True) if token in migs else None
    if token.startswith("GPU-"):
        hits = [g for g in gpus if g.uuid.startswith(token)]
        return _cuda_view(hits[0]) if len(hits) == 1 else None
    return None


def _single_mig(devices: tuple[Device, ...]) -> tuple[Device, ...]:
    # The CUDA runtime enumerates one MIG instance per process, whatever the list says; keeping the
    # rest would promise devices torch cannot open. Pinning uses the unfiltered tokens instead.
    if sum(d.is_mig for d in devices) <= 1:
        return devices
    first = next(d for d in devices if d.is_mig)
    return tuple(d for d in devices if not d.is_mig or d is first)


def visible_tokens(report: HardwareReport) -> list[str]:
    """Every entry of the parent's visible list that resolves, MIG instances included."""
    if report.visible_env is None:
        return [str(i) for i in range(len(report.gpus))]
    return [token for token, _, _ in _walk_visible(report.gpus, report.visible_env)[0]]


# -- tier 1 verdicts (the probe itself: pytest_recenv.hardware.probe_child) ----------------------


def arch_supported(arch_list: tuple[str, ...], capability: tuple[int, int]) -> bool:
    """Can a torch build with this arch list run kernels on a device of this capability?

    ``sm_XY`` cubins run on the same major at an equal or higher minor; ``sm_XYa`` only on exactly
    XY; ``compute_XY`` PTX is JIT-compiled for any device of capability XY or newer.
    """
    major, minor = capability
    for arch in arch_list:
        kind, _, num = arch.partition("_")
        exact = num.endswith(("a", "f"))
        digits = num.rstrip("af")
        if not digits.isdigit() or len(digits) < 2:
            continue
        a_major, a_minor = int(digits[:-1]), int(digits[-1])
        if kind == "sm" and a_major == major and (a_minor == minor if exact else a_minor <= minor):
            return True
        if kind == "compute" and not exact and (a_major, a_minor) <= (major, minor):
            return True
    return False
