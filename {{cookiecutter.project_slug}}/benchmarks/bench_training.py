"""Training throughput: tensor-sliced batches vs a naive per-sample Dataset/DataLoader.

Both loops train the same two-tower model with the same loss, optimizer (``make_optimizer``),
step (``train_step``) and batch size; only the way batches are produced differs: the
vectorised loop is the training loop's own batching (``TrainingTensors.epoch``). Each figure
is the median of ``--repeats`` interleaved runs. ``pipeline_only`` times producing one epoch of batches without
training, which isolates what batching itself costs. On a CUDA machine the vectorised loop is
also timed with AMP.

    python benchmarks/bench_training.py [--epochs 2] [--json out.json]
    python benchmarks/bench_training.py --device cuda --amp-only --dim 256 --hidden 1024  # AMP at a model size
    python benchmarks/bench_training.py --phases --batch-sizes 16 256   # where a step's time goes
    python benchmarks/bench_training.py --compare-hidden 128 64 --batch-sizes 256  # width A/B
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from {{ cookiecutter.package_name }}.training import (
    TrainConfig,
    prepare_split,
)
from {{ cookiecutter.package_name }}.training.batches import Batch, TrainingTensors
from {{ cookiecutter.package_name }}.training.loop import (
    batch_loss,
    make_optimizer,
    model_for,
    train_step,
)
from {{ cookiecutter.package_name }}.training.runtime import (
    amp_dtype,
    choose_device,
)


class PerSample(Dataset):
    """The textbook way: each sample assembled in Python, one tensor per field, dict collate.

    The user's history is built per sample (their other training items, most recent
    ``history_len``, padded), which is what a first implementation of this model does.
    """

    def __init__(
        self, users, items, user_feats, item_feats, by_user, history_len: int, pad: int
    ) -> None:  # type: ignore[no-untyped-def]
        self.users, self.items = users.tolist(), items.tolist()
        self.user_feats, self.item_feats = user_feats.tolist(), item_feats.tolist()
        self.by_user, self.history_len, self.pad = by_user, history_len, pad

    def __len__(self) -> int:
        return len(self.users)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        u, i = self.users[k], self.items[k]
        history = [x for x in self.by_user[u] if x != i][-self.history_len :]
        history = history[::-1] + [self.pad] * (self.history_len - len(history))
        return {
            "user": torch.tensor(u),
            "user_features": torch.tensor(self.user_feats[u]),
            "history": torch.tensor(history),
            "item": torch.tensor(i),
            "item_features": torch.tensor(self.item_feats[i]),
        }


def run(
    mode: str,
    epochs: int,
    device: torch.device,
    size: dict[str, int],
    amp: str = "off",
    batch_size: int | None = None,
    train: bool = True,
) -> float:
    """Samples/s of ``epochs`` epochs of a model of ``size`` (dim, hidden); ``train=False`` only
    produces the batches."""
    cfg = TrainConfig(device=str(device), amp=amp, progress=False, **size)
    if batch_size is not None:
        cfg.batch_size = batch_size
    split = prepare_split(cfg)
    torch.manual_seed(0)
    model = model_for(cfg, split).to(device).train()
    opt = make_optimizer(model, cfg, device)
    dtype = amp_dtype(amp, device)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    # The training loop's own tensors and batching (training/batches.py); the naive loop reads
    # the same pairs and tables, but through Python lists, one sample at a time.
    tensors = TrainingTensors.from_split(split, cfg.history_len, cfg.logq, device)
    loader = None
    if mode != "vectorised":  # the naive loop's dataset is built once, outside the timing
        cpu = (
            tensors
            if device.type == "cpu"
            else TrainingTensors.from_split(split, cfg.history_len, cfg.logq, torch.device("cpu"))
        )
        by_user = [list(map(int, row)) for row in split.by_user("train")]
        width = cpu.histories.shape[1] - 1  # the table's L (its last column is spare padding)
        data = PerSample(
            cpu.users, cpu.items, cpu.user_features, cpu.item_features, by_user, width, cpu.pad
        )
        loader = DataLoader(data, batch_size=cfg.batch_size, shuffle=True)

    def step(batch: Batch) -> None:
        if train:
            train_step(model, opt, scaler, batch, tensors, dtype)

    samples = 0
    start = time.perf_counter()
    for epoch in range(epochs):
        if loader is None:
            for batch in tensors.epoch(cfg.batch_size, cfg.seed, epoch):
                step(batch)
                samples += len(batch)
        else:
            for raw in loader:
                b = {k: v.to(device) for k, v in raw.items()}
                step(
                    Batch(
                        b["user"], b["user_features"], b["history"], b["item"], b["item_features"]
                    )
                )
                samples += len(b["user"])
    if device.type == "cuda":
        torch.cuda.synchronize()
    return samples / (time.perf_counter() - start)


def phases(device: torch.device, size: dict[str, int], batch_size: int) -> dict[str, float]:
    """Microseconds per sample in each phase of the vectorised loop (CPU: no syncs needed).

    Times the parts of ``train_step`` separately - batching, forward, backward, optimizer -
    over one epoch after a warm-up epoch, so a reader can see what bounds the loop.
    """
    cfg = TrainConfig(device=str(device), amp="off", progress=False, batch_size=batch_size, **size)
    split = prepare_split(cfg)
    torch.manual_seed(0)
    model = model_for(cfg, split).to(device).train()
    opt = make_optimizer(model, cfg, device)
    tensors = TrainingTensors.from_split(split, cfg.history_len, cfg.logq, device)
    totals = dict.fromkeys(("batching", "forward", "backward", "optimizer"), 0.0)
    samples = 0
    for epoch in range(2):
        samples, clock = 0, time.perf_counter
        totals = dict.fromkeys(totals, 0.0)
        batches = tensors.epoch(cfg.batch_size, cfg.seed, epoch)
        while True:
            t0 = clock()
            batch = next(batches, None)
            if batch is None:
                break
            t1 = clock()
            loss = batch_loss(model, batch, tensors)
            t2 = clock()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            t3 = clock()
            opt.step()
            t4 = clock()
            for name, dt in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                totals[name] += dt
            samples += len(batch)
    return {name: 1e6 * total / samples for name, total in totals.items()}


def side_by_side(runs: dict[str, Callable[[], float]], repeats: int) -> dict[str, object]:
    """Samples/s of each run, interleaved ``repeats`` times (so a noisy machine slows every run
    alike), with each one's speed relative to the first, per repeat and as medians."""
    speeds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run_once in runs.items():
            speeds[name].append(run_once())
    first_name = next(iter(runs))
    first = speeds[first_name]
    return {
        name: {
            "samples_per_s": statistics.median(v),
            f"vs_{first_name}": statistics.median(v) / statistics.median(first),
            "per_repeat": [a / b for a, b in zip(v, first, strict=True)],
        }
        for name, v in speeds.items()
    }


def compare_widths(
    device: torch.device, dim: int, widths: list[int], batch_size: int, epochs: int, repeats: int
) -> dict[str, object]:
    """The training loop at several tower widths, side by side."""
    return side_by_side(
        {
            f"hidden_{w}": partial(
                run, "vectorised", epochs, device, {"dim": dim, "hidden": w}, batch_size=batch_size
            )
            for w in widths
        },
        repeats,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=[256, TrainConfig.batch_size, 1024]
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument(
        "--dim", type=int, default=TrainConfig.dim, help="embedding size (default: TrainConfig's)"
    )
    parser.add_argument(
        "--hidden",
        type=int,
        default=TrainConfig.hidden,
        help="tower MLP width (default: TrainConfig's)",
    )
    parser.add_argument(
        "--amp-only",
        action="store_true",
        help="CUDA: only time the training loop under AMP off/bf16/fp16 (no naive loop)",
    )
    parser.add_argument(
        "--phases",
        action="store_true",
        help="only time the vectorised loop's phases (us/sample) per batch size",
    )
    parser.add_argument(
        "--compare-hidden",
        type=int,
        nargs="+",
        metavar="WIDTH",
        help="only time the vectorised loop at these tower widths, interleaved (no naive loop)",
    )
    args = parser.parse_args()
    modes = [m for m in ("amp_only", "phases", "compare_hidden") if getattr(args, m)]
    if len(modes) > 1:
        parser.error(
            f"--{' and --'.join(m.replace('_', '-') for m in modes)} time different things; pass one of them"
        )
    size = {"dim": args.dim, "hidden": args.hidden}
    device = choose_device(args.device)
    if args.amp_only and device.type != "cuda":
        parser.error(
            f"--amp-only compares AMP modes, which run on CUDA only; the device is {device}"
        )
    result: dict[str, object] = {
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "model": size,
    }
    if device.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(device)
    for bs in args.batch_sizes if args.phases else ():
        result[f"batch_{bs}_us_per_sample"] = phases(device, size, bs)
    for bs in args.batch_sizes if args.compare_hidden else ():
        result[f"batch_{bs}_widths"] = compare_widths(
            device, args.dim, args.compare_hidden, bs, args.epochs, args.repeats
        )
    # The loops side by side, unless another mode was asked for (--amp-only times them too).
    loops = not (args.phases or args.compare_hidden)
    for bs in args.batch_sizes if loops else ():
        # Interleaved repeats, median of each: on a shared machine both loops then see the same
        # mix of quiet and busy moments, and one lucky or unlucky run does not decide the ratio.
        # On CUDA the fast loop is also timed under each AMP mode, interleaved with the rest,
        # after one warm-up run (CUDA context, cuBLAS handles, the caching allocator).
        amps = ["off", "bf16", "fp16"] if device.type == "cuda" else ["off"]
        if device.type == "cuda":
            run("vectorised", 1, device, size, batch_size=bs)
        by_amp: dict[str, list[float]] = {amp: [] for amp in amps}
        naives = []
        for _ in range(args.repeats):
            for amp in amps:
                by_amp[amp].append(
                    run("vectorised", args.epochs, device, size, amp=amp, batch_size=bs)
                )
            if not args.amp_only:
                naives.append(run("naive", args.epochs, device, size, batch_size=bs))
        fasts = by_amp["off"]
        fast = statistics.median(fasts)
        row: dict[str, object] = {"vectorised_samples_per_s": fast}
        if naives:
            naive = statistics.median(naives)
            row.update(
                naive_dataloader_samples_per_s=naive,
                speedup=fast / naive,
                speedup_per_repeat=[f / n for f, n in zip(fasts, naives, strict=True)],
            )
            only_fast = statistics.median(
                run("vectorised", 1, device, size, batch_size=bs, train=False)
                for _ in range(args.repeats)
            )
            only_naive = statistics.median(
                run("naive", 1, device, size, batch_size=bs, train=False)
                for _ in range(args.repeats)
            )
            row["pipeline_only"] = {
                "vectorised_samples_per_s": only_fast,
                "naive_dataloader_samples_per_s": only_naive,
                "speedup": only_fast / only_naive,
            }
        if device.type == "cuda":
            row["amp"] = {
                amp: {
                    "samples_per_s": statistics.median(v),
                    "vs_amp_off": statistics.median(v) / fast,
                }
                for amp, v in by_amp.items()
            }
        result[f"batch_{bs}"] = row
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
