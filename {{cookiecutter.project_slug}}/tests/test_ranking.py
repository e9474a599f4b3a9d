"""Retrieve -> rank: candidate merge, the ranker's loss and training (one process and torchrun
DDP), ONNX export parity, and how bad candidate sets degrade. The CUDA/AMP twins are in
test_gpu.py."""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from {{ cookiecutter.package_name }}.__main__ import _parser
from {{ cookiecutter.package_name }}.channels import (
    ItemGraphChannel,
    PopularityChannel,
)
from {{ cookiecutter.package_name }}.channels.ease import EaseChannel
from {{ cookiecutter.package_name }}.data import (
    Split,
    generate_synthetic,
    make_split,
)
from {{ cookiecutter.package_name }}.flags import given
from {{ cookiecutter.package_name }}.models.ranker import Ranker
from {{ cookiecutter.package_name }}.ranking import (
    RankerConfig,
    build_ranking_data,
    evaluate_chain,
    fold_split,
    generate_candidates,
    listwise_loss,
    train_ranker,
)
from {{ cookiecutter.package_name }}.ranking.data import pairs_split
from {{ cookiecutter.package_name }}.ranking.export import (
    check_ranker_parity,
    export_ranker,
)
from {{ cookiecutter.package_name }}.ranking.inference import (
    OnnxRanker,
    RankerFileError,
    rank_candidates,
)
from {{ cookiecutter.package_name }}.ranking.train import (
    chain_metrics,
    score_rows,
    shard_steps,
)
from {{ cookiecutter.package_name }}.training import (
    TrainConfig,
    load_trained,
    train,
)


class FixedChannel:
    """A channel whose scores are a fixed (n_users, n_items) table."""

    def __init__(self, name: str, table: np.ndarray) -> None:
        self.name, self.table = name, np.asarray(table, np.float32)
        self.n_items = self.table.shape[1]

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.table[users]


@pytest.fixture(scope="module")
def split() -> Split:
    sample = generate_synthetic(n_users=800, n_items=200, events_per_user=40, seed=5)
    return make_split(sample, "random", seed=5)


def factory_for(split: Split):  # type: ignore[no-untyped-def]
    def factory(users: np.ndarray, items: np.ndarray) -> dict[str, object]:
        return {
            "ease": EaseChannel.fit(users, items, split.n_users, split.n_items, l2=50.0),
            "item_graph": ItemGraphChannel(users, items, split.n_users, split.n_items),
            "popularity": PopularityChannel(items, split.n_items, split.n_users),
        }

    return factory


def test_candidates_are_the_union_of_each_channels_top_n_without_seen_items() -> None:
    a = FixedChannel("a", [[5, 4, 3, 2, 1, 0], [0, 1, 2, 3, 4, 5]])
    b = FixedChannel("b", [[0, 0, 0, 1, 2, 3], [9, 0, 0, 0, 0, 8]])
    cand = generate_candidates({"a": a, "b": b}, np.array([0, 1]), [[0], [5]], n_per_channel=2)
    got = [set(cand.items[r][cand.mask[r]]) for r in range(2)]
    # user 0: a's top-2 unseen {1, 2}, b's {5, 4}; user 1: a's {4, 3}, b's {0, 1} (tie: lower)
    assert got[0] == {1, 2, 4, 5}
    assert 4 in got[1] and 3 in got[1] and 0 in got[1] and len(got[1]) == 4
    names = list(cand.feature_names)
    assert names == ["a:score", "a:rank", "a:hit", "b:score", "b:rank", "b:hit", "n_hits"]
    row = dict(zip(cand.items[0], cand.features[0], strict=False))
    assert row[1][names.index("a:rank")] == 0.0  # a's best unseen item
    assert row[1][names.index("a:hit")] == 1.0 and row[1][names.index("b:hit")] == 0.0
    assert row[1][names.index("b:rank")] == 1.0  # not in b's top-2: rank capped at N
    assert row[5][names.index("n_hits")] == 1.0


def test_random_negatives_are_unseen_and_retrieved_by_no_channel() -> None:
    table = np.tile(np.arange(50, dtype=np.float32), (3, 1))
    cand = generate_candidates(
        {"pop": FixedChannel("pop", table)}, np.arange(3), [[49], [], [0, 1]], 5, n_random=7
    )
    assert list(cand.sizes) == [12, 12, 12]
    for r, seen in enumerate([[49], [], [0, 1]]):
        items = cand.items[r][cand.mask[r]]
        assert not set(items) & set(seen)
        assert len(set(items)) == 12


def test_candidates_without_channels_or_with_n_below_one_are_refused() -> None:
    with pytest.raises(ValueError, match="no channels"):
        generate_candidates({}, np.arange(2))
    with pytest.raises(ValueError, match="n_per_channel=0"):
        generate_candidates({"a": FixedChannel("a", np.ones((2, 3)))}, np.arange(2), None, 0)


def test_the_fold_keeps_a_pair_to_fit_for_every_user() -> None:
    users = np.array([0, 0, 0, 0, 1, 2, 2], dtype=np.int64)
    items = np.arange(7, dtype=np.int64)
    for seed in range(20):
        (fu, fi), (lu, li) = fold_split(users, items, 3, 0.9, seed)
        assert set(fu) == {0, 1, 2}
        assert 1 not in set(lu)  # a single pair is never labelled
        assert sorted(np.concatenate([fi, li])) == list(items)  # each pair exactly once


def test_listwise_loss_is_the_softmax_cross_entropy_of_each_positive() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0, -5.0]])
    mask = torch.tensor([[True, True, True, False]])
    labels = torch.tensor([[True, False, False, True]])  # the padded "positive" is ignored
    expected = -torch.log_softmax(torch.tensor([2.0, 1.0, 0.0]), 0)[0]
    assert torch.isclose(listwise_loss(logits, mask, labels), expected)
    assert float(listwise_loss(logits, mask, torch.zeros_like(labels))) == 0.0


def _small_config(**kw: object) -> RankerConfig:
    base = dict(epochs=4, n_candidates=30, n_random=10, batch_users=32, lr=3e-3)
    return RankerConfig(**{**base, **kw})  # type: ignore[arg-type]


def test_the_ranker_beats_the_best_single_channel_order_of_its_candidates(split: Split) -> None:
    # Judged on the test split: candidates from channels fitted on the training split, training
    # and validation items removed. Each channel's own order of those same candidates is the
    # baseline: the ranker sees the same candidates and must order them better than any one
    # channel does. Epochs were chosen on validation; test decided nothing.
    result = train_ranker(split, factory_for(split), _small_config())
    truth, seen = split.by_user("test"), split.by_user("train+val")
    users = np.asarray([u for u in range(split.n_users) if len(truth[u])])
    data = build_ranking_data(
        result.channels, users, seen, truth, 30, item_features=split.data.item_features,
        item_feature_names=split.data.item_feature_names,
    )  # fmt: skip
    scores = score_rows(result.model, data, split.data.user_features, split.data.item_features)
    ranked = chain_metrics(data, scores, truth, seen, split.n_items, [10])["recall@10"]
    assert ranked == evaluate_chain(result, split, "test", [10])["recall@10"]
    names = list(data.feature_names)
    single = {}
    for channel in result.channels:
        order = np.where(data.mask, -data.dense[..., names.index(f"{channel}:rank")], -np.inf)
        single[channel] = chain_metrics(data, order, truth, seen, split.n_items, [10])["recall@10"]
    assert ranked > max(single.values()), (ranked, single)
    assert 1 <= result.best_epoch <= len(result.history)


def _tiny_ranker(seed: int = 0) -> tuple[Ranker, np.ndarray, np.ndarray]:
    torch.manual_seed(seed)
    user_features = np.random.default_rng(seed).integers(0, 3, (20, 2))
    item_features = np.random.default_rng(seed + 1).integers(0, 4, (30, 1))
    model = Ranker(20, 30, [3, 3], [4], n_dense=7, anchor=0)
    for p in model.parameters():  # away from the zero-initialised head, like a trained model
        torch.nn.init.normal_(p, std=0.3)
    return model.eval(), user_features, item_features


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A tiny ranker exported once (the exporter takes tens of seconds) and its report."""
    model, uf, itf = _tiny_ranker()
    folder = tmp_path_factory.mktemp("ranker")
    names = [f"f{i}" for i in range(7)]
    report = export_ranker(model, folder, names, ["a", "b"], uf, itf, n_candidates=50)
    return model, uf, itf, folder, report


def test_the_exported_onnx_ranker_scores_like_the_torch_model(exported) -> None:  # type: ignore[no-untyped-def]
    model, uf, itf, folder, report = exported
    assert report["max_abs_diff"] <= report["tolerance"]
    assert set(report["parity"]) == {"1", "3", "200"}
    runner = OnnxRanker(folder)
    assert runner.feature_names == tuple(f"f{i}" for i in range(7))
    assert runner.channels == ("a", "b")
    rows = 57  # a batch size the exporter never saw
    rng = np.random.default_rng(9)
    users, items = rng.integers(0, 20, rows), rng.integers(0, 30, rows)
    dense = rng.normal(size=(rows, 7)).astype(np.float32)
    with torch.no_grad():
        eager = model(
            torch.as_tensor(users), torch.as_tensor(uf[users]), torch.as_tensor(items),
            torch.as_tensor(itf[items]), torch.as_tensor(dense),
        ).numpy()  # fmt: skip
    got = runner.score(users, uf[users], items, itf[items], dense)
    np.testing.assert_allclose(got, eager, rtol=1e-4, atol=1e-4)


def test_the_onnx_ranker_refuses_features_of_the_wrong_width(exported, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, uf, itf, folder, _ = exported
    runner = OnnxRanker(folder)
    with pytest.raises(RankerFileError, match=r"shape \(n, 7\)"):
        runner.score(np.zeros(2, np.int64), uf[:2], np.zeros(2, np.int64), itf[:2],
                     np.zeros((2, 5), np.float32))  # fmt: skip
    with pytest.raises(RankerFileError, match="missing"):
        OnnxRanker(tmp_path / "nowhere")


def test_a_ranker_that_drifts_from_its_export_is_caught(exported) -> None:  # type: ignore[no-untyped-def]
    model, uf, itf, folder, _ = exported
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed.head.bias += 0.5  # the file on disk no longer computes this model
    drift = check_ranker_parity(changed, folder, uf, itf)
    assert min(drift.values()) > 1e-2


def _scorer(*arrays: np.ndarray) -> np.ndarray:
    return arrays[4][:, 0]  # the first dense feature is the score


def test_an_empty_candidate_set_degrades_to_the_fallback_with_a_reason() -> None:
    uf, itf = np.zeros(1, np.int64), np.zeros((10, 1), np.int64)
    out = rank_candidates(_scorer, 0, uf, np.zeros(0), itf, np.zeros((0, 2)), 3, np.arange(10))
    assert list(out.items) == [0, 1, 2] and np.isnan(out.scores).all()
    assert out.reason == "no candidates for k=3; 3 filled from the fallback list"
    bare = rank_candidates(_scorer, 0, uf, np.zeros(0), itf, np.zeros((0, 2)), 3)
    assert len(bare.items) == 0 and bare.reason == "no candidates for k=3"


def test_fewer_candidates_than_k_are_ranked_then_filled_without_duplicates() -> None:
    uf, itf = np.zeros(1, np.int64), np.zeros((10, 1), np.int64)
    dense = np.array([[0.1, 0.0], [0.9, 0.0]], np.float32)
    out = rank_candidates(_scorer, 0, uf, np.array([7, 3]), itf, dense, 4, np.array([3, 5, 7, 1]))
    assert list(out.items) == [3, 7, 5, 1]
    assert out.reason == "only 2 candidates for k=4; 2 filled from the fallback list"
    full = rank_candidates(_scorer, 0, uf, np.array([7, 3]), itf, dense, 2)
    assert list(full.items) == [3, 7] and full.reason is None


def test_the_steps_of_an_epoch_give_every_row_to_one_rank_once() -> None:
    order = np.random.default_rng(0).permutation(70)
    shares = {rank: list(shard_steps(order, 32, rank, 3)) for rank in range(3)}
    assert [len(s) for s in shares.values()] == [3, 3, 3]  # every rank takes every step
    for step in range(3):
        rows = [shares[rank][step][1] for rank in range(3)]
        np.testing.assert_array_equal(np.sort(np.concatenate(rows)), np.sort(shares[0][step][0]))
    trained = np.concatenate([share for s in shares.values() for _, share in s])
    np.testing.assert_array_equal(np.sort(trained), np.arange(70))  # each row once an epoch
    assert [len(share) for _, share in shares[2]] == [10, 10, 2]  # 70 = 32 + 32 + 6
    alone = list(shard_steps(order, 32))
    assert all(np.array_equal(step, share) for step, share in alone)


def test_two_gloo_processes_train_the_same_ranker_as_one(tmp_path, train_ranker_in_child) -> None:  # type: ignore[no-untyped-def]
    # Dropout off: each process draws its own masks. 251 trainable users in steps of 25 end
    # each epoch with a 1-user step, so the second rank also trains on an empty share.
    settings = dict(epochs=3, n_candidates=30, n_random=10, batch_users=25, lr=3e-3, dropout=0.0)
    (one,) = train_ranker_in_child(tmp_path / "one", **settings)
    first, second = train_ranker_in_child(tmp_path / "ddp", torchrun_procs=2, **settings)
    assert (first["world_size"], first["dist_backend"]) == (2, "gloo")
    assert (one["world_size"], one["dist_backend"]) == (1, "none")
    for name, weight in first["state_dict"].items():  # DDP keeps the ranks in step
        assert torch.equal(weight, second["state_dict"][name]), name
    for got, want in zip(first["history"], one["history"], strict=True):
        assert got["loss"] == pytest.approx(want["loss"], rel=1e-5)
        assert got["recall@10"] == pytest.approx(want["recall@10"], abs=1e-6)
    # A listwise loss cannot see a shift of all of one user's scores, so the weights that only
    # shift them (the head's bias; the last cross layer's bias on the user's own features,
    # which are the same for all of a user's candidates) get gradients of float noise, which
    # Adam scales up to steps of lr. They are compared through the scores, centred per user;
    # every other weight directly.
    user_block = slice(0, one["user_feature_width"])
    for name, want in one["state_dict"].items():
        got = first["state_dict"][name]
        if name == "head.bias":
            continue
        if name == "cross.1.linear.bias":
            got, want = got[user_block.stop :], want[user_block.stop :]
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5, err_msg=name)

    def centred(scores: np.ndarray) -> np.ndarray:
        valid = np.isfinite(scores)
        mean = np.where(valid, scores, 0).sum(1, keepdims=True) / valid.sum(1, keepdims=True)
        return np.where(valid, scores - mean, 0.0)

    np.testing.assert_allclose(centred(first["scores"]), centred(one["scores"]), atol=1e-4)


def test_a_torchrun_rank_command_writes_the_ranker_from_rank_0_only(tmp_path, run_cli) -> None:  # type: ignore[no-untyped-def]
    # The whole stage under torchrun: the fold's two-tower model trains with DDP inside the
    # ranker's process group, which must outlive it, and only rank 0 evaluates and writes.
    run_cli(
        ["train", "--n-users", "150", "--n-items", "60", "--epochs", "2", "--device", "cpu"],
        tmp_path,
    )
    args = ["rank", "--epochs", "2", "--n-candidates", "20", "--folds", "1", "--out", "ddp"]
    done = run_cli(args, tmp_path, torchrun_procs=2)
    report = json.loads((tmp_path / "ddp" / "rank_report.json").read_text(encoding="utf-8"))
    assert (report["world_size"], report["dist_backend"], report["device"]) == (2, "gloo", "cpu")
    assert done.stdout.count("Test metrics: channels and the ranked chain") == 1
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == [
        "ease.weights.npy", "item_features.npy", "rank_report.json", "ranker.json",
        "ranker.onnx", "user_features.npy",
    ]  # fmt: skip
    assert report["export"]["max_abs_diff"] <= report["export"]["tolerance"]
    assert 0 < report["test"]["ranked"]["recall@10"] <= 1


def test_a_two_tower_trains_on_a_fold_of_the_training_pairs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # The ranker's training candidates need every channel fitted on the fold only: the
    # two-tower model trains on a given split, and its run records that split.
    data = generate_synthetic(n_users=120, n_items=60, seed=2)
    split = make_split(data, "random", seed=2)
    (fu, fi), _ = fold_split(*split.train, data.n_users, 0.1, seed=2)
    fold = pairs_split(data, fu, fi, seed=2)
    cfg = TrainConfig(
        n_users=120, n_items=60, seed=2, epochs=1, progress=False, device="cpu",
        runs_dir=str(tmp_path),
    )  # fmt: skip
    metrics = train(cfg, split=fold)
    _, _, recorded = load_trained(metrics.run_dir)
    for part in ("train", "val", "test"):
        for got, want in zip(getattr(recorded, part), getattr(fold, part), strict=True):
            np.testing.assert_array_equal(got, want)
    assert len(fold.train[0]) < len(fu) < len(split.train[0])  # the real val/test never enter


def test_the_rank_command_fits_evaluates_and_exports_the_chain(tmp_path, run_cli) -> None:  # type: ignore[no-untyped-def]
    sizes = ["--n-users", "150", "--n-items", "60", "--device", "cpu"]
    run_cli(["train", *sizes, "--epochs", "2"], tmp_path)
    done = run_cli(["rank", "--epochs", "2", "--n-candidates", "20", "--folds", "1"], tmp_path)
    out = tmp_path / "artifacts" / "ranker"
    report = json.loads((out / "rank_report.json").read_text(encoding="utf-8"))
    models = {"ease", "item_graph", "popularity", "two_tower", "ranked"}
    assert set(report["test"]) == models
    assert all(0 <= report["test"][m]["recall@10"] <= 1 for m in models)
    assert report["export"]["max_abs_diff"] <= report["export"]["tolerance"]
    assert OnnxRanker(out).channels == ("ease", "item_graph", "popularity", "two_tower")
    assert "ranked" in done.stdout and "parity" in done.stdout
    bad = run_cli(["rank", "--hold-out", "1.5"], tmp_path, check=False)
    assert bad.returncode == 2
    assert "hold_out=1.5: expected a fraction below 1" in bad.stdout + bad.stderr


def test_every_ranker_setting_is_a_rank_flag_that_reaches_the_config() -> None:
    defaults = RankerConfig()
    for field in dataclasses.fields(RankerConfig):
        if "help" not in field.metadata:  # made without flags.setting: not a flag
            continue
        flag, value = "--" + field.name.replace("_", "-"), getattr(defaults, field.name)
        if isinstance(value, bool):
            args, want = [f"--no-{flag[2:]}" if value else flag], not value
        elif field.metadata["choices"]:
            want = next(c for c in field.metadata["choices"] if c != value)
            args = [flag, want]
        else:
            want = {int: 7, float: 0.25, str: "x"}[type(value) if value is not None else str]
            args = [flag, str(want)]
        cfg = RankerConfig(**given(_parser().parse_args(["rank", *args]), RankerConfig))
        assert getattr(cfg, field.name) == want, (args, getattr(cfg, field.name))
        assert dataclasses.replace(cfg, **{field.name: value}) == defaults, args


def test_the_rank_flags_and_the_serving_side_of_ranking_import_no_torch(child_env) -> None:  # type: ignore[no-untyped-def]
    code = (
        "import sys\n"
        "import {{ cookiecutter.package_name }}.__main__ as cli\n"
        "import {{ cookiecutter.package_name }}.ranking.inference\n"
        "cli._parser().parse_args(['rank', '--epochs', '3'])\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
