"""Lock files next to environment.yml, their freshness, and drift of an installed env.

The uv lock (``environment.lock.json``) records every resolved distribution.  Freshness is
checked in two steps: the normalised spec hash (equal: fresh), then satisfiability (every
requirement of the spec is met by a locked version), so cosmetic edits, and edits the lock
already satisfies, never force a relock.
"""

from __future__ import annotations

import json
import subprocess
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from pytest_recenv.env import names
from pytest_recenv.env.spec import Spec, load_spec
from pytest_recenv.env.variants import (
    cpu_marks,
    cuda_requests,
    distribution_variant,
    ensure_cuda_builds,
    torch_variant,
)
from pytest_recenv.errors import Problem, RecenvError

LOCK_FORMAT = 1


def conda_subdir() -> str:
    plat = sysconfig.get_platform()  # e.g. linux-x86_64, macosx-11.0-arm64, win-amd64
    if plat.startswith("linux"):
        return "linux-aarch64" if plat.endswith("aarch64") else "linux-64"
    if plat.startswith("macosx"):
        return "osx-arm64" if plat.endswith("arm64") else "osx-64"
    return "win-64"


def conda_lock_path(env_file: Path) -> Path:
    """conda-lock's unified ``conda-lock.yml`` if present, else an explicit lock for this
    platform (``conda list --explicit --md5`` output)."""
    unified = env_file.with_name("conda-lock.yml")
    if unified.is_file():
        return unified
    return env_file.with_name(f"{env_file.stem}.{conda_subdir()}.conda.lock")


def uv_lock_path(env_file: Path) -> Path:
    return env_file.with_name(f"{env_file.stem}.lock.json")


@dataclass(frozen=True)
class Requirement:
    """One checkable requirement of a spec: a distribution name and a PEP 440 constraint."""

    name: str
    specifier: SpecifierSet
    line: int
    raw: str


def requirements_of(spec: Spec) -> list[Requirement]:
    """conda deps (through the name table) and pip requirements; editables/options have no
    version to check."""
    reqs = []
    for dep in spec.conda:
        pypi = names.pypi_name(dep.name)
        if pypi is None:
            continue
        try:
            spec_set = SpecifierSet(dep.pep440())
        except ValueError:
            spec_set = SpecifierSet()  # '|' versions: presence is all PEP 440 can check
        reqs.append(Requirement(names.canonical(pypi), spec_set, dep.line, dep.raw.strip()))
    for dep in spec.pip:
        if dep.requirement is not None and dep.requirement.url is None and dep.name:
            reqs.append(Requirement(dep.name, dep.requirement.specifier, dep.line, dep.raw.strip()))
    return reqs


def unmet(reqs: list[Requirement], installed: dict[str, str]) -> list[tuple[Requirement, str]]:
    """Requirements not met by ``installed`` (canonical name -> version), with the reason."""
    out = []
    for req in reqs:
        version = installed.get(req.name)
        if version is None:
            out.append((req, "missing"))
            continue
        try:
            ok = req.specifier.contains(Version(version), prereleases=True)
        except InvalidVersion:
            ok = False
        if not ok:
            out.append((req, f"{req.name} {version} does not satisfy '{req.specifier}'"))
    return out


def write_uv_lock(
    env_file: Path, backends: list[str] | None = None, python_policy: str = "strict"
) -> Path:
    """Resolve the spec with ``uv pip compile`` (pip config passed through) and write the lock."""
    from pytest_recenv.env.builders import make_plan

    plan = make_plan(env_file, backends=backends or ["uv"], python_policy=python_policy)
    if plan.backend.name != "uv" or plan.interpreter is None:
        raise RecenvError(f"recenv lock writes uv locks; for {plan.backend.name} use conda-lock")
    # a spec that asks for CUDA must not lock a CPU torch/faiss (see variants.py)
    resolution, _ = ensure_cuda_builds(
        plan.spec, lambda extra: plan.backend.resolve(plan, extra), str(env_file)
    )
    packages = resolution.pins
    data = {
        "format": LOCK_FORMAT,
        "backend": "uv",
        "spec_hash": plan.spec.digest(),
        "platform": sysconfig.get_platform(),
        "python": plan.interpreter.version_str,
        "packages": dict(sorted(packages.items())),
    }
    out = uv_lock_path(plan.spec.path)
    out.write_text(json.dumps(data, indent=2) + "\n")
    return out


def read_lock(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RecenvError(
            f"{path}:1: unreadable lock ({exc}); regenerate it: recenv lock"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("packages"), dict):
        raise RecenvError(
            f"{path}:1: not a recenv lock (no 'packages'); regenerate it: recenv lock"
        )
    return data


def lock_problems(env_file: Path, display: str | None = None) -> list[Problem]:
    """Empty when the lock is fresh for the spec (hash equal, or every requirement satisfied)."""
    shown = display or str(env_file)
    lock = uv_lock_path(env_file)
    if not lock.is_file():
        return [
            Problem(
                shown,
                1,
                f"no lock: expected {lock.name} next to it; create it with 'recenv lock {shown}'",
            )
        ]
    spec = load_spec(env_file)
    try:
        data = read_lock(lock)
    except RecenvError as exc:
        return [Problem(shown, 1, str(exc))]
    if data.get("spec_hash") == spec.digest():
        return []
    problems = []
    pin = spec.python
    if pin is not None and data.get("python"):
        try:
            ok = SpecifierSet(pin.pep440()).contains(Version(data["python"]))
        except ValueError:
            ok = True
        if not ok:
            problems.append(
                Problem(
                    shown,
                    pin.line,
                    f"'{pin.raw.strip()}' is not met by the "
                    f"lock (python {data['python']}); run 'recenv lock'",
                )
            )
    for req, why in unmet(requirements_of(spec), data["packages"]):
        detail = "not in the lock" if why == "missing" else why + " in the lock"
        problems.append(
            Problem(shown, req.line, f"'{req.raw}' is {detail}; refresh the lock: recenv lock")
        )
    return problems


def installed_versions(python: Path, given: str | None = None) -> dict[str, str]:
    """Every distribution installed for ``python`` (asked in a child process).  ``given`` names
    where the interpreter came from in errors (``--prefix /x``); a missing or broken interpreter
    is a ``RecenvError``, one line with what was expected, what was found and the fix."""
    where = given or str(python)
    fix = "pass an environment's prefix (what 'recenv build' prints) or its python"
    code = (
        "import importlib.metadata as m, json; print(json.dumps({d.metadata['Name']: "
        "d.version for d in m.distributions() if d.metadata['Name']}))"
    )
    if not python.exists():
        raise RecenvError(f"{where}: expected an interpreter, found nothing there; {fix}")
    try:
        out = subprocess.run(
            [str(python), "-c", code], capture_output=True, text=True, check=False, timeout=300
        )
    except (OSError, subprocess.SubprocessError) as exc:
        why = getattr(exc, "strerror", None) or exc.__class__.__name__
        raise RecenvError(
            f"{where}: expected a Python interpreter, found a file that does not run it ({why}); "
            f"{fix}"
        ) from None
    try:
        found = json.loads(out.stdout) if out.returncode == 0 else None
    except ValueError:
        found = None
    if not isinstance(found, dict):
        said = (out.stderr.strip().splitlines() or out.stdout.strip().splitlines() or [""])[-1]
        raise RecenvError(
            f"{where}: expected a Python interpreter that lists its distributions, found exit "
            f"{out.returncode}{f' ({said[:200]})' if said else ''}; {fix}"
        )
    return {names.canonical(k): v for k, v in found.items()}


def drift(spec: Spec, installed: dict[str, str], display: str) -> list[Problem]:
    """Spec vs an installed env: missing, mismatched, CUDA-variant clashes.  Loose pins that
    the installed version satisfies are not drift."""
    problems = [
        Problem(
            display, req.line, f"'{req.raw}': " + ("not installed" if why == "missing" else why)
        )
        for req, why in unmet(requirements_of(spec), installed)
    ]
    cpu = cpu_marks(spec)
    cuda = cuda_requests(spec)
    torch = installed.get("torch", "")
    torch_dep = next((d for d in spec.conda if names.pypi_name(d.name) == "torch"), None)
    line = torch_dep.line if torch_dep else 1
    # a plain torch resolved with NVIDIA runtime wheels (nvidia-*-cu12) is PyPI's CUDA build
    cuda_torch = bool(torch) and torch_variant(installed)[0] == "cuda"
    if cpu and cuda_torch:
        problems.append(
            Problem(
                display,
                line,
                f"spec asks for CPU builds ('{cpu[0].raw.strip()}')"
                f" but a CUDA torch is installed (torch {torch}); reinstall the "
                "CPU wheel",
            )
        )
    cuda_builds = [
        n
        for n in sorted(installed)
        if n not in ("torch", "torchvision", "torchaudio")
        and not (cuda_torch and n.startswith("nvidia-"))  # they came with that torch
        and (distribution_variant(n, installed[n]) or ("",))[0] == "cuda"
    ]
    if cpu and cuda_builds:
        problems.append(
            Problem(
                display,
                cpu[0].line,
                f"spec asks for CPU builds ('{cpu[0].raw.strip()}') but CUDA builds are "
                f"installed ({', '.join(f'{n} {installed[n]}' for n in cuda_builds)}); "
                "uninstall them",
            )
        )
    if cuda and torch.endswith("+cpu"):
        problems.append(
            Problem(
                display,
                line,
                f"spec asks for CUDA ('{cuda[0].raw.strip()}') but "
                f"the CPU torch {torch} is installed",
            )
        )
    # builds of one module: faiss-cpu / faiss-gpu / faiss-gpu-cu12, cupy / cupy-cuda12x
    modules: dict[str, list[str]] = {}
    for n in sorted(installed):
        module = {"faiss-cpu": "faiss", "faiss-gpu": "faiss", "cupy": "cupy"}.get(
            names.identity(n, "pip")
        )
        if module:
            modules.setdefault(module, []).append(n)
    for module, dists in sorted(modules.items()):
        if len(dists) > 1:
            shown = [f"{n} {installed[n]}" for n in dists]
            both, one = ("both", "one") if len(dists) == 2 else ("all", "all but one")
            problems.append(
                Problem(
                    display,
                    1,
                    f"{', '.join(shown[:-1])} and {shown[-1]} are {both} installed and "
                    f"overwrite each other's '{module}' module; uninstall {one}",
                )
            )
    return sorted(problems, key=lambda p: p.line)
