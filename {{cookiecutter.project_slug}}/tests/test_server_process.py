"""`python -m {{ cookiecutter.package_name }} serve` as a real process: uvicorn on loopback, HTTP over a socket.

TestClient (test_serving.py) calls the app in-process; these tests check what only a real
server shows: the CLI wiring, startup in a fresh interpreter, concurrent requests over
sockets, a clean shutdown on SIGTERM, and a startup failure that exits non-zero and names the
missing file. Everything binds 127.0.0.1 only.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from servers import free_port, spawn_server, stop_server, wait_until_ready

STARTUP_TIMEOUT_S = 90.0


def start(artifacts: Path, port: int) -> subprocess.Popen[str]:
    """The server as `nox -s demo` and the benchmarks start it, with its output captured."""
    return spawn_server(artifacts, port, log_level="info", capture=True)


@contextmanager
def server(artifacts: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    process = start(artifacts, port)
    try:
        try:
            wait_until_ready(process, port, STARTUP_TIMEOUT_S)
        except SystemExit as failure:
            pytest.fail(str(failure))
        yield f"http://127.0.0.1:{port}", process
    finally:
        stop_server(process)


@pytest.fixture(scope="module")
def artifacts_dir(
    tmp_path_factory: pytest.TempPathFactory, write_sample_artifacts: Callable[..., Path]
) -> Path:
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


def test_the_serving_process_never_loads_torch(live: tuple[str, subprocess.Popen[str]]) -> None:
    """Nothing on the request path needs a model: the process that answers maps no torch
    library, after requests to every channel (read from /proc, so the server is untouched)."""
    base, process = live
    maps = Path(f"/proc/{process.pid}/maps")
    if not maps.is_file():
        pytest.skip(f"needs /proc/<pid>/maps (Linux) to read the mapped libraries; no {maps}")
    with httpx.Client(base_url=base, timeout=10.0) as client:
        for user_type, action in (("new", "browse"), ("returning", "purchase"), ("vip", "click")):
            reply = client.post(
                "/recommend", json=body(user_type=user_type, action=action, item_id="i3")
            )
            assert reply.status_code == 200, reply.text
    libraries = {line.split()[-1] for line in maps.read_text().splitlines() if "/" in line}
    assert any("faiss" in lib for lib in libraries), "expected the faiss library to be mapped"
    torch = [lib for lib in libraries if "/torch/" in lib or "libtorch" in lib]
    assert not torch, f"the server mapped {torch[:3]}"


def test_sigterm_shuts_the_server_down_cleanly(artifacts_dir: Path) -> None:
    with server(artifacts_dir) as (_, process):
        output = stop_server(process)
    # uvicorn finishes its shutdown, then re-raises the signal it caught, as a process
    # manager expects: so the exit status is 0 or "killed by SIGTERM", after a clean shutdown.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output


def test_a_server_without_artifacts_exits_3_with_one_line_naming_the_file_and_the_fix(
    tmp_path: Path,
) -> None:
    process = start(tmp_path / "no-artifacts", free_port())
    try:
        process.wait(timeout=STARTUP_TIMEOUT_S)
    finally:
        output = stop_server(process)
    assert process.returncode == 3, output  # uvicorn's exit code for a failed startup
    assert "Traceback" not in output and len(output.strip().splitlines()) == 1, output
    assert f"{tmp_path / 'no-artifacts' / 'manifest.json'}: missing" in output
    assert "index` (or `demo`)" in output


def test_artifacts_that_fail_to_load_stop_the_server_with_their_one_line_not_a_traceback(
    artifacts_dir: Path, tmp_path: Path
) -> None:
    """The manifest is fine (serve's pre-start check passes) but an array was changed after
    `index` wrote it: the lifespan's load fails, and uvicorn prints that error's line."""
    broken = tmp_path / "artifacts"
    shutil.copytree(artifacts_dir, broken)
    array = sorted(broken.glob("*.npy"))[0]
    data = bytearray(array.read_bytes())
    data[-1] ^= 0xFF  # same size and shape, other bytes: only the checksum can tell
    array.write_bytes(bytes(data))
    process = start(broken, free_port())
    try:
        process.wait(timeout=STARTUP_TIMEOUT_S)
    finally:
        output = stop_server(process)
    assert process.returncode == 3, output  # uvicorn's exit code for a failed startup
    assert "Traceback" not in output and 'File "' not in output, output
    assert f"{array}: sha256 does not match manifest.json" in output, output
    assert "Application startup failed" in output, output


def test_the_reload_benchmark_rolls_gunicorn_workers_under_load_without_losing_a_request(
    artifacts_dir: Path, tmp_path: Path, run_benchmark: Callable[..., subprocess.CompletedProcess]
) -> None:
    """benchmarks/reload.py at a small size: gunicorn with uvicorn workers (both in the
    environment), one worker rolled (TTIN, startup, TTOU) under load, stale retries on."""
    report = tmp_path / "reload.json"
    run_benchmark("reload.py", "--artifacts", str(artifacts_dir), "--mode", "roll",
                  "--workers", "1", "--rate", "20", "--duration", "6", "--at", "1",
                  "--retry-stale", "--json", str(report), cwd=tmp_path)  # fmt: skip
    result = json.loads(report.read_text())
    assert result["mode"] == "roll" and result["requests"] == 120
    assert result["errors"] == 0 and result["replace_s"] > 0, result
