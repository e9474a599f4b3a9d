"""Neural models: the towers and the two-tower retrieval model."""

from __future__ import annotations

from .towers import CategoricalFeatures, ItemTower, UserTower, history_columns, history_table
from .two_tower import TwoTower, build_two_tower, embed_all

__all__ = [
    "CategoricalFeatures",
    "ItemTower",
    "TwoTower",
    "UserTower",
    "build_two_tower",
    "embed_all",
    "history_columns",
    "history_table",
]
