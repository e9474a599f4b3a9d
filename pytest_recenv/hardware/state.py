"""What the hardware side keeps per pytest run: the :class:`State` in ``config.stash`` and the
parsed requirements of each test in ``item.stash``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from pytest_recenv.hardware.markers import MARKER_NAMES, Need
from pytest_recenv.hardware.report import HardwareReport

# Requesting one of these fixtures adds its marker, so the test is skipped (or, in require mode,
# fails) with a reason instead of erroring inside the fixture.
FIXTURE_MARKERS = {"faiss_gpu_resources": "faiss_gpu"}
MODES = ("auto", "require", "skip")


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
        return tuple(n for n in MARKER_NAMES if n not in self.project_markers)


STATE_KEY = pytest.StashKey[State]()
NEEDS_KEY = pytest.StashKey[tuple[Need, ...]]()


def marker_names(config: pytest.Config) -> tuple[str, ...]:
    state = config.stash.get(STATE_KEY, None)
    return MARKER_NAMES if state is None else state.marker_names
