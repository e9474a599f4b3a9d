"""``SequenceConfig``: what ``train_sequence`` needs, and the ``train-sequence`` flags.

No torch here: the command line reads these fields' flags for every command.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..data.interactions import SPLITS
from ..flags import problems, setting
from .config import AMP_MODES, DataSettings

LOSSES = ("full", "sampled")


@dataclass
class SequenceConfig(DataSettings):
    """Everything ``train_sequence`` needs; the defaults are SASRec's recipe for small data."""

    # the data settings are DataSettings' (same flags as `train`), except the split's default
    split: str = setting(
        "temporal", "temporal: leave-last-out; random: 80/10/10 per user", choices=SPLITS
    )

    max_len: int = setting(50, "most recent items the model reads (L)", at_least=1)
    dim: int = setting(64, "embedding and hidden size", at_least=1)
    blocks: int = setting(2, "Transformer blocks", at_least=1)
    heads: int = setting(1, "attention heads (dim must be a multiple)", at_least=1)
    dropout: float = setting(0.2, "dropout on embeddings, attention and feed-forward", at_least=0)
    loss: str = setting(
        "full", "full: softmax over the catalog; sampled: sampled softmax + logQ", choices=LOSSES
    )
    negatives: int = setting(256, "negatives per batch for loss=sampled", at_least=1)

    epochs: int = setting(200, "most epochs to train", at_least=1)
    # 64 windows with lr 5e-3 rather than the paper's 128 with 1e-3, which learned several times
    # slower per epoch on MovieLens-100K (docs/pipeline.md).
    batch_size: int = setting(64, "windows per step (global, split across DDP ranks)", at_least=1)
    lr: float = setting(5e-3, "Adam learning rate", above=0)
    weight_decay: float = setting(0.0, "Adam weight decay", at_least=0)
    eval_k: int = setting(10, "K of the validation NDCG@K that selects the epoch", at_least=1)
    eval_every: int = setting(2, "epochs between validation checks", at_least=1)
    patience: int = setting(5, "checks without a better NDCG@K before stopping", at_least=1)

    device: str = setting("auto", "auto (cuda > mps > cpu), cpu, mps, cuda or cuda:N")
    amp: str = setting("off", "mixed precision on CUDA (bf16 recommended)", choices=AMP_MODES)
    runs_dir: str = setting("runs", "where run folders are created")
    run_id: str | None = setting(None, "run folder name (default: time stamp + config hash)")
    progress: bool = setting(True, "print one line per validation check")
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        found = problems(self)
        if self.dropout >= 1:
            found.append(f"dropout={self.dropout!r}: expected < 1")
        if self.dim % self.heads:
            found.append(f"dim={self.dim}, heads={self.heads}: dim must be a multiple of heads")
        if found:
            raise ValueError("invalid sequence config:\n  " + "\n  ".join(found))
