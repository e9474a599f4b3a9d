"""The verification run after every build: ``pip check``, then does each declared distribution
import?  Both are reported together, so one failed build names every problem.

Imports: heaviest distributions first, one long-lived worker interpreter per core, a crash
reported by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_recenv.env import verified
from pytest_recenv.env.runner import die_with_parent
from pytest_recenv.errors import BuildError

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


# What ``uv pip check`` says around the problems themselves (pip prints only the problems).
_CHECK_CHATTER = re.compile(r"^(Using Python .* environment at|Checked \d+ packages?|Found \d+ )")


@dataclass
class Verification:
    """What a build's verification covered: the dependency check that passed, the imports run
    now (seconds each) and the ones a record of the same files vouched for (see ``verified``)."""

    dependency_check: str
    imported: dict[str, float] = field(default_factory=dict)
    from_records: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dependency_check": self.dependency_check,
            "imported": sorted(self.imported),
            "from_records": sorted(self.from_records),
        }


def describe(verified: dict[str, Any]) -> str:
    """``uv pip check passed; 25 imports: 5 run now, 20 from records of the same files``, from
    :meth:`Verification.as_dict` (what a stamp holds)."""
    if not verified:
        return "verification not recorded (an environment built by an older recenv)"
    now, cached = verified.get("imported", []), verified.get("from_records", [])
    total = len(now) + len(cached)
    return (
        f"{verified.get('dependency_check', 'dependency check')} passed; {total} "
        f"import{'s' * (total != 1)}: {len(now)} run now, {len(cached)} from records of the "
        "same files"
    )


def verify(
    python: Path,
    dists: list[str],
    check: list[str | Path],
    env: dict[str, str] | None = None,
    records: Path | None = None,
) -> Verification:
    """Run ``check`` (``uv pip check --python ...`` or ``python -m pip check``) and, at the same
    time, the import smoke test, and raise one ``BuildError`` naming every broken requirement and
    every failed import.  ``records``: where import-check records are kept (``verified``)."""
    shown = [Path(check[0]).name, *(c for c in map(str, check[1:]) if c != "--python")]
    shown = [c for c in shown if c != str(python)]  # "uv pip check", "python -m pip check"
    # the check takes a fraction of a second beside the imports: it runs while they do
    checker = subprocess.Popen(
        [str(c) for c in check],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=die_with_parent(),  # a kill -9 of the build ends the check too
    )
    problems = []
    try:
        try:
            seconds, from_records = check_imports(python, dists, env, records)
        except BuildError as exc:
            problems.append(str(exc))
            seconds, from_records = {}, []
    finally:
        out, err = checker.communicate()
    if checker.returncode != 0:
        said = [ln.strip() for ln in (out + err).splitlines() if ln.strip()]
        found = [ln for ln in said if not _CHECK_CHATTER.match(ln)] or said[-25:]
        problems.insert(
            0,
            f"dependency check failed ({' '.join(shown)}, exit {checker.returncode}):\n"
            + "\n".join(f"  {ln}" for ln in found),
        )
    if problems:
        raise BuildError("\n".join(problems))
    return Verification(" ".join(shown), seconds, from_records)


def check_imports(
    python: Path, dists: list[str], env: dict[str, str] | None, records: Path | None
) -> tuple[dict[str, float], list[str]]:
    """The import smoke test, minus the distributions a record vouches for; records what passed.

    Returns (seconds of each import run, distributions taken from records)."""
    prefix = python.parent.parent
    installed = verified.scan(prefix)
    marks = (
        verified.fingerprints(python, installed, dists, dict(os.environ if env is None else env))
        if records is not None
        else {}
    )
    cached = [d for d in dict.fromkeys(dists) if d in marks and verified.known(records, marks[d])]
    todo = [d for d in dists if d not in cached]
    seconds = smoke_test(python, todo, env, installed=installed, declared=len(set(dists)))
    for dist, took in seconds.items():  # smoke_test raised if any failed
        if dist in marks:
            verified.remember(records, marks[dist], dist, took)
    return seconds, cached


def _import_weights(
    prefix: Path, dists: list[str], installed: dict[str, verified.Installed] | None = None
) -> dict[str, int]:
    """Bytes of Python source behind each distribution: its own files plus those of everything
    it requires, transitively (from RECORD and Requires-Dist).  A cheap stand-in for how long
    its first import takes, bytecode compilation included: ``onnxscript`` is small itself but
    pulls in ``onnx`` and ``onnx_ir``.  A weight only orders the queue."""
    found = verified.scan(prefix) if installed is None else installed
    return {
        dist: sum(found[name].py_bytes for name in verified.closure(found, dist)) for dist in dists
    }


def smoke_test(
    python: Path,
    dists: list[str],
    env: dict[str, str] | None = None,
    installed: dict[str, verified.Installed] | None = None,
    declared: int | None = None,
) -> dict[str, float]:
    """Import every declared distribution's modules in the env; one report of all failures.

    ``declared``: how many the spec declares, where records vouched for the rest (the report
    says "1 of <declared>"). Returns the seconds each package took to import, in the order
    they finished."""
    if not dists:
        return {}
    # Let the imports write bytecode into the env (pip does so at install; uv does not), so
    # later runs of the env start faster even where the user sets PYTHONDONTWRITEBYTECODE.
    env = {
        k: v
        for k, v in (os.environ if env is None else env).items()
        if k != "PYTHONDONTWRITEBYTECODE"
    }
    # Imports are CPU-bound and very uneven (torch or onnxscript take seconds, most packages a
    # tenth of that): one worker per core pulls the next package from a shared queue, heaviest
    # first, so the slow ones start at once and the small ones fill the gaps.  A worker keeps
    # what it imported, so a package whose dependencies are already loaded there is cheap.
    sizes = _import_weights(python.parent.parent, dists, installed)
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
                # dies with this thread, which waits for it (so: with the build); leaving the
                # with closes its pipes and reaps it
                with (
                    tempfile.TemporaryFile("w+") as err,
                    subprocess.Popen(
                        [str(python), "-c", SMOKE],
                        env=env,
                        preexec_fn=die_with_parent(),
                        text=True,
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=err,
                    ) as proc,
                ):
                    with lock:
                        procs.append(proc)
                    dist = _feed(proc, dist, take, report, seconds)
                    if dist is not None:  # the interpreter died while importing it
                        err.seek(0)
                        tail = " | ".join(err.read().strip().splitlines()[-5:])
                        report[dist] = [
                            f"the interpreter crashed (exit {proc.returncode}) "
                            f"while importing it: {tail}"
                        ]
        except BaseException as exc:  # re-raised in the calling thread
            problems.append(exc)

    threads = [
        threading.Thread(target=work, daemon=True)
        for _ in range(max(1, min(_usable_cores(), 4, len(todo))))
    ]
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
        raise BuildError(
            f"import smoke test failed for {len(failed)} of {declared or len(dists)} declared "
            "packages:\n" + "\n".join(lines)
        )
    return seconds


def _usable_cores() -> int:
    """Cores this process may run on (a CI container pinned to 2 of 64 gets 2 workers)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def _feed(
    proc: subprocess.Popen,
    dist: str | None,
    take: Any,
    report: dict[str, list[str]],
    seconds: dict[str, float],
) -> str | None:
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
