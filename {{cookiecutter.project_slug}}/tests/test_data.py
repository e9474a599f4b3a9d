"""Synthetic data, file loaders and splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.data import (
    Interactions,
    generate_synthetic,
    load_interactions,
    make_split,
    random_split,
    temporal_split,
    write_interactions,
)


def small() -> Interactions:
    return generate_synthetic(n_users=120, n_items=60, n_categories=6, events_per_user=12, seed=3)


def test_the_same_seed_gives_the_same_log_and_another_seed_a_different_one() -> None:
    a, b, c = (
        small(),
        small(),
        generate_synthetic(n_users=120, n_items=60, n_categories=6, events_per_user=12, seed=4),
    )
    assert np.array_equal(a.items, b.items) and np.array_equal(a.timestamps, b.timestamps)
    assert not np.array_equal(a.items[: len(c.items)], c.items[: len(a.items)])


def test_synthetic_users_concentrate_on_few_categories() -> None:
    # The learnable structure: a user's events fall into their favourite categories far more
    # often than a category-blind (popularity-only) user's would.
    data = generate_synthetic(n_users=300, n_items=200, n_categories=10, events_per_user=30, seed=0)
    category = data.item_features[data.items, 0]
    top_share = []
    for u in range(data.n_users):
        counts = np.bincount(category[data.users == u], minlength=10)
        top_share.append(np.sort(counts)[-2:].sum() / counts.sum())
    overall = np.sort(np.bincount(category, minlength=10))[-2:].sum() / len(category)
    assert np.mean(top_share) > overall + 0.2


def test_synthetic_events_follow_the_funnel() -> None:
    data = small()
    counts = np.bincount(data.events, minlength=4)
    assert counts[0] > counts[1] > counts[2] > counts[3] > 0  # browse > click > cart > purchase


def test_random_split_is_per_user_80_10_10_and_disjoint() -> None:
    data = small()
    split = random_split(data, seed=1)
    users, items, _ = data.unique_pairs()
    parts = [set(zip(*p, strict=True)) for p in (split.train, split.val, split.test)]
    assert (
        parts[0].isdisjoint(parts[1])
        and parts[0].isdisjoint(parts[2])
        and parts[1].isdisjoint(parts[2])
    )
    assert set().union(*parts) == set(zip(users, items, strict=True))
    for u in range(data.n_users):
        n = int((users == u).sum())
        n_val, n_test = int((split.val[0] == u).sum()), int((split.test[0] == u).sum())
        assert n - n_val - n_test >= 1
        if n >= 10:
            assert n_val == int(0.1 * n) and n_test == int(0.1 * n)


def test_random_split_gives_a_small_user_one_test_item_but_keeps_one_for_training() -> None:
    data = Interactions(
        name="tiny",
        users=np.array([0, 0, 0, 1]),
        items=np.array([0, 1, 2, 0]),
        events=np.zeros(4, np.int64),
        timestamps=np.arange(4),
        user_ids=["a", "b"],
        item_ids=["x", "y", "z"],
    )
    split = random_split(data)
    assert sorted(split.train[0].tolist()) == [0, 1]  # user a keeps one, user b keeps its only one
    assert split.test[0].tolist() == [0] and split.val[0].tolist() == [0]


def test_temporal_split_holds_out_each_users_last_and_second_last_item() -> None:
    data = Interactions(
        name="t",
        users=np.array([0, 0, 0, 0, 1, 1]),
        items=np.array([3, 1, 2, 0, 0, 1]),
        events=np.zeros(6, np.int64),
        timestamps=np.array([40, 10, 30, 20, 5, 6]),
        user_ids=["a", "b"],
        item_ids=["i0", "i1", "i2", "i3"],
    )
    split = temporal_split(data)
    assert split.test[1].tolist() == [3] and split.val[1].tolist() == [2]
    assert sorted(zip(*split.train, strict=True)) == [(0, 0), (0, 1), (1, 0), (1, 1)]  # b: too few


def test_an_unknown_split_kind_is_rejected_with_the_choices() -> None:
    with pytest.raises(ValueError, match="'random' or 'temporal'"):
        make_split(small(), "by-moon-phase")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_written_file_loads_back_to_the_same_interactions(tmp_path: Path, suffix: str) -> None:
    if suffix == ".parquet":
        pytest.importorskip("pyarrow", reason="Parquet round trip needs pyarrow; not installed")
    data = small()
    loaded = load_interactions(write_interactions(data, tmp_path / f"events{suffix}"))
    assert (
        loaded.n_users == data.n_users
        and loaded.n_items == data.n_items
        and len(loaded) == len(data)
    )
    assert np.array_equal(loaded.items, data.items) and np.array_equal(
        loaded.timestamps, data.timestamps
    )
    assert loaded.event_names[:4] == data.event_names
    assert loaded.item_feature_names == ("category", "price_bucket")
    assert np.array_equal(loaded.item_features, data.item_features)


def test_iso_timestamps_and_missing_optional_columns_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text(
        "user,item,timestamp\nu1,a,2024-05-01T12:00:00\nu2,b,1700000000\n", encoding="utf-8"
    )
    data = load_interactions(path)
    assert data.user_ids == ["u1", "u2"] and data.event_names == ("interaction",)
    assert data.timestamps[1] == 1_700_000_000


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty file"),
        ("user,item\n", "header but no rows"),
        ("customer,item\nu1,a\n", r"e\.csv:1: header .* lacks required column\(s\) \['user'\]"),
        ("user,item,event\nu1,a,click\nu2,b\n", r"e\.csv:3: 2 fields, header has 3"),
        ("user,item,timestamp\nu1,a,yesterday\n", r"e\.csv:2: timestamp 'yesterday'"),
        ("user,item\nu1,\n", r"e\.csv:2: empty user or item id"),
    ],
)
def test_bad_interaction_files_fail_with_file_line_and_fix(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "e.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_interactions(path)


def test_an_unsupported_file_type_and_a_missing_file_are_named(tmp_path: Path) -> None:
    (tmp_path / "e.json").write_text("[]", encoding="utf-8")
    with pytest.raises(ValueError, match=r"unsupported file type '\.json'"):
        load_interactions(tmp_path / "e.json")
    with pytest.raises(FileNotFoundError, match="no such interactions file"):
        load_interactions(tmp_path / "absent.csv")
