"""Run folders: everything needed to rebuild the environment that produced a number.

``runs/<run-id>/`` holds ``config.json``, ``metrics.json``, ``checkpoint.pt``, ``curves.png``,
``environment.yml`` (``conda env export`` when running inside conda) or
``environment.txt`` (the exact installed distributions, ``name==version``), ``hardware.json``
(``recenv doctor --json`` when available, else what torch reports) and ``git.txt`` (the
commit of the project's own repository, or why there is none).
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


def project_root() -> Path | None:
    """The project folder this package runs from (``<root>/src/{{ cookiecutter.package_name }}``, editable install),
    or None when it runs from an installed copy (a wheel in site-packages, the Docker image)."""
    package = Path(__file__).resolve().parents[1]
    root = package.parents[1]
    if package.parent.name == "src" and (root / "pyproject.toml").is_file():
        return root
    return None


def git_revision(project: Path | None) -> str:
    """The project's commit, plus ``-dirty`` when files in its folder changed; else a note.

    Only the project's own history counts. git searches upwards from the project folder, so it
    may find a repository the project merely sits in (the template checkout it was generated
    in, a home folder under git): that one is used only if it tracks the project's
    ``pyproject.toml`` (a monorepo); otherwise the project is not a git repository.
    """
    if project is None:
        return "not a git repository: the package runs from an installed copy, not a checkout"
    top = (_run(["git", "rev-parse", "--show-toplevel"], cwd=project) or "").strip()
    if not top:
        return "not a git repository (or git is not installed)"
    if Path(top).resolve() != project.resolve():
        tracked = _run(["git", "ls-files", "--", "pyproject.toml"], cwd=project)
        if not (tracked or "").strip():
            return f"not a git repository: {project} is inside {top}, which does not track it"
    rev = _run(["git", "rev-parse", "HEAD"], cwd=project)
    if not rev:
        return "a git repository without commits"
    status = _run(["git", "status", "--porcelain", "--", "."], cwd=project) or ""
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
    (run_dir / "git.txt").write_text(git_revision(project_root()) + "\n", encoding="utf-8")


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
