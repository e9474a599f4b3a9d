"""A seeded synthetic e-commerce log with structure a model can learn.

How a user picks an item (the part a two-tower model can recover and popularity cannot):

    logit(u, i) = log affinity[u, category(i)]      # each user loves 2-3 categories
                + taste[u] . style[i]               # within-category taste (latent, dim 8)
                + 0.6 * log popularity[i]           # long tail: a few items are everywhere
                - price_sensitivity[segment(u)] * log price[i]

Users belong to segments (their category affinities are drawn around the segment's), items have
categories and prices; each sampled item becomes a browse event that may turn into click, cart and
purchase with probabilities that grow with the user's affinity. Same seed, same log.
"""

from __future__ import annotations

import numpy as np

from .interactions import EVENT_NAMES, Interactions

SEGMENTS = ("bargain", "casual", "enthusiast", "premium", "new")


def generate_synthetic(
    n_users: int = 2000,
    n_items: int = 1000,
    n_categories: int = 20,
    events_per_user: float = 30.0,
    seed: int = 0,
    days: int = 90,
) -> Interactions:
    """Return a synthetic interaction log (roughly ``n_users * events_per_user`` browse events)."""
    if n_users < 1 or n_items < 2 or n_categories < 1 or events_per_user <= 0:
        raise ValueError(
            f"synthetic sizes must be positive (n_items >= 2); got n_users={n_users}, "
            f"n_items={n_items}, n_categories={n_categories}, events_per_user={events_per_user}"
        )
    rng = np.random.default_rng(seed)
    n_cat = min(n_categories, n_items)

    # Items: category (some categories are bigger), price (category level x noise), popularity.
    cat_size = rng.dirichlet(np.full(n_cat, 2.0))
    category = rng.choice(n_cat, size=n_items, p=cat_size)
    category[:n_cat] = np.arange(n_cat)  # every category has at least one item
    cat_price = np.exp(rng.normal(3.0, 0.8, size=n_cat))
    price = cat_price[category] * np.exp(rng.normal(0.0, 0.3, size=n_items))
    popularity = 1.0 / np.arange(1, n_items + 1) ** 1.1
    popularity = popularity[rng.permutation(n_items)]
    style = rng.normal(0.0, 1.0, size=(n_items, 8)) / np.sqrt(8)

    # Users: segment -> category affinity around the segment's, personal taste, activity.
    n_seg = len(SEGMENTS)
    segment = rng.integers(0, n_seg, size=n_users)
    seg_affinity = rng.dirichlet(np.full(n_cat, 0.3), size=n_seg)
    own = rng.dirichlet(np.full(n_cat, 0.15), size=n_users)
    affinity = 0.4 * seg_affinity[segment] + 0.6 * own + 1e-4
    taste = rng.normal(0.0, 1.5, size=(n_users, 8))
    price_sensitivity = np.linspace(0.8, -0.2, n_seg)[segment]
    activity = rng.gamma(2.0, events_per_user / 2.0, size=n_users)
    n_events = np.maximum(rng.poisson(activity), 3)

    log_pop, log_price = np.log(popularity), np.log(price)
    users, items = [], []
    for u in range(n_users):  # one vector of n_items logits per user: O(n_users * n_items)
        logits = (
            np.log(affinity[u, category])
            + style @ taste[u]
            + 0.6 * log_pop
            - price_sensitivity[u] * log_price
        )
        p = np.exp(logits - logits.max())
        p /= p.sum()
        picks = rng.choice(n_items, size=n_events[u], p=p)
        users.append(np.full(n_events[u], u))
        items.append(picks)
    user = np.concatenate(users)
    item = np.concatenate(items)

    # Funnel: browse -> click -> cart -> purchase; keener users convert more.
    keen = affinity[user, category[item]] / affinity[user].max(axis=1)
    depth = np.zeros(len(user), dtype=np.int64)
    for step, base in enumerate((0.35, 0.3, 0.4), start=1):
        advance = (depth == step - 1) & (rng.random(len(user)) < base + 0.4 * keen)
        depth[advance] = step
    start = 1_700_000_000
    ts = start + np.sort(rng.integers(0, days * 86_400, size=len(user)))
    ts = ts[rng.permutation(len(user))]
    # Each funnel step is its own event a few minutes after the previous one.
    rows = np.repeat(np.arange(len(user)), depth + 1)
    step_of_row = np.arange(len(rows)) - np.repeat(np.cumsum(depth + 1) - (depth + 1), depth + 1)
    price_bucket = np.clip(
        np.digitize(log_price, np.quantile(log_price, [0.2, 0.4, 0.6, 0.8])), 0, 4
    )
    return Interactions(
        name=f"synthetic(seed={seed})",
        users=user[rows].astype(np.int64),
        items=item[rows].astype(np.int64),
        events=step_of_row.astype(np.int64),
        timestamps=(ts[rows] + 180 * step_of_row).astype(np.int64),
        user_ids=[f"u{u:05d}" for u in range(n_users)],
        item_ids=[f"i{i:05d}" for i in range(n_items)],
        event_names=EVENT_NAMES,
        user_features=segment.astype(np.int64)[:, None],
        item_features=np.stack([category, price_bucket], axis=1).astype(np.int64),
        user_feature_names=("segment",),
        item_feature_names=("category", "price_bucket"),
    )
