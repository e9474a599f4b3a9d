"""Train the ranker on candidate sets: listwise loss, epochs chosen on validation.

Loss, per user with positives P and negatives N among the candidates (hard negatives: what the
channels retrieved but the user did not take; plus ``n_random`` random unseen items)::

    loss = mean_{p in P} softplus( logsumexp_{n in N} s_n - s_p )   # = -log softmax(p | {p} + N)

Each epoch ends with validation Recall@K of the whole chain (candidates from channels fitted on
the full training split, validation items as truth); the best epoch's weights are kept and
training stops after ``patience`` epochs without improvement. The test split is never read.

Under torchrun (DDP, as the two-tower model) every rank builds the same examples, each step's
``batch_users`` rows are shared out ``rank::world_size`` and the loss is divided by the
positives of the whole step, so N processes take the steps one process takes. Rank 0 validates
and broadcasts the result, so every rank stops at the same epoch::

    torchrun --standalone --nproc-per-node 2 -m {{ cookiecutter.package_name }} rank --device cpu
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from ..data import Split
from ..evaluation import rank_metrics
from ..models.ranker import Ranker
from ..training.runtime import (
    DistContext,
    amp_dtype,
    autocast,
    broadcast_object,
    choose_device,
    init_distributed,
    mean_across,
    seed_everything,
    shutdown_distributed,
)
from .config import RankerConfig
from .data import ChannelFactory, RankingData, build_ranking_data, ranking_folds


@dataclass
class RankerResult:
    """A trained ranker, the channels it ranks for, and how training went."""

    model: Ranker
    channels: Mapping[str, object]  # fitted on the full training split
    config: RankerConfig
    feature_names: tuple[str, ...]
    best_epoch: int
    history: list[dict[str, float]]
    val: dict[str, float]
    seconds: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"  # where it trained (the returned model is on the CPU)
    amp: str = "off"  # the autocast dtype, e.g. "bfloat16"
    world_size: int = 1
    dist_backend: str = "none"  # "gloo" or "nccl" under torchrun


def _tensors(
    data: RankingData, rows: np.ndarray, user_features: torch.Tensor, item_features: torch.Tensor
) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor]:
    """Model inputs for the masked pairs of ``rows`` (flattened), plus (b, c) mask and labels."""
    mask = torch.as_tensor(data.mask[rows])
    items = torch.as_tensor(data.items[rows])[mask]  # (n,)
    users = torch.as_tensor(data.users[rows])[:, None].expand_as(mask)[mask]  # (n,)
    dense = torch.as_tensor(data.dense[rows])[mask]  # (n, d)
    inputs = (users, user_features[users], items, item_features[items], dense)
    return inputs, mask, torch.as_tensor(data.labels[rows])


def shard_steps(
    order: np.ndarray, batch_users: int, rank: int = 0, world_size: int = 1
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(step's rows, this rank's share of them) for each step of an epoch over ``order``.

    Every rank walks the same ``order`` (same seed), so the steps are the same everywhere and
    the ``rank::world_size`` shares of a step are disjoint: each row is trained once an epoch,
    on one rank (a ``DistributedSampler`` that shards each step rather than the epoch). A
    step with fewer rows than ranks leaves some ranks an empty share.
    """
    for start in range(0, len(order), batch_users):
        step = order[start : start + batch_users]
        yield step, step[rank::world_size]


def listwise_loss(
    logits: torch.Tensor,
    mask: torch.Tensor,
    labels: torch.Tensor,
    n_positives: float | None = None,
) -> torch.Tensor:
    """(b, c) logits, mask, labels -> mean over positives of -log softmax(pos | pos + negatives).

    ``n_positives`` divides the sum instead of this batch's count: under DDP, the positives
    of the whole step over ``world_size``, so that the ranks' averaged gradients are the
    gradient of the whole step's mean.
    """
    neg = logits.masked_fill(~mask | labels, float("-inf"))
    neg_lse = torch.logsumexp(neg, dim=1, keepdim=True)  # (b, 1); -inf if no negatives
    losses = F.softplus(neg_lse - logits)  # (b, c)
    positives = labels & mask
    if not positives.any():
        # Zero, but still a function of every score (padding, -inf, left out), so that
        # backward reaches the parameters: a DDP rank must always join the gradient reduction.
        return logits.masked_fill(~mask, 0.0).sum() * 0.0
    if n_positives is None:
        return losses[positives].mean()
    return losses[positives].sum() / n_positives


def score_rows(
    model: Ranker,
    data: RankingData,
    user_features: np.ndarray,
    item_features: np.ndarray,
    batch_users: int = 256,
) -> np.ndarray:
    """(u, c) ranker logits for every candidate (-inf at padding), in eval mode on the CPU."""
    model = model.eval()
    device = next(model.parameters()).device
    uf = torch.as_tensor(user_features, dtype=torch.long)
    itf = torch.as_tensor(item_features, dtype=torch.long)
    out = np.full(data.mask.shape, -np.inf, dtype=np.float32)
    with torch.no_grad():
        for start in range(0, len(data), batch_users):
            rows = np.arange(start, min(start + batch_users, len(data)))
            inputs, mask, _ = _tensors(data, rows, uf, itf)
            logits = model(*(t.to(device) for t in inputs)).float().cpu()
            block = torch.full(mask.shape, float("-inf"))
            block[mask] = logits
            out[rows] = block.numpy()
    return out


def chain_metrics(
    data: RankingData,
    row_scores: np.ndarray,
    truth: Sequence[np.ndarray],
    seen: Sequence[np.ndarray],
    n_items: int,
    ks: Sequence[int],
) -> dict[str, float]:
    """Full-ranking metrics of "candidates ordered by ``row_scores``, everything else last"."""
    row_of = {int(u): r for r, u in enumerate(data.users)}

    def score_fn(users: np.ndarray) -> np.ndarray:
        out = np.full((len(users), n_items), -1e30, dtype=np.float32)
        for b, u in enumerate(users):
            r = row_of.get(int(u))
            if r is not None:
                m = data.mask[r]
                out[b, data.items[r][m]] = row_scores[r][m]
        return out

    return rank_metrics(score_fn, truth, seen, n_items, ks)


def _anchor_column(anchor: str | None, names: Sequence[str]) -> int | None:
    """The dense column of ``<anchor>:score``; None without an anchor or that channel."""
    if anchor is None:
        return None
    column = f"{anchor}:score"
    return list(names).index(column) if column in names else None


def train_ranker(
    split: Split,
    factory: ChannelFactory,
    cfg: RankerConfig | None = None,
    full_channels: Mapping[str, object] | None = None,
) -> RankerResult:
    """Fit the retrieve -> rank chain on ``split``'s training part, select on its validation part.

    ``factory(users, items)`` fits the recall channels on training pairs; it is called for
    each fold and, unless ``full_channels`` (already fitted on ``split.train``) is given, once
    on the whole training split. Under torchrun every rank calls it alike, so a factory may
    itself train with DDP (the two-tower model).
    """
    cfg = cfg or RankerConfig()
    cfg.validate()
    ctx = init_distributed(cfg.device)
    try:
        return _train_ranker(split, factory, cfg, full_channels, ctx)
    finally:
        shutdown_distributed(ctx)


def _train_ranker(
    split: Split,
    factory: ChannelFactory,
    cfg: RankerConfig,
    full_channels: Mapping[str, object] | None,
    ctx: DistContext,
) -> RankerResult:
    seed_everything(cfg.seed)
    device = choose_device(cfg.device, ctx.local_rank)
    dtype = amp_dtype(cfg.amp, device)
    n_users, n_items = split.n_users, split.n_items
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    item_side = (split.data.item_features, split.data.item_feature_names)
    train_data = ranking_folds(
        split.train, n_users, factory, cfg.n_candidates, cfg.n_random, cfg.hold_out,
        cfg.folds, cfg.seed, *item_side,
    )  # fmt: skip
    seconds["fold_candidates"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    channels = full_channels if full_channels is not None else factory(*split.train)
    seconds["channels"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    val_truth, train_seen = split.by_user("val"), split.by_user("train")
    val_data = None  # rank 0 validates
    if ctx.is_main:
        val_users = np.asarray([u for u in range(n_users) if len(val_truth[u])], dtype=np.int64)
        val_data = build_ranking_data(
            channels, val_users, train_seen, val_truth, cfg.n_candidates, seed=cfg.seed,
            item_features=item_side[0], item_feature_names=item_side[1],
        )  # fmt: skip
    seconds["val_candidates"] = time.perf_counter() - t0

    data = split.data
    model = Ranker(
        n_users,
        n_items,
        data.user_cardinalities,
        data.item_cardinalities,
        n_dense=len(train_data.feature_names),
        embedding_dim=cfg.embedding_dim,
        n_cross=cfg.n_cross,
        hidden=tuple(cfg.hidden),
        dropout=cfg.dropout,
        use_ids=cfg.use_ids,
        anchor=_anchor_column(cfg.anchor, train_data.feature_names),
    )
    model.fit_normaliser(torch.as_tensor(train_data.dense[train_data.mask]))
    model = model.to(device)
    # Unused parameters are the norm here (id embeddings without use_ids, the anchor weight
    # without an anchor), and DDP must be told to expect them.
    net: torch.nn.Module = (
        DistributedDataParallel(model, find_unused_parameters=True) if ctx.enabled else model
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    uf = torch.as_tensor(data.user_features, dtype=torch.long)
    itf = torch.as_tensor(data.item_features, dtype=torch.long)
    # Users with no positive among their candidates teach nothing to a listwise loss.
    trainable = np.flatnonzero(train_data.labels.any(1))
    if len(trainable) < ctx.world_size:
        raise ValueError(
            f"{len(trainable)} users with a positive candidate cannot be shared by "
            f"{ctx.world_size} processes; use fewer processes or more data"
        )
    # Every rank draws the same permutations (same seed), so each step's rows are the same
    # everywhere, and each rank takes its share of them.
    rng = np.random.default_rng(cfg.seed)

    history: list[dict[str, float]] = []
    best, best_epoch, bad = -1.0, 0, 0
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    t0 = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        net.train()
        order = rng.permutation(trainable)
        total, steps = 0.0, 0
        for step_rows, rows in shard_steps(order, cfg.batch_users, ctx.rank, ctx.world_size):
            inputs, mask, labels = _tensors(train_data, rows, uf, itf)
            mask, labels = mask.to(device), labels.to(device)
            with autocast(device, dtype):
                flat = net(*(t.to(device) for t in inputs))
            logits = torch.full(mask.shape, float("-inf"), device=device)
            logits[mask] = flat.float()
            n_positives = None
            if ctx.enabled:  # DDP averages the ranks' gradients: divide by the step's share
                n_positives = float(train_data.labels[step_rows].sum()) / ctx.world_size
            loss = listwise_loss(logits, mask, labels, n_positives)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total += float(loss.detach())
            steps += 1
        val = {}
        if val_data is not None:
            scores = score_rows(model, val_data, data.user_features, data.item_features)
            val = chain_metrics(val_data, scores, val_truth, train_seen, n_items, [cfg.eval_k])
        val = broadcast_object(val, ctx)
        metric = val[f"recall@{cfg.eval_k}"]
        epoch_loss = mean_across(total / max(steps, 1), ctx, device)
        history.append({"epoch": epoch, "loss": epoch_loss, **val})
        if metric > best:
            best, best_epoch, bad = metric, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    seconds["train"] = time.perf_counter() - t0
    del net  # DDP's reducer holds the process group; let it go before the group ends
    model.load_state_dict(best_state)
    model = model.cpu().eval()
    val = {}
    if val_data is not None:
        scores = score_rows(model, val_data, data.user_features, data.item_features)
        val = chain_metrics(val_data, scores, val_truth, train_seen, n_items, [5, 10, 20])
    val = broadcast_object(val, ctx)
    return RankerResult(
        model, channels, cfg, train_data.feature_names, best_epoch, history, val, seconds,
        device=str(device), amp=str(dtype).replace("torch.", "") if dtype else "off",
        world_size=ctx.world_size, dist_backend=ctx.backend or "none",
    )  # fmt: skip


def evaluate_chain(
    result: RankerResult,
    split: Split,
    part: str = "test",
    ks: Sequence[int] = (10,),
) -> dict[str, float]:
    """Metrics of retrieve -> rank on ``part`` ("val" or "test"), items seen before it masked."""
    truth = split.by_user(part)
    seen = split.by_user("train" if part == "val" else "train+val")
    users = np.asarray([u for u in range(split.n_users) if len(truth[u])], dtype=np.int64)
    data = build_ranking_data(
        result.channels, users, seen, truth, result.config.n_candidates,
        seed=result.config.seed, item_features=split.data.item_features,
        item_feature_names=split.data.item_feature_names,
    )  # fmt: skip
    scores = score_rows(result.model, data, split.data.user_features, split.data.item_features)
    return chain_metrics(data, scores, truth, seen, split.n_items, ks)
