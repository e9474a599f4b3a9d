"""User and item towers: plain ``nn.Module``s that map (id, side features) to a unit vector.

Both towers share one shape so either can be exported on its own (TorchScript / ONNX) and
served without the training code::

    ids       (batch,)                 int64 dense index
    features  (batch, n_features)      int64 categorical codes (n_features may be 0)
    -> (batch, dim) float32, L2-normalised so a dot product is a cosine similarity
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Tower(nn.Module):
    """ID embedding + one embedding per categorical feature -> MLP -> L2-normalised vector."""

    def __init__(
        self,
        n_ids: int,
        cardinalities: list[int],
        dim: int = 64,
        hidden: int = 128,
        feature_dim: int = 16,
    ) -> None:
        super().__init__()
        if n_ids < 1 or dim < 1:
            raise ValueError(f"a tower needs n_ids >= 1 and dim >= 1, got n_ids={n_ids}, dim={dim}")
        self.n_ids = n_ids
        self.cardinalities = list(cardinalities)
        self.id_embedding = nn.Embedding(n_ids, dim)
        self.feature_embeddings = nn.ModuleList(nn.Embedding(c, feature_dim) for c in cardinalities)
        width = dim + feature_dim * len(cardinalities)
        # The MLP sees the id and features together; the skip keeps a pure-id path, so with
        # no useful features the tower degrades gracefully to matrix factorisation.
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        nn.init.normal_(self.id_embedding.weight, std=0.1)

    def forward(self, ids: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        own = self.id_embedding(ids)  # (batch, dim)
        parts = [own]
        for k, embedding in enumerate(self.feature_embeddings):
            parts.append(embedding(features[:, k]))  # (batch, feature_dim)
        x = torch.cat(parts, dim=-1)  # (batch, dim + n_features * feature_dim)
        return F.normalize(own + self.mlp(x), dim=-1)  # (batch, dim)


class UserTower(Tower):
    """Tower over user ids and user side features (segment, demographics, ...)."""


class ItemTower(Tower):
    """Tower over item ids and item side features (category, price band, ...)."""
