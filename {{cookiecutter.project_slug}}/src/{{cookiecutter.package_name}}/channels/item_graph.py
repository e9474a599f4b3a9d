"""Item graph: item-item co-occurrence ("users who took i also took j"), the graph recall channel.

Edge weight between items i and j (both taken by the same user in training)::

    w(i, j) = co(i, j) / (deg(i) ** alpha * deg(j) ** (1 - alpha))

``co`` counts users who have both, ``deg`` users who have each; ``alpha = 0.5`` is cosine
similarity (ItemKNN), which damps the pull of blockbuster items. Only the top ``n_neighbours``
edges per item are kept. A user's score for j sums w(i, j) over the items i in their history.
"""

from __future__ import annotations

import numpy as np
import torch

from .base import ScoringChannel


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
        self.n_users, self.n_items = n_users, n_items
        self.neighbours, self.weights = co_occurrence_neighbours(
            train_users, train_items, n_users, n_items, n_neighbours, alpha
        )
        self.history = _CSR(np.asarray(train_users), np.asarray(train_items), n_users, n_items)
        valid = self.neighbours >= 0
        src = np.repeat(np.arange(n_items), valid.sum(1))
        # graph[i, j] = w(i, j) for the kept edges; (n_items, n_items) sparse
        self.graph = _sparse(
            src, self.neighbours[valid], torch.as_tensor(self.weights[valid]), (n_items, n_items)
        )

    def score(self, users: np.ndarray) -> np.ndarray:
        users = self._check_users(users, self.n_users)
        hist = self.history.dense_rows(users)  # (batch, n_items) 0/1
        # (n_items, n_items)^T sparse @ (n_items, batch) dense -> (n_items, batch)
        scores = torch.sparse.mm(self.graph.t(), hist.T.contiguous()).T
        return scores.numpy().astype(np.float32)
