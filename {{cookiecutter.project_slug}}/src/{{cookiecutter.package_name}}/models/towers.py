"""User and item towers: plain ``nn.Module``s that map ids and side features to unit vectors.

Inputs and outputs (every tensor's first dimension is the batch)::

    ItemTower(item_ids (b,), item_features (b, f_i))                       -> (b, dim)
    UserTower(user_ids (b,), user_features (b, f_u), user_history (b, L))  -> (b, dim)

Features are int64 categorical codes (``f`` may be 0). ``user_history`` holds item indices the
user interacted with, padded with ``n_items``; the user tower mean-pools its own embedding of
those items (YouTube-DNN style), which lets a user with few interactions borrow strength from
items everyone shares instead of relying only on a per-user id vector. Outputs are
L2-normalised, so a dot product is a cosine similarity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ItemTower(nn.Module):
    """ID embedding + one embedding per categorical feature -> MLP (+ id skip) -> unit vector."""

    def __init__(
        self, n_items: int, cardinalities: list[int], dim: int = 64, hidden: int = 128, feature_dim: int = 16
    ) -> None:
        super().__init__()
        if n_items < 1 or dim < 1:
            raise ValueError(f"a tower needs n_ids >= 1 and dim >= 1, got n_ids={n_items}, dim={dim}")
        self.n_ids = n_items
        self.id_embedding = nn.Embedding(n_items, dim)
        self.feature_embeddings = nn.ModuleList(nn.Embedding(c, feature_dim) for c in cardinalities)
        self.mlp = nn.Sequential(
            nn.Linear(dim + feature_dim * len(cardinalities), hidden), nn.ReLU(), nn.Linear(hidden, dim)
        )
        nn.init.normal_(self.id_embedding.weight, std=0.1)

    def forward(self, ids: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        own = self.id_embedding(ids)  # (b, dim)
        parts = [own]
        for k, embedding in enumerate(self.feature_embeddings):
            parts.append(embedding(features[:, k]))  # (b, feature_dim)
        x = torch.cat(parts, dim=-1)  # (b, dim + f * feature_dim)
        # The skip keeps a pure-id path: with uninformative features this is matrix factorisation.
        return F.normalize(own + self.mlp(x), dim=-1)


class UserTower(nn.Module):
    """ID + features + mean-pooled history items -> MLP (+ history skip) -> unit vector."""

    def __init__(
        self,
        n_users: int,
        cardinalities: list[int],
        n_items: int,
        dim: int = 64,
        hidden: int = 128,
        feature_dim: int = 16,
    ) -> None:
        super().__init__()
        if n_users < 1 or n_items < 1 or dim < 1:
            raise ValueError(f"a tower needs n_users, n_items, dim >= 1, got {n_users}, {n_items}, {dim}")
        self.n_ids = n_users
        self.n_items = n_items  # also the history padding value
        self.id_embedding = nn.Embedding(n_users, dim)
        # EmbeddingBag sums each row's items without materialising (b, L, dim), skipping padding:
        # the inference/export path. Training pools the same table on the real items only.
        self.history_embedding = nn.EmbeddingBag(n_items + 1, dim, mode="sum", padding_idx=n_items)
        self.feature_embeddings = nn.ModuleList(nn.Embedding(c, feature_dim) for c in cardinalities)
        self.mlp = nn.Sequential(
            nn.Linear(2 * dim + feature_dim * len(cardinalities), hidden), nn.ReLU(), nn.Linear(hidden, dim)
        )
        nn.init.normal_(self.id_embedding.weight, std=0.01)
        nn.init.normal_(self.history_embedding.weight, std=0.1)
        with torch.no_grad():
            self.history_embedding.weight[n_items].zero_()

    def forward(self, ids: torch.Tensor, features: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        real = history != self.n_items  # (b, L)
        lengths = real.sum(dim=1, keepdim=True)  # (b, 1) history lengths
        if self.training:
            pooled = self._pool_real_items(history, real, lengths)
        else:
            summed = self.history_embedding(history)  # (b, L) -> (b, dim), pads skipped
            pooled = summed / lengths.clamp(min=1)  # (b, dim) mean over real history items
        own = self.id_embedding(ids)  # (b, dim)
        parts = [own, pooled]
        for k, embedding in enumerate(self.feature_embeddings):
            parts.append(embedding(features[:, k]))  # (b, feature_dim)
        x = torch.cat(parts, dim=-1)  # (b, 2 * dim + f * feature_dim)
        return F.normalize(pooled + own + self.mlp(x), dim=-1)

    def _pool_real_items(self, history: torch.Tensor, real: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The same mean as the EmbeddingBag path, computed on the real items only.

        A padded row is mostly padding (L is the longest history), and EmbeddingBag's dense
        backward sorts every index, padding included. Gathering the real items and summing
        them per row with ``index_add`` gives a backward that is another gather/scatter pair,
        with no sort: about a third cheaper per training step on CPU.
        """
        weight = self.history_embedding.weight
        # (n_real,) the batch row of each real item, in the row-major order history[real] has
        row = torch.arange(history.shape[0], device=history.device).repeat_interleave(lengths[:, 0])
        rows = weight.index_select(0, history[real])  # (n_real, dim)
        summed = torch.zeros(history.shape[0], weight.shape[1], dtype=weight.dtype, device=weight.device)
        return summed.index_add(0, row, rows) / lengths.clamp(min=1)


def history_table(
    users: torch.Tensor | list[int], items: torch.Tensor | list[int], n_users: int, n_items: int, max_len: int = 100
) -> torch.Tensor:
    """(n_users, L) int64 item indices per user padded with ``n_items``; L = min(longest, max_len).

    Users with more than ``max_len`` items keep the last ``max_len`` in the given order
    (pass pairs in time order to keep the most recent).
    """
    users = torch.as_tensor(users, dtype=torch.long)
    items = torch.as_tensor(items, dtype=torch.long)
    order = torch.sort(users, stable=True).indices
    users, items = users[order], items[order]
    counts = torch.bincount(users, minlength=n_users)
    length = int(min(max(int(counts.max()) if len(counts) else 0, 1), max_len))
    starts = torch.cumsum(counts, 0) - counts
    pos_from_end = torch.repeat_interleave(starts + counts, counts) - torch.arange(len(users)) - 1
    keep = pos_from_end < length
    table = torch.full((n_users, length), n_items, dtype=torch.long)
    table[users[keep], pos_from_end[keep]] = items[keep]
    return table
