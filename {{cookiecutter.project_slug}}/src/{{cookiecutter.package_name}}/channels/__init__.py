"""Recall channels behind one interface (``Channel``): popularity, item graph, two-tower, SASRec.

Evaluation fits them on a split and ranks their ``score``; the service rebuilds the same
classes from an artifacts folder (``load_channels``) and answers with their ``recommend``.
Importing this package does not import torch (only fitting the item graph does, and building
a SASRec channel from a trained model).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Channel, ScoringChannel, top_k
from .item_graph import ItemGraphChannel, co_occurrence_neighbours
from .popularity import PopularityChannel
from .sasrec import SASRecChannel
from .two_tower import TwoTowerChannel

if TYPE_CHECKING:
    from ..artifacts import Artifacts

SERVED: dict[str, type[ScoringChannel]] = {
    PopularityChannel.name: PopularityChannel,
    ItemGraphChannel.name: ItemGraphChannel,
    TwoTowerChannel.name: TwoTowerChannel,
    SASRecChannel.name: SASRecChannel,
}
"""The channels a service loads from an artifacts folder, by name (the router's channel names)."""


def load_channels(artifacts: Artifacts) -> dict[str, ScoringChannel]:
    """Every channel in ``SERVED`` whose files the folder holds, rebuilt from it.

    A channel class lists the files it needs beyond the core set in ``artifact_files`` (e.g.
    ``("ease.weights.npy",)``); a folder written without them serves the other channels.
    """
    present = set(artifacts.manifest.get("files", {}))
    return {
        name: cls.from_artifacts(artifacts)
        for name, cls in SERVED.items()
        if set(cls.artifact_files) <= present
    }


__all__ = [
    "SERVED",
    "Channel",
    "ItemGraphChannel",
    "PopularityChannel",
    "SASRecChannel",
    "ScoringChannel",
    "TwoTowerChannel",
    "co_occurrence_neighbours",
    "load_channels",
    "top_k",
]
