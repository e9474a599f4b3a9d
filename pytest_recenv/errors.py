"""The error types of pytest-recenv and ``Problem``, the one finding type of every check.

No pytest here and nothing else of the package: the ``recenv`` command line, the checks and the
builders all raise these, and importing them costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One finding, printed as ``file:line: message``."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class RecenvError(Exception):
    """A user-facing failure: the message says what was expected, what was found, and the fix."""


class BuildError(RecenvError):
    """A backend ran and failed; the message carries the failing step and its output tail."""


class SpecError(RecenvError, ValueError):
    """The file cannot be used; ``problems`` holds every finding, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
