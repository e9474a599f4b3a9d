"""Training configuration and the result of a run."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.interactions import SPLITS
from ..flags import problems, setting

# Fields that decide the shape/meaning of the weights: a checkpoint may only be resumed by a
# config that agrees on all of them.
MODEL_FIELDS = (
    "data",
    "n_users",
    "n_items",
    "events_per_user",
    "split",
    "seed",
    "dim",
    "hidden",
    "temperature",
    "negatives",
    "logq",
    "history_len",
)


# The values of the choice fields (the split kinds are the data package's, ``make_split``).
NEGATIVES = ("in_batch", "full")
AMP_MODES = ("off", "auto", "bf16", "fp16")


@dataclass
class DataSettings:
    """Which interaction log a run reads and how it is split: the first settings of every
    training command (``TrainConfig``, ``SequenceConfig``), and all that ``run_data`` reads."""

    data: str = setting("synthetic", "synthetic, ml-100k or a CSV/Parquet interactions file")
    n_users: int = setting(2000, "synthetic users (ignored for other data)", at_least=1)
    n_items: int = setting(1000, "synthetic items (ignored for other data)", at_least=2)
    events_per_user: float = setting(30.0, "synthetic events per user", above=0)
    split: str = setting(
        "random", "random: 80/10/10 per user; temporal: leave-last-out", choices=SPLITS
    )
    seed: int = setting(0, "seed of the synthetic data, the split and the weights")
    deterministic: bool = setting(
        False, "torch.use_deterministic_algorithms, with a fixed cuBLAS workspace"
    )


@dataclass
class TrainConfig(DataSettings):
    """Everything ``train`` needs. Defaults train the synthetic sample in well under a minute.

    Each field made with ``setting`` is also a ``train`` flag (``--n-users``, ``--no-logq``),
    with this help text, default and choices (``flags.py``).
    """

    dim: int = setting(64, "embedding size of both towers", at_least=1)
    # Chosen with batch_size and lr below; time widths with
    # `benchmarks/bench_training.py --compare-hidden` (docs/pipeline.md).
    hidden: int = setting(64, "width of the tower MLPs", at_least=1)
    history_len: int = setting(
        100, "training items per user fed to the user tower (most recent kept)", at_least=1
    )
    # 0.05 overfits small data.
    temperature: float = setting(0.2, "softmax temperature on cosine scores", above=0)
    negatives: str = setting(
        "in_batch", "in_batch: the batch's other items; full: the whole catalog", choices=NEGATIVES
    )
    logq: bool = setting(True, "popularity correction of in-batch negatives")

    epochs: int = setting(20, "most epochs to train", at_least=1)
    # batch_size, lr and hidden: chosen on validation Recall@10 over seeds with
    # `benchmarks/tune_two_tower.py` (docs/pipeline.md).
    batch_size: int = setting(512, "global batch (split across DDP processes)", at_least=1)
    lr: float = setting(7e-3, "Adam learning rate", above=0)
    weight_decay: float = setting(0.0, "Adam weight decay", at_least=0)
    eval_k: int = setting(
        10, "K of the validation Recall@K that early stopping watches", at_least=1
    )
    patience: int = setting(
        3, "epochs without a better validation Recall@K before stopping", at_least=1
    )

    device: str = setting("auto", "auto (cuda > mps > cpu), cpu, mps, cuda or cuda:N")
    # Off by default: towers this small are bound by kernel launches, so autocast's casts cost
    # more than they save (docs/pipeline.md).
    amp: str = setting(
        "off", "mixed precision on CUDA; auto = bf16 where supported, else fp16", choices=AMP_MODES
    )

    runs_dir: str = setting("runs", "where run folders are created")
    run_id: str | None = setting(None, "run folder name (default: time stamp + config hash)")
    resume: str | None = setting(
        None,
        "run folder or checkpoint.pt to continue, with that run's config.json "
        "(flags given here override it)",
    )
    progress: bool = setting(True, "progress bar")
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; expected some of {sorted(known)}")
        return cls(**values)

    @classmethod
    def from_json(cls, path: str | Path) -> TrainConfig:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def model_fingerprint(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in MODEL_FIELDS}

    def fingerprint_hash(self) -> str:
        blob = json.dumps(self.model_fingerprint(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def validate(self) -> None:
        """Every value outside its field's choices or bounds, in one error."""
        found = problems(self)
        if found:
            raise ValueError("invalid training config:\n  " + "\n  ".join(found))


@dataclass
class Metrics:
    """What a run produced. ``val``/``test`` map "recall@10" etc. to values."""

    run_dir: str
    best_epoch: int
    epochs_run: int
    val: dict[str, float]
    test: dict[str, float]
    history: list[dict[str, float]]
    samples_per_second: float
    train_seconds: float
    device: str
    amp: str
    world_size: int
    stopped_early: bool
    dist_backend: str = "none"  # nccl or gloo when launched by torchrun

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
