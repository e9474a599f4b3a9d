"""Time order of a log: the temporal protocol's tie-break rule and per-user item sequences.

The temporal protocol (``temporal_split``) holds out each user's last distinct item for test
and the one before it for validation. "Last" needs an order for events with the same
timestamp, which is common: MovieLens-100K stores seconds, and 415 of its 943 users rated
their last two movies within the same second. The rule here:

* a (user, item) pair counts once, at its **first** event (implicit feedback);
* a user's pairs are ordered by that event's timestamp, and **equal timestamps keep the
  log's row order** (a stable sort on time), as SASRec's and RecBole's preprocessing do.

Row order is the order a log's writer recorded events in, so it is the best evidence of
their order that a log holds. Breaking ties by item index instead would hand a sequence model
a pattern that is not in the data (inside a burst, indices increase), which it can learn and
which inflates its test score.

These functions work on plain arrays, so the split code and the sequence models share them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def time_ordered_pairs(
    users: np.ndarray, items: np.ndarray, timestamps: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (user, item) pairs at their first event, grouped by user, in time order.

    Returns ``(users, items, timestamps)``, each (n_pairs,): sorted by user, then by the
    first event's timestamp, then by that event's row in the log (the tie-break rule).
    """
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    timestamps = np.asarray(timestamps, dtype=np.int64)
    rows = np.arange(len(users))
    # First event of each pair: earliest timestamp, then earliest row.
    order = np.lexsort((rows, timestamps, items, users))
    u, i = users[order], items[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (u[1:] != u[:-1]) | (i[1:] != i[:-1])
    keep = order[first]
    by_time = keep[np.lexsort((rows[keep], timestamps[keep], users[keep]))]
    return users[by_time], items[by_time], timestamps[by_time]


def leave_last_out(users: np.ndarray, n_users: int, min_items: int = 3) -> np.ndarray:
    """Part of each pair (0 train, 1 validation, 2 test) for user-grouped, time-ordered pairs.

    A user's last pair is test and the one before validation; users with fewer than
    ``min_items`` pairs keep all of them in training.
    """
    users = np.asarray(users, dtype=np.int64)
    starts = np.searchsorted(users, np.arange(n_users + 1))
    counts = np.diff(starts)
    from_end = np.repeat(starts[1:], counts) - np.arange(len(users))  # 1 = the user's last pair
    eligible = np.repeat(counts >= min_items, counts)
    return np.where(eligible & (from_end == 1), 2, np.where(eligible & (from_end == 2), 1, 0))


def ordered_sequences(
    order_users: np.ndarray,
    order_items: np.ndarray,
    parts: Sequence[tuple[np.ndarray, np.ndarray]],
    n_users: int,
    n_items: int,
) -> list[np.ndarray]:
    """Each user's items from ``parts`` (lists of (users, items) pairs), oldest first.

    ``order_users``/``order_items`` are ``time_ordered_pairs`` of the whole log: they fix
    the position of every pair, so the result does not depend on how ``parts`` are sorted.
    A pair absent from the log is an error.
    """
    key = np.asarray(order_users, dtype=np.int64) * n_items + np.asarray(order_items, np.int64)
    sorter = np.argsort(key, kind="stable")
    users = np.concatenate([np.asarray(p[0], dtype=np.int64) for p in parts] or [np.zeros(0)])
    items = np.concatenate([np.asarray(p[1], dtype=np.int64) for p in parts] or [np.zeros(0)])
    users, items = users.astype(np.int64), items.astype(np.int64)
    wanted = users * n_items + items
    found = np.searchsorted(key[sorter], wanted)
    found = np.minimum(found, max(len(key) - 1, 0))
    if len(wanted) and (len(key) == 0 or np.any(key[sorter][found] != wanted)):
        raise ValueError("a (user, item) pair of the split is not in the log it was made from")
    rank = sorter[found]  # the pair's index in the time order
    order = np.argsort(rank, kind="stable")
    users, items = users[order], items[order]
    bounds = np.searchsorted(users, np.arange(n_users + 1))
    return [items[bounds[u] : bounds[u + 1]] for u in range(n_users)]
