"""The ranker's settings: one dataclass, whose fields are also the ``rank`` command's flags.

Torch-free, so building the command line never imports torch (``flags``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..flags import problems, setting
from .candidates import DEFAULT_N


@dataclass
class RankerConfig:
    """Everything ``train_ranker`` (and the ``rank`` stage) needs."""

    n_candidates: int = setting(DEFAULT_N, "top-N items taken from each channel", at_least=1)
    n_random: int = setting(
        20, "random unseen items added per user while training (easy negatives)", at_least=0
    )
    # Small, so that channels fitted on the rest are nearly as strong as when fitted on all
    # of it (as served); more folds make up the labels (docs/pipeline.md).
    hold_out: float = setting(
        0.1, "share of each user's training pairs used as ranker labels", above=0.0
    )
    folds: int = setting(2, "random (fit, label) cuts of the training pairs", at_least=1)
    embedding_dim: int = setting(16, "embedding size of each categorical feature", at_least=1)
    n_cross: int = setting(2, "DCN-v2 cross layers", at_least=0)
    hidden: tuple[int, ...] = (128, 64)  # the deep tower's widths
    dropout: float = setting(0.1, "dropout in the deep tower", at_least=0.0)
    # Id embeddings memorise the fold's labels (validation Recall falls after one epoch on
    # ML-100K); side features and candidate features generalise.
    use_ids: bool = setting(False, "add user and item id embeddings")
    # None learns the whole order, which validated better on ML-100K and the synthetic sample.
    anchor: str | None = setting(
        None, "start from this channel's score order and learn corrections (e.g. ease)"
    )
    two_tower: bool = setting(
        True, "rank stage: use the run's two-tower model as a channel (trains one on the fold)"
    )
    epochs: int = setting(20, "maximum epochs (early-stopped on validation)", at_least=1)
    batch_users: int = setting(32, "users per step (all their candidates)", at_least=1)
    lr: float = setting(1e-3, "AdamW learning rate", above=0.0)
    weight_decay: float = setting(1e-5, "AdamW weight decay", at_least=0.0)
    patience: int = setting(3, "epochs without a better validation Recall@K", at_least=1)
    eval_k: int = setting(10, "K of the validation Recall@K that picks the epoch", at_least=1)
    seed: int = setting(0, "fold and initialisation seed")
    device: str = setting("cpu", "auto, cpu, cuda, cuda:N or mps")
    amp: str = setting(
        "off", "autocast on CUDA: auto, bf16, fp16 or off", choices=("auto", "bf16", "fp16", "off")
    )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> None:
        found = problems(self)
        if self.hold_out >= 1:
            found.append(f"hold_out={self.hold_out}: expected a fraction below 1")
        if found:
            raise ValueError("invalid ranker config:\n  " + "\n  ".join(found))
