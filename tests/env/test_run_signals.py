"""``recenv run`` passes signals on and leaves no orphan (issue 12, item 5).

Real processes only: a real ``recenv run`` (its own interpreter) starts a real HTTP server on a
free loopback port inside a real (tiny) uv environment; the tests signal ``recenv`` and watch the
server's port, its PID and what it says it received.  Ctrl-C is typed into a real pseudo-terminal.
"""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import subprocess
import sys
import termios
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from recenv_helpers import write_env

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux /proc"),
]

SERVER = """\
import http.server, signal, sys, threading, time

log, port_file = sys.argv[1], sys.argv[2]
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
stopping = threading.Event()


def on_signal(sig, frame):
    with open(log, "a") as fh:
        fh.write(signal.Signals(sig).name + "\\n")
    if sig in (signal.SIGTERM, signal.SIGINT) and not stopping.is_set():
        stopping.set()  # a second SIGINT/SIGTERM within 0.5 s would be logged too
        threading.Thread(target=lambda: (time.sleep(0.5), srv.shutdown())).start()


for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"):
    signal.signal(getattr(signal, name), on_signal)
with open(port_file + ".tmp", "w") as fh:
    fh.write(str(srv.server_address[1]))
import os; os.replace(port_file + ".tmp", port_file)
srv.serve_forever()
sys.exit(7)
"""


@pytest.fixture(scope="module")
def tiny_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """An environment with nothing but Python 3.11, built once for the module."""
    root = tmp_path_factory.mktemp("run-signals")
    spec = write_env(root / "proj", "")
    env = {**os.environ, "RECENV_CACHE_DIR": str(root / "cache"), "PIP_CONFIG_FILE": os.devnull}
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_recenv.env.cli",
            "build",
            "-q",
            "--backend",
            "uv",
            str(spec),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return spec, env


def start(
    tiny_env: tuple[Path, dict[str, str]], *command: str, **popen: object
) -> subprocess.Popen[bytes]:
    spec, env = tiny_env
    recenv = [sys.executable, "-m", "pytest_recenv.env.cli", "run", "-q", "--file", str(spec)]
    return subprocess.Popen(
        [*recenv, "--", *command],
        env=env,
        cwd=spec.parent,
        **popen,  # type: ignore[arg-type]
    )


def wait_for(condition: Callable[[], object], timeout: float = 30.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {condition}")


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped has finished)."""
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


def read_port(path: Path) -> int:
    return int(wait_for(lambda: path.is_file() and path.read_text()))  # type: ignore[arg-type]


def start_http_server(
    env: tuple[Path, dict[str, str]], reap: list[int], **popen: object
) -> tuple[subprocess.Popen[bytes], int, int]:
    """`recenv run -- python -m http.server` on a free loopback port, answering: (recenv's
    process, the port, the server's pid); both pids are reaped after the test."""
    proc = start(
        env, "python", "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
        stdout=subprocess.PIPE, **popen,
    )  # fmt: skip
    reap.append(proc.pid)
    line = proc.stdout.readline().decode()  # type: ignore[union-attr]
    port = int(line.split(" port ")[1].split()[0])
    server = wait_for(lambda: children(proc.pid))[0]  # type: ignore[index]
    reap.append(server)
    wait_for(lambda: answers(port))  # one request may take over 1 s on a busy machine
    return proc, port, server


@pytest.fixture
def reap() -> Iterator[list[int]]:
    """PIDs a test started; whatever is still running at the end is killed (by PID)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("sig", "expected"),
    [
        # http.server dies of SIGTERM, so recenv dies of it too (a shell shows 143)
        (signal.SIGTERM, -signal.SIGTERM),
        # ... and exits 0 after KeyboardInterrupt ("Keyboard interrupt received, exiting.")
        (signal.SIGINT, 0),
    ],
    ids=["SIGTERM", "SIGINT"],
)
def test_a_signal_to_recenv_run_stops_the_server_and_recenv_ends_as_it_did(
    tiny_env: tuple[Path, dict[str, str]],
    tmp_path: Path,
    reap: list[int],
    sig: signal.Signals,
    expected: int,
) -> None:
    proc, port, server = start_http_server(tiny_env, reap, stderr=subprocess.PIPE)
    os.kill(proc.pid, sig)
    assert proc.wait(timeout=10) == expected
    wait_for(lambda: not alive(server), timeout=5)
    assert not answers(port)
    assert b"Traceback" not in proc.stderr.read()  # type: ignore[union-attr]


def test_every_forwarded_signal_reaches_the_server_once_and_its_exit_status_comes_back(
    tiny_env: tuple[Path, dict[str, str]], tmp_path: Path, reap: list[int]
) -> None:
    log, port_file = tmp_path / "signals.log", tmp_path / "port"
    (tmp_path / "server.py").write_text(SERVER)
    proc = start(tiny_env, "python", "-u", str(tmp_path / "server.py"), str(log), str(port_file))
    reap.append(proc.pid)
    port = read_port(port_file)
    reap.extend(children(proc.pid))
    sent = [signal.SIGUSR1, signal.SIGHUP, signal.SIGUSR2, signal.SIGQUIT, signal.SIGTERM]
    for n, sig in enumerate(sent, 1):
        os.kill(proc.pid, sig)
        wait_for(lambda n=n: log.is_file() and len(log.read_text().split()) >= n, timeout=10)
    assert proc.wait(timeout=10) == 7
    assert log.read_text().split() == [s.name for s in sent]
    assert not answers(port)


@pytest.mark.parametrize("how", ["ctrl-c in a terminal", "kill -INT recenv"])
def test_ctrl_c_reaches_the_server_exactly_once_and_recenv_prints_no_traceback(
    tiny_env: tuple[Path, dict[str, str]], tmp_path: Path, reap: list[int], how: str
) -> None:
    """The terminal sends SIGINT to the whole foreground group (recenv and the server): recenv
    must not send a second one (uvicorn would take it as 'exit now'), nor die of it."""
    log, port_file = tmp_path / "signals.log", tmp_path / "port"
    (tmp_path / "server.py").write_text(SERVER)
    master, slave = pty.openpty()

    def controlling_terminal() -> None:  # runs in the child: the pty becomes its terminal
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = start(
        tiny_env,
        "python",
        "-u",
        str(tmp_path / "server.py"),
        str(log),
        str(port_file),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        preexec_fn=controlling_terminal,
    )
    os.close(slave)
    reap.append(proc.pid)
    port = read_port(port_file)
    reap.extend(children(proc.pid))
    if how == "ctrl-c in a terminal":
        os.write(master, b"\x03")  # the line discipline turns it into SIGINT for the group
    else:
        os.kill(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=10) == 7
    assert log.read_text().split() == ["SIGINT"]
    assert not answers(port)
    output = b""
    os.set_blocking(master, False)
    try:
        while chunk := os.read(master, 65536):
            output += chunk
    except OSError:
        pass
    os.close(master)
    assert b"Traceback" not in output
    assert b"KeyboardInterrupt" not in output


def test_kill_9_of_recenv_run_leaves_no_orphan_server(
    tiny_env: tuple[Path, dict[str, str]], tmp_path: Path, reap: list[int]
) -> None:
    proc, port, server = start_http_server(tiny_env, reap)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    wait_for(lambda: not alive(server), timeout=5)
    assert not answers(port)


def test_a_command_missing_from_the_env_is_named_without_a_traceback(
    tiny_env: tuple[Path, dict[str, str]],
) -> None:
    proc = start(tiny_env, "no-such-command-xyz", stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 127
    assert err.decode().startswith("recenv run: expected 'no-such-command-xyz' in ")
    assert "Traceback" not in err.decode()
