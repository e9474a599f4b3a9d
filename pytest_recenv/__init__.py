"""pytest-recenv: hardware-honest test markers and environment-as-code builds.

The pytest plugin itself lives in :mod:`pytest_recenv.plugin` (loaded through the
``pytest11`` entry point); the ``recenv`` command line in :mod:`pytest_recenv.env.cli`.
Nothing here imports torch or faiss.
"""

from __future__ import annotations

import pytest

__version__ = "0.1.0"


class RecenvWarning(pytest.PytestWarning):
    """Base class of every warning pytest-recenv emits."""


class RecenvPinningWarning(RecenvWarning):
    """xdist workers could not get GPUs of their own (oversubscribed, or CUDA was already up)."""


from pytest_recenv.hardware.fixtures import device_params  # noqa: E402  (needs RecenvWarning defined first)

__all__ = ["RecenvPinningWarning", "RecenvWarning", "__version__", "device_params"]
