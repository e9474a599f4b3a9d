"""Each recall channel against small cases worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.channels import (
    Channel,
    ItemGraphChannel,
    PopularityChannel,
    TwoTowerChannel,
)

# Three users: u0 took items {0, 1}, u1 {0, 1, 2}, u2 {2, 3}.
USERS = np.array([0, 0, 1, 1, 1, 2, 2])
ITEMS = np.array([0, 1, 0, 1, 2, 2, 3])


def test_every_channel_implements_the_channel_interface() -> None:
    channels = [
        PopularityChannel(ITEMS, 4),
        ItemGraphChannel(USERS, ITEMS, 3, 4),
        TwoTowerChannel(np.eye(3, 2, dtype=np.float32), np.eye(4, 2, dtype=np.float32)),
    ]
    assert all(isinstance(c, Channel) for c in channels)


def test_popularity_ranks_by_training_count_and_skips_excluded_items() -> None:
    channel = PopularityChannel(np.array([0, 1, 1, 2, 2, 2]), n_items=4)
    assert channel.ranking().tolist() == [2, 1, 0, 3]
    ids, scores = channel.recommend(np.array([0]), k=2, exclude=[np.array([2])])
    assert ids.tolist() == [[1, 0]] and scores.tolist() == [[2.0, 1.0]]


def test_item_graph_weights_are_cosine_co_occurrence() -> None:
    # co(0,1)=2, co(0,2)=1, co(1,2)=1, co(2,3)=1; deg = 2, 2, 2, 1
    channel = ItemGraphChannel(USERS, ITEMS, n_users=3, n_items=4)
    w = {
        (i, int(j)): float(x)
        for i in range(4)
        for j, x in zip(channel.neighbours[i], channel.weights[i], strict=True)
        if j >= 0
    }
    assert w[(0, 1)] == pytest.approx(1.0) and w[(0, 2)] == pytest.approx(0.5)
    assert w[(2, 3)] == pytest.approx(1 / math.sqrt(2)) and (0, 3) not in w and (0, 0) not in w


def test_item_graph_scores_sum_neighbour_weights_over_the_history() -> None:
    channel = ItemGraphChannel(USERS, ITEMS, n_users=3, n_items=4)
    scores = channel.score(np.array([0, 2]))
    assert scores[0] == pytest.approx([1.0, 1.0, 1.0, 0.0])  # item 2 = w(0,2) + w(1,2)
    assert scores[1] == pytest.approx([0.5, 0.5, 1 / math.sqrt(2), 1 / math.sqrt(2)])
    ids, _ = channel.recommend(np.array([0]), k=1, exclude=[np.array([0, 1])])
    assert ids.tolist() == [[2]]


def test_item_graph_keeps_only_the_strongest_neighbours() -> None:
    channel = ItemGraphChannel(USERS, ITEMS, n_users=3, n_items=4, n_neighbours=1)
    assert channel.neighbours[:, 0].tolist() == [1, 0, 3, 2]


def test_two_tower_scores_are_dot_products_and_the_index_path_agrees() -> None:
    from {{ cookiecutter.package_name }}.retrieval import build_index

    users = np.array([[1.0, 0.0], [0.6, 0.8]], dtype=np.float32)
    items = np.array([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6]], dtype=np.float32)
    exact = TwoTowerChannel(users, items)
    assert exact.score(np.array([1]))[0] == pytest.approx([0.6, 0.8, 0.96])
    indexed = TwoTowerChannel(users, items, build_index(items, kind="flat"))
    for channel in (exact, indexed):
        ids, scores = channel.recommend(np.array([1]), k=2, exclude=[np.array([2])])
        assert ids.tolist() == [[1, 0]] and scores[0] == pytest.approx([0.8, 0.6])


def test_unknown_users_and_oversized_k_are_clear_errors() -> None:
    channel = PopularityChannel(ITEMS, 4, n_users=3)
    with pytest.raises(KeyError, match="unknown user index 7; expected 0..2"):
        channel.score(np.array([7]))
    with pytest.raises(ValueError, match="k=5 must be between 1 and the catalog size 4"):
        channel.recommend(np.array([0]), k=5)
    with pytest.raises(KeyError, match="unknown user index -1"):
        ItemGraphChannel(USERS, ITEMS, 3, 4).score(np.array([-1]))
