"""Request-time recommendation over a loaded artifacts folder: recall, then rank.

The router picks the stages from (user_type, device, action): the recall channel(s) and
whether the ranker orders their candidates. Ranked routes go through ``chain.RankingStage``
(the exported ranker in onnxruntime over the candidates of the routed channels); each item
then carries its recall scores and its ranker score. Ranking degrades to the recall order,
with the reason, where the service has no ranker, the user is unknown to it, or the request
names a catalog item on a route that recalls from the item graph (item-to-item: the ranker
ranks a user's own candidates); the reason then says what ran instead of the route's plan.

Recall answers with the routed channel, the same class evaluation measures
(``channels.load_channels`` rebuilds them from the artifacts), and degrades instead of failing
when the channel cannot answer for this request:

* two_tower needs the user's embedding: an unknown user is served by cold-start popularity.
* item_graph needs seed items: the request's `item_id`, else the user's history; with neither,
  popularity. When the graph has fewer than k neighbours the list is topped up by popularity.
* ease is served only with the ranker's folder (which holds its weights); else popularity.
* sasrec reads the request's `recent_items` (through the exported encoder), else the user's
  stored history (the state `index` computed); with neither, popularity. A folder without
  the channel (no `train-sequence` run when `index` ran) answers from two_tower.
* popularity always answers.

Every downgrade is added to the reason, so the caller can see exactly why it got what it got.
Pure numpy + the faiss index: no torch in the process.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from ..artifacts import Artifacts
from ..channels import (
    ItemGraphChannel,
    PopularityChannel,
    SASRecChannel,
    TwoTowerChannel,
    load_channels,
    top_k,
)
from ..router import Channel, Decision, Router
from .chain import RankingStage, load_ranking_stage

_EMPTY = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class Recommendation:
    """The answer to one request (item ids are the raw ids of the catalog)."""

    item_ids: list[str]
    scores: list[float | None]
    channel: Channel
    rule: str
    reason: str
    fallback: bool
    known_user: bool
    stages: list[str] = field(default_factory=list)
    """What ran, in order: ``recall: <channels>`` then ``rank: ...`` where the ranker ran."""
    item_stages: list[dict[str, float]] = field(default_factory=list)
    """Per item: its recall score per channel, and ``rank`` (the ranker's logit) when ranked."""


class Recommender:
    """Holds the artifacts, their channels, the ranking stage and a router; `recommend` is safe
    to call from many threads (everything is read-only once loaded)."""

    def __init__(
        self,
        artifacts: Artifacts,
        router: Router | None = None,
        ranker_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.artifacts = artifacts
        self.router = router or Router()
        self.channels = load_channels(artifacts)
        self.popularity: PopularityChannel = self.channels[Channel.POPULARITY.value]  # type: ignore[assignment]
        self.item_graph: ItemGraphChannel = self.channels[Channel.ITEM_GRAPH.value]  # type: ignore[assignment]
        self.two_tower: TwoTowerChannel = self.channels[Channel.TWO_TOWER.value]  # type: ignore[assignment]
        self.ranking: RankingStage | None
        self.ranking, self.ranking_status = load_ranking_stage(ranker_dir, artifacts, self.channels)
        if self.ranking is not None and Channel.EASE.value in self.ranking.channels:
            self.channels.setdefault(Channel.EASE.value, self.ranking.channels[Channel.EASE.value])  # type: ignore[arg-type]

    def recommend(
        self,
        user_id: str,
        user_type: str,
        device: str,
        action: str,
        k: int,
        exclude_seen: bool = True,
        item_id: str | None = None,
        recent_items: list[str] | None = None,
    ) -> Recommendation:
        """``recent_items``: raw ids, oldest first; ids the catalog lacks are left out.

        ``item_id`` seeds item-to-item recall (the item_graph channel); wherever it was not
        used that way, the reason says so, naming it.
        """
        answer, item_said = self._recommend(
            user_id, user_type, device, action, k, exclude_seen, item_id, recent_items
        )
        if item_id is None or item_said:
            return answer
        if item_id in self.artifacts.item_index:
            note = f"item_id {item_id!r} not used: only item-to-item recall reads it"
        else:
            note = f"item_id {item_id!r} is not in the catalog: left out"
        return dataclasses.replace(answer, reason=f"{answer.reason}; {note}")

    def _recommend(
        self,
        user_id: str,
        user_type: str,
        device: str,
        action: str,
        k: int,
        exclude_seen: bool,
        item_id: str | None,
        recent_items: list[str] | None,
    ) -> tuple[Recommendation, bool]:
        """The answer, and whether a reason already says what became of ``item_id``."""
        art = self.artifacts
        decision: Decision = self.router.route(user_type, device, action)
        channel, reasons, fallback = decision.channel, [decision.reason], decision.fallback
        user = art.user_index.get(user_id)
        seen = art.seen_items(user) if user is not None else _EMPTY
        recent, unknown = self._recent(recent_items or [])
        exclude = seen if exclude_seen else _EMPTY
        k = min(k, art.n_items)
        if unknown:
            more = f" (+{len(unknown) - 3} more)" if len(unknown) > 3 else ""
            reasons.append(
                f"recent_items not in the catalog, left out: "
                f"{', '.join(map(repr, unknown[:3]))}{more}"
            )
        if recent_items and Channel.SASREC not in decision.channels:
            reasons.append("recent_items are read by the sasrec channel only")

        user_named = False
        item_said = False
        if decision.rank:
            why_not = self._why_not_rank(user_id, user, item_id, exclude_seen, decision)
            if why_not is None:
                return self._ranked(decision, reasons, user, exclude, k), item_said  # type: ignore[arg-type]
            # The route's plan (recall, then rank) did not run: say what did, not the plan.
            reasons[0] = decision.situation or reasons[0]
            reasons.append(f"ranking skipped: {why_not}")
            user_named = user is None
            if item_id is not None and why_not.startswith("item_id"):
                channel = Channel.ITEM_GRAPH  # _seeds says what it did with the item
            elif len(decision.channels) > 1 and user is not None:
                reasons.append(
                    f"{channel.value} recall alone, in its order (the channels' scores are "
                    "merged by the ranker only)"
                )

        if channel is Channel.SASREC:
            sasrec: SASRecChannel | None = self.channels.get(channel.value)  # type: ignore[assignment]
            if sasrec is None:
                channel, fallback = Channel.TWO_TOWER, True
                reasons.append(
                    "no sasrec channel in the artifacts (`index` after `train-sequence`): "
                    "two_tower instead"
                )
            elif len(recent) and sasrec.encoder is not None:
                reasons.append(f"SASRec over the request's {len(recent)} recent items")
                shown = np.concatenate([exclude, recent]) if exclude_seen else exclude
                ids, scores = top_k(sasrec.score_sequences([recent]), k, [shown])
                return self._answer(
                    ids[0], scores[0], channel, decision, reasons, fallback, user
                ), item_said
            elif user is not None:
                if len(recent):
                    reasons.append("no sequence encoder in the artifacts: recent_items ignored")
                reasons.append("SASRec over the user's stored history")
                ids, scores = sasrec.recommend(np.array([user]), k, [exclude])
                return self._answer(
                    ids[0], scores[0], channel, decision, reasons, fallback, user
                ), item_said
            else:
                channel, fallback = Channel.POPULARITY, True
                reasons.append(
                    f"user {user_id!r} is not in the model and sent no recent_items: "
                    "cold-start popularity"
                )

        if channel is Channel.EASE and channel.value not in self.channels:
            channel, fallback = Channel.POPULARITY, True
            reasons.append("no EASE weights (they come with the ranker): popularity instead")
        if channel is Channel.EASE and user is not None:
            ids, scores = self.channels[channel.value].recommend(np.array([user]), k, [exclude])
            return self._answer(
                ids[0], scores[0], channel, decision, reasons, fallback, user
            ), item_said
        if channel in (Channel.TWO_TOWER, Channel.EASE) and user is None:
            channel, fallback = Channel.POPULARITY, True
            who = "" if user_named else f"user {user_id!r} is not in the model: "
            reasons.append(f"{who}cold-start popularity")

        if channel is Channel.ITEM_GRAPH:
            seeds, why = self._seeds(user_id, user, seen, item_id)
            item_said = item_id is not None  # every reason of _seeds names a given item
            if len(seeds):
                ids, scores = self._item_graph(seeds, exclude, k)
                reasons.append(why)
                if len(ids) < k:
                    reasons.append(f"graph gave {len(ids)} of {k}: topped up with popularity")
                    more, more_scores = self._popularity(
                        np.concatenate([exclude, seeds, ids]), k - len(ids)
                    )
                    sources = [channel.value] * len(ids) + [Channel.POPULARITY.value] * len(more)
                    ids = np.concatenate([ids, more])
                    scores = np.concatenate([scores, more_scores])
                    return self._answer(
                        ids, scores, channel, decision, reasons, fallback, user, sources
                    ), item_said
                return self._answer(
                    ids, scores, channel, decision, reasons, fallback, user
                ), item_said
            channel, fallback = Channel.POPULARITY, True
            reasons.append(f"{why}: popularity instead")

        if channel is Channel.TWO_TOWER and user is not None:
            ids, scores = self.two_tower.recommend(np.array([user]), k, [exclude])
            return self._answer(
                ids[0], scores[0], channel, decision, reasons, fallback, user
            ), item_said

        ids, scores = self._popularity(exclude, k)
        return self._answer(
            ids, scores, Channel.POPULARITY, decision, reasons, fallback, user
        ), item_said

    def _recent(self, item_ids: list[str]) -> tuple[np.ndarray, list[str]]:
        """The catalog's indices of ``item_ids`` (order kept), and the ids it does not hold:
        an item newer than the artifacts must not cost the user their recommendations."""
        index = self.artifacts.item_index
        known = [index[i] for i in item_ids if i in index]
        return np.array(known, dtype=np.int64), [i for i in item_ids if i not in index]

    def _why_not_rank(
        self,
        user_id: str,
        user: int | None,
        item_id: str | None,
        exclude_seen: bool,
        decision: Decision,
    ) -> str | None:
        """None when the ranker can order this request's candidates, else why not.

        An ``item_id`` of the catalog on a route that recalls from the item graph asks for
        item-to-item recall: the ranker orders a user's candidates, not an item's neighbours,
        so that answer is the item's neighbours in graph order. Elsewhere no recall reads the
        item, and ranking goes ahead.
        """
        if user is None:
            return f"user {user_id!r} is not in the model (the ranker needs a known user)"
        if (
            item_id is not None
            and item_id in self.artifacts.item_index
            and Channel.ITEM_GRAPH in decision.channels
        ):
            return f"item_id {item_id!r} given: item-to-item recall in graph order"
        if self.ranking is None:
            return self.ranking_status
        if not exclude_seen:
            # The ranker's features (e.g. the share of the history per category) are built
            # from the history it excludes; with nothing excluded they would not mean the same.
            return "exclude_seen is false: the ranker ranks unseen candidates only"
        return None

    def _ranked(
        self, decision: Decision, reasons: list[str], user: int, exclude: np.ndarray, k: int
    ) -> Recommendation:
        """Recall from the decision's channels, rank with the ranker, explain every item."""
        assert self.ranking is not None
        recall = [c.value for c in decision.channels]
        result = self.ranking.rank(user, exclude, recall, k, partial(self._fill, exclude, k))
        reasons.extend(result.notes)
        used = [c for c in recall if c in self.ranking.channels]
        stages = [
            f"recall: {', '.join(used)} ({result.n_candidates} candidates, top "
            f"{self.ranking.n_per_channel} each)",
            f"rank: {self.ranking_status} ({len(result.items)} of {result.n_candidates})",
        ]
        # None for an item filled from popularity after the candidates ran out.
        logits = [None if math.isnan(s) else round(s, 6) for s in result.scores.tolist()]
        item_stages = [
            recall_scores if s is None else {**recall_scores, "rank": s}
            for recall_scores, s in zip(result.recall_scores, logits, strict=True)
        ]
        item_ids = self.artifacts.item_ids
        return Recommendation(
            item_ids=[item_ids[i] for i in result.items.tolist()],
            scores=logits,
            channel=decision.channel,
            rule=decision.rule,
            reason="; ".join(reasons),
            fallback=decision.fallback,
            known_user=True,
            stages=stages,
            item_stages=item_stages,
        )

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

    def _fill(self, exclude: np.ndarray, k: int) -> np.ndarray:
        """What fills a ranked list that ran out of candidates: popularity, unseen items."""
        ids, _ = self._popularity(exclude, k)
        return ids[ids >= 0]

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
        sources: list[str] | None = None,
    ) -> Recommendation:
        """A recall-order answer; ``sources`` names each item's channel (default ``channel``)."""
        item_ids = self.artifacts.item_ids
        # A tiny catalog minus the user's history can hold fewer than k: drop the padding.
        keep = ids >= 0
        ids, scores = ids[keep], scores[keep]
        rounded = [round(float(s), 6) for s in scores.tolist()]
        names = [n for n, k in zip(sources or [channel.value] * len(keep), keep, strict=True) if k]
        return Recommendation(
            item_ids=[item_ids[i] for i in ids.tolist()],
            scores=rounded,
            channel=channel,
            rule=decision.rule,
            reason="; ".join(reasons),
            fallback=fallback,
            known_user=user is not None,
            stages=[f"recall: {channel.value}"],
            item_stages=[{n: s} for n, s in zip(names, rounded, strict=True)],
        )
