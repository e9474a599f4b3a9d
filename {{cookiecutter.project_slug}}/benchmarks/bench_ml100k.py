"""Quality on MovieLens-100K (random 80/10/10 per user, full ranking, seen items excluded).

Needs the recbole wheel for the data: ``pip install --no-deps recbole==1.2.1``.

    python benchmarks/bench_ml100k.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from {{ cookiecutter.package_name }}.data import ml100k_location
from {{ cookiecutter.package_name }}.evaluation import format_table
from {{ cookiecutter.package_name }}.pipeline import run_evaluate
from {{ cookiecutter.package_name }}.training import (
    TrainConfig,
    train,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json")
    args = parser.parse_args()
    try:
        ml100k_location()
    except ImportError as exc:
        # A skip, not a failure: `nox -s bench` goes on with the other benchmarks.
        print(f"skipped: {exc}", file=sys.stderr)
        if args.json:  # replace an earlier run's figures, which would look current
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps({"skipped": str(exc)}) + "\n", encoding="utf-8")
        return
    from rich.console import Console

    with tempfile.TemporaryDirectory() as runs:
        start = time.perf_counter()
        metrics = train(
            TrainConfig(
                data="ml-100k", epochs=args.epochs, seed=args.seed, progress=False, runs_dir=runs
            )
        )
        results = run_evaluate(metrics.run_dir, ks=[10, 20, 50])
        elapsed = time.perf_counter() - start
    Console(width=120).print(format_table(results, title="MovieLens-100K, test split"))
    out = {
        "results": results,
        "best_epoch": metrics.best_epoch,
        "epochs_run": metrics.epochs_run,
        "train_seconds": metrics.train_seconds,
        "total_seconds": elapsed,
        "samples_per_second": metrics.samples_per_second,
    }
    out["two_tower_over_popularity"] = (
        results["two_tower"]["recall@10"] / results["popularity"]["recall@10"]
    )
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
