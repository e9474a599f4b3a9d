"""kill -9 of a build: its children die with it, and the next build clears what it left."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from recenv_helpers import make_wheel, write_env

from pytest_recenv.env.builders import STAMP, ensure_env, make_plan

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux"),
]

# Imported by the build's smoke test: starts a helper in a session of its own (what no
# parent-death signal reaches: think of a build backend uv started), then both keep writing
# into the env being built, as uv or a compiling import would.
WRITER = """import os, subprocess, sys, time
flag = os.environ.get("RECENV_TEST_WRITER")
if flag and os.path.exists(flag):
    loop = (
        "import os, sys, time\\n"
        "for i in range(600):\\n"
        "    os.makedirs(os.path.join(sys.argv[1], 'junk'), exist_ok=True)\\n"
        "    open(os.path.join(sys.argv[1], 'junk', str(i)), 'w').close()\\n"
        "    time.sleep(0.05)\\n"
    )
    helper = subprocess.Popen([sys.executable, "-c", loop, sys.prefix], start_new_session=True)
    open(flag + ".helper", "w").write(str(helper.pid))
    open(flag + ".worker", "w").write(str(os.getpid()))
    exec(loop.replace("sys.argv[1]", "sys.prefix"))
VERSION = "1.0"
"""


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie is dead, waiting to be reaped


def wait_for(path: Path, proc: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 120
    while not path.exists() or not path.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, "the build never got there"
        time.sleep(0.05)
    return int(path.read_text())


def test_kill_9_of_a_build_kills_its_children_and_the_next_build_clears_the_rest(
    tmp_path: Path, offline_pip: Path, cache_dir: Path
) -> None:
    make_wheel(offline_pip, "recenv-writer", "1.0", module=WRITER)
    flag = tmp_path / "write"
    flag.write_text("")
    spec = write_env(tmp_path / "proj", "  - recenv-writer\n")
    key = make_plan(spec).key
    build = subprocess.Popen(
        [sys.executable, "-m", "pytest_recenv.env.cli", "build", "-q", str(spec)],
        env={**os.environ, "RECENV_TEST_WRITER": str(flag)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pids: list[int] = []
    try:
        pids.append(wait_for(Path(f"{flag}.worker"), build))
        pids.append(wait_for(Path(f"{flag}.helper"), build))
        worker, helper = pids
        build.send_signal(signal.SIGKILL)  # the build process alone, not its process group
        build.wait()
        deadline = time.monotonic() + 5
        while running(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not running(worker), "the smoke-test child outlived the killed build"
        assert running(helper)  # out of reach of a parent-death signal: the next build's job
        [left] = cache_dir.glob(f".tmp-{key}-*")

        flag.unlink()
        env = ensure_env(spec, progress=False)

        assert env.created and (env.prefix / STAMP).is_file()
        assert not running(helper), "the next build left the dead build's helper running"
        time.sleep(0.5)  # the helper wrote every 0.05 s: nothing may bring the folder back
        assert not left.exists()
        assert not list(cache_dir.glob(f".tmp-{key}-*"))
        assert not (env.prefix / "junk").exists()
    finally:
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            build.kill()
