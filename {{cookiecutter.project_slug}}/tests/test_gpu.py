"""The pipeline on a real GPU, through the same entry points as on CPU.

These are hardware tests: ``nox -s gpu_tests`` runs them in require mode, where a skip is a
failure; elsewhere they skip with the probe's reason. Each one starts the command line (or a
training script) in a child process, so a CUDA context never leaks into the rest of the suite.
A parametrised test's CPU case is its twin, and runs everywhere.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

SMALL = ["--n-users", "300", "--n-items", "120", "--events-per-user", "12", "--batch-size", "256",
         "--no-progress"]  # fmt: skip


@pytest.mark.cuda
def test_the_demo_trains_on_cuda_and_its_artifacts_serve_from_cpu(
    tmp_path: Path,
    torch_device: str,
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
    child_env: Callable[..., dict[str, str]],
) -> None:
    done = run_cli(["demo", "--device", torch_device, "--epochs", "3", "--n-users", "400", "--n-items", "150",
                    "--workdir", str(tmp_path)], cwd=tmp_path)  # fmt: skip
    assert "samples/s on cuda" in done.stdout
    run = next((tmp_path / "runs").iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    # amp "off" is the measured-faster default
    assert metrics["device"].startswith("cuda") and metrics["amp"] == "off"
    assert metrics["history"][-1]["loss"] < metrics["history"][0]["loss"]
    assert 0.0 < metrics["test"]["recall@10"] <= 1.0
    # What a GPU run leaves behind must load where the service runs: a process that sees no GPU.
    probe = ("from {{ cookiecutter.package_name }}.artifacts import load_artifacts; import sys; "
             "a = load_artifacts(sys.argv[1]); print(a.n_items, a.item_embeddings.shape[1])")  # fmt: skip
    loaded = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "artifacts")], env=child_env(CUDA_VISIBLE_DEVICES=""),
                            capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    n_items, dim = map(int, loaded.stdout.split())
    assert n_items > 100 and dim == json.loads((run / "config.json").read_text())["dim"]
    report = json.loads((tmp_path / "artifacts" / "export" / "export_report.json").read_text())
    assert max(report["max_abs_diff"].values()) < 1e-4, report


@pytest.mark.cuda
def test_torchrun_starts_the_same_training_entry_point_on_cuda(
    tmp_path: Path, run_cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    run_cli(["train", *SMALL, "--epochs", "2", "--device", "cuda", "--amp", "bf16", "--run-id", "tr",
             "--runs-dir", str(tmp_path / "runs")], cwd=tmp_path, torchrun_procs=1)  # fmt: skip
    metrics = json.loads((tmp_path / "runs" / "tr" / "metrics.json").read_text())
    assert metrics["device"].startswith("cuda") and metrics["amp"] == "bfloat16"
    # One process still joins an nccl group and trains through DistributedDataParallel, so a
    # one-GPU runner exercises the multi-GPU code path.
    assert (
        metrics["world_size"] == 1
        and metrics["dist_backend"] == "nccl"
        and metrics["samples_per_second"] > 0
    )


@pytest.mark.multi_gpu(2)
def test_two_nccl_processes_train_the_same_model_as_one(
    tmp_path: Path, run_cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    # The nccl twin of the gloo test in test_training.py: full-catalog softmax makes the
    # average of two half-batch gradients equal the full-batch gradient.
    common = [*SMALL, "--epochs", "2", "--negatives", "full", "--device", "cuda", "--amp", "off", "--deterministic",
              "--runs-dir", str(tmp_path / "runs")]  # fmt: skip
    run_cli(["train", *common, "--run-id", "ddp"], cwd=tmp_path, torchrun_procs=2)
    run_cli(["train", *common, "--run-id", "one"], cwd=tmp_path)
    ddp, one = (
        json.loads((tmp_path / "runs" / r / "metrics.json").read_text()) for r in ("ddp", "one")
    )
    assert ddp["world_size"] == 2 and ddp["dist_backend"] == "nccl" and one["world_size"] == 1
    for got, want in zip(ddp["history"], one["history"], strict=True):
        assert got["loss"] == pytest.approx(want["loss"], rel=1e-2)
    assert ddp["test"]["recall@10"] == pytest.approx(one["test"]["recall@10"], abs=0.03)


@pytest.mark.cuda
def test_the_training_benchmark_times_every_amp_mode_on_cuda(
    tmp_path: Path, run_benchmark: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    # `nox -s bench` on a GPU box runs these two commands; a tiny run checks they still report.
    both = run_benchmark(
        "bench_training.py", "--device", "cuda", "--epochs", "1", "--repeats", "1",
        "--batch-sizes", "8192", "--dim", "8", cwd=tmp_path,
    )  # fmt: skip
    row = json.loads(both.stdout)["batch_8192"]
    assert row["speedup"] > 0 and set(row["amp"]) == {"off", "bf16", "fp16"}
    amp_only = run_benchmark(
        "bench_training.py", "--device", "cuda", "--amp-only", "--epochs", "1", "--repeats", "1",
        "--batch-sizes", "8192", "--dim", "8", cwd=tmp_path,
    )  # fmt: skip
    row = json.loads(amp_only.stdout)["batch_8192"]
    assert "speedup" not in row and row["amp"]["bf16"]["samples_per_s"] > 0


# The ranker (ranking/train.py): the same settings on every device, small enough for a CPU.
RANKER = dict(epochs=3, n_candidates=30, n_random=10, batch_users=32, lr=3e-3)


@pytest.mark.parametrize(
    ("device", "amp", "dtype"),
    [
        pytest.param("cpu", "off", "off", id="cpu-twin"),
        pytest.param("cuda", "bf16", "bfloat16", marks=pytest.mark.cuda, id="cuda-bf16"),
        pytest.param("cuda", "fp16", "float16", marks=pytest.mark.cuda, id="cuda-fp16"),
    ],
)
def test_the_ranker_trains_under_autocast_and_comes_back_on_the_cpu(
    tmp_path: Path,
    train_ranker_in_child: Callable[..., list[dict[str, Any]]],
    device: str,
    amp: str,
    dtype: str,
) -> None:
    (result,) = train_ranker_in_child(tmp_path, device=device, amp=amp, **RANKER)
    assert result["device"].startswith(device) and result["amp"] == dtype
    losses = [h["loss"] for h in result["history"]]
    assert np.isfinite(losses).all() and losses[-1] < losses[0], losses  # fp16: the scaler works
    assert result["model_device"] == "cpu"  # handed back ready to export
    assert 0 < result["val"]["recall@10"] <= 1


@pytest.mark.cuda
def test_torchrun_starts_the_rank_stage_on_cuda_with_bf16(
    tmp_path: Path, run_cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    # One process in an nccl group: the ranker trains through DistributedDataParallel on the
    # GPU, and so does the fold's two-tower model inside the ranker's group.
    runs = str(tmp_path / "runs")
    run_cli(
        ["train", *SMALL, "--epochs", "2", "--device", "cuda", "--runs-dir", runs], cwd=tmp_path
    )
    run_cli(["rank", "--runs-dir", runs, "--out", str(tmp_path / "ranker"), "--epochs", "2", "--folds", "1",
             "--n-candidates", "50", "--device", "cuda", "--amp", "bf16"], cwd=tmp_path, torchrun_procs=1)  # fmt: skip
    report = json.loads((tmp_path / "ranker" / "rank_report.json").read_text())
    assert report["device"].startswith("cuda") and report["amp"] == "bfloat16"
    assert (report["world_size"], report["dist_backend"]) == (1, "nccl")
    assert all(np.isfinite(h["loss"]) for h in report["history"])
    assert report["export"]["max_abs_diff"] <= report["export"]["tolerance"]
    assert 0 < report["test"]["ranked"]["recall@10"] <= 1


@pytest.mark.multi_gpu(2)
def test_two_nccl_processes_train_the_same_ranker_as_one(
    tmp_path: Path, train_ranker_in_child: Callable[..., list[dict[str, Any]]]
) -> None:
    # The nccl twin of the gloo test in test_ranking.py (looser: GPU kernels do not sum in a
    # fixed order).
    settings = {**RANKER, "device": "cuda", "amp": "off", "dropout": 0.0, "batch_users": 25}
    (one,) = train_ranker_in_child(tmp_path / "one", **settings)
    first, second = train_ranker_in_child(tmp_path / "ddp", torchrun_procs=2, **settings)
    assert (first["world_size"], first["dist_backend"]) == (2, "nccl")
    for name, weight in first["state_dict"].items():
        assert np.allclose(weight.numpy(), second["state_dict"][name].numpy(), atol=1e-6), name
    for got, want in zip(first["history"], one["history"], strict=True):
        assert got["loss"] == pytest.approx(want["loss"], rel=1e-3)
    valid = np.isfinite(one["scores"])
    assert np.array_equal(valid, np.isfinite(first["scores"]))
    # Up to a shift per user, which a listwise loss cannot see (test_ranking.py says more).
    diff = np.where(valid, first["scores"] - one["scores"], 0.0)
    shift = diff.sum(1, keepdims=True) / valid.sum(1, keepdims=True)
    assert np.abs(np.where(valid, diff - shift, 0.0)).max() < 1e-2
