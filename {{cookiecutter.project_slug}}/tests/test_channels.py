"""Each recall channel against small cases worked out by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.artifacts import (
    ArtifactError,
    Artifacts,
    load_artifacts,
    save_artifacts,
)
from {{ cookiecutter.package_name }}.channels import (
    SERVED,
    Channel,
    ItemGraphChannel,
    PopularityChannel,
    ScoringChannel,
    TwoTowerChannel,
    load_channels,
)
from {{ cookiecutter.package_name }}.data import generate_synthetic, random_split
from {{ cookiecutter.package_name }}.retrieval import build_index

# Three users: u0 took items {0, 1}, u1 {0, 1, 2}, u2 {2, 3}.
USERS = np.array([0, 0, 1, 1, 1, 2, 2])
ITEMS = np.array([0, 1, 0, 1, 2, 2, 3])
CONTRACT = ("popularity", "item_graph", "two_tower", "two_tower_index")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Artifacts, dict[str, Channel]]:
    """An artifacts folder written and read back as a service would, and every channel over
    the same training pairs; the two-tower channels take their vectors from the folder."""
    split = random_split(generate_synthetic(n_users=60, n_items=40, events_per_user=10, seed=3))
    users, items = split.train
    rng = np.random.default_rng(0)
    user_emb, item_emb = (
        (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
        for x in (rng.normal(size=(split.n_users, 8)), rng.normal(size=(split.n_items, 8)))
    )
    popularity = PopularityChannel(items, split.n_items, split.n_users)
    graph = ItemGraphChannel(users, items, split.n_users, split.n_items)
    folder = save_artifacts(
        tmp_path_factory.mktemp("channels") / "artifacts",
        user_ids=split.data.user_ids,
        item_ids=split.data.item_ids,
        user_embeddings=user_emb,
        item_embeddings=item_emb,
        index=build_index(item_emb, kind="flat"),
        popularity_scores=popularity.counts,
        neighbours=graph.neighbours,
        neighbour_weights=graph.weights,
        seen=split.by_user("train"),
        config={},
    )
    art = load_artifacts(Path(folder))
    channels: dict[str, Channel] = {
        "popularity": popularity,
        "item_graph": graph,
        "two_tower": TwoTowerChannel(art.user_embeddings, art.item_embeddings),
        "two_tower_index": TwoTowerChannel(art.user_embeddings, art.item_embeddings, art.index),
    }
    return art, channels


@pytest.mark.parametrize("name", CONTRACT)
def test_every_channel_recommends_k_distinct_unseen_items_best_first(
    served: tuple[Artifacts, dict[str, Channel]], name: str
) -> None:
    """The ``Channel`` contract, driven for every user: ``recommend`` returns k distinct item
    indices the user has not seen, best first, and they are the top of what ``score`` ranks."""
    art, channels = served
    channel, k = channels[name], 5
    users = np.arange(art.n_users)
    seen = [art.seen_items(int(u)) for u in users]
    full = channel.score(users)
    assert channel.n_items == art.n_items and full.shape == (art.n_users, art.n_items)
    assert full.dtype == np.float32
    ids, scores = channel.recommend(users, k, exclude=seen)
    assert ids.shape == scores.shape == (art.n_users, k)
    for u in users:
        taken = ids[u].tolist()
        assert len(set(taken)) == k and all(0 <= i < art.n_items for i in taken), (u, taken)
        assert not set(taken) & set(seen[u].tolist()), f"user {u} was offered seen items"
        assert np.all(np.diff(scores[u]) <= 1e-6), f"user {u}: scores not best first {scores[u]}"
        assert scores[u] == pytest.approx(full[u, ids[u]], abs=1e-5)
        # Nothing left out (and not seen) scores above the last item taken.
        rest = np.setdiff1d(np.arange(art.n_items), np.concatenate([ids[u], seen[u]]))
        assert full[u, rest].max() <= scores[u, -1] + 1e-5, f"user {u}: a better item was left out"


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


class _Boost(ScoringChannel):
    """A channel of its own files: a per-item boost, read back from ``boost.weights.npy``."""

    name = "boost"
    artifact_files = ("boost.weights.npy",)

    def __init__(self, weights: np.ndarray, n_users: int) -> None:
        self.weights, self.n_items, self.n_users = weights, len(weights), n_users

    @classmethod
    def from_artifacts(cls, artifacts: Artifacts) -> _Boost:
        return cls(artifacts.channel_arrays["boost.weights.npy"], artifacts.n_users)

    def score(self, users: np.ndarray) -> np.ndarray:
        users = self._check_users(users, self.n_users)
        return np.broadcast_to(self.weights, (len(users), self.n_items)).astype(np.float32)


def test_a_further_channel_is_served_from_its_own_arrays_and_only_where_the_folder_has_them(
    served: tuple[Artifacts, dict[str, Channel]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    art, _ = served
    monkeypatch.setitem(SERVED, "boost", _Boost)
    assert set(load_channels(art)) == {"popularity", "item_graph", "two_tower"}
    weights = np.arange(art.n_items, dtype=np.float32)
    folder = save_artifacts(
        tmp_path / "with-boost", **_saved(art), channel_arrays={"boost.weights.npy": weights}
    )
    boost = load_channels(load_artifacts(folder))["boost"]
    ids, _ = boost.recommend(np.array([0]), k=3, exclude=[np.array([art.n_items - 1])])
    assert ids.tolist() == [[art.n_items - 2, art.n_items - 3, art.n_items - 4]]
    with pytest.raises(ArtifactError, match="'<channel>.<what>.npy'"):
        save_artifacts(tmp_path / "bad", **_saved(art), channel_arrays={"Boost.npy": weights})


def _saved(art: Artifacts) -> dict[str, object]:
    return {
        "user_ids": art.user_ids,
        "item_ids": art.item_ids,
        "user_embeddings": art.user_embeddings,
        "item_embeddings": art.item_embeddings,
        "index": art.index,
        "popularity_scores": np.zeros(art.n_items),
        "neighbours": art.neighbours,
        "neighbour_weights": art.neighbour_weights,
        "seen": (art.seen_indptr, art.seen_indices),
        "config": {},
    }
