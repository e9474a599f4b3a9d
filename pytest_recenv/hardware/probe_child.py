"""Tier-1 probe: :func:`probe_tier1` (parent side) spawns
``python -m pytest_recenv.hardware.probe_child [torch] [faiss]`` and reads back what the child
found.

This is the only place pytest-recenv imports torch or faiss, and it is never the pytest process:
initialising CUDA here cannot break the parent's forks, and a broken build can only crash the child.
It prints one line, ``RECENV-PROBE <json>``, so libraries printing to stdout cannot confuse it.
Device ordinals in ``kernel_errors`` refer to this child's ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from importlib import metadata
from typing import Any

from pytest_recenv.hardware.report import HardwareReport, tier1_from_dict, visible_tokens

DEFAULT_TIMEOUT_S = 180.0  # importing a CUDA torch and initialising a device can take a minute


def _timeout() -> float:
    raw = os.environ.get("RECENV_PROBE_TIMEOUT", "")
    try:
        return float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        raise ValueError(
            f"RECENV_PROBE_TIMEOUT={raw!r}: expected seconds as a number, e.g. 180"
        ) from None


def probe_tier1(report: HardwareReport, what: set[str]) -> HardwareReport:
    """Fill in ``torch`` and/or ``faiss`` by running :mod:`pytest_recenv.hardware.probe_child`.

    The child gets the report's visible list as its ``CUDA_VISIBLE_DEVICES`` (so kernel errors map
    back to device UUIDs) and ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` so ``is_available()`` asks NVML.
    """
    env = dict(os.environ, PYTORCH_NVML_BASED_CUDA_CHECK="1")
    tokens = visible_tokens(report)
    env["CUDA_VISIBLE_DEVICES"] = ",".join(tokens)
    cmd = [sys.executable, "-m", "pytest_recenv.hardware.probe_child", *sorted(what)]
    try:
        proc = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=_timeout(), check=False
        )
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RECENV-PROBE ")]
        if not lines:
            raise RuntimeError(
                f"exit {proc.returncode}: {(proc.stderr.strip().splitlines() or ['no output'])[-1]}"
            )
        data = json.loads(lines[-1][len("RECENV-PROBE ") :])
    except (subprocess.TimeoutExpired, RuntimeError, json.JSONDecodeError) as exc:
        failure = f"probe child failed: {exc}"
        data = {k: {"error": failure} for k in what}
    uuids = [d.uuid for d in report.devices]
    updates: dict[str, Any] = {}
    if "torch" in data:
        t = data["torch"]
        # The child numbers devices by its CUDA_VISIBLE_DEVICES, which is this report's list.
        t["kernel_errors"] = [
            (uuids[int(i)], msg)
            for i, msg in t.get("kernel_errors", {}).items()
            if int(i) < len(uuids)
        ]
        updates["torch"] = tier1_from_dict("torch", t)
    if "faiss" in data:
        updates["faiss"] = tier1_from_dict("faiss", data["faiss"])
    return dataclasses.replace(report, **updates)


def _error(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:300]


def probe_torch() -> dict[str, Any]:
    try:
        import torch
    except ModuleNotFoundError:
        return {"version": None}
    except Exception as exc:  # a broken install: report it rather than crash the probe
        return {"version": None, "error": _error(exc)}
    info: dict[str, Any] = {
        "version": str(torch.__version__),
        "cuda": torch.version.cuda,
        "hip": getattr(torch.version, "hip", None),
    }
    try:
        if not torch.cuda.is_available():  # NVML-based: does not initialise CUDA
            info["device_count"] = 0
            return info
        info["device_count"] = torch.cuda.device_count()
        info["arch_list"] = list(torch.cuda.get_arch_list())
        errors = {}
        for i in range(info["device_count"]):
            try:
                # A one-element kernel: is_available() can be true while the first real op fails
                # with "no kernel image is available" (pytorch#167244).
                value = (torch.ones(1, device=f"cuda:{i}") + 1).item()
                if value != 2.0:
                    errors[str(i)] = f"1 + 1 gave {value} on cuda:{i}"
            except Exception as exc:
                errors[str(i)] = _error(exc)
        info["kernel_errors"] = errors
    except Exception as exc:
        info["error"] = _error(exc)
    return info


def _faiss_build(faiss: Any) -> str:
    options = str(getattr(faiss, "get_compile_options", lambda: "")()).upper()
    if "METAL" in options:
        return "metal"
    if "ROCM" in options or "HIP" in options:
        return "rocm"
    if "CUVS" in options or "RAFT" in options:
        return "cuvs"
    if "GPU" in options or hasattr(faiss, "StandardGpuResources"):
        return "cuda"
    return "cpu"


def probe_faiss() -> dict[str, Any]:
    dists = sorted(
        {
            (d.metadata["Name"] or "").lower()
            for d in metadata.distributions()
            if (d.metadata["Name"] or "").lower().startswith("faiss")
        }
    )
    try:
        import faiss
        import numpy as np
    except ModuleNotFoundError:
        return {"version": None, "distributions": dists}
    except Exception as exc:
        return {"version": None, "distributions": dists, "error": _error(exc)}
    info: dict[str, Any] = {
        "version": str(getattr(faiss, "__version__", "unknown")),
        "build": _faiss_build(faiss),
        "distributions": dists,
    }
    try:
        info["num_gpus"] = int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0
        base = np.array([[0.0, 0.0], [1.0, 1.0]], dtype="float32")
        query = np.array([[0.9, 0.9]], dtype="float32")
        index = faiss.IndexFlatL2(2)
        index.add(base)
        info["works"] = int(index.search(query, 1)[1][0][0]) == 1
        if info["num_gpus"] > 0 and hasattr(faiss, "StandardGpuResources"):
            try:
                gpu = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
                if int(gpu.search(query, 1)[1][0][0]) != 1:
                    info["gpu_error"] = "GPU flat search returned the wrong neighbour"
            except Exception as exc:
                info["gpu_error"] = _error(exc)
    except Exception as exc:
        info["error"] = _error(exc)
    return info


def main(argv: list[str]) -> int:
    what = set(argv) or {"torch", "faiss"}
    out: dict[str, Any] = {}
    if "faiss" in what:
        out["faiss"] = probe_faiss()
    if "torch" in what:
        out["torch"] = probe_torch()
    print("RECENV-PROBE " + json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
