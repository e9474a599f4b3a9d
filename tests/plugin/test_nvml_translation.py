"""How NVML's answers become ``Gpu`` records: MIG instances, empty MIG slots, pre-Ampere GPUs that
do not support MIG, old drivers returning bytes. No GPU here, so a stand-in answers with the real
pynvml error classes and constants (what the plugin matches on); the translation is the real code.
"""

from __future__ import annotations

import types
from typing import Any

import pynvml
import pytest

from pytest_recenv.hardware import nvml as tier0
from pytest_recenv.hardware import report as hardware


def _not_supported() -> pynvml.NVMLError:
    return pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)


def fake_nvml(gpus: list[dict[str, Any]], driver: str | bytes = "550.90.07") -> types.ModuleType:
    """A pynvml stand-in answering from ``gpus`` the way the NVML C API does."""
    nvml = types.ModuleType("pynvml")
    nvml.NVMLError = pynvml.NVMLError  # type: ignore[attr-defined]
    nvml.NVMLError_LibraryNotFound = pynvml.NVMLError_LibraryNotFound  # type: ignore[attr-defined]
    nvml.NVMLError_DriverNotLoaded = pynvml.NVMLError_DriverNotLoaded  # type: ignore[attr-defined]
    nvml.NVML_DEVICE_MIG_ENABLE = pynvml.NVML_DEVICE_MIG_ENABLE  # type: ignore[attr-defined]
    calls = {"init": 0, "shutdown": 0}

    def mig_mode(h: tuple[int, ...]) -> list[int]:
        g = gpus[h[0]]
        if "mig" not in g:
            raise _not_supported()
        return [pynvml.NVML_DEVICE_MIG_ENABLE if g["mig"] else 0] * 2

    def mig_handle(h: tuple[int, ...], slot: int) -> tuple[int, ...]:
        if slot not in gpus[h[0]]["instances"]:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return (h[0], slot)

    def record(h: tuple[int, ...]) -> dict[str, Any]:
        g = gpus[h[0]]
        return g if len(h) == 1 else g["instances"][h[1]]

    nvml.__dict__.update(
        nvmlInit=lambda: calls.__setitem__("init", calls["init"] + 1),
        nvmlShutdown=lambda: calls.__setitem__("shutdown", calls["shutdown"] + 1),
        nvmlSystemGetDriverVersion=lambda: driver,
        nvmlDeviceGetCount=lambda: len(gpus),
        nvmlDeviceGetHandleByIndex=lambda i: (i,),
        nvmlDeviceGetCudaComputeCapability=lambda h: gpus[h[0]]["cc"],
        nvmlDeviceGetMigMode=mig_mode,
        nvmlDeviceGetMaxMigDeviceCount=lambda h: 7,
        nvmlDeviceGetMigDeviceHandleByIndex=mig_handle,
        nvmlDeviceGetUUID=lambda h: record(h)["uuid"],
        nvmlDeviceGetName=lambda h: record(h)["name"],
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(total=record(h)["mem"]),
        calls=calls,
    )
    return nvml


MACHINE = [
    {"name": b"Tesla T4", "uuid": b"GPU-t4", "mem": 16106127360, "cc": (7, 5)},  # no MIG at all
    {
        "name": "NVIDIA H100 80GB HBM3",
        "uuid": "GPU-h100",
        "mem": 85520809984,
        "cc": (9, 0),
        "mig": True,
        "instances": {  # slots 1, 2, 4.. are empty: NVML answers NOT_FOUND for them
            0: {"name": "NVIDIA H100 80GB HBM3 MIG 3g.40gb", "uuid": "MIG-a", "mem": 42144366592},
            3: {"name": "NVIDIA H100 80GB HBM3 MIG 3g.40gb", "uuid": "MIG-b", "mem": 42144366592},
        },
    },
]


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    fake = fake_nvml(MACHINE, driver=b"550.90.07")
    monkeypatch.setitem(__import__("sys").modules, "pynvml", fake)
    monkeypatch.setattr(tier0, "_nvml_library_loadable", lambda: True)
    return fake


def test_nvml_answers_become_gpus_with_their_mig_instances(nvml: types.ModuleType) -> None:
    driver, error, gpus = tier0.probe_nvml()
    assert (driver, error) == ("550.90.07", None)
    assert gpus == (
        hardware.Gpu("GPU-t4", "Tesla T4", 16106127360, (7, 5)),
        hardware.Gpu(
            "GPU-h100",
            "NVIDIA H100 80GB HBM3",
            85520809984,
            (9, 0),
            mig_enabled=True,
            migs=(
                hardware.Gpu("MIG-a", "NVIDIA H100 80GB HBM3 MIG 3g.40gb", 42144366592, (9, 0)),
                hardware.Gpu("MIG-b", "NVIDIA H100 80GB HBM3 MIG 3g.40gb", 42144366592, (9, 0)),
            ),
        ),
    )
    assert nvml.calls == {"init": 1, "shutdown": 1}  # type: ignore[attr-defined]


def test_tier0_applies_the_visible_list_to_what_nvml_listed(
    nvml: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = tier0.probe_tier0({"CUDA_VISIBLE_DEVICES": "MIG-b,0"})
    assert [(d.ordinal, d.token, d.name) for d in report.devices] == [
        (0, "MIG-b", "NVIDIA H100 80GB HBM3 MIG 3g.40gb"),
        (1, "0", "Tesla T4"),
    ]
    assert tier0.probe_tier0({}).devices[1].uuid == "MIG-a"  # a MIG GPU opens as instance 0


def test_an_nvml_failure_while_listing_is_reported_not_raised(nvml: types.ModuleType) -> None:
    def broken(h: tuple[int, ...]) -> str:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)

    nvml.nvmlDeviceGetUUID = broken  # type: ignore[attr-defined]
    driver, error, gpus = tier0.probe_nvml()
    assert (driver, gpus) == (None, ())
    assert error is not None and error.startswith("NVML failed while listing GPUs: ")
    assert nvml.calls["shutdown"] == 1  # type: ignore[attr-defined]


def test_a_driver_whose_module_is_not_loaded_is_named(nvml: types.ModuleType) -> None:
    def init() -> None:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)

    nvml.nvmlInit = init  # type: ignore[attr-defined]
    assert tier0.probe_nvml() == (None, "no NVIDIA driver: kernel module not loaded", ())
