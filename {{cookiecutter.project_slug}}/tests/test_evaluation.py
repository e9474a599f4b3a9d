"""Recall@K, NDCG@K and HitRate@K against hand-computed values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.evaluation import (
    evaluate_channels,
    rank_metrics,
    save_results,
)

SCORES = np.array([[0.9, 0.8, 0.7, 0.6, 0.5]] * 3, dtype=np.float32)


def score(users: np.ndarray) -> np.ndarray:
    return SCORES[users]


def test_metrics_match_a_hand_computed_case_with_seen_items_excluded() -> None:
    # user 0: item 0 seen (excluded) -> ranking 1, 2, 3, 4; relevant {2, 4}
    # user 1: nothing seen -> ranking 0, 1, ...; relevant {0}
    # user 2: no held-out items -> not averaged
    truth = [np.array([2, 4]), np.array([0]), np.array([], dtype=np.int64)]
    seen = [np.array([0]), np.array([], dtype=np.int64), np.array([1])]
    m = rank_metrics(score, truth, seen, n_items=5, ks=[2, 4])
    d = 1 / math.log2(3)
    assert m["recall@2"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["hit@2"] == pytest.approx(1.0)
    assert m["ndcg@2"] == pytest.approx((d / (1 + d) + 1.0) / 2)
    assert m["recall@4"] == pytest.approx(1.0)
    assert m["ndcg@4"] == pytest.approx(((d + 1 / math.log2(5)) / (1 + d) + 1.0) / 2)


def test_a_seen_item_is_never_a_hit_even_when_k_covers_the_catalog() -> None:
    truth, seen = [np.array([0, 3]), np.array([0])], [np.array([0]), np.array([0])]
    m = rank_metrics(score, truth, seen, n_items=5, ks=[5])
    assert m["recall@5"] == 1.0  # user 0: only item 3 is a reachable target; user 1: none, skipped


def test_k_larger_than_the_catalog_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="K=6 is larger than the catalog \\(5 items\\)"):
        rank_metrics(score, [np.array([1])], [np.array([], dtype=np.int64)], n_items=5, ks=[6])


def test_nothing_to_evaluate_is_an_error_not_a_zero() -> None:
    with pytest.raises(ValueError, match="no user has a held-out item"):
        rank_metrics(score, [np.array([], dtype=np.int64)], [np.array([], dtype=np.int64)], 5, [1])


class _Fixed:
    def __init__(self, best: int) -> None:
        self.best = best

    def score(self, users: np.ndarray) -> np.ndarray:
        out = np.zeros((len(users), 5), dtype=np.float32)
        out[:, self.best] = 1.0
        return out


def test_channels_are_evaluated_side_by_side_and_saved_as_json_and_png(tmp_path: Path) -> None:
    truth, seen = [np.array([3])], [np.array([], dtype=np.int64)]
    results = evaluate_channels({"right": _Fixed(3), "wrong": _Fixed(0)}, truth, seen, 5, ks=[1, 2])
    assert results["right"]["recall@1"] == 1.0 and results["wrong"]["recall@1"] == 0.0
    json_path, png_path = save_results(results, tmp_path)
    assert json.loads(json_path.read_text())["right"]["hit@2"] == 1.0
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
