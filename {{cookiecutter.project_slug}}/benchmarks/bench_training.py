"""Training throughput: tensor-sliced batches vs a naive per-sample Dataset/DataLoader.

Both loops train the same two-tower model with the same optimizer and batch size; only the way
batches are produced differs. On a CUDA machine the vectorised loop is also timed with AMP.

    python benchmarks/bench_training.py [--epochs 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from {{ cookiecutter.package_name }}.training import TrainConfig, prepare_split
from {{ cookiecutter.package_name }}.training.loop import model_for, user_histories
from {{ cookiecutter.package_name }}.training.runtime import amp_dtype, autocast, choose_device


class PerSample(Dataset):
    """The textbook way: one Python call and one small tensor per field per sample."""

    def __init__(self, users, items, user_feats, item_feats, histories) -> None:  # type: ignore[no-untyped-def]
        self.users, self.items = users.tolist(), items.tolist()
        self.user_feats, self.item_feats, self.histories = user_feats, item_feats, histories

    def __len__(self) -> int:
        return len(self.users)

    def __getitem__(self, k: int):  # type: ignore[no-untyped-def]
        u, i = self.users[k], self.items[k]
        return u, self.user_feats[u], self.histories[u], i, self.item_feats[i]


def run(mode: str, epochs: int, device: torch.device, amp: str = "off") -> float:
    cfg = TrainConfig(device=str(device), amp=amp, progress=False)
    split = prepare_split(cfg)
    torch.manual_seed(0)
    model = model_for(cfg, split).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
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
            data = PerSample(users, items, user_feats, item_feats, histories)
            loader = DataLoader(data, batch_size=cfg.batch_size, shuffle=True)
            for u, uf, hist, i, itf in loader:
                step(u.to(device), uf.to(device), hist.to(device), i.to(device), itf.to(device))
                samples += len(u)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return samples / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    device = choose_device(args.device)
    result = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads()}
    result["vectorised_samples_per_s"] = run("vectorised", args.epochs, device)
    result["naive_dataloader_samples_per_s"] = run("naive", args.epochs, device)
    result["speedup"] = result["vectorised_samples_per_s"] / result["naive_dataloader_samples_per_s"]
    if device.type == "cuda":
        result["vectorised_amp_bf16_samples_per_s"] = run("vectorised", args.epochs, device, amp="bf16")
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
