"""The steps after training, as functions the CLI (and notebooks) call: index, evaluate, export.

Each step reads a finished run folder (``runs/<run-id>/``) and writes its outputs elsewhere,
so steps can be re-run independently.
"""

from __future__ import annotations

import json
import os
import tempfile
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
from .training.run_data import DATA_RECORD
from .training.sequence import MODEL as SEQUENCE_MODEL


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


def _data_hash(run_dir: Path) -> str | None:
    """The sha256 of the log a run trained on (its ``data.json``), or None without a record."""
    path = Path(run_dir) / DATA_RECORD
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8")).get("sha256")


def find_sequence_run(run_dir: Path, sequence_run: str | None = None) -> tuple[Path | None, str]:
    """The ``train-sequence`` run whose SASRec ``index`` serves beside ``run_dir``'s channels.

    ``sequence_run`` names it (it must have trained on the same data), or is ``"none"`` (no
    sasrec channel). By default: the newest folder beside ``run_dir`` (the same runs folder)
    holding ``sasrec.pt`` whose ``data.json`` records the same data (sha256 of the log), so
    its item indices are the artifacts' item indices. Returns the folder (None: serve
    without sasrec) and a sentence for the index report saying which, or why none.
    """
    want = _data_hash(run_dir)
    if sequence_run == "none":
        return None, "not served (--sequence-run none)"
    if sequence_run is not None:
        chosen = Path(sequence_run)
        if not (chosen / SEQUENCE_MODEL).is_file():
            raise FileNotFoundError(
                f"{chosen}: no {SEQUENCE_MODEL}; point --sequence-run at a `train-sequence` run "
                "folder, or pass --sequence-run none"
            )
        if _data_hash(chosen) != want:
            raise ValueError(
                f"{chosen}: trained on other data than {run_dir} (data.json sha256 differs), so "
                "its item indices are not the artifacts'; train-sequence on the same --data, "
                "or pass --sequence-run none"
            )
        return chosen, f"{chosen}"
    runs = sorted(
        (p.parent for p in Path(run_dir).parent.glob(f"*/{SEQUENCE_MODEL}")),
        key=lambda p: (p / SEQUENCE_MODEL).stat().st_mtime,
        reverse=True,
    )
    for candidate in runs:
        if want is not None and _data_hash(candidate) == want:
            return candidate, f"{candidate} (newest train-sequence run on the same data)"
    where = Path(run_dir).parent
    if runs:
        return None, (
            f"not served: the train-sequence runs in {where} ({', '.join(p.name for p in runs)}) "
            "trained on other data; train-sequence on the same --data, then index again"
        )
    return None, f"not served: no train-sequence run in {where}"


def sasrec_arrays(sequence_run: Path, split: Split) -> dict[str, np.ndarray]:
    """The sasrec channel's artifacts arrays: user states from each user's training items
    (the history the artifacts hold, oldest first), item vectors, the padded histories and
    the sequence encoder as ONNX bytes (parity checked against the model)."""
    from .channels.sasrec import sasrec_channel
    from .sequence_export import export_sequence_encoder
    from .training.sequence import load_sequence_model, split_sequences

    _, model = load_sequence_model(sequence_run)
    if model.n_items != split.n_items:
        raise ValueError(
            f"{sequence_run}: SASRec scores {model.n_items} items, the artifacts hold "
            f"{split.n_items}; train-sequence on the same data"
        )
    channel = sasrec_channel(model, split_sequences(split, ["train"]))
    history = channel.history
    assert history is not None
    real = history[(history != split.n_items).any(1)]
    examples = real if len(real) >= 2 else history
    with tempfile.TemporaryDirectory() as tmp:
        export_sequence_encoder(model, examples[:256], tmp, formats="onnx")
        onnx = (Path(tmp) / "sequence_tower.onnx").read_bytes()
    return channel.channel_arrays(onnx)


def run_index(
    run_dir: Path,
    out_dir: Path,
    kind: str = "auto",
    device: str = "cpu",
    sequence_run: str | None = None,
) -> dict[str, Any]:
    """Embed everything, build the faiss index, fit the other channels, write artifacts.

    Every known user is embedded here, so the service answers from the folder alone (no
    model, no torch); the exported towers (``export``) embed users that change later. The
    sasrec channel is added from the run ``find_sequence_run`` picks (``sequence_run``).
    """
    cfg, model, split = load_trained(run_dir)
    sequence_dir, sequence_note = find_sequence_run(run_dir, sequence_run)
    channel_arrays = sasrec_arrays(sequence_dir, split) if sequence_dir is not None else None
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
        channel_arrays=channel_arrays,
    )
    info = {
        "artifacts": str(out_dir),
        "index_kind": kind if kind != "auto" else choose_kind(split.n_items),
        "index_type": type(index).__name__,
        "n_items": split.n_items,
        "dim": int(item_emb.shape[1]),
        "build_seconds": build_s,
        f"ann_recall@{k}_vs_exact": recall,
        "sasrec": sequence_note,
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
