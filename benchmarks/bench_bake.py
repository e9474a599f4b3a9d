"""How long baking one project takes: the real cookiecutter, defaults and a minimal variant.

Run: python3 noxfile.py -s bench -- bench_bake   (or: python benchmarks/bench_bake.py [ROUNDS])
Target (issue 2): under 2 seconds per bake.
"""

from __future__ import annotations

import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cookiecutter.main import cookiecutter

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "defaults": {},
    "minimal (no serving/docker/ci)": {
        "include_serving": "no",
        "include_docker": "no",
        "ci": "none",
    },
    "cuda12": {"compute": "cuda12"},
}


def bake_seconds(answers: dict, rounds: int) -> list[float]:
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            start = time.perf_counter()
            cookiecutter(str(ROOT), no_input=True, output_dir=f"{tmp}/{i}", extra_context=answers)
            times.append(time.perf_counter() - start)
    return times


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    print(
        f"bake benchmark: {rounds} rounds each, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}"
    )
    print(f"{'variant':34} {'median s':>9} {'min s':>7} {'max s':>7}")
    worst = 0.0
    for name, answers in VARIANTS.items():
        times = bake_seconds(answers, rounds)
        median = statistics.median(times)
        worst = max(worst, median)
        print(f"{name:34} {median:9.3f} {min(times):7.3f} {max(times):7.3f}")
    verdict = "meets" if worst < 2.0 else "MISSES"
    print(f"slowest median {worst:.3f} s: {verdict} the 2 s target")
    return 0 if worst < 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
