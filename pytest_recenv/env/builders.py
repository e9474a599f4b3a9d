"""Build environment.yml into a cached environment: backend chain, cache key, atomic build, lock.

``ensure_env(path)`` returns an ``Env`` that is either reused (its stamp matches the key) or built
now.  A build happens in a temporary folder under a file lock and is renamed into place only after
``pip check`` and an import smoke test passed, with a stamp written last: concurrent workers build
once, a killed build is never reused, and a changed spec gets a new key, never a stale env.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_recenv.env import names, pipconfig
from pytest_recenv.env.backends import select_backend
from pytest_recenv.env.interpreters import Interpreter, choose, discover
from pytest_recenv.env.lease import Lease
from pytest_recenv.env.spec import Spec, expand_pip_vars, load_spec
from pytest_recenv.errors import BuildError, RecenvError

STAMP = ".recenv-stamp.json"
KEY_FORMAT = 1
DEFAULT_CHAIN = ("micromamba", "mamba", "conda", "uv")
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


def cache_root(cache_dir: Path | str | None = None) -> Path:
    """``$RECENV_CACHE_DIR``, else the user cache dir's ``recenv/envs``."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get("RECENV_CACHE_DIR"):
        return Path(os.environ["RECENV_CACHE_DIR"])
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("recenv")) / "envs"


@dataclass
class Env:
    """A built environment.  ``run`` executes a command with the env's bin first on PATH."""

    python: Path
    prefix: Path
    key: str
    backend: str
    created: bool
    seconds: float
    spec_path: Path
    timings: dict[str, float] = field(default_factory=dict)
    lease: Lease | None = field(default=None, repr=False, compare=False)

    @property
    def bin(self) -> Path:
        return self.python.parent

    def release(self) -> None:
        """End this user's lease (``ensure_env(..., lease=True)``): ``recenv gc`` may remove the
        env again, counting its last use from now."""
        if self.lease is not None and self.lease.held:
            with contextlib.suppress(OSError):
                os.utime(self.prefix / STAMP)
            self.lease.release()

    def __enter__(self) -> Env:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def environ(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env.pop("PYTHONHOME", None)
        env["VIRTUAL_ENV"] = str(self.prefix)
        if self.backend != "uv":
            env["CONDA_PREFIX"] = str(self.prefix)
        env["PATH"] = os.pathsep.join([str(self.bin), env.get("PATH", "")])
        return env

    def run(
        self, cmd: Sequence[str], cwd: Path | str | None = None, check: bool = True, **kwargs: Any
    ) -> subprocess.CompletedProcess:
        env = self.environ(kwargs.pop("env", None))
        exe = shutil.which(cmd[0], path=str(self.bin)) or cmd[0]
        return subprocess.run([exe, *cmd[1:]], cwd=cwd, check=check, env=env, **kwargs)

    def describe(self) -> str:
        verb = "created" if self.created else "reused"
        return f"{self.backend} key={self.key[:8]}… {verb} in {self.seconds:.1f} s"


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


def translate(spec: Spec) -> tuple[list[str], list[str], list[str]]:
    """The conda side as PyPI requirements, the pip section, for one uv resolution.

    Returns (conda lines, pip lines, distribution names to smoke-import).
    """
    folder = spec.path.parent.resolve()
    lines: list[str] = []
    pip_lines: list[str] = []
    smoke: list[str] = []
    for dep in spec.conda:
        pypi = names.pypi_name(dep.name)
        if pypi is None:
            continue
        try:
            constraint = dep.pep440()
        except ValueError as exc:
            raise RecenvError(f"{spec.path}:{dep.line}: '{dep.raw.strip()}': {exc}") from None
        lines.append(f"{pypi}{constraint}")
        smoke.append(pypi)
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


def make_plan(
    path: Path | str,
    cache_dir: Path | str | None = None,
    backends: Sequence[str] | None = None,
    python_policy: str = "strict",
) -> Plan:
    """What building ``path`` means here (backend, interpreter, requirements) and its cache
    ``.key``, without building anything."""
    spec = load_spec(path)
    spec.path = Path(path).resolve()
    root = cache_root(cache_dir)
    backend = select_backend(backends, [c for c, _ in spec.channels])
    conda_lines, pip_lines, smoke = translate(spec)
    requirements = conda_lines + pip_lines
    pip = pipconfig.load()
    interpreter = None
    parts: dict[str, Any] = {
        "format": KEY_FORMAT,
        "names": names.TABLE_VERSION,
        "platform": [sysconfig.get_platform(), platform.machine()],
        "backend": [backend.name, backend.version()],
        "local": local_sources(spec, requirements),
    }
    if backend.name == "uv":
        interpreter = choose(
            spec.python, discover(root / "interpreters.json"), python_policy, where=str(path)
        )
        parts["interpreter"] = [
            interpreter.implementation,
            interpreter.version_str,
            str(interpreter.path.resolve()),
        ]
        parts["pip"] = pip.fingerprint()
    lock = backend.lock_for(spec)
    parts["spec"] = backend.lock_digest(lock) if lock else spec.digest()
    if lock is not None and backend.name == "uv":
        from pytest_recenv.env.locks import read_lock

        # exact pins from the lock; local paths and pip options still come from the spec
        pins = [f"{n}=={v}" for n, v in read_lock(lock)["packages"].items()]
        requirements = pins + [r for r in pip_lines if r.startswith("-") or " @ " in r]
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    key = hashlib.sha256(blob.encode()).hexdigest()[:20]
    return Plan(
        spec=spec,
        backend=backend,
        key=key,
        parts=parts,
        interpreter=interpreter,
        requirements=requirements,
        pip_requirements=pip_lines,
        smoke=smoke,
        pip=pip,
    )


def _stamped(prefix: Path, key: str) -> dict[str, Any] | None:
    try:
        stamp = json.loads((prefix / STAMP).read_text())
    except (OSError, ValueError):
        return None
    return stamp if stamp.get("key") == key else None


def _from_stamp(
    plan: Plan, prefix: Path, start: float, stamp: dict[str, Any], created: bool
) -> Env:
    return Env(
        python=prefix / stamp["python"],
        prefix=prefix,
        key=plan.key,
        backend=plan.backend.name,
        created=created,
        seconds=time.perf_counter() - start,
        spec_path=plan.spec.path,
        timings=stamp.get("timings", {}),
    )


def _reuse(plan: Plan, prefix: Path, start: float, stamp: dict[str, Any]) -> Env:
    with contextlib.suppress(OSError):
        os.utime(prefix / STAMP)  # last use, for `recenv gc`
    return _from_stamp(plan, prefix, start, stamp, created=False)


def ensure_env(
    path: Path | str,
    cache_dir: Path | str | None = None,
    backends: Sequence[str] | None = None,
    python_policy: str = "strict",
    progress: bool = True,
    lock_timeout: float = 3600.0,
    lease: bool = False,
) -> Env:
    """Reuse the cached environment for ``path`` or build it (once, even across processes).

    ``lease=True``: the returned ``Env`` holds a lease until ``env.release()`` (or the end of a
    ``with env:`` block, or the process), so ``recenv gc`` never removes it under its user."""
    start = time.perf_counter()
    plan = make_plan(path, cache_dir, backends, python_policy)
    root = cache_root(cache_dir)
    if not lease:
        return _ensure(plan, root, start, lock_timeout, progress)
    held = Lease(root, plan.key)  # before looking for the stamp: gc cannot remove it after
    try:
        env = _ensure(plan, root, start, lock_timeout, progress)
    except BaseException:
        held.release()
        raise
    env.lease = held
    return env


def _ensure(plan: Plan, root: Path, start: float, lock_timeout: float, progress: bool) -> Env:
    from filelock import FileLock, Timeout

    from pytest_recenv.env.progress import Progress

    prefix = root / plan.key
    stamp = _stamped(prefix, plan.key)
    if stamp:
        return _reuse(plan, prefix, start, stamp)
    root.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(root / f"{plan.key}.lock"), timeout=lock_timeout):
            stamp = _stamped(prefix, plan.key)
            if stamp:  # another process built it while we waited
                return _reuse(plan, prefix, start, stamp)
            with Progress(
                enabled=progress,
                title=f"recenv: building {plan.spec.path.name} "
                f"with {plan.backend.name} (key {plan.key[:8]})",
            ) as bar:
                plan.backend.build(plan, root, prefix, bar)
    except Timeout:
        raise RecenvError(
            f"waited {lock_timeout:.0f} s for another process building {prefix}; if none is "
            f"running, delete {root / (plan.key + '.lock')}"
        ) from None
    stamp = _stamped(prefix, plan.key)
    if not stamp:
        raise BuildError(f"{prefix}: the build finished without a stamp; this is a bug")
    # the stamp holds the timings the backend just measured
    return _from_stamp(plan, prefix, start, stamp, created=True)


def write_stamp(folder: Path, plan: Plan, python_rel: str, timings: dict[str, float]) -> None:
    """Last step of every build: the stamp makes the folder a valid, reusable environment."""
    data = {
        "key": plan.key,
        "backend": plan.backend.name,
        "python": python_rel,
        "spec_file": str(plan.spec.path),
        "parts": plan.parts,
        "timings": timings,
        "created_at": time.time(),
        "recenv_python": sys.version.split()[0],
    }
    tmp = folder / (STAMP + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, folder / STAMP)
