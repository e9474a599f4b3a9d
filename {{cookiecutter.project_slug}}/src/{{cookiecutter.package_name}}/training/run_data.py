"""The data of a run, recorded in its folder so the run means the same thing from anywhere.

``train`` writes two files next to the weights:

* ``data.json`` - where the data came from (``synthetic`` with its sizes, ``ml-100k``, or a
  file: its path relative to the run folder and its absolute path), the split kind, sizes, and
  the sha256 of the loaded log (``Interactions.content_hash``);
* ``split.npz`` - the (user, item) index pairs of train, validation and test.

``evaluate``, ``index``, ``export`` and ``train --resume`` load the data through the record,
not through the config's (possibly relative) ``data`` path, so they work from any working
directory. The log must still hash the same: a rewritten data file refuses with
``RunDataChanged``, naming what changed, instead of evaluating the model on other data.
The split comes from ``split.npz``, so it is the one the run trained on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..data import Interactions, Split, generate_synthetic, load_dataset
from .config import DataSettings

DATA_RECORD = "data.json"
SPLIT_FILE = "split.npz"
PARTS = ("train", "val", "test")


class RunDataChanged(ValueError):
    """The data a run was trained on is gone or differs from what the run recorded."""


def load_data(cfg: DataSettings) -> Interactions:
    """The interaction log ``cfg.data`` names: the synthetic sample of its sizes, or loaded."""
    if cfg.data == "synthetic":
        return generate_synthetic(
            n_users=cfg.n_users,
            n_items=cfg.n_items,
            events_per_user=cfg.events_per_user,
            seed=cfg.seed,
        )
    return load_dataset(cfg.data, seed=cfg.seed)


def _is_file_source(source: str) -> bool:
    return source not in ("synthetic", "ml-100k", "ml100k")


def _describe(record: dict[str, Any]) -> str:
    return (
        f"{record['n_users']} users, {record['n_items']} items, {record['n_events']} events, "
        f"sha256 {record['sha256'][:12]}"
    )


def record_split(run_dir: Path, cfg: DataSettings, split: Split) -> None:
    """Write ``data.json`` and ``split.npz`` for a new run (rank 0, before training)."""
    data = split.data
    record: dict[str, Any] = {
        "source": cfg.data,
        "file": None,
        "split": split.kind,
        "sha256": data.content_hash(),
        "n_users": data.n_users,
        "n_items": data.n_items,
        "n_events": len(data),
        "pairs": {part: len(getattr(split, part)[0]) for part in PARTS},
    }
    if _is_file_source(cfg.data):
        path = Path(cfg.data).resolve()
        try:
            relative: str | None = os.path.relpath(path, run_dir.resolve())
        except ValueError:  # another drive (Windows): no relative path exists
            relative = None
        record["file"] = {"relative_to_run": relative, "absolute": str(path)}
    arrays = {
        f"{part}_{column}": getattr(split, part)[k] for part in PARTS for k, column in enumerate(("users", "items"))
    }  # fmt: skip
    np.savez_compressed(run_dir / SPLIT_FILE, **arrays)
    (run_dir / DATA_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def _read_record(run_dir: Path) -> dict[str, Any]:
    path = run_dir / DATA_RECORD
    if not path.is_file() or not (run_dir / SPLIT_FILE).is_file():
        raise FileNotFoundError(
            f"{run_dir}: no {DATA_RECORD} and {SPLIT_FILE} (the data and split every run records); "
            "this folder was not written by `train`, or by an older version: train it again"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def _find_file(run_dir: Path, record: dict[str, Any]) -> Path:
    """The run's data file: beside the run as it was (the project moved together), or where it was."""
    where = record["file"]
    candidates = [Path(where["absolute"])]
    if where["relative_to_run"]:
        candidates.insert(0, (run_dir / where["relative_to_run"]).resolve())
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = " or ".join(str(c) for c in dict.fromkeys(candidates))
    raise RunDataChanged(
        f"{run_dir}: trained on {record['source']} ({_describe(record)}), which is gone "
        f"(looked for {looked}); restore that file or train a new run"
    )


def load_split(run_dir: str | os.PathLike[str], cfg: DataSettings) -> Split:
    """The split run ``run_dir`` trained on, on its data reloaded and checked against its hash."""
    run_dir = Path(run_dir)
    record = _read_record(run_dir)
    if _is_file_source(record["source"]):
        location = _find_file(run_dir, record)
        data = load_dataset(str(location), seed=cfg.seed)
    else:
        location = record["source"]
        data = load_data(cfg)
    now = {
        "sha256": data.content_hash(),
        "n_users": data.n_users,
        "n_items": data.n_items,
        "n_events": len(data),
    }
    if now["sha256"] != record["sha256"]:
        raise RunDataChanged(
            f"{run_dir}: trained on {location} ({_describe(record)}), which now holds other "
            f"data ({_describe(now)}); restore that data or train a new run on it"
        )
    with np.load(run_dir / SPLIT_FILE) as arrays:
        parts = [(arrays[f"{part}_users"], arrays[f"{part}_items"]) for part in PARTS]
    return Split(data, record["split"], *parts)
