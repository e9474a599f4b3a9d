"""EASE: the closed form is the constrained ridge solution, it recommends through the Channel
contract, and its l2 is chosen on validation."""

from __future__ import annotations

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.channels import PopularityChannel
from {{ cookiecutter.package_name }}.channels.ease import (
    MAX_ITEMS,
    EaseChannel,
    fit_ease,
    tune_ease,
)
from {{ cookiecutter.package_name }}.data import (
    generate_synthetic,
    make_split,
)
from {{ cookiecutter.package_name }}.evaluation import rank_metrics


def _pairs(seed: int = 0, n_users: int = 30, n_items: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n_users, n_items)) < 0.3
    users, items = np.nonzero(x)
    return users.astype(np.int64), items.astype(np.int64)


def test_ease_weights_are_the_ridge_regression_of_each_item_on_all_others() -> None:
    # Column j of B minimises ||x_j - X_{-j} b||^2 + l2 ||b||^2 with B[j, j] = 0: solve each
    # column's ridge regression directly and compare with the closed form.
    users, items = _pairs()
    n_items, l2 = 12, 3.0
    x = np.zeros((30, n_items))
    x[users, items] = 1.0
    b = fit_ease(users, items, n_items, l2)
    for j in range(n_items):
        others = [i for i in range(n_items) if i != j]
        xo = x[:, others]
        expected = np.linalg.solve(xo.T @ xo + l2 * np.eye(n_items - 1), xo.T @ x[:, j])
        np.testing.assert_allclose(b[others, j], expected, rtol=1e-4, atol=1e-5)
        assert b[j, j] == 0.0


def test_ease_scores_are_history_times_weights_and_recommend_skips_seen_items() -> None:
    users, items = _pairs(1)
    channel = EaseChannel.fit(users, items, 30, 12, l2=2.0)
    x = np.zeros((30, 12), np.float32)
    x[users, items] = 1.0
    np.testing.assert_allclose(channel.score(np.arange(30)), x @ channel.weights, rtol=1e-5)
    seen = [items[users == u] for u in range(3)]
    top, scores = channel.recommend(np.arange(3), 4, exclude=seen)
    for row in range(3):
        assert not set(top[row]) & set(seen[row])
        assert list(scores[row]) == sorted(scores[row], reverse=True)


def test_a_users_ease_scores_are_the_same_floats_alone_or_in_any_batch() -> None:
    # The service scores one user, evaluation batches of them: the same floats either way.
    # Histories with a repeated item (bought twice) count it once, as the 0/1 matrix does.
    users, items = _pairs(3)
    fitted = EaseChannel.fit(users, items, 30, 12, l2=2.0)
    repeated = np.concatenate([users, users[:5]]), np.concatenate([items, items[:5]])
    order = np.argsort(repeated[0], kind="stable")
    indptr = np.searchsorted(repeated[0][order], np.arange(31))
    channel = EaseChannel(fitted.weights, indptr, repeated[1][order])
    batch = channel.score(np.arange(30))
    np.testing.assert_array_equal(batch, fitted.score(np.arange(30)))
    for u in range(30):
        np.testing.assert_array_equal(channel.score(np.array([u]))[0], batch[u])
    shuffled = np.random.default_rng(0).permutation(30)
    np.testing.assert_array_equal(channel.score(shuffled), batch[shuffled])
    empty = EaseChannel(fitted.weights, np.zeros(31, np.int64), np.zeros(0, np.int64))
    assert not empty.score(np.arange(30)).any()  # no history, no evidence: every score 0


def test_ease_rebuilt_from_its_arrays_scores_the_same() -> None:
    users, items = _pairs(2)
    channel = EaseChannel.fit(users, items, 30, 12, l2=5.0)
    again = EaseChannel(
        channel.channel_arrays()["ease.weights.npy"],
        channel.history_indptr,
        channel.history_indices,
    )
    np.testing.assert_array_equal(again.score(np.arange(30)), channel.score(np.arange(30)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"l2": 0.0}, "must be > 0"),
        ({"l2": float("nan")}, "must be > 0"),
        ({"n_items": MAX_ITEMS + 1}, "EASE supports up to"),
    ],
)
def test_ease_refuses_bad_settings_with_the_rule(kwargs: dict, message: str) -> None:
    users, items = _pairs()
    args = {"n_items": 12, "l2": 1.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        fit_ease(users, items, args["n_items"], args["l2"])


def test_ease_l2_is_chosen_on_validation_and_beats_popularity_on_test() -> None:
    split = make_split(generate_synthetic(n_users=400, n_items=200, seed=3), "random", seed=3)
    channel, by_l2 = tune_ease(
        split.train, split.by_user("val"), split.n_users, split.n_items, grid=(5.0, 50.0, 500.0)
    )
    assert set(by_l2) == {5.0, 50.0, 500.0}
    assert by_l2[channel.l2] == max(by_l2.values())
    seen = split.by_user("train+val")
    test = split.by_user("test")
    pop = PopularityChannel(split.train[1], split.n_items, split.n_users)
    ease_r = rank_metrics(channel.score, test, seen, split.n_items, [10])["recall@10"]
    pop_r = rank_metrics(pop.score, test, seen, split.n_items, [10])["recall@10"]
    assert ease_r > pop_r, (ease_r, pop_r)


def test_ease_fits_on_the_cpu_in_float64_whatever_the_catalog_order() -> None:
    # The CPU twin of the CUDA fit below: permuting the item ids permutes B and nothing else.
    users, items = _pairs(4)
    b = fit_ease(users, items, 12, 7.0)
    perm = np.random.default_rng(0).permutation(12)
    b_perm = fit_ease(users, perm[items], 12, 7.0)
    np.testing.assert_allclose(b_perm[np.ix_(perm, perm)], b, rtol=1e-5, atol=1e-6)


@pytest.mark.cuda
def test_ease_fits_on_cuda_like_on_the_cpu() -> None:
    users, items = _pairs(4)
    np.testing.assert_allclose(
        fit_ease(users, items, 12, 7.0, device="cuda"),
        fit_ease(users, items, 12, 7.0, device="cpu"),
        rtol=1e-5,
        atol=1e-6,
    )
