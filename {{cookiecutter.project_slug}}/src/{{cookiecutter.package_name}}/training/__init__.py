"""Training: ``train(cfg) -> Metrics`` with device choice, AMP, DDP, checkpoints and run snapshots."""

from __future__ import annotations

from .config import Metrics, TrainConfig
from .loop import CheckpointMismatch, load_trained, prepare_split, train, two_tower_embeddings

__all__ = [
    "CheckpointMismatch",
    "Metrics",
    "TrainConfig",
    "load_trained",
    "prepare_split",
    "train",
    "two_tower_embeddings",
]
