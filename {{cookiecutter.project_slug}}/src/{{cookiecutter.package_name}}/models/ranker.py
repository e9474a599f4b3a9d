"""The ranker: a DCN-v2-style network that scores (user, candidate item) pairs.

Inputs (one row per pair; every tensor's first dimension is the number of pairs n)::

    user_ids (n,) int64    user_features (n, f_u) int64    item_ids (n,) int64
    item_features (n, f_i) int64    dense (n, d) float32 candidate features -> logits (n,)

``dense`` holds what the recall stage knows about the pair: each channel's standardised score,
its rank and whether it retrieved the item (``ranking.candidates``). The network standardises
it with statistics stored as buffers, so an exported graph needs no preprocessing outside it.

Architecture (Wang et al., "DCN V2", 2021), parallel form::

    x0 = [emb(user) | emb(user features) | emb(item) | emb(item features) | norm(dense)]
    cross:  x_{l+1} = x0 * (W_l x_l + b_l) + x_l        explicit feature crosses, full-rank W
    deep:   MLP(x0)                                     implicit interactions
    logit = w . [x_L | deep(x0)] + b  (+ a * norm(dense)[anchor])

``anchor`` (optional) names one dense column, normally the strongest channel's score, added
with a learned weight ``a``; the head starts at zero, so training starts from that channel's
order and learns corrections to it, like a boosted model started from a base score.
"""

from __future__ import annotations

import torch
from torch import nn

from .towers import CategoricalFeatures


class CrossLayer(nn.Module):
    """One DCN-v2 cross layer: x0 * (W x + b) + x."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)
        nn.init.zeros_(self.linear.bias)
        nn.init.normal_(self.linear.weight, std=0.01)

    def forward(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x0 * self.linear(x) + x  # (n, width)


class Ranker(nn.Module):
    """Scores candidate pairs; higher is better. Train with a listwise loss per user."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        user_cardinalities: list[int],
        item_cardinalities: list[int],
        n_dense: int,
        embedding_dim: int = 16,
        n_cross: int = 2,
        hidden: tuple[int, ...] = (128, 64),
        dropout: float = 0.1,
        use_ids: bool = True,
        anchor: int | None = None,
        anchor_scale: float = 2.0,
    ) -> None:
        super().__init__()
        if n_users < 1 or n_items < 1 or n_dense < 0:
            raise ValueError(
                f"ranker: need n_users, n_items >= 1 and n_dense >= 0; got {n_users}, "
                f"{n_items}, {n_dense}"
            )
        self.n_users, self.n_items, self.n_dense = n_users, n_items, n_dense
        self.use_ids = use_ids
        self.user_id = nn.Embedding(n_users, embedding_dim)
        self.item_id = nn.Embedding(n_items, embedding_dim)
        for table in (self.user_id, self.item_id):
            nn.init.normal_(table.weight, std=0.01)
        self.user_features = CategoricalFeatures(user_cardinalities, embedding_dim)
        self.item_features = CategoricalFeatures(item_cardinalities, embedding_dim)
        # Standardisation of the dense features: set from training data by ``fit_normaliser``.
        self.register_buffer("dense_mean", torch.zeros(n_dense))
        self.register_buffer("dense_std", torch.ones(n_dense))
        width = (
            (2 * embedding_dim if use_ids else 0)
            + self.user_features.out_dim
            + self.item_features.out_dim
            + n_dense
        )
        self.width = width
        self.cross = nn.ModuleList(CrossLayer(width) for _ in range(n_cross))
        layers: list[nn.Module] = []
        last = width
        for size in hidden:
            layers += [nn.Linear(last, size), nn.ReLU(), nn.Dropout(dropout)]
            last = size
        self.deep = nn.Sequential(*layers)
        self.head = nn.Linear(width + last, 1)
        if anchor is not None and not 0 <= anchor < n_dense:
            raise ValueError(f"ranker: anchor={anchor} is not a dense column (0..{n_dense - 1})")
        self.anchor = -1 if anchor is None else anchor
        self.anchor_weight = nn.Parameter(torch.tensor(anchor_scale if anchor is not None else 0.0))
        if anchor is not None:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def fit_normaliser(self, dense: torch.Tensor) -> None:
        """Store mean/std of (n, d) training dense features (constant columns keep std 1)."""
        dense = dense.reshape(-1, self.n_dense).double()
        std = dense.std(0)
        self.dense_mean.copy_(dense.mean(0).float())
        self.dense_std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)).float())

    def forward(
        self,
        user_ids: torch.Tensor,
        user_features: torch.Tensor,
        item_ids: torch.Tensor,
        item_features: torch.Tensor,
        dense: torch.Tensor,
    ) -> torch.Tensor:
        dense = (dense - self.dense_mean) / self.dense_std  # (n, d)
        parts = [
            self.user_features(user_features),  # (n, f_u * e)
            self.item_features(item_features),  # (n, f_i * e)
            dense,
        ]
        if self.use_ids:
            parts = [self.user_id(user_ids), self.item_id(item_ids), *parts]
        x0 = torch.cat(parts, dim=-1)  # (n, width)
        x = x0
        for layer in self.cross:
            x = layer(x0, x)
        logits = self.head(torch.cat([x, self.deep(x0)], dim=-1)).squeeze(-1)  # (n,)
        if self.anchor >= 0:
            logits = logits + self.anchor_weight * dense[:, self.anchor]
        return logits
