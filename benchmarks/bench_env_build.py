"""Benchmark: `recenv build` (uv backend) vs `python -m venv` + `pip install`, and warm reuse.

On the generated project's environment.yml (baked with Python 3.11 so the CPU torch wheel from the
user's pip find-links serves), both sides install the same translated requirements with the same
interpreter and the same pip configuration:

* cold, empty package caches: recenv (uv) vs venv+pip, each with a fresh download cache;
* cold env, warm package cache: a second fresh env of each kind (the common CI-with-cache case);
* warm reuse: `recenv build` again (the cached env is found by key), as a CLI call.

recenv's times include its verification (pip check + import smoke test of every declared
package); the venv+pip baseline does no verification, so the install-only time is shown too.
An import check is skipped where a record says the same files were imported before (see
``pytest_recenv/env/verified.py``); ``--verify-records`` says where those records live: ``run``
(default) one empty folder for the whole run, so the first cold build checks every import and
later builds may use its records; ``round``: emptied every round (every cold build checks every
import); ``off``: no records.  Each build prints how many imports it ran and how many came from
records.
Neither side compiles bytecode it does not need: pip compiles every installed file at install,
recenv's smoke test compiles (and writes) what the imports touch.  ``--repeats N`` runs N full
rounds, each from empty uv/pip caches and no cached env, and reports medians plus the load
average before and after each round (the figures are only as quiet as the machine).  Earlier
rounds stay on disk until the end (see ``_make_room``), and the CPU time of each side's process
tree is reported next to its wall time: pip uses about one core, recenv both, so a machine
shared with other jobs narrows the ratio.

    python benchmarks/bench_env_build.py [--env-file environment.yml] [--json out.json]
                                         [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bake(out: Path) -> Path:
    # A private copy of the checkout: the requirement `pytest-recenv @ file://...` is keyed by
    # the folder's content, so edits to the working tree mid-run must not change the key.
    checkout = out.parent / "checkout"
    shutil.copytree(
        ROOT,
        checkout,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", ".nox", "__pycache__", ".pytest_cache", ".ruff_cache", "*.egg-info"
        ),
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "cookiecutter",
            str(checkout),
            "--no-input",
            "-o",
            str(out),
            "python_version=3.11",
            f"recenv_requirement=pytest-recenv @ {checkout.as_uri()}",
        ],
        check=True,
        capture_output=True,
    )
    return next(out.iterdir()) / "environment.yml"


# Of the last measured command: the CPU seconds (user + system) of its process tree, and how
# many cores other processes on the machine kept busy meanwhile, on average.
CPU = {"seconds": 0.0, "others": 0.0}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _machine_busy() -> float:
    """CPU seconds all processes on the machine used so far (/proc/stat; 0 where missing)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    except (OSError, ValueError):
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


class Measured:
    """Wall time, the tree's CPU time and the other processes' load around one step."""

    def __enter__(self) -> Measured:
        self.start, self.cpu, self.busy = time.perf_counter(), _children_cpu(), _machine_busy()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
        CPU["seconds"] = _children_cpu() - self.cpu
        others = _machine_busy() - self.busy - CPU["seconds"]
        CPU["others"] = max(0.0, others / self.seconds) if self.busy else float("nan")


def run(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[float, str]:
    with Measured() as step:
        result = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    seconds = step.seconds
    if result.returncode != 0:
        sys.exit(f"benchmark step failed: {' '.join(cmd)}\n{result.stderr[-3000:]}")
    return seconds, result.stdout


def timed(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> float:
    return run(cmd, env, cwd)[0]


VERIFIED: dict[str, list[str]] = {}  # of the last recenv build: imports run / from records


def recenv_build(env_file: Path, env: dict[str, str]) -> tuple[float, dict[str, float]]:
    seconds, out = run(
        [sys.executable, "-m", "pytest_recenv.env.cli", "build", "-q", str(env_file)], env
    )
    stamp = json.loads((Path(out.strip()) / ".recenv-stamp.json").read_text())
    VERIFIED.clear()
    VERIFIED.update(stamp.get("verified", {}))
    return seconds, stamp["timings"]


def _imports_note() -> str:
    run_now, cached = VERIFIED.get("imported", []), VERIFIED.get("from_records", [])
    return f"{len(run_now)} imports run, {len(cached)} from records"


def venv_pip(
    python: str, requirements: Path, folder: Path, env: dict[str, str], cwd: Path
) -> float:
    with Measured() as step:
        subprocess.run([python, "-m", "venv", str(folder)], check=True, env=env)
        run(
            [str(folder / "bin" / "python"), "-m", "pip", "install", "-q", "-r", str(requirements)],
            env,
            cwd=cwd,
        )
    return step.seconds


ROUND_BYTES = 8 * 1024**3  # one round's envs and caches take ~5 GiB here; keep a margin


def _make_room(tmp: Path, rep: int) -> None:
    """Keep earlier rounds on disk while there is room, and delete them only when there is not.

    Deleting ~100,000 files just before a cold build makes that build's file creation several
    times slower on a journal-less ext4 (the inode allocator skips inodes freed in the last
    minutes: creating 12,000 files took 2.2 s of kernel time normally, 5.4-7.3 s in the minutes
    after deleting 100,000), and the cold ``recenv build`` is the step that would come first.
    """
    if rep == 0 or shutil.disk_usage(tmp).free > ROUND_BYTES:
        return
    for old in sorted(tmp.glob("rep-*")):
        shutil.rmtree(old, ignore_errors=True)
    os.sync()
    print(
        "  (disk short: earlier rounds deleted before this one, which slows its file creation)",
        flush=True,
    )


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 1024**2:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}){mem}, "
        f"{load()} at start"
    )


def load() -> str:
    if not hasattr(os, "getloadavg"):
        return "load average unknown"
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-file", type=Path, help="default: bake the template (Python 3.11)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="full cold/warm rounds, each from empty caches; medians reported",
    )
    parser.add_argument(
        "--cold-only",
        action="store_true",
        help="only the cold builds of each round (no warm-cache builds, no reuse): half the time "
        "on a busy machine",
    )
    parser.add_argument(
        "--verify-records",
        choices=("run", "round", "off"),
        default="run",
        help="import-check records: one empty folder for the run (default), emptied every "
        "round, or off",
    )
    args = parser.parse_args(argv)

    from pytest_recenv.env.builders import make_plan

    with tempfile.TemporaryDirectory(prefix="recenv-bench-") as tmp_name:
        tmp = Path(tmp_name)
        env_file = args.env_file.resolve() if args.env_file else bake(tmp / "baked")
        plan = make_plan(env_file, cache_dir=tmp / "envs-0", backends=["uv"])
        requirements = tmp / "requirements.txt"
        requirements.write_text("\n".join(plan.requirements) + "\n")
        python = str(plan.interpreter.path) if plan.interpreter else sys.executable
        cwd = env_file.parent

        where = machine()
        print(f"machine: {where}")
        print(f"import-check records: --verify-records={args.verify_records}")
        print(f"spec: {env_file} ({len(plan.requirements)} requirements, python {python})")
        runs: dict[str, list[float]] = {}

        def note(name: str, value: float, unit: str = " s") -> None:
            runs.setdefault(name, []).append(value)
            print(f"  {name}: {value:.2f}{unit}", flush=True)

        for rep in range(args.repeats):
            # Every repeat starts both sides from empty download caches and no cached env.
            fresh = tmp / f"rep-{rep}"
            _make_room(tmp, rep)
            records = {"run": tmp / "verified", "round": fresh / "verified", "off": "off"}
            env = {
                **os.environ,
                "RECENV_CACHE_DIR": str(fresh / "envs-1"),
                "UV_CACHE_DIR": str(fresh / "uv-cache"),
                "PIP_CACHE_DIR": str(fresh / "pip-cache"),
                "RECENV_VERIFY_CACHE": str(records[args.verify_records]),
            }
            print(f"repeat {rep + 1}/{args.repeats}: {load()}", flush=True)
            seconds, timings = recenv_build(env_file, env)
            note("recenv_cold", seconds)
            note("recenv_cold_cpu", CPU["seconds"], " CPU-s")
            note("recenv_cold_other_load", CPU["others"], " cores used by other processes")
            note("recenv_cold_install_only", timings.get("venv", 0) + timings.get("install", 0))
            note("recenv_cold_verify", timings.get("verify", 0))
            print(f"  recenv_cold verification: {_imports_note()}", flush=True)
            note("pip_cold", venv_pip(python, requirements, fresh / "venv-1", env, cwd))
            note("pip_cold_cpu", CPU["seconds"], " CPU-s")
            note("pip_cold_other_load", CPU["others"], " cores used by other processes")
            if args.cold_only:
                note("cold_ratio", runs["pip_cold"][-1] / runs["recenv_cold"][-1], "x")
                print(f"  after repeat {rep + 1}: {load()}", flush=True)
                continue
            env["RECENV_CACHE_DIR"] = str(fresh / "envs-2")
            seconds, timings = recenv_build(env_file, env)
            note("recenv_warm_cache", seconds)
            note(
                "recenv_warm_cache_install_only", timings.get("venv", 0) + timings.get("install", 0)
            )
            note("recenv_warm_cache_verify", timings.get("verify", 0))
            print(f"  recenv_warm_cache verification: {_imports_note()}", flush=True)
            note("pip_warm_cache", venv_pip(python, requirements, fresh / "venv-2", env, cwd))
            reuse = [
                timed(
                    [sys.executable, "-m", "pytest_recenv.env.cli", "build", "-q", str(env_file)],
                    env,
                )
                for _ in range(5)
            ]
            note("recenv_reuse_cli_median", statistics.median(reuse))
            note("cold_ratio", runs["pip_cold"][-1] / runs["recenv_cold"][-1], "x")
            print(f"  after repeat {rep + 1}: {load()}", flush=True)
        print("cleaning up the temporary environments ...", flush=True)

    results = {name: statistics.median(values) for name, values in runs.items()}
    ratio_cold = results["pip_cold"] / results["recenv_cold"]
    rows = [
        (
            "cold, empty pkg caches",
            results["recenv_cold"],
            results["recenv_cold_install_only"],
            results["pip_cold"],
            ratio_cold,
        ),
    ]
    if not args.cold_only:
        ratio_warm = results["pip_warm_cache"] / results["recenv_warm_cache"]
        rows.append(
            (
                "new env, warm cache",
                results["recenv_warm_cache"],
                results["recenv_warm_cache_install_only"],
                results["pip_warm_cache"],
                ratio_warm,
            )
        )
        results["ratio_warm_cache"] = ratio_warm
    n = args.repeats
    print(
        f"medians of {n} repeat(s); cold ratios per repeat (cores other processes used during "
        "recenv's cold build): "
        + ", ".join(
            f"{r:.1f}x ({o:.1f})"
            for r, o in zip(runs["cold_ratio"], runs["recenv_cold_other_load"], strict=True)
        )
    )
    print(f"{'case':22} {'recenv':>9} {'(install)':>10} {'venv+pip':>9} {'ratio':>7}")
    for name, ours, install, pip, ratio in rows:
        print(f"{name:22} {ours:8.1f}s {install:9.1f}s {pip:8.1f}s {ratio:6.1f}x")
    cpu_ours, cpu_pip = results["recenv_cold_cpu"], results["pip_cold_cpu"]
    print(
        f"cold CPU time (user + system, whole process tree): recenv {cpu_ours:.1f} s, "
        f"venv+pip {cpu_pip:.1f} s ({cpu_pip / cpu_ours:.1f}x)"
    )
    if not args.cold_only:
        reuse_s = results["recenv_reuse_cli_median"]
        print(f"warm reuse (recenv build, CLI, median of 5): {reuse_s:.2f} s")
    results["ratio_cold"] = ratio_cold
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": where,
                    "end": load(),
                    "verify_records": args.verify_records,
                    **results,
                    "runs": runs,
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
