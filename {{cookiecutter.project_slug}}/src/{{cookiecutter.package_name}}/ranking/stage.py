"""The ``rank`` stage: fit the retrieve -> rank chain for a trained run, evaluate it, export it.

``run_rank(run_dir, out_dir, cfg)``:

1. reloads the run (two-tower model and its split) and tunes EASE's l2 on validation;
2. fits the channels (EASE, item graph, popularity and, with ``cfg.two_tower``, the run's
   two-tower model) on the training split, and again on each fold for the ranker's examples
   (a second two-tower model is trained on the fold, early-stopped on part of the fold);
3. trains the ranker (``train_ranker``, epochs chosen on validation);
4. reports test metrics of every channel and of the chain (nothing was tuned on test);
5. exports ``ranker.onnx`` + ``ranker.json`` (parity checked), what a service needs to build
   the same candidate features (``write_serving_inputs``) and ``rank_report.json``.

Under torchrun every rank does steps 1-2 alike (the fold's two-tower model trains with DDP
across the ranks, and rank 0 hands its embeddings to the others), step 3 shares each step's
users between the ranks, and rank 0 alone does steps 4-5 and writes anything.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import make_readable
from ..channels import ItemGraphChannel, PopularityChannel, TwoTowerChannel
from ..channels.ease import EaseChannel, tune_ease
from ..evaluation import evaluate_channels
from ..training import TrainConfig, load_trained, train, two_tower_embeddings
from ..training.runtime import (
    DistContext,
    broadcast_object,
    init_distributed,
    shutdown_distributed,
)
from .config import RankerConfig
from .data import pairs_split
from .export import export_ranker
from .inference import RANKER_META
from .train import evaluate_chain, train_ranker

REPORT = "rank_report.json"
SERVING_ARRAYS = ("user_features.npy", "item_features.npy", "ease.weights.npy")


def _ids_sha256(ids: list[str]) -> str:
    """sha256 of an id list as ``save_artifacts`` writes it (``user_ids.json``/``item_ids.json``)."""
    return hashlib.sha256(json.dumps([str(i) for i in ids]).encode("utf-8")).hexdigest()


def write_serving_inputs(out: Path, split: Any, channels: dict[str, object]) -> None:
    """What a service needs beside ``ranker.onnx`` to build the same candidate features: the
    side-feature tables, the EASE weights (the artifacts folder holds the other channels), the
    item feature names, and the id lists' sha256 to match against the artifacts' manifest."""
    data = split.data
    np.save(out / "user_features.npy", np.asarray(data.user_features, dtype=np.int64))
    np.save(out / "item_features.npy", np.asarray(data.item_features, dtype=np.int64))
    if "ease" in channels:
        np.save(out / "ease.weights.npy", channels["ease"].weights)  # type: ignore[attr-defined]
    meta_path = out / RANKER_META
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["item_feature_names"] = list(data.item_feature_names)
    meta["user_ids_sha256"] = _ids_sha256(data.user_ids)
    meta["item_ids_sha256"] = _ids_sha256(data.item_ids)
    meta_path.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    make_readable(meta_path, *(out / n for n in SERVING_ARRAYS if (out / n).exists()))


def _fold_two_tower_config(
    tt_cfg: TrainConfig, cfg: RankerConfig, ctx: DistContext, runs_dir: str
) -> TrainConfig:
    """The run's two-tower settings for the fold's model. Inside the ranker's process group it
    trains on the ranker's device (an nccl group cannot reduce CPU tensors), with the run's
    AMP mode on CUDA only."""
    values = {**tt_cfg.to_dict(), "runs_dir": runs_dir, "run_id": None, "resume": None,
              "progress": False}  # fmt: skip
    if ctx.enabled:
        on_cpu = ctx.backend == "gloo"  # what "--device cpu" starts
        values.update(device="cpu" if on_cpu else cfg.device)
        values.update(amp="off" if on_cpu else tt_cfg.amp)
    return type(tt_cfg).from_dict(values)


def run_rank(
    run_dir: Path, out_dir: Path, cfg: RankerConfig | None = None
) -> dict[str, Any] | None:
    """Fit, evaluate and export the chain for ``run_dir``; the report as a dict (None on the
    ranks after 0 of a torchrun launch, which write nothing)."""
    cfg = cfg or RankerConfig()
    cfg.validate()
    ctx = init_distributed(cfg.device)
    try:
        return _run_rank(run_dir, out_dir, cfg, ctx)
    finally:
        shutdown_distributed(ctx)


def _run_rank(
    run_dir: Path, out_dir: Path, cfg: RankerConfig, ctx: DistContext
) -> dict[str, Any] | None:
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    tt_cfg, model, split = load_trained(run_dir)
    n_users, n_items = split.n_users, split.n_items
    tt_full = TwoTowerChannel(*two_tower_embeddings(model, split))
    ease, by_l2 = tune_ease(split.train, split.by_user("val"), n_users, n_items)
    seconds["ease_tuning"] = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as fold_runs:

        def factory(
            users: np.ndarray, items: np.ndarray, tt: TwoTowerChannel | None = None
        ) -> dict[str, object]:
            # l2 scaled with the pairs: the same regularisation relative to X^T X on a fold.
            l2 = ease.l2 * len(users) / len(split.train[0])
            channels: dict[str, object] = {
                "ease": EaseChannel.fit(users, items, n_users, n_items, l2),
                "item_graph": ItemGraphChannel(users, items, n_users, n_items),
                "popularity": PopularityChannel(items, n_items, n_users),
            }
            if cfg.two_tower:
                if tt is None:
                    fold = pairs_split(split.data, users, items, cfg.seed, held_out=0.04)
                    fold_cfg = _fold_two_tower_config(tt_cfg, cfg, ctx, fold_runs)
                    # Under torchrun every rank trains it with DDP; rank 0 writes the run.
                    metrics = train(fold_cfg, split=fold)
                    embeddings = None
                    if ctx.is_main:
                        _, fold_model, fold_split_ = load_trained(metrics.run_dir)
                        embeddings = two_tower_embeddings(fold_model, fold_split_)
                    tt = TwoTowerChannel(*broadcast_object(embeddings, ctx))
                channels["two_tower"] = tt
            return channels

        t0 = time.perf_counter()
        full = factory(*split.train, tt=tt_full)
        seconds["channels"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = train_ranker(split, factory, cfg, full_channels=full)
        seconds["ranker"] = time.perf_counter() - t0
    if not ctx.is_main:
        return None

    t0 = time.perf_counter()
    test_truth, seen = split.by_user("test"), split.by_user("train+val")
    channels = {name: full[name] for name in full}
    test = evaluate_channels(channels, test_truth, seen, n_items, [10])
    test["ranked"] = evaluate_chain(result, split, "test", [10])
    seconds["evaluate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    export = export_ranker(
        result.model,
        out_dir,
        result.feature_names,
        list(full),
        split.data.user_features,
        split.data.item_features,
        cfg.n_candidates,
    )
    seconds["export"] = time.perf_counter() - t0
    write_serving_inputs(Path(out_dir), split, full)
    report = {
        "run": str(run_dir),
        "config": cfg.to_dict(),
        "channels": list(full),
        "feature_names": list(result.feature_names),
        "ease_l2": ease.l2,
        "ease_val_recall@10": {str(k): v for k, v in by_l2.items()},
        "best_epoch": result.best_epoch,
        "device": result.device,
        "amp": result.amp,
        "world_size": result.world_size,
        "dist_backend": result.dist_backend,
        "history": result.history,
        "val": result.val,
        "test": test,
        "export": export,
        "seconds": {**seconds, **{f"ranker.{k}": v for k, v in result.seconds.items()}},
    }
    path = Path(out_dir) / REPORT
    path.write_text(json.dumps(report, indent=2), encoding="utf-8")
    make_readable(path)
    return report
