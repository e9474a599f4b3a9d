"""Fixtures of the hardware side (``hardware``, ``torch_device``, ``faiss_gpu_resources``) and the
CPU/GPU twin parametrisation helper. Registered by :mod:`pytest_recenv.plugin`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_recenv.hardware.markers import Need
from pytest_recenv.hardware.report import HardwareReport
from pytest_recenv.hardware.skipping import evaluate
from pytest_recenv.hardware.state import STATE_KEY

DEFAULT_FAISS_TEMP_MEMORY = 256 * 2**20


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
    usable = hardware.devices and evaluate([Need("cuda", 1)], hardware) is None
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
