"""Training batches as tensor gathers: no per-sample Python, no DataLoader workers.

Every training pair and every per-id input table (features, histories) is moved to the device
once; an epoch is a ``randperm`` of pair indices, and a batch is a slice of it plus a handful
of gathers. ``benchmarks/bench_training.py`` times this against a per-sample
``Dataset``/``DataLoader`` that feeds the same model through the same ``train_step``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ..data import Split
from ..models import history_columns, history_table


def user_histories(split: Split, max_len: int) -> torch.Tensor:
    """(n_users, L) training items per user, padded with n_items: the user tower's history input."""
    return history_table(split.train[0], split.train[1], split.n_users, split.n_items, max_len)


@dataclass(frozen=True)
class Batch:
    """The model's inputs for a batch of (user, positive item) pairs; ``b`` rows each."""

    users: torch.Tensor  # (b,) user ids
    user_features: torch.Tensor  # (b, f_u) categorical codes
    history: torch.Tensor  # (b, L + 1) the user's training items, the positive masked to padding
    items: torch.Tensor  # (b,) positive item ids
    item_features: torch.Tensor  # (b, f_i)

    def __len__(self) -> int:
        return len(self.users)


@dataclass(frozen=True)
class TrainingTensors:
    """The training pairs and the per-id tables batches are gathered from, on one device."""

    users: torch.Tensor  # (n_pairs,)
    items: torch.Tensor  # (n_pairs,)
    user_features: torch.Tensor  # (n_users, f_u)
    item_features: torch.Tensor  # (n_items, f_i): also the catalog for full-softmax negatives
    # (n_users, L + 1) padded with n_items; the last column is always padding
    histories: torch.Tensor
    positions: torch.Tensor  # (n_pairs,) column of each pair's item in its user's row (L: not kept;
    # training pairs are distinct (user, item) pairs, as both splits make them)
    # (n_items,) log share of training pairs, for the in-batch correction
    log_q: torch.Tensor | None

    @classmethod
    def from_split(
        cls, split: Split, history_len: int, logq: bool, device: torch.device
    ) -> TrainingTensors:
        items = torch.as_tensor(split.train[1])
        log_q = None
        if logq:
            counts = torch.bincount(items, minlength=split.n_items).double() + 1.0
            log_q = (counts / counts.sum()).log().float().to(device)
        users = torch.as_tensor(split.train[0])
        table = user_histories(split, history_len)
        # One spare padding column: a pair whose item fell out of a long history (only the most
        # recent history_len are kept) has column L, so hiding "its" item there changes nothing.
        histories = torch.cat([table, torch.full((len(table), 1), split.n_items)], dim=1)
        positions, _ = history_columns(users, split.n_users, history_len)
        return cls(
            users=users.to(device),
            items=items.to(device),
            user_features=torch.as_tensor(split.data.user_features, device=device),
            item_features=torch.as_tensor(split.data.item_features, device=device),
            histories=histories.to(device),
            positions=positions.to(device),
            log_q=log_q,
        )

    @property
    def pad(self) -> int:
        """The history padding value (n_items)."""
        return self.item_features.shape[0]

    def __len__(self) -> int:
        return len(self.users)

    def batch(self, index: torch.Tensor) -> Batch:
        """The batch of pairs ``index`` (b,) points at: six gathers and one scatter."""
        # index_select, not tensor[index]: the advanced-indexing kernel is 2-4x slower on CPU.
        u, i = self.users.index_select(0, index), self.items.index_select(0, index)
        history = self.histories.index_select(0, u)  # (b, L + 1), a fresh copy
        # The positive must not be visible in its own input: pad its (precomputed) column.
        history.scatter_(1, self.positions.index_select(0, index)[:, None], self.pad)
        return Batch(
            u,
            self.user_features.index_select(0, u),
            history,
            i,
            self.item_features.index_select(0, i),
        )

    def epoch(
        self, batch_size: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1
    ) -> Iterator[Batch]:
        """One shuffled pass over the pairs, in global batches of ``batch_size``.

        The order depends only on (seed, epoch): resumed and DDP runs see the same batches.
        Under DDP each rank takes its ``rank::world_size`` share of every global batch; a tail
        too small to give every rank a sample is dropped.
        """
        gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        perm = torch.randperm(len(self), generator=gen).to(self.users.device)
        for index in perm.split(batch_size):
            if len(index) < world_size:
                break
            yield self.batch(index[rank::world_size])
