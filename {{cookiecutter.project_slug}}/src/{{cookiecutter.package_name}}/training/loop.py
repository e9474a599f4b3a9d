"""``train(cfg) -> Metrics``: the two-tower training loop, single process or torchrun DDP.

Batches come from ``batches.TrainingTensors``: slices of a shuffled index tensor and gathers
from tables that live on the training device (no per-sample Python, no DataLoader workers).
``train_step`` is one optimisation step on such a batch. ``batch_size`` is global; under DDP
each rank trains on its ``rank::world_size`` share of every batch and gradients are averaged,
so 1 process and N processes see the same samples per step.

Launch on several processes with the same entry point::

    torchrun --standalone --nproc-per-node 2 -m {{ cookiecutter.package_name }} train --device cpu
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from ..data import Split, make_split
from ..evaluation import check_k, rank_metrics
from ..models import TwoTower, build_two_tower, embed_all
from .batches import Batch, TrainingTensors, user_histories
from .config import Metrics as Metrics
from .config import TrainConfig
from .run_data import DATA_RECORD, load_data, load_split, record_split
from .runtime import (
    DistContext,
    amp_dtype,
    autocast,
    broadcast_floats,
    choose_device,
    init_distributed,
    mean_across,
    seed_everything,
    shutdown_distributed,
)
from .snapshot import new_run_id, plot_curves, write_snapshot

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"


class CheckpointMismatch(ValueError):
    """A checkpoint was written by a config with different model-shaping fields."""


def prepare_split(cfg: TrainConfig) -> Split:
    """The dataset and split a config describes (deterministic: same config, same split)."""
    return make_split(load_data(cfg), cfg.split, seed=cfg.seed)


def model_for(cfg: TrainConfig, split: Split) -> TwoTower:
    data = split.data
    return build_two_tower(
        data.n_users,
        data.n_items,
        data.user_cardinalities,
        data.item_cardinalities,
        dim=cfg.dim,
        hidden=cfg.hidden,
        temperature=cfg.temperature,
        negatives=cfg.negatives,
        history_len=cfg.history_len,
    )


def make_optimizer(
    model: torch.nn.Module, cfg: TrainConfig, device: torch.device
) -> torch.optim.Optimizer:
    """Adam over every parameter; the fused kernel where torch has one for the device.

    The unfused CPU Adam runs about ten small ops per parameter tensor per step, which for a
    model this size costs more than the gradients; fused does one pass per tensor.
    """
    fused = device.type in ("cpu", "cuda")
    return torch.optim.Adam(
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused or None
    )


def batch_loss(net: torch.nn.Module, batch: Batch, tensors: TrainingTensors) -> torch.Tensor:
    """The model's loss on one batch: ``train_step``'s forward pass."""
    return net(
        batch.users,
        batch.user_features,
        batch.history,
        batch.items,
        batch.item_features,
        tensors.item_features,
        tensors.log_q,
    )


def train_step(
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    batch: Batch,
    tensors: TrainingTensors,
    dtype: torch.dtype | None,
) -> torch.Tensor:
    """Forward, backward and optimizer step on one batch; returns the (detached) loss."""
    with autocast(batch.users.device, dtype):
        loss = batch_loss(net, batch, tensors)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()


def two_tower_embeddings(model: TwoTower, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """(n_users, dim) and (n_items, dim) float32 embeddings of every user and item."""
    history = user_histories(split, model.history_len)
    users = embed_all(model.user_tower, torch.as_tensor(split.data.user_features), history)
    items = embed_all(model.item_tower, torch.as_tensor(split.data.item_features))
    return users.numpy(), items.numpy()


def _validation(model: TwoTower, split: Split, part: str, ks: list[int]) -> dict[str, float]:
    users, items = two_tower_embeddings(model, split)
    seen = split.by_user("train" if part == "val" else "train+val")
    return rank_metrics(lambda u: users[u] @ items.T, split.by_user(part), seen, split.n_items, ks)


def _resolve_resume(path: str) -> Path:
    p = Path(path)
    ckpt = p / CHECKPOINT if p.is_dir() else p
    if not ckpt.is_file():
        raise FileNotFoundError(
            f"--resume {path}: no {CHECKPOINT} there; expected a run folder or checkpoint file"
        )
    return ckpt


def load_checkpoint(ckpt: Path, cfg: TrainConfig) -> dict[str, Any]:
    """Read a checkpoint and refuse it when it was trained under another model config."""
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    theirs, ours = state.get("fingerprint", {}), cfg.model_fingerprint()
    diff = {k: (theirs.get(k), ours[k]) for k in ours if theirs.get(k) != ours[k]}
    if diff:
        lines = "\n  ".join(
            f"{k}: checkpoint has {a!r}, this config has {b!r}" for k, (a, b) in diff.items()
        )
        raise CheckpointMismatch(
            f"{ckpt}: written by a different config; resuming would mix models:\n  {lines}\n"
            "Start a new run (drop --resume) or use the checkpoint's settings (its config.json)."
        )
    return state


def _save_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def train(cfg: TrainConfig, split: Split | None = None) -> Metrics:
    """Train a two-tower model; write ``runs/<run-id>/``; return validation and test metrics.

    ``split`` replaces the split ``cfg`` describes (on the same data), e.g. a fold of the
    training pairs for the ranker's training candidates (``ranking``); the run records it.
    """
    cfg.validate()
    ctx = init_distributed(cfg.device)
    try:
        return _train(cfg, ctx, split)
    finally:
        shutdown_distributed(ctx)


def _train(cfg: TrainConfig, ctx: DistContext, given: Split | None = None) -> Metrics:
    device = choose_device(cfg.device, ctx.local_rank)
    dtype = amp_dtype(cfg.amp, device)
    seed_everything(cfg.seed, cfg.deterministic)

    # Everything that can fail on bad input happens before anything is written.
    resume_state = load_checkpoint(_resolve_resume(cfg.resume), cfg) if cfg.resume else None
    # A resumed run trains on the data and split it recorded (from any working directory).
    resumed_dir = _resolve_resume(cfg.resume).parent if cfg.resume else None
    if resumed_dir is not None and (resumed_dir / DATA_RECORD).is_file():
        split = load_split(resumed_dir, cfg)
    elif given is not None:
        split = given
    else:
        split = prepare_split(cfg)
    ks = check_k(
        sorted({5, 10, 20, 50, cfg.eval_k} & set(range(1, split.n_items + 1))), split.n_items
    )
    if resumed_dir is not None:
        run_dir = resumed_dir
    else:
        run_dir = Path(cfg.runs_dir) / (cfg.run_id or new_run_id(cfg.fingerprint_hash()))
        if ctx.is_main and run_dir.exists() and any(run_dir.iterdir()):
            raise FileExistsError(
                f"{run_dir}: run folder exists and is not empty; pick another --run-id or --resume it"
            )
    if ctx.is_main:
        write_snapshot(run_dir, cfg.to_dict())
        if not (run_dir / DATA_RECORD).is_file():
            record_split(run_dir, cfg, split)

    model = model_for(cfg, split).to(device)
    optimizer = make_optimizer(model, cfg, device)
    start_epoch, best_metric, best_epoch, bad_epochs = 0, -1.0, 0, 0
    history: list[dict[str, float]] = []
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if resume_state is not None:
        model.load_state_dict(resume_state["model"])
        optimizer.load_state_dict(resume_state["optimizer"])
        start_epoch, best_metric = resume_state["epoch"], resume_state["best_metric"]
        best_epoch, bad_epochs = resume_state["best_epoch"], resume_state["bad_epochs"]
        history, best_state = resume_state["history"], resume_state["best_state"]
    net: torch.nn.Module = DistributedDataParallel(model) if ctx.enabled else model
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)

    tensors = TrainingTensors.from_split(
        split, cfg.history_len, cfg.logq and cfg.negatives == "in_batch", device
    )
    n_pairs = len(tensors)
    if n_pairs < ctx.world_size:
        raise ValueError(f"{n_pairs} training pairs cannot be shared by {ctx.world_size} processes")

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("[bold]epoch {task.fields[epoch]}"),
        BarColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
        disable=not (cfg.progress and ctx.is_main),
        transient=True,
    )
    train_seconds, samples, stopped_early, epoch = 0.0, 0, False, start_epoch
    n_batches = (n_pairs + cfg.batch_size - 1) // cfg.batch_size
    with progress:
        for epoch in range(start_epoch + 1, cfg.epochs + 1):
            net.train()
            task = progress.add_task("train", total=n_batches, epoch=epoch, loss=0.0)
            total_loss, steps, t0 = 0.0, 0, time.perf_counter()
            batches = tensors.epoch(cfg.batch_size, cfg.seed, epoch, ctx.rank, ctx.world_size)
            for batch in batches:
                total_loss += float(train_step(net, optimizer, scaler, batch, tensors, dtype))
                steps += 1
                samples += len(batch) * ctx.world_size
                progress.update(task, advance=1, loss=total_loss / steps)
            train_seconds += time.perf_counter() - t0
            progress.remove_task(task)

            metric = -1.0
            if ctx.is_main:
                val = _validation(model, split, "val", [cfg.eval_k])
                metric = val[f"recall@{cfg.eval_k}"]
            metric = broadcast_floats([metric], ctx, device)[0]
            epoch_loss = mean_across(total_loss / max(steps, 1), ctx, device)
            history.append({"epoch": epoch, "loss": epoch_loss, f"val_recall@{cfg.eval_k}": metric})
            if metric > best_metric:
                best_metric, best_epoch, bad_epochs = metric, epoch, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad_epochs += 1
            if ctx.is_main:
                _save_atomic(
                    {
                        "fingerprint": cfg.model_fingerprint(),
                        "config": cfg.to_dict(),
                        "epoch": epoch,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "best_metric": best_metric,
                        "best_epoch": best_epoch,
                        "bad_epochs": bad_epochs,
                        "best_state": best_state,
                        "history": history,
                    },
                    run_dir / CHECKPOINT,
                )
            if bad_epochs >= cfg.patience:
                stopped_early = True
                break

    model.load_state_dict(best_state)
    result = Metrics(
        run_dir=str(run_dir),
        best_epoch=best_epoch,
        epochs_run=epoch,
        val={},
        test={},
        history=history,
        samples_per_second=samples / train_seconds if train_seconds else 0.0,
        train_seconds=train_seconds,
        device=str(device),
        amp=str(dtype).replace("torch.", "") if dtype else "off",
        world_size=ctx.world_size,
        stopped_early=stopped_early,
        dist_backend=ctx.backend or "none",
    )
    if ctx.is_main:
        model.cpu()
        result.val = _validation(model, split, "val", ks)
        result.test = _validation(model, split, "test", ks)
        data = split.data
        _save_atomic(
            {
                "fingerprint": cfg.model_fingerprint(),
                "config": cfg.to_dict(),
                "state_dict": best_state,
                "n_users": data.n_users,
                "n_items": data.n_items,
                "user_cardinalities": data.user_cardinalities,
                "item_cardinalities": data.item_cardinalities,
            },
            run_dir / MODEL,
        )
        (run_dir / "metrics.json").write_text(
            json.dumps(result.to_dict(), indent=2), encoding="utf-8"
        )
        if history:
            plot_curves(history, run_dir / "curves.png", cfg.eval_k)
    return result


def load_trained(run_dir: str | Path) -> tuple[TrainConfig, TwoTower, Split]:
    """The config, best model (CPU, eval mode) and split of a finished run.

    The split is the one the run recorded, on its data checked against the recorded hash
    (``run_data.load_split``): ``RunDataChanged`` if the data has changed since.
    """
    path = Path(run_dir) / MODEL
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no trained model; run `train` first (or point --run at a finished run)"
        )
    saved = torch.load(path, map_location="cpu", weights_only=False)
    cfg = TrainConfig.from_dict(saved["config"])
    split = load_split(run_dir, cfg)
    model = model_for(cfg, split)
    model.load_state_dict(saved["state_dict"])
    return cfg, model.eval(), split
