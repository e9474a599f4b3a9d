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
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from pytest_recenv.env import names
from pytest_recenv.env.spec import Spec, load_spec
from pytest_recenv.env.translate import Constraint, constraints
from pytest_recenv.env.variants import (
    cpu_marks,
    cuda_requests,
    distribution_variant,
    torch_variant,
)
from pytest_recenv.errors import Problem, RecenvError, SpecError

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


def unmet(wanted: list[Constraint], installed: dict[str, str]) -> list[tuple[Constraint, str]]:
    """Lines of a spec not met by ``installed`` (canonical name -> version), with the reason."""
    out = []
    for constraint in wanted:
        version = installed.get(constraint.name)
        if version is None:
            out.append((constraint, "missing"))
        elif not constraint.allows(version):
            out.append(
                (constraint, f"{constraint.name} {version} does not satisfy '{constraint.shown()}'")
            )
    return out


def read_lock(path: Path) -> dict[str, Any]:
    """The lock's data; a :class:`SpecError` with one problem at ``path:1`` when it is no lock."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        why = f"unreadable lock ({exc})"
    else:
        why = _not_a_lock(data)
        if why is None:
            return data
    raise SpecError([Problem(str(path), 1, f"{why}; regenerate it: recenv lock")])


def _not_a_lock(data: Any) -> str | None:
    if not isinstance(data, dict) or not isinstance(data.get("packages"), dict):
        return "not a recenv lock (no 'packages')"
    if not all(isinstance(v, str) for v in data["packages"].values()):
        return "not a recenv lock ('packages' maps names to version strings)"
    if not isinstance(data.get("python", ""), str):
        return f"not a recenv lock ('python' is {data['python']!r}, not a version string)"
    return None


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
    except SpecError as exc:  # the problem is the lock's, at its own path
        return exc.problems
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
    for wanted, why in unmet(constraints(spec), data["packages"]):
        detail = "not in the lock" if why == "missing" else why + " in the lock"
        problems.append(
            Problem(
                shown, wanted.line, f"'{wanted.raw}' is {detail}; refresh the lock: recenv lock"
            )
        )
    return problems


def installed_distributions(python: Path, given: str | None = None) -> dict[str, str]:
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
            display,
            wanted.line,
            f"'{wanted.raw}': " + ("not installed" if why == "missing" else why),
        )
        for wanted, why in unmet(constraints(spec), installed)
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
