"""One interface for every recall channel: score all items for a batch of users."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Channel(Protocol):
    """A recall channel. ``score`` is what evaluation uses (full ranking);
    ``recommend`` is what a service calls (top-K with exclusions)."""

    name: str
    n_items: int

    def score(self, users: np.ndarray) -> np.ndarray:
        """(batch,) user indices -> (batch, n_items) float32 scores, higher is better."""
        ...

    def recommend(
        self, users: np.ndarray, k: int, exclude: Sequence[np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (item indices, scores), each (batch, k), never returning excluded items."""
        ...


class ScoringChannel:
    """Base class: ``recommend`` by masking and ranking ``score``."""

    name = "channel"
    n_items = 0

    def score(self, users: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _check_users(self, users: np.ndarray, n_users: int) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64).reshape(-1)
        bad = users[(users < 0) | (users >= n_users)]
        if len(bad):
            raise KeyError(
                f"{self.name}: unknown user index {int(bad[0])}; expected 0..{n_users - 1}"
            )
        return users

    def _check_k(self, k: int) -> None:
        if not 1 <= k <= self.n_items:
            raise ValueError(
                f"{self.name}: k={k} must be between 1 and the catalog size {self.n_items}"
            )

    def recommend(
        self, users: np.ndarray, k: int, exclude: Sequence[np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        self._check_k(k)
        scores = self.score(np.asarray(users)).astype(np.float32, copy=True)
        if exclude is not None:
            for row, items in enumerate(exclude):
                scores[row, np.asarray(items, dtype=np.int64)] = -np.inf
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(scores, top, 1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        return np.take_along_axis(top, order, 1), np.take_along_axis(top_scores, order, 1)
