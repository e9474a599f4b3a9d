"""Trending: what others took while this user was active ("popular in your time window").

Time is cut into ``n_bins`` equal-count bins of the training timestamps. A user's window is
the bins from their first to their last training interaction, widened by ``pad`` bins on each
side; an item's score is the number of training pairs that fall into that window::

    score(u, i) = #{ (v, i) in train : t(v, i) in window(u) }

It is popularity, localised in time: in a catalog where tastes follow releases, seasons or
campaigns, items taken around the same time as the user's own are far likelier than all-time
hits. Users without training history get the all-time counts.
"""

from __future__ import annotations

import numpy as np

from .base import ScoringChannel


class TrendingChannel(ScoringChannel):
    """Counts of each item's training pairs inside the user's active time window."""

    name = "trending"

    def __init__(
        self,
        train_users: np.ndarray,
        train_items: np.ndarray,
        train_times: np.ndarray,
        n_users: int,
        n_items: int,
        n_bins: int = 64,
        pad: int = 1,
    ) -> None:
        if n_bins < 1 or pad < 0:
            raise ValueError(f"trending: n_bins={n_bins} must be >= 1 and pad={pad} >= 0")
        users = np.asarray(train_users, dtype=np.int64)
        items = np.asarray(train_items, dtype=np.int64)
        times = np.asarray(train_times, dtype=np.float64)
        if not len(users) == len(items) == len(times):
            raise ValueError(
                f"trending: {len(users)} users, {len(items)} items, {len(times)} times; "
                "expected one timestamp per training pair"
            )
        self.n_users, self.n_items = n_users, n_items
        quantiles = np.linspace(0, 1, n_bins + 1)[1:-1]
        edges = np.unique(np.quantile(times, quantiles)) if len(times) else np.zeros(0)
        self.edges = edges
        bins = np.searchsorted(edges, times, side="right")  # 0..len(edges)
        n = len(edges) + 1
        counts = np.zeros((n_items, n), dtype=np.float32)
        np.add.at(counts, (items, bins), 1.0)
        # cum[:, b] = pairs in bins < b, so a window [lo, hi] counts cum[:, hi + 1] - cum[:, lo].
        self.cumulative = np.concatenate(
            [np.zeros((n_items, 1), np.float32), np.cumsum(counts, axis=1)], axis=1
        ).T.copy()  # (n + 1, n_items)
        lo = np.full(n_users, 0, dtype=np.int64)
        hi = np.full(n_users, n - 1, dtype=np.int64)
        if len(users):
            first = np.full(n_users, n, dtype=np.int64)
            last = np.full(n_users, -1, dtype=np.int64)
            np.minimum.at(first, users, bins)
            np.maximum.at(last, users, bins)
            known = last >= 0
            lo[known] = np.maximum(first[known] - pad, 0)
            hi[known] = np.minimum(last[known] + pad, n - 1)
        self.window = np.stack([lo, hi], axis=1)  # (n_users, 2) inclusive bin range

    def score(self, users: np.ndarray) -> np.ndarray:
        users = self._check_users(users, self.n_users)
        lo, hi = self.window[users, 0], self.window[users, 1]
        return self.cumulative[hi + 1] - self.cumulative[lo]  # (b, n_items)
