"""Towers and the two-tower softmax loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from {{ cookiecutter.package_name }}.models import (
    CategoricalFeatures,
    ItemTower,
    UserTower,
    build_two_tower,
    history_columns,
    history_table,
)


def test_towers_return_unit_vectors_of_the_configured_dim() -> None:
    users = UserTower(10, [3], n_items=7, dim=8, hidden=16)
    items = ItemTower(7, [2, 4], dim=8, hidden=16)
    u = users(torch.arange(4), torch.zeros(4, 1, dtype=torch.long), torch.full((4, 5), 7))
    v = items(torch.arange(3), torch.ones(3, 2, dtype=torch.long))
    assert u.shape == (4, 8) and v.shape == (3, 8)
    assert torch.allclose(u.norm(dim=1), torch.ones(4)) and torch.allclose(
        v.norm(dim=1), torch.ones(3)
    )


def test_history_padding_does_not_change_a_users_vector() -> None:
    tower = UserTower(3, [], n_items=6, dim=4, hidden=8).eval()
    ids, feats = torch.tensor([1]), torch.zeros(1, 0, dtype=torch.long)
    short = tower(ids, feats, torch.tensor([[2, 4]]))
    padded = tower(ids, feats, torch.tensor([[2, 6, 4, 6, 6]]))
    assert torch.allclose(short, padded, atol=1e-6)


def test_the_user_tower_pools_the_mean_of_its_real_history_items_and_padding_never_learns() -> None:
    torch.manual_seed(0)
    tower = UserTower(4, [3], n_items=6, dim=4, hidden=8)
    ids, feats = torch.arange(4), torch.tensor([[0], [1], [2], [0]])
    # rows with pads, an empty one, a repeat
    history = torch.tensor([[2, 4, 6, 6], [6, 6, 6, 6], [5, 5, 1, 0], [3, 6, 1, 6]])
    out = tower(ids, feats, history)
    with torch.no_grad():  # the same vectors, one user at a time, with plain indexing
        for u in range(4):
            real = [i for i in history[u].tolist() if i != 6]
            pooled = tower.history_embedding.weight[real].mean(0) if real else torch.zeros(4)
            own = tower.id_embedding.weight[u]
            x = torch.cat([own, pooled, tower.features(feats[u : u + 1])[0]])
            want = F.normalize(pooled + own + tower.mlp(x), dim=-1)
            assert torch.allclose(out[u], want, atol=1e-6), u
    (out * torch.arange(16.0).view(4, 4)).sum().backward()
    grad = tower.history_embedding.weight.grad
    assert grad[6].abs().sum() == 0 and grad[:6].abs().sum(1).min() > 0


def test_each_categorical_feature_reads_its_own_rows_of_the_shared_table() -> None:
    features = CategoricalFeatures([2, 3, 4], feature_dim=5)
    codes = torch.tensor([[0, 0, 0], [1, 2, 3]])
    out = features(codes)
    rows = features.table.weight
    assert out.shape == (2, 15)
    assert torch.equal(out[0], torch.cat([rows[0], rows[2], rows[5]]))
    assert torch.equal(out[1], torch.cat([rows[1], rows[4], rows[8]]))
    assert CategoricalFeatures([], feature_dim=5)(torch.zeros(3, 0, dtype=torch.long)).shape == (
        3,
        0,
    )


def test_history_table_keeps_the_most_recent_items_and_pads_with_n_items() -> None:
    table = history_table([0, 0, 1, 0], [5, 6, 7, 8], n_users=3, n_items=10, max_len=2)
    assert table.tolist() == [[8, 6], [7, 10], [10, 10]]
    # Where each pair went: item 5 is user 0's oldest of three, so it is out of the row (column 2).
    columns, width = history_columns([0, 0, 1, 0], n_users=3, max_len=2)
    assert (columns.tolist(), width) == ([2, 1, 0, 0], 2)


def _explicit_loss(
    u: torch.Tensor, v: torch.Tensor, item_ids: list[int], tau: float, log_q: list[float]
) -> float:
    """Row by row: softmax over the batch's items, minus log Q, duplicates of the positive removed."""
    total = 0.0
    for r in range(len(item_ids)):
        logits = []
        for c in range(len(item_ids)):
            if c != r and item_ids[c] == item_ids[r]:
                continue
            logits.append(float(u[r] @ v[c]) / tau - log_q[item_ids[c]])
        positive = float(u[r] @ v[r]) / tau - log_q[item_ids[r]]
        total += -(positive - math.log(sum(math.exp(x) for x in logits)))
    return total / len(item_ids)


@pytest.mark.parametrize("logq", [True, False], ids=["logq", "no-logq"])
def test_in_batch_loss_matches_an_explicit_softmax_with_logq_and_duplicate_masking(
    logq: bool,
) -> None:
    # The model gives each distinct item one column weighted by its count; the reference below
    # keeps one column per copy. Item 1 is in the batch three times, item 2 twice.
    torch.manual_seed(0)
    model = build_two_tower(6, 4, [], [], dim=6, hidden=8, temperature=0.5).eval()
    users, items = torch.tensor([0, 1, 2, 3, 4, 5]), torch.tensor([1, 2, 1, 3, 1, 2])
    none_u, none_i = torch.zeros(6, 0, dtype=torch.long), torch.zeros(6, 0, dtype=torch.long)
    history = torch.full((6, 1), 4)
    log_q = torch.log(torch.tensor([0.1, 0.5, 0.3, 0.1]))
    loss = model(users, none_u, history, items, none_i, None, log_q if logq else None).detach()
    u = model.user_tower(users, none_u, history).detach()
    v = model.item_tower(items, none_i).detach()
    reference = _explicit_loss(u, v, items.tolist(), 0.5, log_q.tolist() if logq else [0.0] * 4)
    assert float(loss) == pytest.approx(reference, rel=1e-5)


def test_full_catalog_loss_is_cross_entropy_over_every_item() -> None:
    torch.manual_seed(0)
    model = build_two_tower(
        3, 5, [], [2], dim=4, hidden=8, temperature=0.2, negatives="full"
    ).eval()
    catalog = torch.tensor([[0], [1], [0], [1], [0]])
    users, items = torch.tensor([0, 2]), torch.tensor([4, 1])
    none_u, history = torch.zeros(2, 0, dtype=torch.long), torch.full((2, 1), 5)
    loss = model(users, none_u, history, items, catalog[items], catalog).detach()
    u = model.user_tower(users, none_u, history)
    v = model.item_tower(torch.arange(5), catalog)
    assert float(loss) == pytest.approx(
        float(F.cross_entropy(u @ v.T / 0.2, items).detach()), rel=1e-6
    )
    with pytest.raises(ValueError, match="catalog_features"):
        model(users, none_u, history, items, catalog[items], None)


def test_bad_model_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="negatives='random'"):
        build_two_tower(3, 3, [], [], negatives="random")
    with pytest.raises(ValueError, match="temperature must be > 0"):
        build_two_tower(3, 3, [], [], temperature=0)
