"""How much wall time pytest-recenv adds to a test run, against no plugin and a naive conftest.

Generates a suite of 2,000 trivial tests, a quarter marked ``cuda`` or ``faiss_gpu``, and times
three configurations side by side, interleaved, ``--runs`` times each (medians reported):

* ``plugin``: pytest-recenv as installed (entry point), tier-0 NVML probe, markers evaluated;
* ``off``:    the same suite with ``-p no:recenv``;
* ``naive``:  ``-p no:recenv`` plus the conftest many projects carry, which imports torch and calls
  ``torch.cuda.is_available()`` to skip GPU tests.

Targets (issue 3): plugin adds <= 5 % and < 0.2 s over ``off``; ``naive`` costs > 1 s more.

    python benchmarks/bench_plugin_overhead.py [--tests 2000] [--runs 5]
"""

from __future__ import annotations

import argparse
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


def time_run(root: Path, extra: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child): CPU time is the steadier figure on a shared box."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra, str(root)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "RECENV_"))}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed with {proc.returncode}:\n{proc.stdout[-2000:]}")
    return elapsed, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="recenv-bench-"))
    try:
        plain, naive = work / "plain", work / "naive"
        write_suite(plain, args.tests)
        write_suite(naive, args.tests)
        (naive / "conftest.py").write_text(NAIVE_CONFTEST)
        configs = {
            "plugin": (plain, []),
            "off": (plain, ["-p", "no:recenv"]),
            "naive": (naive, ["-p", "no:recenv"]),
        }
        for root, extra in configs.values():  # warm the file cache and .pyc files once
            time_run(root, extra)
        wall: dict[str, list[float]] = {name: [] for name in configs}
        cpu: dict[str, list[float]] = {name: [] for name in configs}
        for _ in range(args.runs):
            for name, (root, extra) in configs.items():
                w, c = time_run(root, extra)
                wall[name].append(w)
                cpu[name].append(c)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    marked = sum(1 for i in range(args.tests) if i % 8 in (0, 4))
    load = os.getloadavg()[0]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}, "
        f"Python {platform.python_version()}, load average {load:.1f} at the end"
    )
    print(f"suite: {args.tests} tests, {marked} marked cuda/faiss_gpu; medians of {args.runs} runs")
    ok = True
    for label, table in (("wall", wall), ("cpu", cpu)):
        med = {name: statistics.median(values) for name, values in table.items()}
        for name, values in table.items():
            spread = f"min {min(values):.3f}, max {max(values):.3f}"
            print(f"  {label} {name:<7} {med[name]:.3f} s  ({spread})")
        plugin_cost = med["plugin"] - med["off"]
        naive_cost = med["naive"] - med["off"]
        print(
            f"  {label} plugin/off = {med['plugin'] / med['off']:.3f} ({plugin_cost:+.3f} s); "
            f"naive/off = {med['naive'] / med['off']:.3f} ({naive_cost:+.3f} s)"
        )
        met = med["plugin"] / med["off"] <= 1.05 and plugin_cost < 0.2 and naive_cost > 1.0
        print(
            f"  {label} targets (plugin <= 5 % and < 0.2 s; naive > 1 s): "
            f"{'met' if met else 'NOT met'}"
        )
        ok = ok and met
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
