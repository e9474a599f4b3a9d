"""Candidate generation: merge each recall channel's top-N per user into one candidate set.

For a batch of users, every channel scores the catalog (``Channel.score``); the user's seen
items are excluded; each channel's top ``n_per_channel`` items are merged (union, in channel
order) into one padded candidate list per user. Every (user, candidate) pair gets, for each
channel c, three features::

    c:score   (score - mean) / std over c's top-N for this user   # comparable across users
    c:rank    log1p(rank in c) / log1p(N), rank capped at N        # 0 = c's best, 1 = not in top-N
    c:hit     1 if c retrieved the item in its top-N, else 0

plus ``n_hits``, the number of channels that retrieved it, and, when the items have
categorical side features, one affinity per feature column::

    share:<feature>   share of the user's seen items with the candidate's value of <feature>

("how much of this user's history is in this category"), the classic ranking feature that
item-item channels only see one item at a time. A candidate that channel c did not
retrieve still gets c's real score (every channel scores every item), so the ranker can weigh
all channels for every candidate. The features depend only on scores, never on the channel's
internals, so any channel that follows the ``Channel`` contract can join.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_N = 200
PER_CHANNEL = ("score", "rank", "hit")


def feature_names(
    channel_names: Sequence[str], item_feature_names: Sequence[str] = ()
) -> list[str]:
    """The dense feature columns, in order: ``<channel>:score|rank|hit``, ``n_hits``, then
    ``share:<feature>`` per item feature column."""
    per_channel = [f"{c}:{f}" for c in channel_names for f in PER_CHANNEL]
    return [*per_channel, "n_hits", *(f"share:{f}" for f in item_feature_names)]


@dataclass(frozen=True)
class Candidates:
    """Candidate sets of a batch of users, padded to the longest set.

    ``items[r, j]`` is the j-th candidate of ``users[r]`` (-1 where ``mask`` is False),
    ``features[r, j]`` its dense features (``feature_names``).
    """

    users: np.ndarray  # (b,) int64
    items: np.ndarray  # (b, c) int64, -1 padded
    features: np.ndarray  # (b, c, d) float32
    mask: np.ndarray  # (b, c) bool
    feature_names: tuple[str, ...]

    @property
    def sizes(self) -> np.ndarray:
        """(b,) number of real candidates per user."""
        return self.mask.sum(1)


def _excluded(
    scores: np.ndarray, exclude: Sequence[np.ndarray] | None, rows: np.ndarray
) -> np.ndarray:
    """A (b, n_items) bool mask of seen items for the users of this batch."""
    mask = np.zeros(scores.shape, dtype=bool)
    if exclude is not None:
        for r, u in enumerate(rows):
            mask[r, np.asarray(exclude[u], dtype=np.int64)] = True
    return mask


def generate_candidates(
    channels: Mapping[str, object],
    users: np.ndarray,
    exclude: Sequence[np.ndarray] | None = None,
    n_per_channel: int = DEFAULT_N,
    n_random: int = 0,
    rng: np.random.Generator | None = None,
    item_features: np.ndarray | None = None,
    item_feature_names: Sequence[str] | None = None,
) -> Candidates:
    """Merged top-``n_per_channel`` candidates of every channel for ``users``.

    ``exclude[u]`` lists user u's seen items (indexed by user index, like ``Split.by_user``).
    ``n_random`` adds that many random unseen items per user that no channel retrieved
    (when there are some): training uses them as easy negatives. ``item_features``
    ((n_items, f) categorical codes) adds the ``share:<feature>`` columns.
    """
    if not channels:
        raise ValueError("candidates: no channels; give at least one recall channel")
    if n_per_channel < 1:
        raise ValueError(f"candidates: n_per_channel={n_per_channel}, expected >= 1")
    users = np.asarray(users, dtype=np.int64).reshape(-1)
    names = list(channels)
    score_rows = [np.asarray(channels[c].score(users), dtype=np.float32) for c in names]  # type: ignore[attr-defined]
    n_items = score_rows[0].shape[1]
    if item_features is None:
        item_features = np.zeros((n_items, 0), dtype=np.int64)
    item_features = np.asarray(item_features, dtype=np.int64)
    f_names = list(item_feature_names or [f"f{j}" for j in range(item_features.shape[1])])
    if item_features.shape != (n_items, len(f_names)):
        raise ValueError(
            f"candidates: item_features has shape {item_features.shape}, expected "
            f"({n_items}, {len(f_names)}) (one row per item, one column per feature name)"
        )
    seen = _excluded(score_rows[0], exclude, users)
    b, n = len(users), min(n_per_channel, n_items)

    # Per channel: its top-n unseen items best first, so an item's rank is its position (n where
    # the channel did not retrieve it), and the mean/std of the top-n scores for the z-score.
    rank = np.full((len(names), b, n_items), n, dtype=np.int64)
    centre = np.zeros((len(names), b), dtype=np.float32)
    spread = np.ones((len(names), b), dtype=np.float32)
    rows = np.arange(b)[:, None]
    positions = np.arange(n)
    for c, scores in enumerate(score_rows):
        masked = np.where(seen, -np.inf, scores)
        top = np.argpartition(-masked, n - 1, axis=1)[:, :n]  # (b, n), unordered
        order = np.argsort(-masked[rows, top], axis=1, kind="stable")
        top = top[rows, order]  # (b, n), best first
        valid = np.isfinite(masked[rows, top])
        rank[c, rows, top] = np.where(valid, positions, n)
        top_scores = scores[rows, top]
        centre[c] = top_scores.mean(1)
        std = top_scores.std(1)
        spread[c] = np.where(std > 1e-12, std, 1.0)
    hit = rank < n  # (channels, b, n_items)

    any_hit = hit.any(0)  # (b, n_items)
    if n_random:
        rng = rng or np.random.default_rng(0)
        unseen_free = ~seen & ~any_hit
        noise = np.where(unseen_free, rng.random((b, n_items)), -1.0)
        k = min(n_random, n_items)
        picks = np.argpartition(-noise, k - 1, axis=1)[:, :k]
        ok = np.take_along_axis(noise, picks, 1) >= 0
        chosen = np.zeros_like(any_hit)
        chosen[np.broadcast_to(rows, picks.shape)[ok], picks[ok]] = True
        pool = any_hit | chosen
    else:
        pool = any_hit
    sizes = pool.sum(1)
    width = max(int(sizes.max()), 1) if b else 1
    items = np.full((b, width), -1, dtype=np.int64)
    mask = np.arange(width)[None, :] < sizes[:, None]
    # Candidates in item order inside each row; the ranker, not the position, decides.
    r_idx, i_idx = np.nonzero(pool)
    items[mask] = i_idx  # np.nonzero is row-major: row r's items fill row r's first slots

    # The features of the m candidates of the batch, (m, d), computed for them alone.
    names_out = feature_names(names, f_names)
    n_channel_cols = 3 * len(names)
    flat = np.empty((len(i_idx), len(names_out)), dtype=np.float32)
    their_rank = rank[:, r_idx, i_idx]  # (channels, m)
    their_hit = hit[:, r_idx, i_idx]
    for c, scores in enumerate(score_rows):
        flat[:, 3 * c] = (scores[r_idx, i_idx] - centre[c, r_idx]) / spread[c, r_idx]
    log_rank = np.log1p(np.arange(n + 1)) / np.log1p(n)  # rank r -> log1p(r) / log1p(n)
    flat[:, 1:n_channel_cols:3] = log_rank[their_rank].T
    flat[:, 2:n_channel_cols:3] = their_hit.T
    flat[:, n_channel_cols] = their_hit.sum(0)
    if item_features.shape[1]:
        # Seen items per (user, feature value), by counting: what seen @ one_hot(feature) gives.
        seen_rows, seen_items = np.nonzero(seen)
        n_seen = np.maximum(seen.sum(1), 1).astype(np.float32)  # (b,)
        for j in range(item_features.shape[1]):
            codes = item_features[:, j]
            card = int(codes.max()) + 1
            counts = np.bincount(seen_rows * card + codes[seen_items], minlength=b * card)
            share = counts.reshape(b, card).astype(np.float32) / n_seen[:, None]
            flat[:, n_channel_cols + 1 + j] = share[r_idx, codes[i_idx]]
    if mask.all():  # every row as long as the longest, as for one user: no padding
        feats = flat.reshape(b, width, len(names_out))
    else:
        feats = np.zeros((b, width, len(names_out)), dtype=np.float32)
        feats[mask] = flat
    return Candidates(users, items, feats, mask, tuple(names_out))
