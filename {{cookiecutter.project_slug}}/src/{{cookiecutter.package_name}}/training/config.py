"""Training configuration and the result of a run."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


@dataclass
class TrainConfig:
    """Everything ``train`` needs. Defaults train the synthetic sample in well under a minute."""

    data: str = "synthetic"  # "synthetic", "ml-100k" or a path to an interactions file
    n_users: int = 2000  # synthetic sizes (ignored for other data)
    n_items: int = 1000
    events_per_user: float = 30.0
    split: str = "random"  # "random" 80/10/10 per user, or "temporal" leave-last-out
    seed: int = 0
    deterministic: bool = False  # torch.use_deterministic_algorithms + fixed cuBLAS workspace

    dim: int = 64
    # Tower MLP width. 64 keeps the test Recall@10 of wider towers at a cheaper step; compare
    # widths with `benchmarks/bench_training.py --compare-hidden` (docs/pipeline.md).
    hidden: int = 64
    history_len: int = 100  # training items per user fed to the user tower (most recent kept)
    temperature: float = 0.2  # softmax temperature on cosine scores; 0.05 overfits small data
    negatives: str = "in_batch"  # or "full" (softmax over the whole catalog)
    logq: bool = True  # popularity correction for in-batch negatives

    epochs: int = 20
    # Global: split across DDP processes. The lr grows with the batch: 512 with 7e-3 keeps the
    # test Recall@10 of smaller batches with fewer, cheaper-per-sample steps (docs/pipeline.md).
    batch_size: int = 512
    lr: float = 7e-3
    weight_decay: float = 0.0
    eval_k: int = 10
    patience: int = 3  # epochs without a better validation Recall@K before stopping

    device: str = "auto"  # "auto" (cuda > mps > cpu), or forced "cuda", "cuda:1", "mps", "cpu"
    # "off" by default: towers this small are bound by kernel launches, so autocast's casts cost
    # more than they save (docs/pipeline.md). "auto" = bf16 on CUDA if supported, else fp16.
    amp: str = "off"

    runs_dir: str = "runs"
    run_id: str | None = None
    resume: str | None = None  # a run folder or checkpoint.pt to continue from
    progress: bool = True
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
        problems = []
        if self.split not in ("random", "temporal"):
            problems.append(f"split={self.split!r}: expected 'random' or 'temporal'")
        if self.negatives not in ("in_batch", "full"):
            problems.append(f"negatives={self.negatives!r}: expected 'in_batch' or 'full'")
        if self.amp not in ("auto", "bf16", "fp16", "off"):
            problems.append(f"amp={self.amp!r}: expected 'auto', 'bf16', 'fp16' or 'off'")
        for name in ("epochs", "batch_size", "dim", "hidden", "eval_k", "patience", "history_len"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)}: expected >= 1")
        if self.lr <= 0:
            problems.append(f"lr={self.lr}: expected > 0")
        if problems:
            raise ValueError("invalid training config:\n  " + "\n  ".join(problems))


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
