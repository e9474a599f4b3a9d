"""faiss indexes over item embeddings, chosen by catalog size, on CPU or GPU.

Inner product on L2-normalised vectors (= cosine). The choice (``kind="auto"``):

* ``flat`` for up to ``FLAT_MAX_ITEMS`` items - exact, no training, fast enough at that size.
* ``ivf`` (IVF-Flat) above that: ``nlist = 4 * sqrt(n)`` rounded to a power of two (1M -> 4096)
  coarse centroids trained with k-means on at most ``64 * nlist`` vectors; at search time
  ``nprobe`` lists are scanned. ``nprobe`` is calibrated: doubled from 8 until recall@10
  against exact search on sample queries reaches ``target_recall`` (0.95). IVF has a faiss
  GPU implementation, so the same choice works on a CUDA device.
* ``hnsw`` (CPU only, on request): graph index, ``M=32``, ``efConstruction=80``,
  ``efSearch=128``; no training, slower to build.

If faiss is not importable, ``ExactIndex`` (a torch matmul + top-k) stands in with the same
``search`` method, so retrieval still works, only slower.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

FLAT_MAX_ITEMS = 50_000
KINDS = ("auto", "flat", "ivf", "hnsw", "exact")


class ExactIndex:
    """Brute-force inner-product search in torch; the fallback without faiss."""

    def __init__(self, vectors: np.ndarray, device: str = "cpu") -> None:
        import torch  # here, not at module level: serving imports this module and needs only faiss

        self.vectors = torch.as_tensor(
            np.ascontiguousarray(vectors, dtype=np.float32), device=device
        )
        self.ntotal, self.d = self.vectors.shape

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        import torch

        q = torch.as_tensor(
            np.ascontiguousarray(queries, dtype=np.float32), device=self.vectors.device
        )
        scores, ids = torch.topk(q @ self.vectors.T, min(k, self.ntotal), dim=1)  # (b, n) -> (b, k)
        return scores.cpu().numpy(), ids.cpu().numpy().astype(np.int64)


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def faiss_gpu_count() -> int:
    """GPUs usable by faiss (0 for faiss-cpu or without a driver)."""
    try:
        import faiss
    except ImportError:
        return 0
    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None and hasattr(faiss, "StandardGpuResources") else 0


def choose_kind(n_items: int) -> str:
    return "flat" if n_items <= FLAT_MAX_ITEMS else "ivf"


def default_nlist(n_items: int) -> int:
    return int(min(65536, max(16, 2 ** round(math.log2(4 * math.sqrt(n_items))))))


def build_index(
    vectors: np.ndarray,
    kind: str = "auto",
    device: str = "cpu",
    nlist: int | None = None,
    nprobe: int | None = None,
    target_recall: float = 0.95,
    calibration_queries: np.ndarray | None = None,
    seed: int = 0,
) -> Any:
    """Build an inner-product index over ``vectors`` (n, dim).

    ``device`` starting with "cuda" moves the index to the GPU when faiss has GPU support
    (otherwise it stays on CPU). ``calibration_queries`` (default: a sample of the vectors)
    are used to pick ``nprobe`` for IVF when it is not given.
    """
    if kind not in KINDS:
        raise ValueError(f"index kind {kind!r}; expected one of {KINDS}")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) == 0:
        raise ValueError(f"expected a non-empty (n_items, dim) matrix, got shape {vectors.shape}")
    if kind == "exact" or not faiss_available():
        return ExactIndex(vectors, device="cpu" if not device.startswith("cuda") else device)
    import faiss

    n, dim = vectors.shape
    kind = choose_kind(n) if kind == "auto" else kind
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
        index.add(vectors)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.add(vectors)
        index.hnsw.efSearch = 128
    else:
        nlist = nlist or default_nlist(n)
        if nlist > n:
            raise ValueError(f"IVF with nlist={nlist} needs at least that many vectors, got {n}")
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        sample = vectors[rng.choice(n, size=min(n, 64 * nlist), replace=False)]
        index.cp.seed = seed
        index.train(sample)
        index.add(vectors)
        if nprobe is None:
            queries = calibration_queries
            if queries is None:
                queries = vectors[rng.choice(n, size=min(n, 500), replace=False)]
            nprobe = calibrate_nprobe(index, vectors, queries, target_recall)
        index.nprobe = nprobe
    return to_device(index, device)


def to_device(index: Any, device: str) -> Any:
    """Move a faiss index to the GPU for a "cuda[:N]" device when faiss can; else unchanged."""
    if not device.startswith("cuda") or faiss_gpu_count() == 0 or isinstance(index, ExactIndex):
        return index
    import faiss

    if isinstance(index, faiss.IndexHNSW):
        return index  # faiss has no GPU HNSW; CPU search it is
    ordinal = int(device.split(":")[1]) if ":" in device else 0
    resources = faiss.StandardGpuResources()
    gpu_index = faiss.index_cpu_to_gpu(resources, ordinal, index)
    gpu_index.referenced_resources = resources  # keep resources alive with the index
    return gpu_index


def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth: exact inner-product top-k (faiss Flat when available)."""
    if faiss_available():
        import faiss

        flat = faiss.IndexFlatIP(vectors.shape[1])
        flat.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return flat.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return ExactIndex(vectors).search(queries, k)


def recall_against(ann_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Mean fraction of the exact top-k found in the ANN top-k."""
    k = exact_ids.shape[1]
    hits = sum(len(np.intersect1d(a[a >= 0], e)) for a, e in zip(ann_ids, exact_ids, strict=True))
    return hits / (k * len(exact_ids))


def ann_recall(index: Any, vectors: np.ndarray, queries: np.ndarray, k: int = 10) -> float:
    """recall@k of ``index`` against exact search over the same ``vectors``."""
    _, exact_ids = exact_search(vectors, queries, k)
    _, ann_ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return recall_against(ann_ids, exact_ids)


def calibrate_nprobe(
    index: Any, vectors: np.ndarray, queries: np.ndarray, target_recall: float = 0.95, k: int = 10
) -> int:
    """Smallest power-of-two ``nprobe`` (from 8) reaching ``target_recall`` at k on ``queries``."""
    _, exact_ids = exact_search(vectors, queries, k)
    nprobe = min(8, index.nlist)
    while True:
        index.nprobe = nprobe
        _, ann_ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        if recall_against(ann_ids, exact_ids) >= target_recall or nprobe >= index.nlist:
            return nprobe
        nprobe = min(index.nlist, nprobe * 2)


def search_excluding(
    index: Any, queries: np.ndarray, k: int, exclude: Sequence[np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (ids, scores) per query, skipping excluded ids; over-fetches then filters.

    Rows with fewer than k results (tiny catalogs, or ANN misses) are padded with -1 / -inf.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(len(queries), -1)
    extra = max((len(e) for e in exclude), default=0) if exclude is not None else 0
    fetch = min(index.ntotal, k + extra)
    scores, ids = index.search(queries, fetch)
    out_ids = np.full((len(queries), k), -1, dtype=np.int64)
    out_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    for row in range(len(queries)):
        keep = ids[row] >= 0
        if exclude is not None and len(exclude[row]):
            keep &= ~np.isin(ids[row], exclude[row])
        chosen = np.flatnonzero(keep)[:k]
        out_ids[row, : len(chosen)] = ids[row, chosen]
        out_scores[row, : len(chosen)] = scores[row, chosen]
    return out_ids, out_scores
