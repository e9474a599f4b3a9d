"""The ranking stage of the service: the exported ranker over the routed channels' candidates.

``python -m {{ cookiecutter.package_name }} rank`` writes, into ``<artifacts>/ranker/`` by default::

    ranker.onnx           the DCN-v2 ranker (onnxruntime: no torch in the service)
    ranker.json           its dense feature names, the channels they come from, the top-N per
                          channel, the item feature names and the sha256 of the id lists
    user_features.npy     (n_users, f_u) int64  the ranker's user side features
    item_features.npy     (n_items, f_i) int64  the ranker's item side features
    ease.weights.npy      (n_items, n_items)    EASE, a channel the artifacts folder lacks

Per request, ``RankingStage.rank`` builds the user's candidates with the same function the
offline chain uses (``ranking.generate_candidates``: every ranker channel's top-N, seen items
excluded, with each channel's score, rank and hit as features), keeps those retrieved by the
routed channels, and orders them with ``ranking.rank_candidates``. So for a route that recalls
from all the ranker's channels the answer is exactly the offline chain's top-k; a route that
recalls from fewer channels gets the same scores on a subset.

A folder without a ranker is served without the stage (each ranked route says so in its
reason); a ranker that does not belong to the artifacts (other users or items) stops the
startup with the file named, like any other mismatched artifact.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..artifacts import ArtifactError, Artifacts
from ..channels import ScoringChannel
from ..channels.ease import WEIGHTS as EASE_WEIGHTS
from ..channels.ease import EaseChannel
from ..ranking.candidates import generate_candidates
from ..ranking.inference import RANKER_META, RANKER_ONNX, OnnxRanker, rank_candidates

RANKER_FOLDER = "ranker"
"""Where the service looks for the ranker, relative to the artifacts folder (``rank --out``)."""


@dataclass(frozen=True)
class RankedList:
    """One request's ranked answer: item indices best first, the ranker's logits (NaN where the
    list was filled from the fallback), each item's recall scores, and what happened."""

    items: np.ndarray
    scores: np.ndarray
    recall_scores: list[dict[str, float]]
    n_candidates: int
    notes: list[str] = field(default_factory=list)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class RankingStage:
    """The ranker and the channels whose features it reads, loaded once at startup."""

    def __init__(
        self, folder: str | Path, artifacts: Artifacts, channels: Mapping[str, ScoringChannel]
    ) -> None:
        folder = Path(folder)
        self.folder = folder
        self.ranker = OnnxRanker(folder)  # RankerFileError names a missing file
        meta = self.ranker.meta
        for name, key in (
            ("user_ids.json", "user_ids_sha256"),
            ("item_ids.json", "item_ids_sha256"),
        ):
            want = meta.get(key)
            if want is None:
                raise ArtifactError(
                    f"{folder / RANKER_META}: no {key}; re-run `rank` with this version of "
                    "the package so the service can check the ranker belongs to the artifacts."
                )
            if want != _sha256(artifacts.directory / name):
                raise ArtifactError(
                    f"{folder / RANKER_META}: ranked {name[:-9]}s differ from "
                    f"{artifacts.directory / name}; run `rank` on the run the artifacts were "
                    "indexed from (after `index`), or point the service at its ranker."
                )
        self.user_features = self._array(folder / "user_features.npy", artifacts.n_users)
        self.item_features = self._array(folder / "item_features.npy", artifacts.n_items)
        self.item_feature_names: list[str] | None = meta.get("item_feature_names") or None
        self.n_per_channel = int(meta["n_candidates"])
        self.channels: dict[str, object] = {}
        for name in self.ranker.channels:
            if name in channels:
                self.channels[name] = channels[name]
            elif name == EaseChannel.name:
                weights = self._array(folder / EASE_WEIGHTS, artifacts.n_items)
                self.channels[name] = EaseChannel(
                    weights, artifacts.seen_indptr, artifacts.seen_indices
                )
            else:
                raise ArtifactError(
                    f"{folder / RANKER_META}: the ranker reads channel {name!r}, which "
                    f"{artifacts.directory} does not hold (it has {', '.join(channels)})."
                )

    @staticmethod
    def _array(path: Path, rows: int) -> np.ndarray:
        if not path.is_file():
            raise ArtifactError(f"{path}: missing; re-run `rank` to write the ranker's inputs.")
        array = np.load(path, allow_pickle=False)
        if array.shape[0] != rows:
            raise ArtifactError(
                f"{path}: {array.shape[0]} rows, expected {rows} (one per id in the artifacts)."
            )
        return array

    def rank(
        self,
        user: int,
        exclude: np.ndarray,
        recall: Sequence[str],
        k: int,
        fallback: np.ndarray | Callable[[], np.ndarray],
    ) -> RankedList:
        """The top ``k`` of the user's candidates from the ``recall`` channels, ranked.

        ``fallback`` (item indices, e.g. the popularity order without excluded items, or a
        function that returns them, called only when needed) fills a list that has fewer than
        ``k`` candidates; ``notes`` says so.
        """
        cand = generate_candidates(
            self.channels,
            np.array([user], dtype=np.int64),
            {user: exclude},  # type: ignore[arg-type]  # indexed by user, like Split.by_user
            self.n_per_channel,
            item_features=self.item_features,
            item_feature_names=self.item_feature_names,
        )
        names = list(cand.feature_names)
        mask = cand.mask[0]
        items, dense = cand.items[0][mask], cand.features[0][mask]  # (m,), (m, d)
        notes: list[str] = []
        used = [c for c in recall if c in self.channels]
        ignored = [c for c in recall if c not in self.channels]
        if ignored:
            notes.append(f"the ranker has no channel {', '.join(ignored)}: left out of recall")
        hits = [names.index(f"{c}:hit") for c in used]
        keep = dense[:, hits].any(1) if hits else np.zeros(len(items), dtype=bool)
        items, dense = items[keep], dense[keep]
        ranked = rank_candidates(
            self.ranker.score,
            user,
            self.user_features[user],
            items,
            self.item_features,
            dense,
            k,
            fallback=fallback,
        )
        if ranked.reason is not None:
            notes.append(f"ranking: {ranked.reason}")
        # Each ranked item's row among the candidates (-1: filled from the fallback).
        row_of = np.full(len(self.item_features), -1, dtype=np.int64)
        row_of[items] = np.arange(len(items))
        rows = row_of[ranked.items]
        z = [names.index(f"{c}:score") for c in used]
        picked = dense[np.maximum(rows, 0)] if len(items) else np.zeros((len(rows), len(names)))
        z_scores = np.round(picked[:, z], 6).tolist()  # (k, len(used))
        retrieved = (picked[:, hits] > 0).tolist()
        recall_scores = [
            {} if r < 0 else {c: v for c, v, hit in zip(used, values, got, strict=True) if hit}
            for r, values, got in zip(rows.tolist(), z_scores, retrieved, strict=True)
        ]
        return RankedList(ranked.items, ranked.scores, recall_scores, len(items), notes)


def load_ranking_stage(
    folder: str | Path | None, artifacts: Artifacts, channels: Mapping[str, ScoringChannel]
) -> tuple[RankingStage | None, str]:
    """The ranking stage from ``folder`` (default ``<artifacts>/ranker``), or None and why not.

    A folder without ``ranker.onnx`` means "no ranking" (the reason says how to add it); a
    ranker that is present but does not fit the artifacts raises ``ArtifactError``.
    """
    where = Path(folder) if folder is not None else artifacts.directory / RANKER_FOLDER
    shown = public_name(where, artifacts.directory)
    if not (where / RANKER_ONNX).is_file():
        return None, f"no ranker in {shown}/ (run the `rank` stage after `index`)"
    return RankingStage(where, artifacts, channels), f"ranker {shown}/{RANKER_ONNX}"


def public_name(path: Path, artifacts_dir: Path) -> str:
    """``path`` as an answer may show it: relative to the artifacts folder (``ranker``), else by
    its own name only. Answers and /readyz go to clients, and the server's filesystem layout is
    none of theirs; the startup errors, which go to the operator, keep the full paths."""
    try:
        return path.resolve().relative_to(artifacts_dir.resolve()).as_posix()
    except ValueError:
        return path.resolve().name


__all__ = ["RANKER_FOLDER", "RankedList", "RankingStage", "load_ranking_stage", "public_name"]
