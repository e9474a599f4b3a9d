"""Two-tower channel: score = user embedding . item embedding (cosine; towers are normalised)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..retrieval import search_excluding
from .base import ScoringChannel

if TYPE_CHECKING:
    from ..artifacts import Artifacts


class TwoTowerChannel(ScoringChannel):
    """Exact scores for evaluation; ``recommend`` goes through a faiss index when given one.

    The user embeddings are computed once, at ``index`` time, for every known user, so
    answering needs no model: a lookup and a search.
    """

    name = "two_tower"

    def __init__(
        self, user_embeddings: np.ndarray, item_embeddings: np.ndarray, index: Any = None
    ) -> None:
        if user_embeddings.shape[1] != item_embeddings.shape[1]:
            raise ValueError(
                f"two_tower: user dim {user_embeddings.shape[1]} != item dim {item_embeddings.shape[1]}"
            )
        self.user_embeddings = np.ascontiguousarray(user_embeddings, dtype=np.float32)
        self.item_embeddings = np.ascontiguousarray(item_embeddings, dtype=np.float32)
        self.n_users, self.n_items = len(user_embeddings), len(item_embeddings)
        self.index = index

    @classmethod
    def from_artifacts(cls, artifacts: Artifacts) -> TwoTowerChannel:
        return cls(artifacts.user_embeddings, artifacts.item_embeddings, artifacts.index)

    def score(self, users: np.ndarray) -> np.ndarray:
        users = self._check_users(users, self.n_users)
        return self.user_embeddings[users] @ self.item_embeddings.T  # (b, dim) @ (dim, n_items)

    def recommend(
        self, users: np.ndarray, k: int, exclude: Sequence[np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.index is None:
            return super().recommend(users, k, exclude)
        users = self._check_users(users, self.n_users)
        self._check_k(k)
        return search_excluding(self.index, self.user_embeddings[users], k, exclude)
