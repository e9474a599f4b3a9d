"""Start the real server on loopback, send one request per route, print the answers.

    python tests/servers.py --artifacts artifacts

The last step of `nox -s demo`: proof that the artifacts the pipeline just wrote are served.
The helpers that start and stop a server process are shared with benchmarks/load.py,
benchmarks/fuzz.py and tests/test_server_process.py, so all exercise the same
`python -m {{ cookiecutter.package_name }} serve`. A helper module, not a test module: it lives under tests/
because only tests, benchmarks and the demo use it, never the service.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import httpx

PACKAGE = "{{ cookiecutter.package_name }}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn_server(
    artifacts: Path, port: int, workers: int = 1, log_level: str = "warning", capture: bool = False
) -> subprocess.Popen[str]:
    """`python -m {{ cookiecutter.package_name }} serve` on 127.0.0.1:port, returned at once (not yet ready).

    With `capture`, its output goes to a pipe that `stop_server` returns, instead of this
    terminal; tests use that to check what the server printed.
    """
    pipe = subprocess.PIPE if capture else None
    return subprocess.Popen(
        [sys.executable, "-m", PACKAGE, "serve", "--host", "127.0.0.1", "--port", str(port),
         "--artifacts", str(artifacts), "--workers", str(workers), "--log-level", log_level],
        stdout=pipe,
        stderr=subprocess.STDOUT if capture else None,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


def wait_until_ready(process: subprocess.Popen[str], port: int, timeout: float = 120.0) -> None:
    """Return once /readyz answers 200; else stop the server and raise SystemExit with its log."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            log = stop_server(process) or "(its log is above)"
            raise SystemExit(f"the server exited with {process.returncode} during startup:\n{log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            log = stop_server(process) or "(its log is above)"
            raise SystemExit(f"the server was not ready after {timeout:.0f} s:\n{log}")
        time.sleep(0.1)


def start_server(
    artifacts: Path, port: int, workers: int = 1, timeout: float = 120.0, log_level: str = "warning"
) -> subprocess.Popen[str]:
    """`python -m {{ cookiecutter.package_name }} serve` on 127.0.0.1:port, returned once /readyz answers 200."""
    process = spawn_server(artifacts, port, workers, log_level)
    wait_until_ready(process, port, timeout)
    return process


def stop_server(process: subprocess.Popen[str]) -> str:
    """SIGTERM (graceful shutdown), then SIGKILL if it does not exit in 20 s.

    Returns what a `capture`d server printed, once (later calls, or no capture: "").
    """
    if process.stdout is not None and process.stdout.closed:
        return ""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
    output, _ = process.communicate()
    return output or ""


@contextmanager
def running_server(artifacts: Path, workers: int = 1) -> Iterator[str]:
    """A ready server on a free loopback port for the `with` block; yields its base URL."""
    port = free_port()
    process = start_server(artifacts, port, workers)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(process)


def sample_requests(artifacts: Path) -> list[tuple[str, dict[str, object]]]:
    """One request per route of the router, with real ids from the artifacts."""
    user_ids = json.loads((artifacts / "user_ids.json").read_text(encoding="utf-8"))
    item_ids = json.loads((artifacts / "item_ids.json").read_text(encoding="utf-8"))
    known, item = user_ids[0], item_ids[0]
    return [
        ("returning user buying on mobile", {"user_id": known, "user_type": "returning", "device": "mobile", "action": "purchase"}),
        ("new user browsing on mobile", {"user_id": "visitor-1", "user_type": "new", "device": "mobile", "action": "browse"}),
        ("VIP clicking an item", {"user_id": known, "user_type": "vip", "device": "desktop", "action": "click", "item_id": item}),
        ("unknown user on the two-tower route", {"user_id": "never-seen", "user_type": "returning", "device": "mobile", "action": "purchase"}),
        ("unknown device", {"user_id": known, "user_type": "returning", "device": "smartwatch", "action": "browse"}),
    ]  # fmt: skip


def tour(base_url: str, artifacts: Path, k: int = 5) -> list[dict[str, object]]:
    """GET /healthz and /readyz, then POST /recommend once per route; returns the answers."""
    answers: list[dict[str, object]] = []
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        for path in ("/healthz", "/readyz"):
            response = client.get(path)
            response.raise_for_status()
            answers.append(
                {"request": f"GET {path}", "status": response.status_code, "body": response.json()}
            )
        for title, body in sample_requests(artifacts):
            response = client.post("/recommend", json={**body, "k": k})
            response.raise_for_status()
            answers.append(
                {
                    "request": f"POST /recommend ({title})",
                    "status": response.status_code,
                    "body": response.json(),
                }
            )
    return answers


def print_answers(answers: list[dict[str, object]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="The service, one request per route", show_lines=True)
    for column in ("request", "channel", "items", "why"):
        table.add_column(column, overflow="fold")
    for answer in answers:
        body = cast(dict, answer["body"])
        if "items" in body:
            items = ", ".join(str(item["item_id"]) for item in body["items"])
            # The stages that ran (recall, then rank where the ranker ordered the items).
            why = "\n".join([str(body["reason"]), *map(str, body.get("stages", []))])
            table.add_row(str(answer["request"]), str(body["channel"]), items, why)
        else:
            table.add_row(str(answer["request"]), str(answer["status"]), "", json.dumps(body))
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args(argv)
    if not (args.artifacts / "manifest.json").is_file():
        parser.error(
            f"{args.artifacts / 'manifest.json'}: missing. Run `python -m {PACKAGE} demo` first, "
            "or pass --artifacts."
        )
    with running_server(args.artifacts) as base_url:
        answers = tour(base_url, args.artifacts, args.k)
    print_answers(answers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
