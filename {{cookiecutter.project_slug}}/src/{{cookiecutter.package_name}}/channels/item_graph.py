"""Item graph: item-item co-occurrence ("users who took i also took j"), the graph recall channel.

Edge weight between items i and j (both taken by the same user in training)::

    w(i, j) = co(i, j) / (deg(i) ** alpha * deg(j) ** (1 - alpha))

``co`` counts users who have both, ``deg`` users who have each; ``alpha = 0.5`` is cosine
similarity (ItemKNN), which damps the pull of blockbuster items. Only the top ``n_neighbours``
edges per item are kept. A user's score for j sums w(i, j) over the items i in their history.

Fitting (``co_occurrence_neighbours``) uses torch's sparse products; scoring is plain numpy
over the kept edges, so the service loads this channel without importing torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import ScoringChannel

if TYPE_CHECKING:
    import torch

    from ..artifacts import Artifacts


class _CSR:
    """Row -> sorted column indices, with dense row extraction for small batches."""

    def __init__(self, rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int) -> None:
        order = np.lexsort((cols, rows))
        self.cols = np.asarray(cols, dtype=np.int64)[order]
        self.indptr = np.searchsorted(np.asarray(rows)[order], np.arange(n_rows + 1)).astype(
            np.int64
        )
        self.n_cols = n_cols

    def dense_rows(self, rows: np.ndarray) -> torch.Tensor:
        """(len(rows), n_cols) float32 0/1 matrix of the given rows."""
        import torch

        starts, stops = self.indptr[rows], self.indptr[rows + 1]
        lengths = stops - starts
        out = torch.zeros(len(rows), self.n_cols)
        if lengths.sum():
            r = np.repeat(np.arange(len(rows)), lengths)
            # Position of each entry inside self.cols: its row's start plus its offset in the row.
            offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            c = self.cols[np.repeat(starts, lengths) + offsets]
            out[torch.as_tensor(r), torch.as_tensor(c)] = 1.0
        return out


def _sparse(
    rows: np.ndarray, cols: np.ndarray, values: torch.Tensor, shape: tuple[int, int]
) -> torch.Tensor:
    """Coalesced sparse COO matrix with ``values`` at (rows, cols)."""
    import torch

    return torch.sparse_coo_tensor(
        torch.as_tensor(np.stack([rows, cols]), dtype=torch.long),
        values,
        shape,
        check_invariants=False,
    ).coalesce()


def co_occurrence_neighbours(
    users: np.ndarray,
    items: np.ndarray,
    n_users: int,
    n_items: int,
    n_neighbours: int = 100,
    alpha: float = 0.5,
    block_bytes: int = 1 << 27,
) -> tuple[np.ndarray, np.ndarray]:
    """Top neighbours per item: (n_items, n_neighbours) indices (-1 padded) and weights."""
    import torch

    if n_neighbours < 1:
        raise ValueError(f"n_neighbours must be >= 1, got {n_neighbours}")
    n_nb = min(n_neighbours, max(n_items - 1, 1))
    pairs = (
        np.unique(np.stack([users, items], 1), axis=0) if len(users) else np.zeros((0, 2), np.int64)
    )
    by_item = _CSR(pairs[:, 1], pairs[:, 0], n_items, n_users)  # item -> users who took it
    xt = _sparse(pairs[:, 1], pairs[:, 0], torch.ones(len(pairs)), (n_items, n_users))  # 0/1
    degree = torch.as_tensor(np.diff(by_item.indptr), dtype=torch.float64)
    deg_pow_i = degree.clamp(min=1) ** alpha
    deg_pow_j = degree.clamp(min=1) ** (1 - alpha)
    nb_idx = np.full((n_items, n_nb), -1, dtype=np.int64)
    nb_w = np.zeros((n_items, n_nb), dtype=np.float32)
    block = max(1, block_bytes // (8 * max(n_items, n_users)))
    for start in range(0, n_items, block):
        stop = min(n_items, start + block)
        rows = by_item.dense_rows(np.arange(start, stop))  # (block, n_users)
        # (n_items, n_users) sparse @ (n_users, block) -> (n_items, block), transposed
        co = torch.sparse.mm(xt, rows.T.contiguous()).T.double()  # (block, n_items)
        co[torch.arange(stop - start), torch.arange(start, stop)] = 0.0  # no self edges
        w = co / deg_pow_i[start:stop, None] / deg_pow_j[None, :]
        top_w, top_i = torch.topk(w, n_nb, dim=1)
        keep = top_w > 0
        nb_idx[start:stop] = torch.where(keep, top_i, -1).numpy()
        nb_w[start:stop] = torch.where(keep, top_w, 0.0).float().numpy()
    return nb_idx, nb_w


class ItemGraphChannel(ScoringChannel):
    """Scores items by summed co-occurrence weight from the user's training history."""

    name = "item_graph"

    def __init__(
        self,
        train_users: np.ndarray,
        train_items: np.ndarray,
        n_users: int,
        n_items: int,
        n_neighbours: int = 100,
        alpha: float = 0.5,
    ) -> None:
        neighbours, weights = co_occurrence_neighbours(
            train_users, train_items, n_users, n_items, n_neighbours, alpha
        )
        pairs = np.unique(np.stack([train_users, train_items], 1).astype(np.int64), axis=0)
        indptr = np.searchsorted(pairs[:, 0], np.arange(n_users + 1)).astype(np.int64)
        self._init(neighbours, weights, indptr, pairs[:, 1].copy())

    def _init(
        self, neighbours: Any, weights: Any, history_indptr: Any, history_indices: Any
    ) -> None:
        self.neighbours = np.asarray(neighbours, dtype=np.int64)  # (n_items, n_nb), -1 padded
        self.weights = np.asarray(weights, dtype=np.float32)  # (n_items, n_nb)
        self.history_indptr = np.asarray(history_indptr, dtype=np.int64)  # (n_users + 1,)
        self.history_indices = np.asarray(history_indices, dtype=np.int64)  # (nnz,)
        self.n_items = len(self.neighbours)
        self.n_users = len(self.history_indptr) - 1
        # For scoring: the -1 padding points at item 0 with weight 0, which adds nothing, so
        # sums need no mask (an exact no-op: x + 0.0 == x).
        kept = self.neighbours >= 0
        self._targets = np.where(kept, self.neighbours, 0)
        self._target_weights = np.where(kept, self.weights, np.float32(0.0))

    @classmethod
    def from_arrays(
        cls,
        neighbours: np.ndarray,
        weights: np.ndarray,
        history_indptr: np.ndarray,
        history_indices: np.ndarray,
    ) -> ItemGraphChannel:
        """The channel from a fitted graph and the users' histories in CSR form."""
        channel = cls.__new__(cls)
        channel._init(neighbours, weights, history_indptr, history_indices)
        return channel

    @classmethod
    def from_artifacts(cls, artifacts: Artifacts) -> ItemGraphChannel:
        # The seen items of the artifacts are the training histories the graph was fitted on.
        return cls.from_arrays(
            artifacts.neighbours,
            artifacts.neighbour_weights,
            artifacts.seen_indptr,
            artifacts.seen_indices,
        )

    def history(self, user: int) -> np.ndarray:
        """The user's training items, each once (the seeds of ``score``)."""
        return np.unique(
            self.history_indices[self.history_indptr[user] : self.history_indptr[user + 1]]
        )

    def score(self, users: np.ndarray) -> np.ndarray:
        users = self._check_users(users, self.n_users)
        return self.score_seeds([self.history(int(u)) for u in users])

    def score_seeds(self, seeds: Sequence[np.ndarray]) -> np.ndarray:
        """(batch,) lists of seed items -> (batch, n_items) summed edge weights from the seeds."""
        lengths = np.fromiter((len(s) for s in seeds), dtype=np.int64, count=len(seeds))
        out = np.zeros(len(seeds) * self.n_items, dtype=np.float64)
        if lengths.sum():
            flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in seeds])
            rows = np.repeat(np.arange(len(seeds)), lengths)  # (n_seeds,)
            # Row r's score for item j sits at r * n_items + j of the flat output.
            at = rows[:, None] * self.n_items + self._targets[flat]  # (n_seeds, n_nb)
            out += np.bincount(
                at.ravel(), weights=self._target_weights[flat].ravel(), minlength=len(out)
            )
        return out.reshape(len(seeds), self.n_items).astype(np.float32)
