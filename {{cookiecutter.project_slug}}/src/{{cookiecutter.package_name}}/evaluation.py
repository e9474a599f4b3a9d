"""Full-ranking evaluation: every item is a candidate, the user's seen items are excluded.

For a user with held-out items T and top-K list R (seen items removed before ranking):

* Recall@K   = |R ∩ T| / |T|                          (RecBole's definition)
* HitRate@K  = 1 if R ∩ T is non-empty else 0
* NDCG@K     = sum_{r in R, rank p from 0} [r in T] / log2(p + 2)  /  IDCG(min(|T|, K))

Each metric is averaged over users with at least one held-out item. The top-K lists come from
``top_k``, which every channel's ``recommend`` uses too: the service answers with the ranking
evaluation measures (ties to the lower item index). This module imports nothing else of the
package, so channels can import it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

METRICS = ("recall", "ndcg", "hit")
ScoreFn = Callable[[np.ndarray], np.ndarray]  # user indices (b,) -> scores (b, n_items)


def top_k(
    scores: np.ndarray, k: int, exclude: Sequence[np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best items of each row: (item indices, scores), each (batch, k), best first.

    Ties go to the lower item index, so the same scores always give the same list (evaluation
    and service agree item for item). ``exclude[row]`` items are never returned; a row with
    fewer than ``k`` items left is padded with index -1 and score -inf.
    """
    scores = np.array(scores, dtype=np.float32, copy=True)  # (batch, n_items)
    batch, n_items = scores.shape
    if exclude is not None:
        for row, items in enumerate(exclude):
            scores[row, np.asarray(items, dtype=np.int64)] = -np.inf
    take = min(k, n_items)
    # The k-th best value of each row; every item at or above it is a candidate (ties included).
    kth = np.partition(scores, n_items - take, axis=1)[:, n_items - take]
    rows, cols = np.nonzero(scores >= kth[:, None])
    values = scores[rows, cols]
    order = np.lexsort((cols, -values, rows))  # by row, then best score, then lower index
    rows, cols, values = rows[order], cols[order], values[order]
    position = np.arange(len(rows)) - np.searchsorted(rows, rows)  # rank inside its row
    keep = (position < take) & (values > -np.inf)
    ids = np.full((batch, k), -1, dtype=np.int64)
    top = np.full((batch, k), -np.inf, dtype=np.float32)
    ids[rows[keep], position[keep]] = cols[keep]
    top[rows[keep], position[keep]] = values[keep]
    return ids, top


def _mask(rows: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    """Per-row item lists -> dense (len(rows), n_items) bool mask."""
    mask = np.zeros((len(rows), n_items), dtype=bool)
    lengths = [len(r) for r in rows]
    if sum(lengths):
        r = np.repeat(np.arange(len(rows)), lengths)
        mask[r, np.concatenate([np.asarray(x, dtype=np.int64) for x in rows])] = True
    return mask


def check_k(ks: Sequence[int], n_items: int) -> list[int]:
    """Validate cut-offs: positive integers no larger than the catalog."""
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"K must be positive integers, got {list(ks)}")
    if ks[-1] > n_items:
        raise ValueError(
            f"K={ks[-1]} is larger than the catalog ({n_items} items); use K <= {n_items}"
        )
    return ks


def ranked(
    score_fn: ScoreFn, users: np.ndarray, seen: Sequence[np.ndarray], n_items: int, k: int
) -> np.ndarray:
    """(len(users), k) top-k item indices per user, ``seen[u]`` masked: what evaluation ranks."""
    users = np.asarray(users, dtype=np.int64)
    scores = np.asarray(score_fn(users), dtype=np.float32)
    if scores.shape != (len(users), n_items):
        raise ValueError(
            f"score_fn returned shape {tuple(scores.shape)}, expected ({len(users)}, {n_items})"
        )
    return top_k(scores, k, [seen[u] for u in users])[0]


def rank_metrics(
    score_fn: ScoreFn,
    truth: Sequence[np.ndarray],
    seen: Sequence[np.ndarray],
    n_items: int,
    ks: Sequence[int] = (10,),
    batch_size: int = 1024,
) -> dict[str, float]:
    """Recall/NDCG/HitRate at each K, averaged over users with held-out items.

    ``truth[u]`` and ``seen[u]`` are item-index arrays for user ``u``; ``score_fn`` is called
    on batches of user indices and must return (batch, n_items) scores (higher is better).
    """
    ks = check_k(ks, n_items)
    if len(truth) != len(seen):
        raise ValueError(f"truth has {len(truth)} users, seen has {len(seen)}; expected the same")
    users = np.asarray([u for u, t in enumerate(truth) if len(t)], dtype=np.int64)
    if len(users) == 0:
        raise ValueError("no user has a held-out item; nothing to evaluate")
    k_max = ks[-1]
    discounts = 1.0 / np.log2(np.arange(k_max, dtype=np.float64) + 2.0)  # (k_max,)
    ideal = np.cumsum(discounts)  # IDCG for 1..k_max relevant items
    sums = {f"{m}@{k}": 0.0 for m in METRICS for k in ks}
    counted = 0
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        top = ranked(score_fn, batch, seen, n_items, k_max)  # (batch, k_max), -1 = nothing left
        # A held-out item that is also "seen" can never be recommended: it is not a target.
        relevant = _mask([truth[u] for u in batch], n_items) & ~_mask(
            [seen[u] for u in batch], n_items
        )  # (batch, n_items)
        n_true = relevant.sum(1)  # (batch,)
        rows = n_true > 0
        # (batch, k_max) 1.0 where the item at that rank is a target (-1 padding never is)
        hits = (np.take_along_axis(relevant, np.maximum(top, 0), 1) & (top >= 0))[rows]
        hits, n_true = hits.astype(np.float64), n_true[rows]
        counted += int(rows.sum())
        for k in ks:
            h = hits[:, :k]
            sums[f"recall@{k}"] += float((h.sum(1) / n_true).sum())
            sums[f"hit@{k}"] += float((h.sum(1) > 0).sum())
            idcg = ideal[np.minimum(n_true, k) - 1]
            sums[f"ndcg@{k}"] += float(((h * discounts[:k]).sum(1) / idcg).sum())
    if counted == 0:
        raise ValueError("every held-out item is also a seen item; nothing to evaluate")
    return {name: total / counted for name, total in sums.items()}


def evaluate_channels(
    channels: Mapping[str, object],
    truth: Sequence[np.ndarray],
    seen: Sequence[np.ndarray],
    n_items: int,
    ks: Sequence[int] = (5, 10, 20, 50),
) -> dict[str, dict[str, float]]:
    """``rank_metrics`` for every channel (anything with ``score(users) -> (b, n_items)``)."""
    ks = check_k(ks, n_items)
    return {
        name: rank_metrics(channel.score, truth, seen, n_items, ks)  # type: ignore[attr-defined]
        for name, channel in channels.items()
    }


def format_table(  # type: ignore[no-untyped-def]
    results: Mapping[str, Mapping[str, float]],
    title: str = "Full-ranking metrics",
    columns: Sequence[str] | None = None,
):
    """A rich Table: one row per channel; columns default to Recall at every K plus NDCG/HitRate@10."""
    from rich.table import Table

    available = list(next(iter(results.values())))
    if columns is None:
        columns = [c for c in available if c.startswith("recall@")]
        columns += [c for c in ("ndcg@10", "hit@10") if c in available]
    table = Table(title=title)
    table.add_column("channel")
    for col in columns:
        table.add_column(
            col.replace("recall", "Recall").replace("ndcg", "NDCG").replace("hit", "HitRate"),
            justify="right",
        )
    for name, row in results.items():
        table.add_row(name, *(f"{row[c]:.4f}" for c in columns))
    return table


def save_results(
    results: Mapping[str, Mapping[str, float]],
    out_dir: str | os.PathLike[str],
    stem: str = "evaluation",
) -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.png`` (Recall@K curve per channel) into ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"{stem}.json"
    json_path.write_text(json.dumps(results, indent=2), encoding="utf-8")
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, row in results.items():
        ks = sorted(int(c.split("@")[1]) for c in row if c.startswith("recall@"))
        ax.plot(ks, [row[f"recall@{k}"] for k in ks], marker="o", label=name)
    ax.set_xlabel("K")
    ax.set_ylabel("Recall@K")
    ax.set_title("Recall@K per channel (full ranking, seen items excluded)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    png_path = out / f"{stem}.png"
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return json_path, png_path
