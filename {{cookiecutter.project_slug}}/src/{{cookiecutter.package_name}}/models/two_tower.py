"""The two-tower retrieval model and its softmax loss.

Training objective: for each (user, positive item) pair, a softmax over candidate items of
``cos(user, item) / temperature``. Candidates are either

* ``in_batch`` - the other positives of the batch (cheap; popular items are over-represented
  as negatives, so with ``logq=True`` each logit is corrected by ``- log Q(item)``, the item's
  share of training pairs: the sampled-softmax correction of Yi et al., RecSys 2019), or
* ``full`` - the whole catalog (exact softmax; no sampling bias, so no correction needed).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .towers import ItemTower, UserTower


class TwoTower(nn.Module):
    """A user tower and an item tower; ``forward`` returns the training loss."""

    def __init__(
        self,
        user_tower: UserTower,
        item_tower: ItemTower,
        temperature: float = 0.2,
        negatives: str = "in_batch",
        history_len: int = 100,
    ) -> None:
        super().__init__()
        if negatives not in ("in_batch", "full"):  # the two branches of forward
            raise ValueError(f"negatives={negatives!r}; expected 'in_batch' or 'full'")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.user_tower = user_tower
        self.item_tower = item_tower
        self.temperature = temperature
        self.negatives = negatives
        self.history_len = history_len  # how many training items per user the user tower sees

    def forward(
        self,
        user_ids: torch.Tensor,
        user_features: torch.Tensor,
        user_history: torch.Tensor,
        item_ids: torch.Tensor,
        item_features: torch.Tensor,
        catalog_features: torch.Tensor | None = None,
        log_q: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean softmax loss of a batch of positive pairs.

        ``user_history`` (batch, L) must not contain the positive item itself (mask it with the
        padding value), or the model learns to find the target in its own input.

        ``catalog_features`` (n_items, n_item_features) is needed for ``full`` negatives;
        ``log_q`` (n_items,) is the log sampling probability for the in-batch correction.
        """
        users = self.user_tower(user_ids, user_features, user_history)  # (batch, dim)
        if self.negatives == "full":
            if catalog_features is None:
                raise ValueError(
                    "full-catalog negatives need catalog_features (n_items, n_item_features)"
                )
            all_ids = torch.arange(catalog_features.shape[0], device=user_ids.device)
            items = self.item_tower(all_ids, catalog_features)  # (n_items, dim)
            logits = users @ items.T / self.temperature  # (batch, n_items)
            if log_q is not None:
                logits = logits - log_q[None, :]
            return F.cross_entropy(logits.float(), item_ids)
        items = self.item_tower(item_ids, item_features)  # (batch, dim)
        # (batch, batch): row r's positive on the diagonal, the other rows' positives beside it
        logits = (users @ items.T).float() / self.temperature
        if log_q is not None:
            logits = logits - log_q[item_ids][None, :]  # each column corrected by its item's log Q
        # A popular item can be in the batch several times: its other copies are that row's
        # positive too, not negatives, so they leave the row's softmax.
        same_item = item_ids[:, None] == item_ids[None, :]  # (batch, batch)
        same_item.fill_diagonal_(False)
        logits = logits.masked_fill(same_item, float("-inf"))
        targets = torch.arange(len(item_ids), device=item_ids.device)
        return F.cross_entropy(logits, targets)


def build_two_tower(
    n_users: int,
    n_items: int,
    user_cardinalities: list[int],
    item_cardinalities: list[int],
    dim: int = 64,
    hidden: int = 64,
    temperature: float = 0.2,
    negatives: str = "in_batch",
    history_len: int = 100,
) -> TwoTower:
    """A two-tower model sized for a dataset."""
    return TwoTower(
        UserTower(n_users, user_cardinalities, n_items, dim=dim, hidden=hidden),
        ItemTower(n_items, item_cardinalities, dim=dim, hidden=hidden),
        temperature=temperature,
        negatives=negatives,
        history_len=history_len,
    )


@torch.no_grad()
def embed_all(tower: nn.Module, *tables: torch.Tensor, batch_size: int = 8192) -> torch.Tensor:
    """Apply a tower to every id ``0..n-1``; ``tables`` are its per-id inputs after the ids
    (features, and history for the user tower). Returns (n, dim) float32 on CPU."""
    device = next(tower.parameters()).device
    was_training = tower.training
    tower.eval()
    n = tables[0].shape[0]
    out = []
    for start in range(0, n, batch_size):
        ids = torch.arange(start, min(start + batch_size, n), device=device)
        out.append(
            tower(ids, *(t[start : start + len(ids)].to(device) for t in tables)).float().cpu()
        )
    tower.train(was_training)
    return torch.cat(out)
