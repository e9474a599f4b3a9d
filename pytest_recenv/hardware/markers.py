"""The hardware markers, written once: each one's signature, help text and argument parser in one
table (:data:`MARKERS`), from which ``pytest --markers``, usage errors and parsing all come.

A marker on a test becomes a :class:`Need` (what the test needs of the machine); whether the
machine has it is decided in :mod:`pytest_recenv.hardware.skipping`.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

import pytest


class MarkerError(ValueError):
    """A hardware marker with arguments that cannot mean anything."""


@dataclass(frozen=True)
class Need:
    """What one marker asks of the machine."""

    marker: str  # the marker as written: cuda, multi_gpu, faiss, faiss_gpu
    min_devices: int = 0
    min_memory: int | None = None  # bytes
    min_capability: tuple[int, int] | None = None

    @property
    def is_gpu(self) -> bool:
        """A "hardware test": counted in the tally, selected by --recenv-only-hardware, required
        by --recenv-gpu=require."""
        return MARKERS[self.marker].gpu

    @property
    def library(self) -> str:
        """Which tier-1 probe decides the rest of this need."""
        return "faiss" if self.marker.startswith("faiss") else "torch"


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
) -> Need:
    return Need(
        "cuda",
        _count("min_devices", min_devices, 1),
        None if min_memory is None else parse_size(min_memory),
        None if min_capability is None else parse_capability(min_capability),
    )


def _multi_gpu(n: object) -> Need:
    return Need("multi_gpu", _count("n", n, 2))


def _faiss() -> Need:
    return Need("faiss")


def _faiss_gpu(min_devices: object = 1) -> Need:
    return Need("faiss_gpu", _count("min_devices", min_devices, 1))


@dataclass(frozen=True)
class Marker:
    """One hardware marker: ``pytest --markers`` shows ``signature: description``; a usage error
    says ``expected <signature><usage_note>``. The signature is the parser's own, so the
    arguments are written once, in the parser's ``def``."""

    name: str
    description: str
    parse: Callable[..., Need]
    gpu: bool
    usage_note: str = ""

    @property
    def signature(self) -> str:
        params = inspect.signature(self.parse).parameters.values()
        args = ", ".join(
            p.name if p.default is p.empty else f"{p.name}={p.default!r}" for p in params
        )
        return f"{self.name}({args})" if args else self.name

    @property
    def help_line(self) -> str:
        return f"{self.signature}: {self.description}"

    @property
    def usage(self) -> str:
        return f"{self.signature}{self.usage_note}"


MARKERS: dict[str, Marker] = {
    marker.name: marker
    for marker in (
        Marker(
            "cuda",
            "skip unless enough CUDA devices are usable (driver, torch CUDA build whose arch list "
            "covers the device, a kernel runs). "
            'Example: @pytest.mark.cuda(min_memory="16GiB", min_capability=(8, 0))',
            _cuda,
            gpu=True,
        ),
        Marker(
            "multi_gpu",
            "sugar for cuda(min_devices=n), n >= 2; grouped under xdist so two multi-GPU tests "
            "never run at once. Example: @pytest.mark.multi_gpu(2)",
            _multi_gpu,
            gpu=True,
            usage_note=" with n >= 2",
        ),
        Marker(
            "faiss",
            "skip unless faiss imports and a flat-index search works. Example: @pytest.mark.faiss",
            _faiss,
            gpu=False,
            usage_note=" without arguments",
        ),
        Marker(
            "faiss_gpu",
            "skip unless faiss is a CUDA build (not Metal, not faiss-cpu installed beside "
            "faiss-gpu) seeing enough GPUs. Example: @pytest.mark.faiss_gpu",
            _faiss_gpu,
            gpu=True,
        ),
    )
}
MARKER_NAMES = tuple(MARKERS)


def parse(mark: pytest.Mark) -> Need:
    """One marker -> one need; a :class:`MarkerError` names the marker, args and rule."""
    args = ", ".join([*map(repr, mark.args), *(f"{k}={v!r}" for k, v in mark.kwargs.items())])
    written = f"@pytest.mark.{mark.name}({args})"
    try:
        return MARKERS[mark.name].parse(*mark.args, **mark.kwargs)
    except TypeError as exc:
        problem = re.sub(r"^_\w+\(\) ", "", str(exc))
        raise MarkerError(f"{written}: expected {MARKERS[mark.name].usage}; {problem}") from None
    except MarkerError as exc:
        raise MarkerError(f"{written}: {exc}") from None


def needs_of(item: pytest.Item, names: Collection[str] = MARKER_NAMES) -> tuple[Need, ...]:
    """The needs of ``item``'s markers among ``names`` (the ones this run gives meaning: a marker
    the project registers itself is left out)."""
    return tuple(parse(m) for m in item.iter_markers() if m.name in MARKERS and m.name in names)
