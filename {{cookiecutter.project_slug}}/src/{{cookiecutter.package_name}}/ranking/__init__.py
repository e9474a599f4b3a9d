"""Retrieve -> rank: merge the recall channels' candidates and order them with the ranker."""

from __future__ import annotations

from .candidates import DEFAULT_N, Candidates, feature_names, generate_candidates
from .data import ChannelFactory, RankingData, build_ranking_data, fold_split
from .train import RankerConfig, RankerResult, evaluate_chain, listwise_loss, train_ranker

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
