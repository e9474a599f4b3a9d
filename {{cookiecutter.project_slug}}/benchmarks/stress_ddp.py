"""Stress test: two-process (gloo) training, many times over, on a busy machine.

A process group has threads of its own (gloo's workers and its transport loop), and how a
rank leaves them at exit is only tested by exiting, many times, with the scheduler working
against us. This script starts ``--hogs`` busy-looping processes, then launches the same
``torchrun --nproc-per-node 2 -m {{ cookiecutter.package_name }} train --device cpu`` run as
``tests/test_training.py`` ``--runs`` times, one after the other. A run passes when torchrun
exits 0 and rank 0 wrote ``metrics.json``; for a failed run it prints each failed rank's exit
code (``-6`` is SIGABRT) and the tail of every rank's stderr.

Run: ``python benchmarks/stress_ddp.py --runs 30 --hogs 2`` (exit status 1 on any failure).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

# The model and data of test_two_gloo_processes_train_the_same_model_as_one.
TRAIN_ARGS = [
    "--n-users", "150", "--n-items", "60", "--events-per-user", "12", "--batch-size", "256",
    "--negatives", "full", "--device", "cpu", "--no-progress", "--deterministic",
]  # fmt: skip

# torchrun's failure summary: "rank      : 1 (local_rank: 1)" then "exitcode  : -6 (pid: 123)".
_FAILED_RANK = re.compile(r"rank\s*:\s*(\d+)\s*\(local_rank:\s*\d+\)\s*exitcode\s*:\s*(-?\d+)")


@dataclass
class RunResult:
    """One torchrun launch: whether it passed and, if not, what each rank left behind."""

    index: int
    seconds: float
    returncode: int  # torchrun's own exit status; -9 when this script killed a hung run
    metrics_written: bool
    rank_exitcodes: dict[int, int] = field(default_factory=dict)  # failed ranks only
    rank_stderr: dict[int, str] = field(default_factory=dict)  # tail of each rank's stderr
    launcher_stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.metrics_written


def exit_code_name(code: int) -> str:
    """``-6`` -> ``-6 (SIGABRT)``: torchrun reports a signal as its negated number."""
    if code < 0:
        try:
            return f"{code} ({signal.Signals(-code).name})"
        except ValueError:
            pass
    return str(code)


def start_hogs(n: int) -> list[subprocess.Popen[bytes]]:
    """``n`` processes that each keep one core busy until killed."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for p in processes:
        p.kill()
    for p in processes:
        p.wait()


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def run_once(
    index: int, workdir: Path, epochs: int, nproc: int, timeout: float, tail: int = 15
) -> RunResult:
    """One ``torchrun`` launch of the training; every rank's stderr goes to a file of its own."""
    logs = workdir / f"logs-{index}"
    runs = workdir / "runs"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        "--nproc-per-node", str(nproc), "--log-dir", str(logs), "--redirects", "3",
        "-m", "{{ cookiecutter.package_name }}", "train", *TRAIN_ARGS, "--epochs", str(epochs),
        "--runs-dir", str(runs), "--run-id", f"run-{index}",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    # A session of its own, so a hung run can be killed together with its ranks.
    launcher = subprocess.Popen(
        cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        _, launcher_err = launcher.communicate(timeout=timeout)
        returncode = launcher.returncode
    except subprocess.TimeoutExpired:
        os.killpg(launcher.pid, signal.SIGKILL)
        _, launcher_err = launcher.communicate()
        returncode = -signal.SIGKILL
        launcher_err += f"\nstress_ddp: killed after {timeout:.0f} s (hung)"
    result = RunResult(
        index=index,
        seconds=time.perf_counter() - start,
        returncode=returncode,
        metrics_written=(runs / f"run-{index}" / "metrics.json").is_file(),
        launcher_stderr=_tail(launcher_err, tail),
    )
    result.rank_exitcodes = {int(r): int(c) for r, c in _FAILED_RANK.findall(launcher_err)}
    # torchrun writes <log-dir>/<job id>/attempt_<n>/<local rank>/stderr.log.
    for log in sorted(logs.rglob("stderr.log")):
        if text := log.read_text(encoding="utf-8", errors="replace").strip():
            result.rank_stderr[int(log.parent.name)] = _tail(text, tail)
    return result


def report(result: RunResult, runs: int) -> str:
    """One line for a passing run; exit codes and stderr tails for a failing one."""
    head = f"run {result.index + 1}/{runs}: "
    if result.ok:
        return head + f"ok ({result.seconds:.1f} s)"
    lines = [head + f"FAILED torchrun rc={result.returncode}, metrics.json "
             f"{'written' if result.metrics_written else 'missing'} ({result.seconds:.1f} s)"]  # fmt: skip
    for rank, code in sorted(result.rank_exitcodes.items()):
        lines.append(f"  rank {rank} exit code {exit_code_name(code)}")
    for rank, text in sorted(result.rank_stderr.items()):
        lines.append(f"  rank {rank} stderr (tail):\n    " + text.replace("\n", "\n    "))
    if not result.rank_exitcodes:
        lines.append(
            "  torchrun stderr (tail):\n    " + result.launcher_stderr.replace("\n", "\n    ")
        )
    return "\n".join(lines)


def stress(
    runs: int, hogs: int, epochs: int = 2, nproc: int = 2, timeout: float = 600.0
) -> list[RunResult]:
    """Launch the training ``runs`` times while ``hogs`` busy loops compete for the CPUs."""
    results: list[RunResult] = []
    busy = start_hogs(hogs)
    try:
        with tempfile.TemporaryDirectory(prefix="stress-ddp-") as tmp:
            for i in range(runs):
                result = run_once(i, Path(tmp), epochs, nproc, timeout)
                print(report(result, runs), flush=True)
                results.append(result)
    finally:
        stop(busy)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="training launches (default 30)")
    parser.add_argument("--hogs", type=int, default=2, help="busy-loop processes (default 2)")
    parser.add_argument("--nproc", type=int, default=2, help="ranks per launch (default 2)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per launch (default 2)")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds before a run counts as hung"
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.hogs < 0 or args.nproc < 1 or args.epochs < 1:
        parser.error("--runs, --nproc and --epochs must be >= 1 and --hogs >= 0")

    results = stress(args.runs, args.hogs, args.epochs, args.nproc, args.timeout)
    failures = [r for r in results if not r.ok]
    print(f"failures: {len(failures)}/{len(results)} (hogs={args.hogs}, nproc={args.nproc}, "
          f"cpus={os.cpu_count()})")  # fmt: skip
    if args.json:
        summary = {
            "runs": len(results),
            "failures": len(failures),
            "hogs": args.hogs,
            "nproc": args.nproc,
            "results": [{**asdict(r), "ok": r.ok} for r in results],
        }
        args.json.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
