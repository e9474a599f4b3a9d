"""Progress for long build steps: a rich spinner on a terminal, plain lines in CI logs."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any


class Progress:
    def __init__(self, enabled: bool, title: str) -> None:
        self.enabled = enabled
        self.title = title
        self._status: Any = None
        self._t0 = time.perf_counter()

    def __enter__(self) -> Progress:
        if self.enabled and sys.stderr.isatty():
            from rich.console import Console

            self._status = Console(stderr=True).status(self.title)
            self._status.start()
        elif self.enabled:
            print(self.title, file=sys.stderr, flush=True)
        return self

    def step(self, text: str) -> None:
        elapsed = time.perf_counter() - self._t0
        if self._status is not None:
            self._status.update(f"{self.title}: {text} [{elapsed:.0f} s]")
        elif self.enabled:
            print(f"  {text} [{elapsed:.1f} s]", file=sys.stderr, flush=True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._status is not None:
            self._status.stop()
