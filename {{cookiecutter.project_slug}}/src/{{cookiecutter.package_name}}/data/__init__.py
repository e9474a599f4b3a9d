"""Interaction data: the synthetic sample, file and MovieLens-100K loaders, and splits."""

from __future__ import annotations

from .interactions import (
    EVENT_NAMES,
    SPLITS,
    Interactions,
    Split,
    group_by_user,
    make_split,
    random_split,
    temporal_split,
)
from .loaders import (
    DatasetUnavailable,
    load_dataset,
    load_interactions,
    load_ml100k,
    ml100k_location,
    write_interactions,
)
from .synthetic import generate_synthetic

__all__ = [
    "EVENT_NAMES",
    "SPLITS",
    "DatasetUnavailable",
    "Interactions",
    "Split",
    "generate_synthetic",
    "group_by_user",
    "load_dataset",
    "load_interactions",
    "load_ml100k",
    "make_split",
    "ml100k_location",
    "random_split",
    "temporal_split",
    "write_interactions",
]
