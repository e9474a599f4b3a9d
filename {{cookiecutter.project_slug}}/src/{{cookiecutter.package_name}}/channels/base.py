"""One interface for every recall channel, and the one ranking rule they all share.

The contract (``Channel``), which evaluation and the service both rely on:

* ``score(users)`` -> (batch, n_items) float32 scores, higher is better. Evaluation ranks
  these (full ranking, seen items masked).
* ``recommend(users, k, exclude)`` -> the top-``k`` (item indices, scores), each (batch, k),
  ranked by ``top_k`` (defined in ``evaluation``, re-exported here): best first, ties to the
  lower item index, excluded items never returned. A row that has fewer than ``k`` items
  left is padded with index -1 / score -inf.
* ``from_artifacts(artifacts)`` (classmethod) -> the channel rebuilt from a loaded artifacts
  folder (``artifacts.Artifacts``) with no torch import: what the service answers with. A
  channel fitted at ``index`` time writes what it needs through ``save_artifacts`` (fixed
  files, or ``channel_arrays`` named ``<channel>.<what>.npy``, read back from
  ``Artifacts.channel_arrays``), lists those files in ``artifact_files`` (a folder without them
  is served without the channel) and registers its class in ``channels.SERVED``.
* No torch at import time: the service imports this whole package and must stay torch-free
  (``tests/test_server_process.py`` checks). Import torch inside the functions that fit.

Because both sides call the same ``score`` and the same ``top_k``, what evaluation measures is
what production serves (``tests/test_serving_matches_evaluation.py`` checks it user by user).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from ..evaluation import top_k

if TYPE_CHECKING:
    from ..artifacts import Artifacts


@runtime_checkable
class Channel(Protocol):
    """A recall channel. ``score`` is what evaluation uses (full ranking);
    ``recommend`` is what a service calls (top-K with exclusions)."""

    name: str
    n_items: int

    def score(self, users: np.ndarray) -> np.ndarray:
        """(batch,) user indices -> (batch, n_items) float32 scores, higher is better."""
        ...

    def recommend(
        self, users: np.ndarray, k: int, exclude: Sequence[np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (item indices, scores), each (batch, k), never returning excluded items."""
        ...


class ScoringChannel:
    """Base class: ``recommend`` ranks ``score`` with ``top_k``."""

    name = "channel"
    n_items = 0
    artifact_files: tuple[str, ...] = ()
    """Files beyond the core artifacts that ``from_artifacts`` reads (``<channel>.<what>.npy``)."""

    def score(self, users: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @classmethod
    def from_artifacts(cls, artifacts: Artifacts) -> Any:
        """The channel as the service loads it from an artifacts folder."""
        raise NotImplementedError(f"{cls.__name__} cannot be loaded from artifacts")

    def _check_users(self, users: np.ndarray, n_users: int) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64).reshape(-1)
        bad = users[(users < 0) | (users >= n_users)]
        if len(bad):
            raise KeyError(
                f"{self.name}: unknown user index {int(bad[0])}; expected 0..{n_users - 1}"
            )
        return users

    def _check_k(self, k: int) -> None:
        if not 1 <= k <= self.n_items:
            raise ValueError(
                f"{self.name}: k={k} must be between 1 and the catalog size {self.n_items}"
            )

    def recommend(
        self, users: np.ndarray, k: int, exclude: Sequence[np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        self._check_k(k)
        return top_k(self.score(np.asarray(users)), k, exclude)
