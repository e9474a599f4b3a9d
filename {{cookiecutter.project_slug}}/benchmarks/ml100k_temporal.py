"""MovieLens-100K under the temporal protocol: ``bench_ml100k.py --protocol temporal``.

Leave-last-out by time (``data.temporal``): each user's last item is test, the one before
validation; equal timestamps keep the log's row order. Full ranking over all items with the
user's history masked; HR@10 and NDCG@10 (one held-out item, so HR@10 = Recall@10).

Every choice is made on validation, never on test:

* popularity, item graph: no setting to choose; fitted on train + validation for test;
* EASE: ``l2`` chosen on validation HR@10 (fitted on train), then refitted on
  train + validation with that ``l2`` for test;
* two-tower: ``train`` on the temporal split (epochs early-stopped on validation); for test the
  user tower reads train + validation as its history;
* sasrec: ``train_sequence`` (epoch chosen on validation NDCG@10); for test the model reads
  each user's train + validation items, oldest first;
* ranked (``ml100k_common``: the retrieve -> rank chain of ``ranking/stage.py``): the ranker
  learns on a random fold of the temporal training pairs (its channels fitted on the rest of
  them) and its epochs are chosen on the validation item, with the chain's channels fitted on
  train; for test those channels are the ones above (refitted on / reading train +
  validation) and the ranker's weights stay as validation chose them.

Closed-form models are refitted on train + validation because refitting costs nothing there;
the trained models keep the weights validation chose and read the validation item as input,
as SASRec's paper does. Either way, every model sees the validation item when predicting test.
The split does not depend on the seed; the seed changes the trained models' initialisation
and batch order.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any

import ml100k_common as common  # this folder's: the chain, seeds and report of both protocols
import numpy as np

from {{ cookiecutter.package_name }}.channels import (
    ItemGraphChannel,
    PopularityChannel,
    TwoTowerChannel,
)
from {{ cookiecutter.package_name }}.channels.ease import (
    EaseChannel,
    tune_ease,
)
from {{ cookiecutter.package_name }}.channels.sasrec import sasrec_channel
from {{ cookiecutter.package_name }}.data import (
    Split,
    load_ml100k,
    make_split,
)
from {{ cookiecutter.package_name }}.evaluation import rank_metrics
from {{ cookiecutter.package_name }}.ranking import evaluate_chain
from {{ cookiecutter.package_name }}.training import (
    TrainConfig,
    load_trained,
    train,
    two_tower_embeddings,
)
from {{ cookiecutter.package_name }}.training.sequence import (
    SequenceConfig,
    load_sequence_model,
    split_sequences,
    train_sequence,
)

MODELS = ("popularity", "item_graph", "two_tower", "ease", "sasrec", "ranked")
METRICS = {"hr@10": "hit@10", "ndcg@10": "ndcg@10"}  # JSON key -> evaluation's name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The temporal protocol's own options (the random protocol ignores them)."""
    defaults = SequenceConfig()
    parser.add_argument("--sasrec-epochs", type=int, default=40, help="most SASRec epochs")
    parser.add_argument("--sasrec-patience", type=int, default=3, help="checks (every 2 epochs)")
    parser.add_argument("--sasrec-lr", type=float, default=defaults.lr, help="SASRec Adam lr")
    parser.add_argument("--sasrec-batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--sasrec-max-len", type=int, default=defaults.max_len)
    parser.add_argument("--sasrec-loss", default=defaults.loss, choices=("full", "sampled"))


def run_seed(
    seed: int, args: argparse.Namespace, runs: str
) -> tuple[dict[str, Any], dict[str, float]]:
    """Test HR@10/NDCG@10 of every model for one seed, and each model's fit seconds."""
    split = make_split(load_ml100k(), "temporal")
    n_users, n_items = split.n_users, split.n_items
    train_val = tuple(np.concatenate([a, b]) for a, b in zip(split.train, split.val, strict=True))
    test, seen = split.by_user("test"), split.by_user("train+val")
    seconds: dict[str, float] = {}
    channels: dict[str, Any] = {}

    t0 = time.perf_counter()
    channels["popularity"] = PopularityChannel(train_val[1], n_items, n_users)
    seconds["popularity"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    channels["item_graph"] = ItemGraphChannel(*train_val, n_users, n_items)
    seconds["item_graph"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    tuned, ease_val = tune_ease(split.train, split.by_user("val"), n_users, n_items)
    channels["ease"] = EaseChannel.fit(*train_val, n_users, n_items, tuned.l2)
    seconds["ease"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    tt_cfg = TrainConfig(
        data="ml-100k", split="temporal", epochs=args.epochs, seed=seed, progress=False,
        runs_dir=runs, device="cpu",
    )  # fmt: skip
    tt = train(tt_cfg)
    _, model, tt_split = load_trained(tt.run_dir)
    history_split = Split(tt_split.data, "temporal", train_val, tt_split.val, tt_split.test)
    channels["two_tower"] = TwoTowerChannel(*two_tower_embeddings(model, history_split))
    seconds["two_tower"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    factory = common.chain_factory(split.data, split, tuned.l2, tt_cfg, seed)
    tt_train = TwoTowerChannel(*two_tower_embeddings(model, tt_split))  # history: train only
    chain = common.fit_chain(split, factory, factory(*split.train, tt=tt_train), args, seed)
    # For test, the chain recalls from the channels every other model is measured with.
    chain = dataclasses.replace(chain, channels={m: channels[m] for m in chain.channels})
    seconds["ranked"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    cfg = SequenceConfig(
        data="ml-100k", split="temporal", seed=seed, device="cpu", runs_dir=runs,
        progress=False, epochs=args.sasrec_epochs, lr=args.sasrec_lr,
        batch_size=args.sasrec_batch_size, max_len=args.sasrec_max_len, loss=args.sasrec_loss,
        patience=args.sasrec_patience,
    )  # fmt: skip
    seq = train_sequence(cfg, split)
    _, sasrec = load_sequence_model(seq.run_dir)
    channels["sasrec"] = sasrec_channel(sasrec, split_sequences(split, ["train", "val"]))
    seconds["sasrec"] = time.perf_counter() - t0

    results = {
        name: rank_metrics(channels[name].score, test, seen, n_items, [10])
        for name in MODELS
        if name != "ranked"
    }
    results["ranked"] = evaluate_chain(chain, split, "test", [10])
    details = {
        "ease_l2": tuned.l2,
        "ease_val_hr@10": ease_val,
        "two_tower_best_epoch": tt.best_epoch,
        "sasrec_best_epoch": seq.best_epoch,
        "sasrec_epochs_run": seq.epochs_run,
        "sasrec_val": seq.val,
        "sasrec_samples_per_second": seq.samples_per_second,
        "ranker_best_epoch": chain.best_epoch,
        "ranker_val": chain.val,
    }
    return {"test": results, **details}, seconds


def summarise(
    per_seed: dict[str, Any], seconds: dict[str, list[float]], seeds: list[int]
) -> dict[str, Any]:
    """The JSON: ``{"hr@10": {model: mean}, "ndcg@10": {...}, ...}``."""
    out: dict[str, Any] = {
        key: {m: float(np.mean([per_seed[str(s)]["test"][m][name] for s in seeds])) for m in MODELS}
        for key, name in METRICS.items()
    }
    out["protocol"] = "temporal"
    out["seeds"] = seeds
    out["per_seed"] = {
        s: {m: {key: r["test"][m][name] for key, name in METRICS.items()} for m in MODELS}
        for s, r in per_seed.items()
    }
    out.update(common.details(per_seed, seconds))
    return out


def main(args: argparse.Namespace, seeds: list[int]) -> None:
    """Run every seed, print the table and the JSON, write ``--json``."""
    per_seed, seconds = common.run_seeds(
        seeds,
        lambda seed, runs: run_seed(seed, args, runs),
        lambda r: ", ".join(
            f"{m} hr {r['test'][m]['hit@10']:.4f} ndcg {r['test'][m]['ndcg@10']:.4f}"
            for m in MODELS
        ),
    )
    out = summarise(per_seed, seconds, seeds)
    title = f"MovieLens-100K, temporal protocol, test, mean of seeds {seeds}"
    common.report(out, MODELS, list(METRICS), title, args.json)
