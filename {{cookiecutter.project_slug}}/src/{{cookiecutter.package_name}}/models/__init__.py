"""Neural models: the towers and the two-tower retrieval model."""

from __future__ import annotations

from .towers import ItemTower, Tower, UserTower
from .two_tower import NEGATIVES, TwoTower, build_two_tower, embed_all

__all__ = ["NEGATIVES", "ItemTower", "Tower", "TwoTower", "UserTower", "build_two_tower", "embed_all"]
