"""What a killed build leaves behind, and how the next build (or ``recenv gc``) clears it.

A build folder is ``<cache>/.tmp-<key>-<pid>`` (uv) or the prefix ``<cache>/<key>`` itself,
marked by ``<cache>/<key>.unfinished`` until its stamp is written (conda family, which builds
in place).  Every process a build starts runs with ``RECENV_BUILD_DIR=<that folder>`` in its
environment (inherited by whatever it starts in turn: uv's build backends, the smoke test's
imports) and, on Linux, with ``PR_SET_PDEATHSIG`` = SIGKILL (``runner.die_with_parent``), so
``kill -9`` of the build kills its direct children at once.  Anything further down that
outlived it is found by that variable (``/proc/<pid>/environ``) and killed before the folder
is removed, so nothing writes into it again after the removal.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Mapping
from pathlib import Path

MARK = "RECENV_BUILD_DIR"
UNFINISHED = ".unfinished"


def marked(env: Mapping[str, str] | None, folder: Path) -> dict[str, str]:
    """``env`` (default: ours) with the build folder named, for every process of a build."""
    return {**(os.environ if env is None else env), MARK: os.path.abspath(folder)}


def processes_in(folder: Path) -> list[int]:
    """PIDs of this user's processes started by a build of ``folder`` (Linux; else none)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    needle = f"{MARK}={os.path.abspath(folder)}".encode()
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or another user's
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def kill_processes_in(folder: Path, wait: float = 5.0) -> list[int]:
    """SIGKILL every process a dead build of ``folder`` left running; wait until they are gone
    (a zombie, dead but not yet reaped by its parent, counts as gone)."""
    pids = processes_in(folder)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and any(_running(pid) for pid in pids):
        time.sleep(0.02)
    return pids


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def clear(folder: Path) -> None:
    """Kill what still writes into ``folder``, then remove it."""
    kill_processes_in(folder)
    shutil.rmtree(folder, ignore_errors=True)


def clear_before_build(root: Path, key: str, prefix: Path) -> None:
    """Under the build lock: remove every earlier unfinished build of ``key``."""
    for stale in root.glob(f".tmp-{key}-*"):
        clear(stale)
    if prefix.exists():  # an unstamped prefix: a killed in-place build, or a broken env
        clear(prefix)
    with contextlib.suppress(OSError):
        (root / f"{key}{UNFINISHED}").unlink()


def remove_unfinished(root: Path, key: str, folder: Path, dry_run: bool = False) -> bool:
    """Remove an unfinished build unless a live build holds ``<key>.lock``; True when held."""
    from filelock import FileLock, Timeout

    try:
        with FileLock(str(root / f"{key}.lock"), timeout=0):
            if not dry_run:
                clear(folder)
                if folder.name == key:
                    with contextlib.suppress(OSError):
                        (root / f"{key}{UNFINISHED}").unlink()
    except Timeout:
        return True
    return False
