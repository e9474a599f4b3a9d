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

from filelock import FileLock, Timeout

from pytest_recenv.env import names, pipconfig
from pytest_recenv.env.backends import select_backend
from pytest_recenv.env.interpreters import choose, discover
from pytest_recenv.env.lease import Lease
from pytest_recenv.env.leftovers import UNFINISHED
from pytest_recenv.env.locks import LOCK_FORMAT, read_lock, uv_lock_path
from pytest_recenv.env.plan import KEY_FORMAT, Built, Plan, local_sources, translate
from pytest_recenv.env.progress import Progress
from pytest_recenv.env.spec import load_spec
from pytest_recenv.env.variants import ensure_builds
from pytest_recenv.errors import RecenvError

STAMP = ".recenv-stamp.json"


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
    verified: dict[str, Any] = field(default_factory=dict)  # what the build's verification covered
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
    conda_lines, pip_lines, smoke = translate(spec, backend.name == "uv", display=str(path))
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
    # anything else (a hand edit, a truncated copy) is an unfinished build: built over
    usable = isinstance(stamp, dict) and stamp.get("key") == key
    return stamp if usable and isinstance(stamp.get("python"), str) else None


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
        verified=stamp.get("verified", {}),
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
    prefix = root / plan.key
    stamp = _stamped(prefix, plan.key)
    if stamp:
        return _reuse(plan, prefix, start, stamp)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # RECENV_CACHE_DIR at a file, say: the user's to fix
        found = {FileExistsError: "a file there", NotADirectoryError: "a file in its path"}
        raise RecenvError(
            f"expected a folder for the environment cache at {root}, found "
            f"{found.get(type(exc), exc.strerror or exc)}; point RECENV_CACHE_DIR at a writable "
            "folder"
        ) from None
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
                built = plan.backend.build(plan, root, prefix, bar)
            stamp = _install(built, plan, root, prefix)
    except Timeout:
        raise RecenvError(
            f"waited {lock_timeout:.0f} s for another process building {prefix}; if none is "
            f"running, delete {root / (plan.key + '.lock')}"
        ) from None
    # the stamp holds the timings the backend just measured
    return _from_stamp(plan, prefix, start, stamp, created=True)


def _install(built: Built, plan: Plan, root: Path, prefix: Path) -> dict[str, Any]:
    """Stamp what the backend built and put it in place; under the build lock.

    The stamp is written last inside the folder (a folder without one is never reused), then a
    folder built beside its place is renamed into it, and the unfinished-build mark of a backend
    that builds in place (conda) goes."""
    try:
        stamp = write_stamp(built.folder, plan, built.python, built.timings, built.verified)
        if built.folder != prefix:
            os.rename(built.folder, prefix)
    except BaseException:
        shutil.rmtree(built.folder, ignore_errors=True)
        raise
    with contextlib.suppress(FileNotFoundError):
        (root / f"{plan.key}{UNFINISHED}").unlink()
    return stamp


def write_stamp(
    folder: Path,
    plan: Plan,
    python_rel: str,
    timings: dict[str, float],
    verified: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Last step of every build: the stamp makes the folder a valid, reusable environment."""
    data = {
        "key": plan.key,
        "backend": plan.backend.name,
        "python": python_rel,
        "spec_file": str(plan.spec.path),
        "parts": plan.parts,
        "timings": timings,
        "verified": verified or {},
        "created_at": time.time(),
        "recenv_python": sys.version.split()[0],
    }
    tmp = folder / (STAMP + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, folder / STAMP)
    return data


def write_uv_lock(
    env_file: Path, backends: list[str] | None = None, python_policy: str = "strict"
) -> Path:
    """Resolve the spec with ``uv pip compile`` (pip config passed through) and write the lock."""
    plan = make_plan(env_file, backends=backends or ["uv"], python_policy=python_policy)
    if plan.backend.name != "uv" or plan.interpreter is None:
        raise RecenvError(f"recenv lock writes uv locks; for {plan.backend.name} use conda-lock")
    # a CUDA spec must not lock a CPU torch/faiss, nor a CPU spec a CUDA torch (see variants.py)
    resolution, _ = ensure_builds(
        plan.spec,
        lambda extra: plan.backend.resolve(plan, extra),
        str(env_file),
        python=".".join(map(str, plan.interpreter.version[:2])),
    )
    data = {
        "format": LOCK_FORMAT,
        "backend": "uv",
        "spec_hash": plan.spec.digest(),
        "platform": sysconfig.get_platform(),
        "python": plan.interpreter.version_str,
        "packages": dict(sorted(resolution.pins.items())),
    }
    out = uv_lock_path(plan.spec.path)
    out.write_text(json.dumps(data, indent=2) + "\n")
    return out
