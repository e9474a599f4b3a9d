"""The backends: uv (translate + one resolution into a relocatable venv) and the conda family.

A backend is usable only where its binary exists (and, for conda, its channels answer); the chain
``micromamba,mamba,conda,uv`` (``$RECENV_BACKENDS`` or ``backends=``) picks the first usable one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_recenv.spec import RecenvError

if TYPE_CHECKING:
    from pytest_recenv.builders import Plan
    from pytest_recenv.progress import Progress

# One long-lived worker per core: reads a distribution name per line, imports its modules and
# answers one JSON line.  Answers go out on a private copy of stdout, and fd 1 is pointed at
# stderr, so whatever an imported package prints cannot corrupt the protocol.
SMOKE = r"""
import importlib, importlib.metadata as md, json, os, sys, time
answers = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
SKIP = {"test", "tests", "docs", "examples", "benchmarks", "testing", "setup", "conftest"}
def check(dist):
    try:
        d = md.distribution(dist)
    except md.PackageNotFoundError:
        return ["not installed"]
    top = d.read_text("top_level.txt")
    mods = set(top.split()) if top else set()
    if not mods:
        for f in d.files or []:
            p = f.parts
            if not p or p[0] in ("..", "__pycache__") or p[0].endswith((".dist-info", ".data")):
                continue
            if len(p) == 1 and p[0].endswith(".py"):
                mods.add(p[0][:-3])
            elif len(p) == 2 and p[1] == "__init__.py":
                mods.add(p[0])
    mods = {m for m in mods if m and m not in SKIP and "/" not in m}
    public = sorted(m for m in mods if not m.startswith("_")) or sorted(mods)
    errors = []
    for m in public:
        try:
            importlib.import_module(m)
        except BaseException as e:
            first = (str(e).splitlines() or [""])[0]
            errors.append(f"import {m}: {type(e).__name__}: {first}")
    return errors
for line in sys.stdin:
    if line.strip():
        start = time.perf_counter()
        errors = check(line.strip())
        answers.write(json.dumps([line.strip(), errors, time.perf_counter() - start]) + "\n")
        answers.flush()
"""


class BuildError(RecenvError):
    """A backend ran and failed; the message carries the failing step and its output tail."""


def _run(step: str, cmd: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False,
                            **kwargs)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-25:])
        raise BuildError(f"{step} failed (exit {result.returncode}): "
                         f"{' '.join(map(str, cmd))}\n{tail}")
    return result


def _import_weights(prefix: Path, dists: list[str]) -> dict[str, int]:
    """Bytes of Python source behind each distribution: its own files plus those of everything
    it requires, transitively (from RECORD and Requires-Dist).  A cheap stand-in for how long
    its first import takes, bytecode compilation included: ``onnxscript`` is small itself but
    pulls in ``onnx`` and ``onnx_ir``."""
    import importlib.metadata as md

    sites = [str(p) for p in [*prefix.glob("lib/python3*/site-packages"),
                              prefix / "Lib" / "site-packages"] if p.is_dir()]
    own: dict[str, int] = {}
    needs: dict[str, list[str]] = {}
    for found in md.distributions(path=sites):
        try:
            name = _norm(found.metadata["Name"] or "")
            own[name] = sum(f.size or 0 for f in found.files or [] if f.suffix == ".py")
            needs[name] = [_norm(m.group()) for r in found.requires or []
                           if "extra ==" not in r and (m := _REQ_NAME.match(r))]
        except (OSError, ValueError):
            continue
    weights: dict[str, int] = {}
    for dist in dists:
        seen: set[str] = set()
        stack = [_norm(dist)]
        while stack:
            name = stack.pop()
            if name not in seen and name in own:
                seen.add(name)
                stack += needs.get(name, [])
        weights[dist] = sum(own[name] for name in seen)
    return weights


_REQ_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def smoke_test(python: Path, dists: list[str],
               env: dict[str, str] | None = None) -> dict[str, float]:
    """Import every declared distribution's modules in the env; one report of all failures.

    Returns the seconds each package took to import, in the order they finished."""
    if not dists:
        return {}
    # Let the imports write bytecode into the env (pip does so at install; uv does not), so
    # later runs of the env start faster even where the user sets PYTHONDONTWRITEBYTECODE.
    env = {k: v for k, v in (os.environ if env is None else env).items()
           if k != "PYTHONDONTWRITEBYTECODE"}
    # Imports are CPU-bound and very uneven (torch or onnxscript take seconds, most packages a
    # tenth of that): one worker per core pulls the next package from a shared queue, heaviest
    # first, so the slow ones start at once and the small ones fill the gaps.  A worker keeps
    # what it imported, so a package whose dependencies are already loaded there is cheap.
    sizes = _import_weights(python.parent.parent, dists)
    todo = sorted(dict.fromkeys(dists), key=lambda d: -sizes.get(d, 0))
    report: dict[str, list[str]] = {}
    seconds: dict[str, float] = {}
    lock = threading.Lock()
    procs: list[subprocess.Popen] = []
    problems: list[BaseException] = []

    def take() -> str | None:
        with lock:
            return todo.pop(0) if todo else None

    def work() -> None:
        try:
            while (dist := take()) is not None:
                with tempfile.TemporaryFile("w+") as err:
                    proc = subprocess.Popen([str(python), "-c", SMOKE], env=env, text=True,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=err)
                    with lock:
                        procs.append(proc)
                    dist = _feed(proc, dist, take, report, seconds)
                    if dist is not None:  # the interpreter died while importing it
                        err.seek(0)
                        tail = " | ".join(err.read().strip().splitlines()[-5:])
                        report[dist] = [f"the interpreter crashed (exit {proc.returncode}) "
                                        f"while importing it: {tail}"]
        except BaseException as exc:  # re-raised in the calling thread
            problems.append(exc)

    threads = [threading.Thread(target=work, daemon=True)
               for _ in range(max(1, min(os.cpu_count() or 1, 4, len(todo))))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:  # normally a no-op; on Ctrl-C no worker may start another interpreter
        with lock:
            todo.clear()
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
    if problems:
        raise problems[0]
    failed = {d: errs for d, errs in report.items() if errs}
    if failed:
        lines = [f"  {dist}: {'; '.join(errs)}" for dist, errs in sorted(failed.items())]
        raise BuildError(f"import smoke test failed for {len(failed)} of {len(dists)} declared "
                         "packages:\n" + "\n".join(lines))
    return seconds


def _feed(proc: subprocess.Popen, dist: str | None, take: Any, report: dict[str, list[str]],
          seconds: dict[str, float]) -> str | None:
    """Hand ``proc`` one package at a time until the queue is empty; returns the package it was
    importing if it died (None when it finished them all)."""
    assert proc.stdin is not None and proc.stdout is not None
    try:
        while dist is not None:
            try:
                proc.stdin.write(dist + "\n")
                proc.stdin.flush()
            except BrokenPipeError:
                line = ""
            else:
                line = proc.stdout.readline()
            if not line:
                proc.wait()
                return dist
            name, errors, took = json.loads(line)
            report[name], seconds[name] = errors, round(took, 3)
            dist = take()
    finally:
        if proc.poll() is None:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
            proc.wait()
    return None


class UvBackend:
    name = "uv"

    def __init__(self) -> None:
        self.exe: str | None = None

    def available(self) -> tuple[bool, str]:
        from pytest_recenv.interpreters import find_uv

        try:
            self.exe = find_uv()
        except RecenvError as exc:
            return False, str(exc)
        return True, self.exe

    def version(self) -> str:
        return _version(self.exe or "uv")

    def lock_for(self, spec: Any) -> Path | None:
        """The uv lock, only while it is fresh for the spec (a stale one is ignored)."""
        from pytest_recenv.locks import lock_problems, uv_lock_path

        path = uv_lock_path(spec.path)
        return path if path.is_file() and not lock_problems(spec.path) else None

    def lock_digest(self, lock: Path) -> str:
        return _lock_digest(lock)

    def build(self, plan: Plan, root: Path, prefix: Path, bar: Progress) -> dict[str, float]:
        from pytest_recenv.builders import write_stamp

        assert plan.interpreter is not None  # make_plan always chooses one for uv
        for stale in root.glob(f".tmp-{plan.key}-*"):  # left by a killed build; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        if prefix.exists():
            shutil.rmtree(prefix)
        tmp = root / f".tmp-{plan.key}-{os.getpid()}"
        uv = self.exe or "uv"
        env = {**os.environ, **plan.pip.uv_env()}
        env.pop("VIRTUAL_ENV", None)
        timings: dict[str, float] = {}
        try:
            t = time.perf_counter()
            bar.step(f"creating a venv with {plan.interpreter.describe()}")
            _run("uv venv", [uv, "venv", "--quiet", "--relocatable", "--no-project",
                             "--python", plan.interpreter.path, tmp], env=env, cwd=root)
            timings["venv"] = time.perf_counter() - t
            meta = tmp / ".recenv"
            meta.mkdir()
            reqs = meta / "requirements.in"
            reqs.write_text("\n".join(plan.requirements) + "\n")
            python = tmp / "bin" / "python"
            t = time.perf_counter()
            bar.step(f"resolving and installing {len(plan.requirements)} requirements")
            _run("uv pip install", [uv, "pip", "install", "--python", python, "-r", reqs,
                                    *plan.pip.uv_args()], env=env, cwd=plan.spec.path.parent)
            timings["install"] = time.perf_counter() - t
            t = time.perf_counter()
            bar.step("pip check")
            _run("pip check", [uv, "pip", "check", "--python", python], env=env)
            bar.step(f"import smoke test of {len(plan.smoke)} packages")
            imports = smoke_test(python, plan.smoke)
            timings["verify"] = time.perf_counter() - t
            (meta / "import-seconds.json").write_text(json.dumps(imports, indent=1))
            freeze = _run("uv pip freeze", [uv, "pip", "freeze", "--python", python], env=env)
            (meta / "freeze.txt").write_text(freeze.stdout)
            write_stamp(tmp, plan, "bin/python", timings)
            os.rename(tmp, prefix)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return timings


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
        from pytest_recenv.locks import conda_lock_path

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

    def build(self, plan: Plan, root: Path, prefix: Path, bar: Progress) -> dict[str, float]:
        from pytest_recenv.builders import write_stamp

        # conda prefixes are not relocatable: build in place; the stamp, written last, marks it
        # complete, and an unstamped prefix (a killed build) is removed before rebuilding.
        if prefix.exists():
            shutil.rmtree(prefix)
        timings: dict[str, float] = {}
        lock = self.lock_for(plan.spec)
        try:
            t = time.perf_counter()
            env_file = self.conda_only_file(plan, root)
            bar.step(f"{self.name} create" + (f" from {lock.name}" if lock else ""))
            _run(f"{self.name} create", self.create_command(prefix, env_file, lock))
            cmd = self.pip_command(prefix, plan.pip_requirements)
            if cmd:
                bar.step("pip install (the pip: section, without -U)")
                _run("pip install", cmd, cwd=plan.spec.path.parent)
            timings["install"] = time.perf_counter() - t
            t = time.perf_counter()
            python = prefix / "bin" / "python"
            _run("pip check", [python, "-m", "pip", "check"])
            smoke_test(python, plan.smoke)
            timings["verify"] = time.perf_counter() - t
            write_stamp(prefix, plan, "bin/python", timings)
        except BaseException:
            shutil.rmtree(prefix, ignore_errors=True)
            raise
        return timings


@cache
def _version(exe: str) -> str:
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30,
                             check=False).stdout
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
    if backends:
        return list(backends)
    env = os.environ.get("RECENV_BACKENDS")
    return [b.strip() for b in env.split(",") if b.strip()] if env else list(BACKENDS)


def select_backend(backends: Sequence[str] | None = None,
                   channels: Sequence[str] = ()) -> UvBackend | CondaFamilyBackend:
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
    raise RecenvError("no usable backend: " + "; ".join(reasons)
                      + f" (recenv runs on python {sys.version.split()[0]})")
