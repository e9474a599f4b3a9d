"""Popularity: the same list for everyone. The cold-start channel and the baseline to beat."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .base import ScoringChannel, top_k

if TYPE_CHECKING:
    from ..artifacts import Artifacts


class PopularityChannel(ScoringChannel):
    """Scores every item by its number of training (user, item) pairs."""

    name = "popularity"

    def __init__(self, train_items: np.ndarray, n_items: int, n_users: int | None = None) -> None:
        train_items = np.asarray(train_items, dtype=np.int64)
        if len(train_items) and (train_items.min() < 0 or train_items.max() >= n_items):
            raise ValueError(f"popularity: item index out of range 0..{n_items - 1}")
        self.n_items = n_items
        self.n_users = n_users
        self.counts = np.bincount(train_items, minlength=n_items).astype(np.float32)

    @classmethod
    def from_counts(cls, counts: np.ndarray, n_users: int | None = None) -> PopularityChannel:
        """The channel from per-item training counts (n_items,)."""
        channel = cls(np.zeros(0, dtype=np.int64), len(counts), n_users)
        channel.counts = np.asarray(counts, dtype=np.float32)
        return channel

    @classmethod
    def from_artifacts(cls, artifacts: Artifacts) -> PopularityChannel:
        # popularity.npy holds item indices most popular first, popularity_scores.npy their counts.
        counts = np.zeros(artifacts.n_items, dtype=np.float32)
        counts[artifacts.popularity] = artifacts.popularity_scores
        return cls.from_counts(counts, artifacts.n_users)

    def ranking(self) -> np.ndarray:
        """Item indices, most popular first (ties: lower index first)."""
        return np.argsort(-self.counts, kind="stable")

    def score(self, users: np.ndarray) -> np.ndarray:
        users = np.asarray(users).reshape(-1)
        if self.n_users is not None:
            self._check_users(users, self.n_users)
        return np.broadcast_to(self.counts, (len(users), self.n_items)).copy()

    def recommend_to_anyone(
        self, k: int, exclude: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` for a user the model does not know (same ranking as ``recommend``): (k,) each."""
        self._check_k(k)
        excluded: Sequence[np.ndarray] | None = None if exclude is None else [exclude]
        ids, scores = top_k(self.counts[None, :], k, excluded)
        return ids[0], scores[0]
