"""The backends: uv (translate + one resolution into a relocatable venv) and the conda family.

A backend is usable only where its binary exists (and, for conda, its channels answer); the chain
``micromamba,mamba,conda,uv`` (``$RECENV_BACKENDS`` or ``backends=``) picks the first usable one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from pytest_recenv.env.interpreters import find_uv
from pytest_recenv.env.leftovers import UNFINISHED, clear_before_build, marked
from pytest_recenv.env.locks import conda_lock_path, lock_problems, uv_lock_path
from pytest_recenv.env.names import canonical
from pytest_recenv.env.plan import Built, Plan
from pytest_recenv.env.progress import Progress
from pytest_recenv.env.runner import die_with_parent
from pytest_recenv.env.smoke import verify
from pytest_recenv.env.variants import Resolution, ensure_builds, wanted_builds
from pytest_recenv.env.verified import records_dir
from pytest_recenv.errors import BuildError, RecenvError

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


def _run(step: str, cmd: Sequence[str], folder: Path, **kwargs: Any) -> subprocess.CompletedProcess:
    """One step of a build into ``folder``: it dies with the build, and whatever it starts
    carries the folder's name (see ``leftovers``), so a dead build's stragglers can be found."""
    kwargs["env"] = marked(kwargs.get("env"), folder)
    result = subprocess.run(
        [str(c) for c in cmd],
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=die_with_parent(),
        **kwargs,
    )
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-25:])
        raise BuildError(
            f"{step} failed (exit {result.returncode}): {' '.join(map(str, cmd))}\n{tail}"
        )
    return result


class UvBackend:
    name = "uv"

    def __init__(self) -> None:
        self.exe: str | None = None

    def available(self) -> tuple[bool, str]:
        try:
            self.exe = find_uv()
        except RecenvError as exc:
            return False, str(exc)
        return True, self.exe

    def version(self) -> str:
        return _version(self.exe or "uv")

    def lock_for(self, spec: Any) -> Path | None:
        """The uv lock, only while it is fresh for the spec (a stale one is ignored)."""
        path = uv_lock_path(spec.path)
        return path if path.is_file() and not lock_problems(spec.path) else None

    def lock_digest(self, lock: Path) -> str:
        return _lock_digest(lock)

    def resolve(self, plan: Plan, extra: Sequence[str] = ()) -> Resolution:
        """``uv pip compile`` of the plan's requirements (plus ``extra`` lines), pip config
        passed through: every pinned distribution and the index or find-links it came from."""
        assert plan.interpreter is not None  # make_plan always chooses one for uv
        cmd = [
            self.exe or "uv",
            "pip",
            "compile",
            "--quiet",
            "--no-header",
            "--no-annotate",
            "--emit-index-annotation",
            "--python",
            str(plan.interpreter.path),
            "-",
            *plan.pip.uv_args(),
        ]
        result = subprocess.run(
            cmd,
            input="\n".join([*plan.requirements, *extra]) + "\n",
            text=True,
            capture_output=True,
            check=False,
            cwd=plan.spec.path.parent,
            env={**os.environ, **plan.pip.uv_env()},
        )
        if result.returncode != 0:
            raise RecenvError(
                f"uv pip compile failed (exit {result.returncode}):\n"
                + "\n".join(result.stderr.strip().splitlines()[-20:])
            )
        return _parse_compiled(result.stdout)

    def build(self, plan: Plan, root: Path, prefix: Path, bar: Progress) -> Built:
        """Install and verify into a temporary folder beside ``prefix``; the builder stamps it
        and renames it into place."""
        assert plan.interpreter is not None  # make_plan always chooses one for uv
        requirements = list(plan.requirements)
        wanted = wanted_builds(plan.spec)
        minor = ".".join(map(str, plan.interpreter.version[:2]))  # "3.10", for the fix
        if wanted:
            # Resolve first (seconds, metadata only): a torch of the other kind (a CPU one for a
            # CUDA spec, PyPI's CUDA one for a CPU spec) is refused before gigabytes of wheels
            # are fetched, and a build found by excluding it is what gets installed.
            bar.step(f"resolving (the spec asks for {wanted.words()}: checking the torch build)")
            _, extra = ensure_builds(
                plan.spec, lambda more: self.resolve(plan, more), str(plan.spec.path), python=minor
            )
            requirements += extra
        clear_before_build(root, plan.key, prefix)  # a killed build's leftovers; we hold the lock
        tmp = root / f".tmp-{plan.key}-{os.getpid()}"
        uv = self.exe or "uv"
        env = {**os.environ, **plan.pip.uv_env()}
        env.pop("VIRTUAL_ENV", None)
        timings: dict[str, float] = {}
        try:
            t = time.perf_counter()
            bar.step(f"creating a venv with {plan.interpreter.describe()}")
            _run(
                "uv venv",
                [
                    uv,
                    "venv",
                    "--quiet",
                    "--relocatable",
                    "--no-project",
                    "--python",
                    plan.interpreter.path,
                    tmp,
                ],
                tmp,
                env=env,
                cwd=root,
            )
            timings["venv"] = time.perf_counter() - t
            meta = tmp / ".recenv"
            meta.mkdir()
            reqs = meta / "requirements.in"
            reqs.write_text("\n".join(requirements) + "\n")
            python = tmp / "bin" / "python"
            t = time.perf_counter()
            bar.step(f"resolving and installing {len(requirements)} requirements")
            _run(
                "uv pip install",
                [uv, "pip", "install", "--python", python, "-r", reqs, *plan.pip.uv_args()],
                tmp,
                env=env,
                cwd=plan.spec.path.parent,
            )
            timings["install"] = time.perf_counter() - t
            freeze = _run("uv pip freeze", [uv, "pip", "freeze", "--python", python], tmp, env=env)
            if wanted:  # what was installed, not only what was resolved
                installed = _parse_compiled(freeze.stdout)
                ensure_builds(
                    plan.spec, lambda _: installed, str(plan.spec.path), False, python=minor
                )
            t = time.perf_counter()
            bar.step(f"uv pip check and import smoke test of {len(plan.smoke)} packages")
            checked = verify(
                python,
                plan.smoke,
                [uv, "pip", "check", "--python", python],
                marked(None, tmp),
                records_dir(),
            )
            timings["verify"] = time.perf_counter() - t
            (meta / "import-seconds.json").write_text(json.dumps(checked.imported, indent=1))
            (meta / "freeze.txt").write_text(freeze.stdout)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return Built(tmp, "bin/python", timings, checked.as_dict())


class CondaFamilyBackend:
    """micromamba, mamba or conda: create from the lock if any, then pip without ``-U``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.exe: str | None = None
        self.channels: list[str] = []

    def available(self) -> tuple[bool, str]:
        exe = shutil.which(self.name)
        if exe is None and self.name == "conda" and os.environ.get("CONDA_EXE"):
            exe = os.environ["CONDA_EXE"]
        if exe is None and self.name == "micromamba" and os.environ.get("MAMBA_EXE"):
            exe = os.environ["MAMBA_EXE"]
        if exe is None:
            return False, f"'{self.name}' not found on PATH"
        self.exe = exe
        for channel in self.channels or ["conda-forge"]:
            if channel == "nodefaults":
                continue
            if not _channel_answers(channel):
                return False, f"{self.name} found ({exe}) but channel '{channel}' does not answer"
        return True, exe

    def version(self) -> str:
        return _version(self.exe or self.name)

    def lock_for(self, spec: Any) -> Path | None:
        path = conda_lock_path(spec.path)
        return path if path.is_file() else None

    def lock_digest(self, lock: Path) -> str:
        return _lock_digest(lock)

    def create_command(self, prefix: Path, env_file: Path, lock: Path | None) -> list[str]:
        exe = self.exe or self.name
        if lock is not None:  # an explicit lock: exact URLs, no solve
            return [exe, "create", "--yes", "--prefix", str(prefix), "--file", str(lock)]
        if self.name == "micromamba":
            return [exe, "create", "--yes", "--prefix", str(prefix), "--file", str(env_file)]
        return [exe, "env", "create", "--prefix", str(prefix), "--file", str(env_file)]

    def pip_command(self, prefix: Path, requirements: list[str]) -> list[str] | None:
        """pip runs after conda, by us, without ``-U`` (conda#11559); pip reads its own config."""
        args: list[str] = []
        for line in requirements:
            args += line.split(None, 1) if line.startswith("-") else [line]
        if not args:
            return None
        return [str(prefix / "bin" / "python"), "-m", "pip", "install", "--no-input", *args]

    def conda_only_file(self, plan: Plan, folder: Path) -> Path:
        """The environment file minus its pip section (we run pip ourselves)."""
        from ruamel.yaml import YAML

        yaml = YAML()
        data = yaml.load(plan.spec.path.read_text(encoding="utf-8"))
        data["dependencies"] = [d for d in data["dependencies"] if not isinstance(d, dict)]
        out = folder / f".{plan.key}.environment.yml"
        with out.open("w", encoding="utf-8") as fh:
            yaml.dump(data, fh)
        return out

    def build(self, plan: Plan, root: Path, prefix: Path, bar: Progress) -> Built:
        """Create and verify in place (conda prefixes are not relocatable); the builder's stamp,
        written last, marks it complete, and an unstamped prefix (a killed build) is removed
        before rebuilding."""
        clear_before_build(root, plan.key, prefix)
        # marks the unstamped prefix as recenv's unfinished build, for `recenv gc`
        unfinished = root / f"{plan.key}{UNFINISHED}"
        unfinished.write_text(f"{os.getpid()}\n")
        timings: dict[str, float] = {}
        lock = self.lock_for(plan.spec)
        try:
            t = time.perf_counter()
            env_file = self.conda_only_file(plan, root)
            bar.step(f"{self.name} create" + (f" from {lock.name}" if lock else ""))
            _run(f"{self.name} create", self.create_command(prefix, env_file, lock), prefix)
            cmd = self.pip_command(prefix, plan.pip_requirements)
            if cmd:
                bar.step("pip install (the pip: section, without -U)")
                _run("pip install", cmd, prefix, cwd=plan.spec.path.parent)
            timings["install"] = time.perf_counter() - t
            t = time.perf_counter()
            python = prefix / "bin" / "python"
            checked = verify(
                python,
                plan.smoke,
                [python, "-m", "pip", "check"],
                marked(None, prefix),
                records_dir(),
            )
            timings["verify"] = time.perf_counter() - t
        except BaseException:
            shutil.rmtree(prefix, ignore_errors=True)
            raise
        # the unfinished mark stays until the builder has stamped the prefix
        return Built(prefix, "bin/python", timings, checked.as_dict())


def _parse_compiled(text: str) -> Resolution:
    """Pins of ``uv pip compile``/``freeze`` output, with the ``# from <index>`` annotations."""
    res = Resolution({})
    last = None
    for line in text.splitlines():
        stripped = line.strip()
        pin = _PIN.match(stripped)
        if pin:
            last = canonical(pin.group(1))
            res.pins[last] = pin.group(2)
        elif last and stripped.startswith("# from "):
            res.sources[last] = stripped.removeprefix("# from ").strip()
    return res


@cache
def _version(exe: str) -> str:
    try:
        out = subprocess.run(
            [exe, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.strip().splitlines()[0] if out.strip() else "unknown"


def _lock_digest(lock: Path) -> str:
    import hashlib

    lines = [ln.strip() for ln in lock.read_text(encoding="utf-8").splitlines()]
    body = "\n".join(sorted(ln for ln in lines if ln and not ln.startswith("#")))
    return hashlib.sha256(body.encode()).hexdigest()


def _channel_answers(channel: str, timeout: float = 5.0) -> bool:
    import urllib.request

    url = channel if "://" in channel else f"https://conda.anaconda.org/{channel}"
    try:
        req = urllib.request.Request(f"{url.rstrip('/')}/noarch/repodata.json", method="HEAD")
        with urllib.request.urlopen(req, timeout=timeout):
            return True
    except OSError:
        return False


BACKENDS = ("micromamba", "mamba", "conda", "uv")


def make_backend(name: str) -> UvBackend | CondaFamilyBackend:
    if name == "uv":
        return UvBackend()
    if name in BACKENDS:
        return CondaFamilyBackend(name)
    raise RecenvError(f"unknown backend '{name}'; expected some of {', '.join(BACKENDS)}")


def backend_chain(backends: Sequence[str] | None = None) -> list[str]:
    """The names to try, in order: ``backends`` (``--backend``, ini ``recenv_backends``), else
    ``$RECENV_BACKENDS``, else every backend; spaces around a name do not count."""
    env = os.environ.get("RECENV_BACKENDS", "")
    given = backends or env.split(",")
    chain = [b.strip() for b in given if b.strip()]
    if not chain:
        return list(BACKENDS)
    if not backends and (unknown := [b for b in chain if b not in BACKENDS]):
        # a variable set long ago: say where the name comes from
        raise RecenvError(
            f"unknown backend '{unknown[0]}' (from RECENV_BACKENDS={env!r}); "
            f"expected some of {', '.join(BACKENDS)}"
        )
    return chain


def select_backend(
    backends: Sequence[str] | None = None, channels: Sequence[str] = ()
) -> UvBackend | CondaFamilyBackend:
    """The first usable backend of the chain, or an error listing why each was passed over."""
    reasons = []
    for name in backend_chain(backends):
        backend = make_backend(name)
        if isinstance(backend, CondaFamilyBackend):
            backend.channels = list(channels)
        ok, why = backend.available()
        if ok:
            return backend
        reasons.append(f"{name}: {why}")
    raise RecenvError(
        "no usable backend: "
        + "; ".join(reasons)
        + f" (recenv runs on python {sys.version.split()[0]})"
    )
