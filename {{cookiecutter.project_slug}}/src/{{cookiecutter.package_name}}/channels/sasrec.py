"""SASRec channel: score = state after the user's recent items . item vector.

Known users are answered from states computed once, at ``index`` time, from their stored
history (the last ``max_len`` items, oldest first), so answering them needs no model: a lookup
and a product, like the two-tower channel. A request that brings its own recent items
(``score_sequences``) runs the exported sequence encoder (ONNX, through onnxruntime), which
the artifacts folder holds as bytes: the service process still never imports torch.

Artifacts (``channel_arrays``): ``sasrec.user_states.npy`` (n_users, dim) float32,
``sasrec.item_vectors.npy`` (n_items, dim) float32, ``sasrec.history.npy`` (n_users, L) int64
left-padded with n_items, and ``sasrec.encoder.npy``: the ONNX file's bytes (uint8).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import ScoringChannel, top_k

if TYPE_CHECKING:
    from ..artifacts import Artifacts

STATES = "sasrec.user_states.npy"
ITEMS = "sasrec.item_vectors.npy"
HISTORY = "sasrec.history.npy"
ENCODER = "sasrec.encoder.npy"

Encoder = Callable[[np.ndarray], np.ndarray]  # (b, L) int64 -> (b, dim) float32


def onnx_encoder(onnx_bytes: bytes) -> Encoder:
    """The exported sequence encoder as a function, run by onnxruntime (no torch)."""
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda seqs: session.run(None, {name: np.asarray(seqs, dtype=np.int64)})[0]


class SASRecChannel(ScoringChannel):
    """Exact scores from precomputed user states; request-time sequences through ``encoder``."""

    name = "sasrec"
    artifact_files = (STATES, ITEMS, HISTORY)  # the encoder is optional: stored users only

    def __init__(
        self,
        user_states: np.ndarray,
        item_vectors: np.ndarray,
        history: np.ndarray | None = None,
        encoder: Encoder | None = None,
    ) -> None:
        if user_states.ndim != 2 or item_vectors.ndim != 2:
            raise ValueError("sasrec: user_states and item_vectors must be 2-d (rows, dim)")
        if user_states.shape[1] != item_vectors.shape[1]:
            raise ValueError(
                f"sasrec: state dim {user_states.shape[1]} != item dim {item_vectors.shape[1]}"
            )
        self.user_states = np.ascontiguousarray(user_states, dtype=np.float32)
        self.item_vectors = np.ascontiguousarray(item_vectors, dtype=np.float32)
        self.n_users, self.n_items = len(user_states), len(item_vectors)
        self.history = history
        self.max_len = None if history is None else int(history.shape[1])
        self.encoder = encoder

    @classmethod
    def from_artifacts(cls, artifacts: Artifacts) -> SASRecChannel:
        arrays = getattr(artifacts, "channel_arrays", {}) or {}
        missing = [name for name in (STATES, ITEMS, HISTORY) if name not in arrays]
        if missing:
            raise KeyError(
                f"{artifacts.directory}: no {', '.join(missing)}; write them with "
                "`index` after a `train-sequence` run on the same data (see `index --help`)"
            )
        encoder = onnx_encoder(arrays[ENCODER].tobytes()) if ENCODER in arrays else None
        return cls(arrays[STATES], arrays[ITEMS], arrays[HISTORY], encoder)

    def channel_arrays(self, encoder_onnx: bytes | None = None) -> dict[str, np.ndarray]:
        """What ``save_artifacts(channel_arrays=...)`` stores to rebuild this channel."""
        if self.history is None:
            raise ValueError("sasrec: a channel without stored histories cannot be saved")
        out = {STATES: self.user_states, ITEMS: self.item_vectors, HISTORY: self.history}
        if encoder_onnx is not None:
            out[ENCODER] = np.frombuffer(encoder_onnx, dtype=np.uint8)
        return out

    def score(self, users: np.ndarray) -> np.ndarray:
        users = self._check_users(users, self.n_users)
        return self.user_states[users] @ self.item_vectors.T  # (b, dim) @ (dim, n_items)

    def pad(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """(b, L) int64: each sequence's last L items, right-aligned, padded with n_items."""
        if self.max_len is None:
            raise ValueError("sasrec: no stored history, so the input length L is unknown")
        out = np.full((len(sequences), self.max_len), self.n_items, dtype=np.int64)
        for row, seq in enumerate(sequences):
            items = np.asarray(seq, dtype=np.int64).reshape(-1)
            bad = items[(items < 0) | (items >= self.n_items)]
            if len(bad):
                raise KeyError(
                    f"sasrec: unknown item index {int(bad[0])}; expected 0..{self.n_items - 1}"
                )
            tail = items[-self.max_len :]
            if len(tail):
                out[row, self.max_len - len(tail) :] = tail
        return out

    def score_sequences(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """(b, n_items) scores after each given item sequence (oldest first)."""
        if self.encoder is None:
            raise ValueError(
                "sasrec: scoring request-time sequences needs the exported encoder "
                f"({ENCODER} in the artifacts): pass the ONNX file's bytes to channel_arrays"
            )
        states = np.asarray(self.encoder(self.pad(sequences)), dtype=np.float32)  # (b, dim)
        return states @ self.item_vectors.T

    def recommend_sequences(
        self, sequences: Sequence[Sequence[int]], k: int, exclude_history: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` after each sequence; the sequence's own items are excluded by default."""
        self._check_k(k)
        exclude = [np.asarray(s, dtype=np.int64) for s in sequences] if exclude_history else None
        return top_k(self.score_sequences(sequences), k, exclude)


def sasrec_channel(
    model: Any, histories: Sequence[np.ndarray], encoder: Encoder | None = None
) -> SASRecChannel:
    """The channel of a trained ``SASRec`` for users whose stored histories are given."""
    from ..training.sequence import pad_left, user_states

    inputs = pad_left(histories, model.max_len, model.n_items)  # (n_users, L)
    items = model.item_vectors().detach().float().cpu().numpy()
    return SASRecChannel(user_states(model, inputs), items, inputs, encoder)
