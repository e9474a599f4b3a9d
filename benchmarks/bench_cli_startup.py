"""Benchmark: how long `recenv --help` takes to start, against a bare `python -c pass`.

`recenv` runs as a pre-commit hook and in every `recenv run -- ...`, so its start-up is paid on
every commit and every command. The target is under 0.15 s for `recenv --help`; what keeps it
there is that the command line imports neither pytest nor the builders until a subcommand needs
them (tests/plugin/test_layout.py checks the first).

    python benchmarks/bench_cli_startup.py [--repeats 20] [--json out.json]

Each command runs ``--repeats`` times (after one warm-up run, so the page cache is warm); the
median and the fastest run are reported, with the load average, since a shared machine
stretches every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 0.15


def timed(cmd: list[str], repeats: int) -> list[float]:
    subprocess.run(cmd, capture_output=True, check=True)  # warm-up
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        out.append(time.perf_counter() - start)
    return out


def loaded_modules() -> list[str]:
    code = (
        "import contextlib, io, json, sys\n"
        "from pytest_recenv.env.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    commands = {"python -c pass": [sys.executable, "-c", "pass"]}
    script = Path(sys.executable).with_name("recenv")
    if script.exists():
        commands["recenv --help"] = [str(script), "--help"]
    elif shutil.which("recenv"):
        commands["recenv --help"] = [str(shutil.which("recenv")), "--help"]
    commands["python -m pytest_recenv.env.cli --help"] = [
        sys.executable,
        "-m",
        "pytest_recenv.env.cli",
        "--help",
    ]
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(f"python {sys.version.split()[0]} ({sys.executable}); load average {load}")
    results: dict[str, dict[str, float]] = {}
    for name, cmd in commands.items():
        runs = timed(cmd, args.repeats)
        results[name] = {"median_s": statistics.median(runs), "min_s": min(runs)}
        print(f"{name:42} median {statistics.median(runs):.3f} s  fastest {min(runs):.3f} s")
    modules = loaded_modules()
    ours = sorted(m for m in modules if m.startswith("pytest_recenv"))
    heavy = [m for m in ("pytest", "_pytest", "filelock", "packaging", "ruamel") if m in modules]
    print(f"modules loaded by --help: {len(modules)}; pytest_recenv: {', '.join(ours)}")
    print(f"heavy modules loaded: {', '.join(heavy) or 'none'}")
    help_s = results.get("recenv --help", results["python -m pytest_recenv.env.cli --help"])
    verdict = "within" if help_s["median_s"] < TARGET_S else "OVER"
    print(f"recenv --help median {help_s['median_s']:.3f} s: {verdict} the {TARGET_S} s target")
    if args.json:
        args.json.write_text(
            json.dumps({"load": load, "results": results, "heavy": heavy}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
