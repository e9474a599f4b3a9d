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

from collections.abc import Callable
from typing import Any

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
        return unit_rows(own + self.mlp(x), self.training)


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
        # EmbeddingBag sums each row's items without materialising (b, L, dim), skipping padding:
        # the inference/export path. Training pools the same table on the real items only.
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
        real = history != self.n_items  # (b, L)
        lengths = real.sum(dim=1, keepdim=True)  # (b, 1) history lengths
        if self.training and not torch.jit.is_scripting():  # exports script the EmbeddingBag path
            pooled = self._pool_real_items(history, real, lengths)
        else:
            summed = self.history_embedding(history)  # (b, L) -> (b, dim), pads skipped
            pooled = summed / lengths.clamp(min=1)  # (b, dim) mean over real history items
        own = self.id_embedding(ids)  # (b, dim)
        # (b, 2 * dim + f * feature_dim)
        x = torch.cat([own, pooled, self.features(features)], dim=-1)
        return unit_rows(pooled + own + self.mlp(x), self.training)

    def _pool_real_items(
        self, history: torch.Tensor, real: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """The same mean as the EmbeddingBag path, computed on the real items only.

        A padded row is mostly padding (L is the longest history), and EmbeddingBag's dense
        backward sorts every index, padding included. ``_MeanOfRealItems`` pools only the real
        items forward and adds each row's gradient back into its items (``add_bags_into``):
        no sort, and about 40% cheaper per training step on CPU than autograd's version.
        """
        counts = lengths[:, 0]  # (b,) real items per row
        flat = torch.masked_select(history, real)  # (n_real,) the real items, row by row
        weight = self.history_embedding.weight
        return _MeanOfRealItems.apply(weight, flat, counts, lengths.clamp(min=1).to(weight.dtype))


class _MeanOfRealItems(torch.autograd.Function):
    """Row means of ``weight[flat]`` over consecutive runs of ``counts`` items: (b, dim).

    Forward is a sum-mode ``embedding_bag`` (one kernel, no (n_real, dim) intermediate).
    Backward is written out because autograd's ``embedding_bag`` backward sorts the indices:
    each row's gradient, divided by its length, is added into the rows of its items.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        weight: torch.Tensor,
        flat: torch.Tensor,
        counts: torch.Tensor,
        divisor: torch.Tensor,
    ) -> torch.Tensor:
        offsets = torch.cumsum(counts, 0) - counts  # (b,) where each row's items start in flat
        ctx.save_for_backward(flat, counts, divisor)
        ctx.n_rows = weight.shape[0]
        return F.embedding_bag(flat, weight, offsets, mode="sum") / divisor  # (b, dim)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:  # type: ignore[override]
        flat, counts, divisor = ctx.saved_tensors
        return add_bags_into(ctx.n_rows, grad / divisor, flat, counts), None, None, None


def add_bags_into(
    n_rows: int, per_bag: torch.Tensor, flat: torch.Tensor, counts: torch.Tensor
) -> torch.Tensor:
    """(n_rows, dim) zeros plus ``per_bag[k]`` (b, dim) at every item of bag k.

    Bag k holds the next ``counts[k]`` items of ``flat`` (n_real,). Two ways to the same sum;
    ``bag_adder`` picks one.
    """
    bag = torch.repeat_interleave(counts, output_size=len(flat))  # (n_real,) each item's bag
    return bag_adder(per_bag.device)(n_rows, per_bag, flat, bag)


def bag_adder(device: torch.device) -> Callable[..., torch.Tensor]:
    """``sparse_product`` on a CPU that torch runs on one thread (as torchrun starts each
    process), ``gather_index_add`` elsewhere.

    The sparse kernel is serial and ``index_add_`` spreads over torch's threads, so the product
    wins on one thread and not beyond (docs/pipeline.md;
    ``benchmarks/bench_training.py --compare-bag-adds`` times both). On CUDA ``index_add_`` is
    one kernel of atomic adds.
    """
    if device.type == "cpu" and torch.get_num_threads() == 1:
        return sparse_product
    return gather_index_add


def sparse_product(
    n_rows: int, per_bag: torch.Tensor, flat: torch.Tensor, bag: torch.Tensor
) -> torch.Tensor:
    """The (n_rows, b) incidence matrix, as uncoalesced COO, times ``per_bag``: torch's CPU
    sparse x dense kernel adds one vectorised row per item, and never copies (n_real, dim)."""
    incidence = torch.sparse_coo_tensor(
        torch.stack([flat, bag]),
        per_bag.new_ones(len(flat)),
        (n_rows, len(per_bag)),
        check_invariants=False,
    )
    return torch.sparse.mm(incidence, per_bag)


def gather_index_add(
    n_rows: int, per_bag: torch.Tensor, flat: torch.Tensor, bag: torch.Tensor
) -> torch.Tensor:
    """Each item's copy of its bag's row, (n_real, dim), added into its row by ``index_add_``
    (element by element on CPU, atomic adds on CUDA)."""
    rows = per_bag.index_select(0, bag)  # (n_real, dim)
    return per_bag.new_zeros(n_rows, per_bag.shape[1]).index_add_(0, flat, rows)


def unit_rows(x: torch.Tensor, training: bool) -> torch.Tensor:
    """``F.normalize(x, dim=-1)``; in training, with the backward written out as one step."""
    if training and not torch.jit.is_scripting():  # exports script/trace plain F.normalize
        return _UnitRows.apply(x)
    return F.normalize(x, dim=-1)


class _UnitRows(torch.autograd.Function):
    """y = x / ||x||. Autograd's F.normalize backward walks four nodes (norm, clamp, expand,
    divide); the closed form ``(g - y (g . y)) / ||x||`` is one, about 40% cheaper per call."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(1e-12)  # (b, 1)
        y = x / norm
        ctx.save_for_backward(y, norm)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        y, norm = ctx.saved_tensors
        return (grad - y * (grad * y).sum(dim=-1, keepdim=True)) / norm


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
