"""The in-memory interaction log and its train/validation/test splits.

Everything downstream works on dense integer indices (``0..n_users-1``, ``0..n_items-1``);
the raw ids are kept in ``user_ids``/``item_ids`` so results can be mapped back.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from .temporal import leave_last_out, time_ordered_pairs

EVENT_NAMES = ("browse", "click", "cart", "purchase")
SPLITS = ("random", "temporal")  # the kinds make_split knows


@dataclass(frozen=True)
class Interactions:
    """An event log: one row per (user, item, event, timestamp), plus categorical side features."""

    name: str
    users: np.ndarray  # (n,) int64 dense user index
    items: np.ndarray  # (n,) int64 dense item index
    events: np.ndarray  # (n,) int64 code into event_names
    timestamps: np.ndarray  # (n,) int64 seconds since epoch
    user_ids: list[str]
    item_ids: list[str]
    event_names: tuple[str, ...] = EVENT_NAMES
    user_features: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64))
    item_features: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64))
    user_feature_names: tuple[str, ...] = ()
    item_feature_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.users)
        for col in ("items", "events", "timestamps"):
            if len(getattr(self, col)) != n:
                raise ValueError(
                    f"{self.name}: column {col} has {len(getattr(self, col))} rows, users has {n}"
                )
        if n == 0:
            raise ValueError(
                f"{self.name}: no interactions; expected at least one (user, item) row"
            )
        # Features default to "no columns"; give them the right number of rows.
        if self.user_features.size == 0:
            object.__setattr__(self, "user_features", np.zeros((self.n_users, 0), np.int64))
        if self.item_features.size == 0:
            object.__setattr__(self, "item_features", np.zeros((self.n_items, 0), np.int64))

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def __len__(self) -> int:
        return len(self.users)

    @property
    def user_cardinalities(self) -> list[int]:
        """Number of distinct codes per user feature column (embedding table sizes)."""
        return [int(c.max()) + 1 for c in self.user_features.T]

    @property
    def item_cardinalities(self) -> list[int]:
        return [int(c.max()) + 1 for c in self.item_features.T]

    def content_hash(self) -> str:
        """sha256 of everything a model or a split reads from this log (not its ``name``):
        two logs with the same hash train and evaluate alike, whatever file they came from."""
        digest = hashlib.sha256()
        for column in (self.users, self.items, self.events, self.timestamps):
            digest.update(np.ascontiguousarray(column, dtype="<i8").tobytes())
        for features in (self.user_features, self.item_features):
            digest.update(repr(features.shape).encode())
            digest.update(np.ascontiguousarray(features, dtype="<i8").tobytes())
        for names in (self.user_ids, self.item_ids, self.event_names,
                      self.user_feature_names, self.item_feature_names):  # fmt: skip
            digest.update("\x1f".join(names).encode("utf-8", "surrogatepass") + b"\x1e")
        return digest.hexdigest()

    def unique_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(users, items, first_timestamp) of distinct user-item pairs, in time order.

        Implicit feedback: repeated events on the same item count once, at their first time,
        so a test item can never also be a (masked) training item.
        """
        order = np.lexsort((self.timestamps, self.items, self.users))
        u, i, t = self.users[order], self.items[order], self.timestamps[order]
        first = np.ones(len(u), dtype=bool)
        first[1:] = (u[1:] != u[:-1]) | (i[1:] != i[:-1])
        u, i, t = u[first], i[first], t[first]
        by_time = np.lexsort((i, t, u))
        return u[by_time], i[by_time], t[by_time]


@dataclass(frozen=True)
class Split:
    """Train/validation/test (user, item) pairs over one ``Interactions``."""

    data: Interactions
    kind: str
    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]

    @property
    def n_users(self) -> int:
        return self.data.n_users

    @property
    def n_items(self) -> int:
        return self.data.n_items

    def by_user(self, part: str) -> list[np.ndarray]:
        """Item indices per user for ``part`` in {"train", "val", "test", "train+val"}."""
        parts = {
            "train": [self.train],
            "val": [self.val],
            "test": [self.test],
            "train+val": [self.train, self.val],
        }
        if part not in parts:
            raise ValueError(f"unknown split part {part!r}; expected one of {sorted(parts)}")
        users = np.concatenate([p[0] for p in parts[part]])
        items = np.concatenate([p[1] for p in parts[part]])
        return group_by_user(users, items, self.n_users)


def group_by_user(users: np.ndarray, items: np.ndarray, n_users: int) -> list[np.ndarray]:
    """Split ``items`` into one sorted array per user index (empty arrays for absent users)."""
    order = np.lexsort((items, users))
    bounds = np.searchsorted(users[order], np.arange(n_users + 1))
    sorted_items = items[order]
    return [sorted_items[bounds[u] : bounds[u + 1]] for u in range(n_users)]


def random_split(
    data: Interactions, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0
) -> Split:
    """Random per-user split of distinct pairs (RecBole's ``RS`` with ``group_by: user``).

    Each user's pairs are shuffled; ``floor(r * n)`` go to validation and test, the rest to
    training; a user with few pairs keeps at least one training pair and, where possible,
    one validation and one test pair.
    """
    if len(ratios) != 3 or abs(sum(ratios) - 1.0) > 1e-6 or min(ratios) < 0:
        raise ValueError(
            f"split ratios must be three non-negative numbers summing to 1, got {ratios}"
        )
    rng = np.random.default_rng(seed)
    users, items, stamps = data.unique_pairs()
    order = np.lexsort((rng.random(len(users)), users))  # shuffle within each user
    users, items, stamps = users[order], items[order], stamps[order]
    starts = np.searchsorted(users, np.arange(data.n_users + 1))
    counts = np.diff(starts)
    n_val = np.floor(ratios[1] * counts).astype(np.int64)
    n_test = np.floor(ratios[2] * counts).astype(np.int64)
    # Small users: move one pair to an empty part while training keeps at least one.
    for n_part, r in ((n_test, ratios[2]), (n_val, ratios[1])):
        give = (n_part == 0) & (r > 0) & (counts - n_val - n_test > 1)
        n_part[give] = 1
    n_train = counts - n_val - n_test
    pos = np.arange(len(users)) - np.repeat(starts[:-1], counts)
    part = np.where(
        pos < np.repeat(n_train, counts),
        0,
        np.where(pos < np.repeat(n_train + n_val, counts), 1, 2),
    )
    # Each part back in (user, time) order, so "most recent history" means what it says.
    by_time = np.lexsort((stamps, users))
    users, items, part = users[by_time], items[by_time], part[by_time]
    pick = [(users[part == k], items[part == k]) for k in range(3)]
    return Split(data, "random", pick[0], pick[1], pick[2])


def temporal_split(data: Interactions) -> Split:
    """Leave-last-out by time: each user's last new item is test, the one before validation.

    Users with fewer than three distinct items keep them all in training. Equal timestamps
    keep the log's row order (``temporal.time_ordered_pairs`` states the rule and why).
    """
    users, items, _ = time_ordered_pairs(data.users, data.items, data.timestamps)
    part = leave_last_out(users, data.n_users)
    pick = [(users[part == k], items[part == k]) for k in range(3)]
    return Split(data, "temporal", pick[0], pick[1], pick[2])


def make_split(data: Interactions, kind: str, seed: int = 0) -> Split:
    """``kind`` is "random" (80/10/10 per user) or "temporal" (leave-last-out)."""
    match kind:
        case "random":
            return random_split(data, seed=seed)
        case "temporal":
            return temporal_split(data)
        case _:
            expected = " or ".join(repr(k) for k in SPLITS)
            raise ValueError(f"unknown split {kind!r}; expected {expected}")
