"""SASRec: a causal Transformer over a user's recent items (Kang & McAuley, ICDM 2018).

Input: the user's last ``max_len`` items, oldest first, left-padded with ``pad = n_items``.
Each position attends to itself and the positions before it (causal), never to padding::

    x = item_emb(seq) * sqrt(dim) + pos_emb(0..L-1)          # (batch, L, dim)
    x = dropout(x) * not_pad
    for each block:                                          # pre-LayerNorm, as the paper's code
        x = x + dropout(attention(LN(x)))                    # causal, padding keys masked
        x = x + dropout(FFN(LN(x)))                          # dim -> dim -> dim, GELU
        x = x * not_pad
    h = LN(x)                                                # (batch, L, dim)

The state at position t predicts the item at t+1; its score for item j is ``h_t . item_emb[j]``
(the item table is shared by input and output). Training uses every position of a sequence
(targets are the input shifted by one), with a softmax over the whole catalog or over sampled
negatives with the logQ correction (``training/sequence.py``). To recommend, ``user_state``
returns ``h`` at the last position, and the scores are ``user_state @ item_vectors().T``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention; ``allowed`` (batch, 1, L, L) says which keys a query sees."""

    def __init__(self, dim: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"sasrec: dim={dim} must be a multiple of n_heads={n_heads}")
        self.n_heads = n_heads
        # No bias: a key bias shifts every logit of a query equally, so the softmax ignores it
        # and its gradient is zero (Adam would then follow float noise); the LayerNorm before
        # the block gives queries and values their offsets.
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        # (batch, L, 3 * dim) -> 3 x (batch, heads, L, dim / heads)
        q, k, v = self.qkv(x).view(batch, length, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(y.transpose(1, 2).reshape(batch, length, dim))


class Block(nn.Module):
    """Pre-LayerNorm Transformer block: attention then a position-wise feed-forward net."""

    def __init__(self, dim: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.ln_attn = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, n_heads, dropout)
        self.ln_ff = nn.LayerNorm(dim)
        self.ff = nn.Sequential(
            nn.Linear(dim, dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(dim, dim)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln_attn(x), allowed))
        return x + self.drop(self.ff(self.ln_ff(x)))


class SASRec(nn.Module):
    """Self-attentive sequential recommender. ``forward(seq) -> (batch, L, dim)`` states."""

    def __init__(
        self,
        n_items: int,
        max_len: int = 50,
        dim: int = 64,
        n_blocks: int = 2,
        n_heads: int = 1,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if n_items < 1 or max_len < 1 or dim < 1 or n_blocks < 1 or n_heads < 1:
            raise ValueError(
                f"sasrec: n_items={n_items}, max_len={max_len}, dim={dim}, n_blocks={n_blocks}, "
                f"n_heads={n_heads}: each must be >= 1"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"sasrec: dropout={dropout} must be in [0, 1)")
        self.n_items, self.max_len, self.dim = n_items, max_len, dim
        self.pad = n_items  # the padding index: one row past the catalog
        self.item_emb = nn.Embedding(n_items + 1, dim, padding_idx=self.pad)
        self.pos_emb = nn.Embedding(max_len, dim)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(dim, n_heads, dropout) for _ in range(n_blocks))
        self.ln_out = nn.LayerNorm(dim)
        nn.init.normal_(self.item_emb.weight, std=dim**-0.5)
        nn.init.normal_(self.pos_emb.weight, std=dim**-0.5)
        with torch.no_grad():
            self.item_emb.weight[self.pad].zero_()

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """(batch, L) item indices (``pad`` = padding, L <= max_len) -> (batch, L, dim)."""
        length = seq.shape[1]
        keep = (seq != self.pad).unsqueeze(-1)  # (batch, L, 1)
        positions = torch.arange(length, device=seq.device)
        x = self.item_emb(seq) * math.sqrt(self.dim) + self.pos_emb(positions)
        x = self.drop(x) * keep
        causal = torch.ones(length, length, dtype=torch.bool, device=seq.device).tril()
        # A query sees earlier non-padding keys, and always itself (a padding query would
        # otherwise see nothing, and a softmax over nothing is NaN).
        allowed = (causal & keep.transpose(1, 2)) | torch.eye(
            length, dtype=torch.bool, device=seq.device
        )
        allowed = allowed.unsqueeze(1)  # (batch, 1, L, L), broadcast over heads
        for block in self.blocks:
            x = block(x, allowed) * keep
        return self.ln_out(x)

    def item_vectors(self) -> torch.Tensor:
        """(n_items, dim) output vectors: the input table without the padding row."""
        return self.item_emb.weight[: self.n_items]

    def user_state(self, seq: torch.Tensor) -> torch.Tensor:
        """(batch, L) left-padded sequences -> (batch, dim): the state after the last item."""
        return self.forward(seq)[:, -1]

    def scores(self, seq: torch.Tensor) -> torch.Tensor:
        """(batch, L) -> (batch, n_items) next-item scores."""
        return self.user_state(seq) @ self.item_vectors().T  # (b, dim) @ (dim, n_items)


class SASRecScorer(nn.Module):
    """What is exported: left-padded sequences in, next-item scores over the catalog out."""

    def __init__(self, model: SASRec) -> None:
        super().__init__()
        self.model = model

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        return self.model.scores(seq)
