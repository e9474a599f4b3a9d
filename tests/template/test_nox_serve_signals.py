"""SIGTERM to the generated project's `nox -s serve` stops the server (issue 12, item 5).

Real processes: the baked noxfile, the real nox and `recenv run`, a tiny uv environment, and a
stand-in for `python -m <package> serve` (a real HTTP server on a free loopback port; the
project's own server needs trained artifacts and the full environment).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from bakery import Bake

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux /proc"),
]

STAND_IN = """\
import http.server, os

srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
with open(os.environ["PORT_FILE"] + ".tmp", "w") as fh:
    fh.write(str(srv.server_address[1]))
os.replace(os.environ["PORT_FILE"] + ".tmp", os.environ["PORT_FILE"])
srv.serve_forever()
"""


def wait_for(condition: Callable[[], object], timeout: float) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {condition}")


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            kids = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        found += [int(k) for k in kids]
        todo += [int(k) for k in kids]
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def reap() -> Iterator[list[int]]:
    pids: list[int] = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_sigterm_to_nox_serve_stops_the_server_it_started(
    bake: Bake, tmp_path: Path, reap: list[int]
) -> None:
    project = bake(python_version="3.11")
    package = project.name.replace("-", "_")
    (project / "environment.yml").write_text(
        f"name: {project.name}-dev-mlteam\nchannels:\n  - conda-forge\n  - nodefaults\n"
        "dependencies:\n  - python=3.11\n  - pip\n"
    )
    stub = tmp_path / "stub" / package
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("")
    (stub / "__main__.py").write_text(STAND_IN)
    port_file = tmp_path / "port"
    bin_dir = Path(sys.executable).parent  # nox and recenv, as a user installs them
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(stub.parent),
        "PORT_FILE": str(port_file),
        "RECENV_CACHE_DIR": str(tmp_path / "cache"),
        "PIP_CONFIG_FILE": os.devnull,
    }
    log = tmp_path / "nox.log"  # a file, not a pipe: an orphaned server would hold a pipe open
    with log.open("wb") as out:
        nox = subprocess.Popen(
            [str(bin_dir / "nox"), "-s", "serve"], cwd=project, env=env, stdout=out, stderr=out
        )
    reap.append(nox.pid)
    try:
        port = int(wait_for(lambda: port_file.is_file() and port_file.read_text(), 180))  # type: ignore[arg-type]
    except AssertionError:
        nox.kill()
        raise AssertionError(log.read_text()[-3000:]) from None
    started = descendants(nox.pid)  # recenv, and the server under it
    reap.extend(started)
    assert len(started) == 2, started
    wait_for(lambda: answers(port), 30)  # one request may take over 1 s on a busy machine
    os.kill(nox.pid, signal.SIGTERM)
    nox.wait(timeout=30)
    wait_for(lambda: not any(alive(p) for p in started), 5)
    assert not answers(port), log.read_text()
