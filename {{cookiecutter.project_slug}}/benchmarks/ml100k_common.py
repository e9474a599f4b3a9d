"""What both protocols of ``bench_ml100k.py`` share: the retrieve -> rank chain, the seeds, the report.

The chain is the one ``ranking/stage.py`` fits for a run: candidates from EASE, the item graph,
popularity and the two-tower model, ordered by the ranker. The ranker learns on random folds of
the training pairs, each with its channels fitted on the fold (a second two-tower run,
early-stopped on 4 % of the fold's own pairs), and its epochs are chosen on validation.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from {{ cookiecutter.package_name }}.channels import (
    ItemGraphChannel,
    PopularityChannel,
    TwoTowerChannel,
)
from {{ cookiecutter.package_name }}.channels.ease import EaseChannel
from {{ cookiecutter.package_name }}.data import Interactions, Split
from {{ cookiecutter.package_name }}.evaluation import format_table
from {{ cookiecutter.package_name }}.ranking import RankerConfig, train_ranker
from {{ cookiecutter.package_name }}.ranking.data import pairs_split
from {{ cookiecutter.package_name }}.training import (
    TrainConfig,
    load_trained,
    train,
    two_tower_embeddings,
)

Factory = Callable[..., dict[str, object]]
SeedRun = Callable[[int, str], tuple[dict[str, Any], dict[str, float]]]


def two_tower(cfg: TrainConfig, fit: Split | None = None) -> tuple[TwoTowerChannel, int]:
    """Train the two-tower model (on ``fit``, default the split ``cfg`` names); its channel,
    users embedded from their training items, and the epoch validation chose."""
    metrics = train(cfg, split=fit)
    _, model, tt_split = load_trained(metrics.run_dir)
    return TwoTowerChannel(*two_tower_embeddings(model, tt_split)), metrics.best_epoch


def chain_factory(
    data: Interactions, split: Split, ease_l2: float, tt_cfg: TrainConfig, seed: int
) -> Factory:
    """``factory(users, items, tt=None)``: the chain's channels fitted on those training pairs.

    EASE's ``ease_l2`` (chosen on ``split``'s validation) is scaled with the pairs: the same
    regularisation relative to X^T X on a fold. Without ``tt`` a two-tower model is trained
    on the pairs.
    """
    n_users, n_items = split.n_users, split.n_items

    def factory(
        users: np.ndarray, items: np.ndarray, tt: TwoTowerChannel | None = None
    ) -> dict[str, object]:
        l2 = ease_l2 * len(users) / len(split.train[0])
        if tt is None:
            tt = two_tower(tt_cfg, pairs_split(data, users, items, seed, held_out=0.04))[0]
        return {
            "ease": EaseChannel.fit(users, items, n_users, n_items, l2),
            "item_graph": ItemGraphChannel(users, items, n_users, n_items),
            "popularity": PopularityChannel(items, n_items, n_users),
            "two_tower": tt,
        }

    return factory


def fit_chain(
    split: Split, factory: Factory, full: Mapping[str, object], args: argparse.Namespace, seed: int
) -> Any:
    """The ranker trained on ``split``'s training part (``full``: its channels fitted on all
    of it), epochs chosen on validation: a ``RankerResult``."""
    cfg = RankerConfig(
        seed=seed, epochs=args.ranker_epochs, n_candidates=args.candidates,
        hold_out=args.hold_out, folds=args.folds,
    )  # fmt: skip
    return train_ranker(split, factory, cfg, full_channels=full)


def run_seeds(
    seeds: Sequence[int], run_seed: SeedRun, line: Callable[[dict[str, Any]], str]
) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """``run_seed(seed, runs_dir)`` for each seed (run folders in one temporary folder): the
    results by seed and each stage's seconds; ``line(result)`` is printed per seed."""
    per_seed: dict[str, Any] = {}
    seconds: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as runs:
        for seed in seeds:
            result, took = run_seed(seed, runs)
            per_seed[str(seed)] = result
            for stage, s in took.items():
                seconds.setdefault(stage, []).append(s)
            print(f"seed {seed}: {line(result)}", file=sys.stderr, flush=True)
    return per_seed, seconds


def details(per_seed: Mapping[str, Any], seconds: Mapping[str, list[float]]) -> dict[str, Any]:
    """The JSON's ``details`` (per seed, all but test metrics) and mean ``fit_seconds``."""
    return {
        "details": {s: {k: v for k, v in r.items() if k != "test"} for s, r in per_seed.items()},
        "fit_seconds": {stage: float(np.mean(v)) for stage, v in seconds.items()},
    }


def report(
    out: dict[str, Any], models: Sequence[str], metrics: Sequence[str], title: str, path: str | None
) -> None:
    """Print the table of means and the JSON's headline, and write ``out`` to ``path``."""
    from rich.console import Console

    means = {m: {metric: out[metric][m] for metric in metrics} for m in models}
    Console(width=120).print(format_table(means, title=title, columns=list(metrics)))
    print(json.dumps({k: out[k] for k in (*metrics, "fit_seconds")}, indent=2))
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
