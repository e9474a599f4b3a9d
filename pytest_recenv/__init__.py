"""pytest-recenv: hardware-honest test markers and environment-as-code builds.

The pytest plugin itself lives in :mod:`pytest_recenv.plugin` (loaded through the
``pytest11`` entry point); the ``recenv`` command line in :mod:`pytest_recenv.cli`.
Nothing here imports torch or faiss.
"""

from __future__ import annotations

import pytest

__version__ = "0.1.0"


class RecenvWarning(pytest.PytestWarning):
    """Base class of every warning pytest-recenv emits."""


__all__ = ["RecenvWarning", "__version__"]
