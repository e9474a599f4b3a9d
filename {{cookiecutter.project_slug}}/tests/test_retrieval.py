"""faiss index choice, ANN recall against exact search, exclusions, GPU twin."""

from __future__ import annotations

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.retrieval import (
    FLAT_MAX_ITEMS,
    ExactIndex,
    ann_recall,
    build_index,
    choose_kind,
    default_nlist,
    exact_search,
    search_excluding,
)


def clustered(n: int, dim: int = 32, clusters: int = 50, seed: int = 0) -> np.ndarray:
    """Unit vectors around cluster centres: the shape trained item embeddings have."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    x = centres[rng.integers(0, clusters, n)] + 0.5 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_the_index_kind_follows_catalog_size() -> None:
    assert choose_kind(1_000) == "flat" and choose_kind(FLAT_MAX_ITEMS) == "flat"
    assert choose_kind(FLAT_MAX_ITEMS + 1) == "ivf"
    assert default_nlist(1_000_000) == 4096


def test_a_flat_index_returns_exactly_the_exact_top_k() -> None:
    items, queries = clustered(2_000), clustered(50, seed=1)
    index = build_index(items)  # small catalog -> flat
    _, got = index.search(queries, 10)
    _, want = exact_search(items, queries, 10)
    assert np.array_equal(got, want)


def test_ivf_with_calibrated_nprobe_reaches_the_target_recall() -> None:
    items, queries = clustered(20_000), clustered(300, seed=1)
    index = build_index(
        items, kind="ivf", nlist=128, calibration_queries=queries[:150], target_recall=0.95
    )
    assert 1 <= index.nprobe <= 128
    assert ann_recall(index, items, queries[150:], k=10) >= 0.9  # held-out queries


def test_the_exact_fallback_agrees_with_faiss() -> None:
    items, queries = clustered(500), clustered(20, seed=2)
    s1, i1 = ExactIndex(items).search(queries, 5)
    s2, i2 = exact_search(items, queries, 5)
    assert np.array_equal(i1, i2) and np.allclose(s1, s2, atol=1e-5)
    assert isinstance(build_index(items, kind="exact"), ExactIndex)


def test_search_excluding_skips_seen_items_and_pads_when_the_catalog_runs_out() -> None:
    items = np.eye(4, dtype=np.float32)
    query = np.array([[0.4, 0.3, 0.2, 0.1]], dtype=np.float32)
    ids, scores = search_excluding(build_index(items), query, 2, [np.array([0])])
    assert ids.tolist() == [[1, 2]] and scores[0] == pytest.approx([0.3, 0.2])
    ids, scores = search_excluding(build_index(items), query, 4, [np.array([0, 1])])
    assert ids.tolist() == [[2, 3, -1, -1]] and np.isneginf(scores[0, 2:]).all()


def test_bad_index_requests_are_rejected() -> None:
    with pytest.raises(ValueError, match="index kind 'lsh'"):
        build_index(clustered(10), kind="lsh")
    with pytest.raises(ValueError, match="non-empty \\(n_items, dim\\) matrix"):
        build_index(np.zeros((0, 4), np.float32))
    with pytest.raises(ValueError, match="nlist=64 needs at least that many vectors"):
        build_index(clustered(10), kind="ivf", nlist=64)


@pytest.mark.faiss_gpu
def test_a_gpu_index_returns_the_same_neighbours_as_the_cpu_index() -> None:
    items, queries = clustered(5_000), clustered(100, seed=3)
    gpu = build_index(items, kind="flat", device="cuda")
    assert "Gpu" in type(gpu).__name__
    _, got = gpu.search(queries, 10)
    _, want = exact_search(items, queries, 10)
    assert (got == want).mean() > 0.99  # float ties may order differently
