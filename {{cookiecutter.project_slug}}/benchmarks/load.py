"""Bounded load test of the real service on loopback: latency percentiles and throughput.

Starts `python -m {{ cookiecutter.package_name }} serve` on 127.0.0.1 (or uses `--url`, which must be a
loopback address), then sends `POST /recommend` at a fixed arrival rate (open loop: requests
leave on schedule whether or not earlier ones have finished, so a slow server shows up as
latency instead of silently lowering the offered load). The traffic mixes every route:
returning users (recall, then the ranker where `rank` wrote one), new users (popularity), VIP
clicks on an item (item graph) and user ids the model has never seen (cold start).

    python benchmarks/load.py --artifacts artifacts --rate 200 --duration 10 --k 20

`--mix ranked` sends only requests that take the retrieve -> rank route (returning users on
mobile purchasing: multi-channel recall, then the ranker; needs `rank` to have written
`artifacts/ranker/`), and prints the stages of one answer, so the number of candidates ranked
per request is on record. `--server gunicorn --workers N` serves with gunicorn and uvicorn
workers instead of `python -m {{ cookiecutter.package_name }} serve`. `--find-max-rate` offers the
rates of `--rates` in turn and reports the highest whose p99 stays under `--max-p99-ms`
(default 20) with no errors:

    python benchmarks/load.py --mix ranked --find-max-rate --rates 100,200,300,400

`--cpu-per-request` skips HTTP: it times `Recommender.recommend` in this process for each
default route (CPU time, best of 3 over `--users` known users), which a busy machine distorts
far less than latency:

    python benchmarks/load.py --cpu-per-request --users 500

Prints p50/p90/p99/max latency, achieved throughput, errors and, for a server it started, the
server's CPU time per request (its processes' user + system time from /proc, Linux); exits 1 on any error, or when
`--max-p99-ms` is given and exceeded. Duration and rate are capped so a typo cannot turn this
into a stress test of the machine it runs on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

# The server helpers live with the tests (tests/servers.py): the service never needs them.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from servers import (  # noqa: E402
    PACKAGE,
    free_port,
    start_server,
    stop_server,
    wait_until_ready,
)

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MAX_DURATION_S = 120.0
MAX_RATE = 2000.0


@dataclass
class LoadResult:
    rate_offered: float
    duration_s: float
    requests: int
    errors: int
    throughput_rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    max_send_lag_ms: float  # how late the client itself sent (a busy client inflates latency)
    k: int
    error_samples: list[str]
    server_cpu_ms: float | None = None  # server CPU (all its processes) per measured request


def process_tree_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of `pid` and its live descendants (gunicorn's workers), read
    from /proc; None where there is no /proc (not Linux)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            stat = Path(f"/proc/{current}/stat").read_text()
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:
            if current == pid:
                return None
            continue  # a child that exited meanwhile
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": field 3 onwards
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        for task in tasks:
            with suppress(OSError):
                todo.extend(int(child) for child in (task / "children").read_text().split())
    return total


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


RANKED_ROUTE = {"user_type": "returning", "device": "mobile", "action": "purchase"}


def request_mix(
    artifacts: Path, k: int, n: int, seed: int = 0, mix: str = "routes"
) -> list[dict[str, object]]:
    """`n` request bodies drawn from the real ids in the artifacts: over every route
    (`mix="routes"`), or known users on the retrieve -> rank route only (`mix="ranked"`)."""
    user_ids = json.loads((artifacts / "user_ids.json").read_text(encoding="utf-8"))
    item_ids = json.loads((artifacts / "item_ids.json").read_text(encoding="utf-8"))
    rng = random.Random(seed)
    if mix == "ranked":
        return [{"user_id": rng.choice(user_ids), "k": k, **RANKED_ROUTE} for _ in range(n)]
    shapes = [
        (0.40, {"user_type": "returning", "device": "mobile", "action": "purchase"}),
        (0.20, {"user_type": "returning", "device": "desktop", "action": "browse"}),
        (0.20, {"user_type": "new", "device": "mobile", "action": "browse"}),
        (0.20, {"user_type": "vip", "device": "tablet", "action": "click"}),
    ]
    bodies = []
    for i in range(n):
        shape = rng.choices([s for _, s in shapes], weights=[w for w, _ in shapes])[0]
        known = rng.random() > 0.1  # one request in ten comes from a user the model never saw
        body: dict[str, object] = {
            "user_id": rng.choice(user_ids) if known else f"visitor-{i}",
            "k": k,
            **shape,
        }
        if shape["action"] == "click":
            body["item_id"] = rng.choice(item_ids)
        bodies.append(body)
    return bodies


class Connection:
    """A minimal HTTP/1.1 keep-alive client connection.

    httpx costs several milliseconds of CPU per request in this loop; on a 2-core machine the
    client would then starve the server it measures. This costs tens of microseconds.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, payload: bytes, retry_stale: bool = False) -> tuple[int, bytes]:
        """One request. With ``retry_stale``, a request that fails on a reused connection before
        any answer arrives is sent once more on a new one, as HTTP clients and proxies do when
        the server closed an idle keep-alive connection (safe here: /recommend only reads)."""
        reused = self.writer is not None
        try:
            return await self._post(path, payload)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            await self.close()
            if not (retry_stale and reused and not getattr(exc, "partial", b"")):
                raise
        return await self._post(path, payload)

    async def _post(self, path: str, payload: bytes) -> tuple[int, bytes]:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        self.writer.write(head.encode("ascii") + payload)
        status_and_headers = await self.reader.readuntil(b"\r\n\r\n")
        lines = status_and_headers.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(":") for line in lines[1:] if line)
        }
        if "content-length" not in headers:
            raise RuntimeError(f"response without Content-Length (headers: {headers}); unsupported")
        body = await self.reader.readexactly(int(headers["content-length"]))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            # A reset from the server (a worker shutting down) leaves it closed all the same.
            with suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def offer_load(
    base_url: str,
    bodies: list[dict[str, object]],
    rate: float,
    connections: int = 32,
    retry_stale: bool = False,
) -> tuple[list[float], list[str], float, float]:
    """Send `bodies` at `rate`/s over a pool of keep-alive connections.

    Returns (latencies in s, error messages, elapsed s, max send lag s). Latency runs from the
    moment a request was *due*, so time spent waiting for a free connection counts: an
    overloaded server shows up as latency, never as a quietly reduced load.
    """
    url = urlparse(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    payloads = [json.dumps(body).encode() for body in bodies]
    queue: asyncio.Queue[tuple[bytes, float] | None] = asyncio.Queue()
    latencies: list[float] = []
    errors: list[str] = []
    lags: list[float] = []

    async def worker() -> None:
        connection = Connection(host, port)
        while (item := await queue.get()) is not None:
            payload, due = item
            lags.append(time.perf_counter() - due)
            try:
                status, body = await connection.post("/recommend", payload, retry_stale)
            except (OSError, asyncio.IncompleteReadError, RuntimeError, ValueError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                await connection.close()
                continue
            if status != 200:
                errors.append(f"HTTP {status}: {body[:200].decode(errors='replace')}")
            else:
                latencies.append(time.perf_counter() - due)
        await connection.close()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    start = time.perf_counter()
    for i, payload in enumerate(payloads):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((payload, due))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    return latencies, errors, elapsed, max(lags, default=0.0)


def run_load(
    base_url: str,
    artifacts: Path,
    rate: float,
    duration: float,
    k: int,
    warmup: float = 1.0,
    mix: str = "routes",
    server_pid: int | None = None,
) -> LoadResult:
    """Warm up (not measured), then one measured run of `rate * duration` requests.

    With `server_pid`, the server's CPU time (its processes' user + system time from /proc)
    over the measured run is divided by the requests sent: what one HTTP request costs the
    server, recall, ranking, HTTP and framework together.
    """
    if warmup > 0:
        warm = request_mix(artifacts, k, max(1, int(rate * warmup)), seed=1, mix=mix)
        asyncio.run(offer_load(base_url, warm, rate))
    bodies = request_mix(artifacts, k, max(1, int(rate * duration)), mix=mix)
    cpu_before = process_tree_cpu_s(server_pid) if server_pid else None
    latencies, errors, elapsed, lag = asyncio.run(offer_load(base_url, bodies, rate))
    cpu_after = process_tree_cpu_s(server_pid) if server_pid else None
    server_cpu_ms = None
    if cpu_before is not None and cpu_after is not None:
        server_cpu_ms = round(1000 * (cpu_after - cpu_before) / len(bodies), 3)
    ms = sorted(1000 * x for x in latencies)
    return LoadResult(
        rate_offered=rate,
        duration_s=round(elapsed, 3),
        requests=len(bodies),
        errors=len(errors),
        throughput_rps=round(len(latencies) / elapsed, 1),
        p50_ms=round(percentile(ms, 50), 3),
        p90_ms=round(percentile(ms, 90), 3),
        p99_ms=round(percentile(ms, 99), 3),
        max_ms=round(ms[-1], 3) if ms else float("nan"),
        max_send_lag_ms=round(1000 * lag, 3),
        k=k,
        error_samples=errors[:5],
        server_cpu_ms=server_cpu_ms,
    )


@contextmanager
def uvicorn_server(artifacts: Path, workers: int) -> Iterator[tuple[str, int]]:
    """`python -m {{ cookiecutter.package_name }} serve` on a free loopback port; yields its base URL and process
    id once /readyz answers."""
    port = free_port()
    process = start_server(artifacts, port, workers)
    try:
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        stop_server(process)


@contextmanager
def gunicorn_server(artifacts: Path, workers: int) -> Iterator[tuple[str, int]]:
    """gunicorn with uvicorn workers on a free loopback port (the production setup in
    docs/serving.md); yields its base URL and the master's process id once /readyz answers."""
    port = free_port()
    env = {**os.environ, f"{PACKAGE.upper()}_ARTIFACTS": str(artifacts.resolve()),
           "PYTHONUNBUFFERED": "1"}  # fmt: skip
    # gunicorn's worker timeout also bounds a worker's boot (imports, artifacts): 120 s, not
    # its default 30: a slow boot on a busy machine is waited for, not killed.
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", f"{PACKAGE}.serving.app:create_app()",
         "--worker-class", "uvicorn_worker.UvicornWorker", "--workers", str(workers),
         "--bind", f"127.0.0.1:{port}", "--keep-alive", "75", "--timeout", "120",
         "--log-level", "warning"],
        env=env, text=True,
    )  # fmt: skip
    try:
        wait_until_ready(process, port)
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        stop_server(process)


def describe_answer(base_url: str, artifacts: Path, k: int, mix: str) -> str:
    """The stages of one answer of the mix (how many candidates were ranked, by what)."""
    body = request_mix(artifacts, k, 1, seed=2, mix=mix)[0]
    url = urlparse(base_url)

    async def once() -> tuple[int, bytes]:
        connection = Connection(url.hostname or "127.0.0.1", url.port or 80)
        try:
            return await connection.post("/recommend", json.dumps(body).encode())
        finally:
            await connection.close()

    status, raw = asyncio.run(once())
    if status != 200:
        return f"HTTP {status}: {raw[:200].decode(errors='replace')}"
    answer = json.loads(raw)
    return f"stages: {' -> '.join(answer.get('stages', []))}; reason: {answer['reason']}"


CPU_ROUTES = {
    "returning-mobile-buy (multi-channel recall + rank)": ("returning", "mobile", "purchase"),
    "known-user (two-tower recall + rank)": ("returning", "desktop", "cart"),
    "vip-click without an item (item-graph recall + rank)": ("vip", "tablet", "click"),
    "new-mobile-browse (popularity)": ("new", "mobile", "browse"),
}


def cpu_per_request(artifacts: Path, users: int, k: int, gap_ms: float = 0.0) -> dict[str, float]:
    """CPU ms per `Recommender.recommend` call for each default route, and two-tower recall
    alone (a routes rule without rank), best of 3 passes over the first `users` users.

    Back to back (`gap_ms=0`) every call finds the CPU caches warm from the one before. A
    server at a few hundred requests per second idles between requests; `gap_ms` sleeps that
    long between calls to measure what a call costs then.
    """
    from importlib import import_module

    load_artifacts = import_module(f"{PACKAGE}.artifacts").load_artifacts
    router = import_module(f"{PACKAGE}.router").Router
    recommender = import_module(f"{PACKAGE}.serving.recommender").Recommender
    art = load_artifacts(artifacts)
    ranked = recommender(art)
    plain = recommender(art, router.from_config({"rules": [{"channel": "two_tower"}]}))
    ids = art.user_ids[:users]
    cases = [(name, ranked, route) for name, route in CPU_ROUTES.items()]
    cases.append(("two-tower recall only (no rank)", plain, ("returning", "desktop", "browse")))
    out = {}
    for name, rec, route in cases:
        rec.recommend(ids[0], *route, k)  # first call: lazy set-up
        best = float("inf")
        for _ in range(3):
            start = time.process_time()
            for user_id in ids:
                rec.recommend(user_id, *route, k)
                if gap_ms > 0:
                    time.sleep(gap_ms / 1000)
            best = min(best, (time.process_time() - start) / len(ids))
        out[name] = round(1000 * best, 3)
        print(f"{name}: {out[name]:.2f} ms CPU per request")
    if ranked.ranking is None:
        print(f"(no ranking: {ranked.ranking_status})")
    return out


def check_loopback(url: str) -> str:
    host = urlparse(url).hostname or ""
    if host not in LOOPBACK:
        raise SystemExit(
            f"--url {url!r} points at {host!r}; this benchmark only targets loopback "
            f"({', '.join(sorted(LOOPBACK))}). Load-testing other machines needs their owners' consent."
        )
    return url.rstrip("/")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--artifacts", type=Path, default=Path("artifacts"), help="artifacts folder"
    )
    parser.add_argument("--url", help="an already running server on loopback (default: start one)")
    parser.add_argument(
        "--rate", type=float, default=200.0, help="requests per second (default 200)"
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="measured seconds (default 10)"
    )
    parser.add_argument("--k", type=int, default=20, help="items per request (default 20)")
    parser.add_argument(
        "--workers", type=int, default=1, help="server worker processes (default 1)"
    )
    parser.add_argument(
        "--server",
        choices=("uvicorn", "gunicorn"),
        default="uvicorn",
        help="`python -m ... serve` (uvicorn, default) or gunicorn with uvicorn workers",
    )
    parser.add_argument(
        "--mix",
        choices=("routes", "ranked"),
        default="routes",
        help="every route (default), or only the retrieve -> rank route",
    )
    parser.add_argument("--max-p99-ms", type=float, help="fail when p99 latency exceeds this")
    parser.add_argument(
        "--find-max-rate",
        action="store_true",
        help="offer each of --rates; report the highest with p99 < --max-p99-ms (default 20)",
    )
    parser.add_argument(
        "--rates", default="100,200,300,400,500", help="ascending rates for --find-max-rate"
    )
    parser.add_argument(
        "--cpu-per-request",
        action="store_true",
        help="no HTTP: CPU time per recommend call for each route, in this process",
    )
    parser.add_argument("--users", type=int, default=500, help="users for --cpu-per-request")
    parser.add_argument(
        "--gap-ms",
        type=float,
        default=0.0,
        help="with --cpu-per-request: sleep this long between calls (cold caches, as a server "
        "idling between requests has them; default 0)",
    )
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    try:
        rates = [float(r) for r in args.rates.split(",")] if args.find_max_rate else [args.rate]
    except ValueError:
        parser.error(f"--rates {args.rates!r}: expected numbers separated by commas, e.g. 100,200")
    if not all(0 < r <= MAX_RATE for r in rates) or not 0 < args.duration <= MAX_DURATION_S:
        parser.error(
            f"--rate must be in (0, {MAX_RATE:.0f}] and --duration in (0, {MAX_DURATION_S:.0f}]"
        )
    if args.find_max_rate and args.max_p99_ms is None:
        args.max_p99_ms = 20.0
    if not (args.artifacts / "manifest.json").is_file():
        parser.error(
            f"{args.artifacts / 'manifest.json'}: missing. Build artifacts first "
            f"(`python -m {PACKAGE} demo`) or pass --artifacts."
        )
    ranker = args.artifacts / "ranker" / "ranker.onnx"
    if args.mix == "ranked" and not args.url and not ranker.is_file():
        # Without a ranker the ranked route answers in recall order: a fast run of the wrong thing.
        parser.error(
            f"{ranker}: missing; --mix ranked measures the retrieve -> rank route. Run "
            f"`python -m {PACKAGE} rank` after `demo` (or `index`) first."
        )

    if args.cpu_per_request:
        cpu = cpu_per_request(args.artifacts, args.users, args.k, args.gap_ms)
        if args.json:
            args.json.write_text(json.dumps(cpu, indent=2) + "\n", encoding="utf-8")
        return 0
    if args.url:
        server = nullcontext((check_loopback(args.url), None))
    elif args.server == "gunicorn":
        server = gunicorn_server(args.artifacts, args.workers)
    else:
        server = uvicorn_server(args.artifacts, args.workers)
    results: list[LoadResult] = []
    with server as (base_url, pid):
        print(f"{args.server} x{args.workers}, mix {args.mix}: "
              f"{describe_answer(base_url, args.artifacts, args.k, args.mix)}")  # fmt: skip
        for rate in rates:
            result = run_load(
                base_url, args.artifacts, rate, args.duration, args.k, mix=args.mix, server_pid=pid
            )
            results.append(result)
            print(
                f"POST /recommend k={result.k}: {result.requests} requests at "
                f"{result.rate_offered:.0f}/s offered, {result.throughput_rps:.1f}/s served, "
                f"{result.errors} errors\n"
                f"latency ms: p50 {result.p50_ms:.2f}  p90 {result.p90_ms:.2f}  "
                f"p99 {result.p99_ms:.2f}  max {result.max_ms:.2f}  "
                f"(client send lag max {result.max_send_lag_ms:.2f})"
            )
            if result.server_cpu_ms is not None:
                print(f"server CPU per request: {result.server_cpu_ms:.2f} ms (all its processes)")
            for sample in result.error_samples:
                print(f"  error: {sample}")
            held = result.errors == 0 and (
                args.max_p99_ms is None or result.p99_ms <= args.max_p99_ms
            )
            if args.find_max_rate and not held:
                break
    if args.json:
        payload = [asdict(r) for r in results] if args.find_max_rate else asdict(results[0])
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    if args.find_max_rate:
        held_rates = [
            r.rate_offered for r in results if r.errors == 0 and r.p99_ms <= args.max_p99_ms
        ]
        best = f"{max(held_rates):.0f}/s" if held_rates else "none of the rates"
        print(f"highest rate with p99 <= {args.max_p99_ms} ms and no errors: {best}")
        return 0 if held_rates else 1
    result = results[0]
    failed = result.errors > 0
    if args.max_p99_ms is not None and result.p99_ms > args.max_p99_ms:
        print(f"p99 {result.p99_ms:.2f} ms exceeds --max-p99-ms {args.max_p99_ms}")
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
