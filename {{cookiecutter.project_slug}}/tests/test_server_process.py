"""`python -m {{ cookiecutter.package_name }} serve` as a real process: uvicorn on loopback, HTTP over a socket.

TestClient (test_serving.py) calls the app in-process; these tests check what only a real
server shows: the CLI wiring, startup in a fresh interpreter, concurrent requests over
sockets, a clean shutdown on SIGTERM, and a startup failure that exits non-zero and names the
missing file. Everything binds 127.0.0.1 only.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from test_serving import write_sample_artifacts

PACKAGE = "{{ cookiecutter.package_name }}"
STARTUP_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(artifacts: Path, port: int) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", PACKAGE, "serve", "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(
        [*command, "--artifacts", str(artifacts)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def stop(process: subprocess.Popen[str]) -> str:
    """SIGTERM, wait, and return everything the server printed (once; later calls get "")."""
    if process.stdout is None or process.stdout.closed:
        return ""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
    output, _ = process.communicate()
    return output


@contextmanager
def server(artifacts: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    process = start(artifacts, port)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"server exited with {process.returncode} before ready:\n{stop(process)}"
                )
            try:
                if httpx.get(f"{base}/readyz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server not ready after {STARTUP_TIMEOUT_S:.0f} s:\n{stop(process)}")
            time.sleep(0.1)
        yield base, process
    finally:
        stop(process)


@pytest.fixture(scope="module")
def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_artifacts(tmp_path_factory.mktemp("process") / "artifacts")


@pytest.fixture(scope="module")
def live(artifacts_dir: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    with server(artifacts_dir) as running:
        yield running


def body(**overrides: object) -> dict[str, object]:
    return {
        "user_id": "u1",
        "user_type": "returning",
        "device": "mobile",
        "action": "purchase",
        "k": 20,
        **overrides,
    }


def test_the_cli_server_answers_every_route_over_loopback(
    live: tuple[str, subprocess.Popen[str]],
) -> None:
    base, _ = live
    with httpx.Client(base_url=base, timeout=5.0) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json()["status"] == "ready"
        channels = {
            client.post("/recommend", json=body(**change)).json()["channel"]
            for change in (
                {},
                {"user_type": "new", "action": "browse"},
                {"user_type": "vip", "action": "click", "item_id": "i0"},
            )
        }
        assert channels == {"two_tower", "popularity", "item_graph"}
        assert client.post("/recommend", json=body(k=0)).status_code == 422


def test_concurrent_requests_all_succeed_with_the_same_answer(
    live: tuple[str, subprocess.Popen[str]],
) -> None:
    base, _ = live
    with httpx.Client(base_url=base, timeout=10.0) as client:
        expected = client.post("/recommend", json=body(user_id="u7")).json()

        def one(_: int) -> dict:
            response = client.post("/recommend", json=body(user_id="u7"))
            assert response.status_code == 200
            return response.json()

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(one, range(64)))
    assert all(answer == expected for answer in answers)


def test_sigterm_shuts_the_server_down_cleanly(artifacts_dir: Path) -> None:
    with server(artifacts_dir) as (_, process):
        output = stop(process)
    # uvicorn finishes its shutdown, then re-raises the signal it caught, as a process
    # manager expects: so the exit status is 0 or "killed by SIGTERM", after a clean shutdown.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output


def test_a_server_without_artifacts_exits_non_zero_naming_the_missing_file(tmp_path: Path) -> None:
    process = start(tmp_path / "no-artifacts", free_port())
    try:
        process.wait(timeout=STARTUP_TIMEOUT_S)
    finally:
        output = stop(process)
    assert process.returncode != 0
    assert f"{tmp_path / 'no-artifacts' / 'manifest.json'}: missing" in output
