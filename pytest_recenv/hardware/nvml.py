"""Tier 0 of the hardware probe: what the NVIDIA driver reports through NVML (``nvidia-ml-py``).

Kept apart from :mod:`pytest_recenv.hardware.report` so the report types and visibility rules read
without the driver calls; :func:`probe_tier0` turns the driver's answer into a report.
"""

from __future__ import annotations

import ctypes
import os
import sys
import warnings
from collections.abc import Mapping
from typing import Any

from pytest_recenv.hardware.report import Gpu, HardwareReport


def probe_tier0(environ: Mapping[str, str] | None = None) -> HardwareReport:
    """The live machine as the driver sees it, with ``CUDA_VISIBLE_DEVICES`` applied."""
    env = os.environ if environ is None else environ
    driver, error, gpus = probe_nvml()
    report = HardwareReport(source="live", driver=driver, driver_error=error, gpus=gpus)
    return report.with_visibility(env.get("CUDA_VISIBLE_DEVICES"))


def _nvml_library_loadable() -> bool:
    """Does the NVML shared library open? The same ``dlopen`` pynvml does first, without importing
    pynvml's 5,000-line module (25-30 ms) on the machines that have no driver: most CI runners."""
    if not sys.platform.startswith("linux"):
        return True  # pynvml knows the Windows install locations; let it search them
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


def probe_nvml() -> tuple[str | None, str | None, tuple[Gpu, ...]]:
    """(driver version, error, GPUs) from NVML; the error says truthfully why there is no answer."""
    if not _nvml_library_loadable():
        return None, "no NVIDIA driver: libnvidia-ml not found", ()
    try:
        with warnings.catch_warnings():
            # The old ``pynvml`` distribution, a shim over nvidia-ml-py, warns on import; under
            # ``-W error`` that would turn a probe into a crash.
            warnings.simplefilter("ignore")
            import pynvml
    except ImportError:
        return None, "NVML unavailable (nvidia-ml-py is not installed)", ()
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError_LibraryNotFound:
        return None, "no NVIDIA driver: libnvidia-ml not found", ()
    except pynvml.NVMLError_DriverNotLoaded:
        return None, "no NVIDIA driver: kernel module not loaded", ()
    except pynvml.NVMLError as exc:
        return None, f"NVIDIA driver present but NVML failed: {exc}", ()
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        gpus = tuple(_nvml_gpu(pynvml, i) for i in range(pynvml.nvmlDeviceGetCount()))
        return driver, None, gpus
    except pynvml.NVMLError as exc:
        return None, f"NVML failed while listing GPUs: {exc}", ()
    finally:
        pynvml.nvmlShutdown()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _nvml_gpu(pynvml: Any, index: int) -> Gpu:
    h = pynvml.nvmlDeviceGetHandleByIndex(index)
    capability = tuple(pynvml.nvmlDeviceGetCudaComputeCapability(h))
    try:
        mig_enabled = pynvml.nvmlDeviceGetMigMode(h)[0] == pynvml.NVML_DEVICE_MIG_ENABLE
    except pynvml.NVMLError:  # pre-Ampere GPUs do not support MIG at all
        mig_enabled = False
    migs: list[Gpu] = []
    if mig_enabled:
        for j in range(pynvml.nvmlDeviceGetMaxMigDeviceCount(h)):
            try:
                m = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(h, j)
            except pynvml.NVMLError:  # empty slot: fewer instances created than the maximum
                continue
            migs.append(
                Gpu(
                    _text(pynvml.nvmlDeviceGetUUID(m)),
                    _text(pynvml.nvmlDeviceGetName(m)),
                    int(pynvml.nvmlDeviceGetMemoryInfo(m).total),
                    capability,
                )
            )  # type: ignore[arg-type]
    return Gpu(
        uuid=_text(pynvml.nvmlDeviceGetUUID(h)),
        name=_text(pynvml.nvmlDeviceGetName(h)),
        memory=int(pynvml.nvmlDeviceGetMemoryInfo(h).total),
        capability=capability,  # type: ignore[arg-type]
        mig_enabled=mig_enabled,
        migs=tuple(migs),
    )
