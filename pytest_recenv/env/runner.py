"""``recenv run``: run a command in a built environment the way a process supervisor would.

What a user of ``tini``, ``uv run`` or ``conda run`` expects, and why each piece is here:

* SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to ``recenv`` are passed on to the
  command, once.  A signal the terminal's line discipline sends (Ctrl-C, Ctrl-\\, hang-up) goes to
  the whole foreground process group, the command included, so it is *not* passed on again:
  uvicorn, for one, treats a second SIGINT as "exit now, without finishing requests".  On Linux
  the kernel says who sent a signal (``si_code``), which is how the two are told apart.
* ``recenv`` ends the way its command ended: with its exit status, or killed by the same signal
  (a shell shows ``$? = 128+N``, Python's ``subprocess`` ``returncode = -N``); no traceback.
* On Linux the command gets ``PR_SET_PDEATHSIG``: if ``recenv`` itself is killed with SIGKILL, the
  kernel sends the command SIGKILL, so no server is left orphaned and still answering.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

FORWARDED = tuple(
    getattr(signal, name)
    for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
    if hasattr(signal, name)
)
SI_KERNEL = 0x80  # siginfo.si_code of a signal the kernel raised (tty line discipline)
_PR_SET_PDEATHSIG = 1
_CORE_SIGNALS = {
    getattr(signal, n)
    for n in ("SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE", "SIGSEGV", "SIGSYS")
    if hasattr(signal, n)
}


def run(cmd: Sequence[str], env: Mapping[str, str], cwd: Path | str | None = None) -> int:
    """Run ``cmd``, passing signals on; return its exit status, or die of the signal it died of.

    Returns only for a normal exit (or where the platform cannot re-raise the signal: then
    ``128 + N``).
    """
    if not hasattr(signal, "sigtimedwait"):  # Windows, macOS: no siginfo; Python handlers
        return _run_with_handlers(cmd, env, cwd)
    wanted = {*FORWARDED, signal.SIGCHLD}
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, wanted)
    try:
        proc = subprocess.Popen(
            list(cmd), env=dict(env), cwd=cwd, preexec_fn=_child_setup(old_mask)
        )
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        raise
    # Fallback for a signal delivered to another thread (the mask above is this thread's):
    # Python runs the handler here, in the main thread.
    previous = {}
    for sig in FORWARDED:
        with contextlib.suppress(ValueError):  # not the main thread: the mask alone
            previous[sig] = signal.signal(sig, lambda sig, _frame: _forward(proc, sig))
    try:
        while proc.poll() is None:
            info = signal.sigtimedwait(wanted, 0.5)
            if info is None or info.si_signo == signal.SIGCHLD:
                continue
            if info.si_code == SI_KERNEL and _same_group(proc.pid):
                continue  # from the terminal to the whole foreground group: the command has it
            _forward(proc, info.si_signo)
    finally:  # as before, for callers that go on (a signal still pending is delivered now)
        for sig, handler in previous.items():
            if handler is not None:  # None: set outside Python, nothing to put back
                signal.signal(sig, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    return _end_like(proc.returncode)


def _child_setup(old_mask: set[signal.Signals]) -> Callable[[], None]:
    """Runs in the child between fork and exec: the parent's signal mask back, and on Linux
    SIGKILL when the parent dies."""
    die = die_with_parent()

    def setup() -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        if die is not None:
            die()

    return setup


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGKILL when this process dies (Linux
    ``PR_SET_PDEATHSIG``; checked again after setting it: the parent may already be gone).
    None where the platform has no such thing.  The "parent" is the *thread* that starts the
    child, so start children from a thread that outlives them (or waits for them)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def setup() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return setup


def _same_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == os.getpgrp()
    except OSError:  # already gone
        return True


def _forward(proc: subprocess.Popen, sig: int) -> None:
    # OSError: it exited meanwhile; ValueError: a signal Windows cannot send
    with contextlib.suppress(OSError, ValueError):
        proc.send_signal(sig)


def _end_like(returncode: int) -> int:
    """The command's exit status; for a command killed by signal N, the same death."""
    if returncode >= 0:
        return returncode
    sig = -returncode
    sys.stdout.flush()
    sys.stderr.flush()
    with contextlib.suppress(Exception):
        if sig in _CORE_SIGNALS:  # the command may have dumped core; recenv should not
            import resource

            _, hard = resource.getrlimit(resource.RLIMIT_CORE)
            resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
        signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
        os.kill(os.getpid(), sig)
    return 128 + sig  # the signal did not end us (not deliverable, or no default death)


def _run_with_handlers(cmd: Sequence[str], env: Mapping[str, str], cwd: Path | str | None) -> int:
    """Where the sender of a signal cannot be known: SIGINT is assumed to come from the
    terminal while we are its foreground process group, everything else is passed on."""
    proc = subprocess.Popen(list(cmd), env=dict(env), cwd=cwd)

    def handler(sig: int, _frame: object) -> None:
        if sig == signal.SIGINT and _terminal_foreground() and _same_group(proc.pid):
            return
        _forward(proc, sig)

    for sig in FORWARDED:
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig, handler)
    while True:
        with contextlib.suppress(KeyboardInterrupt):
            return _end_like(proc.wait())


def _terminal_foreground() -> bool:
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError, AttributeError):
        return False
