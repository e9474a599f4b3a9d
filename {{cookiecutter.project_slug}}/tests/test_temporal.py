"""The temporal protocol: leave-last-out by time, its tie-break rule and per-user sequences."""

from __future__ import annotations

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.data import (
    Interactions,
    generate_synthetic,
    make_split,
)
from {{ cookiecutter.package_name }}.data.temporal import (
    ordered_sequences,
    time_ordered_pairs,
)
from {{ cookiecutter.package_name }}.training.sequence import split_sequences


def log(users: list[int], items: list[int], stamps: list[int]) -> Interactions:
    return Interactions(
        name="t",
        users=np.array(users),
        items=np.array(items),
        events=np.zeros(len(users), np.int64),
        timestamps=np.array(stamps),
        user_ids=[f"u{u}" for u in range(max(users) + 1)],
        item_ids=[f"i{i}" for i in range(max(items) + 1)],
    )


def test_equal_timestamps_keep_the_logs_row_order_not_the_item_index() -> None:
    # User 0 took items 5, 9, 2 and then 7 and 1 in the same second, in that row order.
    data = log([0, 0, 0, 0, 0], [5, 9, 2, 7, 1], [10, 20, 30, 40, 40])
    split = make_split(data, "temporal")
    assert split.test[1].tolist() == [1]  # the later row, though its index is lower
    assert split.val[1].tolist() == [7]
    assert split_sequences(split, ["train"])[0].tolist() == [5, 9, 2]


def test_a_repeated_item_counts_once_at_its_first_event() -> None:
    data = log([0, 0, 0, 0], [3, 4, 3, 6], [1, 2, 3, 4])  # item 3 again at t=3
    users, items, stamps = time_ordered_pairs(data.users, data.items, data.timestamps)
    assert items.tolist() == [3, 4, 6] and stamps.tolist() == [1, 2, 4]
    split = make_split(data, "temporal")
    assert split.test[1].tolist() == [6] and split.val[1].tolist() == [4]


def test_every_user_with_three_items_holds_out_their_two_latest() -> None:
    data = generate_synthetic(n_users=60, n_items=40, events_per_user=8, seed=3)
    split = make_split(data, "temporal")
    full = split_sequences(split, ["train", "val", "test"])
    for u, seq in enumerate(full):
        test, val = split.by_user("test")[u], split.by_user("val")[u]
        if len(seq) >= 3:
            assert test.tolist() == [seq[-1]] and val.tolist() == [seq[-2]]
        else:
            assert len(test) == len(val) == 0
    # Nothing lost, nothing doubled: the parts partition each user's distinct items.
    assert sum(len(s) for s in full) == len(
        np.unique(np.stack([data.users, data.items]), axis=1)[0]
    )


def test_a_pair_that_is_not_in_the_log_is_refused() -> None:
    data = log([0, 0, 1], [0, 1, 1], [1, 2, 3])
    u, i, _ = time_ordered_pairs(data.users, data.items, data.timestamps)
    with pytest.raises(ValueError, match="not in the log"):
        ordered_sequences(u, i, [(np.array([1]), np.array([0]))], 2, 2)
