"""train(cfg): batching, run folders, resume, config mismatches, DDP equivalence, GPU twin."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch

from {{ cookiecutter.package_name }}.training import (
    CheckpointMismatch,
    RunDataChanged,
    TrainConfig,
    load_trained,
    prepare_split,
    run_data,
    train,
)
from {{ cookiecutter.package_name }}.training.batches import TrainingTensors

SMALL = dict(
    n_users=150, n_items=60, events_per_user=12, batch_size=256, progress=False, patience=50
)


def config(tmp_path: Path, **overrides: object) -> TrainConfig:
    values: dict[str, object] = {
        **SMALL,
        "epochs": 2,
        "device": "cpu",
        "runs_dir": str(tmp_path / "runs"),
    }
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]


def small_tensors(**overrides: object) -> TrainingTensors:
    cfg = TrainConfig(**{**SMALL, **overrides})  # type: ignore[arg-type]
    return TrainingTensors.from_split(
        prepare_split(cfg), cfg.history_len, True, torch.device("cpu")
    )


def test_an_epoch_visits_every_pair_once_and_hides_each_positive_from_its_own_history() -> None:
    tensors = small_tensors()
    seen: list[tuple[int, int]] = []
    for batch in tensors.epoch(batch_size=64, seed=0, epoch=1):
        assert len(batch) <= 64
        assert not (batch.history == batch.items[:, None]).any()
        assert torch.equal(batch.user_features, tensors.user_features[batch.users])
        assert torch.equal(batch.item_features, tensors.item_features[batch.items])
        # What is left of the history is the user's row of the table, the positive padded out.
        row = tensors.histories[batch.users]
        assert torch.equal(batch.history, row.masked_fill(row == batch.items[:, None], tensors.pad))
        seen += zip(batch.users.tolist(), batch.items.tolist(), strict=True)
    assert sorted(seen) == sorted(zip(tensors.users.tolist(), tensors.items.tolist(), strict=True))


def test_epochs_are_reproducible_and_ranks_split_each_global_batch_between_them() -> None:
    tensors = small_tensors()
    whole = [b.users.tolist() for b in tensors.epoch(100, seed=3, epoch=2)]
    assert whole == [b.users.tolist() for b in tensors.epoch(100, seed=3, epoch=2)]
    assert whole != [b.users.tolist() for b in tensors.epoch(100, seed=3, epoch=3)]
    shares = [
        [b.users.tolist() for b in tensors.epoch(100, seed=3, epoch=2, rank=r, world_size=2)]
        for r in (0, 1)
    ]
    for k, batch in enumerate(whole):
        assert shares[0][k] == batch[0::2] and shares[1][k] == batch[1::2]


def test_a_run_folder_holds_config_data_split_metrics_checkpoint_environment_hardware_git_curves(
    tmp_path: Path,
) -> None:
    metrics = train(config(tmp_path, run_id="r1"))
    run = Path(metrics.run_dir)
    names = {p.name for p in run.iterdir()}
    assert {
        "config.json",
        "data.json",
        "split.npz",
        "metrics.json",
        "checkpoint.pt",
        "model.pt",
        "hardware.json",
        "git.txt",
        "curves.png",
    } <= names
    assert names & {"environment.yml", "environment.txt"}
    if "environment.txt" in names:
        # The installed distribution's version (torch.__version__ may differ: a vendor build
        # reported 2.11.0+cu130 from a distribution recorded as 2.11.0).
        assert f"torch=={metadata.version('torch')}" in (run / "environment.txt").read_text()
    assert json.loads((run / "config.json").read_text())["n_items"] == 60
    # The split is recorded as trained: the pairs of each part, on data of a recorded hash.
    record, split = json.loads((run / "data.json").read_text()), prepare_split(config(tmp_path))
    assert record["sha256"] == split.data.content_hash() and record["source"] == "synthetic"
    with np.load(run / "split.npz") as saved:
        for part in ("train", "val", "test"):
            assert np.array_equal(saved[f"{part}_items"], getattr(split, part)[1]), part
    assert (
        json.loads((run / "metrics.json").read_text())["test"]["recall@10"]
        == metrics.test["recall@10"]
    )
    assert len(metrics.history) == 2 and metrics.samples_per_second > 0
    assert 0.0 <= metrics.test["recall@10"] <= 1.0


def test_resuming_continues_where_the_checkpoint_stopped(tmp_path: Path) -> None:
    first = train(config(tmp_path, run_id="part", epochs=2, deterministic=True))
    resumed = train(config(tmp_path, epochs=4, resume=first.run_dir, deterministic=True))
    straight = train(config(tmp_path, run_id="straight", epochs=4, deterministic=True))
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    assert resumed.history[:2] == first.history
    for got, want in zip(resumed.history, straight.history, strict=True):
        assert got["loss"] == pytest.approx(want["loss"], rel=1e-5)
    assert resumed.test["recall@10"] == pytest.approx(straight.test["recall@10"], abs=1e-6)


def test_one_torchrun_process_still_trains_inside_a_process_group(
    tmp_path: Path, run_cli: Callable[..., object]
) -> None:
    # What a one-GPU runner relies on to exercise the DDP path: gloo here, nccl on CUDA.
    run_cli(["train", "--n-users", "100", "--n-items", "40", "--epochs", "1", "--device", "cpu", "--no-progress",
             "--runs-dir", str(tmp_path / "runs"), "--run-id", "one"], cwd=tmp_path, torchrun_procs=1)  # fmt: skip
    metrics = json.loads((tmp_path / "runs" / "one" / "metrics.json").read_text())
    assert metrics["world_size"] == 1 and metrics["dist_backend"] == "gloo"


def test_a_world_size_without_torchrun_variables_says_how_to_launch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(
        RuntimeError, match=r"WORLD_SIZE=2 but RANK/MASTER_ADDR are not set; .*torchrun"
    ):
        train(config(tmp_path))
    assert not (tmp_path / "runs").exists()


def test_a_checkpoint_from_another_config_is_refused_and_left_untouched(tmp_path: Path) -> None:
    first = train(config(tmp_path, run_id="r"))
    ckpt = Path(first.run_dir) / "checkpoint.pt"
    before = ckpt.read_bytes()
    with pytest.raises(CheckpointMismatch, match="dim: checkpoint has 64, this config has 16"):
        train(config(tmp_path, dim=16, epochs=3, resume=first.run_dir))
    assert ckpt.read_bytes() == before
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["r"]


def test_an_existing_run_folder_is_not_overwritten(tmp_path: Path) -> None:
    train(config(tmp_path, run_id="same"))
    with pytest.raises(FileExistsError, match="run folder exists"):
        train(config(tmp_path, run_id="same"))


def test_invalid_settings_are_listed_together(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"(?s)split='weekly'.*epochs=0.*amp='fp8'"):
        train(config(tmp_path, split="weekly", amp="fp8", epochs=0))


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the error without CUDA; this machine has CUDA"
)
def test_forcing_cuda_without_a_gpu_says_what_torch_found(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"sees no CUDA device .* use --device cpu"):
        train(config(tmp_path, device="cuda"))


def test_two_gloo_processes_train_the_same_model_as_one(
    tmp_path: Path, run_cli: Callable[..., object]
) -> None:
    # Full-catalog softmax makes each sample's loss independent of its batch-mates, so
    # averaging the gradients of two half-batches equals the full-batch gradient.
    common = [
        "--n-users",
        "150",
        "--n-items",
        "60",
        "--events-per-user",
        "12",
        "--epochs",
        "2",
        "--batch-size",
        "256",
        "--negatives",
        "full",
        "--device",
        "cpu",
        "--no-progress",
        "--deterministic",
        "--runs-dir",
        str(tmp_path / "runs"),
    ]
    run_cli(["train", *common, "--run-id", "ddp"], cwd=tmp_path, torchrun_procs=2)
    ddp = json.loads((tmp_path / "runs" / "ddp" / "metrics.json").read_text())
    single = train(config(tmp_path, run_id="one", negatives="full", deterministic=True))
    assert (
        ddp["world_size"] == 2 and ddp["dist_backend"] == "gloo" and single.dist_backend == "none"
    )
    # Not bit-identical: an odd tail batch splits unevenly, and float sums run in another order.
    for got, want in zip(ddp["history"], single.history, strict=True):
        assert got["loss"] == pytest.approx(want["loss"], rel=1e-3)
    assert ddp["test"]["recall@10"] == pytest.approx(single.test["recall@10"], abs=0.02)


@pytest.mark.cuda
@pytest.mark.parametrize("amp", ["bf16", "fp16", "auto"])
def test_training_on_cuda_with_mixed_precision_learns(tmp_path: Path, amp: str) -> None:
    metrics = train(config(tmp_path, device="cuda", amp=amp, epochs=3))
    auto = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    assert (
        metrics.device.startswith("cuda")
        and metrics.amp == {"bf16": "bfloat16", "fp16": "float16", "auto": auto}[amp]
    )
    assert all(h["loss"] == h["loss"] for h in metrics.history)  # no NaN
    assert metrics.history[-1]["loss"] < metrics.history[0]["loss"]


def test_a_synthetic_run_refuses_a_sample_that_a_changed_generator_now_draws(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = train(config(tmp_path, run_id="s", epochs=1)).run_dir
    assert load_trained(run)[2].n_items == 60  # same generator: the recorded split loads
    drawn = run_data.generate_synthetic
    # As after an update of the generator: the same config now draws another sample.
    monkeypatch.setattr(
        run_data, "generate_synthetic", lambda **sizes: drawn(**{**sizes, "seed": 1})
    )
    with pytest.raises(
        RunDataChanged, match=r"trained on synthetic \(150 users, 60 items, .*sha256"
    ):
        load_trained(run)
