"""The steps after training, as functions the CLI (and notebooks) call: index, evaluate, export.

Each step reads a finished run folder (``runs/<run-id>/``) and writes its outputs elsewhere,
so steps can be re-run independently.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import DIR_MODE, make_readable, save_artifacts
from .channels import ItemGraphChannel, PopularityChannel, TwoTowerChannel
from .data import Split
from .evaluation import check_k, evaluate_channels, save_results
from .retrieval import ann_recall, build_index, choose_kind
from .training import load_trained, two_tower_embeddings
from .training.loop import MODEL, user_histories


def latest_run(runs_dir: str | os.PathLike[str]) -> Path:
    """The most recent run folder holding a trained model."""
    root = Path(runs_dir)
    runs = sorted(p.parent for p in root.glob(f"*/{MODEL}")) if root.is_dir() else []
    if not runs:
        raise FileNotFoundError(
            f"{root}: no finished run (no */{MODEL}); run `train` first or pass --run"
        )
    return max(runs, key=lambda p: (p / MODEL).stat().st_mtime)


def build_channels(
    split: Split, user_emb: np.ndarray, item_emb: np.ndarray, index: Any = None
) -> dict[str, Any]:
    """The three recall channels, fitted on the training part of ``split``."""
    users, items = split.train
    return {
        "popularity": PopularityChannel(items, split.n_items, split.n_users),
        "item_graph": ItemGraphChannel(users, items, split.n_users, split.n_items),
        "two_tower": TwoTowerChannel(user_emb, item_emb, index),
    }


def run_index(
    run_dir: Path, out_dir: Path, kind: str = "auto", device: str = "cpu"
) -> dict[str, Any]:
    """Embed everything, build the faiss index, fit the other channels, write artifacts.

    Every known user is embedded here, so the service answers from the folder alone (no
    model, no torch); the exported towers (``export``) embed users that change later.
    """
    cfg, model, split = load_trained(run_dir)
    user_emb, item_emb = two_tower_embeddings(model, split)
    t0 = time.perf_counter()
    index = build_index(item_emb, kind=kind, device=device, calibration_queries=user_emb[:1000])
    build_s = time.perf_counter() - t0
    k = min(10, split.n_items)
    recall = ann_recall(index, item_emb, user_emb[: min(len(user_emb), 2000)], k)
    channels = build_channels(split, user_emb, item_emb)
    graph: ItemGraphChannel = channels["item_graph"]
    save_artifacts(
        out_dir,
        user_ids=split.data.user_ids,
        item_ids=split.data.item_ids,
        user_embeddings=user_emb,
        item_embeddings=item_emb,
        index=index,
        popularity_scores=channels["popularity"].counts,
        neighbours=graph.neighbours,
        neighbour_weights=graph.weights,
        seen=split.by_user("train"),
        config={**cfg.to_dict(), "run_dir": str(run_dir)},
        user_features=split.data.user_features,
        user_history=user_histories(split, model.history_len).numpy(),
    )
    info = {
        "artifacts": str(out_dir),
        "index_kind": kind if kind != "auto" else choose_kind(split.n_items),
        "index_type": type(index).__name__,
        "n_items": split.n_items,
        "dim": int(item_emb.shape[1]),
        "build_seconds": build_s,
        f"ann_recall@{k}_vs_exact": recall,
    }
    report = Path(out_dir) / "index_report.json"
    report.write_text(json.dumps(info, indent=2), encoding="utf-8")
    make_readable(report)  # like the rest of the artifacts folder (artifacts.py)
    return info


def run_evaluate(
    run_dir: Path, out_dir: Path | None = None, ks: list[int] | None = None
) -> dict[str, dict[str, float]]:
    """Test-set metrics of every channel (full ranking, train+val items excluded)."""
    _, model, split = load_trained(run_dir)
    ks = check_k(ks or [5, 10, 20, 50], split.n_items)
    user_emb, item_emb = two_tower_embeddings(model, split)
    results = evaluate_channels(
        build_channels(split, user_emb, item_emb),
        split.by_user("test"),
        split.by_user("train+val"),
        split.n_items,
        ks,
    )
    save_results(results, out_dir or run_dir)
    return results


def run_export(
    run_dir: Path, out_dir: Path, formats: str | Sequence[str] = ("pt2", "onnx")
) -> dict[str, Any]:
    """The towers as ``formats`` (export.FORMATS), each parity checked; the report as a dict."""
    from .export import export_towers

    _, model, split = load_trained(run_dir)
    history = user_histories(split, model.history_len).numpy()
    new_folders = [p for p in (Path(out_dir), *Path(out_dir).parents) if not p.exists()]
    report = export_towers(
        model, split.data.user_features, history, split.data.item_features, out_dir, formats
    )
    info = report.to_dict()
    (Path(out_dir) / "export_report.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    # Readable by the serving image's user like the artifacts (artifacts.py): the files this
    # step wrote and the folders it made; existing folders keep the modes their owner chose.
    make_readable(*report.files.values(), Path(out_dir) / "export_report.json")
    for folder in new_folders:
        folder.chmod(DIR_MODE)
    return info
