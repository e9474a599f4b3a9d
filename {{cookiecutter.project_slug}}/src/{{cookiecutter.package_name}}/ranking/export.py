"""Export the ranker to ONNX (plus ``ranker.json``) and prove the file scores like the model.

``export_ranker`` writes ``ranker.onnx`` with the ``torch.export``-based exporter (inputs
``user_ids (n,)``, ``user_features (n, f_u)``, ``item_ids (n,)``, ``item_features (n, f_i)``,
``dense (n, d)``; output ``logits (n,)``; n dynamic) and ``ranker.json`` (the dense feature
names in order, the channels they come from, the candidate count), then loads the file back in
onnxruntime and compares it with the eager model at n = 1, 3 and 200 (one request's
candidates) on real rows. A difference past ``tolerance`` raises ``ParityError``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..artifacts import make_readable
from ..export import ParityError, _quiet
from ..models.ranker import Ranker
from .inference import INPUTS, RANKER_META, RANKER_ONNX, OnnxRanker

# Logits are not normalised like tower outputs: compare relative to their scale.
TOLERANCE = 1e-4


def _example(
    model: Ranker, user_features: np.ndarray, item_features: np.ndarray, n: int, seed: int = 0
) -> list[np.ndarray]:
    """n real (user, item) rows with random dense features around the training mean."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, model.n_users, n)
    items = rng.integers(0, model.n_items, n)
    mean = model.dense_mean.numpy()
    std = model.dense_std.numpy()
    dense = (mean + std * rng.normal(size=(n, model.n_dense))).astype(np.float32)
    return [
        users.astype(np.int64),
        np.asarray(user_features, np.int64)[users],
        items.astype(np.int64),
        np.asarray(item_features, np.int64)[items],
        dense,
    ]


def check_ranker_parity(
    model: Ranker,
    folder: str | os.PathLike[str],
    user_features: np.ndarray,
    item_features: np.ndarray,
    sizes: Sequence[int] = (1, 3, 200),
) -> dict[int, float]:
    """Max |onnx - eager| / (1 + max |eager|) per batch size, the file loaded from disk."""
    model = model.cpu().eval()
    runner = OnnxRanker(folder)
    diffs = {}
    for n in sizes:
        arrays = _example(model, user_features, item_features, n, seed=n)
        with torch.no_grad():
            expected = model(*(torch.as_tensor(a) for a in arrays)).numpy()
        got = runner.score(*arrays)
        if got.shape != expected.shape:
            raise ParityError(f"{folder}: n={n} gave shape {got.shape}, eager {expected.shape}")
        diffs[n] = float(np.abs(got - expected).max() / (1.0 + np.abs(expected).max()))
    return diffs


def export_ranker(
    model: Ranker,
    out_dir: str | os.PathLike[str],
    feature_names: Sequence[str],
    channels: Sequence[str],
    user_features: np.ndarray,
    item_features: np.ndarray,
    n_candidates: int,
    tolerance: float = TOLERANCE,
) -> dict[str, Any]:
    """Write ``ranker.onnx`` + ``ranker.json`` into ``out_dir``; return the parity report."""
    if len(feature_names) != model.n_dense:
        raise ValueError(
            f"export_ranker: {len(feature_names)} feature names for a model of "
            f"{model.n_dense} dense features"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    example = tuple(torch.as_tensor(a) for a in _example(model, user_features, item_features, 8))
    rows = torch.export.Dim("rows", min=1)
    with _quiet():
        torch.onnx.export(
            model,
            example,
            str(out / RANKER_ONNX),
            input_names=list(INPUTS),
            output_names=["logits"],
            dynamic_shapes=tuple({0: rows} for _ in example),
            dynamo=True,
            verbose=False,
            external_data=False,
        )
    meta = {
        "feature_names": list(feature_names),
        "channels": list(channels),
        "n_candidates": int(n_candidates),
        "n_users": model.n_users,
        "n_items": model.n_items,
        "inputs": list(INPUTS),
    }
    (out / RANKER_META).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    parity = check_ranker_parity(model, out, user_features, item_features)
    report = {
        "files": [str(out / RANKER_ONNX), str(out / RANKER_META)],
        "tolerance": tolerance,
        "parity": {str(n): d for n, d in parity.items()},
        "max_abs_diff": max(parity.values()),
    }
    make_readable(out / RANKER_ONNX, out / RANKER_META)
    if not max(parity.values()) <= tolerance:  # NaN fails too
        raise ParityError(
            f"{out / RANKER_ONNX}: differs from the PyTorch ranker by "
            f"{max(parity.values()):.3g} (relative) > {tolerance}; re-export from this model"
        )
    return report
