"""The warnings pytest-recenv emits: one base class, ``RecenvWarning`` (a ``PytestWarning``, so
``-W error::pytest.PytestWarning`` and ``error::pytest_recenv.RecenvWarning`` both catch them).

Apart from :mod:`pytest_recenv.errors` because it imports pytest: the ``recenv`` command line
imports this module only on the path that warns.
"""

from __future__ import annotations

import pytest


class RecenvWarning(pytest.PytestWarning):
    """Base class of every warning pytest-recenv emits."""


class RecenvPinningWarning(RecenvWarning):
    """xdist workers could not get GPUs of their own (oversubscribed, or CUDA was already up)."""


class InterpreterFallbackWarning(RecenvWarning):
    """The pinned Python is not installed; another one was used (python_policy='warn')."""


class BuildFallbackWarning(RecenvWarning):
    """A CPU spec got a CUDA torch: the user's indexes offer no CPU build of it for this Python."""
