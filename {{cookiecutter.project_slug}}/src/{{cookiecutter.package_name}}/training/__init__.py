"""Training: ``train(cfg) -> Metrics`` with device choice, AMP, DDP, checkpoints and run snapshots.

``TrainConfig`` and ``Metrics`` import without torch: the command line reads the config's
flags for every command, serving included, and the service process never loads torch. The
loop's names import torch on first use.
"""

from __future__ import annotations

from typing import Any

from .config import Metrics, TrainConfig
from .run_data import RunDataChanged

_FROM_LOOP = (
    "CheckpointMismatch",
    "load_trained",
    "prepare_split",
    "train",
    "two_tower_embeddings",
)

__all__ = ["Metrics", "RunDataChanged", "TrainConfig", *_FROM_LOOP]


def __getattr__(name: str) -> Any:
    if name in _FROM_LOOP:
        from . import loop

        return getattr(loop, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
