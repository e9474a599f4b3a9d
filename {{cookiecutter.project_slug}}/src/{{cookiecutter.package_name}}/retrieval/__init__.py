"""Item retrieval: faiss index build/search (CPU or GPU), exact fallback, ANN recall."""

from __future__ import annotations

from .index import (
    FLAT_MAX_ITEMS,
    ExactIndex,
    ann_recall,
    build_index,
    calibrate_nprobe,
    choose_kind,
    default_nlist,
    exact_search,
    faiss_available,
    faiss_gpu_count,
    recall_against,
    search_excluding,
    to_device,
)

__all__ = [
    "FLAT_MAX_ITEMS",
    "ExactIndex",
    "ann_recall",
    "build_index",
    "calibrate_nprobe",
    "choose_kind",
    "default_nlist",
    "exact_search",
    "faiss_available",
    "faiss_gpu_count",
    "recall_against",
    "search_excluding",
    "to_device",
]
