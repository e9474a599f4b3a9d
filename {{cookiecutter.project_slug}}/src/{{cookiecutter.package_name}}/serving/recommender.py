"""Request-time recommendation over a loaded artifacts folder.

The router picks a channel from (user_type, device, action); this module answers with that
channel, the same class evaluation measures (``channels.load_channels`` rebuilds them from the
artifacts), and degrades instead of failing when the channel cannot answer for this request:

* two_tower needs the user's embedding: an unknown user is served by cold-start popularity.
* item_graph needs seed items: the request's `item_id`, else the user's history; with neither,
  popularity. When the graph has fewer than k neighbours the list is topped up by popularity.
* popularity always answers.

Every downgrade is added to the reason, so the caller can see exactly why it got what it got.
Pure numpy + the faiss index: no torch in the process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..artifacts import Artifacts
from ..channels import ItemGraphChannel, PopularityChannel, TwoTowerChannel, load_channels, top_k
from ..router import Channel, Decision, Router

_EMPTY = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class Recommendation:
    """The answer to one request (item ids are the raw ids of the catalog)."""

    item_ids: list[str]
    scores: list[float]
    channel: Channel
    rule: str
    reason: str
    fallback: bool
    known_user: bool


class Recommender:
    """Holds the artifacts, their channels and a router; `recommend` is safe to call from many
    threads (the channels are read-only once loaded)."""

    def __init__(self, artifacts: Artifacts, router: Router | None = None) -> None:
        self.artifacts = artifacts
        self.router = router or Router()
        self.channels = load_channels(artifacts)
        self.popularity: PopularityChannel = self.channels[Channel.POPULARITY.value]  # type: ignore[assignment]
        self.item_graph: ItemGraphChannel = self.channels[Channel.ITEM_GRAPH.value]  # type: ignore[assignment]
        self.two_tower: TwoTowerChannel = self.channels[Channel.TWO_TOWER.value]  # type: ignore[assignment]

    def recommend(
        self,
        user_id: str,
        user_type: str,
        device: str,
        action: str,
        k: int,
        exclude_seen: bool = True,
        item_id: str | None = None,
    ) -> Recommendation:
        art = self.artifacts
        decision: Decision = self.router.route(user_type, device, action)
        channel, reasons, fallback = decision.channel, [decision.reason], decision.fallback
        user = art.user_index.get(user_id)
        seen = art.seen_items(user) if user is not None else _EMPTY
        exclude = seen if exclude_seen else _EMPTY
        k = min(k, art.n_items)

        if channel is Channel.TWO_TOWER and user is None:
            channel, fallback = Channel.POPULARITY, True
            reasons.append(f"user {user_id!r} is not in the model: cold-start popularity")

        if channel is Channel.ITEM_GRAPH:
            seeds, why = self._seeds(user_id, user, seen, item_id)
            if len(seeds):
                ids, scores = self._item_graph(seeds, exclude, k)
                reasons.append(why)
                if len(ids) < k:
                    reasons.append(f"graph gave {len(ids)} of {k}: topped up with popularity")
                    more, more_scores = self._popularity(
                        np.concatenate([exclude, seeds, ids]), k - len(ids)
                    )
                    ids = np.concatenate([ids, more])
                    scores = np.concatenate([scores, more_scores])
                return self._answer(ids, scores, channel, decision, reasons, fallback, user)
            channel, fallback = Channel.POPULARITY, True
            reasons.append(f"{why}: popularity instead")

        if channel is Channel.TWO_TOWER and user is not None:
            ids, scores = self.two_tower.recommend(np.array([user]), k, [exclude])
            return self._answer(ids[0], scores[0], channel, decision, reasons, fallback, user)

        ids, scores = self._popularity(exclude, k)
        return self._answer(ids, scores, Channel.POPULARITY, decision, reasons, fallback, user)

    def _seeds(
        self, user_id: str, user: int | None, seen: np.ndarray, item_id: str | None
    ) -> tuple[np.ndarray, str]:
        """Items to expand in the graph, and a sentence saying where they came from."""
        seen = np.unique(seen)  # the history as the channel scores it: each item once
        if item_id is not None:
            item = self.artifacts.item_index.get(item_id)
            if item is not None:
                return np.array([item], dtype=np.int64), f"neighbours of item {item_id!r}"
            if len(seen):
                return (
                    seen,
                    f"item {item_id!r} is not in the catalog: neighbours of the user's history",
                )
            return (
                _EMPTY,
                f"item {item_id!r} is not in the catalog and user {user_id!r} has no history",
            )
        if len(seen):
            return seen, f"neighbours of the {len(seen)} items in the user's history"
        who = "is not in the model" if user is None else "has no history"
        return _EMPTY, f"no item_id given and user {user_id!r} {who}"

    def _item_graph(
        self, seeds: np.ndarray, exclude: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The graph's top items from the seeds (never the seeds themselves): only those it
        reaches, so the list can be shorter than k."""
        scores = self.item_graph.score_seeds([seeds])  # (1, n_items)
        ids, top = top_k(scores, k, [np.concatenate([exclude, seeds])])
        reached = top[0] > 0
        return ids[0][reached], top[0][reached]

    def _popularity(self, exclude: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        ids, scores = self.popularity.recommend_to_anyone(k, exclude)
        return ids, scores

    def _answer(
        self,
        ids: np.ndarray,
        scores: np.ndarray,
        channel: Channel,
        decision: Decision,
        reasons: list[str],
        fallback: bool,
        user: int | None,
    ) -> Recommendation:
        item_ids = self.artifacts.item_ids
        # A tiny catalog minus the user's history can hold fewer than k: drop the padding.
        keep = ids >= 0
        ids, scores = ids[keep], scores[keep]
        return Recommendation(
            item_ids=[item_ids[i] for i in ids.tolist()],
            scores=[round(float(s), 6) for s in scores.tolist()],
            channel=channel,
            rule=decision.rule,
            reason="; ".join(reasons),
            fallback=fallback,
            known_user=user is not None,
        )
