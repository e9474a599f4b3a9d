"""Retrieve -> rank: merge the recall channels' candidates and order them with the ranker.

Importing this package does not import torch (the command line builds its flags from
``RankerConfig``); the training names load ``ranking.train``, and torch, on first use.
"""

from __future__ import annotations

from typing import Any

from .candidates import DEFAULT_N, Candidates, feature_names, generate_candidates
from .config import RankerConfig
from .data import ChannelFactory, RankingData, build_ranking_data, fold_split

_TRAINING = ("RankerResult", "evaluate_chain", "listwise_loss", "train_ranker")


def __getattr__(name: str) -> Any:
    if name in _TRAINING:
        from . import train

        return getattr(train, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_N",
    "Candidates",
    "ChannelFactory",
    "RankerConfig",
    "RankerResult",
    "RankingData",
    "build_ranking_data",
    "evaluate_chain",
    "feature_names",
    "fold_split",
    "generate_candidates",
    "listwise_loss",
    "train_ranker",
]
