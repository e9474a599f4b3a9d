"""Ranking at serving time, without torch: the exported ranker in onnxruntime, and the top-k.

A service holds an ``OnnxRanker`` (loaded once, when the service starts) and, per request,
builds the user's candidates with ``ranking.candidates.generate_candidates`` from the routed
channels, then calls ``rank_candidates``. This module imports numpy and onnxruntime only, so a
service process that uses it never loads torch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RANKER_ONNX = "ranker.onnx"
RANKER_META = "ranker.json"
INPUTS = ("user_ids", "user_features", "item_ids", "item_features", "dense")


class RankerFileError(RuntimeError):
    """An exported ranker folder is missing a file or does not match what the caller feeds it."""


@dataclass(frozen=True)
class Ranked:
    """The top-k of one user's candidates. ``reason`` says why fewer than k came back, or what
    filled the list, and is None when the ranker ranked k candidates."""

    items: np.ndarray  # (m,) int64 item indices, best first, m <= k
    scores: np.ndarray  # (m,) float32 ranker logits (NaN for fallback fill)
    reason: str | None = None


class OnnxRanker:
    """The exported ranker in onnxruntime: ``score(...)`` -> (n,) float32 logits."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        folder = Path(folder)
        meta_path, model_path = folder / RANKER_META, folder / RANKER_ONNX
        for path in (meta_path, model_path):
            if not path.is_file():
                raise RankerFileError(
                    f"{path}: missing; export the ranker first (ranking.export.export_ranker)"
                )
        self.meta = json.loads(meta_path.read_text("utf-8"))
        self.feature_names: tuple[str, ...] = tuple(self.meta["feature_names"])
        self.channels: tuple[str, ...] = tuple(self.meta["channels"])
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # one request per worker: threads would only contend
        self.session = ort.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )

    def score(
        self,
        user_ids: np.ndarray,
        user_features: np.ndarray,
        item_ids: np.ndarray,
        item_features: np.ndarray,
        dense: np.ndarray,
    ) -> np.ndarray:
        if dense.ndim != 2 or dense.shape[1] != len(self.feature_names):
            raise RankerFileError(
                f"ranker expects dense features of shape (n, {len(self.feature_names)}) "
                f"({', '.join(self.feature_names)}), got {dense.shape}"
            )
        feed = dict(
            zip(
                INPUTS,
                (
                    np.asarray(user_ids, np.int64),
                    np.asarray(user_features, np.int64),
                    np.asarray(item_ids, np.int64),
                    np.asarray(item_features, np.int64),
                    np.asarray(dense, np.float32),
                ),
                strict=True,
            )
        )
        return self.session.run(None, feed)[0].astype(np.float32)


def rank_candidates(
    score: object,
    user: int,
    user_features: np.ndarray,
    items: np.ndarray,
    item_features: np.ndarray,
    dense: np.ndarray,
    k: int,
    fallback: np.ndarray | Callable[[], np.ndarray] | None = None,
) -> Ranked:
    """Order one user's candidates by ``score`` (an ``OnnxRanker.score``-like callable) -> top k.

    ``user_features`` is the user's (f_u,) row, ``item_features`` the (n_items, f_i) table,
    ``items`` (m,) candidate indices and ``dense`` (m, d) their features. Bad candidate sets
    degrade instead of failing: with no candidates, or fewer than k, the list is filled from
    ``fallback`` (e.g. the popularity order, seen items already removed; or a function that
    returns it, called only then) and ``reason`` says so; without a fallback the shorter list
    comes back with the reason.
    """
    if k < 1:
        raise ValueError(f"k={k}: expected >= 1")
    items = np.asarray(items, dtype=np.int64).reshape(-1)
    reason = None
    if len(items):
        m = len(items)
        logits = score(  # type: ignore[operator]
            np.full(m, user, dtype=np.int64),
            np.broadcast_to(np.asarray(user_features, np.int64), (m, len(user_features))),
            items,
            np.asarray(item_features, np.int64)[items],
            np.asarray(dense, np.float32).reshape(m, -1),
        )
        order = np.argsort(-logits, kind="stable")[:k]
        top, top_scores = items[order], logits[order].astype(np.float32)
        if m < k:
            reason = f"only {m} candidates for k={k}"
    else:
        top, top_scores = np.zeros(0, np.int64), np.zeros(0, np.float32)
        reason = f"no candidates for k={k}"
    if reason is not None and fallback is not None:
        extra = np.asarray(fallback() if callable(fallback) else fallback, dtype=np.int64)
        extra = extra[~np.isin(extra, top)][: k - len(top)]
        if len(extra):
            reason += f"; {len(extra)} filled from the fallback list"
        top = np.concatenate([top, extra])
        top_scores = np.concatenate([top_scores, np.full(len(extra), np.nan, np.float32)])
    return Ranked(top, top_scores, reason)
