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


class CategoricalFeatures(nn.Module):
    """A tower's categorical features in one table: (b, f) codes -> (b, f * feature_dim).

    Column k's codes are shifted past the codes of the columns before it, so each feature has
    its own rows and one lookup serves them all (one kernel and one gradient, not f).
    """

    def __init__(self, cardinalities: list[int], feature_dim: int) -> None:
        super().__init__()
        starts = [sum(cardinalities[:k]) for k in range(len(cardinalities))]
        self.table = nn.Embedding(max(sum(cardinalities), 1), feature_dim)
        self.register_buffer("offsets", torch.tensor(starts, dtype=torch.long), persistent=False)
        self.out_dim = feature_dim * len(cardinalities)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # (b, f, feature_dim) -> (b, f * feature_dim)
        return self.table(features + self.offsets).flatten(1)


class ItemTower(nn.Module):
    """ID embedding + one embedding per categorical feature -> MLP (+ id skip) -> unit vector."""

    def __init__(
        self,
        n_items: int,
        cardinalities: list[int],
        dim: int = 64,
        hidden: int = 64,
        feature_dim: int = 16,
    ) -> None:
        super().__init__()
        if n_items < 1 or dim < 1:
            raise ValueError(
                f"a tower needs n_ids >= 1 and dim >= 1, got n_ids={n_items}, dim={dim}"
            )
        self.n_ids = n_items
        self.id_embedding = nn.Embedding(n_items, dim)
        self.features = CategoricalFeatures(cardinalities, feature_dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim + self.features.out_dim, hidden), nn.ReLU(), nn.Linear(hidden, dim)
        )
        nn.init.normal_(self.id_embedding.weight, std=0.1)

    def forward(self, ids: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        own = self.id_embedding(ids)  # (b, dim)
        x = torch.cat([own, self.features(features)], dim=-1)  # (b, dim + f * feature_dim)
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
        hidden: int = 64,
        feature_dim: int = 16,
    ) -> None:
        super().__init__()
        if n_users < 1 or n_items < 1 or dim < 1:
            raise ValueError(
                f"a tower needs n_users, n_items, dim >= 1, got {n_users}, {n_items}, {dim}"
            )
        self.n_ids = n_users
        self.n_items = n_items  # also the history padding value
        self.id_embedding = nn.Embedding(n_users, dim)
        # EmbeddingBag sums each row's items without materialising (b, L, dim); the padding row
        # is skipped in the sum and gets no gradient.
        self.history_embedding = nn.EmbeddingBag(n_items + 1, dim, mode="sum", padding_idx=n_items)
        self.features = CategoricalFeatures(cardinalities, feature_dim)
        self.mlp = nn.Sequential(
            nn.Linear(2 * dim + self.features.out_dim, hidden), nn.ReLU(), nn.Linear(hidden, dim)
        )
        nn.init.normal_(self.id_embedding.weight, std=0.01)
        nn.init.normal_(self.history_embedding.weight, std=0.1)
        with torch.no_grad():
            self.history_embedding.weight[n_items].zero_()

    def forward(
        self, ids: torch.Tensor, features: torch.Tensor, history: torch.Tensor
    ) -> torch.Tensor:
        lengths = (history != self.n_items).sum(dim=1, keepdim=True)  # (b, 1) real items
        summed = self.history_embedding(history)  # (b, L) -> (b, dim), padding skipped
        pooled = summed / lengths.clamp(min=1)  # (b, dim) mean over the real history items
        own = self.id_embedding(ids)  # (b, dim)
        # (b, 2 * dim + f * feature_dim)
        x = torch.cat([own, pooled, self.features(features)], dim=-1)
        return F.normalize(pooled + own + self.mlp(x), dim=-1)


def history_columns(
    users: torch.Tensor | list[int], n_users: int, max_len: int = 100
) -> tuple[torch.Tensor, int]:
    """Where ``history_table`` puts each pair: its column in the user's row, and the width L.

    Returns ``(columns (n_pairs,), L)`` with L = min(longest history, max_len). A pair older
    than its user's last L gets column L (one past the row: it is not in the table).
    """
    users = torch.as_tensor(users, dtype=torch.long)
    counts = torch.bincount(users, minlength=n_users)
    length = int(min(max(int(counts.max()) if len(counts) else 0, 1), max_len))
    order = torch.sort(users, stable=True).indices
    ends = torch.cumsum(counts, 0)  # one past each user's last pair, in sorted order
    # 0 = the user's most recent pair
    pos_from_end = torch.repeat_interleave(ends, counts) - torch.arange(len(users)) - 1
    columns = torch.empty_like(users)
    columns[order] = pos_from_end.clamp(max=length)
    return columns, length


def history_table(
    users: torch.Tensor | list[int],
    items: torch.Tensor | list[int],
    n_users: int,
    n_items: int,
    max_len: int = 100,
) -> torch.Tensor:
    """(n_users, L) int64 item indices per user padded with ``n_items``; L = min(longest, max_len).

    Each row starts with the user's most recent item. Users with more than ``max_len`` items
    keep the last ``max_len`` in the given order (pass pairs in time order to keep the most
    recent).
    """
    users = torch.as_tensor(users, dtype=torch.long)
    items = torch.as_tensor(items, dtype=torch.long)
    columns, length = history_columns(users, n_users, max_len)
    keep = columns < length
    table = torch.full((n_users, length), n_items, dtype=torch.long)
    table[users[keep], columns[keep]] = items[keep]
    return table
