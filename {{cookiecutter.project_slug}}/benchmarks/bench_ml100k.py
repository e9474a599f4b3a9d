"""Quality on MovieLens-100K: every channel, EASE and the retrieve -> rank chain, over seeds.

Random 80/10/10 split per user, full ranking, seen items excluded (evaluation.py). For each
seed: popularity, the item graph, the two-tower model (early-stopped on validation), EASE
(l2 chosen on validation) and ``ranked``: candidates from EASE, the item graph, popularity and
the two-tower model, ordered by the ranker (epochs chosen on validation). The ranker learns on a
fold of the training split, so each of its channels is also fitted on that fold (a second
two-tower run, early-stopped on 4 % of the fold's own pairs). The test split is read once per model,
after every choice was made. Needs the recbole wheel for the data:
``uv pip install --python "$(recenv build -q)/bin/python" --no-deps recbole==1.2.1``.

    python benchmarks/bench_ml100k.py [--seeds 0,1,2,3,4] [--json out.json]
    python benchmarks/bench_ml100k.py --protocol temporal [--json out.json]  # ml100k_temporal.py

The JSON holds ``{"recall@10": {model: mean over seeds}, "ndcg@10": {...}, "hit@10": {...},
"seeds": [...], "per_seed": {seed: {model: {metric: value}}}, "fit_seconds": {stage: mean}}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import ml100k_common as common  # this folder's: the chain, seeds and report of both protocols
import ml100k_temporal  # this folder's: the temporal protocol
import numpy as np

from {{ cookiecutter.package_name }}.channels.ease import tune_ease
from {{ cookiecutter.package_name }}.data import (
    load_ml100k,
    make_split,
    ml100k_location,
)
from {{ cookiecutter.package_name }}.evaluation import evaluate_channels
from {{ cookiecutter.package_name }}.ranking import (
    RankerConfig,
    evaluate_chain,
)
from {{ cookiecutter.package_name }}.training import TrainConfig

MODELS = ("popularity", "item_graph", "two_tower", "ease", "ranked")
METRICS = ("recall@10", "ndcg@10", "hit@10")


def run_seed(
    seed: int, args: argparse.Namespace, runs: str
) -> tuple[dict[str, Any], dict[str, float]]:
    """Test metrics of every model for one seed, and the seconds each stage took."""
    data = load_ml100k()
    split = make_split(data, "random", seed=seed)
    seconds: dict[str, float] = {}
    test, seen = split.by_user("test"), split.by_user("train+val")

    tt_cfg = TrainConfig(
        data="ml-100k", epochs=args.epochs, seed=seed, progress=False, runs_dir=runs, device="cpu"
    )
    t0 = time.perf_counter()
    tt_full, tt_epoch = common.two_tower(tt_cfg)
    seconds["two_tower"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ease, ease_val = tune_ease(split.train, split.by_user("val"), split.n_users, split.n_items)
    seconds["ease_tuning"] = time.perf_counter() - t0
    factory = common.chain_factory(data, split, ease.l2, tt_cfg, seed)

    t0 = time.perf_counter()
    full = factory(*split.train, tt=tt_full)
    seconds["channels"] = time.perf_counter() - t0
    channels = {m: full[m] for m in ("popularity", "item_graph", "two_tower", "ease")}
    results = evaluate_channels(channels, test, seen, split.n_items, [10])

    t0 = time.perf_counter()
    ranked = common.fit_chain(split, factory, full, args, seed)
    seconds["ranker"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    results["ranked"] = evaluate_chain(ranked, split, "test", [10])
    seconds["ranked_inference"] = time.perf_counter() - t0
    extra = {
        "ease_l2": ease.l2,
        "ease_val_recall@10": ease_val,
        "two_tower_best_epoch": tt_epoch,
        "ranker_best_epoch": ranked.best_epoch,
        "ranker_val": ranked.val,
        "ranker_stage_seconds": ranked.seconds,
    }
    return {"test": results, **extra}, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated split/init seeds")
    parser.add_argument("--epochs", type=int, default=30, help="two-tower epochs (early-stopped)")
    parser.add_argument("--ranker-epochs", type=int, default=RankerConfig.epochs)
    parser.add_argument("--candidates", type=int, default=RankerConfig.n_candidates)
    # One fold of 20 %: each fold trains another two-tower model, the dearest stage here.
    parser.add_argument("--folds", type=int, default=1)
    parser.add_argument("--hold-out", type=float, default=0.2)
    parser.add_argument("--json")
    parser.add_argument(
        "--protocol", choices=("random", "temporal"), default="random",
        help="random: 80/10/10 per user; temporal: leave-last-out by time (ml100k_temporal.py)",
    )  # fmt: skip
    ml100k_temporal.add_arguments(parser)
    args = parser.parse_args()
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds {args.seeds!r}: expected comma-separated integers like 0,1,2")
    if not seeds:
        parser.error("--seeds: expected at least one seed")
    try:
        ml100k_location()
    except ImportError as exc:
        # A skip, not a failure: `nox -s bench` goes on with the other benchmarks.
        print(f"skipped: {exc}", file=sys.stderr)
        if args.json:  # replace an earlier run's figures, which would look current
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps({"skipped": str(exc)}) + "\n", encoding="utf-8")
        return
    if args.protocol == "temporal":
        ml100k_temporal.main(args, seeds)
        return
    per_seed, seconds = common.run_seeds(
        seeds,
        lambda seed, runs: run_seed(seed, args, runs),
        lambda r: ", ".join(f"{m} {r['test'][m]['recall@10']:.4f}" for m in MODELS),
    )
    out: dict[str, Any] = {
        metric: {
            m: float(np.mean([per_seed[str(s)]["test"][m][metric] for s in seeds])) for m in MODELS
        }
        for metric in METRICS
    }
    out["seeds"] = seeds
    out["per_seed"] = {s: {m: r["test"][m] for m in MODELS} for s, r in per_seed.items()}
    out.update(common.details(per_seed, seconds))
    title = f"MovieLens-100K, test split, mean of seeds {seeds}"
    common.report(out, MODELS, METRICS, title, args.json)


if __name__ == "__main__":
    main()
