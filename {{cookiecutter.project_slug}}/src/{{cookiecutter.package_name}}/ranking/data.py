"""Ranking examples: candidate sets with labels, and the fold that makes training honest.

The ranker must learn from candidate features that look like the ones it will see at serving
time: scores of channels that have *not* seen the labelled items. So its training examples
come from a fold of the training split (``fold_split``): channels are fitted on part of each
user's training pairs and the rest are the positives. Validation and test candidates come from
channels fitted on the whole training split, exactly as served.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..data import Interactions, Split, group_by_user
from .candidates import DEFAULT_N, generate_candidates

# Fit channels on (users, items) training pairs -> {name: channel}. Called once per fold and
# once on the full training split, so every channel's settings are fixed inside it.
ChannelFactory = Callable[[np.ndarray, np.ndarray], Mapping[str, object]]


@dataclass
class RankingData:
    """Candidates of many users, padded to one width, with 0/1 labels."""

    users: np.ndarray  # (u,) int64
    items: np.ndarray  # (u, c) int64, -1 padded
    dense: np.ndarray  # (u, c, d) float32
    mask: np.ndarray  # (u, c) bool
    labels: np.ndarray  # (u, c) bool: the candidate is one of the user's held-out items
    feature_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.users)

    @property
    def coverage(self) -> float:
        """Share of users with at least one positive among their candidates."""
        return float(self.labels.any(1).mean()) if len(self) else 0.0

    @staticmethod
    def concat(parts: Sequence[RankingData]) -> RankingData:
        width = max(p.items.shape[1] for p in parts)

        def pad(a: np.ndarray, fill: object) -> np.ndarray:
            extra = [(0, 0), (0, width - a.shape[1])] + [(0, 0)] * (a.ndim - 2)
            return np.pad(a, extra, constant_values=fill)  # type: ignore[call-overload]

        return RankingData(
            np.concatenate([p.users for p in parts]),
            np.concatenate([pad(p.items, -1) for p in parts]),
            np.concatenate([pad(p.dense, 0.0) for p in parts]),
            np.concatenate([pad(p.mask, False) for p in parts]),
            np.concatenate([pad(p.labels, False) for p in parts]),
            parts[0].feature_names,
        )


def build_ranking_data(
    channels: Mapping[str, object],
    users: np.ndarray,
    exclude: Sequence[np.ndarray],
    truth: Sequence[np.ndarray] | None,
    n_per_channel: int = DEFAULT_N,
    n_random: int = 0,
    seed: int = 0,
    batch_size: int = 256,
    item_features: np.ndarray | None = None,
    item_feature_names: Sequence[str] | None = None,
) -> RankingData:
    """Candidates for ``users`` (in batches, to bound memory), labelled by ``truth[u]``."""
    rng = np.random.default_rng(seed)
    parts = []
    for start in range(0, len(users), batch_size):
        batch = np.asarray(users[start : start + batch_size], dtype=np.int64)
        cand = generate_candidates(
            channels, batch, exclude, n_per_channel, n_random, rng,
            item_features, item_feature_names,
        )  # fmt: skip
        labels = np.zeros(cand.mask.shape, dtype=bool)
        if truth is not None:
            for r, u in enumerate(batch):
                labels[r] = np.isin(cand.items[r], truth[u]) & cand.mask[r]
        parts.append(
            RankingData(batch, cand.items, cand.features, cand.mask, labels, cand.feature_names)
        )
    if not parts:
        raise ValueError("ranking data: no users to build candidates for")
    return RankingData.concat(parts)


def fold_split(
    users: np.ndarray, items: np.ndarray, n_users: int, hold_out: float, seed: int
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Split training pairs into (fit, label) at random, ``hold_out`` of each user's to label.

    Every user keeps at least one pair to fit on; users with a single pair label nothing.
    """
    if not 0 < hold_out < 1:
        raise ValueError(f"hold_out={hold_out}: expected a fraction strictly between 0 and 1")
    rng = np.random.default_rng(seed)
    label = rng.random(len(users)) < hold_out
    # A user whose pairs all went to "label" gets their first pair back for fitting.
    fit_count = np.bincount(users[~label], minlength=n_users)
    starved = np.flatnonzero(fit_count[users] == 0)
    _, first = np.unique(users[starved], return_index=True)
    label[starved[first]] = False
    return (users[~label], items[~label]), (users[label], items[label])


def ranking_folds(
    train: tuple[np.ndarray, np.ndarray],
    n_users: int,
    factory: ChannelFactory,
    n_per_channel: int,
    n_random: int,
    hold_out: float,
    folds: int,
    seed: int,
    item_features: np.ndarray | None = None,
    item_feature_names: Sequence[str] | None = None,
) -> RankingData:
    """Training examples from ``folds`` random (fit, label) splits of the training pairs."""
    parts = []
    for f in range(folds):
        (fu, fi), (lu, li) = fold_split(train[0], train[1], n_users, hold_out, seed + 1000 * f)
        channels = factory(fu, fi)
        truth = group_by_user(lu, li, n_users)
        users = np.asarray([u for u in range(n_users) if len(truth[u])], dtype=np.int64)
        parts.append(
            build_ranking_data(
                channels,
                users,
                group_by_user(fu, fi, n_users),
                truth,
                n_per_channel,
                n_random,
                seed=seed + f,
                item_features=item_features,
                item_feature_names=item_feature_names,
            )
        )
    return RankingData.concat(parts)


def pairs_split(
    data: Interactions, users: np.ndarray, items: np.ndarray, seed: int, held_out: float = 0.1
) -> Split:
    """A ``Split`` of ``data`` over the given pairs only: ``held_out`` of each user's pairs as
    validation and test (half each), the rest training.

    For fitting a channel that early-stops on validation (the two-tower model) on a fold of
    the training split, so its validation never touches the real validation items.
    """
    fit, held = fold_split(users, items, data.n_users, held_out, seed)
    val, test = fold_split(held[0], held[1], data.n_users, 0.5, seed + 1)
    return Split(data, "random", fit, val, test)
