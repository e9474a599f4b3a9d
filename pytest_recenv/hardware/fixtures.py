"""Fixtures of the hardware side (``hardware``, ``torch_device``, ``faiss_gpu_resources``) and the
CPU/GPU twin parametrisation helper. Registered by :mod:`pytest_recenv.plugin`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from pytest_recenv.hardware.markers import ALL_MARKERS, Requirement, Skip, evaluate_requirements
from pytest_recenv.hardware.report import HardwareReport

# Requesting one of these fixtures adds its marker, so the test is skipped (or, in require mode,
# fails) with a reason instead of erroring inside the fixture.
FIXTURE_MARKERS = {"faiss_gpu_resources": "faiss_gpu"}
MODES = ("auto", "require", "skip")
DEFAULT_FAISS_TEMP_MEMORY = 256 * 2**20


@dataclass
class Tally:
    """Outcomes of hardware tests in one process; xdist workers send theirs to the controller."""

    selected: int = 0
    ran: int = 0
    passed: int = 0
    failed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def merge(self, other: dict[str, Any]) -> None:
        self.selected = max(self.selected, other["selected"])  # every worker collects everything
        self.ran += other["ran"]
        self.passed += other["passed"]
        self.failed += other["failed"]
        for reason, n in other["skipped"].items():
            self.skipped[reason] = self.skipped.get(reason, 0) + n


@dataclass
class State:
    mode: str
    report: HardwareReport
    parent_report: HardwareReport  # the controller's view (unpinned): what tier 1 probes
    tier1_dir: str | None = None  # xdist: where the one shared tier-1 result lives
    only_hardware_deselected: int | None = None
    pins: dict[str, str] = field(default_factory=dict)  # worker id -> CUDA_VISIBLE_DEVICES
    collect_skips: list[tuple[str, str]] = field(default_factory=list)
    hardware_ids: set[str] = field(default_factory=set)
    tally: Tally = field(default_factory=Tally)
    counted: set[tuple[str, str]] = field(default_factory=set)
    require_failed: bool = False
    has_markers: bool = False  # a selected test carries any recenv marker
    has_wide: bool = False  # a selected test needs several GPUs
    project_markers: tuple[str, ...] = ()  # names the project registers itself: left to it

    @property
    def marker_names(self) -> tuple[str, ...]:
        """The recenv markers this run gives meaning to."""
        return tuple(n for n in ALL_MARKERS if n not in self.project_markers)


STATE_KEY = pytest.StashKey[State]()
REQS_KEY = pytest.StashKey[tuple[Requirement, ...]]()
SKIP_KEY = pytest.StashKey[Skip]()


def device_params(
    min_devices: int = 1,
    min_memory: int | str | None = None,
    min_capability: tuple[int, int] | str | None = None,
) -> list[Any]:
    """``["cpu", param("cuda", marks=cuda(...))]``: CPU/GPU twins from one test function.

    Example: ``@pytest.mark.parametrize("device", device_params())``; the ``cuda`` twin carries the
    ``cuda`` marker: skipped with a reason (failing in require mode) where CUDA is unusable.
    """
    mark = pytest.mark.cuda(
        min_devices=min_devices, min_memory=min_memory, min_capability=min_capability
    )
    return ["cpu", pytest.param("cuda", marks=mark, id="cuda")]


@pytest.fixture(scope="session")
def hardware(request: pytest.FixtureRequest) -> HardwareReport:
    """The frozen hardware report this process runs under (pinned to its GPU under xdist)."""
    return request.config.stash[STATE_KEY].report


@pytest.fixture
def torch_device(hardware: HardwareReport) -> str:
    """``"cuda:0"`` when this process has a usable CUDA device (under xdist: its pinned one), else
    ``"cpu"``. Never imports torch."""
    usable = hardware.devices and evaluate_requirements([Requirement("cuda", 1)], hardware) is None
    return "cuda:0" if usable else "cpu"


@pytest.fixture(scope="session")
def faiss_gpu_resources(hardware: HardwareReport) -> Iterator[Any]:
    """A session-wide ``faiss.StandardGpuResources`` with its temporary memory capped.

    faiss reserves up to 1.5 GiB of scratch memory per resource object by default; several xdist
    workers sharing a GPU would exhaust it. The cap comes from ``RECENV_FAISS_TEMP_MEMORY`` (bytes,
    default 256 MiB). Requesting this fixture adds the ``faiss_gpu`` marker.
    """
    import faiss  # only here, in a test that the faiss_gpu marker has already cleared

    raw = os.environ.get("RECENV_FAISS_TEMP_MEMORY", str(DEFAULT_FAISS_TEMP_MEMORY))
    if not raw.isdigit():
        raise pytest.UsageError(
            f"RECENV_FAISS_TEMP_MEMORY={raw!r}: expected a number of bytes, e.g. 268435456"
        )
    resources = faiss.StandardGpuResources()
    resources.setTempMemory(int(raw))
    yield resources
