"""Replace gunicorn's workers under load and count what the clients lose.

Starts gunicorn with uvicorn workers on 127.0.0.1 over the artifacts, offers `--rate` requests
per second open loop (the client of benchmarks/load.py), and after `--at` seconds replaces
every worker, one of two ways:

* `--mode hup`: `kill -HUP` the master, gunicorn's reload. It starts the new workers and stops
  the old ones at once, before the new ones have loaded the artifacts.
* `--mode roll`: one worker at a time, `kill -TTIN` the master (one more worker), wait until
  that worker logs "Application startup complete", then `kill -TTOU` (gunicorn stops the
  oldest worker). Each new worker imports the code and loads the artifacts afresh.

    python benchmarks/reload.py --artifacts artifacts --mode roll --workers 2 --rate 200

Prints the requests sent, the errors (connection reset or closed before an answer, non-200)
and the latency percentiles and maximum (the stall while no worker accepts); exits 1 on any
error. `--json FILE` writes the same figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from load import MAX_RATE, offer_load, percentile, request_mix

# The server helpers live with the tests (tests/servers.py): the service never needs them.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from servers import PACKAGE, free_port  # noqa: E402

READY_LINE = "Application startup complete"


class Gunicorn:
    """gunicorn with uvicorn workers on loopback; counts the workers that finished startup."""

    def __init__(self, artifacts: Path, workers: int) -> None:
        self.port = free_port()
        env = {**os.environ, f"{PACKAGE.upper()}_ARTIFACTS": str(artifacts.resolve()),
               "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}  # fmt: skip
        # gunicorn's worker timeout also bounds a worker's boot (imports, artifacts): 120 s,
        # not its default 30: a slow boot on a busy machine is waited for, not killed.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", f"{PACKAGE}.serving.app:create_app()",
             "--worker-class", "uvicorn_worker.UvicornWorker", "--workers", str(workers),
             "--bind", f"127.0.0.1:{self.port}", "--graceful-timeout", "30", "--timeout", "120",
             "--keep-alive", "75", "--log-level", "info"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )  # fmt: skip
        self.log: list[str] = []
        self.started = 0
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.log.append(line.rstrip())
                self.started += READY_LINE in line
                self._changed.notify_all()

    def wait_started(self, count: int, timeout: float = 120.0) -> None:
        """Block until `count` workers have finished their startup (artifacts loaded)."""
        with self._changed:
            if not self._changed.wait_for(lambda: self.started >= count, timeout):
                tail = "\n".join(self.log[-30:])
                raise SystemExit(f"{count} workers not started after {timeout:.0f} s:\n{tail}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def replace_workers(server: Gunicorn, mode: str, workers: int) -> float:
    """Replace every worker; returns the seconds it took (until the last new one is ready)."""
    start = time.perf_counter()
    already = server.started
    if mode == "none":
        return 0.0
    if mode == "hup":
        server.process.send_signal(signal.SIGHUP)
        server.wait_started(already + workers)
    else:
        for i in range(workers):
            server.process.send_signal(signal.SIGTTIN)
            server.wait_started(already + i + 1)
            server.process.send_signal(signal.SIGTTOU)
    return time.perf_counter() - start


async def measure(
    server: Gunicorn, artifacts: Path, mode: str, workers: int, rate: float, duration: float,
    at: float, k: int, retry_stale: bool,
) -> tuple[list[float], list[str], float]:  # fmt: skip
    bodies = request_mix(artifacts, k, max(1, int(rate * duration)))
    loop = asyncio.get_running_loop()
    took: list[float] = []

    async def later() -> None:
        await asyncio.sleep(at)
        took.append(await loop.run_in_executor(None, replace_workers, server, mode, workers))

    replacing = asyncio.create_task(later())
    url = f"http://127.0.0.1:{server.port}"
    latencies, errors, _, _ = await offer_load(url, bodies, rate, retry_stale=retry_stale)
    await replacing
    return latencies, errors, took[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    parser.add_argument("--mode", choices=["hup", "roll", "none"], default="roll",
                        help="how to replace the workers; none: a baseline run")  # fmt: skip
    parser.add_argument(
        "--retry-stale",
        action="store_true",
        help="resend a request that fails on a reused connection before any answer, like a "
        "proxy or HTTP client does (the default counts it as lost)",
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s (default 200)")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds (default 15)")
    parser.add_argument("--at", type=float, default=3.0, help="replace workers after (s)")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    if not 0 < args.rate <= MAX_RATE or not 0 < args.at < args.duration <= 120:
        parser.error(f"--rate in (0, {MAX_RATE:.0f}], 0 < --at < --duration <= 120")
    if not (args.artifacts / "manifest.json").is_file():
        parser.error(f"{args.artifacts / 'manifest.json'}: missing; build artifacts first")
    server = Gunicorn(args.artifacts, args.workers)
    try:
        server.wait_started(args.workers)
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/readyz", timeout=5):
            pass
        latencies, errors, took = asyncio.run(
            measure(server, args.artifacts, args.mode, args.workers, args.rate,
                    args.duration, args.at, args.k, args.retry_stale)
        )  # fmt: skip
    finally:
        server.stop()
    ms = sorted(1000 * x for x in latencies)
    result = {
        "mode": args.mode,
        "retry_stale": args.retry_stale,
        "workers": args.workers,
        "rate": args.rate,
        "requests": len(latencies) + len(errors),
        "errors": len(errors),
        "error_samples": errors[:5],
        "p50_ms": round(percentile(ms, 50), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(ms[-1], 1) if ms else None,
        "replace_s": round(took, 2),
    }
    print(
        f"{args.mode} of {args.workers} workers at {args.rate:.0f} req/s: {result['requests']} "
        f"requests, {result['errors']} errors; latency ms p50 {result['p50_ms']} p99 "
        f"{result['p99_ms']} max {result['max_ms']}; workers replaced in {result['replace_s']} s"
    )
    for sample in result["error_samples"]:
        print("  error:", sample)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
