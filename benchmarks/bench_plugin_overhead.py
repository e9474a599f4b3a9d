"""How much wall time pytest-recenv adds to a test run, against no plugin and a naive conftest.

Generates a suite of 2,000 trivial tests, a quarter marked ``cuda`` or ``faiss_gpu``, and times
six configurations (two sets of three) side by side, interleaved, ``--runs`` times each (medians
reported):

* ``plugin``: pytest-recenv as installed (entry point): tier-0 probe, markers evaluated;
* ``off``:    the same suite with ``-p no:recenv``;
* ``naive``:  ``-p no:recenv`` plus the conftest many projects carry, which imports torch and calls
  ``torch.cuda.is_available()`` to skip GPU tests.

Every other installed plugin loads in all three (that is what a user's run pays). A second, stricter
set runs with ``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1`` against bare pytest, where other plugins cannot
pad the baseline: ``bare+plugin`` (``-p pytest_recenv.plugin``), ``bare`` and ``bare+skip`` (a
conftest that only adds skip marks to the same 500 tests: the part of the cost any honest skipping
pays, whoever does it).

Targets (issue 3): plugin adds <= 5 % and < 0.2 s over ``off``; ``naive`` costs > 1 s more.

    python benchmarks/bench_plugin_overhead.py [--tests 2000] [--runs 5]
"""

from __future__ import annotations

import argparse
import dataclasses
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

INI = """[pytest]
markers =
    cuda: registered here too so the plugin-off runs do not warn
    faiss_gpu: as above
"""
NAIVE_CONFTEST = """
import pytest
import torch

HAS_CUDA = torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="CUDA not available")
    for item in items:
        if "cuda" in item.keywords or "faiss_gpu" in item.keywords:
            item.add_marker(skip)
"""


SKIP_CONFTEST = NAIVE_CONFTEST.replace("import torch\n", "").replace(
    "torch.cuda.is_available()", "False"
)


@dataclasses.dataclass(frozen=True)
class Config:
    name: str
    suite: str  # which generated copy: plain, naive or skip
    args: tuple[str, ...]
    autoload: bool


CONFIGS = (
    Config("plugin", "plain", (), True),
    Config("off", "plain", ("-p", "no:recenv"), True),
    Config("naive", "naive", ("-p", "no:recenv"), True),
    Config("bare+plugin", "plain", ("-p", "pytest_recenv.plugin"), False),
    Config("bare", "plain", (), False),
    Config("bare+skip", "skip", (), False),
)


def write_suite(root: Path, n_tests: int, per_module: int = 100) -> None:
    root.mkdir(parents=True)
    (root / "pytest.ini").write_text(INI)
    for m in range(0, n_tests, per_module):
        lines = ["import pytest", ""]
        for i in range(m, min(m + per_module, n_tests)):
            if i % 8 == 0:
                lines.append("@pytest.mark.cuda")
            elif i % 8 == 4:
                lines.append("@pytest.mark.faiss_gpu")
            lines += [f"def test_{i}():", f"    assert {i} + 1 == {i + 1}", ""]
        (root / f"test_gen_{m // per_module:03d}.py").write_text("\n".join(lines))


def time_run(root: Path, config: Config) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child): CPU time is the steadier figure on a shared box."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *config.args, str(root)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "RECENV_"))}
    if not config.autoload:
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed with {proc.returncode}:\n{proc.stdout[-2000:]}")
    return elapsed, cpu


def compare(label: str, table: dict[str, list[float]], new: str, base: str) -> str:
    med = {k: statistics.median(v) for k, v in table.items()}
    low = {k: min(v) for k, v in table.items()}
    return (
        f"  {label:<4} {new}/{base} = {med[new] / med[base]:.3f} ({med[new] - med[base]:+.3f} s); "
        f"fastest runs {low[new] / low[base]:.3f} ({low[new] - low[base]:+.3f} s)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="recenv-bench-"))
    wall: dict[str, list[float]] = {c.name: [] for c in CONFIGS}
    cpu: dict[str, list[float]] = {c.name: [] for c in CONFIGS}
    try:
        for suite, conftest in (
            ("plain", None),
            ("naive", NAIVE_CONFTEST),
            ("skip", SKIP_CONFTEST),
        ):
            write_suite(work / suite, args.tests)
            if conftest:
                (work / suite / "conftest.py").write_text(conftest)
        for config in CONFIGS:  # warm the file cache and .pyc files once
            time_run(work / config.suite, config)
        for _ in range(args.runs):
            for config in CONFIGS:
                w, c = time_run(work / config.suite, config)
                wall[config.name].append(w)
                cpu[config.name].append(c)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    marked = sum(1 for i in range(args.tests) if i % 8 in (0, 4))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}, "
        f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f} at the end"
    )
    print(f"suite: {args.tests} tests, {marked} marked cuda/faiss_gpu; medians of {args.runs} runs")
    for label, table in (("wall", wall), ("cpu", cpu)):
        for name, values in table.items():
            print(
                f"  {label:<4} {name:<12} {statistics.median(values):.3f} s  "
                f"(min {min(values):.3f}, max {max(values):.3f})"
            )
    for label, table in (("wall", wall), ("cpu", cpu)):
        print(compare(label, table, "plugin", "off"))
        print(compare(label, table, "naive", "off"))
        print(compare(label, table, "bare+plugin", "bare"))
        print(compare(label, table, "bare+plugin", "bare+skip"))
    med = {k: statistics.median(v) for k, v in wall.items()}
    ok = (
        med["plugin"] / med["off"] <= 1.05
        and med["plugin"] - med["off"] < 0.2
        and med["naive"] - med["off"] > 1.0
    )
    print(
        "targets on wall medians vs -p no:recenv (plugin <= 5 % and < 0.2 s; naive > 1 s): "
        + ("met" if ok else "NOT met")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
