"""Recall channels behind one interface (``Channel``): popularity, item graph, two-tower."""

from __future__ import annotations

from .base import Channel, ScoringChannel
from .item_graph import ItemGraphChannel, co_occurrence_neighbours
from .popularity import PopularityChannel
from .two_tower import TwoTowerChannel

__all__ = [
    "Channel",
    "ItemGraphChannel",
    "PopularityChannel",
    "ScoringChannel",
    "TwoTowerChannel",
    "co_occurrence_neighbours",
]
