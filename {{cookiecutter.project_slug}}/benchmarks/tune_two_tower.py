"""Choose the two-tower batch size, learning rate and width on validation Recall@10.

Each setting trains once per seed through the project's ``train`` (early-stopped on
validation, as every run is) and scores the mean over seeds of the validation Recall@10 its
``metrics.json`` holds. Two stages: every ``--batch-sizes`` x ``--lrs`` pair at the first
``--hidden`` width, then the other widths at the best pair. The setting with the best mean
validation Recall@10 is the choice (ties go to the earlier setting). Only then is the test
Recall@10 of that one setting printed: test figures are never compared between settings.

    OMP_NUM_THREADS=1 python benchmarks/tune_two_tower.py --seeds 0-2 \\
        --batch-sizes 256,512,1024 --lrs 3e-3,7e-3,1.5e-2 --hidden 64,128 [--json out.json]

The JSON holds ``{"rows": [{"batch_size", "lr", "hidden", "stage", "val_recall@10": [per seed],
"val_mean", "val_std", "test_recall@10": [per seed], "seconds"}], "choice": {...},
"defaults": {...}, "seeds", "data", "epochs", "threads"}``. The rows' test figures are
recorded for reference only; the choice reads ``val_mean``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from {{ cookiecutter.package_name }}.training import TrainConfig, train

METRIC = "recall@10"
DEFAULTS = TrainConfig()


def int_list(text: str) -> list[int]:
    """``"0-4"`` or ``"0,2,5"`` (ranges and commas may be mixed)."""
    values: list[int] = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        try:
            values += list(range(int(low), int(high) + 1)) if dash else [int(low)]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected integers like 0-4 or 256,512; found {text!r}"
            ) from None
    return values


def float_list(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers like 3e-3,7e-3; found {text!r}"
        ) from None


def train_setting(
    args: argparse.Namespace, runs: str, batch_size: int, lr: float, hidden: int, stage: int
) -> dict[str, Any]:
    """One setting over every seed: the validation (and, for reference, test) Recall@10."""
    val: list[float] = []
    test: list[float] = []
    start = time.perf_counter()
    for seed in args.seeds:
        cfg = TrainConfig(
            data=args.data, n_users=args.n_users, n_items=args.n_items, seed=seed,
            epochs=args.epochs, batch_size=batch_size, lr=lr, hidden=hidden, progress=False,
            runs_dir=runs, run_id=f"b{batch_size}_lr{lr:g}_h{hidden}_s{seed}", device=args.device,
        )  # fmt: skip
        metrics = train(cfg)
        val.append(metrics.val[METRIC])
        test.append(metrics.test[METRIC])
    row = {
        "batch_size": batch_size,
        "lr": lr,
        "hidden": hidden,
        "stage": stage,
        f"val_{METRIC}": val,
        "val_mean": statistics.fmean(val),
        "val_std": statistics.stdev(val) if len(val) > 1 else 0.0,
        f"test_{METRIC}": test,
        "seconds": time.perf_counter() - start,
    }
    print(
        f"batch {batch_size:>5}  lr {lr:<8g} hidden {hidden:>4}  "
        f"val {METRIC} {row['val_mean']:.4f} ± {row['val_std']:.4f}  ({row['seconds']:.0f} s)",
        flush=True,
    )
    return row


def best(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The row with the highest mean validation Recall@10; the earlier one on a tie."""
    return max(rows, key=lambda row: row["val_mean"])  # max keeps the first of equals


def tune(args: argparse.Namespace, runs: str) -> dict[str, Any]:
    rows = [
        train_setting(args, runs, batch_size, lr, args.hidden[0], stage=1)
        for batch_size in args.batch_sizes
        for lr in args.lrs
    ]
    pair = best(rows)
    rows += [
        train_setting(args, runs, pair["batch_size"], pair["lr"], hidden, stage=2)
        for hidden in args.hidden[1:]
    ]
    chosen = best(rows)  # decided here, before any test figure is read
    test = chosen[f"test_{METRIC}"]
    choice = {
        "batch_size": chosen["batch_size"],
        "lr": chosen["lr"],
        "hidden": chosen["hidden"],
        "val_mean": chosen["val_mean"],
        "test_mean": statistics.fmean(test),
        "test_std": statistics.stdev(test) if len(test) > 1 else 0.0,
    }
    print(
        f"choice: batch {choice['batch_size']}, lr {choice['lr']:g}, hidden {choice['hidden']} "
        f"(best mean validation {METRIC} {choice['val_mean']:.4f}); its test {METRIC}: "
        f"{choice['test_mean']:.4f} ± {choice['test_std']:.4f} over seeds {args.seeds}"
    )
    defaults = {"batch_size": DEFAULTS.batch_size, "lr": DEFAULTS.lr, "hidden": DEFAULTS.hidden}
    if {k: choice[k] for k in defaults} != defaults:
        print(f"the choice differs from the defaults in training/config.py: {defaults}")
    return {
        "metric": METRIC,
        "data": args.data,
        "seeds": args.seeds,
        "epochs": args.epochs,
        "threads": torch.get_num_threads(),
        "rows": rows,
        "choice": choice,
        "defaults": defaults,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int_list, default=[256, 512, 1024])
    parser.add_argument("--lrs", type=float_list, default=[3e-3, 7e-3, 1.5e-2])
    parser.add_argument(
        "--hidden", type=int_list, default=[64, 128],
        help="tower widths; the first is used for the batch x lr grid, the rest at its best pair",
    )  # fmt: skip
    parser.add_argument("--seeds", type=int_list, default=[0, 1, 2], help="e.g. 0-4 or 0,3")
    parser.add_argument("--data", default="synthetic", help="synthetic, ml-100k or a file")
    parser.add_argument("--epochs", type=int, default=DEFAULTS.epochs, help="most epochs per run")
    parser.add_argument("--n-users", type=int, default=DEFAULTS.n_users, help="synthetic users")
    parser.add_argument("--n-items", type=int, default=DEFAULTS.n_items, help="synthetic items")
    parser.add_argument("--device", default=DEFAULTS.device)
    parser.add_argument("--runs-dir", help="keep the run folders here (default: a temp folder)")
    parser.add_argument("--json", help="write the grid and the choice to this file")
    args = parser.parse_args()
    for name in ("batch_sizes", "lrs", "hidden", "seeds"):
        if not getattr(args, name):
            parser.error(f"--{name.replace('_', '-')}: expected at least one value")
    try:
        if args.runs_dir:
            result = tune(args, args.runs_dir)
        else:
            with tempfile.TemporaryDirectory() as runs:
                result = tune(args, runs)
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f"tune_two_tower: {err}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
