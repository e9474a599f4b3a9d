"""Training throughput: tensor-sliced batches vs a naive per-sample Dataset/DataLoader.

Both loops train the same two-tower model with the same optimizer (``make_optimizer``) and
batch size; only the way batches are produced differs. Each figure is the median of
``--repeats`` interleaved runs. ``pipeline_only`` times producing one epoch of batches without
training, which isolates what batching itself costs. On a CUDA machine the vectorised loop is
also timed with AMP.

    python benchmarks/bench_training.py [--epochs 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from {{ cookiecutter.package_name }}.training import (
    TrainConfig,
    prepare_split,
)
from {{ cookiecutter.package_name }}.training.loop import (
    make_optimizer,
    model_for,
    user_histories,
)
from {{ cookiecutter.package_name }}.training.runtime import (
    amp_dtype,
    autocast,
    choose_device,
)


class PerSample(Dataset):
    """The textbook way: each sample assembled in Python, one tensor per field, dict collate.

    The user's history is built per sample (their other training items, most recent
    ``history_len``, padded), which is what a first implementation of this model does.
    """

    def __init__(self, users, items, user_feats, item_feats, by_user, history_len: int, pad: int) -> None:  # type: ignore[no-untyped-def]
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
    mode: str, epochs: int, device: torch.device, amp: str = "off", batch_size: int = 1024, train: bool = True
) -> float:
    cfg = TrainConfig(device=str(device), amp=amp, progress=False, batch_size=batch_size)
    split = prepare_split(cfg)
    torch.manual_seed(0)
    model = model_for(cfg, split).to(device)
    opt = make_optimizer(model, cfg, device)
    dtype = amp_dtype(amp, device)
    users = torch.as_tensor(split.train[0])
    items = torch.as_tensor(split.train[1])
    user_feats = torch.as_tensor(split.data.user_features)
    item_feats = torch.as_tensor(split.data.item_features)
    histories = user_histories(split, cfg.history_len)
    counts = torch.bincount(items, minlength=split.n_items).double() + 1
    log_q = (counts / counts.sum()).log().float().to(device)
    pad = split.n_items

    def step(u, uf, hist, i, itf) -> None:  # type: ignore[no-untyped-def]
        if not train:
            return
        hist = hist.masked_fill(hist == i[:, None], pad)
        with autocast(device, dtype):
            loss = model(u, uf, hist, i, itf, None, log_q)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    n, samples = len(users), 0
    start = time.perf_counter()
    for epoch in range(epochs):
        if mode == "vectorised":
            d_users, d_items = users.to(device), items.to(device)
            d_uf, d_if, d_h = user_feats.to(device), item_feats.to(device), histories.to(device)
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(epoch)).to(device)
            for b in range(0, n, cfg.batch_size):
                idx = perm[b : b + cfg.batch_size]
                u, i = d_users[idx], d_items[idx]
                step(u, d_uf[u], d_h[u], i, d_if[i])
                samples += len(idx)
        else:
            by_user = [list(map(int, row)) for row in split.by_user("train")]
            data = PerSample(users, items, user_feats, item_feats, by_user, histories.shape[1], pad)
            loader = DataLoader(data, batch_size=cfg.batch_size, shuffle=True)
            for batch in loader:
                b = {k: v.to(device) for k, v in batch.items()}
                step(b["user"], b["user_features"], b["history"], b["item"], b["item_features"])
                samples += len(b["user"])
    if device.type == "cuda":
        torch.cuda.synchronize()
    return samples / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    device = choose_device(args.device)
    result: dict[str, object] = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads()}
    for bs in args.batch_sizes:
        # Interleaved repeats, median of each: on a shared machine both loops then see the same
        # mix of quiet and busy moments, and one lucky or unlucky run does not decide the ratio.
        fasts, naives = [], []
        for _ in range(args.repeats):
            fasts.append(run("vectorised", args.epochs, device, batch_size=bs))
            naives.append(run("naive", args.epochs, device, batch_size=bs))
        fast, naive = statistics.median(fasts), statistics.median(naives)
        row: dict[str, object] = {
            "vectorised_samples_per_s": fast, "naive_dataloader_samples_per_s": naive, "speedup": fast / naive,
            "speedup_per_repeat": [f / n for f, n in zip(fasts, naives, strict=True)],
        }
        only_fast = statistics.median(run("vectorised", 1, device, batch_size=bs, train=False) for _ in range(args.repeats))
        only_naive = statistics.median(run("naive", 1, device, batch_size=bs, train=False) for _ in range(args.repeats))
        row["pipeline_only"] = {
            "vectorised_samples_per_s": only_fast, "naive_dataloader_samples_per_s": only_naive,
            "speedup": only_fast / only_naive,
        }
        if device.type == "cuda":
            row["vectorised_amp_bf16_samples_per_s"] = run("vectorised", args.epochs, device, amp="bf16", batch_size=bs)
        result[f"batch_{bs}"] = row
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
