"""EASE: a closed-form linear item-item model, the strongest simple baseline (Steck, WWW 2019).

With X the (n_users, n_items) 0/1 training matrix and a ridge weight ``l2``::

    P = (X^T X + l2 * I)^-1                   # (n_items, n_items)
    B = I - P / diag(P)                       # column j divided by P[j, j]
    B[j, j] = 0                               # an item may not predict itself

A user's scores are ``x_u @ B``: the training history times the item-item weights. It is one
matrix inverse, so it fits in well under a second for a catalog of a few thousand items, but
``B`` is dense: memory grows with n_items**2 (4 bytes each), which limits EASE to catalogs of
tens of thousands of items. ``l2`` is chosen on the validation split (``tune_ease``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data import group_by_user
from .base import ScoringChannel

if TYPE_CHECKING:
    from ..artifacts import Artifacts

# 30k items: B is 3.6 GB of float32, the inverse needs twice that. Past it use another channel.
MAX_ITEMS = 30_000
L2_GRID = (50.0, 100.0, 200.0, 400.0, 800.0, 1600.0)
WEIGHTS = "ease.weights.npy"  # the artifacts file (``channel_arrays``) that holds B


def fit_ease(
    users: np.ndarray,
    items: np.ndarray,
    n_items: int,
    l2: float = 400.0,
    device: Any = "cpu",
) -> np.ndarray:
    """The (n_items, n_items) float32 EASE weight matrix from training (user, item) pairs.

    ``device="cuda"`` does the Gram matrix and the inverse on the GPU (float64 either way:
    the inverse of a Gram matrix loses digits in float32).
    """
    import torch

    if not l2 > 0:
        raise ValueError(f"ease: l2={l2} must be > 0 (it makes X^T X + l2*I invertible)")
    if n_items > MAX_ITEMS:
        raise ValueError(
            f"ease: {n_items} items need a dense {n_items}x{n_items} weight matrix "
            f"(~{n_items**2 * 4 / 1e9:.0f} GB); EASE supports up to {MAX_ITEMS} items. "
            "Use the item graph or two-tower channel for this catalog."
        )
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    if len(items) and (items.min() < 0 or items.max() >= n_items):
        raise ValueError(f"ease: item index out of range 0..{n_items - 1}")
    pairs = np.unique(np.stack([users, items], 1), axis=0) if len(users) else np.zeros((0, 2))
    n_users = int(pairs[:, 0].max()) + 1 if len(pairs) else 0
    dev = torch.device(device)
    x = torch.zeros(n_users, n_items, dtype=torch.float64, device=dev)
    if len(pairs):
        rows = torch.as_tensor(pairs[:, 0], dtype=torch.long, device=dev)
        x[rows, torch.as_tensor(pairs[:, 1], dtype=torch.long, device=dev)] = 1.0
    gram = x.T @ x  # (n_items, n_users) @ (n_users, n_items) -> (n_items, n_items)
    gram.diagonal().add_(l2)
    p = torch.linalg.inv(gram)
    b = -p / p.diagonal()[None, :]  # off-diagonal of I - P / diag(P); the diagonal is zeroed
    b.diagonal().zero_()
    return b.float().cpu().numpy()


class EaseChannel(ScoringChannel):
    """Scores = training history (0/1 row) @ EASE weights. Users without history score 0.

    Scoring is numpy (no torch), so a service can load it from an artifacts folder.
    """

    name = "ease"

    def __init__(
        self,
        weights: np.ndarray,
        history_indptr: np.ndarray,
        history_indices: np.ndarray,
        l2: float = float("nan"),
    ) -> None:
        weights = np.asarray(weights)
        if weights.ndim != 2 or weights.shape[0] != weights.shape[1]:
            raise ValueError(f"ease: weights must be square, got shape {weights.shape}")
        self.weights = np.ascontiguousarray(weights, dtype=np.float32)
        self.history_indptr = np.asarray(history_indptr, dtype=np.int64)  # (n_users + 1,)
        self.history_indices = np.asarray(history_indices, dtype=np.int64)  # (nnz,)
        self.n_items = int(weights.shape[0])
        self.n_users = len(self.history_indptr) - 1
        self.l2 = l2
        # The 0/1 history rows: each user's distinct items, ascending (CSR), what ``score`` sums.
        owner = np.repeat(np.arange(self.n_users), np.diff(self.history_indptr))
        pairs = np.unique(owner * self.n_items + self.history_indices)
        self._rows_indptr = np.searchsorted(pairs, np.arange(self.n_users + 1) * self.n_items)
        self._rows = pairs % self.n_items if self.n_items else pairs

    @classmethod
    def fit(
        cls,
        train_users: np.ndarray,
        train_items: np.ndarray,
        n_users: int,
        n_items: int,
        l2: float = 400.0,
        device: Any = "cpu",
    ) -> EaseChannel:
        """Fit on training pairs; the same pairs are the histories that ``score`` reads."""
        weights = fit_ease(train_users, train_items, n_items, l2, device)
        pairs = np.unique(np.stack([train_users, train_items], 1).astype(np.int64), axis=0)
        indptr = np.searchsorted(pairs[:, 0], np.arange(n_users + 1)).astype(np.int64)
        return cls(weights, indptr, pairs[:, 1].copy(), l2)

    @classmethod
    def from_artifacts(cls, artifacts: Artifacts) -> EaseChannel:
        """B from ``ease.weights.npy``; the histories are the artifacts' seen items."""
        arrays = getattr(artifacts, "channel_arrays", {}) or {}
        if WEIGHTS not in arrays:
            raise KeyError(
                f"{artifacts.directory}: no {WEIGHTS}; rebuild the artifacts with the EASE "
                "channel fitted (`index` stage)"
            )
        return cls(arrays[WEIGHTS], artifacts.seen_indptr, artifacts.seen_indices)

    def channel_arrays(self) -> dict[str, np.ndarray]:
        """What ``save_artifacts(channel_arrays=...)`` must store to rebuild this channel."""
        return {WEIGHTS: self.weights}

    def score(self, users: np.ndarray) -> np.ndarray:
        """x_u @ B for each user: the sum of B's rows of the distinct items the user saw.

        The same numbers as the dense (batch, n_items) @ (n_items, n_items) product of the 0/1
        histories, in O(history x n_items) per user instead of O(n_items**2): a request reads
        the rows of its own history, not all of B (tests/test_ease.py checks both agree). Each
        user's rows are summed on their own, in item order, so a user's scores do not depend on
        the batch around it: the service (one user) and evaluation (batches) get the same floats.
        """
        users = self._check_users(users, self.n_users)
        out = np.zeros((len(users), self.n_items), dtype=np.float32)  # users without history: 0
        for r, u in enumerate(users.tolist()):
            items = self._rows[self._rows_indptr[u] : self._rows_indptr[u + 1]]
            if len(items):
                out[r] = self.weights[items].sum(0)  # (len(items), n_items) -> (n_items,)
        return out


def tune_ease(
    train: tuple[np.ndarray, np.ndarray],
    val_truth: Sequence[np.ndarray],
    n_users: int,
    n_items: int,
    grid: Sequence[float] = L2_GRID,
    k: int = 10,
    device: Any = "cpu",
) -> tuple[EaseChannel, dict[float, float]]:
    """Fit EASE for each ``l2`` in ``grid``; keep the best validation Recall@k.

    Returns the best channel and ``{l2: validation recall@k}``. Only validation is read:
    the test split never decides anything.
    """
    from ..evaluation import rank_metrics  # torch: fitting only, not at import (base.py)

    if not grid:
        raise ValueError("ease: empty l2 grid; give at least one value")
    seen = group_by_user(np.asarray(train[0]), np.asarray(train[1]), n_users)
    scores: dict[float, float] = {}
    best: EaseChannel | None = None
    for l2 in grid:
        channel = EaseChannel.fit(train[0], train[1], n_users, n_items, float(l2), device)
        scores[float(l2)] = rank_metrics(channel.score, val_truth, seen, n_items, [k])[
            f"recall@{k}"
        ]
        if best is None or scores[float(l2)] > scores[best.l2]:
            best = channel
    return best, scores  # type: ignore[return-value]
