"""``recenv`` subcommands beyond check/build/key/run: lock, drift, gc, doctor, dockerfile."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def add_subcommands(sub: Any, add_build_options: Callable[..., None]) -> None:
    del sub, add_build_options


__all__ = ["add_subcommands", "argparse"]
