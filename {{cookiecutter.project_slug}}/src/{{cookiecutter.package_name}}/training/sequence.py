"""``train_sequence(cfg) -> Metrics``: the SASRec loop, single process or torchrun DDP.

The recipe follows the SASRec and gSASRec papers where the issue is silent (docs/pipeline.md):

* each user's training items, oldest first (``data.temporal``: equal timestamps keep the
  log's row order), are cut from the end into windows of ``max_len + 1`` items; a window's
  first ``max_len`` items are the input and the same items shifted by one are the targets,
  so every training item after a user's first is a target once;
* the loss is softmax cross-entropy of each target against the whole catalog (``full``),
  or against ``negatives`` items sampled by training frequency with the logQ correction
  (``sampled``, for catalogs where a (positions, n_items) logit matrix does not fit);
* the number of epochs is chosen on validation NDCG@K (checked every ``eval_every`` epochs,
  stopping after ``patience`` checks without a better one); the best weights are kept.

Validation scores every item from the state after the last training item, masking the
training items; test does the same from the training and validation items. Batches, DDP and
AMP work as in the two-tower loop (``loop.py``): ``batch_size`` rows per step globally, each
rank takes its ``rank::world_size`` share, and the loss is normalised by the batch's targets
over all ranks, so one process and N processes take the same steps (with ``dropout`` 0;
dropout masks come from each process's own random stream)::

    torchrun --standalone --nproc-per-node 2 -m {{ cookiecutter.package_name }} train-sequence --device cpu
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..data import Split, make_split
from ..data.temporal import ordered_sequences, time_ordered_pairs
from ..evaluation import check_k, rank_metrics
from ..models.sasrec import SASRec
from .config import Metrics
from .run_data import load_data, record_split
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
from .sequence_config import SequenceConfig
from .snapshot import new_run_id, write_snapshot

MODEL = "sasrec.pt"


def split_sequences(split: Split, parts: Sequence[str]) -> list[np.ndarray]:
    """Each user's items of the named split parts ("train", "val", "test"), oldest first."""
    data = split.data
    order_u, order_i, _ = time_ordered_pairs(data.users, data.items, data.timestamps)
    chosen = [getattr(split, p) for p in parts]
    return ordered_sequences(order_u, order_i, chosen, data.n_users, data.n_items)


def pad_left(sequences: Sequence[np.ndarray], length: int, pad: int) -> np.ndarray:
    """(n, length) int64: each sequence's last ``length`` items, right-aligned, padded with ``pad``."""
    out = np.full((len(sequences), length), pad, dtype=np.int64)
    for row, seq in enumerate(sequences):
        tail = np.asarray(seq, dtype=np.int64)[-length:]
        if len(tail):
            out[row, length - len(tail) :] = tail
    return out


def training_windows(sequences: Sequence[np.ndarray], max_len: int, pad: int) -> np.ndarray:
    """(n_windows, max_len + 1) int64 windows cut from the end of each sequence.

    Consecutive windows of a user overlap by one item, so every item after the first is a
    target exactly once (inputs ``w[:, :-1]``, targets ``w[:, 1:]``).
    """
    windows: list[np.ndarray] = []
    for seq in sequences:
        end = len(seq)
        while end > 1:
            start = max(0, end - max_len - 1)
            windows.append(np.asarray(seq[start:end]))
            end = start + 1
    return pad_left(windows, max_len + 1, pad)


def real_targets(inputs: torch.Tensor, targets: torch.Tensor, pad: int) -> torch.Tensor:
    """(batch, L) bool: positions whose input and target are both items (a window's first
    item is a target of nothing: its input slot is padding)."""
    return (inputs != pad) & (targets != pad)


class SequenceLoss(nn.Module):
    """The training objective around a ``SASRec``: what DDP wraps (weights are tied, so the
    output layer has to run inside the wrapped forward)."""

    def __init__(self, model: SASRec) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        norm: torch.Tensor,
        negatives: torch.Tensor | None = None,
        log_q: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Summed cross-entropy over real targets divided by ``norm`` (the global count).

        inputs, targets: (batch, L); negatives: (S,) sampled items; log_q: (n_items,) log
        sampling probabilities (logQ correction).
        """
        states = self.model(inputs)  # (batch, L, dim)
        real = real_targets(inputs, targets, self.model.pad)
        h, y = states[real], targets[real]  # (N, dim), (N,)
        items = self.model.item_vectors()  # (n_items, dim)
        if negatives is None:
            logits = h @ items.T  # (N, dim) @ (dim, n_items)
            loss = F.cross_entropy(logits.float(), y, reduction="sum")
        else:
            assert log_q is not None
            pos = (h * items[y]).sum(-1, keepdim=True) - log_q[y, None]  # (N, 1)
            neg = h @ items[negatives].T - log_q[negatives][None, :]  # (N, S)
            neg = neg.masked_fill(negatives[None, :] == y[:, None], float("-inf"))  # hits
            logits = torch.cat([pos, neg], 1).float()
            loss = F.cross_entropy(logits, torch.zeros_like(y), reduction="sum")
        return loss / norm


def train_step(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    batch: torch.Tensor,
    pad: int,
    dtype: torch.dtype | None,
    ctx: DistContext | None = None,
    negatives: torch.Tensor | None = None,
    log_q: torch.Tensor | None = None,
) -> tuple[torch.Tensor, int]:
    """One optimisation step on a global batch of (B, L + 1) windows; this rank trains on its
    ``rank::world_size`` rows. Returns the (detached) loss and the batch's number of targets."""
    ctx = ctx or DistContext()
    n_targets = real_targets(batch[:, :-1], batch[:, 1:], pad).sum()
    norm = n_targets.clamp(min=1).float() / ctx.world_size
    mine = batch[ctx.rank :: ctx.world_size]
    with autocast(batch.device, dtype):
        loss = net(mine[:, :-1], mine[:, 1:], norm, negatives, log_q)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.detach(), int(n_targets)


def make_optimizer(model: nn.Module, cfg: SequenceConfig, device: torch.device) -> torch.optim.Adam:
    """Adam, fused where torch has the kernel for the device (as the two-tower's)."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.Adam(
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused or None
    )


def _metrics(
    model: SASRec,
    inputs: np.ndarray,
    truth: list[np.ndarray],
    seen: list[np.ndarray],
    ks: list[int],
) -> dict[str, float]:
    """Full-ranking metrics from the state after each user's input sequence (seen masked)."""
    model.eval()
    device = next(model.parameters()).device

    def score(users: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            seq = torch.as_tensor(inputs[users], device=device)
            return model.scores(seq).float().cpu().numpy()

    return rank_metrics(score, truth, seen, model.n_items, ks, batch_size=512)


def prepare_split(cfg: SequenceConfig) -> Split:
    return make_split(load_data(cfg), cfg.split, seed=cfg.seed)


def build_model(cfg: SequenceConfig, n_items: int) -> SASRec:
    return SASRec(n_items, cfg.max_len, cfg.dim, cfg.blocks, cfg.heads, cfg.dropout)


def train_sequence(cfg: SequenceConfig, split: Split | None = None) -> Metrics:
    """Train SASRec on ``split`` (default: the one ``cfg`` describes); write a run folder."""
    cfg.validate()
    ctx = init_distributed(cfg.device)
    try:
        return _train(cfg, ctx, split)
    finally:
        shutdown_distributed(ctx)


def _train(cfg: SequenceConfig, ctx: DistContext, split: Split | None) -> Metrics:
    device = choose_device(cfg.device, ctx.local_rank)
    dtype = amp_dtype(cfg.amp, device)
    seed_everything(cfg.seed, cfg.deterministic)
    split = split if split is not None else prepare_split(cfg)
    n_items = split.n_items
    ks = check_k(sorted({5, 10, 20, cfg.eval_k} & set(range(1, n_items + 1))), n_items)
    run_dir = Path(cfg.runs_dir) / (cfg.run_id or new_run_id("sasrec"))
    if ctx.is_main:
        if run_dir.exists() and any(run_dir.iterdir()):
            raise FileExistsError(
                f"{run_dir}: run folder exists and is not empty; pick another --run-id"
            )
        write_snapshot(run_dir, cfg.to_dict())
        record_split(run_dir, cfg, split)

    train_seqs = split_sequences(split, ["train"])
    windows = torch.as_tensor(training_windows(train_seqs, cfg.max_len, n_items), device=device)
    if len(windows) < ctx.world_size:
        raise ValueError(
            f"{len(windows)} training windows cannot be shared by {ctx.world_size} processes; "
            "users need at least two training items"
        )
    counts = np.bincount(np.concatenate(train_seqs + [np.zeros(0, np.int64)]), minlength=n_items)
    q = torch.as_tensor((counts + 1) / (counts + 1).sum(), dtype=torch.float32, device=device)
    log_q = (q * cfg.negatives).log() if cfg.loss == "sampled" else None
    val_inputs = pad_left(train_seqs, cfg.max_len, n_items)
    val_truth, val_seen = split.by_user("val"), split.by_user("train")

    model = build_model(cfg, n_items).to(device)
    objective = SequenceLoss(model)
    net: nn.Module = DistributedDataParallel(objective) if ctx.enabled else objective
    optimizer = make_optimizer(model, cfg, device)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    best_metric, best_epoch, bad_checks, stopped_early = -1.0, 0, 0, False
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    history: list[dict[str, float]] = []
    train_seconds, samples, epoch = 0.0, 0, 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        generator = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        order = torch.randperm(len(windows), generator=generator).to(device)
        total, steps, t0 = 0.0, 0, time.perf_counter()
        for start in range(0, len(order), cfg.batch_size):
            batch = windows[order[start : start + cfg.batch_size]]  # (B, L + 1), all ranks
            negatives = None
            if cfg.loss == "sampled":
                negatives = torch.multinomial(
                    q.cpu(), cfg.negatives, replacement=True, generator=generator
                ).to(device)
            loss, n_targets = train_step(
                net, optimizer, scaler, batch, n_items, dtype, ctx, negatives, log_q
            )
            total += float(loss) * ctx.world_size
            steps += 1
            samples += n_targets
        train_seconds += time.perf_counter() - t0
        if epoch % cfg.eval_every and epoch != cfg.epochs:
            continue
        metric = -1.0
        if ctx.is_main:
            val = _metrics(model, val_inputs, val_truth, val_seen, [cfg.eval_k])
            metric = val[f"ndcg@{cfg.eval_k}"]
        metric = broadcast_floats([metric], ctx, device)[0]
        epoch_loss = mean_across(total / max(steps, 1), ctx, device)
        history.append({"epoch": epoch, "loss": epoch_loss, f"val_ndcg@{cfg.eval_k}": metric})
        if cfg.progress and ctx.is_main:
            print(
                f"epoch {epoch}: loss {epoch_loss:.4f} val ndcg@{cfg.eval_k} {metric:.4f}",
                flush=True,
            )
        if metric > best_metric:
            best_metric, best_epoch, bad_checks = metric, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad_checks += 1
            if bad_checks >= cfg.patience:
                stopped_early = True
                break

    model.load_state_dict(best_state)
    result = Metrics(
        run_dir=str(run_dir), best_epoch=best_epoch, epochs_run=epoch, val={}, test={},
        history=history, samples_per_second=samples / train_seconds if train_seconds else 0.0,
        train_seconds=train_seconds, device=str(device),
        amp=str(dtype).replace("torch.", "") if dtype else "off", world_size=ctx.world_size,
        stopped_early=stopped_early, dist_backend=ctx.backend or "none",
    )  # fmt: skip
    if ctx.is_main:
        model.cpu()
        result.val = _metrics(model, val_inputs, val_truth, val_seen, ks)
        test_inputs = pad_left(split_sequences(split, ["train", "val"]), cfg.max_len, n_items)
        result.test = _metrics(
            model, test_inputs, split.by_user("test"), split.by_user("train+val"), ks
        )
        save_model(model, cfg, run_dir / MODEL)
        (run_dir / "metrics.json").write_text(
            json.dumps(result.to_dict(), indent=2), encoding="utf-8"
        )
    return result


def save_model(model: SASRec, cfg: SequenceConfig, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(
        {"config": cfg.to_dict(), "n_items": model.n_items, "state_dict": model.state_dict()}, tmp
    )
    tmp.replace(path)


def load_sequence_model(run_dir: str | Path) -> tuple[SequenceConfig, SASRec]:
    """The config and best SASRec (CPU, eval mode) of a finished ``train_sequence`` run."""
    path = Path(run_dir) / MODEL
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no trained sequence model; run `train-sequence` first (or point --run at one)"
        )
    saved = torch.load(path, map_location="cpu", weights_only=False)
    cfg = SequenceConfig(**saved["config"])
    model = build_model(cfg, saved["n_items"])
    model.load_state_dict(saved["state_dict"])
    return cfg, model.eval()


def user_states(model: SASRec, inputs: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """(n_users, dim) float32 states after each row of ``inputs`` (left-padded sequences)."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            out.append(model.user_state(torch.as_tensor(inputs[start : start + batch_size])))
    return torch.cat(out).float().numpy() if out else np.zeros((0, model.dim), np.float32)
