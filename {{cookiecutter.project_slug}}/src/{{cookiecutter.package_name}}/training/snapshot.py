"""Run folders: everything needed to rebuild the environment that produced a number.

``runs/<run-id>/`` holds ``config.json``, ``metrics.json``, ``checkpoint.pt``, ``curves.png``,
``environment.yml`` (``conda env export`` when running inside conda) or
``environment.txt`` (the exact installed distributions, ``name==version``), ``hardware.json``
(``recenv doctor --json`` when available, else what torch reports) and ``git.txt``.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any


def new_run_id(fingerprint: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{stamp}-{fingerprint[:6]}"


def _run(cmd: list[str], cwd: Path | None = None, timeout: float = 60) -> str | None:
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, cwd=cwd, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def installed_packages() -> list[str]:
    """Every installed distribution as ``name==version``, sorted (pip-installable list)."""
    seen = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and name.lower() not in seen:
            seen[name.lower()] = f"{name}=={dist.version}"
    return [seen[k] for k in sorted(seen)]


def write_environment(run_dir: Path) -> Path:
    """``conda env export`` inside a conda env (it records channels and builds), else pip list."""
    if os.environ.get("CONDA_PREFIX") and (
        conda := shutil.which("conda") or os.environ.get("CONDA_EXE")
    ):
        exported = _run([conda, "env", "export", "--prefix", os.environ["CONDA_PREFIX"]])
        if exported:
            path = run_dir / "environment.yml"
            path.write_text(exported, encoding="utf-8")
            return path
    path = run_dir / "environment.txt"
    header = f"# python {platform.python_version()} ({sys.executable}) on {platform.platform()}\n"
    path.write_text(header + "\n".join(installed_packages()) + "\n", encoding="utf-8")
    return path


def hardware_report() -> dict[str, Any]:
    """``recenv doctor --json`` if the recenv CLI offers it, else what torch can see
    (plus plain ``recenv doctor`` text where only that exists)."""
    recenv = shutil.which("recenv")
    doctor_text = None
    if recenv:
        out = _run([recenv, "doctor", "--json"])
        if out:
            try:
                return {"source": "recenv doctor --json", "report": json.loads(out)}
            except json.JSONDecodeError:
                pass
        doctor_text = _run([recenv, "doctor"])
    import torch

    report: dict[str, Any] = {
        "source": "torch",
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "devices": [],
    }
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            report["devices"].append(
                {
                    "name": p.name,
                    "capability": f"{p.major}.{p.minor}",
                    "memory_bytes": p.total_memory,
                }
            )
    try:
        import faiss

        report["faiss"] = faiss.__version__
        report["faiss_gpus"] = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    except ImportError:
        report["faiss"] = None
    if doctor_text:
        report["recenv_doctor"] = doctor_text
    return report


def git_revision(where: Path) -> str:
    """Commit hash plus ``-dirty`` when the tree has changes; a note when not in git."""
    rev = _run(["git", "rev-parse", "HEAD"], cwd=where)
    if not rev:
        return "not a git checkout (or git not installed)"
    status = _run(["git", "status", "--porcelain"], cwd=where) or ""
    return rev.strip() + ("-dirty" if status.strip() else "")


def write_snapshot(run_dir: Path, config: dict[str, Any]) -> None:
    """Config, environment, hardware and git revision; called once per run by rank 0."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(
        json.dumps(config, indent=2, default=str), encoding="utf-8"
    )
    write_environment(run_dir)
    (run_dir / "hardware.json").write_text(
        json.dumps(hardware_report(), indent=2, default=str), "utf-8"
    )
    (run_dir / "git.txt").write_text(git_revision(Path.cwd()) + "\n", encoding="utf-8")


def plot_curves(history: list[dict[str, float]], path: Path, k: int) -> Path:
    """Training loss and validation Recall@K per epoch, side by side, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(epochs, [h["loss"] for h in history], marker="o")
    left.set_xlabel("epoch")
    left.set_ylabel("training loss")
    right.plot(epochs, [h[f"val_recall@{k}"] for h in history], marker="o", color="tab:green")
    right.set_xlabel("epoch")
    right.set_ylabel(f"validation Recall@{k}")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
