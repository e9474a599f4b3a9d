"""Popularity: the same list for everyone. The cold-start channel and the baseline to beat."""

from __future__ import annotations

import numpy as np

from .base import ScoringChannel


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

    def ranking(self) -> np.ndarray:
        """Item indices, most popular first (ties: lower index first)."""
        return np.argsort(-self.counts, kind="stable")

    def score(self, users: np.ndarray) -> np.ndarray:
        users = np.asarray(users).reshape(-1)
        if self.n_users is not None:
            self._check_users(users, self.n_users)
        return np.broadcast_to(self.counts, (len(users), self.n_items)).copy()
