"""What building an environment.yml means here, computed without building: the :class:`Plan`
(backend, interpreter, requirements, cache key parts), the conda -> PyPI requirement lines, and
what a backend hands back (:class:`Built`). Shared by :mod:`~pytest_recenv.env.builders` and
:mod:`~pytest_recenv.env.backends`, so neither imports the other's module for its types.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_recenv.env import names, pipconfig
from pytest_recenv.env.interpreters import Interpreter
from pytest_recenv.env.spec import Spec, expand_pip_vars
from pytest_recenv.env.translate import conda_constraint

KEY_FORMAT = 1
_SKIP_DIRS = {
    ".git",
    ".hg",
    ".venv",
    "venv",
    ".nox",
    ".tox",
    "__pycache__",
    "node_modules",
    "build",
    "dist",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
}


@dataclass
class Built:
    """What a backend hands back: a verified folder holding the environment and what it took.

    The builder writes the stamp into ``folder`` and, where it is not the env's final place (a
    relocatable venv built beside it), renames it into place."""

    folder: Path
    python: str  # the interpreter, relative to the folder (bin/python)
    timings: dict[str, float] = field(default_factory=dict)
    verified: dict[str, Any] = field(default_factory=dict)  # what the verification covered


@dataclass
class Plan:
    """Everything a build needs, computed without building (``recenv key`` stops here)."""

    spec: Spec
    backend: Any  # a Backend from the chain
    key: str
    parts: dict[str, Any]
    interpreter: Interpreter | None
    requirements: list[str]  # conda side translated, then the pip section
    pip_requirements: list[str]  # the pip section alone (what conda backends hand to pip)
    smoke: list[str]  # distribution names to import-test
    pip: pipconfig.PipConfig


def translate(
    spec: Spec, strict: bool = True, display: str | None = None
) -> tuple[list[str], list[str], list[str]]:
    """The conda side as PyPI requirement lines and the pip section, for one uv resolution.

    Returns (conda lines, pip lines, distribution names to smoke-import). ``strict`` (the uv
    backend) refuses a conda version PEP 440 cannot express (``|``) at its line, naming the
    file as ``display`` (default: ``spec.path``); otherwise (conda backends, which resolve such
    a line themselves) it is left out of the lines.
    """
    folder = spec.path.parent.resolve()
    lines: list[str] = []
    pip_lines: list[str] = []
    smoke: list[str] = []
    for dep in spec.conda:
        constraint = conda_constraint(dep)
        if constraint is None:
            continue
        if strict or len(constraint.alternatives) <= 1:
            lines.append(constraint.requirement_line(display or spec.path))
        smoke.append(names.pypi_name(dep.name) or dep.name)
    for dep in spec.pip:
        text = dep.raw.strip()
        if dep.kind == "editable":
            # pip expands ${VAR} in requirement files: open what pip would (spec.expand_pip_vars)
            target, _ = expand_pip_vars(text.split(None, 1)[-1].removeprefix("--editable="))
            target = target.strip()
            if "://" not in target:
                target = str((folder / target).resolve())
            pip_lines.append(f"-e {target}")
        elif dep.kind == "option":
            words = text.split(None, 1)
            if words[0] in ("-r", "--requirement", "-c", "--constraint") and len(words) == 2:
                text = f"{words[0]} {(folder / expand_pip_vars(words[1])[0]).resolve()}"
            pip_lines.append(text)
        else:
            pip_lines.append(text)
            if dep.name and dep.name not in names.PYPI_TRAPS:
                smoke.append(dep.name)
    return lines, pip_lines, smoke


def local_sources(spec: Spec, requirements: list[str]) -> dict[str, str]:
    """Local paths the env depends on: editables by resolved path (two projects with the same
    spec never share an env); non-editable local folders by a content fingerprint."""
    found: dict[str, str] = {}
    for line in requirements:
        if line.startswith("-e ") and "://" not in line:
            found[line[3:]] = "editable"
        elif " @ file://" in line or line.startswith("file://"):
            path = Path(line.split("file://", 1)[1].split()[0].split(";")[0])
            found[str(path)] = _tree_fingerprint(path) if path.is_dir() else _file_hash(path)
    return found


def _file_hash(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "missing"


def _tree_fingerprint(root: Path) -> str:
    """Size and mtime of every file that would go into a build of ``root``: in a git work tree
    the files git tracks or would track (so ignored outputs such as ``out/`` or ``.nox/`` never
    change the key), elsewhere every file outside the usual tool and cache folders."""
    digest = hashlib.sha256()
    for path in _source_files(root):
        try:
            st = path.stat()
        except OSError:
            continue
        digest.update(f"{path.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _source_files(root: Path) -> list[Path]:
    try:
        listed = subprocess.run(
            [
                "git",
                "-C",
                str(root),
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        listed = None
    if listed is not None:
        return sorted(root / name for name in listed.decode().split("\0") if name)
    files = []
    for folder, dirs, names_ in os.walk(root):
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in _SKIP_DIRS and not d.startswith(".") and not d.endswith(".egg-info")
        )
        files += [Path(folder, name) for name in sorted(names_)]
    return files
