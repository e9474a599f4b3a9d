"""The SASRec sequence channel: the model, its training (one process and two torchrun nodes),
its export and the channel a service loads."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from {{ cookiecutter.package_name }}.artifacts import (
    load_artifacts,
    save_artifacts,
)
from {{ cookiecutter.package_name }}.channels import (
    PopularityChannel,
    co_occurrence_neighbours,
)
from {{ cookiecutter.package_name }}.channels.sasrec import (
    SASRecChannel,
    onnx_encoder,
    sasrec_channel,
)
from {{ cookiecutter.package_name }}.data import (
    Interactions,
    Split,
    load_interactions,
    make_split,
    ml100k_location,
    write_interactions,
)
from {{ cookiecutter.package_name }}.evaluation import rank_metrics
from {{ cookiecutter.package_name }}.models.sasrec import SASRec
from {{ cookiecutter.package_name }}.pipeline import find_sequence_run
from {{ cookiecutter.package_name }}.retrieval import build_index
from {{ cookiecutter.package_name }}.sequence_export import export_sequence_encoder
from {{ cookiecutter.package_name }}.training.sequence import (
    SequenceConfig,
    load_sequence_model,
    pad_left,
    split_sequences,
    train_sequence,
    training_windows,
)


def cycles(n_users: int = 60, n_items: int = 30, length: int = 12, seed: int = 0) -> Interactions:
    """Each user walks the catalog in a user-specific stride from a random start: the next
    item follows from the last one, which popularity cannot see and a sequence model can."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(n_users):
        start, stride = rng.integers(n_items), 1 + u % 2
        users += [u] * length
        items += [(start + stride * t) % n_items for t in range(length)]
    return Interactions(
        name="cycles",
        users=np.array(users),
        items=np.array(items),
        events=np.zeros(len(users), np.int64),
        timestamps=np.tile(np.arange(length), n_users),
        user_ids=[f"u{u}" for u in range(n_users)],
        item_ids=[f"i{i}" for i in range(n_items)],
    )


def cycles_file(tmp_path: Path) -> tuple[Path, Split]:
    """The cycles log as an interactions file (what a user trains on), and its temporal split."""
    path = write_interactions(cycles(), tmp_path / "cycles.csv")
    return path, make_split(load_interactions(path), "temporal")


def config(tmp_path: Path, **overrides: object) -> SequenceConfig:
    values: dict[str, object] = dict(
        data=str(tmp_path / "cycles.csv"), max_len=8, dim=16, blocks=1, dropout=0.0, epochs=30, batch_size=32,
        lr=5e-3, eval_every=5, patience=10, device="cpu", progress=False,
        runs_dir=str(tmp_path / "runs"),
    )  # fmt: skip
    values.update(overrides)
    return SequenceConfig(**values)  # type: ignore[arg-type]


def test_a_state_reads_only_earlier_items_and_never_the_padding() -> None:
    torch.manual_seed(0)
    model = SASRec(n_items=20, max_len=6, dim=8, n_blocks=2).eval()
    seq = torch.tensor([[20, 20, 3, 7, 1, 9]])  # two padding slots, then four items
    with torch.no_grad():
        before = model(seq)
        later = model(torch.tensor([[20, 20, 3, 7, 1, 4]]))  # only the last item changed
        model.item_emb.weight[20] = torch.randn(8)  # padding row set to garbage
        garbage_pad = model(seq)
    assert torch.allclose(before[:, :5], later[:, :5]) and not torch.allclose(
        before[:, 5], later[:, 5]
    )
    assert torch.allclose(before[:, 2:], garbage_pad[:, 2:], atol=1e-6)


def test_windows_make_every_item_after_the_first_a_target_once() -> None:
    windows = training_windows([np.arange(10), np.array([4]), np.array([5, 6])], max_len=4, pad=99)
    real = (windows[:, 1:] != 99) & (windows[:, :-1] != 99)  # a target after a real input
    assert sorted(windows[:, 1:][real].tolist()) == [1, 2, 3, 4, 5, 6, 6, 7, 8, 9]
    assert windows.shape == (4, 5) and windows[-1].tolist() == [99, 99, 99, 5, 6]


@pytest.mark.parametrize("loss", ["full", "sampled"])
def test_sasrec_learns_the_next_item_where_popularity_cannot(tmp_path: Path, loss: str) -> None:
    _, split = cycles_file(tmp_path)
    metrics = train_sequence(config(tmp_path, loss=loss, negatives=8))
    popularity = PopularityChannel(np.concatenate([split.train[1], split.val[1]]), split.n_items)
    seen, test = split.by_user("train+val"), split.by_user("test")
    baseline = rank_metrics(popularity.score, test, seen, split.n_items, [10])
    assert metrics.test["hit@10"] > 0.9 > baseline["hit@10"] + 0.3, (metrics.test, baseline)
    assert metrics.best_epoch > 0 and all(np.isfinite(h["loss"]) for h in metrics.history)

    # The channel built from the saved run ranks exactly what training measured.
    _, model = load_sequence_model(metrics.run_dir)
    channel = sasrec_channel(model, split_sequences(split, ["train", "val"]))
    again = rank_metrics(channel.score, test, seen, split.n_items, [10])
    assert again["ndcg@10"] == pytest.approx(metrics.test["ndcg@10"], abs=1e-6)


def test_a_bad_config_names_every_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"(?s)loss='soft'.*dim=10, heads=3"):
        train_sequence(config(tmp_path, loss="soft", dim=10, heads=3))


def test_export_matches_the_model_and_the_channel_serves_request_sequences(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = SASRec(n_items=25, max_len=7, dim=16, n_blocks=2, n_heads=2).eval()
    rng = np.random.default_rng(0)
    histories = [rng.integers(0, 25, size=rng.integers(1, 12)) for _ in range(40)]
    inputs = pad_left(histories, 7, 25)
    report = export_sequence_encoder(model, inputs, tmp_path / "export")
    assert set(report.files) == {"sequence.pt2", "sequence.onnx"} and report.worst() < 1e-4
    assert set(report.parity["sequence.onnx"]) == {1, 3, 40}

    onnx = (tmp_path / "export" / "sequence_tower.onnx").read_bytes()
    channel = sasrec_channel(model, histories, onnx_encoder(onnx))
    with torch.no_grad():
        eager = model.scores(torch.as_tensor(inputs)).numpy()
    assert np.allclose(channel.score(np.arange(40)), eager, atol=1e-5)
    assert np.allclose(channel.score_sequences(histories), eager, atol=1e-4)
    ids, _ = channel.recommend_sequences([histories[0]], k=5)
    assert not set(ids[0].tolist()) & set(histories[0].tolist())
    with pytest.raises(KeyError, match="unknown item index 25; expected 0..24"):
        channel.score_sequences([[3, 25]])


def test_the_channel_round_trips_through_an_artifacts_folder(tmp_path: Path) -> None:
    torch.manual_seed(2)
    n_users, n_items = 12, 20
    model = SASRec(n_items=n_items, max_len=5, dim=8, n_blocks=1).eval()
    rng = np.random.default_rng(3)
    seen = [np.unique(rng.integers(0, n_items, size=4)) for _ in range(n_users)]
    inputs = pad_left(seen, 5, n_items)
    onnx_dir = tmp_path / "export"
    export_sequence_encoder(model, inputs, onnx_dir, formats="onnx")
    channel = sasrec_channel(model, seen)
    onnx = (onnx_dir / "sequence_tower.onnx").read_bytes()
    pairs_u = np.concatenate([np.full(len(s), u) for u, s in enumerate(seen)])
    neighbours, weights = co_occurrence_neighbours(pairs_u, np.concatenate(seen), n_users, n_items)
    emb = rng.normal(size=(n_items, 4)).astype(np.float32)
    folder = save_artifacts(
        tmp_path / "artifacts", user_ids=[f"u{u}" for u in range(n_users)],
        item_ids=[f"i{i}" for i in range(n_items)],
        user_embeddings=rng.normal(size=(n_users, 4)).astype(np.float32), item_embeddings=emb,
        index=build_index(emb, kind="flat"), popularity_scores=np.ones(n_items, np.float32),
        neighbours=neighbours, neighbour_weights=weights, seen=seen, config={},
        channel_arrays=channel.channel_arrays(onnx),
    )  # fmt: skip
    loaded = SASRecChannel.from_artifacts(load_artifacts(folder))
    assert np.array_equal(loaded.score(np.arange(n_users)), channel.score(np.arange(n_users)))
    assert np.allclose(loaded.score_sequences(seen), channel.score(np.arange(n_users)), atol=1e-4)


def test_index_takes_the_newest_sequence_run_on_its_data_and_says_why_not_otherwise(
    tmp_path: Path,
) -> None:
    runs = tmp_path / "runs"

    def run(name: str, sha: str, sasrec: bool = True, mtime: int = 0) -> Path:
        folder = runs / name
        folder.mkdir(parents=True)
        (folder / "data.json").write_text(json.dumps({"sha256": sha}), encoding="utf-8")
        if sasrec:
            (folder / "sasrec.pt").write_bytes(b"")
            os.utime(folder / "sasrec.pt", (mtime, mtime))
        return folder

    two_tower = run("tt", "abc", sasrec=False)
    assert find_sequence_run(two_tower) == (None, f"not served: no train-sequence run in {runs}")
    other = run("other", "def", mtime=300)
    chosen, note = find_sequence_run(two_tower)
    assert chosen is None and "(other) trained on other data" in note, note
    old, new = run("old", "abc", mtime=100), run("new", "abc", mtime=200)
    assert find_sequence_run(two_tower)[0] == new
    assert find_sequence_run(two_tower, str(old))[0] == old
    assert find_sequence_run(two_tower, "none")[0] is None
    with pytest.raises(ValueError, match="trained on other data than"):
        find_sequence_run(two_tower, str(other))
    with pytest.raises(FileNotFoundError, match="no sasrec.pt; point --sequence-run"):
        find_sequence_run(two_tower, str(two_tower))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_torchrun_nodes_train_the_same_model_as_one_process(
    tmp_path: Path, child_env: Callable[..., dict[str, str]]
) -> None:
    """2 nodes x 1 process, c10d rendezvous on localhost, gloo: the multi-node launch."""
    path, _ = cycles_file(tmp_path)
    values = dict(data=str(path), max_len=8, dim=16, blocks=1, dropout=0.0, epochs=3, batch_size=16,
                  eval_every=1, patience=10, device="cpu", progress=False, deterministic=True)  # fmt: skip
    script = tmp_path / "train_cycles.py"
    script.write_text(
        "import json, sys\n"
        "from {{ cookiecutter.package_name }}.training.sequence import SequenceConfig, train_sequence\n"
        "train_sequence(SequenceConfig(**json.loads(sys.argv[1])))\n",
        encoding="utf-8",
    )
    port = _free_port()
    ddp = {**values, "runs_dir": str(tmp_path / "runs"), "run_id": "ddp"}
    nodes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes",
                "2",
                "--nproc-per-node",
                "1",
                "--node-rank",
                str(rank),
                "--rdzv-backend",
                "c10d",
                "--rdzv-endpoint",
                f"127.0.0.1:{port}",
                "--rdzv-id",
                "sasrec-test",
                str(script),
                json.dumps(ddp),
            ],
            cwd=tmp_path,
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for rank in range(2)
    ]
    outputs = [node.communicate(timeout=300)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    single = train_sequence(
        SequenceConfig(**values, runs_dir=str(tmp_path / "runs"), run_id="one")  # type: ignore[arg-type]
    )
    two = json.loads((tmp_path / "runs" / "ddp" / "metrics.json").read_text())
    assert two["world_size"] == 2 and two["dist_backend"] == "gloo"
    _, a = load_sequence_model(tmp_path / "runs" / "ddp")
    _, b = load_sequence_model(single.run_dir)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.allclose(x, y, atol=1e-4), name


def test_the_temporal_benchmark_writes_hr_and_ndcg_for_every_model(
    tmp_path: Path, run_benchmark: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    try:
        ml100k_location()
    except ImportError as exc:
        pytest.skip(f"needs MovieLens-100K from the recbole wheel: {exc}")
    out = tmp_path / "temporal.json"
    run_benchmark(
        "bench_ml100k.py", "--protocol", "temporal", "--seeds", "0", "--epochs", "1",
        "--sasrec-epochs", "2", "--ranker-epochs", "1", "--candidates", "50",
        "--json", str(out), cwd=tmp_path,
    )  # fmt: skip
    result = json.loads(out.read_text())
    models = {"popularity", "item_graph", "two_tower", "ease", "sasrec", "ranked"}
    assert set(result["hr@10"]) == set(result["ndcg@10"]) == set(result["fit_seconds"]) == models
    assert result["protocol"] == "temporal" and result["seeds"] == [0]
    for model in models:  # one held-out item per user: NDCG@10 <= HR@10, both above chance
        hr, ndcg = result["hr@10"][model], result["ndcg@10"][model]
        assert 10 / 1682 < hr <= 1 and 0 < ndcg <= hr


def test_the_command_line_trains_exports_and_refuses_bad_settings_in_one_line(
    tmp_path: Path, run_cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    path, _ = cycles_file(tmp_path)
    common = ["train-sequence", "--data", str(path), "--max-len", "8", "--dim", "16",
              "--epochs", "2", "--eval-every", "1", "--device", "cpu", "--no-progress",
              "--runs-dir", str(tmp_path / "runs")]  # fmt: skip
    done = run_cli([*common, "--run-id", "cli", "--export", str(tmp_path / "export")], tmp_path)
    assert "sasrec (test)" in done.stdout and "parity max |diff|" in done.stdout
    report = json.loads((tmp_path / "export" / "export_report.json").read_text())
    assert set(report["files"]) == {"sequence.pt2", "sequence.onnx"}
    assert max(report["max_abs_diff"].values()) <= report["tolerance"]
    assert (tmp_path / "runs" / "cli" / "sasrec.pt").is_file()

    bad = run_cli([*common, "--heads", "3"], tmp_path, check=False)
    assert bad.returncode == 2 and "dim=16, heads=3: dim must be a multiple of heads" in bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr


def test_the_throughput_benchmark_times_both_loops_on_the_same_windows(
    tmp_path: Path, run_benchmark: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    path, _ = cycles_file(tmp_path)
    out = tmp_path / "throughput.json"
    run_benchmark(
        "bench_sequence_training.py", "--data", str(path), "--device", "cpu", "--repeats", "1",
        "--batch-sizes", "16", "--json", str(out), cwd=tmp_path,
    )  # fmt: skip
    (row,) = json.loads(out.read_text())
    assert row["batch_size"] == 16 and row["device"] == "cpu"
    fast, naive = row["vectorised_targets_per_s"], row["naive_dataloader_targets_per_s"]
    assert fast > 0 and naive > 0 and row["speedup"] == pytest.approx(fast / naive)


@pytest.mark.cuda
@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_sasrec_trains_on_cuda_with_and_without_bf16(tmp_path: Path, amp: str) -> None:
    """The GPU twin of the CPU training tests (``nox -s gpu_tests`` runs it)."""
    _, split = cycles_file(tmp_path)
    metrics = train_sequence(config(tmp_path, device="cuda", amp=amp, epochs=10))
    assert (
        metrics.device.startswith("cuda") and metrics.amp == {"off": "off", "bf16": "bfloat16"}[amp]
    )
    assert all(np.isfinite(h["loss"]) for h in metrics.history)
    assert metrics.history[-1]["loss"] < metrics.history[0]["loss"]
    popularity = PopularityChannel(np.concatenate([split.train[1], split.val[1]]), split.n_items)
    baseline = rank_metrics(
        popularity.score, split.by_user("test"), split.by_user("train+val"), split.n_items, [10]
    )
    assert metrics.test["hit@10"] > baseline["hit@10"]
