"""SASRec training throughput: the training loop's batches vs a naive per-sample DataLoader.

Both loops train the same model with the same loss, optimizer and step
(``training.sequence.train_step``) at the same batch size; only the way batches are made
differs. The training loop slices windows precomputed once into one tensor on the device
(``training_windows``); the naive loop builds each window from the user's item list in Python
(a ``Dataset`` whose ``__getitem__`` cuts and pads one sample) and collates them with a
``DataLoader``, as a first version would. Throughput is training targets (next-item
predictions) per second, the median of ``--repeats`` interleaved runs. On a CUDA machine the
training loop is also timed with AMP bf16 and at each ``--batch-sizes``.

    python benchmarks/bench_sequence_training.py [--data synthetic|ml-100k|PATH] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from {{ cookiecutter.package_name }}.training.runtime import amp_dtype, seed_everything
from {{ cookiecutter.package_name }}.training.sequence import (
    SequenceConfig,
    SequenceLoss,
    build_model,
    make_optimizer,
    prepare_split,
    split_sequences,
    train_step,
    training_windows,
)


class PerSampleWindows(Dataset):
    """One training window per index, cut and padded from a user's list on each access."""

    def __init__(self, sequences: list[np.ndarray], max_len: int, pad: int) -> None:
        self.max_len, self.pad = max_len, pad
        # (user, end) of every window; the window is sequence[max(0, end - L - 1):end].
        self.spans = []
        for u, seq in enumerate(sequences):
            end = len(seq)
            while end > 1:
                self.spans.append((u, end))
                end = max(0, end - max_len - 1) + 1
        self.sequences = [list(map(int, s)) for s in sequences]

    def __len__(self) -> int:
        return len(self.spans)

    def __getitem__(self, k: int) -> torch.Tensor:
        user, end = self.spans[k]
        items = self.sequences[user][max(0, end - self.max_len - 1) : end]
        return torch.tensor([self.pad] * (self.max_len + 1 - len(items)) + items)


def epoch_seconds(
    mode: str, cfg: SequenceConfig, device: torch.device, amp: str, batch_size: int
) -> Callable[[], float]:
    """A function that trains one epoch in ``mode`` and returns targets per second."""
    seed_everything(cfg.seed)
    split = prepare_split(cfg)
    sequences = split_sequences(split, ["train"])
    pad = split.n_items
    model = build_model(cfg, pad).to(device)
    net = SequenceLoss(model)
    optimizer = make_optimizer(model, cfg, device)
    dtype = amp_dtype(amp, device)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    windows = torch.as_tensor(training_windows(sequences, cfg.max_len, pad), device=device)
    naive = PerSampleWindows(sequences, cfg.max_len, pad)
    assert len(naive) == len(windows)

    def batches() -> object:
        if mode == "vectorised":
            order = torch.randperm(len(windows), device=device)
            return (windows[order[i : i + batch_size]] for i in range(0, len(order), batch_size))
        loader = DataLoader(naive, batch_size=batch_size, shuffle=True)
        return (b.to(device) for b in loader)

    def run() -> float:
        targets, t0 = 0, time.perf_counter()
        for batch in batches():  # type: ignore[attr-defined]
            targets += train_step(net, optimizer, scaler, batch, pad, dtype)[1]
        if device.type == "cuda":
            torch.cuda.synchronize()
        return targets / (time.perf_counter() - t0)

    return run


def side_by_side(runs: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """Median targets/s per run, the runs interleaved so machine load hits them alike."""
    seen: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            seen[name].append(run())
    return {name: statistics.median(v) for name, v in seen.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[SequenceConfig.batch_size])
    parser.add_argument("--json")
    args = parser.parse_args()
    cfg = SequenceConfig(data=args.data, device=args.device, progress=False)
    cuda = torch.cuda.is_available() and args.device != "cpu"
    device = torch.device("cuda" if cuda else "cpu")
    rows = []
    for bs in args.batch_sizes:
        runs = {
            "vectorised": epoch_seconds("vectorised", cfg, device, "off", bs),
            "naive_dataloader": epoch_seconds("naive", cfg, device, "off", bs),
        }
        if cuda:
            runs["vectorised_amp_bf16"] = epoch_seconds("vectorised", cfg, device, "bf16", bs)
        medians = side_by_side(runs, args.repeats)
        row = {"device": str(device), "batch_size": bs, "data": args.data,
               **{f"{k}_targets_per_s": v for k, v in medians.items()},
               "speedup": medians["vectorised"] / medians["naive_dataloader"]}  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
