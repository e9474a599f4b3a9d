"""Leases: an environment in use is never deleted under its user.

Whoever uses a cached environment (``recenv run`` for its command's lifetime, the ``recenv_env``
fixture and ``--recenv-build`` for the pytest session, ``ensure_env(..., lease=True)``) holds a
*shared* ``flock`` on ``<cache>/<key>.lease``; ``recenv gc`` removes an environment only while it
holds the *exclusive* lock on the same file, taken without waiting (``LOCK_EX | LOCK_NB``).  So
any number of users share an env, and gc skips one that is in use instead of deleting it.  A
user that arrives while gc holds the exclusive lock waits for the removal to end, then finds no
stamp and builds anew.  The OS drops the lock when its holder dies (``kill -9`` included), so
a crashed user never pins an env for ever.  The lease file is separate from the build lock
(``<key>.lock``): holding a lease must not stop a rebuild of a broken env, nor a build stop a
lease.

POSIX only (``fcntl``); elsewhere leases are no-ops (Windows refuses to delete files in use).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

SUFFIX = ".lease"


def lease_path(root: Path, key: str) -> Path:
    return root / f"{key}{SUFFIX}"


class Lease:
    """A shared lock on one environment's lease file, held until ``release()``."""

    def __init__(self, root: Path, key: str) -> None:
        self.path = lease_path(root, key)
        self._fd: int | None = None
        if fcntl is None:
            return
        try:
            root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by children
        except OSError:  # a read-only cache: nobody can remove anything from it either
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)  # waits only while gc is removing this env
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the descriptor drops the lock

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


@contextlib.contextmanager
def exclusive(root: Path, key: str) -> Iterator[bool]:
    """Yield True while holding the exclusive lock (nobody uses the env), False when a user
    holds a lease.  gc removes an env only inside ``with exclusive(...) as free: if free:``."""
    if fcntl is None:
        yield True
        return
    path = lease_path(root, key)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
